//! The routes this node announces, kept up to date one Service at a time. Pure: no I/O.
//!
//! Deciding every Service on every change cost a full set of views, decisions and route
//! maps per run: at 10k Services and 3 peers about 30 MiB of short-lived allocations
//! (which glibc keeps), and ~60 ms before a single withdrawal could go out. Instead the
//! speaker re-decides only the Services whose Service or EndpointSlices changed (all of
//! them when the node or the configuration changed) and hands [`RouteTable::set_service`]
//! each new [`ServiceDecision`]; the table keeps what every Service contributes and, at the
//! end of a run, [`RouteTable::finish`] says which prefixes changed towards which peer.
//!
//! Routes for one prefix from several Services (shared addresses, aggregation) are merged
//! with [`Route::merge`], exactly as `desired_routes` does for a whole [`Decisions`]
//! (`ferrolb_shared::announce::Decisions`); the tests hold the two to the same answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ferrolb_bgp::codec::LargeCommunity;
use ferrolb_bgp::runtime::{RouteAttributes, RouteMap};
use ferrolb_shared::announce::{Outcome, PeerName, Route, ServiceDecision};
use ipnet::IpNet;

/// A Service by namespace and name, as the caches key it. Shared strings: the caches intern
/// namespaces, and the table holds the same name as the cache instead of a copy.
pub type ServiceId = (Arc<str>, Arc<str>);

/// A prefix's new attributes, or `None` to withdraw it.
pub type Change = Option<Arc<RouteAttributes>>;

/// Per peer, the prefixes whose route changed in a run, each once, in prefix order.
pub type RouteChanges = BTreeMap<PeerName, Vec<(IpNet, Change)>>;

/// A peer as an index into [`RouteTable::peers`]: 2 bytes instead of a 16-byte name in
/// each of the table's 30k contributions (10k Services, 3 peers).
type PeerIndex = u16;

/// One route one Service gives one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Contribution {
    attrs: Arc<RouteAttributes>,
    prefix: IpNet,
    peer: PeerIndex,
}

/// How many new contributions a run remembers; a bigger run (a configuration change,
/// start-up) merges from the whole table instead, which it touches almost entirely anyway.
#[cfg(not(test))]
const FRESH_LIMIT: usize = 4096;
/// Small in tests, so that they take both ways.
#[cfg(test)]
const FRESH_LIMIT: usize = 8;

#[derive(Debug, Default)]
struct Entry {
    /// Addresses of the Service announced to at least one peer.
    announced_ips: u32,
    /// Sorted by (peer, prefix), one per pair.
    routes: Box<[Contribution]>,
}

/// What a run has touched so far; handed back to [`RouteTable::finish`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Every (peer, prefix) whose contributions changed (repeats removed at the end).
    touched: Vec<(PeerIndex, IpNet)>,
    /// Per prefix, the Services of this run that now contribute it (to any peer).
    added: HashMap<IpNet, u32>,
    /// The new contributions of this run's Services, unless there were too many.
    fresh: Vec<Contribution>,
    /// More than [`FRESH_LIMIT`] new contributions: `fresh` was given up.
    overflow: bool,
}

/// Whether a Service's announcement from this node started or stopped (for its event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flip {
    /// Announced to some peer now, and was not.
    Started,
    /// Announced to no peer now, and was.
    Stopped,
}

/// The Services' contributions and the merged routes they make, per peer and prefix.
#[derive(Debug, Default)]
pub struct RouteTable {
    services: HashMap<ServiceId, Entry>,
    /// Every peer ever named by a decision; [`PeerIndex`] points here. Peers are few and
    /// never forgotten (a removed one costs its name).
    peers: Vec<PeerName>,
    /// How many Services contribute each prefix (to any peer).
    users: HashMap<IpNet, u32>,
    /// One allocation per distinct attribute set (there are few).
    interned: HashSet<Arc<RouteAttributes>>,
    announced_ips: usize,
    primed: bool,
}

impl RouteTable {
    /// An empty table: nothing announced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of (Service, address) pairs announced to at least one peer.
    pub fn announced_ip_count(&self) -> usize {
        self.announced_ips
    }

    /// The Services the table holds.
    pub fn services(&self) -> impl Iterator<Item = &ServiceId> {
        self.services.keys()
    }

