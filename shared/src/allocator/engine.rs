//! The allocation engine: every pool, every Service, and who holds which address.
//!
//! # Model
//! Each Service has *active* addresses (what it should show in its status) and *retiring*
//! ones (addresses its status may still show although it may no longer have them: after a
//! pool shrank, its request changed, or a status write failed). A retiring address is not
//! handed to anyone else until the controller reports, through [`Allocator::commit`], a
//! status without it, or releases the Service. So no address is ever in two statuses
//! unless the two Services share it legally.
//!
//! # Pool order (DESIGN §3)
//! 1. pools whose `serviceAllocation` admits the Service, by `priority` (lower first; pools
//!    without a priority after those with one), then by name;
//! 2. pools without `serviceAllocation`, by name.
//!
//! `autoAssign: false` pools are skipped in that list; they serve only Services that name
//! them or ask for one of their addresses. A pool whose `serviceAllocation` does not admit a
//! Service is closed to it entirely, even when asked for by name.
//!
//! # Choosing addresses
//! - Requested addresses are assigned exactly, or refused (all or nothing).
//! - Otherwise, per wanted family: an address the Service already holds and may keep; else
//!   an address a compatible Service with the same sharing key holds in a candidate pool
//!   (so Services meant to share do share); else the lowest free address of the first
//!   candidate pool that has one. Dual-stack prefers one pool for both families and falls
//!   back to different pools.
//! - `SingleStack` wants the first family; `RequireDualStack` both or nothing new;
//!   `PreferDualStack` both when it can, else whichever it can get, primary first.
//!
//! # Keeping what one has
//! An address a Service already holds stays valid while it lies in a pool that admits the
//! Service (ignoring `autoAssign` and overlaps, so neither flipping `autoAssign` nor adding
//! an overlapping pool renumbers anyone), in the named pool if the Service names one, among
//! its requested addresses if it requests some, of a wanted family, and still shareable with
//! its co-holders. New addresses never come from an overlapping part.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::index::FamilyStats;
use super::pools::{Pool, PoolOverlap, PoolSet};
use super::range::IpFamily;
use super::refusal::{Refusal, SharingConflict};
use super::types::{IpFamilyPolicy, PoolConfig, ServiceKey, ServiceRequest};

/// The result of a successful allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Addresses for the Service's status, in `ipFamilies` order.
    pub ips: Vec<IpAddr>,
    /// Whether `ips` differs from what the Service held before the call.
    pub changed: bool,
    /// Addresses the Service held and must drop from its status (if it still shows them);
    /// they stay reserved until [`Allocator::commit`] sees a status without them.
    pub retiring: Vec<IpAddr>,
}

/// Outcome of taking back the addresses a Service's status already shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reclaim {
    /// Addresses the Service keeps.
    pub kept: Vec<IpAddr>,
    /// Addresses it may not keep, and why. They stay reserved (retiring) until its status
    /// is rewritten.
    pub refused: Vec<(IpAddr, Refusal)>,
}

/// A Service that lost an address because the pools changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Displaced {
    /// The Service.
    pub service: ServiceKey,
    /// The address it may no longer have (reserved until its status is rewritten).
    pub ip: IpAddr,
    /// Why.
    pub refusal: Refusal,
}

/// What changing the pools did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolsReport {
    /// Pairs of pools claiming the same addresses (both pools get an `Overlaps` condition).
    pub overlaps: Vec<PoolOverlap>,
    /// Pool names given more than once (the first one is used).
    pub duplicates: Vec<String>,
    /// Services that lost an address.
    pub displaced: Vec<Displaced>,
}

impl PoolsReport {
    /// Names of the pools overlapping `pool`.
    pub fn overlaps_of(&self, pool: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .overlaps
            .iter()
            .filter_map(|o| match &o.pools {
                [a, b] if a == pool => Some(b.clone()),
                [a, b] if b == pool => Some(a.clone()),
                _ => None,
            })
            .collect();
        out.dedup();
        out
    }
}

/// Address counts of a pool (for its status and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// IPv4 counts.
    pub ipv4: FamilyStats,
    /// IPv6 counts.
    pub ipv6: FamilyStats,
}

#[derive(Clone, Debug)]
struct Holding {
    request: ServiceRequest,
    active: Vec<IpAddr>,
    retiring: BTreeSet<IpAddr>,
    /// Why the last allocation failed; `None` after a success.
    refusal: Option<Refusal>,
}

/// A small sorted set of Services: most addresses have one holder, and a one-element
/// `Vec` is far cheaper than a B-tree node.
#[derive(Clone, Debug, Default)]
struct KeySet(Vec<ServiceKey>);

impl KeySet {
    fn insert(&mut self, key: ServiceKey) {
        if let Err(pos) = self.0.binary_search(&key) {
            self.0.insert(pos, key);
        }
    }

