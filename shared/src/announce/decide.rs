//! The decision rule: which routes this node sends to which peer, and why not the others.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::reason::Reason;
use super::snapshot::{ServiceView, Snapshot, TrafficPolicy};
use crate::allocator::ServiceKey;
use crate::constants::EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS;
use crate::validate::{
    Community, IpFamily, ParsedAdvertisement, ParsedPeer, ParsedPool, any_selector_matches,
};

/// A `BGPPeer`'s name. Shared (`Arc`) because every decision names its peer; look-ups by
/// `&str` work on every map keyed by it.
pub type PeerName = Arc<str>;

/// One route as sent to one peer: NLRI plus the attributes ferrolb sets.
///
/// Two routes are equal exactly when re-sending one in place of the other changes nothing
/// at the router, so the speaker can diff [`desired_routes`] against what it sent with `==`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The announced prefix: the Service address masked to the advertisement's
    /// `aggregationLength` (IPv4) or `aggregationLengthV6` (IPv6).
    pub prefix: IpNet,
    /// NEXT_HOP; `None` means the session's local address (the only choice today: no field
    /// sets another).
    pub next_hop: Option<IpAddr>,
    /// COMMUNITIES values (RFC 1997), ascending, no duplicates.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITIES values (RFC 8092), ascending, no duplicates.
    pub large_communities: Vec<[u32; 3]>,
    /// LOCAL_PREF; only ever set on iBGP sessions (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
}

impl Route {
    /// Merges another route into this one, so that one prefix is sent once per peer however
    /// many advertisements or Services lead to it. Meant for routes of the same prefix; the
    /// prefix of `self` is kept.
    ///
    /// The merge is commutative and associative (the result never depends on input order):
    /// communities and large communities are united; LOCAL_PREF is the highest one set
    /// (the most preferred of what the operator asked for; an advertisement without
    /// `localPref` does not lower it); NEXT_HOP is the session's own address if any part
    /// asks for it, else the lowest address.
    pub fn merge(&mut self, other: &Route) {
        union_into(&mut self.communities, &other.communities);
        union_into(&mut self.large_communities, &other.large_communities);
        self.local_pref = self.local_pref.max(other.local_pref);
        self.next_hop = match (self.next_hop, other.next_hop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
}

/// Sorted-set union of two ascending, duplicate-free lists into `into`. Allocates only when
/// `other` adds something, which is rare: Services mostly share their advertisements.
fn union_into<T: Ord + Copy>(into: &mut Vec<T>, other: &[T]) {
    if other.iter().all(|x| into.binary_search(x).is_ok()) {
        return;
    }
    let mut out = Vec::with_capacity(into.len() + other.len());
    let (mut a, mut b) = (into.iter().peekable(), other.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Less => a.next(),
                Ordering::Greater => b.next(),
                Ordering::Equal => {
                    b.next();
                    a.next()
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next.copied());
    }
    *into = out;
}

/// One route a (Service address, peer) pair produces, with the advertisements behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The route, already merged over `advertisements`.
    pub route: Route,
    /// Names of the `BGPAdvertisement`s that produced this prefix for this peer, ascending.
    pub advertisements: Vec<Arc<str>>,
}

/// What this node does with one Service address towards one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Announced. One entry per distinct prefix, ascending: advertisements with different
    /// aggregation lengths each yield their own prefix, as MetalLB does. Never empty.
    Announced(Vec<Announcement>),
    /// Not announced, with the first [`Reason`] that holds.
    NotAnnounced(Reason),
}

impl Outcome {
    /// Whether the address is announced.
    pub fn is_announced(&self) -> bool {
        matches!(self, Self::Announced(_))
    }

    /// The reason when not announced.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Announced(_) => None,
            Self::NotAnnounced(r) => Some(*r),
        }
    }
}

/// The decision for one Service address, towards every peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpDecision {
    /// The Service address.
    pub ip: IpAddr,
    /// Names of the pools that contain the address, ascending (normally one; several only
    /// while pools overlap).
    pub pools: Vec<Arc<str>>,
    /// The outcome for every `BGPPeer` (including those with no session on this node), by
    /// peer name ascending.
    pub peers: Vec<(PeerName, Outcome)>,
}

impl IpDecision {
    /// The outcome towards `peer`; `None` for an unknown peer.
    pub fn outcome(&self, peer: &str) -> Option<&Outcome> {
        self.peers
            .binary_search_by(|(p, _)| (**p).cmp(peer))
            .ok()
            .map(|i| &self.peers[i].1)
    }

    /// Whether the address is announced to at least one peer.
    pub fn is_announced(&self) -> bool {
        self.peers.iter().any(|(_, o)| o.is_announced())
    }
}

/// The decision for one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDecision {
    /// Per distinct address of the Service's status, ascending; empty when it has none yet.
    pub ips: Vec<IpDecision>,
}

