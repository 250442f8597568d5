//! Conformance: CustomResourceDefinitions and discovery (spec E6, E38), using
//! the chart's generated CRDs and example resources.

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

fn yaml_docs(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Server-side applies every generated CRD through kube, as an installer would.
async fn apply_crds(client: &kube::Client) -> Vec<String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for f in files(&crds_dir()) {
        for doc in yaml_docs(&f) {
            let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
            crds.patch(
                &name,
                &PatchParams::apply("conformance").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            names.push(name);
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "bgpadvertisements.ferrolb.io",
            "bgppeers.ferrolb.io",
            "ipaddresspools.ferrolb.io",
            "speakerstatuses.ferrolb.io",
        ]
    );
    names
}

/// E38: apply the generated CRDs, wait for Established, then CRUD through the typed API.
#[tokio::test]
async fn generated_crds_apply_establish_and_serve_crud() {
    let env = start().await;
    let c = env.client.clone();
    assert_eq!(
        raw_get(&c, "/apis/ferrolb.io/v1alpha1/ipaddresspools")
            .await
            .status,
        404,
        "not served before registration"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    for name in apply_crds(&c).await {
        let crd = within(
            "CRD established",
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap()
        .unwrap();
        let st = crd.status.unwrap();
        let conds = st.conditions.unwrap_or_default();
        for t in ["NamesAccepted", "Established"] {
            assert!(
                conds.iter().any(|c| c.type_ == t && c.status == "True"),
                "{name}: {t} True"
            );
        }
        assert_eq!(
            st.accepted_names.map(|n| n.kind),
            Some(crd.spec.names.kind.clone())
        );
        assert_eq!(st.stored_versions, Some(vec!["v1alpha1".to_owned()]));
    }

    // CRUD through Api<IPAddressPool>.
    let pools: Api<IPAddressPool> = in_default(&c);
    let created = pools
        .create(&PostParams::default(), &pool("p", "192.0.2.0/28"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        pools.get("p").await.unwrap().spec.addresses,
        vec!["192.0.2.0/28"]
    );
    assert_eq!(
        pools
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let p = merge_patch(&pools, "p", json!({"spec": {"autoAssign": false}}))
        .await
        .unwrap();
    assert!(!p.spec.auto_assign);
    let p = pools.patch_status("p", &PatchParams::apply("ferrolb-controller").force(), &Patch::Apply(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "status": {"availableIPv4": 16}}))).await.unwrap();
    assert_eq!(p.status.unwrap().available_ipv4, 16);
    assert!(
        pools
            .delete("p", &DeleteParams::default())
            .await
            .unwrap()
            .is_right(),
        "a CR without finalizers is gone at once"
    );
    assert!(pools.get_opt("p").await.unwrap().is_none());

    // The chart's examples load through the typed APIs.
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "ferrolb-system"}})),
    )
    .await
    .unwrap();
    for f in files(&examples_dir()) {
        for doc in yaml_docs(&f) {
            let kind = doc["kind"].as_str().unwrap().to_owned();
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            match kind.as_str() {
                "IPAddressPool" => drop(
                    Api::<IPAddressPool>::namespaced(c.clone(), &ns)
                        .create(&PostParams::default(), &obj(doc))
                        .await
                        .unwrap(),
                ),
                "BGPPeer" => drop(
                    Api::<BGPPeer>::namespaced(c.clone(), &ns)
                        .create(&PostParams::default(), &obj(doc))
                        .await
                        .unwrap(),
                ),
                "BGPAdvertisement" => drop(
                    Api::<BGPAdvertisement>::namespaced(c.clone(), &ns)
                        .create(&PostParams::default(), &obj(doc))
                        .await
                        .unwrap(),
                ),
                k => panic!("unexpected example kind {k}"),
            }
        }
    }
    let all: Api<IPAddressPool> = Api::all(c.clone());
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        vec!["demo"]
    );
}

