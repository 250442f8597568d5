//! The set of pools: raw ranges, overlaps between pools, and what is left to hand out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::index::PoolIndex;
use super::range::{IpFamily, IpRange, from_u128, to_u128};
use super::types::{PoolConfig, ServiceRequest};

/// Two pools claiming the same addresses. Neither hands out the overlapping part.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PoolOverlap {
    /// The two pools, in name order.
    pub pools: [String; 2],
    /// The addresses both claim.
    pub range: IpRange,
}

/// One pool: its configuration, its ranges, and the index over the part it may hand out.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    pub(crate) config: PoolConfig,
    /// Merged ranges per family as numbers (address space, before `avoidBuggyIPs`).
    raw: [Vec<(u128, u128)>; 2],
    /// Ranges minus overlaps with other pools: what the index hands out.
    pub(crate) effective: Vec<IpRange>,
    pub(crate) index: PoolIndex,
}

fn slot(family: IpFamily) -> usize {
    match family {
        IpFamily::V4 => 0,
        IpFamily::V6 => 1,
    }
}

fn merge(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1).is_none_or(|n| s <= n) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a` minus `b`; both sorted and merged.
fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut cur = Some(s);
        for &(bs, be) in b {
            let Some(c) = cur else { break };
            if be < c || bs > e {
                continue;
            }
            if bs > c {
                out.push((c, bs - 1));
            }
            cur = be.checked_add(1).filter(|n| *n <= e);
        }
        if let Some(c) = cur {
            out.push((c, e));
        }
    }
    out
}

fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

impl Pool {
    /// Whether `ip` is one of the pool's addresses, ignoring overlaps (used to judge
    /// addresses Services already hold) but honouring `avoidBuggyIPs`.
    pub(crate) fn covers(&self, ip: IpAddr) -> bool {
        self.covers_raw(ip) && !(self.config.avoid_buggy_ips && is_buggy(ip))
    }

    /// Whether `ip` lies in the pool's ranges at all.
    pub(crate) fn covers_raw(&self, ip: IpAddr) -> bool {
        let v = to_u128(ip);
        let ranges = &self.raw[slot(IpFamily::of(ip))];
        let i = ranges.partition_point(|&(s, _)| s <= v);
        i > 0 && ranges[i - 1].1 >= v
    }

    /// Whether the Service may use this pool at all (`serviceAllocation`).
    pub(crate) fn admits(&self, service: &ServiceRequest) -> bool {
        self.config
            .allocation
            .as_ref()
            .is_none_or(|a| a.admits(service))
    }

    /// Whether the pool has addresses of `family` (before overlaps).
    pub(crate) fn has_family(&self, family: IpFamily) -> bool {
        !self.raw[slot(family)].is_empty()
    }
}

/// All pools, by name, with their overlaps resolved.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolSet {
    pub(crate) pools: BTreeMap<String, Pool>,
    pub(crate) overlaps: Vec<PoolOverlap>,
}

impl PoolSet {
    /// Builds the set. Pools with a name seen before are ignored (the first one wins) and
    /// returned as duplicates. Indexes of pools whose effective ranges did not change are
    /// carried over from `previous`; new indexes start all free (the caller re-takes).
    pub(crate) fn build(
        configs: Vec<PoolConfig>,
        previous: &mut PoolSet,
    ) -> (Self, Vec<String>, Vec<String>) {
        let mut duplicates = Vec::new();
        let mut by_name: BTreeMap<String, PoolConfig> = BTreeMap::new();
        for config in configs {
            if by_name.contains_key(&config.name) {
                duplicates.push(config.name.clone());
            } else {
                by_name.insert(config.name.clone(), config);
            }
        }
        let names: Vec<String> = by_name.keys().cloned().collect();
        let raws: Vec<[Vec<(u128, u128)>; 2]> = by_name
            .values()
            .map(|c| {
                let per = |f: IpFamily| {
                    merge(
                        c.ranges
                            .iter()
                            .filter(|r| r.family() == f)
                            .map(IpRange::bounds)
                            .collect(),
                    )
                };
                [per(IpFamily::V4), per(IpFamily::V6)]
            })
            .collect();

        // Sweep each family for pairwise overlaps between different pools.
        let mut overlaps = Vec::new();
        let mut cut: Vec<[Vec<(u128, u128)>; 2]> = vec![[Vec::new(), Vec::new()]; names.len()];
        for family in IpFamily::ALL {
            let f = slot(family);
            let mut all: Vec<(u128, u128, usize)> = raws
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r[f].iter().map(move |&(s, e)| (s, e, i)))
                .collect();
            all.sort_unstable();
            let mut active: Vec<(u128, usize)> = Vec::new();
            for (s, e, i) in all {
                active.retain(|&(ae, _)| ae >= s);
                for &(ae, j) in &active {
                    if j == i {
                        continue;
                    }
                    let end = ae.min(e);
                    cut[i][f].push((s, end));
                    cut[j][f].push((s, end));
                    let (a, b) = if names[i] < names[j] { (i, j) } else { (j, i) };
                    overlaps.push(PoolOverlap {
                        pools: [names[a].clone(), names[b].clone()],
                        range: IpRange::new(from_u128(family, s), from_u128(family, end))
                            .unwrap_or_else(|_| IpRange::single(from_u128(family, s))),
                    });
                }
                active.push((e, i));
            }
        }
        overlaps.sort();

        let mut pools = BTreeMap::new();
        let mut rebuilt = Vec::new();
        for (((name, config), raw), cut) in by_name.into_iter().zip(raws).zip(cut) {
            let mut effective = Vec::new();
            for family in IpFamily::ALL {
                let f = slot(family);
                for (s, e) in subtract(&raw[f], &merge(cut[f].clone())) {
                    effective.push(
                        IpRange::new(from_u128(family, s), from_u128(family, e))
                            .unwrap_or_else(|_| IpRange::single(from_u128(family, s))),
                    );
                }
            }
            let reuse = previous.pools.remove(&name).filter(|old| {
                old.effective == effective && old.config.avoid_buggy_ips == config.avoid_buggy_ips
            });
            let index = match reuse {
                Some(old) => old.index,
                None => {
                    rebuilt.push(name.clone());
                    PoolIndex::new(&effective, config.avoid_buggy_ips)
                }
            };
            pools.insert(
                name,
                Pool {
                    config,
                    raw,
                    effective,
                    index,
                },
            );
        }
        (PoolSet { pools, overlaps }, duplicates, rebuilt)
    }

    /// The pool whose index hands out `ip` (at most one: overlaps are cut out).
    pub(crate) fn index_owner(&mut self, ip: IpAddr) -> Option<&mut Pool> {
        self.pools.values_mut().find(|p| p.index.contains(ip))
    }

    /// Pools overlapping at `ip`, in name order.
    pub(crate) fn overlapping_at(&self, ip: IpAddr) -> Vec<String> {
        let mut names: Vec<String> = self
            .overlaps
            .iter()
            .filter(|o| o.range.contains(ip))
            .flat_map(|o| o.pools.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, ranges: &[&str]) -> PoolConfig {
        PoolConfig::new(name, ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    #[test]
    fn overlaps_are_reported_for_both_and_cut_from_both() {
        let mut prev = PoolSet::default();
        let (set, dups, _) = PoolSet::build(
            vec![
                pool("b", &["10.0.0.0/24"]),
                pool("a", &["10.0.0.200-10.0.1.10", "fd00::/120"]),
                pool("c", &["10.0.2.0/24", "fd00::80/121"]),
                pool("a", &["192.168.0.0/24"]),
            ],
            &mut prev,
        );
        assert_eq!(dups, vec!["a".to_string()]);
        let shown: Vec<String> = set
            .overlaps
            .iter()
            .map(|o| format!("{}+{} {}", o.pools[0], o.pools[1], o.range))
            .collect();
        assert_eq!(
            shown,
            vec![
                "a+b 10.0.0.200-10.0.0.255".to_string(),
                "a+c fd00::80-fd00::ff".to_string()
            ]
        );
        let eff = |n: &str| -> Vec<String> {
            set.pools[n]
                .effective
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(eff("a"), vec!["10.0.1.0-10.0.1.10", "fd00::-fd00::7f"]);
        assert_eq!(eff("b"), vec!["10.0.0.0-10.0.0.199"]);
        assert_eq!(eff("c"), vec!["10.0.2.0-10.0.2.255"]);
        assert_eq!(
            set.overlapping_at("10.0.0.210".parse().unwrap()),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn subtract_table() {
        type Intervals = &'static [(u128, u128)];
        let cases: &[(Intervals, Intervals, Intervals)] = &[
            (&[(0, 10)], &[], &[(0, 10)]),
            (&[(0, 10)], &[(0, 10)], &[]),
            (&[(0, 10)], &[(3, 4)], &[(0, 2), (5, 10)]),
            (&[(0, 10)], &[(0, 0), (10, 10)], &[(1, 9)]),
            (&[(0, 10), (20, 30)], &[(5, 25)], &[(0, 4), (26, 30)]),
            (
                &[(0, u128::MAX)],
                &[(u128::MAX, u128::MAX)],
                &[(0, u128::MAX - 1)],
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(subtract(a, b), want.to_vec(), "{a:?} - {b:?}");
        }
    }
}
