//! Table tests for every rule and reason of the announcement decision.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::*;
use crate::allocator::ServiceKey;
use crate::constants::EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS;
use crate::validate::{
    BgpTimers, Community, ParsedAdvertisement, ParsedPeer, ParsedPool, ParsedSelector, Requirement,
};

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `matchLabels` selector.
pub(super) fn sel(pairs: &[(&str, &str)]) -> ParsedSelector {
    ParsedSelector {
        requirements: pairs
            .iter()
            .map(|(k, v)| Requirement::In {
                key: (*k).to_owned(),
                values: BTreeSet::from([(*v).to_owned()]),
            })
            .collect(),
    }
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn pool(name: &str, pool_labels: &[(&str, &str)], ranges: &[&str]) -> PoolView {
    PoolView {
        name: name.to_owned(),
        labels: labels(pool_labels),
        pool: ParsedPool {
            ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        },
    }
}

/// An advertisement covering every pool, node, Service and peer, /32 and /128.
pub(super) fn ad(name: &str) -> AdvertisementView {
    AdvertisementView {
        name: name.to_owned(),
        advertisement: ParsedAdvertisement {
            ip_address_pools: BTreeSet::new(),
            ip_address_pool_selectors: Vec::new(),
            service_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: BTreeSet::new(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: Vec::new(),
        },
    }
}

pub(super) fn communities(list: &[&str]) -> Vec<Community> {
    list.iter().map(|c| Community::parse(c).unwrap()).collect()
}

pub(super) fn peer(name: &str, my_asn: u32, peer_asn: u32, address: &str) -> PeerView {
    PeerView {
        name: name.to_owned(),
        peer: ParsedPeer {
            my_asn,
            peer_asn,
            peer_address: ip(address),
            peer_port: 179,
            source_address: None,
            timers: BgpTimers {
                hold_time: 90,
                keepalive_time: 30,
                connect_time: Duration::from_secs(10),
            },
            router_id: None,
            node_selectors: Vec::new(),
            password_secret: None,
            ebgp_multi_hop: false,
            graceful_restart: false,
        },
    }
}

pub(super) fn endpoints(ready: &[&str], serving: &[&str]) -> EndpointView {
    EndpointView {
        ready_nodes: ready.iter().map(|s| (*s).to_owned()).collect(),
        serving_nodes: serving.iter().map(|s| (*s).to_owned()).collect(),
    }
}

pub(super) fn service(name: &str, ips: &[&str]) -> ServiceView {
    ServiceView {
        key: ServiceKey::new("default", name),
        labels: labels(&[("app", name)]),
        ips: ips.iter().map(|s| ip(s)).collect(),
        traffic_policy: TrafficPolicy::Cluster,
        endpoints: endpoints(&["n1"], &["n1"]),
    }
}

/// Everything a speaker on node `n1` sees. The base world announces `web` (192.0.2.10)
/// to the eBGP peer `r1` as a plain /32.
#[derive(Clone, Debug)]
pub(super) struct World {
    pub node: NodeView,
    pub pools: Vec<PoolView>,
    pub ads: Vec<AdvertisementView>,
    pub peers: Vec<PeerView>,
    pub services: Vec<ServiceView>,
}

impl World {
    pub fn new() -> Self {
        World {
            node: NodeView {
                name: "n1".to_owned(),
                labels: labels(&[("kubernetes.io/hostname", "n1"), ("zone", "a")]),
                ready: true,
                network_unavailable: false,
            },
            pools: vec![pool(
                "p",
                &[("tier", "gold")],
                &["192.0.2.0/24", "2001:db8::/120"],
            )],
            ads: vec![ad("ad")],
            peers: vec![peer("r1", 64512, 64513, "10.0.0.1")],
            services: vec![service("web", &["192.0.2.10"])],
        }
    }

    pub fn decide(&self) -> Decisions {
        decide(&Snapshot {
            node: &self.node,
            pools: &self.pools,
            advertisements: &self.ads,
            peers: &self.peers,
            services: &self.services,
        })
    }

    fn outcome(&self, svc: &str, addr: &str, peer: &str) -> Outcome {
        self.decide().services[&ServiceKey::new("default", svc)]
            .ip(ip(addr))
            .unwrap()
            .outcome(peer)
            .unwrap()
            .clone()
    }

    fn web(&mut self) -> &mut ServiceView {
        &mut self.services[0]
    }
}

fn names(list: &[std::sync::Arc<str>]) -> Vec<&str> {
    list.iter().map(|n| &**n).collect()
}

fn route(prefix: &str) -> Route {
    Route {
        prefix: net(prefix),
        next_hop: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        local_pref: None,
    }
}

fn announced(outcome: &Outcome) -> Vec<Route> {
    match outcome {
        Outcome::Announced(a) => a.iter().map(|a| a.route.clone()).collect(),
        Outcome::NotAnnounced(r) => panic!("not announced: {r}"),
    }
}

#[test]
fn base_world_announces_a_host_route() {
    let w = World::new();
    let outcome = w.outcome("web", "192.0.2.10", "r1");
    assert_eq!(announced(&outcome), [route("192.0.2.10/32")]);
    let Outcome::Announced(a) = outcome else {
        unreachable!()
    };
    assert_eq!(names(&a[0].advertisements), ["ad"]);
}

type Setup = fn(&mut World);

/// Each case changes the base world; `None` means still announced.
const REASON_CASES: &[(&str, Setup, Option<Reason>)] = &[
    (
        "exclude label (empty value) excludes the node",
        |w| {
            w.node.labels.insert(
                EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS.to_owned(),
                String::new(),
            );
        },
        Some(Reason::NodeExcluded),
    ),
    (
        "exclude label wins over not ready",
        |w| {
            w.node.labels.insert(
                EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS.to_owned(),
                "true".to_owned(),
            );
            w.node.ready = false;
        },
        Some(Reason::NodeExcluded),
    ),
    (
        "node not ready",
        |w| w.node.ready = false,
        Some(Reason::NodeNotReady),
    ),
    (
        "node not ready wins over missing endpoints",
        |w| {
            w.node.ready = false;
            w.web().endpoints = EndpointView::default();
        },
        Some(Reason::NodeNotReady),
    ),
    (
        "network unavailable",
        |w| w.node.network_unavailable = true,
        Some(Reason::NodeNetworkUnavailable),
    ),
    (
        "address outside every pool",
        |w| w.web().ips = vec![ip("198.51.100.1")],
        Some(Reason::IpNotInPool),
    ),
    (
        "no pools at all",
        |w| w.pools.clear(),
        Some(Reason::IpNotInPool),
    ),
    (
        "peer selects other nodes",
        |w| w.peers[0].peer.node_selectors = vec![sel(&[("zone", "b")])],
        Some(Reason::PeerNodeMismatch),
    ),
    (
        "peer selects this node (one of several selectors)",
        |w| w.peers[0].peer.node_selectors = vec![sel(&[("zone", "b")]), sel(&[("zone", "a")])],
        None,
    ),
    (
        "IPv6 address to an IPv4 peer",
        |w| w.web().ips = vec![ip("2001:db8::10")],
        Some(Reason::AddressFamilyMismatch),
    ),
    (
        "no advertisement at all",
        |w| w.ads.clear(),
        Some(Reason::NoAdvertisement),
    ),
    (
        "advertisement names another pool",
        |w| {
            w.ads[0].advertisement.ip_address_pools = BTreeSet::from(["other".to_owned()]);
        },
        Some(Reason::NoAdvertisement),
    ),
    (
        "advertisement names the pool",
        |w| w.ads[0].advertisement.ip_address_pools = BTreeSet::from(["p".to_owned()]),
        None,
    ),
    (
        "advertisement selects the pool by label",
        |w| w.ads[0].advertisement.ip_address_pool_selectors = vec![sel(&[("tier", "gold")])],
        None,
    ),
    (
        "advertisement selects other pools by label",
        |w| w.ads[0].advertisement.ip_address_pool_selectors = vec![sel(&[("tier", "silver")])],
        Some(Reason::NoAdvertisement),
    ),
    (
        "names and selectors are a union",
        |w| {
            let a = &mut w.ads[0].advertisement;
            a.ip_address_pools = BTreeSet::from(["other".to_owned()]);
            a.ip_address_pool_selectors = vec![sel(&[("tier", "gold")])];
        },
        None,
    ),
    (
        "advertisement selects other nodes",
        |w| w.ads[0].advertisement.node_selectors = vec![sel(&[("zone", "b")])],
        Some(Reason::AdvertisementNodeMismatch),
    ),
    (
        "advertisement selects this node",
        |w| w.ads[0].advertisement.node_selectors = vec![sel(&[("kubernetes.io/hostname", "n1")])],
        None,
    ),
    (
        "advertisement selects other Services",
        |w| w.ads[0].advertisement.service_selectors = vec![sel(&[("app", "db")])],
        Some(Reason::AdvertisementServiceMismatch),
    ),
    (
        "advertisement selects this Service",
        |w| w.ads[0].advertisement.service_selectors = vec![sel(&[("app", "web")])],
        None,
    ),
    (
        "one ad misses the node, the other the Service: the later stage is reported",
        |w| {
            let mut other = ad("ad2");
            other.advertisement.service_selectors = vec![sel(&[("app", "db")])];
            w.ads[0].advertisement.node_selectors = vec![sel(&[("zone", "b")])];
            w.ads.push(other);
        },
        Some(Reason::AdvertisementServiceMismatch),
    ),
    (
        "advertisement names other peers",
        |w| w.ads[0].advertisement.peers = BTreeSet::from(["r2".to_owned()]),
        Some(Reason::AdvertisementPeerMismatch),
    ),
    (
        "advertisement names this peer",
        |w| w.ads[0].advertisement.peers = BTreeSet::from(["r1".to_owned(), "r2".to_owned()]),
        None,
    ),
    (
        "advertisement mismatch wins over missing endpoints",
        |w| {
            w.ads[0].advertisement.peers = BTreeSet::from(["r2".to_owned()]);
            w.web().endpoints = EndpointView::default();
        },
        Some(Reason::AdvertisementPeerMismatch),
    ),
    (
        "Cluster: no endpoint anywhere",
        |w| w.web().endpoints = EndpointView::default(),
        Some(Reason::NoEndpoints),
    ),
    (
        "Cluster: endpoints only on other nodes still announce (ECMP)",
        |w| w.web().endpoints = endpoints(&["n2", "n3"], &["n2", "n3"]),
        None,
    ),
    (
        "Cluster: no ready endpoint, a terminating one elsewhere still serves",
        |w| w.web().endpoints = endpoints(&[], &["n2"]),
        None,
    ),
    (
        "Cluster: endpoint on an unknown node counts",
        |w| w.web().endpoints = endpoints(&[""], &[""]),
        None,
    ),
    (
        "Local: ready endpoint here",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&["n1", "n2"], &["n1", "n2"]);
        },
        None,
    ),
    (
        "Local: no endpoint anywhere",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = EndpointView::default();
        },
        Some(Reason::NoEndpoints),
    ),
    (
        "Local: endpoints only elsewhere",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&["n2"], &["n2"]);
        },
        Some(Reason::NoLocalEndpoints),
    ),
    (
        "Local: endpoint on an unknown node is not local",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&[""], &[""]);
        },
        Some(Reason::NoLocalEndpoints),
    ),
    (
        "Local: only terminating here while another node is ready",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&["n2"], &["n1", "n2"]);
        },
        Some(Reason::LocalEndpointsTerminating),
    ),
    (
        "Local: terminating here and nothing ready anywhere keeps serving",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&[], &["n1", "n2"]);
        },
        None,
    ),
    (
        "Local: terminating only elsewhere",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&[], &["n2"]);
        },
        Some(Reason::NoLocalEndpoints),
    ),
    (
        "Local: ready here without serving listed",
        |w| {
            w.web().traffic_policy = TrafficPolicy::Local;
            w.web().endpoints = endpoints(&["n1"], &[]);
        },
        None,
    ),
];