    /// Replaces what Service `id` contributes with `decision` (`None`: the Service is gone
    /// or not this speaker's), recording in `batch` what changed. Returns the flip of its
    /// announcement, if any: a Service seen for the first time counts as not announced
    /// before, one that is gone is forgotten without a flip (nothing is left to report
    /// on), and nothing flips during the first run (a restarted speaker does not repeat an
    /// event per Service).
    pub fn set_service(
        &mut self,
        id: &ServiceId,
        decision: Option<&ServiceDecision>,
        batch: &mut Batch,
    ) -> Option<Flip> {
        let (routes, announced_ips) = match decision {
            Some(d) => (self.contributions(d), announced_count(d)),
            None => (Box::default(), 0),
        };
        let known = self.services.get(id);
        let was_announced = known.map_or(0, |e| e.announced_ips);
        if decision.is_some()
            && known.is_some_and(|e| e.routes == routes && e.announced_ips == announced_ips)
        {
            return None;
        }
        // Re-inserted below when the Service is still there: the key is shared, so that
        // costs no copy.
        let old = self.services.remove(id).unwrap_or_default();
        self.announced_ips =
            (self.announced_ips + announced_ips as usize).saturating_sub(was_announced as usize);
        for prefix in distinct_prefixes(&old.routes) {
            if let Some(n) = self.users.get_mut(&prefix) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.users.remove(&prefix);
                }
            }
        }
        for prefix in distinct_prefixes(&routes) {
            *self.users.entry(prefix).or_default() += 1;
            *batch.added.entry(prefix).or_default() += 1;
        }
        // Entries on one side only, or with other attributes, change the merged route.
        for c in old.routes.iter().chain(routes.iter()) {
            batch.touched.push((c.peer, c.prefix));
        }
        if !batch.overflow {
            batch.fresh.extend(routes.iter().cloned());
            if batch.fresh.len() > FRESH_LIMIT {
                batch.overflow = true;
                batch.fresh = Vec::new();
            }
        }
        if decision.is_some() {
            self.services.insert(
                id.clone(),
                Entry {
                    announced_ips,
                    routes,
                },
            );
        }
        if !self.primed || decision.is_none() {
            return None;
        }
        match (was_announced > 0, announced_ips > 0) {
            (false, true) => Some(Flip::Started),
            (true, false) => Some(Flip::Stopped),
            _ => None,
        }
    }

    /// Ends a run: the new route (or withdrawal) of every (peer, prefix) the run touched,
    /// per peer. When every Service contributing to the touched prefixes changed in this
    /// run (the usual case: one Service per address), their new contributions are all it
    /// takes; otherwise (a prefix shared with Services that did not change) one pass over
    /// the whole table merges every contributor.
    pub fn finish(&mut self, mut batch: Batch) -> RouteChanges {
        self.primed = true;
        batch.touched.sort_unstable();
        batch.touched.dedup();
        // (peer, prefix) → merged attributes so far, sorted for binary search.
        let mut merged: Vec<((PeerIndex, IpNet), Change)> =
            batch.touched.into_iter().map(|k| (k, None)).collect();
        let complete = !batch.overflow
            && merged.iter().all(|((_, prefix), _)| {
                let users = self.users.get(prefix).copied().unwrap_or(0);
                users == 0 || batch.added.get(prefix).copied() == Some(users)
            });
        let mut collisions = false;
        let mut add = |c: &Contribution| {
            let Ok(i) = merged.binary_search_by(|(k, _)| k.cmp(&(c.peer, c.prefix))) else {
                return;
            };
            let slot = &mut merged[i].1;
            *slot = Some(match slot.take() {
                Some(a) => {
                    collisions |= a != c.attrs;
                    merge_attrs(c.prefix, &a, &c.attrs)
                }
                None => c.attrs.clone(),
            });
        };
        if complete {
            batch.fresh.iter().for_each(&mut add);
        } else {
            self.services
                .values()
                .flat_map(|e| e.routes.iter())
                .for_each(&mut add);
        }
        if collisions {
            // Merged attribute sets are new allocations: share them like the rest.
            for (_, slot) in &mut merged {
                if let Some(a) = slot.take() {
                    *slot = Some(self.intern_arc(a));
                }
            }
        }
        let mut out = RouteChanges::new();
        for ((peer, prefix), attrs) in merged {
            let Some(name) = self.peers.get(usize::from(peer)).cloned() else {
                continue;
            };
            // Sorted by peer, then prefix: each list comes out in prefix order.
            out.entry(name).or_default().push((prefix, attrs));
        }
        self.interned.retain(|a| Arc::strong_count(a) > 1);
        out
    }

    /// Every route towards `peer`: the complete set a new session starts with.
    pub fn routes_for(&self, peer: &str) -> RouteMap {
        let Some(index) = self.peers.iter().position(|p| &**p == peer) else {
            return RouteMap::new();
        };
        let mut merged = RouteMap::new();
        for c in self.services.values().flat_map(|e| e.routes.iter()) {
            if usize::from(c.peer) != index {
                continue;
            }
            match merged.get_mut(&c.prefix) {
                Some(a) => {
                    let m = merge_attrs(c.prefix, a, &c.attrs);
                    *a = self.interned.get(&*m).cloned().unwrap_or(m);
                }
                None => {
                    merged.insert(c.prefix, c.attrs.clone());
                }
            }
        }
        merged
    }

    fn intern_arc(&mut self, attrs: Arc<RouteAttributes>) -> Arc<RouteAttributes> {
        if let Some(a) = self.interned.get(&*attrs) {
            return a.clone();
        }
        self.interned.insert(attrs.clone());
        attrs
    }

    fn intern(&mut self, attrs: RouteAttributes) -> Arc<RouteAttributes> {
        if let Some(a) = self.interned.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.interned.insert(a.clone());
        a
    }

    /// A decision's routes as contributions, one per (peer, prefix) (two addresses of one
    /// Service can aggregate to one prefix: merged).
    fn contributions(&mut self, d: &ServiceDecision) -> Box<[Contribution]> {
        let mut routes: Vec<(PeerName, Route)> = Vec::new();
        for ip in &d.ips {
            for (peer, outcome) in &ip.peers {
                if let Outcome::Announced(announcements) = outcome {
                    for a in announcements {
                        routes.push((peer.clone(), a.route.clone()));
                    }
                }
            }
        }
        let mut indexed: Vec<(PeerIndex, Route)> = Vec::with_capacity(routes.len());
        for (peer, route) in routes {
            let Some(i) = self.peer_index(&peer) else {
                // More than 65 536 peers: not a configuration this can be asked for.
                continue;
            };
            indexed.push((i, route));
        }
        indexed.sort_unstable_by_key(|a| (a.0, a.1.prefix));
        let mut merged: Vec<(PeerIndex, Route)> = Vec::with_capacity(indexed.len());
        for (peer, route) in indexed {
            match merged.last_mut() {
                Some((p, r)) if *p == peer && r.prefix == route.prefix => r.merge(&route),
                _ => merged.push((peer, route)),
            }
        }
        merged
            .into_iter()
            .map(|(peer, route)| Contribution {
                attrs: self.intern(attributes(&route)),
                prefix: route.prefix,
                peer,
            })
            .collect()
    }

    fn peer_index(&mut self, peer: &PeerName) -> Option<PeerIndex> {
        let i = match self.peers.iter().position(|p| p == peer) {
            Some(i) => i,
            None => {
                self.peers.push(peer.clone());
                self.peers.len() - 1
            }
        };
        PeerIndex::try_from(i).ok()
    }
}

