//! Conformance: writes as kube clients observe them — Status errors (E4),
//! resourceVersion preconditions (E10, E12), create rules (E11), merge and
//! JSON patch (E13), server-side apply (E14), no-op writes (E16), the status
//! subresource split (E17), generation (E18), delete and finalizers (E19)
//! and Service defaults (E34).

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ferrolb_shared::crd::IPAddressPool;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{ResourceExt, core::Status};
use kube_emulator::{EmulatorConfig, RequestMatcher};
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const POOLS: &str = "/apis/ferrolb.io/v1alpha1/namespaces/default/ipaddresspools";

/// Checks the common Status envelope of an error answer and returns it.
fn status_of(r: &RawResponse, code: u16, reason: &str) -> Value {
    let v = r.json();
    assert_eq!(r.status, code, "HTTP status; body {v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert!(v["metadata"].is_object(), "metadata {{}} present: {v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    // kube decodes the same body into its Status type.
    let s: Status = serde_json::from_value(v.clone()).expect("kube decodes the Status");
    assert_eq!(s.code, code);
    v
}

/// `details` names the object; an empty group may be omitted (as upstream does) or empty.
fn assert_details(v: &Value, name: &str, group: &str, kind: &str) {
    let d = &v["details"];
    assert_eq!(d["name"], name, "{v}");
    assert_eq!(d["kind"], kind, "{v}");
    assert_eq!(
        d.get("group").and_then(Value::as_str).unwrap_or(""),
        group,
        "{v}"
    );
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// A server-side apply of `doc` (as JSON, which is YAML) through raw HTTP.
async fn raw_apply(c: &kube::Client, uri: &str, doc: Value) -> RawResponse {
    raw(
        c,
        "PATCH",
        uri,
        Some("application/apply-patch+yaml"),
        body(doc),
    )
    .await
}

/// E4: every error row has the upstream shape and satisfies kube's predicates.
#[tokio::test]
async fn status_errors_have_upstream_shape() {
    let (env, c) = start_with_crds_no_retry().await;
    let cms: Api<ConfigMap> = in_default(&c);
    let created = create_configmap(&cms, "a").await;

    // 404 NotFound, core and CR.
    let v = status_of(&raw_get(&c, &format!("{CM}/nope")).await, 404, "NotFound");
    assert_eq!(v["message"], "configmaps \"nope\" not found");
    assert_details(&v, "nope", "", "configmaps");
    let v = status_of(
        &raw_get(&c, &format!("{POOLS}/nope")).await,
        404,
        "NotFound",
    );
    assert_eq!(v["message"], "ipaddresspools.ferrolb.io \"nope\" not found");
    assert_details(&v, "nope", "ferrolb.io", "ipaddresspools");
    assert!(api_status(cms.get("nope").await).is_not_found());
    assert!(
        cms.get_opt("nope").await.unwrap().is_none(),
        "get_opt maps 404 to None"
    );
    let v = status_of(
        &raw_get(&c, "/apis/nope.io/v1/things").await,
        404,
        "NotFound",
    );
    assert_eq!(
        v["message"],
        "the server could not find the requested resource"
    );

    // 409 AlreadyExists and Conflict.
    let v = status_of(
        &raw(
            &c,
            "POST",
            CM,
            None,
            body(json!({"metadata": {"name": "a"}})),
        )
        .await,
        409,
        "AlreadyExists",
    );
    assert_details(&v, "a", "", "configmaps");
    assert!(
        api_status(
            cms.create(&PostParams::default(), &configmap("a", &[]))
                .await
        )
        .is_already_exists()
    );
    merge_patch(&cms, "a", json!({"data": {"k": "2"}}))
        .await
        .unwrap();
    let stale = serde_json::to_value(&created).unwrap();
    let v = status_of(
        &raw(&c, "PUT", &format!("{CM}/a"), None, body(stale)).await,
        409,
        "Conflict",
    );
    assert_eq!(
        v["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert!(api_status(cms.replace("a", &PostParams::default(), &created).await).is_conflict());

    // 422 Invalid with causes.
    let bad = json!({"metadata": {"name": "bad", "labels": {"ip": "fd00::1"}}});
    let v = status_of(
        &raw(&c, "POST", CM, None, body(bad.clone())).await,
        422,
        "Invalid",
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap \"bad\" is invalid: metadata.labels"),
        "{v}"
    );
    assert_eq!(v["details"]["kind"], "ConfigMap");
    assert_eq!(v["details"]["name"], "bad");
    let cause = &v["details"]["causes"][0];
    assert_eq!(cause["reason"], "FieldValueInvalid", "{v}");
    assert!(
        cause["field"]
            .as_str()
            .unwrap()
            .starts_with("metadata.labels"),
        "{v}"
    );
    assert!(api_status(cms.create(&PostParams::default(), &obj(bad)).await).is_invalid());

    // 400 BadRequest: namespace in body differs from the URL.
    let v = status_of(
        &raw(
            &c,
            "POST",
            CM,
            None,
            body(json!({"metadata": {"name": "x", "namespace": "kube-system"}})),
        )
        .await,
        400,
        "BadRequest",
    );
    assert!(v["message"].as_str().unwrap().contains("namespace"), "{v}");

    // 405 MethodNotAllowed: POST to a named object.
    status_of(
        &raw(
            &c,
            "POST",
            &format!("{CM}/a"),
            None,
            body(json!({"metadata": {"name": "a"}})),
        )
        .await,
        405,
        "MethodNotAllowed",
    );

    // 406 NotAcceptable: only protobuf accepted.
    let r = raw_with(
        &c,
        "GET",
        &format!("{CM}/a"),
        &[("accept", "application/vnd.kubernetes.protobuf")],
        Vec::new(),
    )
    .await;
    status_of(&r, 406, "NotAcceptable");

    // 415 UnsupportedMediaType: strategic merge patch.
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/a"),
        Some("application/strategic-merge-patch+json"),
        body(json!({"data": {"k": "3"}})),
    )
    .await;
    status_of(&r, 415, "UnsupportedMediaType");
    let s = api_status(
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k": "3"}})),
        )
        .await,
    );
    assert_eq!(s.code, 415);

    // 500 InternalError: resourceVersion set on create.
    let v = status_of(
        &raw(
            &c,
            "POST",
            CM,
            None,
            body(json!({"metadata": {"name": "rv", "resourceVersion": "5"}})),
        )
        .await,
        500,
        "InternalError",
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("resourceVersion should not be set on objects to be created"),
        "{v}"
    );

    // 403 Forbidden (F9), 429 with Retry-After (F3), 503 (F3).
    env.emu.faults().forbid(
        RequestMatcher::any()
            .verb("get")
            .resource("configmaps")
            .name("a"),
    );
    status_of(&raw_get(&c, &format!("{CM}/a")).await, 403, "Forbidden");
    assert!(api_status(cms.get("a").await).is_forbidden());
    env.emu.faults().clear();
    env.emu.faults().fail_next(
        1,
        RequestMatcher::any().verb("get").resource("configmaps"),
        429,
        None,
        Some(3),
    );
    let r = raw_get(&c, &format!("{CM}/a")).await;
    let v = status_of(&r, 429, "TooManyRequests");
    assert_eq!(r.header("retry-after").as_deref(), Some("3"));
    assert_eq!(v["details"]["retryAfterSeconds"], 3);
    env.emu.faults().fail_next(
        1,
        RequestMatcher::any().verb("get").resource("configmaps"),
        503,
        None,
        None,
    );
    status_of(
        &raw_get(&c, &format!("{CM}/a")).await,
        503,
        "ServiceUnavailable",
    );
    assert_eq!(
        raw_get(&c, &format!("{CM}/a")).await.status,
        200,
        "fail_next(1) fails exactly once"
    );

    // 410 Expired: a continue token from before a compaction.
    for i in 0..3 {
        cms.create(&PostParams::default(), &configmap(&format!("p{i}"), &[]))
            .await
            .unwrap();
    }
    let page = cms.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.clone().expect("a continue token");
    create_configmaps(&cms, &["later"]).await;
    env.emu.faults().compact(None);
    let r = raw_get(&c, &format!("{CM}?limit=1&continue={token}")).await;
    status_of(&r, 410, "Expired");

    // A successful delete answering with a Status says Success.
    let r = raw(&c, "DELETE", &format!("{CM}/later"), None, body(json!({}))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    if v["kind"] == "Status" {
        assert_eq!(v["status"], "Success", "{v}");
    }
}

/// E10: 50 concurrent PUTs with the same resourceVersion → one 200, 49 × 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_with_one_rv_have_exactly_one_winner() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let base = create_configmap(&api, "race").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let api = api.clone();
        let mut o = base.clone();
        tasks.push(tokio::spawn(async move {
            o.data = Some([("writer".to_owned(), i.to_string())].into());
            api.replace("race", &PostParams::default(), &o).await
        }));
    }
    let (mut ok, mut conflicts, mut winner) = (0, 0, None);
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => {
                ok += 1;
                winner = o.data.and_then(|d| d.get("writer").cloned());
            }
            Err(kube::Error::Api(s)) if s.is_conflict() && s.code == 409 => conflicts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    let now = api.get("race").await.unwrap();
    assert_eq!(
        now.data.and_then(|d| d.get("writer").cloned()),
        winner,
        "the stored object is the winner's"
    );
    assert_eq!(
        rv_num(now.metadata.resource_version.as_deref()),
        rv_num(base.metadata.resource_version.as_deref()) + 1,
        "one write only"
    );
}

/// E12: PUT rules per kind.
#[tokio::test]
async fn replace_rules() {
    let (_env, c) = start_with_crds_no_retry().await;

    // Lease: a stale RV gets 409; no RV gets 422; PUT may create.
    let leases: Api<Lease> = in_default(&c);
    let l: Lease = obj(
        json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}}),
    );
    leases.create(&PostParams::default(), &l).await.unwrap();
    let mut got = leases.get("l").await.unwrap();
    got.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("l", &PostParams::default(), &got)
        .await
        .unwrap();
    got.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let s = api_status(leases.replace("l", &PostParams::default(), &got).await);
    assert!(s.is_conflict(), "{s:?}");
    let mut no_rv = leases.get("l").await.unwrap();
    no_rv.metadata.resource_version = None;
    let s = api_status(leases.replace("l", &PostParams::default(), &no_rv).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(
        s.message.contains("metadata.resourceVersion"),
        "{}",
        s.message
    );
    let r = raw(&c, "PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/fresh", None,
        body(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "fresh"}, "spec": {"holderIdentity": "x"}}))).await;
    assert_eq!(
        r.status,
        201,
        "Lease PUT creates: {}",
        String::from_utf8_lossy(&r.body)
    );

    // Service: unconditional PUT (no RV) is allowed; PUT may create.
    let svcs: Api<Service> = in_default(&c);
    create_lb_service(&svcs, "s", &[]).await;
    let mut s_no_rv = svcs.get("s").await.unwrap();
    s_no_rv.metadata.resource_version = None;
    s_no_rv.metadata.labels = Some([("u".to_owned(), "1".to_owned())].into());
    let put = svcs
        .replace("s", &PostParams::default(), &s_no_rv)
        .await
        .unwrap();
    assert_eq!(put.labels().get("u").map(String::as_str), Some("1"));
    let r = raw(&c, "PUT", "/api/v1/namespaces/default/services/made", None,
        body(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "made"}, "spec": {"ports": [{"port": 81}]}}))).await;
    assert_eq!(
        r.status,
        201,
        "Service PUT creates: {}",
        String::from_utf8_lossy(&r.body)
    );

    // CR: no RV → 422; missing → 404 (no create-on-PUT).
    let pools: Api<IPAddressPool> = in_default(&c);
    pools
        .create(&PostParams::default(), &pool("p", "10.1.0.0/24"))
        .await
        .unwrap();
    let mut p = pools.get("p").await.unwrap();
    p.metadata.resource_version = None;
    assert_eq!(
        api_status(pools.replace("p", &PostParams::default(), &p).await).code,
        422
    );
    let mut ghost = pool("ghost", "10.2.0.0/24");
    ghost.metadata.resource_version = Some("1".into());
    assert!(
        api_status(pools.replace("ghost", &PostParams::default(), &ghost).await).is_not_found()
    );

    // Name mismatch → 400 with the upstream message.
    let cms: Api<ConfigMap> = in_default(&c);
    let a = create_configmap(&cms, "a").await;
    let s = api_status(cms.replace("b", &PostParams::default(), &a).await);
    assert_eq!(s.code, 400, "{s:?}");
    assert_eq!(
        s.message,
        "the name of the object (a) does not match the name on the URL (b)"
    );

    // uid mismatch → 409; setting deletionTimestamp → 422; creationTimestamp and generation changes ignored.
    let mut wrong_uid = a.clone();
    wrong_uid.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    assert_eq!(
        api_status(cms.replace("a", &PostParams::default(), &wrong_uid).await).code,
        409
    );
    let mut v = serde_json::to_value(&a).unwrap();
    v["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
    assert_eq!(
        api_status(
            cms.replace("a", &PostParams::default(), &obj::<ConfigMap>(v))
                .await
        )
        .code,
        422
    );
    let mut v = serde_json::to_value(&a).unwrap();
    v["metadata"]["creationTimestamp"] = json!("2001-01-01T00:00:00Z");
    v["data"] = json!({"k": "new"});
    let out = cms
        .replace("a", &PostParams::default(), &obj::<ConfigMap>(v))
        .await
        .unwrap();
    assert_eq!(
        out.metadata.creation_timestamp, a.metadata.creation_timestamp,
        "creationTimestamp is server-owned"
    );
    let p = pools.get("p").await.unwrap();
    let mut v = serde_json::to_value(&p).unwrap();
    v["metadata"]["generation"] = json!(42);
    let out = pools
        .replace("p", &PostParams::default(), &obj::<IPAddressPool>(v))
        .await
        .unwrap();
    assert_eq!(
        out.metadata.generation,
        Some(1),
        "generation is server-owned"
    );

    // ConfigMap: no create-on-PUT.
    let mut missing = configmap("missing", &[]);
    missing.metadata.resource_version = Some("1".into());
    assert!(
        api_status(
            cms.replace("missing", &PostParams::default(), &missing)
                .await
        )
        .is_not_found()
    );
}