#[test]
fn every_rule_and_reason() {
    for (name, setup, expected) in REASON_CASES {
        let mut w = World::new();
        setup(&mut w);
        let addr = w.services[0].ips[0].to_string();
        let outcome = w.outcome("web", &addr, "r1");
        assert_eq!(outcome.reason(), *expected, "case: {name}: {outcome:?}");
        let routes = desired_routes(&w.decide());
        let sent = routes.get("r1").map_or(0, BTreeMap::len);
        assert_eq!(
            sent,
            usize::from(expected.is_none()),
            "case: {name}: {routes:?}"
        );
    }
    // Every decision-time reason has a case that produces it.
    let produced: BTreeSet<Reason> = REASON_CASES.iter().filter_map(|c| c.2).collect();
    for r in Reason::ALL {
        if !matches!(r, Reason::NoIpAssigned | Reason::NoPeers) {
            assert!(produced.contains(&r), "no case for {r}");
        }
    }
}

#[test]
fn reason_strings_are_stable_and_distinct() {
    let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "nodeExcluded",
            "nodeNotReady",
            "nodeNetworkUnavailable",
            "ipNotInPool",
            "peerNodeMismatch",
            "addressFamilyMismatch",
            "noAdvertisement",
            "advertisementNodeMismatch",
            "advertisementServiceMismatch",
            "advertisementPeerMismatch",
            "noEndpoints",
            "noLocalEndpoints",
            "localEndpointsTerminating",
            "noIPAssigned",
            "noPeers",
        ]
    );
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(distinct.len(), names.len());
    // Declaration order is the documented precedence.
    let mut sorted = Reason::ALL;
    sorted.sort();
    assert_eq!(sorted, Reason::ALL);
    for r in Reason::ALL {
        assert_eq!(r.to_string(), r.as_str());
        assert!(!r.description().is_empty());
    }
}

