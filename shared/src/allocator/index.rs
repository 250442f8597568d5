//! The free-address index of one pool.
//!
//! Free addresses are kept as disjoint inclusive intervals in a `BTreeMap<start, end>`, so
//! memory follows the fragmentation of the pool (how many holes allocations have punched),
//! never its size: a fresh `/64` is one entry. Every operation is one or two tree look-ups,
//! O(log n) in the number of intervals:
//! - lowest free address: the first interval's start;
//! - take a given address: find the interval holding it and split it;
//! - release: re-insert and merge with the neighbours.
//!
//! `avoidBuggyIPs` costs no memory either: IPv4 addresses are mapped into a "slot" space
//! that leaves out every `.0` and `.255` (`slot = (addr >> 8) * 254 + (addr & 0xff) - 1`).
//! The mapping is monotonic, so "lowest free slot" is still "lowest free address", and a
//! pool range is still one contiguous slot interval.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::range::{IpFamily, IpRange, from_u128, to_u128};

/// Address counts of one family of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyStats {
    /// Addresses the pool may hand out (after `avoidBuggyIPs`), saturating at `u128::MAX`.
    pub total: u128,
    /// Addresses currently taken.
    pub in_use: u128,
    /// `total - in_use`.
    pub available: u128,
}

/// Why a specific address could not be taken from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// The address is not one the pool hands out (outside its ranges, or a skipped `.0`/`.255`).
    #[error("address is not in the pool")]
    NotInPool,
    /// The address is already taken.
    #[error("address is already in use")]
    InUse,
}

/// How addresses of one family map to slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    /// Slot = address.
    Plain,
    /// IPv4 with `.0` and `.255` left out.
    SkipBuggy,
}

impl Coding {
    fn encode(self, value: u128) -> Option<u128> {
        match self {
            Coding::Plain => Some(value),
            Coding::SkipBuggy => {
                let low = value & 0xff;
                if low == 0 || low == 0xff {
                    None
                } else {
                    Some((value >> 8) * 254 + low - 1)
                }
            }
        }
    }

    fn decode(self, slot: u128) -> u128 {
        match self {
            Coding::Plain => slot,
            Coding::SkipBuggy => ((slot / 254) << 8) | (slot % 254 + 1),
        }
    }

    /// The slots of the addresses `start..=end` that this coding keeps, if any.
    fn encode_range(self, start: u128, end: u128) -> Option<(u128, u128)> {
        match self {
            Coding::Plain => Some((start, end)),
            Coding::SkipBuggy => {
                let first = match start & 0xff {
                    0 => start + 1,
                    0xff => start + 2,
                    _ => start,
                };
                let last = match end & 0xff {
                    0xff => end.checked_sub(1)?,
                    0 => end.checked_sub(2)?,
                    _ => end,
                };
                if first > last {
                    return None;
                }
                Some((self.encode(first)?, self.encode(last)?))
            }
        }
    }
}

/// The index of one family: pool slots and the free ones among them.
#[derive(Clone, Debug)]
struct FamilyIndex {
    family: IpFamily,
    coding: Coding,
    /// Slot intervals of the pool, sorted, disjoint and non-adjacent.
    ranges: Vec<(u128, u128)>,
    /// Free slot intervals: start → end (inclusive).
    free: BTreeMap<u128, u128>,
    total: u128,
    in_use: u128,
}

impl FamilyIndex {
    fn new(family: IpFamily, coding: Coding, ranges: &[(u128, u128)]) -> Self {
        let mut slots: Vec<(u128, u128)> = ranges
            .iter()
            .filter_map(|&(s, e)| coding.encode_range(s, e))
            .collect();
        slots.sort_unstable();
        let merged = merge_intervals(slots);
        let total = merged.iter().fold(0u128, |acc, &(s, e)| {
            acc.saturating_add((e - s).saturating_add(1))
        });
        FamilyIndex {
            family,
            coding,
            free: merged.iter().copied().collect(),
            ranges: merged,
            total,
            in_use: 0,
        }
    }

    fn slot_of(&self, ip: IpAddr) -> Option<u128> {
        if IpFamily::of(ip) != self.family {
            return None;
        }
        let slot = self.coding.encode(to_u128(ip))?;
        self.in_ranges(slot).then_some(slot)
    }

    fn in_ranges(&self, slot: u128) -> bool {
        let i = self.ranges.partition_point(|&(s, _)| s <= slot);
        i > 0 && self.ranges[i - 1].1 >= slot
    }