/// E11: create rules.
#[tokio::test]
async fn create_rules() {
    let (_env, c) = start_with_crds_no_retry().await;
    let cms: Api<ConfigMap> = in_default(&c);

    // generateName: prefix plus 5 characters from the upstream alphabet.
    let gen_cm: ConfigMap = obj(json!({"metadata": {"generateName": "ferrolb-"}}));
    let a = cms
        .create(&PostParams::default(), &gen_cm)
        .await
        .unwrap()
        .name_any();
    let b = cms
        .create(&PostParams::default(), &gen_cm)
        .await
        .unwrap()
        .name_any();
    assert_ne!(a, b);
    for n in [&a, &b] {
        let suffix = n.strip_prefix("ferrolb-").unwrap_or_else(|| panic!("{n}"));
        assert_eq!(suffix.len(), 5, "{n}");
        assert!(
            suffix
                .chars()
                .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
            "{n}"
        );
    }
    let long: ConfigMap = obj(json!({"metadata": {"generateName": "x".repeat(70)}}));
    let n = cms
        .create(&PostParams::default(), &long)
        .await
        .unwrap()
        .name_any();
    assert_eq!(n.len(), 63, "prefix cut to 58 plus 5: {n}");

    // No name at all → 422 on metadata.name.
    let s = api_status(
        cms.create(&PostParams::default(), &obj(json!({"metadata": {}})))
            .await,
    );
    assert!(s.is_invalid(), "{s:?}");
    assert!(
        s.details
            .unwrap()
            .causes
            .iter()
            .any(|c| c.field == "metadata.name" && c.reason == "FieldValueRequired")
    );

    // An IPv6 address is not a label value.
    let s = api_status(
        cms.create(
            &PostParams::default(),
            &configmap("v6", &[("addr", "fd00::1")]),
        )
        .await,
    );
    assert!(s.is_invalid());
    assert!(
        s.details
            .unwrap()
            .causes
            .iter()
            .any(|c| c.field.starts_with("metadata.labels"))
    );
    let s = api_status(
        cms.create(
            &PostParams::default(),
            &configmap("long", &[("k", &"v".repeat(64))]),
        )
        .await,
    );
    assert!(s.is_invalid(), "a 64-character label value");

    // Names: Services need a DNS-1035 label.
    let svcs: Api<Service> = in_default(&c);
    assert!(
        api_status(
            svcs.create(&PostParams::default(), &lb_service("1abc", &[]))
                .await
        )
        .is_invalid()
    );
    assert!(
        api_status(
            svcs.create(&PostParams::default(), &lb_service("a.b", &[]))
                .await
        )
        .is_invalid()
    );
    create_configmaps(&cms, &["a.b"]).await;

    // Finalizers must be qualified names.
    let s = api_status(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "fin", "finalizers": ["not a name!"]}})),
        )
        .await,
    );
    assert!(s.is_invalid(), "{s:?}");

    // A resourceVersion in the body → 500, as upstream.
    let s = api_status(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "rv", "resourceVersion": "7"}})),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));

    // A missing namespace → 404 namespaces "x" not found.
    let other: Api<ConfigMap> = Api::namespaced(c.clone(), "missing");
    let s = api_status(
        other
            .create(&PostParams::default(), &configmap("x", &[]))
            .await,
    );
    assert!(s.is_not_found());
    assert_eq!(s.message, "namespaces \"missing\" not found");

    // Server-owned metadata is overwritten.
    let sent: IPAddressPool = obj(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "uid": "client-uid", "generation": 9, "creationTimestamp": "2001-01-01T00:00:00Z"},
        "spec": {"addresses": ["10.0.0.0/24"]},
        "status": {"assignedIPv4": 5}
    }));
    let pools: Api<IPAddressPool> = in_default(&c);
    let p = pools.create(&PostParams::default(), &sent).await.unwrap();
    assert_ne!(p.metadata.uid.as_deref(), Some("client-uid"));
    assert_eq!(p.metadata.uid.as_deref().map(str::len), Some(36), "a UUID");
    assert_eq!(p.metadata.generation, Some(1));
    assert_ne!(
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        Some(978_307_200)
    );
    assert_eq!(
        p.status.map(|s| s.assigned_ipv4).unwrap_or(0),
        0,
        "create drops status"
    );
    let raw_p = raw_get(&c, &format!("{POOLS}/p")).await.json();
    let ts = raw_p["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z'),
        "RFC 3339 whole seconds UTC: {ts}"
    );
    assert!(
        raw_p["metadata"].get("finalizers").is_none()
            && raw_p["metadata"].get("annotations").is_none(),
        "{raw_p}"
    );
}