#[test]
fn overlapping_advertisements_merge_communities_and_take_the_highest_local_pref() {
    let mut w = World::new();
    w.peers = vec![
        peer("ibgp", 64512, 64512, "10.0.0.1"),
        peer("ebgp", 64512, 64513, "10.0.0.2"),
    ];
    let mut a1 = ad("ad1");
    a1.advertisement.communities = communities(&["65000:100", "large:1:2:3"]);
    a1.advertisement.local_pref = Some(100);
    let mut a2 = ad("ad2");
    a2.advertisement.communities = communities(&["65000:200", "65000:100", "no-export"]);
    a2.advertisement.local_pref = Some(300);
    let mut a3 = ad("ad3");
    a3.advertisement.communities = communities(&["large:1:2:3", "large:0:9:9"]);
    w.ads = vec![a1, a2, a3];

    let outcome = w.outcome("web", "192.0.2.10", "ibgp");
    let Outcome::Announced(a) = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(a.len(), 1, "same prefix: one route");
    assert_eq!(names(&a[0].advertisements), ["ad1", "ad2", "ad3"]);
    let expected = Route {
        prefix: net("192.0.2.10/32"),
        next_hop: None,
        communities: vec![(65000 << 16) | 100, (65000 << 16) | 200, 0xFFFF_FF01],
        large_communities: vec![[0, 9, 9], [1, 2, 3]],
        local_pref: Some(300),
    };
    assert_eq!(a[0].route, expected);
    // The same whichever advertisement comes first.
    let mut reversed = w.clone();
    reversed.ads.reverse();
    assert_eq!(
        announced(&reversed.outcome("web", "192.0.2.10", "ibgp")),
        std::slice::from_ref(&expected)
    );

    // eBGP: same communities, never LOCAL_PREF.
    let ebgp = announced(&w.outcome("web", "192.0.2.10", "ebgp"));
    assert_eq!(
        ebgp,
        [Route {
            local_pref: None,
            ..expected.clone()
        }]
    );

    // An advertisement without localPref does not lower another's.
    w.ads[1].advertisement.local_pref = None;
    w.ads[0].advertisement.local_pref = Some(50);
    let ibgp = announced(&w.outcome("web", "192.0.2.10", "ibgp"));
    assert_eq!(ibgp[0].local_pref, Some(50));
    w.ads[0].advertisement.local_pref = None;
    let ibgp = announced(&w.outcome("web", "192.0.2.10", "ibgp"));
    assert_eq!(ibgp[0].local_pref, None);
}

