//! What every end-to-end test shares: the base configuration and a few shorthands.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_e2e::lab::{APP_NAMESPACE, DEADLINE};
use ferrolb_e2e::{Lab, Port, TrafficPolicy};

/// One eBGP peer (the router's eBGP port) for every node, a pool, and an advertisement of
/// the pool to that peer with a standard and a large community. A 3 s hold time so dead
/// speakers are noticed quickly.
pub const BASE: &str = r#"
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: main, namespace: ferrolb-system}
spec: {addresses: ["192.168.100.240/28"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: upstream, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, holdTime: 3s, keepaliveTime: 1s, connectTime: 1s}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: main, namespace: ferrolb-system}
spec: {ipAddressPools: [main], communities: ["64512:100", "large:64512:1:2"]}
"#;

/// Generates one test per router for an `async fn(RouterKind)` scenario.
#[macro_export]
macro_rules! on_both_routers {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bird() {
                super::$scenario(ferrolb_e2e::RouterKind::Bird).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn frr() {
                super::$scenario(ferrolb_e2e::RouterKind::Frr).await
            }
        }
    };
}

/// Creates a Service with endpoints on `(node, ready)` and waits for its IP; returns the
/// router prefix (`IP/32`).
pub async fn service(
    lab: &Lab,
    name: &str,
    policy: TrafficPolicy,
    endpoints: &[(usize, bool)],
) -> String {
    service_with(lab, name, policy, endpoints, &[], &[]).await
}

/// [`service`] with labels and annotations.
pub async fn service_with(
    lab: &Lab,
    name: &str,
    policy: TrafficPolicy,
    endpoints: &[(usize, bool)],
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> String {
    let c = &lab.cluster;
    c.create_service(APP_NAMESPACE, name, policy, labels, annotations)
        .await
        .unwrap();
    c.set_endpoints(APP_NAMESPACE, name, endpoints)
        .await
        .unwrap();
    Lab::host_prefix(ip(lab, name).await)
}

/// The Service's IP, once allocated.
pub async fn ip(lab: &Lab, name: &str) -> IpAddr {
    lab.cluster
        .wait_service_ip(APP_NAMESPACE, name, DEADLINE)
        .await
        .unwrap()
}

/// Sets a Service's endpoints.
pub async fn endpoints(lab: &Lab, name: &str, endpoints: &[(usize, bool)]) {
    lab.cluster
        .set_endpoints(APP_NAMESPACE, name, endpoints)
        .await
        .unwrap();
}

/// Waits for the router's eBGP next hops of `prefix` to be exactly `nodes`.
pub async fn expect_hops(lab: &Lab, prefix: &str, nodes: &[usize]) -> Duration {
    match lab.wait_next_hops(prefix, Port::Ebgp, nodes).await {
        Ok(d) => {
            eprintln!("{prefix} next hops {nodes:?} after {d:?}");
            d
        }
        Err(e) => panic!("{e}\n{}", lab.logs(10)),
    }
}

/// [`expect_hops`] on another port.
pub async fn expect_hops_on(lab: &Lab, port: Port, prefix: &str, nodes: &[usize]) -> Duration {
    match lab.wait_next_hops(prefix, port, nodes).await {
        Ok(d) => d,
        Err(e) => panic!("{e}\n{}", lab.logs(10)),
    }
}

/// The lab with [`BASE`] applied and every node's session up.
pub async fn base_lab(router: ferrolb_e2e::RouterKind) -> Option<Lab> {
    let lab = ferrolb_e2e::lab::for_test(router).await?;
    lab.cluster.apply_yaml(BASE).await.unwrap();
    lab.wait_sessions(lab.cfg.nodes).await.unwrap();
    Some(lab)
}