/// E13: merge and JSON patch, the RV-precondition-on-patch idiom.
#[tokio::test]
async fn merge_and_json_patch_rules() {
    let (_env, c) = start_with_crds_no_retry().await;
    let cms: Api<ConfigMap> = in_default(&c);
    let a = cms
        .create(
            &PostParams::default(),
            &configmap("a", &[("x", "1"), ("y", "2")]),
        )
        .await
        .unwrap();

    // Merge: null deletes; arrays are replaced whole.
    let out = merge_patch(
        &cms,
        "a",
        json!({"metadata": {"labels": {"x": null}}, "data": {"n": "1"}}),
    )
    .await
    .unwrap();
    assert_eq!(out.labels().keys().collect::<Vec<_>>(), vec!["y"]);
    let pools: Api<IPAddressPool> = in_default(&c);
    let mut p = pool("p", "10.0.0.0/24");
    p.spec.addresses.push("10.0.1.0/24".into());
    pools.create(&PostParams::default(), &p).await.unwrap();
    let out = merge_patch(&pools, "p", json!({"spec": {"addresses": ["10.9.0.0/24"]}}))
        .await
        .unwrap();
    assert_eq!(out.spec.addresses, vec!["10.9.0.0/24"]);

    // Merge with a stale resourceVersion → 409; with the current one → 200.
    let stale = a.resource_version().unwrap();
    let s = api_status(
        merge_patch(
            &cms,
            "a",
            json!({"metadata": {"resourceVersion": stale}, "data": {"n": "2"}}),
        )
        .await,
    );
    assert!(s.is_conflict(), "{s:?}");
    let cur = cms.get("a").await.unwrap().resource_version().unwrap();
    merge_patch(
        &cms,
        "a",
        json!({"metadata": {"resourceVersion": cur}, "data": {"n": "2"}}),
    )
    .await
    .unwrap();

    // JSON patch: all six operations.
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/data/added", "value": "1"},
        {"op": "replace", "path": "/data/n", "value": "3"},
        {"op": "copy", "from": "/data/n", "path": "/data/copied"},
        {"op": "move", "from": "/data/added", "path": "/data/moved"},
        {"op": "remove", "path": "/data/k"},
        {"op": "test", "path": "/data/copied", "value": "3"}
    ]))
    .unwrap();
    let out = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    let data = out.data.unwrap();
    assert_eq!(data.get("n").map(String::as_str), Some("3"));
    assert_eq!(data.get("copied").map(String::as_str), Some("3"));
    assert_eq!(data.get("moved").map(String::as_str), Some("1"));
    assert!(!data.contains_key("added") && !data.contains_key("k"));

    // A failed test → 422; test null on an absent member passes.
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/n", "value": "nope"}]))
            .unwrap();
    let s = api_status(
        cms.patch("a", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await,
    );
    assert_eq!(s.code, 422, "{s:?}");
    let null_test: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["ferrolb.io/x"]}
    ]))
    .unwrap();
    let out = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(null_test))
        .await
        .unwrap();
    assert_eq!(out.finalizers(), ["ferrolb.io/x"]);

    // Malformed → 400; a patch never creates → 404; force on non-apply → 422.
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/a"),
        Some("application/json-patch+json"),
        b"{\"op\":\"add\"}".to_vec(),
    )
    .await;
    r.assert_status(400);
    assert!(
        api_status(merge_patch(&cms, "ghost", json!({"data": {"a": "b"}})).await).is_not_found()
    );
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/a?force=true"),
        Some("application/merge-patch+json"),
        body(json!({"data": {"f": "1"}})),
    )
    .await;
    r.assert_status(422);

    // Patched results are validated like a PUT.
    let s = api_status(
        merge_patch(
            &cms,
            "a",
            json!({"metadata": {"labels": {"ip": "fd00::1"}}}),
        )
        .await,
    );
    assert!(s.is_invalid());

    // E3: emptied metadata collections are omitted, never stored as {} / [] / null.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"y": null}, "finalizers": [], "annotations": {}}}),
        ),
    )
    .await
    .unwrap();
    let stored = raw_get(&c, &format!("{CM}/a")).await.json();
    for key in ["labels", "finalizers", "annotations"] {
        assert!(
            stored["metadata"].get(key).is_none(),
            "{key} omitted: {stored}"
        );
    }
}