#[test]
fn only_advertisements_that_pass_every_selector_contribute() {
    let mut w = World::new();
    let mut good = ad("good");
    good.advertisement.communities = communities(&["65000:1"]);
    let mut other_peer = ad("other-peer");
    other_peer.advertisement.communities = communities(&["65000:2"]);
    other_peer.advertisement.peers = BTreeSet::from(["r2".to_owned()]);
    let mut other_node = ad("other-node");
    other_node.advertisement.communities = communities(&["65000:3"]);
    other_node.advertisement.node_selectors = vec![sel(&[("zone", "b")])];
    let mut other_service = ad("other-service");
    other_service.advertisement.communities = communities(&["65000:4"]);
    other_service.advertisement.service_selectors = vec![sel(&[("app", "db")])];
    w.ads = vec![other_peer, good, other_node, other_service];
    let routes = announced(&w.outcome("web", "192.0.2.10", "r1"));
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].communities, [(65000 << 16) | 1]);
}

#[test]
fn different_aggregation_lengths_give_one_route_each() {
    let mut w = World::new();
    let host = ad("host");
    let mut agg = ad("agg");
    agg.advertisement.aggregation_length = 24;
    agg.advertisement.communities = communities(&["65000:24"]);
    let mut agg_too = ad("agg-too");
    agg_too.advertisement.aggregation_length = 24;
    agg_too.advertisement.communities = communities(&["65000:25"]);
    w.ads = vec![agg, host, agg_too];
    let outcome = w.outcome("web", "192.0.2.10", "r1");
    let Outcome::Announced(a) = &outcome else {
        panic!("{outcome:?}")
    };
    let prefixes: Vec<IpNet> = a.iter().map(|a| a.route.prefix).collect();
    assert_eq!(prefixes, [net("192.0.2.0/24"), net("192.0.2.10/32")]);
    assert_eq!(
        a[0].route.communities,
        [(65000 << 16) | 24, (65000 << 16) | 25]
    );
    assert_eq!(names(&a[0].advertisements), ["agg", "agg-too"]);
    assert!(a[1].route.communities.is_empty());
    let desired = desired_routes(&w.decide());
    let keys: Vec<IpNet> = desired["r1"].keys().copied().collect();
    assert_eq!(keys, [net("192.0.2.0/24"), net("192.0.2.10/32")]);
}