    fn ip_of(&self, slot: u128) -> IpAddr {
        from_u128(self.family, self.coding.decode(slot))
    }

    fn is_free(&self, slot: u128) -> bool {
        matches!(self.free.range(..=slot).next_back(), Some((_, &e)) if e >= slot)
    }

    fn allocate_lowest(&mut self) -> Option<IpAddr> {
        let (start, end) = self.free.pop_first()?;
        if start < end {
            self.free.insert(start + 1, end);
        }
        self.in_use += 1;
        Some(self.ip_of(start))
    }

    fn take(&mut self, slot: u128) -> Result<(), TakeError> {
        let (start, end) = match self.free.range(..=slot).next_back() {
            Some((&s, &e)) if e >= slot => (s, e),
            _ => return Err(TakeError::InUse),
        };
        self.free.remove(&start);
        if start < slot {
            self.free.insert(start, slot - 1);
        }
        if slot < end {
            self.free.insert(slot + 1, end);
        }
        self.in_use += 1;
        Ok(())
    }

    fn release(&mut self, slot: u128) -> bool {
        if !self.in_ranges(slot) || self.is_free(slot) {
            return false;
        }
        let mut start = slot;
        let mut end = slot;
        // Merge with a left neighbour ending just before, and a right one starting just after.
        if let Some((&ls, &le)) = self.free.range(..slot).next_back()
            && le.checked_add(1) == Some(slot)
        {
            self.free.remove(&ls);
            start = ls;
        }
        if let Some(next) = slot.checked_add(1)
            && let Some(re) = self.free.remove(&next)
        {
            end = re;
        }
        self.free.insert(start, end);
        self.in_use -= 1;
        true
    }

    fn stats(&self) -> FamilyStats {
        FamilyStats {
            total: self.total,
            in_use: self.in_use,
            available: self.total.saturating_sub(self.in_use),
        }
    }
}

/// Sorts-merged intervals: overlapping or adjacent ones become one.
fn merge_intervals(sorted: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(sorted.len());
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1).is_none_or(|next| s <= next) => {
                last.1 = last.1.max(e);
            }
            _ => out.push((s, e)),
        }
    }
    out
}

/// Free-address index of one pool, IPv4 and IPv6.
///
/// Allocation hands out the lowest free address, so results are deterministic and a restart
/// that re-takes the same addresses hands out the same next address.
#[derive(Clone, Debug)]
pub struct PoolIndex {
    v4: FamilyIndex,
    v6: FamilyIndex,
}

impl PoolIndex {
    /// An index over `ranges` (any order, may overlap each other), every address free.
    /// With `avoid_buggy_ips`, IPv4 addresses ending in `.0` or `.255` are never handed out.
    pub fn new(ranges: &[IpRange], avoid_buggy_ips: bool) -> Self {
        let of = |family: IpFamily| -> Vec<(u128, u128)> {
            ranges
                .iter()
                .filter(|r| r.family() == family)
                .map(IpRange::bounds)
                .collect()
        };
        let v4_coding = if avoid_buggy_ips {
            Coding::SkipBuggy
        } else {
            Coding::Plain
        };
        PoolIndex {
            v4: FamilyIndex::new(IpFamily::V4, v4_coding, &of(IpFamily::V4)),
            v6: FamilyIndex::new(IpFamily::V6, Coding::Plain, &of(IpFamily::V6)),
        }
    }

    fn family(&self, family: IpFamily) -> &FamilyIndex {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    fn family_mut(&mut self, family: IpFamily) -> &mut FamilyIndex {
        match family {
            IpFamily::V4 => &mut self.v4,
            IpFamily::V6 => &mut self.v6,
        }
    }

    /// Takes the lowest free address of `family`; `None` when there is none.
    pub fn allocate(&mut self, family: IpFamily) -> Option<IpAddr> {
        self.family_mut(family).allocate_lowest()
    }

    /// Takes `ip` specifically.
    pub fn allocate_ip(&mut self, ip: IpAddr) -> Result<(), TakeError> {
        let index = self.family_mut(IpFamily::of(ip));
        let slot = index.slot_of(ip).ok_or(TakeError::NotInPool)?;
        index.take(slot)
    }

    /// Gives `ip` back; `false` if it was not taken (or not in the pool).
    pub fn release(&mut self, ip: IpAddr) -> bool {
        let index = self.family_mut(IpFamily::of(ip));
        match index.slot_of(ip) {
            Some(slot) => index.release(slot),
            None => false,
        }
    }

    /// Whether `ip` is an address this pool hands out (in its ranges, and not a skipped
    /// `.0`/`.255`), taken or not.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.family(IpFamily::of(ip)).slot_of(ip).is_some()
    }