/// E13/E19: kube-runtime's `finalizer()` helper end to end, starting from an
/// object without any finalizers.
#[tokio::test]
async fn finalizer_helper_adds_and_removes_its_finalizer() {
    let env = start_with_crds().await;
    let pools: Api<IPAddressPool> = env.default_api();
    pools
        .create(&PostParams::default(), &pool("p", "10.0.0.0/24"))
        .await
        .unwrap();
    const FIN: &str = "ferrolb.io/cleanup";
    let run = |o: IPAddressPool| {
        let pools = pools.clone();
        async move {
            let (tx, rx) = std::sync::mpsc::channel();
            finalizer(&pools, FIN, Arc::new(o), |ev| async move {
                let _ = tx.send(matches!(ev, FinalizerEvent::Cleanup(_)));
                Ok::<_, std::convert::Infallible>(Action::await_change())
            })
            .await
            .unwrap_or_else(|e| panic!("finalizer(): {e}"));
            rx.try_recv().ok()
        }
    };
    // First pass only adds the finalizer (JSON patch with test null).
    assert_eq!(run(pools.get("p").await.unwrap()).await, None);
    let with = pools.get("p").await.unwrap();
    assert_eq!(with.finalizers(), [FIN]);
    // Second pass reconciles (Apply).
    assert_eq!(run(with).await, Some(false));
    // Delete: the object stays, deleting.
    let deleting = pools
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object with a finalizer stays");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    // Cleanup pass removes the finalizer, and the object goes away.
    assert_eq!(run(pools.get("p").await.unwrap()).await, Some(true));
    assert!(pools.get_opt("p").await.unwrap().is_none());
}