#[test]
fn ipv6_host_routes_aggregation_and_dual_stack() {
    let mut w = World::new();
    w.peers = vec![
        peer("v4", 64512, 64513, "10.0.0.1"),
        peer("v6", 64512, 64513, "fd00::1"),
    ];
    w.services = vec![service("web", &["192.0.2.10", "2001:db8::10"])];
    let d = w.decide();
    let web = &d.services[&ServiceKey::new("default", "web")];
    let v4 = web.ip(ip("192.0.2.10")).unwrap();
    let v6 = web.ip(ip("2001:db8::10")).unwrap();
    assert_eq!(
        announced(v4.outcome("v4").unwrap()),
        [route("192.0.2.10/32")]
    );
    assert_eq!(
        v4.outcome("v6").unwrap().reason(),
        Some(Reason::AddressFamilyMismatch)
    );
    assert_eq!(
        announced(v6.outcome("v6").unwrap()),
        [route("2001:db8::10/128")]
    );
    assert_eq!(
        v6.outcome("v4").unwrap().reason(),
        Some(Reason::AddressFamilyMismatch)
    );
    assert!(v4.outcome("nope").is_none());
    assert!(web.ip(ip("192.0.2.11")).is_none());

    // aggregationLengthV6 applies to IPv6 only; aggregationLength to IPv4 only.
    w.ads[0].advertisement.aggregation_length_v6 = 120;
    let d = w.decide();
    let routes = desired_routes(&d);
    assert_eq!(
        routes["v6"].keys().copied().collect::<Vec<_>>(),
        [net("2001:db8::/120")]
    );
    assert_eq!(
        routes["v4"].keys().copied().collect::<Vec<_>>(),
        [net("192.0.2.10/32")]
    );
    w.ads[0].advertisement.aggregation_length = 28;
    w.ads[0].advertisement.aggregation_length_v6 = 128;
    let routes = desired_routes(&w.decide());
    assert_eq!(
        routes["v4"].keys().copied().collect::<Vec<_>>(),
        [net("192.0.2.0/28")]
    );
    assert_eq!(
        routes["v6"].keys().copied().collect::<Vec<_>>(),
        [net("2001:db8::10/128")]
    );
}

