//! IPv6 and dual-stack: each node peers with the router over IPv4 and over IPv6, a
//! dual-stack Service gets an address of each family, and each address reaches the router
//! only over the session of its own family, with the node's own address of that family as
//! next hop. IPv6 next hops follow endpoint readiness like IPv4 ones (Local and Cluster),
//! and `aggregationLengthV6` announces the covering prefix instead of the /128.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::expect_hops;
use ferrolb_e2e::lab::{APP_NAMESPACE, DEADLINE};
use ferrolb_e2e::sys::{run, wait_until};
use ferrolb_e2e::{Lab, Port, RouterKind, TrafficPolicy};
use ferrolb_shared::constants::ADDRESS_POOL;

/// A dual-stack pool, an IPv6 pool aggregated to its /120, and the router's eBGP port as
/// two peers: its IPv4 and its IPv6 address.
const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: dual, namespace: ferrolb-system}
spec: {addresses: ["192.168.100.240/28", "fd00:100::/124"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: agg6, namespace: ferrolb-system}
spec: {addresses: ["fd00:200::/120"], autoAssign: false}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: upstream, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, holdTime: 3s, keepaliveTime: 1s, connectTime: 1s}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: upstream6, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: "fd00::1", holdTime: 3s, keepaliveTime: 1s, connectTime: 1s}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: dual, namespace: ferrolb-system}
spec: {ipAddressPools: [dual], communities: ["64512:100"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: agg6, namespace: ferrolb-system}
spec: {ipAddressPools: [agg6], aggregationLengthV6: 120}
"#;

on_both_routers!(ipv6_and_dual_stack);

async fn ipv6_and_dual_stack(router: RouterKind) {
    let Some(lab) = ferrolb_e2e::lab::for_test(router).await else {
        return;
    };
    let c = &lab.cluster;
    c.apply_yaml(CONFIG).await.unwrap();
    // Two sessions per node: one per family.
    lab.wait_sessions(2 * lab.cfg.nodes).await.unwrap();
    let v6_neighbors: BTreeSet<IpAddr> = lab
        .router
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.established && s.neighbor.is_ipv6())
        .map(|s| s.neighbor)
        .collect();
    let want: BTreeSet<IpAddr> = (1..=lab.cfg.nodes)
        .map(|i| IpAddr::V6(Port::Ebgp.node_ip6(i)))
        .collect();
    assert_eq!(v6_neighbors, want, "IPv6 sessions at the router");

    // Dual-stack, Local: an IPv4 and an IPv6 address, each announced by the nodes with a
    // ready endpoint, as the two EndpointSlices of a dual-stack Service say.
    c.create_service_families(
        APP_NAMESPACE,
        "dual",
        TrafficPolicy::Local,
        "RequireDualStack",
        &["IPv6", "IPv4"],
        &[],
    )
    .await
    .unwrap();
    set_endpoints(&lab, "dual", &[(1, true), (2, true)]).await;
    let ips = service_ips(&lab, "dual", 2).await;
    let ip6 = ips.iter().find(|ip| ip.is_ipv6()).copied();
    let ip4 = ips.iter().find(|ip| ip.is_ipv4()).copied();
    let (Some(ip6), Some(ip4)) = (ip6, ip4) else {
        panic!("a dual-stack Service got {ips:?}")
    };
    assert!(
        ip6.to_string().starts_with("fd00:100::"),
        "{ip6} not from the pool"
    );
    let (v6, v4) = (Lab::host_prefix(ip6), Lab::host_prefix(ip4));
    let t = expect_hops(&lab, &v6, &[1, 2]).await;
    eprintln!(
        "{}: dual-stack Service's /128 at the router after {t:?}",
        router.name()
    );
    expect_hops(&lab, &v4, &[1, 2]).await;

    // Each family over its own sessions only: the IPv6 path's next hop is the node's IPv6
    // address (a peer of the other family is `addressFamilyMismatch`), the IPv4 one's its
    // IPv4 address.
    for p in lab.router.paths(&v6).await.unwrap() {
        let (_, n) = p.node().unwrap();
        assert_eq!(p.next_hop, IpAddr::V6(Port::Ebgp.node_ip6(n)), "{p:?}");
        assert_eq!(p.as_path, [64512], "{p:?}");
        assert_eq!(p.communities, ["64512:100"], "{p:?}");
    }
    for p in lab.router.paths(&v4).await.unwrap() {
        let (_, n) = p.node().unwrap();
        assert_eq!(p.next_hop, IpAddr::V4(Port::Ebgp.node_ip(n)), "{p:?}");
    }
    if router == RouterKind::Bird {
        // BIRD installs the multipath route in the router namespace's kernel table.
        wait_kernel_nexthops(&lab, &v6, &[1, 2]).await;
    }

    // An endpoint not ready on node 2: its next hop goes, in both families.
    set_endpoints(&lab, "dual", &[(1, true), (2, false)]).await;
    let t = expect_hops(&lab, &v6, &[1]).await;
    eprintln!(
        "{}: endpoint not ready -> IPv6 next hop withdrawn in {t:?}",
        router.name()
    );
    expect_hops(&lab, &v4, &[1]).await;
    if router == RouterKind::Bird {
        wait_kernel_nexthops(&lab, &v6, &[1]).await;
    }

    // IPv6 only, Cluster, from the pool aggregated to /120: every node announces the /120
    // (one ready endpoint is enough); the /128 itself never reaches the router.
    c.create_service_families(
        APP_NAMESPACE,
        "agg",
        TrafficPolicy::Cluster,
        "SingleStack",
        &["IPv6"],
        &[(ADDRESS_POOL, "agg6")],
    )
    .await
    .unwrap();
    c.set_family_endpoints(APP_NAMESPACE, "agg", true, &[(1, true)])
        .await
        .unwrap();
    let agg = service_ips(&lab, "agg", 1).await[0];
    assert!(agg.to_string().starts_with("fd00:200::"), "{agg}");
    expect_hops(&lab, "fd00:200::/120", &[1, 2, 3]).await;
    assert!(
        lab.router
            .paths(&Lab::host_prefix(agg))
            .await
            .unwrap()
            .is_empty(),
        "the /128 leaked"
    );
}