fn announced_count(d: &ServiceDecision) -> u32 {
    u32::try_from(d.ips.iter().filter(|ip| ip.is_announced()).count()).unwrap_or(u32::MAX)
}

/// The prefixes of sorted contributions, each once.
fn distinct_prefixes(routes: &[Contribution]) -> Vec<IpNet> {
    let mut prefixes: Vec<IpNet> = routes.iter().map(|c| c.prefix).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
}

/// The BGP runtime's attributes of a route. `Route::next_hop` is not carried: no
/// configuration sets it yet, and the runtime derives NEXT_HOP from the session's local
/// address.
pub fn attributes(route: &Route) -> RouteAttributes {
    RouteAttributes {
        communities: route.communities.clone(),
        large_communities: route
            .large_communities
            .iter()
            .map(|&[global_admin, local_data1, local_data2]| LargeCommunity {
                global_admin,
                local_data1,
                local_data2,
            })
            .collect(),
        local_pref: route.local_pref,
        med: None,
    }
}

/// Two contributions to one prefix as one, by [`Route::merge`]'s rule; no allocation when
/// they are the same (the usual case: Services share their advertisements).
fn merge_attrs(
    prefix: IpNet,
    a: &Arc<RouteAttributes>,
    b: &Arc<RouteAttributes>,
) -> Arc<RouteAttributes> {
    if a == b {
        return a.clone();
    }
    let mut route = route_of(prefix, a);
    route.merge(&route_of(prefix, b));
    Arc::new(attributes(&route))
}