#[test]
fn shared_ip_is_announced_when_any_sharing_service_is_eligible() {
    let mut w = World::new();
    // Both Services hold 192.0.2.10 (allow-shared-ip); "local" has no endpoint here.
    let mut local = service("local", &["192.0.2.10"]);
    local.traffic_policy = TrafficPolicy::Local;
    local.endpoints = endpoints(&["n2"], &["n2"]);
    let cluster = service("cluster", &["192.0.2.10"]);
    let mut for_local = ad("for-local");
    for_local.advertisement.service_selectors = vec![sel(&[("app", "local")])];
    for_local.advertisement.communities = communities(&["65000:1"]);
    let mut for_cluster = ad("for-cluster");
    for_cluster.advertisement.service_selectors = vec![sel(&[("app", "cluster")])];
    for_cluster.advertisement.communities = communities(&["65000:2"]);
    w.ads = vec![for_local, for_cluster];
    w.services = vec![local, cluster];

    assert_eq!(
        w.outcome("local", "192.0.2.10", "r1").reason(),
        Some(Reason::NoLocalEndpoints)
    );
    let routes = desired_routes(&w.decide());
    assert_eq!(routes["r1"].len(), 1);
    assert_eq!(
        routes["r1"][&net("192.0.2.10/32")].communities,
        [(65000 << 16) | 2]
    );

    // Once both announce, the one route carries both Services' communities.
    w.services[0].endpoints = endpoints(&["n1"], &["n1"]);
    let routes = desired_routes(&w.decide());
    assert_eq!(routes["r1"].len(), 1);
    assert_eq!(
        routes["r1"][&net("192.0.2.10/32")].communities,
        [(65000 << 16) | 1, (65000 << 16) | 2]
    );

    // Neither eligible: withdrawn.
    w.services[0].endpoints = EndpointView::default();
    w.services[1].endpoints = EndpointView::default();
    assert!(desired_routes(&w.decide())["r1"].is_empty());
}

#[test]
fn aggregated_prefix_stays_while_any_covered_service_is_eligible() {
    let mut w = World::new();
    w.ads[0].advertisement.aggregation_length = 24;
    w.services = vec![service("a", &["192.0.2.10"]), service("b", &["192.0.2.20"])];
    let routes = desired_routes(&w.decide());
    assert_eq!(
        routes["r1"].keys().copied().collect::<Vec<_>>(),
        [net("192.0.2.0/24")]
    );
    w.services[0].endpoints = EndpointView::default();
    assert_eq!(desired_routes(&w.decide())["r1"].len(), 1);
    w.services[1].endpoints = EndpointView::default();
    assert!(desired_routes(&w.decide())["r1"].is_empty());
}

#[test]
fn sessions_cover_selected_peers_even_when_nothing_is_announced() {
    let mut w = World::new();
    let mut elsewhere = peer("elsewhere", 64512, 64513, "10.0.0.9");
    elsewhere.peer.node_selectors = vec![sel(&[("zone", "b")])];
    w.peers.push(elsewhere);
    let d = w.decide();
    assert_eq!(
        names(&d.sessions.iter().cloned().collect::<Vec<_>>()),
        ["r1"]
    );
    assert_eq!(
        names(&d.peers.iter().cloned().collect::<Vec<_>>()),
        ["elsewhere", "r1"]
    );
    let routes = desired_routes(&d);
    assert_eq!(names(&routes.keys().cloned().collect::<Vec<_>>()), ["r1"]);
    assert_eq!(routes["r1"].len(), 1);

    // A node that is not ready keeps its sessions and withdraws every route.
    w.node.ready = false;
    let routes = desired_routes(&w.decide());
    assert_eq!(names(&routes.keys().cloned().collect::<Vec<_>>()), ["r1"]);
    assert!(routes["r1"].is_empty());
}

#[test]
fn duplicate_addresses_in_status_are_decided_once() {
    let mut w = World::new();
    w.services[0].ips = vec![ip("192.0.2.10"), ip("192.0.2.10")];
    let d = w.decide();
    assert_eq!(d.services[&ServiceKey::new("default", "web")].ips.len(), 1);
    assert_eq!(d.announced_ip_count(), 1);
}

#[test]
fn overlapping_pools_take_advertisements_of_either() {
    let mut w = World::new();
    w.pools.push(pool("q", &[], &["192.0.2.0/28"]));
    w.ads[0].advertisement.ip_address_pools = BTreeSet::from(["q".to_owned()]);
    let d = w.decide();
    let ipd = d.services[&ServiceKey::new("default", "web")]
        .ip(ip("192.0.2.10"))
        .unwrap();
    assert_eq!(names(&ipd.pools), ["p", "q"]);
    assert!(ipd.outcome("r1").unwrap().is_announced());
}