/// E17: main-resource writes ignore status; `/status` writes ignore spec.
/// Services keep metadata changed through /status; CRs drop it.
#[tokio::test]
async fn status_subresource_split() {
    let env = start_with_crds().await;
    let svcs: Api<Service> = env.default_api();
    let created = create_lb_service(&svcs, "s", &[]).await;
    let port = created.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port;

    let st = svcs
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"via-status": "yes"}},
                "spec": {"ports": [{"port": 9999}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        st.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        port,
        "/status ignores spec"
    );
    assert_eq!(
        st.annotations().get("via-status").map(String::as_str),
        Some("yes"),
        "Service /status persists metadata"
    );
    let ip = |s: &Service| {
        s.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .map(|i| i[0].ip.clone())
    };
    assert_eq!(ip(&st), Some(Some("192.0.2.10".into())));

    // Main-resource PUT and patch keep the stored status.
    let mut put = svcs.get("s").await.unwrap();
    put.status = None;
    put.metadata.labels = Some([("main".to_owned(), "1".to_owned())].into());
    let out = svcs
        .replace("s", &PostParams::default(), &put)
        .await
        .unwrap();
    assert_eq!(
        ip(&out),
        Some(Some("192.0.2.10".into())),
        "main PUT keeps status"
    );
    assert_eq!(out.labels().get("main").map(String::as_str), Some("1"));
    let out = merge_patch(
        &svcs,
        "s",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.99"}]}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        ip(&out),
        Some(Some("192.0.2.10".into())),
        "main patch ignores status"
    );
    let full = svcs.get_status("s").await.unwrap();
    assert!(full.spec.is_some(), "GET /status returns the whole object");

    // CR: /status drops spec AND metadata changes.
    let pools: Api<IPAddressPool> = env.default_api();
    pools
        .create(&PostParams::default(), &pool("p", "10.0.0.0/24"))
        .await
        .unwrap();
    let out = pools
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"via-status": "yes"}, "labels": {"l": "1"}},
                "spec": {"addresses": ["10.9.9.0/24"]},
                "status": {"assignedIPv4": 3}
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        out.spec.addresses,
        vec!["10.0.0.0/24"],
        "CR /status ignores spec"
    );
    assert!(
        out.annotations().get("via-status").is_none(),
        "CR /status drops metadata"
    );
    assert!(out.labels().get("l").is_none());
    assert_eq!(out.status.as_ref().unwrap().assigned_ipv4, 3);
    let out = pools
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"assignedIPv4": 99}, "metadata": {"labels": {"m": "1"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        out.status.as_ref().unwrap().assigned_ipv4,
        3,
        "CR main patch ignores status"
    );
    assert_eq!(out.labels().get("m").map(String::as_str), Some("1"));
    let mut put = pools.get("p").await.unwrap();
    put.status = None;
    let out = pools
        .replace("p", &PostParams::default(), &put)
        .await
        .unwrap();
    assert_eq!(
        out.status.as_ref().unwrap().assigned_ipv4,
        3,
        "CR main PUT keeps status"
    );
    // replace_status on a CR with a spec change.
    let mut rs = pools.get_status("p").await.unwrap();
    rs.spec.addresses = vec!["10.7.0.0/24".into()];
    rs.status.as_mut().unwrap().assigned_ipv4 = 4;
    let out = pools
        .replace_status("p", &PostParams::default(), &rs)
        .await
        .unwrap();
    assert_eq!(out.spec.addresses, vec!["10.0.0.0/24"]);
    assert_eq!(out.status.unwrap().assigned_ipv4, 4);
}

/// E14: server-side apply through /status, as kube controllers do it.
#[tokio::test]
async fn server_side_apply_status_patches() {
    let (env, c) = start_with_crds_no_retry().await;
    let pools: Api<IPAddressPool> = in_default(&c);
    pools
        .create(&PostParams::default(), &pool("p", "10.0.0.0/24"))
        .await
        .unwrap();
    let pp = PatchParams::apply("ferrolb-controller").force();
    let status_doc = |n: i64| json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "status": {"assignedIPv4": n, "availableIPv4": 256 - n}});
    let out = pools
        .patch_status("p", &pp, &Patch::Apply(status_doc(2)))
        .await
        .unwrap();
    let st = out.status.unwrap();
    assert_eq!((st.assigned_ipv4, st.available_ipv4), (2, 254));
    assert_eq!(out.spec.addresses, vec!["10.0.0.0/24"], "spec untouched");
    let again = pools
        .patch_status("p", &pp, &Patch::Apply(status_doc(3)))
        .await
        .unwrap();
    assert_eq!(again.status.unwrap().assigned_ipv4, 3);
    let j = env.emu.journal();
    let w = j
        .entries
        .iter()
        .rfind(|e| e.subresource.as_deref() == Some("status"))
        .unwrap();
    assert_eq!(
        w.header("content-type"),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        w.query_param("fieldManager").as_deref(),
        Some("ferrolb-controller")
    );
    assert!(j.status_writes_not_by("ferrolb-controller").is_empty());

    // Service status by apply; ipMode defaults to VIP.
    let svcs: Api<Service> = in_default(&c);
    create_lb_service(&svcs, "s", &[]).await;
    let out = svcs
        .patch_status("s", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}]}}})))
        .await
        .unwrap();
    let ing = out.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(
        (ing[0].ip.as_deref(), ing[0].ip_mode.as_deref()),
        (Some("192.0.2.5"), Some("VIP"))
    );

    // Apply to /status of a missing CR → 404; to the main resource → 201 create.
    assert!(
        api_status(
            pools
                .patch_status("ghost", &pp, &Patch::Apply(status_doc(1)))
                .await
        )
        .is_not_found()
    );
    let r = raw(&c, "PATCH", &format!("{POOLS}/made?fieldManager=test&force=true"), Some("application/apply-patch+yaml"),
        b"apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: made\nspec:\n  addresses: [10.5.0.0/24]\n".to_vec()).await;
    r.assert_status(201);
    assert_eq!(
        pools.get("made").await.unwrap().metadata.generation,
        Some(1)
    );

    // A stale RV in the applied body → 409.
    let stale = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p", "resourceVersion": "1"}, "status": {"assignedIPv4": 9}});
    assert!(api_status(pools.patch_status("p", &pp, &Patch::Apply(stale)).await).is_conflict());
    // No fieldManager → 422; force=false accepted (kubectl sends it).
    let s = api_status(
        pools
            .patch_status("p", &PatchParams::default(), &Patch::Apply(status_doc(1)))
            .await,
    );
    assert_eq!(s.code, 422, "{s:?}");
    let r = raw_apply(
        &c,
        &format!("{POOLS}/p/status?fieldManager=ferrolb-controller&force=false"),
        status_doc(5),
    )
    .await;
    r.assert_status(200);
    // Wrong kind → 400; managedFields in the body → 400.
    let r = raw_apply(
        &c,
        &format!("{POOLS}/p?fieldManager=t&force=true"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}),
    )
    .await;
    r.assert_status(400);
    let r = raw_apply(&c, &format!("{POOLS}/p?fieldManager=t&force=true"), json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p", "managedFields": [{"manager": "x"}]}})).await;
    r.assert_status(400);
}

/// E16: writes that change nothing keep the RV and emit no event.
#[tokio::test]
async fn noop_writes_emit_no_event() {
    let env = start_with_crds().await;
    let pools: Api<IPAddressPool> = env.default_api();
    let created = pools
        .create(&PostParams::default(), &pool("p", "10.0.0.0/24"))
        .await
        .unwrap();
    let mut w = RawWatch::open(
        &env.client,
        &format!(
            "{POOLS}?watch=true&resourceVersion={}",
            created.resource_version().unwrap()
        ),
    )
    .await;
    let pp = PatchParams::apply("ferrolb-controller").force();
    let doc = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "status": {"assignedIPv4": 1}});
    let first = pools
        .patch_status("p", &pp, &Patch::Apply(doc.clone()))
        .await
        .unwrap();
    let second = pools
        .patch_status("p", &pp, &Patch::Apply(doc))
        .await
        .unwrap();
    assert_eq!(
        first.resource_version(),
        second.resource_version(),
        "identical apply keeps the RV"
    );
    let merged = pools
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"assignedIPv4": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.resource_version(),
        first.resource_version(),
        "identical merge patch keeps the RV"
    );
    let cur = pools.get("p").await.unwrap();
    let put = pools
        .replace("p", &PostParams::default(), &cur)
        .await
        .unwrap();
    assert_eq!(
        put.resource_version(),
        first.resource_version(),
        "identical PUT keeps the RV"
    );
    assert_eq!(put.metadata.generation, Some(1));
    let evs = w.drain_for(std::time::Duration::from_millis(500)).await;
    let kinds: Vec<_> = evs.iter().map(ev_kind_name).collect();
    assert_eq!(
        kinds,
        vec![("MODIFIED".to_owned(), "p".to_owned())],
        "exactly one MODIFIED"
    );
}