    fn remove(&mut self, key: &ServiceKey) {
        if let Ok(pos) = self.0.binary_search(key) {
            self.0.remove(pos);
        }
    }

    fn contains(&self, key: &ServiceKey) -> bool {
        self.0.binary_search(key).is_ok()
    }

    fn iter(&self) -> std::slice::Iter<'_, ServiceKey> {
        self.0.iter()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Clone, Debug, Default)]
struct IpUse {
    active: KeySet,
    retiring: KeySet,
    /// Sharing key of the active holders (all equal, sharing being legal).
    key: Option<String>,
}

/// One value per address family (a Service has at most one address of each).
#[derive(Clone, Debug)]
struct FamilyMap<T>([Option<T>; 2]);

impl<T> Default for FamilyMap<T> {
    fn default() -> Self {
        FamilyMap([None, None])
    }
}

impl<T> FamilyMap<T> {
    fn slot(family: IpFamily) -> usize {
        match family {
            IpFamily::V4 => 0,
            IpFamily::V6 => 1,
        }
    }

    fn insert(&mut self, family: IpFamily, value: T) -> Option<T> {
        self.0[Self::slot(family)].replace(value)
    }

    fn get(&self, family: &IpFamily) -> Option<&T> {
        self.0[Self::slot(*family)].as_ref()
    }

    fn contains_key(&self, family: &IpFamily) -> bool {
        self.get(family).is_some()
    }

    fn remove(&mut self, family: &IpFamily) -> Option<T> {
        self.0[Self::slot(*family)].take()
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn len(&self) -> usize {
        self.0.iter().filter(|v| v.is_some()).count()
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }

    fn iter(&self) -> impl Iterator<Item = (IpFamily, &T)> {
        IpFamily::ALL
            .into_iter()
            .zip(self.0.iter())
            .filter_map(|(f, v)| v.as_ref().map(|v| (f, v)))
    }
}

/// Where a planned address comes from.
#[derive(Clone, Debug)]
enum Source {
    Have(IpAddr),
    Fresh(String),
}

/// The allocator. Pure and synchronous: the controller feeds it pools and Services and
/// writes the results.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: PoolSet,
    /// Hashed: looked up several times per allocation, and its order never shows.
    /// Boxed: a `Holding` is a few hundred bytes and the table keeps up to half its slots
    /// empty, so unboxed values would waste memory at 10k+ Services.
    services: HashMap<ServiceKey, Box<Holding>>,
    ips: BTreeMap<IpAddr, IpUse>,
    by_sharing_key: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// Records `new_key` as the sharing key of the active holders of `ip`, in `u` and in the
/// key → addresses index.
fn rekey(
    by_sharing_key: &mut BTreeMap<String, BTreeSet<IpAddr>>,
    u: &mut IpUse,
    ip: IpAddr,
    new_key: Option<&str>,
) {
    if u.key.as_deref() == new_key {
        return;
    }
    if let Some(old) = std::mem::replace(&mut u.key, new_key.map(str::to_owned)) {
        unindex(by_sharing_key, &old, ip);
    }
    if let Some(k) = new_key {
        by_sharing_key.entry(k.to_owned()).or_default().insert(ip);
    }
}

fn unindex(by_sharing_key: &mut BTreeMap<String, BTreeSet<IpAddr>>, key: &str, ip: IpAddr) {
    if let Some(set) = by_sharing_key.get_mut(key) {
        set.remove(&ip);
        if set.is_empty() {
            by_sharing_key.remove(key);
        }
    }
}

/// Why two Services may not share an address, if they may not. `ours` is the newcomer.
pub fn sharing_conflict(ours: &ServiceRequest, theirs: &ServiceRequest) -> Option<SharingConflict> {
    let Some(our_key) = ours.effective_sharing_key() else {
        return Some(SharingConflict::NotSharing);
    };
    let Some(their_key) = theirs.effective_sharing_key() else {
        return Some(SharingConflict::HolderNotSharing);
    };
    if our_key != their_key {
        return Some(SharingConflict::KeyMismatch {
            ours: our_key.to_owned(),
            theirs: their_key.to_owned(),
        });
    }
    if let Some(&(protocol, port)) = ours.ports.iter().find(|p| theirs.ports.contains(p)) {
        return Some(SharingConflict::PortClash { protocol, port });
    }
    // Local on either side: both Local, same pods (otherwise the address would be announced
    // from nodes that have endpoints of only one of them).
    let same_pods = ours.external_traffic_policy_local == theirs.external_traffic_policy_local
        && (!ours.external_traffic_policy_local || ours.pod_selector == theirs.pod_selector);
    if !same_pods {
        return Some(SharingConflict::DifferentPods);
    }
    None
}

/// Families the Service wants, primary first. `hint` (the family of an address it asks for
/// or already has) picks the primary when `ipFamilies` is empty.
fn wanted_families(req: &ServiceRequest, hint: Option<IpFamily>) -> &'static [IpFamily] {
    let primary = req
        .families
        .families
        .first()
        .copied()
        .or_else(|| req.requested_ips.first().map(|ip| IpFamily::of(*ip)))
        .or(hint)
        .unwrap_or(IpFamily::V4);
    let single = req.families.policy == IpFamilyPolicy::SingleStack;
    match (primary, single) {
        (IpFamily::V4, true) => &[IpFamily::V4],
        (IpFamily::V6, true) => &[IpFamily::V6],
        (IpFamily::V4, false) => &[IpFamily::V4, IpFamily::V6],
        (IpFamily::V6, false) => &[IpFamily::V6, IpFamily::V4],
    }
}