/// The route a contribution stands for, so that merging uses [`Route::merge`]'s one rule.
fn route_of(prefix: IpNet, a: &RouteAttributes) -> Route {
    Route {
        prefix,
        next_hop: None,
        communities: a.communities.clone(),
        large_communities: a
            .large_communities
            .iter()
            .map(|l| [l.global_admin, l.local_data1, l.local_data2])
            .collect(),
        local_pref: a.local_pref,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_shared::allocator::ServiceKey;
    use ferrolb_shared::announce::{
        AdvertisementView, Decider, EndpointView, NodeView, PeerView, PoolView, ServiceView,
        Snapshot, TrafficPolicy, decide, desired_routes,
    };
    use ferrolb_shared::crd::{BGPAdvertisementSpec, BGPPeerSpec, IPAddressPoolSpec};
    use serde_json::json;
    use std::net::IpAddr;

    struct Setting {
        node: NodeView,
        pools: Vec<PoolView>,
        ads: Vec<AdvertisementView>,
        peers: Vec<PeerView>,
    }

    /// Two pools (one aggregated to /28 for one peer), an eBGP and an iBGP peer, three
    /// advertisements: enough for shared prefixes, merged attributes and per-peer routes.
    fn setting() -> Setting {
        let pool = |name: &str, cidr: &str| PoolView {
            name: name.into(),
            labels: Default::default(),
            pool: serde_json::from_value::<IPAddressPoolSpec>(json!({"addresses": [cidr]}))
                .unwrap()
                .validate()
                .unwrap(),
        };
        let ad = |name: &str, spec: serde_json::Value| AdvertisementView {
            name: name.into(),
            advertisement: serde_json::from_value::<BGPAdvertisementSpec>(spec)
                .unwrap()
                .validate()
                .unwrap(),
        };
        let peer = |name: &str, my_asn: u32| PeerView {
            name: name.into(),
            peer: serde_json::from_value::<BGPPeerSpec>(json!({
                "myASN": my_asn, "peerASN": 64512, "peerAddress": "127.0.0.1"}))
            .unwrap()
            .validate()
            .unwrap(),
        };
        Setting {
            node: NodeView {
                name: "n1".into(),
                ready: true,
                ..NodeView::default()
            },
            pools: vec![
                pool("plain", "192.0.2.0/28"),
                pool("agg", "198.51.100.0/28"),
            ],
            ads: vec![
                ad("all", json!({"communities": ["64512:1"], "localPref": 100})),
                ad(
                    "agg",
                    json!({"ipAddressPools": ["agg"], "aggregationLength": 28,
                           "communities": ["64512:2"], "localPref": 200, "peers": ["ibgp"]}),
                ),
                ad(
                    "big",
                    json!({"ipAddressPools": ["plain"], "serviceSelectors":
                           [{"matchLabels": {"tier": "gold"}}], "largeCommunities": ["64512:7:7"]}),
                ),
            ],
            peers: vec![peer("ebgp", 64513), peer("ibgp", 64512)],
        }
    }

    fn decider(setting: &Setting) -> Decider<'_> {
        Decider::new(&Snapshot {
            node: &setting.node,
            pools: &setting.pools,
            advertisements: &setting.ads,
            peers: &setting.peers,
            services: &[],
        })
    }

    /// A tiny deterministic generator (xorshift), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_service(rng: &mut Rng, name: &str) -> ServiceView {
        // Few addresses, so Services share them; some outside every pool.
        let ip = |rng: &mut Rng| -> IpAddr {
            match rng.next(3) {
                0 => format!("192.0.2.{}", rng.next(6)),
                1 => format!("198.51.100.{}", rng.next(6)),
                _ => format!("203.0.113.{}", rng.next(2)),
            }
            .parse()
            .unwrap()
        };
        let mut ips = vec![ip(rng)];
        if rng.next(4) == 0 {
            ips.push(ip(rng));
        }
        let mut endpoints = EndpointView::default();
        match rng.next(4) {
            0 => {}
            1 => {
                endpoints.ready_nodes.insert("n1".into());
            }
            2 => {
                endpoints.ready_nodes.insert("n2".into());
            }
            _ => {
                endpoints.serving_nodes.insert("n1".into());
            }
        }
        let mut labels = std::collections::BTreeMap::new();
        if rng.next(2) == 0 {
            labels.insert("tier".to_owned(), "gold".to_owned());
        }
        ServiceView {
            key: ServiceKey::new("app", name),
            labels,
            ips,
            traffic_policy: if rng.next(2) == 0 {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            },
            endpoints,
        }
    }

    fn id(name: &str) -> ServiceId {
        ("app".into(), name.into())
    }

    /// Per peer, what the sessions were told so far.
    type Sent = BTreeMap<PeerName, HashMap<IpNet, Arc<RouteAttributes>>>;

    fn apply(sent: &mut Sent, changes: RouteChanges) {
        for (peer, list) in changes {
            let map = sent.entry(peer).or_default();
            let mut last = None;
            for (prefix, attrs) in list {
                assert!(last < Some(prefix), "each prefix once, in order");
                last = Some(prefix);
                match attrs {
                    Some(a) => map.insert(prefix, a),
                    None => map.remove(&prefix),
                };
            }
        }
    }

    /// What deciding everything at once says each peer should have.
    fn expected(setting: &Setting, services: &[ServiceView]) -> (Sent, usize) {
        let decisions = decide(&Snapshot {
            node: &setting.node,
            pools: &setting.pools,
            advertisements: &setting.ads,
            peers: &setting.peers,
            services,
        });
        let sent = desired_routes(&decisions)
            .into_iter()
            .map(|(peer, routes)| {
                let map = routes
                    .iter()
                    .map(|(p, r)| (*p, Arc::new(attributes(r))))
                    .collect();
                (peer, map)
            })
            .collect();
        (sent, decisions.announced_ip_count())
    }

    fn same(a: &Sent, b: &Sent) -> bool {
        let nonempty = |s: &Sent| -> Sent {
            s.iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(p, m)| (p.clone(), m.clone()))
                .collect()
        };
        nonempty(a) == nonempty(b)
    }

    #[test]
    fn one_service_at_a_time_gives_what_deciding_everything_gives() {
        let mut setting = setting();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        let mut services: Vec<Option<ServiceView>> = vec![None; names.len()];
        let mut table = RouteTable::new();
        let mut sent = Sent::new();
        for step in 0..600 {
            let mut batch = Batch::default();
            // Mostly one or two Services change; now and then the node does, and every
            // Service is decided again, as the speaker does.
            let everything = step % 97 == 0;
            if everything {
                setting.node.ready = rng.next(4) != 0;
            }
            let decider = decider(&setting);
            let changed: Vec<usize> = if everything {
                (0..names.len()).collect()
            } else {
                (0..1 + rng.next(2))
                    .map(|_| rng.next(names.len() as u64) as usize)
                    .collect()
            };
            for &i in &changed {
                if !everything {
                    services[i] = match rng.next(5) {
                        0 => None,
                        _ => Some(random_service(&mut rng, &names[i])),
                    };
                }
            }
            for &i in &changed {
                let d = services[i].as_ref().map(|v| decider.decide_service(v));
                table.set_service(&id(&names[i]), d.as_ref(), &mut batch);
            }
            apply(&mut sent, table.finish(batch));
            let present: Vec<ServiceView> = services.iter().flatten().cloned().collect();
            let (want, announced) = expected(&setting, &present);
            assert!(same(&sent, &want), "step {step}: {sent:?} != {want:?}");
            assert_eq!(table.announced_ip_count(), announced, "step {step}");
            for peer in ["ebgp", "ibgp"] {
                let full = table.routes_for(peer);
                let want = want.get(peer).cloned().unwrap_or_default();
                assert_eq!(full, want, "step {step}: full set for {peer}");
            }
        }
    }

    #[test]
    fn flips_only_when_the_announcement_starts_or_stops() {
        let setting = setting();
        let decider = decider(&setting);
        let view = |ready: bool| {
            let mut v = ServiceView {
                key: ServiceKey::new("app", "web"),
                labels: Default::default(),
                ips: vec!["192.0.2.1".parse().unwrap()],
                traffic_policy: TrafficPolicy::Local,
                endpoints: EndpointView::default(),
            };
            if ready {
                v.endpoints.ready_nodes.insert("n1".into());
            }
            decider.decide_service(&v)
        };
        let mut table = RouteTable::new();
        let mut run = |d: Option<ServiceDecision>| {
            let mut batch = Batch::default();
            let flip = table.set_service(&id("web"), d.as_ref(), &mut batch);
            let changes = table.finish(batch);
            (flip, changes.values().map(Vec::len).sum::<usize>())
        };
        assert_eq!(run(Some(view(true))), (None, 2), "the first run is silent");
        assert_eq!(
            run(Some(view(true))),
            (None, 0),
            "no change, no flip, nothing sent"
        );
        assert_eq!(run(Some(view(false))), (Some(Flip::Stopped), 2));
        assert_eq!(run(Some(view(false))), (None, 0));
        assert_eq!(run(Some(view(true))), (Some(Flip::Started), 2));
        assert_eq!(
            run(None),
            (None, 2),
            "a deleted Service is withdrawn without a flip"
        );
        assert_eq!(run(Some(view(true))), (Some(Flip::Started), 2));
    }
}