/// E18: generation for tracked kinds; none for untracked ones.
#[tokio::test]
async fn generation_tracking() {
    let env = start_with_crds().await;
    let pools: Api<IPAddressPool> = env.default_api();
    let p = pools
        .create(&PostParams::default(), &pool("p", "10.0.0.0/24"))
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    let p = merge_patch(&pools, "p", json!({"spec": {"autoAssign": false}}))
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2), "spec change");
    let p = pools
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"assignedIPv4": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2), "status change");
    let p = pools
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["ferrolb.io/hold"]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2), "metadata change");
    let d = pools
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(d.metadata.generation, Some(3), "first move to deleting");
    let d = pools
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(3),
        "a repeated delete does not bump again"
    );

    let svcs: Api<Service> = env.default_api();
    let s = create_lb_service(&svcs, "s", &[]).await;
    assert_eq!(s.metadata.generation, None);
    let s = merge_patch(&svcs, "s", json!({"spec": {"ports": [{"port": 81}]}}))
        .await
        .unwrap();
    assert_eq!(
        s.metadata.generation, None,
        "Services never show a generation"
    );
    let cms: Api<ConfigMap> = env.default_api();
    assert_eq!(create_configmap(&cms, "c").await.metadata.generation, None);
    let leases: Api<Lease> = env.default_api();
    let l = leases
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})),
        )
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, None);
}

/// E19: delete with and without finalizers, preconditions, dry run, collections.
#[tokio::test]
async fn delete_and_finalizers() {
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    let cms: Api<ConfigMap> = in_default(&c);
    let rv0 = list_rv(&cms).await;
    let mut w = RawWatch::open(&c, &format!("{CM}?watch=true&resourceVersion={rv0}")).await;

    // No finalizers: Status Success with details; DELETED event.
    let plain = create_configmap(&cms, "plain").await;
    let st = cms
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("a ConfigMap delete answers with a Status");
    assert!(st.is_success(), "{st:?}");
    let d = st.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.kind.as_str(), d.uid.as_str()),
        ("plain", "configmaps", plain.uid().unwrap().as_str())
    );
    assert_eq!(
        ev_kind_name(&w.next_event(DEADLINE).await.unwrap()),
        ("ADDED".into(), "plain".into())
    );
    assert_eq!(
        ev_kind_name(&w.next_event(DEADLINE).await.unwrap()),
        ("DELETED".into(), "plain".into())
    );

    // Pods answer a delete with the object.
    let pods: Api<Pod> = in_default(&c);
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))).await.unwrap();
    assert!(
        pods.delete("pod", &DeleteParams::default())
            .await
            .unwrap()
            .is_left(),
        "Pod delete answers with the object"
    );

    // Finalizers: deletionTimestamp, grace 0, MODIFIED; repeat is a no-op.
    let held: ConfigMap =
        obj(json!({"metadata": {"name": "held", "finalizers": ["ferrolb.io/hold"]}}));
    let held = cms.create(&PostParams::default(), &held).await.unwrap();
    let _ = w.next_event(DEADLINE).await.unwrap(); // ADDED
    // Preconditions: wrong uid or stale RV → 409.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_status(cms.delete("held", &dp).await).code, 409);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    assert_eq!(api_status(cms.delete("held", &dp).await).code, 409);
    // Dry run leaves it alone.
    cms.delete(
        "held",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "dryRun changes nothing"
    );

    let d = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object stays");
    assert!(d.metadata.deletion_timestamp.is_some());
    assert_eq!(d.metadata.deletion_grace_period_seconds, Some(0));
    assert!(
        rv_num(d.metadata.resource_version.as_deref())
            > rv_num(held.metadata.resource_version.as_deref())
    );
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev_kind_name(&ev), ("MODIFIED".into(), "held".into()));
    let again = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        again.metadata.deletion_timestamp, d.metadata.deletion_timestamp,
        "the first deletionTimestamp is kept"
    );
    assert_eq!(
        again.resource_version(),
        d.resource_version(),
        "a repeated delete writes nothing"
    );

    // No new finalizers once deleting.
    let s = api_status(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["ferrolb.io/hold", "ferrolb.io/more"]}}),
            ),
        )
        .await,
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        s.message
    );

    // Removing the last finalizer removes the object: DELETED event.
    let rm: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "ferrolb.io/hold"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    cms.patch("held", &PatchParams::default(), &Patch::Json::<()>(rm))
        .await
        .unwrap();
    let evs = w.drain_for(std::time::Duration::from_millis(300)).await;
    let kinds: Vec<_> = evs.iter().map(ev_kind_name).collect();
    assert_eq!(
        kinds,
        vec![("DELETED".to_owned(), "held".to_owned())],
        "repeat delete emitted nothing; finalizer removal deleted"
    );
    assert!(cms.get_opt("held").await.unwrap().is_none());
    let raw_last = &evs[0];
    assert!(
        raw_last.pointer("/object/metadata/finalizers").is_none(),
        "empty finalizers are omitted: {raw_last}"
    );

    // deletecollection applies the selector.
    for (n, app) in [("x1", "x"), ("x2", "x"), ("y1", "y")] {
        cms.create(&PostParams::default(), &configmap(n, &[("app", app)]))
            .await
            .unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = list_names(&cms).await;
    assert_eq!(left, vec!["y1"]);
}