impl Allocator {
    /// An allocator with no pools and no Services.
    pub fn new() -> Self {
        Self::default()
    }

    // ----- pools -------------------------------------------------------------------------

    /// Replaces the pool configuration. Addresses of pools that overlap are never handed
    /// out (Services already holding one keep it). Services holding an address no pool
    /// admits any more are reported; they lose it, but it stays reserved until their status
    /// no longer shows it ([`Allocator::commit`]) or they are released.
    pub fn set_pools(&mut self, configs: Vec<PoolConfig>) -> PoolsReport {
        let (mut set, duplicates, rebuilt) = PoolSet::build(configs, &mut self.pools);
        for name in rebuilt {
            if let Some(pool) = set.pools.get_mut(&name) {
                for range in pool.effective.clone() {
                    let taken: Vec<IpAddr> = self
                        .ips
                        .range(range.start()..=range.end())
                        .map(|(ip, _)| *ip)
                        .collect();
                    for ip in taken {
                        // Skipped (.0/.255) addresses are simply not in the index.
                        let _ = pool.index.allocate_ip(ip);
                    }
                }
            }
        }
        self.pools = set;

        let mut displaced = Vec::new();
        let mut moves: Vec<(ServiceKey, Vec<IpAddr>)> = Vec::new();
        for (key, holding) in &self.services {
            let mut keep = Vec::new();
            for &ip in &holding.active {
                match self.check_pool(&holding.request, ip) {
                    Ok(_) => keep.push(ip),
                    Err(refusal) => displaced.push(Displaced {
                        service: key.clone(),
                        ip,
                        refusal,
                    }),
                }
            }
            if keep.len() != holding.active.len() {
                moves.push((key.clone(), keep));
            }
        }
        for (key, keep) in moves {
            if let Some(request) = self.services.get(&key).map(|h| h.request.clone()) {
                self.set_active(&request, keep);
            }
        }
        displaced.sort_by(|a, b| (&a.service, a.ip).cmp(&(&b.service, b.ip)));
        PoolsReport {
            overlaps: self.pools.overlaps.clone(),
            duplicates,
            displaced,
        }
    }

    /// Overlaps found by the last [`Allocator::set_pools`].
    pub fn overlaps(&self) -> &[PoolOverlap] {
        &self.pools.overlaps
    }

    /// Counts of a pool; `None` for an unknown pool. Addresses in an overlapping part count
    /// for neither pool.
    pub fn pool_stats(&self, pool: &str) -> Option<PoolStats> {
        self.pools.pools.get(pool).map(|p| PoolStats {
            ipv4: p.index.stats(IpFamily::V4),
            ipv6: p.index.stats(IpFamily::V6),
        })
    }

