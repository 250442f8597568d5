//! Conformance: lists, pagination and selectors (spec E2, E20–E24).

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::{reflector, watcher};
use kube_emulator::RequestMatcher;
use serde_json::{Value, json};

/// E20 and E2: list shape, ordering, empty and missing namespaces, query forms.
#[tokio::test]
async fn list_basics() {
    let env = start().await;
    let c = &env.client;
    let r = raw_get(c, "/api/v1/namespaces/kube-public/configmaps").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["kind"], "ConfigMapList");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["items"], json!([]), "an empty list has items: []");
    assert!(
        v["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "RV always set: {v}"
    );
    let v = raw_get(c, "/api/v1/namespaces/does-not-exist/configmaps").await;
    assert_eq!(
        v.status, 200,
        "listing a missing namespace is an empty list"
    );
    assert_eq!(v.json()["items"], json!([]));

    env.emu
        .apply_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: kube-public}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z, namespace: default}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-public}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n",
        )
        .unwrap();
    let all = raw_get(c, "/api/v1/configmaps").await.json();
    let keys: Vec<(String, String)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"].as_str().unwrap().to_owned(),
                i["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by namespace, then name");
    assert_eq!(keys.len(), 4);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] == "ConfigMap" && i["apiVersion"] == "v1"),
        "items carry kind/apiVersion"
    );

    // kube-core builds `path?&k=v`; a lone `?` and unknown parameters are fine.
    for q in ["?&limit=1", "?", "?pretty=true&timeout=32s", ""] {
        let r = raw_get(c, &format!("/api/v1/namespaces/default/configmaps{q}")).await;
        assert_eq!(r.status, 200, "{q}");
        assert_eq!(r.json()["kind"], "ConfigMapList", "{q}");
    }
    let cms: Api<ConfigMap> = Api::all(env.client.clone());
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
}

/// E22: 1 200 Services in 3 pages with one RV; a change between pages is not
/// visible in later pages, and a reflector paging through churn converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_1200_services_three_pages_one_rv() {
    let env = start().await;
    // One JSON array: the YAML fixture loader caps a stream at 1 024 documents.
    let docs: Vec<Value> = (0..1200)
        .map(|i| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i:04}"), "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}))
        .collect();
    env.emu
        .apply_yaml(&serde_json::to_string(&docs).unwrap())
        .unwrap();
    let api: Api<Service> = env.default_api();

    let p1 = api.list(&ListParams::default().limit(500)).await.unwrap();
    let rv = p1.metadata.resource_version.clone().unwrap();
    // Change an object on a later page, delete one, add one: later pages
    // still come from the first page's snapshot.
    merge_patch(
        &api,
        "svc-1100",
        json!({"metadata": {"labels": {"changed": "yes"}}}),
    )
    .await
    .unwrap();
    api.delete("svc-0700", &DeleteParams::default())
        .await
        .unwrap();
    let next_page = async |prev: &kube::api::ObjectList<Service>| {
        let token = prev.metadata.continue_.as_deref().unwrap();
        api.list(&ListParams::default().limit(500).continue_token(token))
            .await
            .unwrap()
    };
    let p2 = next_page(&p1).await;
    let p3 = next_page(&p2).await;
    assert_eq!(
        (p1.items.len(), p2.items.len(), p3.items.len()),
        (500, 500, 200)
    );
    for p in [&p2, &p3] {
        assert_eq!(
            p.metadata.resource_version.as_deref(),
            Some(rv.as_str()),
            "every page carries the first page's RV"
        );
    }
    assert!(
        p2.metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        p3.metadata.continue_.as_deref().is_none_or(str::is_empty),
        "last page has no continue"
    );
    let names: Vec<String> = p1
        .items
        .iter()
        .chain(&p2.items)
        .chain(&p3.items)
        .map(ResourceExt::name_any)
        .collect();
    let expected: Vec<String> = (0..1200).map(|i| format!("svc-{i:04}")).collect();
    assert_eq!(names, expected, "no gaps, no duplicates, snapshot content");
    let changed = p3
        .items
        .iter()
        .find(|s| s.name_any() == "svc-1100")
        .unwrap();
    assert!(
        changed.labels().get("changed").is_none(),
        "page 3 served from the snapshot"
    );

    // The watcher pages at 500 by default; slow its pages down and churn meanwhile.
    env.emu.faults().delay(
        RequestMatcher::any().verb("list").resource("services"),
        Duration::from_millis(150),
        Duration::ZERO,
    );
    env.emu.clear_journal();
    let (reader, writer) = reflector::store::<Service>();
    let rec = Recorder::spawn(reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()),
    ));
    wait_until("first page requested", || {
        env.emu.journal().list_count("services") >= 1
    })
    .await;
    create_lb_service(&api, "zzz-new", &[]).await;
    api.delete("svc-0001", &DeleteParams::default())
        .await
        .unwrap();
    merge_patch(
        &api,
        "svc-1150",
        json!({"metadata": {"labels": {"late": "1"}}}),
    )
    .await
    .unwrap();
    rec.wait_for("initial pages done", |s| *s == Seen::InitDone)
        .await;
    env.emu.faults().clear();
    assert_eq!(
        env.emu.journal().list_count("services"),
        3,
        "the watcher paged three times"
    );
    let truth: BTreeSet<String> = list_names(&api).await;
    wait_until("reflector converges to the exact set", || {
        reader
            .state()
            .iter()
            .map(|s| s.name_any())
            .collect::<BTreeSet<_>>()
            == truth
            && reader
                .get(&reflector::ObjectRef::new("svc-1150").within("default"))
                .is_some_and(|s| s.labels().contains_key("late"))
    })
    .await;
    assert_eq!(
        env.emu.journal().list_count("services"),
        4,
        "no relist (3 pages + the test's own list)"
    );
    assert_eq!(rec.count(|s| *s == Seen::Init), 1);
}