/// E34: Service defaults and /status validation.
#[tokio::test]
async fn service_defaults_and_status_validation() {
    let env = start().await;
    let svcs: Api<Service> = env.default_api();
    let plain: Service =
        obj(json!({"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 8080}]}}));
    let s = svcs
        .create(&PostParams::default(), &plain)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(s.session_affinity.as_deref(), Some("None"));
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));
    assert_eq!(port.node_port, None);
    let ip: std::net::Ipv4Addr = s.cluster_ip.as_deref().unwrap().parse().unwrap();
    assert_eq!(
        u32::from(ip) >> 20,
        u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20,
        "inside 10.96.0.0/12: {ip}"
    );
    assert_eq!(s.cluster_ips.as_deref(), Some(&[ip.to_string()][..]));
    assert_eq!(s.ip_families.as_deref(), Some(&["IPv4".to_owned()][..]));
    assert_eq!(s.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(s.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(s.external_traffic_policy, None);

    let lb = create_lb_service(&svcs, "lb", &[]).await.spec.unwrap();
    let np = lb.ports.as_ref().unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&np), "{np}");
    assert_eq!(lb.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(lb.allocate_load_balancer_node_ports, Some(true));
    assert_eq!(lb.health_check_node_port, None);
    let local: Service = obj(
        json!({"metadata": {"name": "local"}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}),
    );
    let local = svcs
        .create(&PostParams::default(), &local)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert!(
        local
            .health_check_node_port
            .is_some_and(|p| (30000..=32767).contains(&p))
    );
    let headless: Service = obj(
        json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
    );
    let h = svcs
        .create(&PostParams::default(), &headless)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(h.cluster_ip.as_deref(), Some("None"));

    // Validation.
    let two: Service =
        obj(json!({"metadata": {"name": "two"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}}));
    assert!(
        api_status(svcs.create(&PostParams::default(), &two).await).is_invalid(),
        "several ports need names"
    );
    let cls: Service = obj(
        json!({"metadata": {"name": "cls"}, "spec": {"loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}}),
    );
    assert!(
        api_status(svcs.create(&PostParams::default(), &cls).await).is_invalid(),
        "loadBalancerClass only on LoadBalancer"
    );
    let s = api_status(
        svcs.patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"clusterIP": "10.96.0.200", "clusterIPs": ["10.96.0.200"]}}),
            ),
        )
        .await,
    );
    assert!(s.is_invalid(), "clusterIP is immutable: {s:?}");

    // Status: ipMode VIP default; invalid IP, IP as hostname, ipMode without ip → 422.
    let st = |v: Value| Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [v]}}}));
    let out = svcs
        .patch_status(
            "lb",
            &PatchParams::default(),
            &st(json!({"ip": "192.0.2.1"})),
        )
        .await
        .unwrap();
    let ing = out.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ing[0].ip_mode.as_deref(), Some("VIP"));
    for bad in [
        json!({"ip": "10.0.0.300"}),
        json!({"hostname": "192.0.2.1"}),
        json!({"hostname": "lb.example.com", "ipMode": "Proxy"}),
        json!({"ip": "192.0.2.1", "ipMode": "Bogus"}),
    ] {
        assert!(
            api_status(
                svcs.patch_status("lb", &PatchParams::default(), &st(bad.clone()))
                    .await
            )
            .is_invalid(),
            "{bad}"
        );
    }
    // Leaving LoadBalancer does not clear the status.
    let out = merge_patch(&svcs, "lb", json!({"spec": {
            "type": "ClusterIP", "ports": [{"port": 80}], "externalTrafficPolicy": null, "allocateLoadBalancerNodePorts": null}}))
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    assert!(
        out.status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .is_some_and(|i| !i.is_empty()),
        "status kept"
    );
}

/// E34: dual-stack families when a v6 CIDR exists.
#[tokio::test]
async fn service_dual_stack_defaults() {
    let env = start_with(EmulatorConfig {
        service_cidrs: vec!["10.96.0.0/12".into(), "fd00:10:96::/112".into()],
        ..EmulatorConfig::default()
    })
    .await;
    let svcs: Api<Service> = env.default_api();
    let ds: Service = obj(
        json!({"metadata": {"name": "ds"}, "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}}),
    );
    let s = svcs
        .create(&PostParams::default(), &ds)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        s.ip_families.as_deref(),
        Some(&["IPv4".to_owned(), "IPv6".to_owned()][..])
    );
    let ips = s.cluster_ips.unwrap();
    assert_eq!(ips.len(), 2);
    assert!(ips[1].parse::<std::net::Ipv6Addr>().is_ok(), "{ips:?}");
    let single = create_lb_service(&svcs, "single", &[]).await.spec.unwrap();
    assert_eq!(
        single.ip_families.as_deref(),
        Some(&["IPv4".to_owned()][..])
    );
}

/// E33: deleting a namespace deletes its contents first; creates into a
/// terminating namespace are forbidden.
#[tokio::test]
async fn namespace_deletion_removes_contents_first() {
    use k8s_openapi::api::core::v1::Namespace;
    let env = start().await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let n = nss.get(ns).await.unwrap();
        assert_eq!(
            n.status.and_then(|s| s.phase).as_deref(),
            Some("Active"),
            "{ns}"
        );
        assert_eq!(
            n.spec.and_then(|s| s.finalizers),
            Some(vec!["kubernetes".to_owned()]),
            "{ns}"
        );
    }
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "team"}})),
    )
    .await
    .unwrap();
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "team");
    create_lb_service(&svcs, "s", &[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "team");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "held", "finalizers": ["ferrolb.io/hold"]}})),
    )
    .await
    .unwrap();
    let rv = env.emu.resource_version();
    let mut svc_w = RawWatch::open(
        &env.client,
        &format!("/api/v1/services?watch=true&resourceVersion={rv}"),
    )
    .await;
    let mut ns_w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces?watch=true&resourceVersion={rv}"),
    )
    .await;
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    let ev = svc_w
        .until("Service DELETED", |e| e["type"] == "DELETED")
        .await;
    let svc_deleted_rv = ev_rv(&ev);
    let term = nss.get("team").await.unwrap();
    assert_eq!(
        term.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating"),
        "waits for the held ConfigMap"
    );
    let s = api_status(
        cms.create(&PostParams::default(), &configmap("new", &[]))
            .await,
    );
    assert_eq!(s.code, 403, "create into a terminating namespace: {s:?}");
    merge_patch(&cms, "held", json!({"metadata": {"finalizers": null}}))
        .await
        .unwrap();
    let ev = ns_w
        .until("namespace DELETED", |e| e["type"] == "DELETED")
        .await;
    assert_eq!(ev_kind_name(&ev).1, "team");
    assert!(
        ev_rv(&ev) > svc_deleted_rv,
        "contents go before the namespace"
    );
    wait_until_async("namespace gone", || {
        let nss = nss.clone();
        async move { nss.get_opt("team").await.unwrap().is_none() }
    })
    .await;
}