    /// The pool an address belongs to: the one whose free index holds it, else (overlaps)
    /// the first pool by name whose ranges contain it.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.pools
            .pools
            .values()
            .find(|p| p.index.contains(ip))
            .or_else(|| self.pools.pools.values().find(|p| p.covers(ip)))
            .map(|p| p.config.name.as_str())
    }

    /// Pools the Service would get a new address from, in the order tried.
    pub fn pool_order(&self, req: &ServiceRequest) -> Result<Vec<String>, Refusal> {
        Ok(self
            .candidate_pools(req)?
            .into_iter()
            .map(|p| p.config.name.clone())
            .collect())
    }

    fn candidate_pools(&self, req: &ServiceRequest) -> Result<Vec<&Pool>, Refusal> {
        if let Some(name) = &req.requested_pool {
            let pool = self
                .pools
                .pools
                .get(name)
                .ok_or_else(|| Refusal::PoolNotFound { pool: name.clone() })?;
            if !pool.admits(req) {
                return Err(Refusal::PoolNotAllowed { pool: name.clone() });
            }
            return Ok(vec![pool]);
        }
        let mut restricted: Vec<&Pool> = Vec::new();
        let mut open: Vec<&Pool> = Vec::new();
        for pool in self.pools.pools.values() {
            if !pool.config.auto_assign {
                continue;
            }
            match &pool.config.allocation {
                Some(a) if a.admits(req) => restricted.push(pool),
                Some(_) => {}
                None => open.push(pool),
            }
        }
        // Stable sort keeps name order among equal priorities.
        restricted.sort_by_key(|p| {
            let prio = p.config.allocation.as_ref().and_then(|a| a.priority);
            (prio.is_none(), prio)
        });
        restricted.extend(open);
        let order = restricted;
        if order.is_empty() {
            return Err(Refusal::NoPoolForService);
        }
        Ok(order)
    }

    // ----- queries -----------------------------------------------------------------------

    /// The addresses a Service holds (what its status should show).
    pub fn assigned(&self, key: &ServiceKey) -> &[IpAddr] {
        self.services.get(key).map_or(&[], |h| h.active.as_slice())
    }

    /// Addresses a Service lost but whose release its status has not confirmed yet.
    pub fn retiring(&self, key: &ServiceKey) -> Vec<IpAddr> {
        self.services
            .get(key)
            .map(|h| h.retiring.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Services holding `ip` (more than one only when legally shared).
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.ips
            .get(&ip)
            .map(|u| u.active.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Services whose last allocation was refused, in name order: worth retrying when
    /// addresses are released or pools change.
    pub fn pending(&self) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|(_, h)| h.refusal.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Why the Service's last allocation was refused, if it was.
    pub fn refusal(&self, key: &ServiceKey) -> Option<&Refusal> {
        self.services.get(key).and_then(|h| h.refusal.as_ref())
    }

    /// Services known to the allocator, in no particular order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    // ----- allocation --------------------------------------------------------------------

    /// Gives the Service its addresses: the ones it holds if still valid (no churn), else
    /// new ones. On refusal, it keeps the addresses it holds that are still valid, and
    /// nothing new is taken.
    pub fn allocate(&mut self, req: &ServiceRequest) -> Result<Allocation, Refusal> {
        let (previous, retiring): (Vec<IpAddr>, Vec<IpAddr>) = match self.services.get(&req.key) {
            Some(h) => (h.active.clone(), h.retiring.iter().copied().collect()),
            None => (Vec::new(), Vec::new()),
        };
        let hint = previous.first().map(|ip| IpFamily::of(*ip));
        let wanted = wanted_families(req, hint);

        let mut kept: FamilyMap<IpAddr> = FamilyMap::default();
        for &ip in &previous {
            let family = IpFamily::of(ip);
            if wanted.contains(&family)
                && !kept.contains_key(&family)
                && self.check_keep(req, ip).is_ok()
            {
                kept.insert(family, ip);
            }
        }
        // An address it lost but its status may still show is the best choice: no churn.
        for ip in retiring {
            let family = IpFamily::of(ip);
            if wanted.contains(&family)
                && !kept.contains_key(&family)
                && (req.requested_ips.is_empty() || req.requested_ips.contains(&ip))
                && self.check_take(req, ip, true).is_ok()
            {
                kept.insert(family, ip);
            }
        }

        let planned = if req.requested_ips.is_empty() {
            self.plan_auto(req, wanted, &kept)
        } else {
            self.plan_requested(req, wanted, &kept)
        };
        let sources = match planned {
            Ok(sources) => sources,
            Err(refusal) => {
                let keep: Vec<IpAddr> =
                    wanted.iter().filter_map(|f| kept.get(f).copied()).collect();
                self.set_active(req, keep);
                if let Some(h) = self.services.get_mut(&req.key) {
                    h.refusal = Some(refusal.clone());
                }
                return Err(refusal);
            }
        };
        let mut ips = Vec::with_capacity(sources.len());
        for (family, source) in sources {
            let ip = match source {
                Source::Have(ip) => ip,
                Source::Fresh(pool) => {
                    let fresh = self
                        .pools
                        .pools
                        .get_mut(&pool)
                        .and_then(|p| p.index.allocate(family));
                    match fresh {
                        Some(ip) => ip,
                        None => {
                            // Planning checked availability; this is unreachable in practice,
                            // but never hand out anything half-done.
                            for &ip in &ips {
                                if !previous.contains(&ip) && !self.ips.contains_key(&ip) {
                                    self.release_index(ip);
                                }
                            }
                            return Err(Refusal::PoolExhausted {
                                family,
                                pools: vec![pool],
                            });
                        }
                    }
                }
            };
            ips.push(ip);
        }
        self.set_active(req, ips.clone());
        let retiring = match self.services.get_mut(&req.key) {
            Some(h) => {
                h.refusal = None;
                h.retiring.iter().copied().collect()
            }
            None => Vec::new(),
        };
        Ok(Allocation {
            changed: ips != previous,
            ips,
            retiring,
        })
    }

    /// Requested addresses: exactly these, validated, or a refusal.
    fn plan_requested(
        &self,
        req: &ServiceRequest,
        wanted: &[IpFamily],
        kept: &FamilyMap<IpAddr>,
    ) -> Result<Vec<(IpFamily, Source)>, Refusal> {
        let mut by_family: FamilyMap<IpAddr> = FamilyMap::default();
        for &ip in &req.requested_ips {
            let family = IpFamily::of(ip);
            if !wanted.contains(&family) {
                return Err(Refusal::InvalidRequestedIps {
                    detail: format!(
                        "{ip} is {family} but the Service is single-stack {}",
                        wanted[0]
                    ),
                });
            }
            if let Some(other) = by_family.insert(family, ip)
                && other != ip
            {
                return Err(Refusal::InvalidRequestedIps {
                    detail: format!("two {family} addresses requested ({other}, {ip})"),
                });
            }
        }
        if req.families.policy == IpFamilyPolicy::RequireDualStack && by_family.len() < 2 {
            return Err(Refusal::InvalidRequestedIps {
                detail: "RequireDualStack needs one requested address per family".to_owned(),
            });
        }
        let mut out = Vec::new();
        for family in wanted {
            let Some(&ip) = by_family.get(family) else {
                continue;
            };
            if kept.get(family) != Some(&ip) {
                self.check_take(req, ip, false)?;
            }
            out.push((*family, Source::Have(ip)));
        }
        Ok(out)
    }

    /// Automatic choice from the candidate pools.
    fn plan_auto(
        &self,
        req: &ServiceRequest,
        wanted: &[IpFamily],
        kept: &FamilyMap<IpAddr>,
    ) -> Result<Vec<(IpFamily, Source)>, Refusal> {
        // A Service that keeps what it has needs no pool to be open to it any more.
        let (candidates, order_refusal) = match self.candidate_pools(req) {
            Ok(order) => (order, None),
            Err(refusal) => (Vec::new(), Some(refusal)),
        };
        let mut plan: FamilyMap<Source> = FamilyMap::default();
        for (f, ip) in kept.iter() {
            plan.insert(f, Source::Have(*ip));
        }

        // Same sharing key: join a compatible holder's address before taking a fresh one.
        if req.effective_sharing_key().is_some() {
            for &family in wanted {
                if plan.contains_key(&family) {
                    continue;
                }
                if let Some(ip) = candidates
                    .iter()
                    .find_map(|p| self.shared_candidate(req, p, family))
                {
                    plan.insert(family, Source::Have(ip));
                }
            }
        }

        let missing: Vec<IpFamily> = wanted
            .iter()
            .copied()
            .filter(|f| !plan.contains_key(f))
            .collect();
        if !missing.is_empty() {
            // Prefer the pool of an address already planned, then the candidate order.
            let home = plan.values().find_map(|s| match s {
                Source::Have(ip) => self.pool_of(*ip),
                Source::Fresh(_) => None,
            });
            let reordered: Vec<&Pool>;
            let order: &[&Pool] = match home {
                Some(home) if candidates.iter().any(|p| p.config.name == home) => {
                    reordered = candidates
                        .iter()
                        .filter(|p| p.config.name == home)
                        .chain(candidates.iter().filter(|p| p.config.name != home))
                        .copied()
                        .collect();
                    &reordered
                }
                _ => &candidates,
            };
            let available = |pool: &Pool, family: IpFamily| pool.index.stats(family).available > 0;
            if let Some(pool) = order
                .iter()
                .find(|p| missing.iter().all(|f| available(p, *f)))
            {
                for &f in &missing {
                    plan.insert(f, Source::Fresh(pool.config.name.clone()));
                }
            } else {
                for &f in &missing {
                    if let Some(pool) = order.iter().find(|p| available(p, f)) {
                        plan.insert(f, Source::Fresh(pool.config.name.clone()));
                    }
                }
            }
        }

        let short = match req.families.policy {
            IpFamilyPolicy::PreferDualStack => {
                if plan.is_empty() {
                    Some(wanted[0])
                } else {
                    None
                }
            }
            IpFamilyPolicy::SingleStack | IpFamilyPolicy::RequireDualStack => {
                wanted.iter().copied().find(|f| !plan.contains_key(f))
            }
        };
        if let Some(family) = short {
            if let Some(refusal) = order_refusal {
                return Err(refusal);
            }
            let pools_with = |family: IpFamily| -> Vec<String> {
                candidates
                    .iter()
                    .filter(|p| p.has_family(family))
                    .map(|p| p.config.name.clone())
                    .collect()
            };
            // PreferDualStack is short only when it got nothing: name a family that exists.
            let family = if req.families.policy == IpFamilyPolicy::PreferDualStack
                && pools_with(family).is_empty()
                && !pools_with(family.other()).is_empty()
            {
                family.other()
            } else {
                family
            };
            let pools = pools_with(family);
            if pools.is_empty() {
                return Err(Refusal::FamilyUnavailable { family });
            }
            return Err(Refusal::PoolExhausted { family, pools });
        }
        Ok(wanted
            .iter()
            .filter_map(|f| plan.remove(f).map(|s| (*f, s)))
            .collect())
    }

    /// An address held by Services with the same sharing key that this one may join.
    fn shared_candidate(
        &self,
        req: &ServiceRequest,
        pool: &Pool,
        family: IpFamily,
    ) -> Option<IpAddr> {
        let key = req.effective_sharing_key()?;
        self.by_sharing_key.get(key)?.iter().copied().find(|&ip| {
            IpFamily::of(ip) == family
                && pool.covers(ip)
                && self.ips.get(&ip).is_some_and(|u| {
                    !u.active.is_empty()
                        && u.retiring.iter().all(|k| *k == req.key)
                        && u.active.iter().all(|k| {
                            *k == req.key
                                || self
                                    .services
                                    .get(k)
                                    .is_none_or(|h| sharing_conflict(req, &h.request).is_none())
                        })
                })
        })
    }

    /// The pool that makes `ip` legitimate for the Service, ignoring who else holds it.
    fn check_pool(&self, req: &ServiceRequest, ip: IpAddr) -> Result<String, Refusal> {
        if let Some(name) = &req.requested_pool {
            let pool = self
                .pools
                .pools
                .get(name)
                .ok_or_else(|| Refusal::PoolNotFound { pool: name.clone() })?;
            if !pool.admits(req) {
                return Err(Refusal::PoolNotAllowed { pool: name.clone() });
            }
            if !pool.covers_raw(ip) {
                return Err(Refusal::RequestedIpNotInAllowedPool {
                    ip,
                    pool: Some(name.clone()),
                });
            }
            if !pool.covers(ip) {
                return Err(Refusal::RequestedIpAvoided {
                    ip,
                    pool: name.clone(),
                });
            }
            return Ok(name.clone());
        }
        let mut avoided = None;
        for pool in self.pools.pools.values() {
            if pool.covers_raw(ip) && pool.admits(req) {
                if pool.covers(ip) {
                    return Ok(pool.config.name.clone());
                }
                avoided.get_or_insert_with(|| pool.config.name.clone());
            }
        }
        Err(match avoided {
            Some(pool) => Refusal::RequestedIpAvoided { ip, pool },
            None => Refusal::RequestedIpNotInAllowedPool { ip, pool: None },
        })
    }

    /// Whether the Service may keep an address it holds.
    fn check_keep(&self, req: &ServiceRequest, ip: IpAddr) -> Result<(), Refusal> {
        if !req.requested_ips.is_empty() && !req.requested_ips.contains(&ip) {
            return Err(Refusal::IpNotRequested { ip });
        }
        self.check_pool(req, ip)?;
        if let Some(u) = self.ips.get(&ip) {
            for other in u.active.iter().filter(|k| **k != req.key) {
                if let Some(h) = self.services.get(other)
                    && let Some(conflict) = sharing_conflict(req, &h.request)
                {
                    return Err(Refusal::SharingRefused {
                        ip,
                        holder: other.clone(),
                        conflict,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the Service may take an address it does not hold. `held_ok`: an address in
    /// an overlapping part may be taken (start-up reclaim of an address already in use).
    fn check_take(&self, req: &ServiceRequest, ip: IpAddr, held_ok: bool) -> Result<(), Refusal> {
        self.check_pool(req, ip)?;
        let usage = self.ips.get(&ip);
        if let Some(holder) = usage.and_then(|u| u.retiring.iter().find(|k| **k != req.key)) {
            return Err(Refusal::RequestedIpReleasing {
                ip,
                holder: holder.clone(),
            });
        }
        let others: Vec<&ServiceKey> = usage
            .map(|u| u.active.iter().filter(|k| **k != req.key).collect())
            .unwrap_or_default();
        if let Some(first) = others.first() {
            if req.effective_sharing_key().is_none() {
                return Err(Refusal::RequestedIpInUse {
                    ip,
                    holder: (*first).clone(),
                });
            }
            for other in others {
                if let Some(h) = self.services.get(other)
                    && let Some(conflict) = sharing_conflict(req, &h.request)
                {
                    return Err(Refusal::SharingRefused {
                        ip,
                        holder: other.clone(),
                        conflict,
                    });
                }
            }
            return Ok(());
        }
        let in_use_by_self = usage.is_some();
        if !held_ok && !in_use_by_self && !self.pools.pools.values().any(|p| p.index.contains(ip)) {
            return Err(Refusal::RequestedIpInOverlap {
                ip,
                pools: self.pools.overlapping_at(ip),
            });
        }
        Ok(())
    }

    // ----- start-up reclaim, status confirmation, release --------------------------------

    /// Takes back the addresses a Service's status already shows (start-up, before serving
    /// pending Services). Call it for every Service, oldest first (or use
    /// [`Allocator::reclaim_all`]): when two Services illegally show the same address, the
    /// first one keeps it and the other gets a refusal.
    pub fn assign_existing(&mut self, req: &ServiceRequest, status_ips: &[IpAddr]) -> Reclaim {
        let hint = status_ips.first().map(|ip| IpFamily::of(*ip));
        let wanted = wanted_families(req, hint);
        let mut outcome = Reclaim::default();
        let mut kept: FamilyMap<IpAddr> = FamilyMap::default();
        for &ip in self.assigned(&req.key) {
            kept.insert(IpFamily::of(ip), ip);
        }
        let mut seen = BTreeSet::new();
        for &ip in status_ips {
            if !seen.insert(ip) {
                continue;
            }
            let family = IpFamily::of(ip);
            let verdict = if kept.get(&family) == Some(&ip) {
                Ok(())
            } else if !wanted.contains(&family) {
                Err(Refusal::InvalidRequestedIps {
                    detail: format!(
                        "{ip} is {family} but the Service is single-stack {}",
                        wanted[0]
                    ),
                })
            } else if let Some(other) = kept.get(&family) {
                Err(Refusal::InvalidRequestedIps {
                    detail: format!("second {family} address {ip} besides {other}"),
                })
            } else if !req.requested_ips.is_empty() && !req.requested_ips.contains(&ip) {
                Err(Refusal::IpNotRequested { ip })
            } else {
                self.check_take(req, ip, true)
            };
            match verdict {
                Ok(()) => {
                    kept.insert(family, ip);
                }
                Err(refusal) => outcome.refused.push((ip, refusal)),
            }
        }
        let active: Vec<IpAddr> = wanted.iter().filter_map(|f| kept.get(f).copied()).collect();
        self.set_active(req, active.clone());
        // Refused addresses stay reserved (retiring) for this Service until its status is
        // rewritten: nobody new may take them while a status still shows them, even when
        // another Service keeps holding them.
        for (ip, _) in &outcome.refused {
            self.add_retiring(&req.key, *ip);
        }
        outcome.kept = active;
        outcome
    }

    /// [`Allocator::assign_existing`] for many Services, in a deterministic order: by
    /// `created`, then by namespace/name.
    pub fn reclaim_all(
        &mut self,
        mut services: Vec<(ServiceRequest, Vec<IpAddr>)>,
    ) -> Vec<(ServiceKey, Reclaim)> {
        services.sort_by(|a, b| (a.0.created, &a.0.key).cmp(&(b.0.created, &b.0.key)));
        services
            .into_iter()
            .map(|(req, ips)| {
                let outcome = self.assign_existing(&req, &ips);
                (req.key, outcome)
            })
            .collect()
    }

    /// Tells the allocator what the Service's status now shows (after a successful write, or
    /// as observed). Retiring addresses it no longer shows become free.
    pub fn commit(&mut self, key: &ServiceKey, status_ips: &[IpAddr]) {
        let gone: Vec<IpAddr> = match self.services.get(key) {
            Some(h) => h
                .retiring
                .iter()
                .filter(|ip| !status_ips.contains(ip))
                .copied()
                .collect(),
            None => return,
        };
        for ip in gone {
            if let Some(h) = self.services.get_mut(key) {
                h.retiring.remove(&ip);
            }
            if let Some(u) = self.ips.get_mut(&ip) {
                u.retiring.remove(key);
            }
            self.maybe_free(ip);
        }
    }

    /// Forgets a Service (deleted, or no longer a LoadBalancer of ours) and frees what only
    /// it held. Returns the freed addresses.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some(holding) = self.services.remove(key) else {
            return Vec::new();
        };
        let mut freed = Vec::new();
        for &ip in holding.active.iter().chain(&holding.retiring) {
            let Some(u) = self.ips.get_mut(&ip) else {
                continue;
            };
            u.active.remove(key);
            u.retiring.remove(key);
            if u.active.is_empty() {
                rekey(&mut self.by_sharing_key, u, ip, None);
            }
            if u.active.is_empty() && u.retiring.is_empty() {
                self.ips.remove(&ip);
                self.release_index(ip);
                freed.push(ip);
            }
        }
        freed
    }

    // ----- bookkeeping -------------------------------------------------------------------

    /// Makes `active` the Service's addresses; what it loses becomes retiring.
    fn set_active(&mut self, req: &ServiceRequest, active: Vec<IpAddr>) {
        let key = &req.key;
        let holding = match self.services.get_mut(key) {
            Some(h) => {
                if h.request != *req {
                    h.request = req.clone();
                }
                h
            }
            None => self.services.entry(key.clone()).or_insert_with(|| {
                Box::new(Holding {
                    request: req.clone(),
                    active: Vec::new(),
                    retiring: BTreeSet::new(),
                    refusal: None,
                })
            }),
        };
        let old = std::mem::replace(&mut holding.active, active.clone());
        for ip in old.iter().filter(|ip| !active.contains(ip)) {
            holding.retiring.insert(*ip);
        }
        for ip in &active {
            holding.retiring.remove(ip);
        }
        for &ip in old.iter().filter(|ip| !active.contains(ip)) {
            if let Some(u) = self.ips.get_mut(&ip) {
                u.active.remove(key);
                u.retiring.insert(key.clone());
                if u.active.is_empty() {
                    rekey(&mut self.by_sharing_key, u, ip, None);
                }
            }
        }
        for &ip in &active {
            let u = match self.ips.get_mut(&ip) {
                Some(u) => u,
                None => {
                    self.take_index(ip);
                    self.ips.entry(ip).or_default()
                }
            };
            u.retiring.remove(key);
            if !u.active.contains(key) {
                u.active.insert(key.clone());
            }
            // Co-holders share one key (sharing is legal), so the newest holder's key is it.
            rekey(&mut self.by_sharing_key, u, ip, req.effective_sharing_key());
        }
    }

    fn add_retiring(&mut self, key: &ServiceKey, ip: IpAddr) {
        let fresh = !self.ips.contains_key(&ip);
        self.ips.entry(ip).or_default().retiring.insert(key.clone());
        if fresh {
            self.take_index(ip);
        }
        if let Some(h) = self.services.get_mut(key) {
            h.retiring.insert(ip);
        }
    }

    fn take_index(&mut self, ip: IpAddr) {
        if let Some(pool) = self.pools.index_owner(ip) {
            // Already taken when it came from `PoolIndex::allocate`.
            let _ = pool.index.allocate_ip(ip);
        }
    }

    fn release_index(&mut self, ip: IpAddr) {
        if let Some(pool) = self.pools.index_owner(ip) {
            pool.index.release(ip);
        }
    }

    /// Drops the usage record of an address nobody holds; `true` if it was freed.
    fn maybe_free(&mut self, ip: IpAddr) -> bool {
        let unused = self
            .ips
            .get(&ip)
            .is_some_and(|u| u.active.is_empty() && u.retiring.is_empty());
        if unused {
            if let Some(u) = self.ips.remove(&ip)
                && let Some(k) = u.key
            {
                self.unindex_key(&k, ip);
            }
            self.release_index(ip);
        }
        unused
    }

    fn unindex_key(&mut self, key: &str, ip: IpAddr) {
        unindex(&mut self.by_sharing_key, key, ip);
    }

    /// Checks internal consistency and the safety rules; for tests. Returns the first
    /// violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (ip, u) in &self.ips {
            if u.active.is_empty() && u.retiring.is_empty() {
                return Err(format!("{ip}: usage record without holders"));
            }
            let holders: Vec<&Holding> = u
                .active
                .iter()
                .filter_map(|k| self.services.get(k).map(|h| &**h))
                .collect();
            if holders.len() != u.active.len() {
                return Err(format!("{ip}: active holder unknown"));
            }
            for (i, a) in holders.iter().enumerate() {
                if !a.active.contains(ip) {
                    return Err(format!(
                        "{ip}: {} listed but does not hold it",
                        a.request.key
                    ));
                }
                for b in &holders[i + 1..] {
                    if let Some(c) = sharing_conflict(&a.request, &b.request) {
                        return Err(format!(
                            "{ip} held by {} and {} illegally: {c}",
                            a.request.key, b.request.key
                        ));
                    }
                }
                if let Err(r) = self.check_pool(&a.request, *ip) {
                    return Err(format!(
                        "{ip} held by {} outside its pools: {r}",
                        a.request.key
                    ));
                }
            }
            for pool in self.pools.pools.values() {
                if pool.index.contains(*ip) && pool.index.is_free(*ip) {
                    return Err(format!("{ip} in use but free in pool {}", pool.config.name));
                }
            }
        }
        for (key, h) in &self.services {
            for ip in h.active.iter().chain(&h.retiring) {
                if !self.ips.contains_key(ip) {
                    return Err(format!("{key} holds {ip} without usage record"));
                }
            }
        }
        for pool in self.pools.pools.values() {
            for family in IpFamily::ALL {
                let used = pool
                    .effective
                    .iter()
                    .filter(|r| r.family() == family)
                    .map(|r| {
                        self.ips
                            .range(r.start()..=r.end())
                            .filter(|(ip, _)| pool.index.contains(**ip))
                            .count() as u128
                    })
                    .sum::<u128>();
                if used != pool.index.stats(family).in_use {
                    return Err(format!(
                        "pool {} {family}: index says {} in use, records say {used}",
                        pool.config.name,
                        pool.index.stats(family).in_use
                    ));
                }
            }
        }
        Ok(())
    }
}