/// Writes both EndpointSlices (IPv4 and IPv6) of a dual-stack Service.
async fn set_endpoints(lab: &Lab, name: &str, endpoints: &[(usize, bool)]) {
    for v6 in [false, true] {
        lab.cluster
            .set_family_endpoints(APP_NAMESPACE, name, v6, endpoints)
            .await
            .unwrap();
    }
}

/// Waits until the Service has `n` ingress IPs; returns them in status order.
async fn service_ips(lab: &Lab, name: &str, n: usize) -> Vec<IpAddr> {
    wait_until(
        &format!("{n} ingress IPs for Service {name}"),
        DEADLINE,
        Duration::from_millis(20),
        || async {
            let ips = lab.cluster.service_ips(APP_NAMESPACE, name).await?;
            Ok((ips.len() == n).then_some(ips))
        },
    )
    .await
    .unwrap()
}

/// Waits until the router namespace's kernel route to `prefix` goes through exactly the
/// IPv6 addresses of `nodes`.
async fn wait_kernel_nexthops(lab: &Lab, prefix: &str, nodes: &[usize]) {
    let ns = lab.topo.router();
    let want: BTreeSet<String> = nodes
        .iter()
        .map(|&n| Port::Ebgp.node_ip6(n).to_string())
        .collect();
    let r = wait_until(
        &format!("kernel route {prefix} via {want:?}"),
        DEADLINE,
        Duration::from_millis(20),
        || async {
            let out = run(&["ip", "-n", &ns, "-6", "route", "show", prefix]).await?;
            let words: Vec<&str> = out.split_whitespace().collect();
            let got: BTreeSet<String> = words
                .windows(2)
                .filter(|w| w[0] == "via")
                .map(|w| w[1].to_owned())
                .collect();
            Ok((got == want).then_some(()))
        },
    )
    .await;
    if let Err(e) = r {
        let out = run(&["ip", "-n", &ns, "-6", "route"])
            .await
            .unwrap_or_default();
        panic!("{e}; kernel IPv6 routes:\n{out}");
    }
}
