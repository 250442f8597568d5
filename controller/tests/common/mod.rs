//! Shared fixtures for the controller's emulator tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_controller::app::{Running, Settings, start};
use ferrolb_controller::leader::LeaderConfig;
use ferrolb_controller::reconciler::ReconcilerConfig;
use ferrolb_controller::translate::status_ips;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

/// Generous: the 2-core CI machine may be loaded.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An emulator with ferrolb's CRDs installed.
pub async fn emulator() -> Emulator {
    emulator_with(EmulatorConfig::default()).await
}

/// [`emulator`] with a custom configuration (e.g. dual-stack Service CIDRs).
pub async fn emulator_with(cfg: EmulatorConfig) -> Emulator {
    let emu = Emulator::start(cfg).await.unwrap();
    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
    emu.apply_yaml_dir(crds).unwrap();
    emu.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: ferrolb-system}\n")
        .unwrap();
    emu
}

/// Settings for a test replica: port 0, short leases so takeovers are quick.
pub fn settings(identity: &str, leader: bool) -> Settings {
    Settings {
        reconciler: ReconcilerConfig {
            identity: identity.to_owned(),
            pool_status_interval: Duration::from_millis(100),
            ..ReconcilerConfig::default()
        },
        leader: leader.then(|| LeaderConfig {
            lease_name: "ferrolb-controller".into(),
            namespace: "ferrolb-system".into(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(250),
        }),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
    }
}

/// Starts a replica against the emulator.
pub async fn replica(emu: &Emulator, identity: &str, leader: bool) -> Running {
    start(emu.client().await.unwrap(), settings(identity, leader))
        .await
        .unwrap()
}

/// Applies an `IPAddressPool` in `ferrolb-system`.
pub fn pool(emu: &Emulator, name: &str, addresses: &[&str], extra: serde_json::Value) {
    let mut spec = json!({"addresses": addresses});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            spec[k] = v.clone();
        }
    }
    let doc = json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "ferrolb-system"},
        "spec": spec,
    });
    emu.apply_yaml(&doc.to_string()).unwrap();
}

/// A LoadBalancer Service on port 80 with optional annotations.
pub fn lb_service(name: &str, annotations: &[(&str, &str)]) -> Service {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}}
    }))
    .unwrap()
}

/// Creates a Service in `default`.
pub async fn create(emu: &Emulator, svc: &Service) {
    create_in(emu, "default", svc).await;
}

/// Creates a Service in `ns`.
pub async fn create_in(emu: &Emulator, ns: &str, svc: &Service) {
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), ns);
    api.create(&PostParams::default(), svc).await.unwrap();
}

/// Events about the object named `name` in `ns` as (type, reason, note).
pub async fn events_for(emu: &Emulator, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(emu.client().await.unwrap(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an event with `reason` about `name` in `ns`; returns its note.
pub async fn wait_event(emu: &Emulator, ns: &str, name: &str, reason: &str) -> String {
    let r = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some((_, _, note)) = events_for(emu, ns, name)
                .await
                .into_iter()
                .find(|(_, r, _)| r == reason)
            {
                return note;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("no {reason} event for {ns}/{name}"))
}

/// Waits until `f` holds for the Service's status IPs; returns them.
pub async fn wait_ips(emu: &Emulator, name: &str, f: impl FnMut(&[IpAddr]) -> bool) -> Vec<IpAddr> {
    wait_ips_in(emu, "default", name, f).await
}

/// [`wait_ips`] for a Service in `ns`.
pub async fn wait_ips_in(
    emu: &Emulator,
    ns: &str,
    name: &str,
    mut f: impl FnMut(&[IpAddr]) -> bool,
) -> Vec<IpAddr> {
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), ns);
    let mut last = Vec::new();
    let r = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(s) = api.get_opt(name).await.unwrap() {
                last = status_ips(&s);
                if f(&last) {
                    return last.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("service {name}: condition not met, last status {last:?}"))
}

/// Waits until `f` holds; panics with `what` otherwise.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> F,
) {
    tokio::time::timeout(DEADLINE, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Status IPs of every Service in `default`, by name.
pub async fn all_ips(emu: &Emulator) -> BTreeMap<String, Vec<IpAddr>> {
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), status_ips(s)))
        .collect()
}

/// Panics if two Services show the same address.
pub fn assert_no_duplicates(ips: &BTreeMap<String, Vec<IpAddr>>) {
    let mut seen: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (name, list) in ips {
        for ip in list {
            if let Some(other) = seen.insert(*ip, name) {
                panic!("{ip} shown by both {other} and {name}");
            }
        }
    }
}
