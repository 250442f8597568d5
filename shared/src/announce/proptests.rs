//! Random worlds: the decision and the desired routes do not depend on the order of any
//! input (pools, advertisements, peers, Services, a Service's addresses), and the routes
//! obey the rule's basic promises.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::tests::{World, ad, communities, endpoints, labels, peer, pool, sel, service};
use super::*;
use crate::constants::EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS;
use crate::validate::ParsedSelector;

const RANGES: &[&str] = &[
    "192.0.2.0/28",
    "192.0.2.8/29",
    "192.0.2.16-192.0.2.40",
    "198.51.100.0/24",
    "2001:db8::/124",
    "2001:db8::10-2001:db8::20",
];
const ADDRESSES: &[&str] = &[
    "192.0.2.1",
    "192.0.2.9",
    "192.0.2.20",
    "198.51.100.7",
    "203.0.113.1",
    "2001:db8::1",
    "2001:db8::12",
    "2001:db8:1::1",
];
const COMMUNITIES: &[&str] = &[
    "65000:1",
    "65000:2",
    "no-export",
    "large:1:2:3",
    "large:4:5:6",
];
const NODES: &[&str] = &["n1", "n2", ""];

fn subset(items: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(items, 0..=items.len())
}

fn maybe_sel(
    key: &'static str,
    values: &'static [&'static str],
) -> impl Strategy<Value = Vec<ParsedSelector>> {
    prop::option::weighted(0.25, prop::sample::select(values))
        .prop_map(move |v| v.map(|v| vec![sel(&[(key, v)])]).unwrap_or_default())
}

fn pool_strategy(i: usize) -> impl Strategy<Value = PoolView> {
    (
        prop::sample::subsequence(RANGES, 1..3),
        prop::sample::select(&["gold", "silver"][..]),
    )
        .prop_map(move |(ranges, tier)| pool(&format!("p{i}"), &[("tier", tier)], &ranges))
}

fn ad_strategy(i: usize) -> impl Strategy<Value = AdvertisementView> {
    (
        prop::option::weighted(0.5, subset(&["p0", "p1", "p2", "px"]))
            .prop_map(Option::unwrap_or_default),
        maybe_sel("tier", &["gold", "silver"]),
        maybe_sel("app", &["x", "y"]),
        maybe_sel("zone", &["a", "b"]),
        prop::option::weighted(0.5, subset(&["r0", "r1", "r2"]))
            .prop_map(Option::unwrap_or_default),
        prop::sample::select(&[32u8, 28, 24][..]),
        prop::sample::select(&[128u8, 124, 120][..]),
        prop::option::weighted(0.7, prop::sample::select(&[50u32, 100, 300][..])),
        subset(COMMUNITIES),
    )
        .prop_map(
            move |(pools, pool_sel, svc_sel, node_sel, peers, agg, agg6, pref, comms)| {
                let mut a = ad(&format!("a{i}"));
                let p = &mut a.advertisement;
                p.ip_address_pools = pools.iter().map(|s| (*s).to_owned()).collect();
                p.ip_address_pool_selectors = pool_sel;
                p.service_selectors = svc_sel;
                p.node_selectors = node_sel;
                p.peers = peers.iter().map(|s| (*s).to_owned()).collect();
                p.aggregation_length = agg;
                p.aggregation_length_v6 = agg6;
                p.local_pref = pref;
                p.communities = communities(&comms);
                a
            },
        )
}

fn peer_strategy(i: usize) -> impl Strategy<Value = PeerView> {
    (
        any::<bool>(),
        prop::bool::weighted(0.3),
        maybe_sel("zone", &["a", "b"]),
    )
        .prop_map(move |(ibgp, v6, node_sel)| {
            let address = if v6 { "fd00::1" } else { "10.0.0.1" };
            let mut p = peer(
                &format!("r{i}"),
                64512,
                if ibgp { 64512 } else { 64513 },
                address,
            );
            p.peer.node_selectors = node_sel;
            p
        })
}

fn service_strategy(i: usize) -> impl Strategy<Value = ServiceView> {
    (
        subset(ADDRESSES),
        any::<bool>(),
        prop::sample::select(&["x", "y"][..]),
        subset(NODES),
        subset(NODES),
    )
        .prop_map(move |(ips, local, app, ready, serving)| {
            let mut s = service(&format!("s{i}"), &ips);
            s.labels = labels(&[("app", app)]);
            if local {
                s.traffic_policy = TrafficPolicy::Local;
            }
            s.endpoints = endpoints(&ready, &serving);
            s
        })
}