/// E6: discovery documents for kube's `Discovery` and kubectl.
#[tokio::test]
async fn discovery_resolves_builtins_and_crds() {
    let env = start().await;
    apply_crds(&env.client).await;
    let d = within("discovery", Discovery::new(env.client.clone()).run())
        .await
        .unwrap();
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk(
            "ferrolb.io",
            "v1alpha1",
            "IPAddressPool",
        ))
        .expect("ferrolb.io/v1alpha1 resolves");
    assert_eq!(ar.plural, "ipaddresspools");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "ipaddresspools/status" || r.plural == "status"),
        "status subresource listed"
    );
    for (g, v, k) in [
        ("", "v1", "Service"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("events.k8s.io", "v1", "Event"),
        ("discovery.k8s.io", "v1", "EndpointSlice"),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ] {
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
            "{g}/{v} {k}"
        );
    }
    let list = raw_get(&env.client, "/apis/ferrolb.io/v1alpha1")
        .await
        .json();
    assert_eq!(list["kind"], "APIResourceList");
    let res = list["resources"].as_array().unwrap();
    let pools = res
        .iter()
        .find(|r| r["name"] == "ipaddresspools")
        .expect("ipaddresspools listed");
    assert_eq!(pools["kind"], "IPAddressPool");
    assert_eq!(pools["namespaced"], true);
    assert!(
        pools["shortNames"]
            .as_array()
            .unwrap()
            .contains(&json!("ipp")),
        "{pools}"
    );
    assert!(
        res.iter().any(|r| r["name"] == "ipaddresspools/status"),
        "{list}"
    );
    let api = raw_get(&env.client, "/api").await.json();
    assert_eq!(api["versions"], json!(["v1"]));
    let v1 = raw_get(&env.client, "/api/v1").await.json();
    let svc = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "services")
        .unwrap()
        .clone();
    assert!(
        svc["shortNames"]
            .as_array()
            .unwrap()
            .contains(&json!("svc"))
    );
    let ver = env.client.apiserver_version().await.unwrap();
    assert_eq!(ver.major, "1");
    assert!(!ver.minor.is_empty() && !ver.platform.is_empty(), "{ver:?}");
    assert!(ver.git_version.starts_with("v1."), "{}", ver.git_version);
    let o2 = raw_get(&env.client, "/openapi/v2").await;
    assert_eq!(
        (o2.status, o2.body.len()),
        (200, 0),
        "E7: empty OpenAPI v2 placeholder"
    );
    assert_eq!(raw_get(&env.client, "/openapi/v3").await.status, 404);
}

/// E38: CRD name rules, structural schemas, and deletion of a CRD's objects.
#[tokio::test]
async fn crd_validation_and_deletion() {
    let env = start().await;
    let c = no_retry_client(&env.emu).await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = |name: &str, schema: Value| -> CustomResourceDefinition {
        obj(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": "example.io", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema}}]}
        }))
    };
    let structural = json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    assert!(
        api_status(
            crds.create(
                &PostParams::default(),
                &crd("wrong.example.io", structural.clone())
            )
            .await
        )
        .is_invalid(),
        "name must be <plural>.<group>"
    );
    let untyped = json!({"type": "object", "properties": {"spec": {"properties": {"x": {}}}}});
    assert!(
        api_status(
            crds.create(&PostParams::default(), &crd("widgets.example.io", untyped))
                .await
        )
        .is_invalid(),
        "non-structural schema (SHOULD)"
    );
    crds.create(
        &PostParams::default(),
        &crd("widgets.example.io", structural),
    )
    .await
    .unwrap();
    within(
        "established",
        await_condition(
            crds.clone(),
            "widgets.example.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap();

    let base = "/apis/example.io/v1/namespaces/default/widgets";
    for n in ["w1", "w2"] {
        let r = raw(&c, "POST", base, None, serde_json::to_vec(&json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": n}, "spec": {"a": 1}})).unwrap()).await;
        r.assert_status(201);
    }
    let mut w = RawWatch::open(&c, &format!("{base}?watch=true")).await;
    let mut added = 0;
    while added < 2 {
        if w.next_event(DEADLINE).await.unwrap()["type"] == "ADDED" {
            added += 1;
        }
    }
    let groups = |v: Value| -> Vec<String> {
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        groups(raw_get(&c, "/apis").await.json()).contains(&"example.io".to_owned()),
        "discovery lists the new group at once"
    );
    crds.delete("widgets.example.io", &DeleteParams::default())
        .await
        .unwrap();
    let mut deleted = Vec::new();
    while let Some(ev) = w.next_event(DEADLINE).await {
        if ev["type"] == "DELETED" {
            deleted.push(ev_kind_name(&ev).1);
        }
    }
    deleted.sort();
    assert_eq!(
        deleted,
        vec!["w1", "w2"],
        "DELETED for every object, then the watch ends"
    );
    assert_eq!(raw_get(&c, base).await.status, 404, "no longer served");
    assert!(
        !groups(raw_get(&c, "/apis").await.json()).contains(&"example.io".to_owned()),
        "and gone from discovery"
    );
}