/// E8/E35: storage-only kinds and their traits.
#[tokio::test]
async fn storage_kinds_and_traits() {
    use k8s_openapi::api::core::v1::{Node, Secret};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    // Node: create keeps status; later status changes go through /status; no create-on-PUT.
    let nodes: Api<Node> = Api::all(c.clone());
    let n: Node = obj(
        json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
    );
    let n = nodes.create(&PostParams::default(), &n).await.unwrap();
    assert_eq!(
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| c[0].status.clone()),
        Some("True".into()),
        "Node create keeps status"
    );
    let flipped = nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        flipped
            .status
            .and_then(|s| s.conditions)
            .map(|c| c[0].status.clone()),
        Some("False".into())
    );
    let ghost: Node = obj(json!({"metadata": {"name": "ghost", "resourceVersion": "1"}}));
    assert!(
        api_status(nodes.replace("ghost", &PostParams::default(), &ghost).await).is_not_found(),
        "Node: no create-on-PUT"
    );

    // Secrets: stringData merges into data; data must be base64.
    let secrets: Api<Secret> = in_default(&c);
    let s: Secret =
        obj(json!({"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "bee"}}));
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let raw_s = raw_get(&c, "/api/v1/namespaces/default/secrets/s")
        .await
        .json();
    assert_eq!(raw_s["data"], json!({"a": "YQ==", "b": "YmVl"}), "{raw_s}");
    assert!(
        raw_s.get("stringData").is_none(),
        "stringData is not stored"
    );
    let r = raw(
        &c,
        "POST",
        "/api/v1/namespaces/default/secrets",
        None,
        body(json!({"metadata": {"name": "bad"}, "data": {"a": "not base64!"}})),
    )
    .await;
    assert!(
        r.status == 400 || r.status == 422,
        "invalid base64 rejected: {}",
        r.status
    );

    // EndpointSlices are stored as sent, and label selectors find them.
    let eps: Api<EndpointSlice> = in_default(&c);
    let e: EndpointSlice = obj(json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}, "nodeName": "n1"}],
        "ports": [{"port": 8080, "protocol": "TCP"}]
    }));
    eps.create(&PostParams::default(), &e).await.unwrap();
    let found = eps
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].endpoints[0].node_name.as_deref(), Some("n1"));
}

/// E15 (SHOULD): server-side apply field ownership between managers.
#[tokio::test]
async fn server_side_apply_field_ownership() {
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    let cms: Api<ConfigMap> = in_default(&c);
    let doc = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": data});
    let a = PatchParams::apply("manager-a");
    let out = cms
        .patch("owned", &a, &Patch::Apply(doc(json!({"x": "1", "y": "a"}))))
        .await
        .unwrap();
    let mf = out.metadata.managed_fields.clone().unwrap_or_default();
    let entry = mf
        .iter()
        .find(|m| m.manager.as_deref() == Some("manager-a"))
        .expect("manager-a recorded");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert!(entry.time.is_some() && entry.fields_v1.is_some());

    // Another manager changing an owned field without force → 409 naming the field.
    let b = PatchParams::apply("manager-b");
    let s = api_status(
        cms.patch("owned", &b, &Patch::Apply(doc(json!({"x": "2"}))))
            .await,
    );
    assert!(s.is_conflict(), "{s:?}");
    assert!(
        s.message.contains("Apply failed with 1 conflict"),
        "{}",
        s.message
    );
    assert!(s.message.contains("manager-a"), "{}", s.message);
    let causes = s.details.map(|d| d.causes).unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|c| c.reason == "FieldManagerConflict" && c.field == ".data.x"),
        "{causes:?}"
    );
    // An equal value is shared ownership, no conflict.
    cms.patch("owned", &b, &Patch::Apply(doc(json!({"y": "a"}))))
        .await
        .unwrap();
    // A re-applies without x: the field it solely owned goes away; y stays (co-owned).
    let out = cms
        .patch("owned", &a, &Patch::Apply(doc(json!({}))))
        .await
        .unwrap();
    let data = out.data.unwrap_or_default();
    assert!(!data.contains_key("x"), "{data:?}");
    assert_eq!(
        data.get("y").map(String::as_str),
        Some("a"),
        "still owned by manager-b"
    );
    // force takes ownership.
    let out = cms
        .patch(
            "owned",
            &b.clone().force(),
            &Patch::Apply(doc(json!({"y": "b"}))),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap().get("y").map(String::as_str), Some("b"));
}

/// E11/E13/E14/E34 odds and ends: ownerReferences, annotation size, patch
/// size, apply name mismatch, loadBalancerClass immutability, status ports.
#[tokio::test]
async fn write_validation_odds_and_ends() {
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    let cms: Api<ConfigMap> = in_default(&c);
    let owner = |controller_a: bool, controller_b: bool| {
        json!({"metadata": {"name": "owned", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Service", "name": "a", "uid": "11111111-1111-1111-1111-111111111111", "controller": controller_a},
            {"apiVersion": "v1", "kind": "Service", "name": "b", "uid": "22222222-2222-2222-2222-222222222222", "controller": controller_b}]}})
    };
    assert!(
        api_status(
            cms.create(&PostParams::default(), &obj(owner(true, true)))
                .await
        )
        .is_invalid(),
        "two controllers"
    );
    let no_uid = json!({"metadata": {"name": "owned", "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "a"}]}});
    assert!(
        api_status(cms.create(&PostParams::default(), &obj(no_uid)).await).is_invalid(),
        "ownerReference without uid"
    );
    cms.create(&PostParams::default(), &obj(owner(true, false)))
        .await
        .unwrap();
    let big = "x".repeat(256 * 1024 + 1);
    let s = api_status(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "big", "annotations": {"a": big}}})),
        )
        .await,
    );
    assert!(s.is_invalid(), "annotations over 256 KiB");

    // More than 10 000 JSON patch operations → 413.
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "owned"}))
        .collect();
    let r = raw(
        &c,
        "PATCH",
        &format!("{CM}/owned"),
        Some("application/json-patch+json"),
        body(Value::Array(ops)),
    )
    .await;
    r.assert_status(413);

    // Apply: a name that differs from the URL → 400.
    let r = raw_apply(
        &c,
        &format!("{CM}/owned?fieldManager=t"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}),
    )
    .await;
    r.assert_status(400);

    // Service: loadBalancerClass is immutable while the type stays LoadBalancer.
    let svcs: Api<Service> = in_default(&c);
    let lb: Service = obj(
        json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}}),
    );
    svcs.create(&PostParams::default(), &lb).await.unwrap();
    let s = api_status(
        merge_patch(
            &svcs,
            "lb",
            json!({"spec": {"loadBalancerClass": "other.io/lb"}}),
        )
        .await,
    );
    assert!(s.is_invalid(), "{s:?}");
    // Status ports need a valid protocol.
    let bad = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ports": [{"port": 80, "protocol": "ICMP"}]}]}}});
    assert!(
        api_status(
            svcs.patch_status("lb", &PatchParams::default(), &Patch::Merge(bad))
                .await
        )
        .is_invalid()
    );
}