    /// Whether `ip` is in the pool and free.
    pub fn is_free(&self, ip: IpAddr) -> bool {
        let index = self.family(IpFamily::of(ip));
        index.slot_of(ip).is_some_and(|slot| index.is_free(slot))
    }

    /// Whether the pool has any address of `family` at all.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.family(family).total > 0
    }

    /// Counts for `family`.
    pub fn stats(&self, family: IpFamily) -> FamilyStats {
        self.family(family).stats()
    }

    /// Number of free intervals (a measure of fragmentation, and of the index's memory).
    pub fn fragments(&self) -> usize {
        self.v4.free.len() + self.v6.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ranges(texts: &[&str]) -> Vec<IpRange> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn hands_out_lowest_free_in_order_until_exhausted() {
        let mut index = PoolIndex::new(&ranges(&["10.0.0.4-10.0.0.6", "10.0.0.1"]), false);
        let got: Vec<_> = std::iter::from_fn(|| index.allocate(IpFamily::V4)).collect();
        assert_eq!(
            got,
            vec![
                ip("10.0.0.1"),
                ip("10.0.0.4"),
                ip("10.0.0.5"),
                ip("10.0.0.6")
            ]
        );
        assert_eq!(index.allocate(IpFamily::V6), None);
        let s = index.stats(IpFamily::V4);
        assert_eq!((s.total, s.in_use, s.available), (4, 4, 0));
    }

    #[test]
    fn released_address_is_reused_first_and_intervals_merge_back() {
        let mut index = PoolIndex::new(&ranges(&["10.0.0.0/29"]), false);
        for _ in 0..8 {
            index.allocate(IpFamily::V4).unwrap();
        }
        assert!(index.release(ip("10.0.0.5")));
        assert!(index.release(ip("10.0.0.3")));
        assert!(!index.release(ip("10.0.0.3")), "double release is refused");
        assert!(!index.release(ip("10.0.1.3")), "foreign address is refused");
        assert_eq!(index.allocate(IpFamily::V4), Some(ip("10.0.0.3")));
        assert!(index.release(ip("10.0.0.3")));
        assert!(index.release(ip("10.0.0.4")));
        // 3, 4, 5 are one interval again.
        assert_eq!(index.fragments(), 1);
        assert_eq!(index.stats(IpFamily::V4).in_use, 5);
    }

    #[test]
    fn specific_addresses_split_and_refuse_correctly() {
        let mut index = PoolIndex::new(&ranges(&["10.0.0.0/30"]), false);
        assert_eq!(index.allocate_ip(ip("10.0.0.2")), Ok(()));
        assert_eq!(index.allocate_ip(ip("10.0.0.2")), Err(TakeError::InUse));
        assert_eq!(index.allocate_ip(ip("10.0.0.9")), Err(TakeError::NotInPool));
        assert_eq!(index.allocate_ip(ip("fd00::1")), Err(TakeError::NotInPool));
        assert!(index.contains(ip("10.0.0.2")) && !index.is_free(ip("10.0.0.2")));
        assert!(index.is_free(ip("10.0.0.3")));
        assert_eq!(index.allocate(IpFamily::V4), Some(ip("10.0.0.0")));
        assert_eq!(index.allocate(IpFamily::V4), Some(ip("10.0.0.1")));
        assert_eq!(index.allocate(IpFamily::V4), Some(ip("10.0.0.3")));
        assert_eq!(index.allocate(IpFamily::V4), None);
    }

    #[test]
    fn avoid_buggy_ips_skips_dot0_and_dot255_without_per_address_memory() {
        let mut index = PoolIndex::new(&ranges(&["10.0.0.250-10.0.2.3"]), true);
        // .250-.254, then 1.1-1.254, then 2.1-2.3
        assert_eq!(index.stats(IpFamily::V4).total, 5 + 254 + 3);
        assert_eq!(index.fragments(), 1);
        let got: Vec<_> = std::iter::from_fn(|| index.allocate(IpFamily::V4)).collect();
        assert_eq!(got.len(), 262);
        assert!(got.iter().all(|a| match a {
            IpAddr::V4(v4) => v4.octets()[3] != 0 && v4.octets()[3] != 255,
            IpAddr::V6(_) => false,
        }));
        assert_eq!(got[5], ip("10.0.1.1"));
        assert!(!index.contains(ip("10.0.1.0")) && !index.contains(ip("10.0.1.255")));
        assert_eq!(
            index.allocate_ip(ip("10.0.1.255")),
            Err(TakeError::NotInPool)
        );
        // A range made only of skipped addresses is empty.
        let empty = PoolIndex::new(&ranges(&["10.0.0.255-10.0.1.0"]), true);
        assert!(!empty.has_family(IpFamily::V4));
        // IPv6 is never affected.
        let mut v6 = PoolIndex::new(&ranges(&["fd00::ff-fd00::100"]), true);
        assert_eq!(v6.allocate(IpFamily::V6), Some(ip("fd00::ff")));
        assert_eq!(v6.allocate(IpFamily::V6), Some(ip("fd00::100")));
    }

    #[test]
    fn huge_v6_pools_are_one_interval_and_count_exactly() {
        let mut index = PoolIndex::new(&ranges(&["fd00::/64", "fd01::/48"]), false);
        assert_eq!(
            index.stats(IpFamily::V6).total,
            (1u128 << 64) + (1u128 << 80)
        );
        for _ in 0..1000 {
            index.allocate(IpFamily::V6).unwrap();
        }
        assert_eq!(index.fragments(), 2);
        assert_eq!(index.allocate(IpFamily::V6), Some(ip("fd00::3e8")));
        let whole = PoolIndex::new(&ranges(&["::/0"]), false);
        assert_eq!(whole.stats(IpFamily::V6).total, u128::MAX);
    }

    mod model {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Allocate,
            Take(u32),
            Release(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => Just(Op::Allocate),
                1 => (0u32..0x300).prop_map(Op::Take),
                2 => (0u32..0x300).prop_map(Op::Release),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// The index behaves exactly like a sorted set of free addresses.
            #[test]
            fn index_matches_a_naive_model(
                bounds in prop::collection::vec((0u32..0x300, 0u32..0x40), 1..4),
                avoid in any::<bool>(),
                ops in prop::collection::vec(op(), 1..200),
            ) {
                let base = 0x0a00_0000u32;
                let ranges: Vec<IpRange> = bounds
                    .iter()
                    .map(|&(s, len)| {
                        let a = IpAddr::from(std::net::Ipv4Addr::from(base + s));
                        let b = IpAddr::from(std::net::Ipv4Addr::from(base + s + len));
                        IpRange::new(a, b).unwrap()
                    })
                    .collect();
                let mut index = PoolIndex::new(&ranges, avoid);
                let mut free: BTreeSet<u32> = bounds
                    .iter()
                    .flat_map(|&(s, len)| (base + s)..=(base + s + len))
                    .filter(|a| !avoid || !matches!(a & 0xff, 0 | 0xff))
                    .collect();
                let all = free.clone();
                let v4 = |a: u32| IpAddr::from(std::net::Ipv4Addr::from(a));
                prop_assert_eq!(index.stats(IpFamily::V4).total, all.len() as u128);
                for op in ops {
                    match op {
                        Op::Allocate => {
                            let want = free.pop_first().map(v4);
                            prop_assert_eq!(index.allocate(IpFamily::V4), want);
                        }
                        Op::Take(o) => {
                            let a = base + o;
                            let want = if !all.contains(&a) {
                                Err(TakeError::NotInPool)
                            } else if free.remove(&a) {
                                Ok(())
                            } else {
                                Err(TakeError::InUse)
                            };
                            prop_assert_eq!(index.allocate_ip(v4(a)), want);
                        }
                        Op::Release(o) => {
                            let a = base + o;
                            let want = all.contains(&a) && free.insert(a);
                            prop_assert_eq!(index.release(v4(a)), want);
                        }
                    }
                    let stats = index.stats(IpFamily::V4);
                    prop_assert_eq!(stats.available, free.len() as u128);
                    prop_assert_eq!(stats.in_use, (all.len() - free.len()) as u128);
                }
                for a in &all {
                    prop_assert_eq!(index.is_free(v4(*a)), free.contains(a));
                }
            }
        }
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let index = PoolIndex::new(
            &ranges(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.10-10.0.0.20"]),
            false,
        );
        assert_eq!(index.stats(IpFamily::V4).total, 256);
        assert_eq!(index.fragments(), 1);
    }
}
