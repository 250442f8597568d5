//! Who announces what to whom, as the configuration says: BGPAdvertisement node, service
//! and peer selectors, BGPPeer node selectors, LOCAL_PREF and communities over iBGP,
//! aggregation length, and a pool and advertisement added while everything runs.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{base_lab, expect_hops, expect_hops_on, service, service_with};
use ferrolb_e2e::lab::RACK_LABEL;
use ferrolb_e2e::{Port, RouterKind, TrafficPolicy};
use ferrolb_shared::constants::ADDRESS_POOL;

on_both_routers!(configuration_decides_who_announces_what);

async fn configuration_decides_who_announces_what(router: RouterKind) {
    let Some(lab) = base_lab(router).await else {
        return;
    };
    let c = &lab.cluster;
    let all = [(1, true), (2, true), (3, true)];
    let web = service_with(
        &lab,
        "web",
        TrafficPolicy::Cluster,
        &all,
        &[("announce", "yes")],
        &[],
    )
    .await;
    let db = service(&lab, "db", TrafficPolicy::Cluster, &all).await;
    expect_hops(&lab, &web, &[1, 2, 3]).await;
    expect_hops(&lab, &db, &[1, 2, 3]).await;

    // Advertisement node selector: only rack a (nodes 1 and 2) announces.
    c.apply_yaml(&format!(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {{name: main, namespace: ferrolb-system}}
spec:
  ipAddressPools: [main]
  communities: ["64512:100"]
  nodeSelectors: [{{matchLabels: {{{RACK_LABEL}: a}}}}]
"#
    ))
    .await
    .unwrap();
    expect_hops(&lab, &web, &[1, 2]).await;
    expect_hops(&lab, &db, &[1, 2]).await;

    // Service selector: only Services labelled announce=yes.
    c.apply_yaml(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: main, namespace: ferrolb-system}
spec:
  ipAddressPools: [main]
  communities: ["64512:100"]
  serviceSelectors: [{matchLabels: {announce: "yes"}}]
"#,
    )
    .await
    .unwrap();
    expect_hops(&lab, &web, &[1, 2, 3]).await;
    expect_hops(&lab, &db, &[]).await;

    // A second, iBGP peer for rack b only; the main advertisement goes to `upstream`
    // only, a second one to `internal` only, with LOCAL_PREF and its own community.
    c.apply_yaml(&format!(
        r#"{}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {{name: main, namespace: ferrolb-system}}
spec:
  ipAddressPools: [main]
  communities: ["64512:100"]
  peers: [upstream]
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {{name: internal, namespace: ferrolb-system}}
spec:
  ipAddressPools: [main]
  peers: [internal]
  localPref: 250
  communities: ["no-export", "large:64500:7:8"]
"#,
        internal_peer("b")
    ))
    .await
    .unwrap();
    expect_hops(&lab, &db, &[1, 2, 3]).await;
    expect_hops_on(&lab, Port::Ibgp, &db, &[3]).await;
    let paths = lab.router.paths(&db).await.unwrap();
    for p in &paths {
        match p.node() {
            Some((Port::Ibgp, _)) => {
                assert_eq!(p.local_pref, Some(250), "{p:?}");
                assert!(p.as_path.is_empty(), "iBGP path with an AS path: {p:?}");
                assert_eq!(p.communities, ["65535:65281"], "{p:?}");
                assert_eq!(p.large_communities, ["64500:7:8"], "{p:?}");
            }
            Some((Port::Ebgp, _)) => {
                assert_eq!(p.communities, ["64512:100"], "{p:?}");
                assert!(p.large_communities.is_empty(), "{p:?}");
            }
            other => panic!("unexpected path {p:?} from {other:?}"),
        }
    }

    // The peer's node selector, changed live: now rack a only.
    c.apply_yaml(&internal_peer("a")).await.unwrap();
    expect_hops_on(&lab, Port::Ibgp, &db, &[1, 2]).await;
    expect_hops(&lab, &db, &[1, 2, 3]).await;

    // A new pool, live: a Service asking for it gets an address from it, but no
    // advertisement covers the pool yet, so nothing is announced...
    c.apply_yaml(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: extra, namespace: ferrolb-system}
spec: {addresses: ["198.18.10.0/24"], autoAssign: false}
"#,
    )
    .await
    .unwrap();
    let extra = service_with(
        &lab,
        "extra",
        TrafficPolicy::Cluster,
        &all,
        &[],
        &[(ADDRESS_POOL, "extra")],
    )
    .await;
    assert!(extra.starts_with("198.18.10."), "{extra}");
    lab.assert_router_quiet(std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert!(lab.router.paths(&extra).await.unwrap().is_empty());

    // ...until an advertisement for it arrives, aggregated to the /24.
    c.apply_yaml(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: extra, namespace: ferrolb-system}
spec: {ipAddressPools: [extra], peers: [upstream], aggregationLength: 24}
"#,
    )
    .await
    .unwrap();
    expect_hops(&lab, "198.18.10.0/24", &[1, 2, 3]).await;
    assert!(
        lab.router.paths(&extra).await.unwrap().is_empty(),
        "the /32 leaked"
    );
}

/// The router's iBGP port as the peer `internal`, for the nodes of one rack.
fn internal_peer(rack: &str) -> String {
    format!(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: internal, namespace: ferrolb-system}}
spec:
  myASN: 64500
  peerASN: 64500
  peerAddress: 10.0.1.1
  holdTime: 3s
  keepaliveTime: 1s
  connectTime: 1s
  nodeSelectors: [{{matchLabels: {{{RACK_LABEL}: {rack}}}}}]
"#
    )
}