impl ServiceDecision {
    /// The decision for one address; `None` if the Service does not hold it.
    pub fn ip(&self, ip: IpAddr) -> Option<&IpDecision> {
        self.ips
            .binary_search_by(|d| d.ip.cmp(&ip))
            .ok()
            .map(|i| &self.ips[i])
    }

    /// Whether this node announces any address of the Service to any peer: what an
    /// "announcement started/stopped" event on the Service follows.
    pub fn is_announced(&self) -> bool {
        self.ips.iter().any(IpDecision::is_announced)
    }
}

/// Everything [`decide`] concluded for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// The node decided for.
    pub node: String,
    /// Every `BGPPeer` by name.
    pub peers: BTreeSet<PeerName>,
    /// The peers whose `nodeSelectors` select this node: the sessions this node holds,
    /// whether or not it announces anything (a node that is not ready keeps its sessions
    /// and sends no routes).
    pub sessions: BTreeSet<PeerName>,
    /// Every Service of the snapshot.
    pub services: BTreeMap<ServiceKey, ServiceDecision>,
}

impl Decisions {
    /// Number of (Service, address) pairs announced to at least one peer (for the
    /// announced-Service-IPs gauge).
    pub fn announced_ip_count(&self) -> usize {
        self.services
            .values()
            .flat_map(|s| &s.ips)
            .filter(|d| d.is_announced())
            .count()
    }
}

/// Decides, for every Service address and every peer, whether this node announces it and
/// with which route, or why not (DESIGN §4).
///
/// A node announces a Service address to a peer when all of these hold (checked in this
/// order; the first failure is the [`Reason`] reported):
/// 1. the node lacks the exclude label, is Ready and its network is available;
/// 2. a pool contains the address;
/// 3. the peer's `nodeSelectors` select the node, and the peer's address has the address's
///    family;
/// 4. an advertisement covers the pool (`ipAddressPools` names, `ipAddressPoolSelectors`,
///    both empty = every pool) and, among those, one selects the node (`nodeSelectors`),
///    the Service (`serviceSelectors`) and the peer (`peers`, empty = every peer);
/// 5. endpoints — `Cluster`: some node has a ready endpoint, or, when none is ready
///    anywhere, a serving (terminating) one, as kube-proxy falls back. `Local`: this node
///    has a ready endpoint, or a serving one while no node anywhere has a ready one. A node
///    with only terminating endpoints withdraws as long as a healthy node exists, so the
///    routers' ECMP moves traffic to ready pods while the old ones drain, and the last
///    terminating pods keep serving instead of black-holing the Service.
///
/// Every eligible node announces (the routers spread traffic with ECMP); a `Cluster`
/// Service is announced by nodes without endpoints too.
///
/// All advertisements that pass for an (address, peer) contribute: those with the same
/// aggregation length are merged into one route (see [`Route::merge`]); different lengths
/// give one route each.
///
/// Cost: O(services × addresses × (pools + advertisements × peers)), nothing proportional
/// to pool size. The result does not depend on the order of any input slice. To re-decide
/// one Service after its Service or EndpointSlices changed, use [`Decider`].
pub fn decide(snapshot: &Snapshot<'_>) -> Decisions {
    let decider = Decider::new(snapshot);
    let services = snapshot
        .services
        .iter()
        .map(|s| (s.key.clone(), decider.decide_service(s)))
        .collect();
    decider.decisions(services)
}

struct PoolEntry<'a> {
    name: Arc<str>,
    pool: &'a ParsedPool,
    /// Indices into `Decider::ads` covering this pool, ascending.
    ads: Vec<usize>,
}

struct AdEntry<'a> {
    name: Arc<str>,
    ad: &'a ParsedAdvertisement,
    selects_node: bool,
    communities: Vec<u32>,
    large_communities: Vec<[u32; 3]>,
}

struct PeerEntry<'a> {
    name: PeerName,
    peer: &'a ParsedPeer,
    selects_node: bool,
}

/// The part of [`decide`] that depends only on the node, pools, advertisements and peers,
/// computed once; [`Decider::decide_service`] then decides one Service at a time, which is
/// what the speaker does when only a Service or its endpoints changed.
///
/// `decide_service` for every Service gives exactly [`decide`]'s result.
pub struct Decider<'a> {
    node_name: &'a str,
    node_reason: Option<Reason>,
    // All three sorted by name, so that iteration order (and with it every output) is
    // independent of the snapshot's order.
    pools: Vec<PoolEntry<'a>>,
    ads: Vec<AdEntry<'a>>,
    peers: Vec<PeerEntry<'a>>,
}