/// E21: list resourceVersion semantics and ListOptions validation.
#[tokio::test]
async fn list_resource_version_semantics() {
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let now = env.emu.resource_version();
    let ok = raw_get(
        &c,
        &format!("{base}?resourceVersion={now}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(rv_num(ok.json()["metadata"]["resourceVersion"].as_str()) >= now);
    assert_eq!(
        raw_get(&c, &format!("{base}?resourceVersion=0"))
            .await
            .status,
        200
    );

    for q in [
        "resourceVersionMatch=NotOlderThan",
        "resourceVersion=0&resourceVersionMatch=Exact",
        "resourceVersion=1&resourceVersionMatch=Bogus",
        "resourceVersion=1&resourceVersionMatch=NotOlderThan&continue=abc",
    ] {
        let r = raw_get(&c, &format!("{base}?{q}")).await;
        assert_eq!(r.status, 422, "{q}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["reason"], "Invalid", "{q}");
    }

    // A future RV waits about 3 s, then 504 Timeout (raw: kube would retry 504).
    let t0 = Instant::now();
    let r = raw_get(
        &c,
        &format!(
            "{base}?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            now + 1000
        ),
    )
    .await;
    let took = t0.elapsed();
    r.assert_status(504);
    let v = r.json();
    assert_eq!(v["reason"], "Timeout");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Too large resource version"),
        "{v}"
    );
    assert_eq!(
        v["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
        "{v}"
    );
    assert_eq!(v["details"]["retryAfterSeconds"], 1, "{v}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "waited {took:?}"
    );
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// E23: label selectors, checked against kube's own `Selector::matches`.
#[tokio::test]
async fn label_selectors_match_kube_semantics() {
    let env = start().await;
    let fixtures: Vec<(&str, BTreeMap<String, String>)> = vec![
        ("a", labels(&[("app", "x"), ("tier", "web"), ("n", "3")])),
        ("b", labels(&[("app", "y"), ("tier", "db"), ("n", "10")])),
        ("c", labels(&[("app", "x")])),
        ("d", labels(&[])),
    ];
    let api: Api<ConfigMap> = env.default_api();
    for (n, l) in &fixtures {
        let mut cm = configmap(n, &[]);
        cm.metadata.labels = if l.is_empty() { None } else { Some(l.clone()) };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let set = |xs: &[&str]| {
        xs.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<String>>()
    };
    let s = |xs: &[&str]| {
        xs.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<String>>()
    };
    let exprs: Vec<Selector> = vec![
        Expression::Equal("app".into(), "x".into()).into(),
        Expression::NotEqual("app".into(), "x".into()).into(),
        Expression::In("tier".into(), s(&["web", "db"])).into(),
        Expression::NotIn("tier".into(), s(&["web"])).into(),
        Expression::Exists("tier".into()).into(),
        Expression::DoesNotExist("tier".into()).into(),
        [
            Expression::Equal("app".into(), "x".into()),
            Expression::Exists("tier".into()),
        ]
        .into_iter()
        .collect(),
        Selector::default(),
    ];
    for sel in exprs {
        let want: BTreeSet<String> = fixtures
            .iter()
            .filter(|(_, l)| sel.matches(l))
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let got: BTreeSet<String> = api
            .list(&ListParams::default().labels_from(&sel))
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert_eq!(got, want, "selector {sel}");
    }
    // Forms kube does not print: ==, whitespace, integer comparisons.
    for (q, want) in [
        ("app==x", set(&["a", "c"])),
        (" app = x , tier ", set(&["a"])),
        ("n>5", set(&["b"])),
        ("n<5", set(&["a"])),
        ("tier in ( web , db )", set(&["a", "b"])),
    ] {
        let got: BTreeSet<String> = api
            .list(&ListParams::default().labels(q))
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert_eq!(got, want, "selector {q:?}");
    }
    let c = no_retry_client(&env.emu).await;
    for bad in ["app in x", "=x", "app=(", "n>five"] {
        let q: String = url_encode(bad);
        let r = raw_get(
            &c,
            &format!("/api/v1/namespaces/default/configmaps?labelSelector={q}"),
        )
        .await;
        assert_eq!(
            r.status,
            400,
            "{bad:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["reason"], "BadRequest");
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// E24: field selectors on list.
#[tokio::test]
async fn field_selectors_filter_lists() {
    let env = start().await;
    env.emu
        .apply_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: default}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-public}\n",
        )
        .unwrap();
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let keys = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .iter()
            .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any()))
            .collect()
    };
    let lp = |f: &str| ListParams::default().fields(f);
    assert_eq!(
        keys(all.list(&lp("metadata.name=a")).await.unwrap()),
        vec!["default/a", "kube-public/a"]
    );
    assert_eq!(
        keys(all.list(&lp("metadata.name==b")).await.unwrap()),
        vec!["default/b"]
    );
    assert_eq!(
        keys(all.list(&lp("metadata.name!=a")).await.unwrap()),
        vec!["default/b"]
    );
    assert_eq!(
        keys(
            all.list(&lp("metadata.name=a,metadata.namespace=kube-public"))
                .await
                .unwrap()
        ),
        vec!["kube-public/a"]
    );
    assert_eq!(
        keys(all.list(&lp("metadata.namespace!=default")).await.unwrap()),
        vec!["kube-public/a"]
    );
    let c = no_retry_client(&env.emu).await;
    let r = raw_get(&c, "/api/v1/configmaps?fieldSelector=spec.bogus%3Dx").await;
    r.assert_status(400);
    let v: Value = r.json();
    assert_eq!(v["reason"], "BadRequest");
}

/// E32: metadata-only lists and watches work for kube's `list_metadata` and
/// `watcher` on `Api<PartialObjectMeta<K>>`; when the server answers with metadata-only objects
/// they carry no data.
#[tokio::test]
async fn metadata_only_list_and_watch() {
    use k8s_openapi::api::core::v1::Secret;
    let env = start().await;
    let secrets: Api<Secret> = env.default_api();
    secrets
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "s1"}, "data": {"k": "c2VjcmV0"}})),
        )
        .await
        .unwrap();
    let list = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.iter().map(|m| m.name_any()).collect::<Vec<_>>(),
        vec!["s1"]
    );
    let meta: Api<kube::core::PartialObjectMeta<Secret>> = env.default_api();
    let rec = Recorder::spawn(watcher(meta, watcher::Config::default()));
    rec.wait_for("metadata watcher init", |s| *s == Seen::InitDone)
        .await;
    secrets
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "s2"}, "data": {"k": "c2VjcmV0"}})),
        )
        .await
        .unwrap();
    rec.wait_applied("metadata watcher sees s2", "s2").await;
    let r = raw_with(
        &env.client,
        "GET",
        "/api/v1/namespaces/default/secrets",
        &[(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        )],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    if v["kind"] == "PartialObjectMetadataList" {
        assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i.get("data").is_none()),
            "{v}"
        );
    }
}