#[test]
fn announced_flags_and_counts() {
    let mut w = World::new();
    w.services.push(service("idle", &["192.0.2.11"]));
    w.services[1].endpoints = EndpointView::default();
    w.services.push(service("pending", &[]));
    let d = w.decide();
    assert!(d.services[&ServiceKey::new("default", "web")].is_announced());
    assert!(!d.services[&ServiceKey::new("default", "idle")].is_announced());
    assert!(!d.services[&ServiceKey::new("default", "pending")].is_announced());
    assert_eq!(d.announced_ip_count(), 1);
}

#[test]
fn explain_lists_every_address_and_peer() {
    let mut w = World::new();
    w.peers.push(peer("r2", 64512, 64512, "10.0.0.2"));
    w.ads[0].advertisement.communities = communities(&["65000:100", "large:1:2:3"]);
    w.ads[0].advertisement.local_pref = Some(200);
    w.ads[0].advertisement.peers = BTreeSet::from(["r2".to_owned()]);
    let mut all = ad("all");
    all.advertisement.aggregation_length = 24;
    w.ads.push(all);
    w.services[0].ips.push(ip("2001:db8::10"));
    let d = w.decide();
    let e = d.explain(&ServiceKey::new("default", "web")).unwrap();
    assert_eq!(e.node, "n1");
    let family = "not announced: addressFamilyMismatch (the address and the BGPPeer's address \
                  are of different IP families)";
    let expected = [
        "Service default/web on node n1:".to_owned(),
        "  192.0.2.10 -> peer r1: announced 192.0.2.0/24 (advertisements: all)".to_owned(),
        "  192.0.2.10 -> peer r2: announced 192.0.2.0/24 (advertisements: all), 192.0.2.10/32 \
         [communities 65000:100; large-communities 1:2:3; local-pref 200] (advertisements: ad)"
            .to_owned(),
        format!("  2001:db8::10 -> peer r1: {family}"),
        format!("  2001:db8::10 -> peer r2: {family}"),
    ];
    assert_eq!(e.to_string(), expected.join("\n") + "\n");
    assert!(explain(&d, &ServiceKey::new("default", "nope")).is_none());
}

#[test]
fn explain_without_address_or_peers() {
    let mut w = World::new();
    w.services.push(service("pending", &[]));
    let d = w.decide();
    let e = explain(&d, &ServiceKey::new("default", "pending")).unwrap();
    assert_eq!(e.lines.len(), 1);
    assert_eq!(e.lines[0].outcome.reason(), Some(Reason::NoIpAssigned));
    assert_eq!(
        e.lines[0].to_string(),
        "-: not announced: noIPAssigned (the Service has no address in its status)"
    );

    w.peers.clear();
    let d = w.decide();
    let e = explain(&d, &ServiceKey::new("default", "web")).unwrap();
    assert_eq!(e.lines.len(), 1);
    assert_eq!(e.lines[0].ip, Some(ip("192.0.2.10")));
    assert_eq!(e.lines[0].outcome.reason(), Some(Reason::NoPeers));
    assert!(desired_routes(&d).is_empty());
}

