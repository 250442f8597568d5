//! Conformance: the real kubectl against the emulator. Every scenario runs
//! with both clients: the machine's `kubectl` on PATH (a dispatcher that
//! picks a versioned kubectl from the server's /version) and the pinned
//! kubectl 1.35 (which sends sendInitialEvents on `delete --wait`).

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ferrolb_shared::crd::IPAddressPool;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube_emulator::EmulatorConfig;
use serde_json::{Value, json};

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_services_all_namespaces() {
    for (label, bin) in kubectl_clients() {
        let env = start().await;
        let k = Kubectl::new(&env.emu, label, &bin);
        let out = k.ok(&["get", "services", "-A"]).await;
        assert!(out.contains("No resources found"), "{label}: {out}");
        for ns in ["default", "kube-system"] {
            let api: Api<Service> = Api::namespaced(env.client.clone(), ns);
            api.create(
                &PostParams::default(),
                &lb_service(&format!("svc-{ns}"), &[]),
            )
            .await
            .unwrap();
        }
        let out = k.ok(&["get", "services", "-A"]).await;
        assert!(
            out.contains("NAMESPACE")
                && out.contains("svc-default")
                && out.contains("svc-kube-system"),
            "{label}: {out}"
        );
        let json_out = k.run(&["get", "services", "-A", "-o", "json"]).await;
        assert!(json_out.ok, "{label}: {}", json_out.stderr);
        let v: Value = serde_json::from_str(&json_out.stdout)
            .unwrap_or_else(|e| panic!("{label}: {e}: {}", json_out.stdout));
        let mut names: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, vec!["svc-default", "svc-kube-system"], "{label}");
        let out = k.ok(&["get", "svc", "svc-default", "-o", "name"]).await;
        assert_eq!(out.trim(), "service/svc-default", "{label}");
        let j = env.emu.journal();
        assert!(
            j.entries.iter().all(|e| e.status < 500),
            "{label}: no server errors"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side_service() {
    for (label, bin) in kubectl_clients() {
        let env = start().await;
        let k = Kubectl::new(&env.emu, label, &bin);
        let f = k.manifest("svc.yaml", SVC);
        let out = k.ok(&["apply", "--server-side", "-f", &f]).await;
        assert!(
            out.contains("service/web serverside-applied"),
            "{label}: {out}"
        );
        let api: Api<Service> = env.default_api();
        let svc = api.get("web").await.unwrap();
        assert_eq!(
            svc.spec.as_ref().unwrap().type_.as_deref(),
            Some("LoadBalancer")
        );
        assert!(
            svc.metadata
                .managed_fields
                .unwrap_or_default()
                .iter()
                .any(|m| m.manager.as_deref() == Some("kubectl")),
            "{label}: managed by kubectl"
        );
        let j = env.emu.journal();
        let apply = j
            .with_verb("patch")
            .into_iter()
            .find(|e| e.resource == "services")
            .cloned()
            .unwrap();
        assert_eq!(
            apply.header("content-type"),
            Some("application/apply-patch+yaml"),
            "{label}"
        );
        assert_eq!(
            apply.query_param("fieldManager").as_deref(),
            Some("kubectl"),
            "{label}"
        );

        // Re-apply with a change: same manager, updated in place.
        let f = k.manifest("svc.yaml", &SVC.replace("port: 80", "port: 8080"));
        let out = k.ok(&["apply", "--server-side", "-f", &f]).await;
        assert!(
            out.contains("service/web serverside-applied"),
            "{label}: {out}"
        );
        assert_eq!(
            api.get("web").await.unwrap().spec.unwrap().ports.unwrap()[0].port,
            8080,
            "{label}"
        );
        let out = k.ok(&["get", "service", "web"]).await;
        assert!(out.contains("web"), "{label}: {out}");
        let out = k.ok(&["delete", "service", "web"]).await;
        assert!(out.contains("\"web\" deleted"), "{label}: {out}");
        assert!(api.get_opt("web").await.unwrap().is_none(), "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_generated_crds_and_ipaddresspool() {
    for (label, bin) in kubectl_clients() {
        let env = start().await;
        let k = Kubectl::new(&env.emu, label, &bin);
        let out = k
            .ok(&[
                "apply",
                "--server-side",
                "-f",
                &crds_dir().display().to_string(),
            ])
            .await;
        for crd in [
            "ipaddresspools.ferrolb.io",
            "bgppeers.ferrolb.io",
            "bgpadvertisements.ferrolb.io",
        ] {
            assert!(
                out.contains(&format!(
                    "customresourcedefinition.apiextensions.k8s.io/{crd} serverside-applied"
                )),
                "{label}: {out}"
            );
        }
        let ns = k.manifest(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ferrolb-system\n",
        );
        k.ok(&["apply", "--server-side", "-f", &ns]).await;
        let pool = examples_dir()
            .join("ipaddresspool.yaml")
            .display()
            .to_string();
        let out = k.ok(&["apply", "--server-side", "-f", &pool]).await;
        assert!(
            out.contains("ipaddresspool.ferrolb.io/demo serverside-applied"),
            "{label}: {out}"
        );

        let out = k.ok(&["get", "ipaddresspools", "-A"]).await;
        assert!(
            out.contains("ferrolb-system") && out.contains("demo"),
            "{label}: {out}"
        );
        let out = k
            .ok(&["get", "ipp", "-n", "ferrolb-system", "-o", "name"])
            .await;
        assert_eq!(out.trim(), "ipaddresspool.ferrolb.io/demo", "{label}");
        let out = k.ok(&["api-resources", "--api-group=ferrolb.io"]).await;
        assert!(
            out.contains("ipaddresspools") && out.contains("bgppeers"),
            "{label}: {out}"
        );

        let pools: Api<IPAddressPool> = Api::namespaced(env.client.clone(), "ferrolb-system");
        let demo = pools.get("demo").await.unwrap();
        assert_eq!(
            demo.spec.addresses,
            vec!["192.168.100.240/28", "fd00:100::10-fd00:100::1f"],
            "{label}"
        );
        // Applying the same files again is idempotent.
        let out = k.ok(&["apply", "--server-side", "-f", &pool]).await;
        assert!(out.contains("serverside-applied"), "{label}: {out}");
        assert_eq!(
            pools.get("demo").await.unwrap().resource_version(),
            demo.resource_version(),
            "{label}: no-op re-apply"
        );
        let out = k.ok(&["delete", "-f", &pool]).await;
        assert!(out.contains("deleted"), "{label}: {out}");
        assert!(pools.get_opt("demo").await.unwrap().is_none(), "{label}");
    }
}

/// `kubectl delete` waits (GET, then list + watch on metadata.name) until a
/// finalizer is removed. kubectl 1.35 first tries a streaming list
/// (sendInitialEvents), which the emulator rejects with 422 or supports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_waits_for_finalizers() {
    for (label, bin) in kubectl_clients() {
        let env = start_with_crds().await;
        let k = Arc::new(Kubectl::new(&env.emu, label, &bin));
        let pools: Api<IPAddressPool> = env.default_api();
        let mut p = pool("held", "10.0.0.0/24");
        p.metadata.finalizers = Some(vec!["ferrolb.io/hold".into()]);
        pools.create(&PostParams::default(), &p).await.unwrap();

        let kd = k.clone();
        let del = tokio::spawn(async move { kd.run(&["delete", "ipaddresspool", "held"]).await });
        wait_until_async("object marked deleting", || {
            let pools = pools.clone();
            async move {
                pools
                    .get_opt("held")
                    .await
                    .unwrap()
                    .is_some_and(|o| o.metadata.deletion_timestamp.is_some())
            }
        })
        .await;
        wait_until(
            &format!("{label} waits with a field-selected watch"),
            || {
                env.emu.journal().with_verb("watch").iter().any(|e| {
                    e.resource == "ipaddresspools"
                        && e.status == 200
                        && e.query_param("fieldSelector")
                            .is_some_and(|f| f.contains("metadata.name=held"))
                })
            },
        )
        .await;
        assert!(
            !del.is_finished(),
            "{label}: delete returned while the finalizer is still present"
        );
        merge_patch(&pools, "held", json!({"metadata": {"finalizers": null}}))
            .await
            .unwrap();
        let out = within("kubectl delete returns", del).await.unwrap();
        assert!(out.ok, "{label}: {} {}", out.stdout, out.stderr);
        assert!(out.stdout.contains("deleted"), "{label}: {}", out.stdout);
        assert!(pools.get_opt("held").await.unwrap().is_none());

        let j = env.emu.journal();
        let streaming: Vec<_> = j
            .with_verb("watch")
            .into_iter()
            .filter(|e| e.query_param("sendInitialEvents").as_deref() == Some("true"))
            .collect();
        for e in &streaming {
            assert!(
                e.status == 422 || e.status == 200,
                "{label}: sendInitialEvents answered {}",
                e.status
            );
        }
        if label == "kubectl-1.35" {
            assert!(
                !streaming.is_empty(),
                "kubectl 1.35 tries a streaming list first"
            );
        }
        // GET first; then a LIST unless a streaming list served the initial state.
        assert!(
            j.with_verb("get")
                .iter()
                .any(|e| e.resource == "ipaddresspools" && e.name.as_deref() == Some("held")),
            "{label}: kubectl GETs the object"
        );
        if !streaming.iter().any(|e| e.status == 200) {
            assert!(
                j.with_verb("list")
                    .iter()
                    .any(|e| e.resource == "ipaddresspools"
                        && e.query_param("fieldSelector")
                            .is_some_and(|f| f.contains("metadata.name=held"))),
                "{label}: kubectl falls back to list + watch"
            );
        }
        assert!(
            j.entries.iter().all(|e| e.status < 500),
            "{label}: no server errors"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_version_and_discovery() {
    for (label, bin) in kubectl_clients() {
        let env = start_with(EmulatorConfig::default()).await;
        install_crds(&env.emu);
        let k = Kubectl::new(&env.emu, label, &bin);
        let ver = k.run(&["version", "-o", "json"]).await;
        assert!(ver.ok, "{label}: {}", ver.stderr);
        let out = ver.stdout;
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{label}: {e}: {out}"));
        assert_eq!(
            v["serverVersion"]["gitVersion"],
            EmulatorConfig::default().git_version,
            "{label}: {out}"
        );
        let out = k.ok(&["api-resources"]).await;
        for needle in [
            "services",
            "svc",
            "ipaddresspools",
            "ipp",
            "leases",
            "customresourcedefinitions",
        ] {
            assert!(
                out.contains(needle),
                "{label}: api-resources lacks {needle}: {out}"
            );
        }
        let out = k.ok(&["get", "ns"]).await;
        assert!(
            out.contains("kube-system") && out.contains("default"),
            "{label}: {out}"
        );
    }
}