impl<'a> Decider<'a> {
    /// Prepares the node, pool, advertisement and peer parts of `snapshot` (its Services
    /// are not looked at).
    pub fn new(snapshot: &Snapshot<'a>) -> Self {
        let node = snapshot.node;
        let node_reason = if node
            .labels
            .contains_key(EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS)
        {
            Some(Reason::NodeExcluded)
        } else if !node.ready {
            Some(Reason::NodeNotReady)
        } else if node.network_unavailable {
            Some(Reason::NodeNetworkUnavailable)
        } else {
            None
        };
        let mut ad_views: Vec<_> = snapshot.advertisements.iter().collect();
        ad_views.sort_by(|a, b| a.name.cmp(&b.name));
        let ads: Vec<AdEntry<'a>> = ad_views
            .into_iter()
            .map(|a| {
                let p = &a.advertisement;
                let mut communities: Vec<u32> =
                    p.communities.iter().filter_map(Community::to_u32).collect();
                communities.sort_unstable();
                communities.dedup();
                let mut large_communities: Vec<[u32; 3]> =
                    p.communities.iter().filter_map(Community::large).collect();
                large_communities.sort_unstable();
                large_communities.dedup();
                AdEntry {
                    name: Arc::from(a.name.as_str()),
                    ad: p,
                    selects_node: any_selector_matches(&p.node_selectors, &node.labels),
                    communities,
                    large_communities,
                }
            })
            .collect();
        let mut pool_views: Vec<_> = snapshot.pools.iter().collect();
        pool_views.sort_by(|a, b| a.name.cmp(&b.name));
        let pools = pool_views
            .into_iter()
            .map(|pool| PoolEntry {
                name: Arc::from(pool.name.as_str()),
                pool: &pool.pool,
                ads: ads
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| {
                        a.ad.selects_all_pools()
                            || a.ad.ip_address_pools.contains(&pool.name)
                            || a.ad
                                .ip_address_pool_selectors
                                .iter()
                                .any(|s| s.matches(&pool.labels))
                    })
                    .map(|(i, _)| i)
                    .collect(),
            })
            .collect();
        let mut peer_views: Vec<_> = snapshot.peers.iter().collect();
        peer_views.sort_by(|a, b| a.name.cmp(&b.name));
        let peers = peer_views
            .into_iter()
            .map(|p| PeerEntry {
                name: Arc::from(p.name.as_str()),
                peer: &p.peer,
                selects_node: any_selector_matches(&p.peer.node_selectors, &node.labels),
            })
            .collect();
        Decider {
            node_name: &node.name,
            node_reason,
            pools,
            ads,
            peers,
        }
    }

    /// The peers whose `nodeSelectors` select this node (see [`Decisions::sessions`]).
    pub fn sessions(&self) -> BTreeSet<PeerName> {
        self.peers
            .iter()
            .filter(|p| p.selects_node)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Assembles [`Decisions`] from per-Service decisions made by this decider.
    pub fn decisions(&self, services: BTreeMap<ServiceKey, ServiceDecision>) -> Decisions {
        Decisions {
            node: self.node_name.to_owned(),
            peers: self.peers.iter().map(|p| p.name.clone()).collect(),
            sessions: self.sessions(),
            services,
        }
    }

    /// Decides one Service (see [`decide`] for the rule).
    pub fn decide_service(&self, service: &ServiceView) -> ServiceDecision {
        let endpoint_reason = endpoint_reason(service, self.node_name);
        let mut ips: Vec<IpAddr> = service.ips.clone();
        ips.sort_unstable();
        ips.dedup();
        let ips = ips
            .into_iter()
            .map(|ip| self.decide_ip(service, ip, endpoint_reason))
            .collect();
        ServiceDecision { ips }
    }

    fn decide_ip(
        &self,
        service: &ServiceView,
        ip: IpAddr,
        endpoint_reason: Option<Reason>,
    ) -> IpDecision {
        let mut pools = Vec::new();
        let mut covering: Vec<usize> = Vec::new();
        for pool in &self.pools {
            if pool.pool.contains(ip) {
                pools.push(pool.name.clone());
                covering.extend(&pool.ads);
            }
        }
        if pools.len() > 1 {
            covering.sort_unstable();
            covering.dedup();
        }
        let any_for_node = covering.iter().any(|&a| self.ads[a].selects_node);
        let candidates: Vec<usize> = covering
            .iter()
            .copied()
            .filter(|&a| {
                let ad = &self.ads[a];
                ad.selects_node && any_selector_matches(&ad.ad.service_selectors, &service.labels)
            })
            .collect();
        let family = IpFamily::of(ip);
        let peers = self
            .peers
            .iter()
            .map(|peer| {
                let reason = if let Some(r) = self.node_reason {
                    Some(r)
                } else if pools.is_empty() {
                    Some(Reason::IpNotInPool)
                } else if !peer.selects_node {
                    Some(Reason::PeerNodeMismatch)
                } else if family != IpFamily::of(peer.peer.peer_address) {
                    Some(Reason::AddressFamilyMismatch)
                } else if covering.is_empty() {
                    Some(Reason::NoAdvertisement)
                } else if !any_for_node {
                    Some(Reason::AdvertisementNodeMismatch)
                } else if candidates.is_empty() {
                    Some(Reason::AdvertisementServiceMismatch)
                } else {
                    None
                };
                let outcome = match reason {
                    Some(r) => Outcome::NotAnnounced(r),
                    None => self.announce(ip, peer, &candidates, endpoint_reason),
                };
                (peer.name.clone(), outcome)
            })
            .collect();
        IpDecision { ip, pools, peers }
    }

    /// Steps 4 (peer part) and 5 of the rule, and the routes.
    fn announce(
        &self,
        ip: IpAddr,
        peer: &PeerEntry<'_>,
        candidates: &[usize],
        endpoint_reason: Option<Reason>,
    ) -> Outcome {
        let family = IpFamily::of(ip);
        // (aggregation length, advertisement) for those naming this peer; sorted by length,
        // then by name (the index order).
        let mut for_peer: Vec<(u8, usize)> = candidates
            .iter()
            .copied()
            .filter(|&a| {
                let listed = &self.ads[a].ad.peers;
                listed.is_empty() || listed.contains(&*peer.name)
            })
            .map(|a| (self.ads[a].ad.aggregation_length_for(family), a))
            .collect();
        if for_peer.is_empty() {
            return Outcome::NotAnnounced(Reason::AdvertisementPeerMismatch);
        }
        if let Some(r) = endpoint_reason {
            return Outcome::NotAnnounced(r);
        }
        for_peer.sort_unstable();
        let mut announcements: Vec<Announcement> = Vec::new();
        for group in for_peer.chunk_by(|a, b| a.0 == b.0) {
            let mut route: Option<Route> = None;
            let mut names = Vec::with_capacity(group.len());
            for &(_, a) in group {
                let ad = &self.ads[a];
                let this = Route {
                    prefix: ad.ad.announced_prefix(ip),
                    next_hop: None,
                    communities: ad.communities.clone(),
                    large_communities: ad.large_communities.clone(),
                    local_pref: if peer.peer.is_ibgp() {
                        ad.ad.local_pref
                    } else {
                        None
                    },
                };
                match &mut route {
                    Some(r) => r.merge(&this),
                    None => route = Some(this),
                }
                names.push(ad.name.clone());
            }
            if let Some(route) = route {
                announcements.push(Announcement {
                    route,
                    advertisements: names,
                });
            }
        }
        // Shorter aggregates first; a masked network address never sorts after the longer
        // prefix it contains, so this is also `IpNet` order.
        announcements.sort_by_key(|a| a.route.prefix);
        Outcome::Announced(announcements)
    }
}

