//! Which nodes the router learns a Service from, and how that follows endpoint and node
//! health: externalTrafficPolicy Local vs Cluster, endpoints going not ready, node
//! NotReady, the exclude-from-external-load-balancers label, and the attributes the
//! router receives.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{base_lab, endpoints, expect_hops, service};
use ferrolb_e2e::{Port, RouterKind, TrafficPolicy};
use ferrolb_shared::constants::EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS;

on_both_routers!(health_follows_endpoints_and_nodes);

async fn health_follows_endpoints_and_nodes(router: RouterKind) {
    let Some(lab) = base_lab(router).await else {
        return;
    };
    let c = &lab.cluster;

    // Local: only nodes with a ready endpoint. Cluster: every node, while any endpoint is.
    let local = service(
        &lab,
        "web-local",
        TrafficPolicy::Local,
        &[(1, true), (2, true)],
    )
    .await;
    let cluster = service(&lab, "web-cluster", TrafficPolicy::Cluster, &[(1, true)]).await;
    assert_ne!(local, cluster, "two Services got the same IP");
    expect_hops(&lab, &local, &[1, 2]).await;
    expect_hops(&lab, &cluster, &[1, 2, 3]).await;

    // What the router received: our AS, both communities, the node's own address as next hop.
    let paths = lab.router.paths(&local).await.unwrap();
    for p in &paths {
        assert_eq!(p.as_path, [64512], "{p:?}");
        assert_eq!(p.communities, ["64512:100"], "{p:?}");
        assert_eq!(p.large_communities, ["64512:1:2"], "{p:?}");
        assert_eq!(p.node().map(|n| n.0), Some(Port::Ebgp), "{p:?}");
    }

    // One endpoint not ready: Local loses that node; the last one: the route is gone.
    endpoints(&lab, "web-local", &[(1, true), (2, false)]).await;
    let t = expect_hops(&lab, &local, &[1]).await;
    eprintln!(
        "{}: endpoint not ready -> next hop withdrawn in {t:?}",
        router.name()
    );
    endpoints(&lab, "web-cluster", &[(1, false)]).await;
    expect_hops(&lab, &cluster, &[]).await;
    endpoints(&lab, "web-cluster", &[(1, true)]).await;
    expect_hops(&lab, &cluster, &[1, 2, 3]).await;
    endpoints(&lab, "web-local", &[(1, true), (2, true)]).await;
    expect_hops(&lab, &local, &[1, 2]).await;

    // A NotReady node announces nothing, whatever the policy.
    c.set_node_ready("node-1", false).await.unwrap();
    expect_hops(&lab, &local, &[2]).await;
    expect_hops(&lab, &cluster, &[2, 3]).await;
    c.set_node_ready("node-1", true).await.unwrap();
    expect_hops(&lab, &local, &[1, 2]).await;
    expect_hops(&lab, &cluster, &[1, 2, 3]).await;

    // The exclude label takes a node out; removing it brings the node back.
    c.set_node_label("node-3", EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, Some(""))
        .await
        .unwrap();
    expect_hops(&lab, &cluster, &[1, 2]).await;
    c.set_node_label("node-2", EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, Some("true"))
        .await
        .unwrap();
    expect_hops(&lab, &local, &[1]).await;
    expect_hops(&lab, &cluster, &[1]).await;
    for n in ["node-2", "node-3"] {
        c.set_node_label(n, EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS, None)
            .await
            .unwrap();
    }
    expect_hops(&lab, &local, &[1, 2]).await;
    expect_hops(&lab, &cluster, &[1, 2, 3]).await;

    // Deleting the Service withdraws it everywhere.
    c.delete_service(ferrolb_e2e::lab::APP_NAMESPACE, "web-local")
        .await
        .unwrap();
    expect_hops(&lab, &local, &[]).await;
}