fn world_strategy() -> impl Strategy<Value = World> {
    (
        prop::sample::select(&["a", "b"][..]),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.95),
        prop::bool::weighted(0.05),
        (1usize..=3).prop_flat_map(|n| (0..n).map(pool_strategy).collect::<Vec<_>>()),
        (1usize..=5).prop_flat_map(|n| (0..n).map(ad_strategy).collect::<Vec<_>>()),
        (1usize..=3).prop_flat_map(|n| (0..n).map(peer_strategy).collect::<Vec<_>>()),
        (1usize..=5).prop_flat_map(|n| (0..n).map(service_strategy).collect::<Vec<_>>()),
    )
        .prop_map(
            |(zone, excluded, ready, net_down, pools, ads, peers, services)| {
                let mut w = World::new();
                w.node.labels = labels(&[("kubernetes.io/hostname", "n1"), ("zone", zone)]);
                if excluded {
                    w.node.labels.insert(
                        EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS.to_owned(),
                        String::new(),
                    );
                }
                w.node.ready = ready;
                w.node.network_unavailable = net_down;
                w.pools = pools;
                w.ads = ads;
                w.peers = peers;
                w.services = services;
                w
            },
        )
}

/// A world and the same world with every list shuffled.
fn world_and_shuffled() -> impl Strategy<Value = (World, World)> {
    world_strategy().prop_flat_map(|w| {
        let services = w
            .services
            .iter()
            .map(|s| {
                let s = s.clone();
                Just(s.ips.clone())
                    .prop_shuffle()
                    .prop_map(move |ips| ServiceView { ips, ..s.clone() })
            })
            .collect::<Vec<_>>();
        let node = w.node.clone();
        (
            Just(w.pools.clone()).prop_shuffle(),
            Just(w.ads.clone()).prop_shuffle(),
            Just(w.peers.clone()).prop_shuffle(),
            services.prop_shuffle(),
        )
            .prop_map(move |(pools, ads, peers, services)| World {
                node: node.clone(),
                pools,
                ads,
                peers,
                services,
            })
            .prop_map(move |shuffled| (w.clone(), shuffled))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn result_is_independent_of_input_order((world, shuffled) in world_and_shuffled()) {
        let d = world.decide();
        prop_assert_eq!(&d, &shuffled.decide());
        // Deciding one Service at a time gives the same answers.
        let decider = Decider::new(&Snapshot {
            node: &shuffled.node,
            pools: &shuffled.pools,
            advertisements: &shuffled.ads,
            peers: &shuffled.peers,
            services: &[],
        });
        for s in &shuffled.services {
            prop_assert_eq!(&decider.decide_service(s), &d.services[&s.key]);
        }
        prop_assert_eq!(desired_routes(&d), desired_routes(&shuffled.decide()));
    }

    #[test]
    fn routes_keep_the_rules_basic_promises(world in world_strategy()) {
        let d = world.decide();
        let routes = desired_routes(&d);
        // Only sessions get routes, and every session is listed.
        prop_assert_eq!(routes.keys().cloned().collect::<BTreeSet<_>>(), d.sessions.clone());
        let node_ok = world.node.ready
            && !world.node.network_unavailable
            && !world.node.labels.contains_key(EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS);
        for (svc_key, svc) in &d.services {
            let view = world.services.iter().find(|s| &s.key == svc_key).unwrap();
            for ipd in &svc.ips {
                let addr = &ipd.ip;
                for (peer_name, outcome) in &ipd.peers {
                    let Outcome::Announced(anns) = outcome else { continue };
                    prop_assert!(node_ok);
                    prop_assert!(!anns.is_empty());
                    prop_assert!(d.sessions.contains(peer_name));
                    prop_assert!(!view.endpoints.is_empty());
                    let peer = &world.peers.iter().find(|p| *p.name == **peer_name).unwrap().peer;
                    for a in anns {
                        prop_assert!(a.route.prefix.contains(addr));
                        prop_assert!(peer.is_ibgp() || a.route.local_pref.is_none());
                        // The merged route at the peer carries at least this one's attributes.
                        let sent = &routes[peer_name][&a.route.prefix];
                        prop_assert!(a.route.communities.iter().all(|c| sent.communities.contains(c)));
                        prop_assert!(sent.local_pref >= a.route.local_pref);
                    }
                }
            }
        }
        // Nothing is sent that no decision asked for.
        for (peer_name, by_prefix) in &routes {
            for prefix in by_prefix.keys() {
                let asked = d.services.values().flat_map(|s| &s.ips).any(|ipd| {
                    matches!(ipd.outcome(peer_name), Some(Outcome::Announced(a))
                        if a.iter().any(|a| &a.route.prefix == prefix))
                });
                prop_assert!(asked, "{} to {}", prefix, peer_name);
            }
        }
    }
}