/// The endpoint rule (step 5 of [`decide`]); `None` when endpoints allow announcing.
fn endpoint_reason(service: &ServiceView, node: &str) -> Option<Reason> {
    let ep = &service.endpoints;
    let any_ready = !ep.ready_nodes.is_empty();
    if !any_ready && ep.serving_nodes.is_empty() {
        return Some(Reason::NoEndpoints);
    }
    match service.traffic_policy {
        TrafficPolicy::Cluster => None,
        TrafficPolicy::Local if ep.ready_nodes.contains(node) => None,
        TrafficPolicy::Local if ep.serving_nodes.contains(node) => {
            any_ready.then_some(Reason::LocalEndpointsTerminating)
        }
        TrafficPolicy::Local => Some(Reason::NoLocalEndpoints),
    }
}

/// The routes this node should have sent, per session peer and prefix: what the speaker
/// diffs against what it did send.
///
/// Every peer in [`Decisions::sessions`] is a key, with an empty map when nothing is to be
/// announced to it (so "withdraw everything" is visible). Routes for one prefix from
/// several Services (shared addresses, aggregation) are merged into one with
/// [`Route::merge`], so the result does not depend on the order of Services.
pub fn desired_routes(decisions: &Decisions) -> BTreeMap<PeerName, BTreeMap<IpNet, Route>> {
    let mut out: BTreeMap<PeerName, BTreeMap<IpNet, Route>> = decisions
        .sessions
        .iter()
        .map(|p| (p.clone(), BTreeMap::new()))
        .collect();
    for ip_decision in decisions.services.values().flat_map(|s| &s.ips) {
        for (peer, outcome) in &ip_decision.peers {
            let Outcome::Announced(announcements) = outcome else {
                continue;
            };
            let routes = out.entry(peer.clone()).or_default();
            for a in announcements {
                match routes.get_mut(&a.route.prefix) {
                    Some(existing) => existing.merge(&a.route),
                    None => {
                        routes.insert(a.route.prefix, a.route.clone());
                    }
                }
            }
        }
    }
    out
}
