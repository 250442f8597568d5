//! Adj-RIB-Out (RFC 4271 §3.2): what we last advertised to one peer, and the
//! minimal changes to reach a new desired set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipnet::IpNet;

use super::RouteAttributes;

/// Routes as the caller wants them: prefix → attributes. Attribute sets
/// are shared (`Arc`) so grouping prefixes by attributes is cheap.
pub type RouteMap = HashMap<IpNet, Arc<RouteAttributes>>;

/// Changes to send: announcements grouped by attribute set (one UPDATE
/// stream per group) and withdrawals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibDiff {
    /// Prefixes to (re-)announce, sorted, per attribute set.
    pub announce: BTreeMap<Arc<RouteAttributes>, Vec<IpNet>>,
    /// Prefixes to withdraw, sorted.
    pub withdraw: Vec<IpNet>,
}

impl RibDiff {
    /// Sorted, duplicate-free lists (UPDATEs then pack neighbouring prefixes the same way
    /// whatever order the changes came in).
    fn sorted(mut self) -> Self {
        for list in self.announce.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        self.withdraw.sort_unstable();
        self.withdraw.dedup();
        self
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Number of prefixes announced.
    pub fn announced(&self) -> usize {
        self.announce.values().map(Vec::len).sum()
    }
}

/// What the peer has been told.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    sent: RouteMap,
}

impl AdjRibOut {
    /// Number of prefixes advertised.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether nothing is advertised.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Forget everything (new session: the peer knows nothing).
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// Forget what was sent for prefixes matching `pred` (e.g. one family
    /// after a route refresh request), so the next diff re-sends them.
    pub fn forget(&mut self, pred: impl Fn(&IpNet) -> bool) {
        self.sent.retain(|p, _| !pred(p));
    }

    /// The changes that turn what was sent into `desired`: new prefixes and
    /// prefixes whose attributes changed are announced (an announcement
    /// implicitly replaces the old route), vanished ones withdrawn.
    pub fn diff(&self, desired: &RouteMap) -> RibDiff {
        self.diff_sendable(desired, |_| true)
    }

    /// [`diff`](Self::diff) against the part of `desired` that `sendable` admits (the
    /// families the session carries), without copying that part out: at 10k routes a
    /// copy per change would cost more than the diff.
    pub fn diff_sendable(&self, desired: &RouteMap, sendable: impl Fn(&IpNet) -> bool) -> RibDiff {
        let mut d = RibDiff::default();
        for (prefix, attrs) in desired {
            if sendable(prefix) && self.sent.get(prefix).is_none_or(|old| old != attrs) {
                d.announce.entry(attrs.clone()).or_default().push(*prefix);
            }
        }
        d.withdraw = self
            .sent
            .keys()
            .filter(|p| !sendable(p) || !desired.contains_key(p))
            .copied()
            .collect();
        d.sorted()
    }

    /// The changes for `prefixes` only: what [`diff_sendable`](Self::diff_sendable) would
    /// find for them, in time proportional to their number, for callers that know which
    /// prefixes changed.
    pub fn diff_prefixes<'a>(
        &self,
        desired: &RouteMap,
        prefixes: impl IntoIterator<Item = &'a IpNet>,
        sendable: impl Fn(&IpNet) -> bool,
    ) -> RibDiff {
        let mut d = RibDiff::default();
        for prefix in prefixes {
            let want = desired.get(prefix).filter(|_| sendable(prefix));
            match (want, self.sent.get(prefix)) {
                (Some(new), Some(old)) if new == old => {}
                (Some(new), _) => d.announce.entry(new.clone()).or_default().push(*prefix),
                (None, Some(_)) => d.withdraw.push(*prefix),
                (None, None) => {}
            }
        }
        d.sorted()
    }

    /// Records that `diff` was sent.
    pub fn commit(&mut self, diff: &RibDiff) {
        for p in &diff.withdraw {
            self.sent.remove(p);
        }
        for (attrs, prefixes) in &diff.announce {
            for p in prefixes {
                self.sent.insert(*p, attrs.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn diff_announces_new_and_changed_and_withdraws_gone() {
        let a = Arc::new(RouteAttributes::default());
        let b = Arc::new(RouteAttributes {
            communities: vec![1],
            ..RouteAttributes::default()
        });
        let mut rib = AdjRibOut::default();
        let first: RouteMap = [(p("10.0.0.1/32"), a.clone()), (p("10.0.0.2/32"), a.clone())].into();
        let d = rib.diff(&first);
        assert_eq!(d.announced(), 2);
        assert!(d.withdraw.is_empty());
        rib.commit(&d);
        assert!(rib.diff(&first).is_empty(), "nothing to do when in sync");

        let second: RouteMap = [
            (p("10.0.0.2/32"), b.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        let d = rib.diff(&second);
        assert_eq!(d.withdraw, vec![p("10.0.0.1/32")]);
        assert_eq!(d.announce[&b], vec![p("10.0.0.2/32")]);
        assert_eq!(d.announce[&a], vec![p("2001:db8::1/128")]);
        rib.commit(&d);
        assert_eq!(rib.len(), 2);
        assert!(rib.diff(&second).is_empty());

        rib.forget(|p| matches!(p, IpNet::V6(_)));
        assert_eq!(rib.diff(&second).announced(), 1);
    }

    #[test]
    fn diff_of_some_prefixes_equals_the_full_diff_restricted_to_them() {
        let a = Arc::new(RouteAttributes::default());
        let b = Arc::new(RouteAttributes {
            communities: vec![7],
            ..RouteAttributes::default()
        });
        let mut rib = AdjRibOut::default();
        let first: RouteMap = [
            (p("10.0.0.1/32"), a.clone()),
            (p("10.0.0.2/32"), a.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        rib.commit(&rib.diff(&first));
        let second: RouteMap = [
            (p("10.0.0.2/32"), b.clone()),
            (p("10.0.0.3/32"), a.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        let changed = [
            p("10.0.0.1/32"),
            p("10.0.0.2/32"),
            p("10.0.0.3/32"),
            p("10.0.0.3/32"),
        ];
        let d = rib.diff_prefixes(&second, &changed, |_| true);
        assert_eq!(d, rib.diff(&second));
        assert_eq!(d.withdraw, vec![p("10.0.0.1/32")]);
        assert_eq!(d.announce[&a], vec![p("10.0.0.3/32")]);
        // An unchanged prefix in the list sends nothing; one the session cannot carry is
        // withdrawn if it was sent.
        let only_v4 = |p: &IpNet| matches!(p, IpNet::V4(_));
        let d = rib.diff_prefixes(&first, &[p("10.0.0.1/32"), p("2001:db8::1/128")], only_v4);
        assert!(d.announce.is_empty());
        assert_eq!(d.withdraw, vec![p("2001:db8::1/128")]);
        assert_eq!(d, rib.diff_sendable(&first, only_v4));
    }
}
