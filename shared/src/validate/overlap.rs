//! Overlap detection between pools.

use super::address::IpRange;

/// Two pools that share addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PoolOverlap {
    /// The pool whose name sorts first.
    pub first: String,
    /// The other pool.
    pub second: String,
    /// Addresses in both pools (one entry per overlapping pair of ranges).
    pub range: IpRange,
}

impl PoolOverlap {
    /// Whether `pool` is one of the two pools.
    pub fn involves(&self, pool: &str) -> bool {
        self.first == pool || self.second == pool
    }

    /// The pool on the other side of the overlap from `pool`.
    pub fn other(&self, pool: &str) -> &str {
        if self.first == pool {
            &self.second
        } else {
            &self.first
        }
    }
}

/// Finds every pair of distinct pools that share addresses, and the shared ranges.
///
/// Input: `(pool name, its ranges)`. Output is sorted by pool pair then range, one entry per
/// pair of overlapping ranges. Overlaps inside one pool are not reported here (pool
/// validation rejects them). Runs a sweep over ranges sorted by start, so cost is
/// O(n log n) plus the number of overlaps, not O(n²) in the number of ranges.
pub fn find_pool_overlaps<'a, I, R>(pools: I) -> Vec<PoolOverlap>
where
    I: IntoIterator<Item = (&'a str, R)>,
    R: IntoIterator<Item = &'a IpRange>,
{
    let mut all: Vec<(IpRange, &'a str)> = pools
        .into_iter()
        .flat_map(|(name, ranges)| ranges.into_iter().map(move |r| (*r, name)))
        .collect();
    all.sort();
    let mut out = Vec::new();
    // Ranges that started earlier and may still cover later starts. The families never
    // interleave in the sort (every IPv4 address sorts before every IPv6 address).
    let mut active: Vec<(IpRange, &'a str)> = Vec::new();
    for (range, name) in all {
        active.retain(|(a, _)| a.family() == range.family() && a.end() >= range.start());
        for (a, other) in &active {
            if *other == name {
                continue;
            }
            if let Some(shared) = a.intersection(&range) {
                let (first, second) = if *other < name {
                    (*other, name)
                } else {
                    (name, *other)
                };
                out.push(PoolOverlap {
                    first: first.to_owned(),
                    second: second.to_owned(),
                    range: shared,
                });
            }
        }
        active.push((range, name));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::address::parse_address_entry;

    fn ranges(entries: &[&str]) -> Vec<IpRange> {
        entries
            .iter()
            .map(|e| parse_address_entry(e).unwrap())
            .collect()
    }

    #[test]
    fn reports_each_overlapping_pair_and_where() {
        let a = ranges(&["10.0.0.0/24", "fd00::/120"]);
        let b = ranges(&["10.0.0.250-10.0.1.10"]);
        let c = ranges(&["10.0.1.0/24", "10.0.2.0/24"]);
        let d = ranges(&["192.168.0.0/16", "fd00::80-fd00::1:0"]);
        let e = ranges(&["10.1.0.0/16"]);
        let got: Vec<(String, String, String)> = find_pool_overlaps([
            ("d", d.iter()),
            ("a", a.iter()),
            ("c", c.iter()),
            ("b", b.iter()),
            ("e", e.iter()),
        ])
        .into_iter()
        .map(|o| (o.first, o.second, o.range.to_string()))
        .collect();
        let want = [
            ("a", "b", "10.0.0.250-10.0.0.255"),
            ("a", "d", "fd00::80-fd00::ff"),
            ("b", "c", "10.0.1.0-10.0.1.10"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, r)| ((*a).to_owned(), (*b).to_owned(), (*r).to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_overlap_for_adjacent_or_same_pool_or_other_family() {
        let a = ranges(&["10.0.0.0/24", "10.0.0.0/25"]);
        let b = ranges(&["10.0.1.0/24"]);
        let c = ranges(&["::ffff:10.0.0.0/120"]);
        assert!(find_pool_overlaps([("a", a.iter()), ("b", b.iter()), ("c", c.iter())]).is_empty());
    }

    #[test]
    fn a_long_range_overlapping_many_later_ones() {
        let big = ranges(&["10.0.0.0/8"]);
        let small: Vec<IpRange> = (0..50)
            .map(|i| parse_address_entry(&format!("10.{i}.0.0/16")).unwrap())
            .collect();
        let overlaps = find_pool_overlaps([("big", big.iter()), ("small", small.iter())]);
        assert_eq!(overlaps.len(), 50);
        assert!(
            overlaps
                .iter()
                .all(|o| o.involves("big") && o.other("big") == "small")
        );
    }
}