mod views {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, Node, NodeCondition, NodeStatus, Service,
        ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(conditions: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".to_owned()),
                labels: Some(labels(&[("zone", "a")])),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: (*t).to_owned(),
                            status: (*s).to_owned(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn node_conditions() {
        let v = NodeView::from_node(&node(&[("Ready", "True"), ("NetworkUnavailable", "False")]));
        assert_eq!(v.name, "n1");
        assert_eq!(v.labels, labels(&[("zone", "a")]));
        assert!(v.ready && !v.network_unavailable);
        let v = NodeView::from_node(&node(&[
            ("Ready", "Unknown"),
            ("NetworkUnavailable", "True"),
        ]));
        assert!(!v.ready && v.network_unavailable);
        let v = NodeView::from_node(&node(&[]));
        assert!(!v.ready && !v.network_unavailable);
    }

    fn ep(node: Option<&str>, ready: Option<bool>, serving: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.1.0.1".to_owned()],
            node_name: node.map(str::to_owned),
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_conditions_follow_kube_proxy() {
        let slice_a = EndpointSlice {
            address_type: "IPv4".to_owned(),
            endpoints: vec![
                ep(Some("ready"), Some(true), Some(true)),
                ep(Some("unset"), None, None),
                ep(Some("terminating"), Some(false), Some(true)),
                ep(Some("down"), Some(false), Some(false)),
                ep(Some("old-apiserver"), Some(false), None),
            ],
            metadata: ObjectMeta::default(),
            ports: None,
        };
        let slice_b = EndpointSlice {
            address_type: "IPv6".to_owned(),
            endpoints: vec![
                ep(None, Some(true), None),
                Endpoint {
                    addresses: Vec::new(),
                    node_name: Some("no-address".to_owned()),
                    ..Default::default()
                },
            ],
            metadata: ObjectMeta::default(),
            ports: None,
        };
        let v = EndpointView::from_slices([&slice_a, &slice_b]);
        assert_eq!(
            v,
            endpoints(
                &["", "ready", "unset"],
                &["", "ready", "terminating", "unset"]
            )
        );
        assert!(!v.is_empty());
        assert!(EndpointView::from_slices([]).is_empty());
    }

    #[test]
    fn service_view() {
        let svc = Service {
            metadata: ObjectMeta {
                namespace: Some("ns".to_owned()),
                name: Some("web".to_owned()),
                labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                external_traffic_policy: Some("Local".to_owned()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![
                        LoadBalancerIngress {
                            ip: Some("192.0.2.10".to_owned()),
                            ..Default::default()
                        },
                        LoadBalancerIngress {
                            hostname: Some("lb.example".to_owned()),
                            ..Default::default()
                        },
                        LoadBalancerIngress {
                            ip: Some("2001:db8::10".to_owned()),
                            ..Default::default()
                        },
                    ]),
                }),
                ..Default::default()
            }),
        };
        let v = ServiceView::from_service(&svc, endpoints(&["n1"], &[]));
        assert_eq!(v.key, ServiceKey::new("ns", "web"));
        assert_eq!(v.ips, [ip("192.0.2.10"), ip("2001:db8::10")]);
        assert_eq!(v.traffic_policy, TrafficPolicy::Local);
        assert_eq!(v.labels, labels(&[("app", "web")]));
        let mut cluster = svc.clone();
        cluster.spec = None;
        assert_eq!(
            ServiceView::from_service(&cluster, EndpointView::default()).traffic_policy,
            TrafficPolicy::Cluster
        );
    }
}

#[test]
fn ecmp_every_eligible_node_announces() {
    // Three nodes see the same cluster; endpoints on n1 and n2, n3 is not ready.
    let announcing = |policy: TrafficPolicy, n3_ready: bool| -> Vec<String> {
        ["n1", "n2", "n3"]
            .into_iter()
            .filter(|node| {
                let mut w = World::new();
                w.node.name = (*node).to_owned();
                w.node.labels = labels(&[("kubernetes.io/hostname", node)]);
                w.node.ready = *node != "n3" || n3_ready;
                w.services[0].traffic_policy = policy;
                w.services[0].endpoints = endpoints(&["n1", "n2"], &["n1", "n2"]);
                !desired_routes(&w.decide())["r1"].is_empty()
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(announcing(TrafficPolicy::Cluster, true), ["n1", "n2", "n3"]);
    assert_eq!(announcing(TrafficPolicy::Cluster, false), ["n1", "n2"]);
    assert_eq!(announcing(TrafficPolicy::Local, true), ["n1", "n2"]);
}

#[test]
fn route_merge_rules() {
    let mut a = Route {
        prefix: net("192.0.2.0/24"),
        next_hop: Some(ip("10.0.0.9")),
        communities: vec![1, 5],
        large_communities: vec![[1, 1, 1]],
        local_pref: Some(100),
    };
    let b = Route {
        prefix: net("192.0.2.0/24"),
        next_hop: Some(ip("10.0.0.2")),
        communities: vec![2, 5, 7],
        large_communities: vec![[0, 0, 1], [1, 1, 1]],
        local_pref: None,
    };
    let mut b_then_a = b.clone();
    b_then_a.merge(&a);
    a.merge(&b);
    assert_eq!(a, b_then_a);
    assert_eq!(a.communities, [1, 2, 5, 7]);
    assert_eq!(a.large_communities, [[0, 0, 1], [1, 1, 1]]);
    assert_eq!(a.local_pref, Some(100));
    assert_eq!(a.next_hop, Some(ip("10.0.0.2")));
    // The session's own address wins over a configured one.
    a.merge(&route("192.0.2.0/24"));
    assert_eq!(a.next_hop, None);
    assert_eq!(a.communities, [1, 2, 5, 7]);
}
