//! Adj-RIB-Out (RFC 4271 §3.2) of one peer: per prefix, what the caller wants
//! announced and what the peer was last told, in one map, and the minimal
//! changes that bring the second in line with the first.

use std::collections::hash_map::Entry;
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

    /// Adds what it takes to bring `prefix` from `slot.sent` to `slot.want`, the latter
    /// only if the session can carry it (`sendable`).
    fn add(&mut self, prefix: &IpNet, slot: &Slot, sendable: &impl Fn(&IpNet) -> bool) {
        let want = slot.want.as_ref().filter(|_| sendable(prefix));
        match (want, &slot.sent) {
            (Some(new), Some(old)) if new == old => {}
            // An announcement implicitly replaces the old route: no withdrawal first.
            (Some(new), _) => self.announce.entry(new.clone()).or_default().push(*prefix),
            (None, Some(_)) => self.withdraw.push(*prefix),
            (None, None) => {}
        }
    }
}

/// Both states of one prefix. Keeping them side by side, rather than a desired map
/// next to a sent map, stores each prefix (and the hash table's per-entry overhead)
/// once; in steady state both fields point at the same attribute allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Slot {
    /// What the caller wants announced; `None`: withdrawn (or never wanted).
    want: Option<Arc<RouteAttributes>>,
    /// What the peer was last told; `None`: nothing (never sent, or withdrawn).
    sent: Option<Arc<RouteAttributes>>,
}

impl Slot {
    /// A slot with neither state carries no information and is removed from the map.
    fn is_vacant(&self) -> bool {
        self.want.is_none() && self.sent.is_none()
    }
}

/// The desired routes of one peer and what the peer has been told, one entry per
/// prefix in either set.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    slots: HashMap<IpNet, Slot>,
    /// Slots whose `sent` is set, counted as they change so that reading the number of
    /// advertised prefixes after every small change does not walk the table.
    advertised: usize,
}

impl AdjRibOut {
    /// Number of prefixes advertised.
    pub fn len(&self) -> usize {
        self.advertised
    }

    /// Whether nothing is advertised.
    pub fn is_empty(&self) -> bool {
        self.advertised == 0
    }

    /// Number of prefixes wanted (whether or not sent yet).
    pub fn wanted(&self) -> usize {
        self.slots.values().filter(|s| s.want.is_some()).count()
    }

    /// Replaces the desired routes with `desired` (copying its `Arc`s, so the caller may
    /// keep the map). What was sent is kept: the next diff sends the difference.
    pub fn set_desired(&mut self, desired: &RouteMap) {
        self.slots.retain(|prefix, slot| {
            slot.want = desired.get(prefix).cloned();
            !slot.is_vacant()
        });
        for (prefix, attrs) in desired {
            // Prefixes that had a slot got their `want` above; this adds the new ones.
            self.slots.entry(*prefix).or_default().want = Some(attrs.clone());
        }
        // A table that shrank a lot (e.g. everything withdrawn at shutdown) would otherwise
        // keep its largest capacity for the life of the peer.
        if self.slots.capacity() > 64 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to_fit();
        }
    }

    /// Sets what is wanted for one prefix: `Some` to announce, `None` to withdraw.
    pub fn set_want(&mut self, prefix: IpNet, want: Option<Arc<RouteAttributes>>) {
        match self.slots.entry(prefix) {
            Entry::Occupied(mut e) => {
                e.get_mut().want = want;
                if e.get().is_vacant() {
                    e.remove();
                }
            }
            Entry::Vacant(e) => {
                if want.is_some() {
                    e.insert(Slot { want, sent: None });
                }
            }
        }
    }

    /// Forgets everything sent (new session: the peer knows nothing). The desired routes
    /// are kept, so the next diff announces all of them.
    pub fn clear(&mut self) {
        self.forget(|_| true);
    }

    /// Forgets what was sent for prefixes matching `pred` (e.g. one family
    /// after a route refresh request), so the next diff re-sends them.
    pub fn forget(&mut self, pred: impl Fn(&IpNet) -> bool) {
        let mut forgotten = 0;
        self.slots.retain(|prefix, slot| {
            if pred(prefix) && slot.sent.take().is_some() {
                forgotten += 1;
            }
            !slot.is_vacant()
        });
        self.advertised -= forgotten;
    }

    /// The changes that turn what was sent into what is wanted: new prefixes and
    /// prefixes whose attributes changed are announced (an announcement
    /// implicitly replaces the old route), vanished ones withdrawn.
    pub fn diff(&self) -> RibDiff {
        self.diff_sendable(|_| true)
    }

    /// [`diff`](Self::diff) against the wanted prefixes that `sendable` admits (the
    /// families the session carries); a sent prefix it does not admit is withdrawn.
    pub fn diff_sendable(&self, sendable: impl Fn(&IpNet) -> bool) -> RibDiff {
        let mut d = RibDiff::default();
        for (prefix, slot) in &self.slots {
            d.add(prefix, slot, &sendable);
        }
        d.sorted()
    }

    /// The changes for `prefixes` only: what [`diff_sendable`](Self::diff_sendable) would
    /// find for them, in time proportional to their number, for callers that know which
    /// prefixes changed.
    pub fn diff_prefixes<'a>(
        &self,
        prefixes: impl IntoIterator<Item = &'a IpNet>,
        sendable: impl Fn(&IpNet) -> bool,
    ) -> RibDiff {
        let mut d = RibDiff::default();
        for prefix in prefixes {
            // No slot: neither wanted nor sent, nothing to do.
            if let Some(slot) = self.slots.get(prefix) {
                d.add(prefix, slot, &sendable);
            }
        }
        d.sorted()
    }

    /// Records that `diff` was sent.
    pub fn commit(&mut self, diff: &RibDiff) {
        for prefix in &diff.withdraw {
            if let Entry::Occupied(mut e) = self.slots.entry(*prefix) {
                if e.get_mut().sent.take().is_some() {
                    self.advertised -= 1;
                }
                if e.get().is_vacant() {
                    e.remove();
                }
            }
        }
        for (attrs, prefixes) in &diff.announce {
            for prefix in prefixes {
                // `attrs` came from the slot's `want`, so in steady state both fields share
                // one allocation. A diff computed before the want changed still records the
                // truth: this is what the peer now has.
                let slot = self.slots.entry(*prefix).or_default();
                if slot.sent.replace(attrs.clone()).is_none() {
                    self.advertised += 1;
                }
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

    fn attrs(community: u32) -> Arc<RouteAttributes> {
        Arc::new(RouteAttributes {
            communities: vec![community],
            ..RouteAttributes::default()
        })
    }

    #[test]
    fn diff_announces_new_and_changed_and_withdraws_gone() {
        let a = Arc::new(RouteAttributes::default());
        let b = attrs(1);
        let mut rib = AdjRibOut::default();
        let first: RouteMap = [(p("10.0.0.1/32"), a.clone()), (p("10.0.0.2/32"), a.clone())].into();
        rib.set_desired(&first);
        let d = rib.diff();
        assert_eq!(d.announced(), 2);
        assert!(d.withdraw.is_empty());
        rib.commit(&d);
        assert!(rib.diff().is_empty(), "nothing to do when in sync");

        let second: RouteMap = [
            (p("10.0.0.2/32"), b.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        rib.set_desired(&second);
        let d = rib.diff();
        assert_eq!(d.withdraw, vec![p("10.0.0.1/32")]);
        assert_eq!(d.announce[&b], vec![p("10.0.0.2/32")]);
        assert_eq!(d.announce[&a], vec![p("2001:db8::1/128")]);
        rib.commit(&d);
        assert_eq!(rib.len(), 2);
        assert!(rib.diff().is_empty());

        rib.forget(|p| matches!(p, IpNet::V6(_)));
        assert_eq!(rib.len(), 1);
        assert_eq!(rib.diff().announce[&a], vec![p("2001:db8::1/128")]);
    }

    #[test]
    fn diff_of_some_prefixes_equals_the_full_diff_restricted_to_them() {
        let a = Arc::new(RouteAttributes::default());
        let b = attrs(7);
        let mut rib = AdjRibOut::default();
        let first: RouteMap = [
            (p("10.0.0.1/32"), a.clone()),
            (p("10.0.0.2/32"), a.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        rib.set_desired(&first);
        rib.commit(&rib.diff());
        let second: RouteMap = [
            (p("10.0.0.2/32"), b.clone()),
            (p("10.0.0.3/32"), a.clone()),
            (p("2001:db8::1/128"), a.clone()),
        ]
        .into();
        rib.set_desired(&second);
        let changed = [
            p("10.0.0.1/32"),
            p("10.0.0.2/32"),
            p("10.0.0.3/32"),
            p("10.0.0.3/32"),
            p("10.9.9.9/32"),
        ];
        let d = rib.diff_prefixes(&changed, |_| true);
        assert_eq!(d, rib.diff());
        assert_eq!(d.withdraw, vec![p("10.0.0.1/32")]);
        assert_eq!(d.announce[&a], vec![p("10.0.0.3/32")]);
        // An unchanged prefix in the list sends nothing; one the session cannot carry is
        // withdrawn if it was sent.
        rib.set_desired(&first);
        let only_v4 = |p: &IpNet| matches!(p, IpNet::V4(_));
        let d = rib.diff_prefixes(&[p("10.0.0.1/32"), p("2001:db8::1/128")], only_v4);
        assert!(d.announce.is_empty());
        assert_eq!(d.withdraw, vec![p("2001:db8::1/128")]);
        assert_eq!(d, rib.diff_sendable(only_v4));
    }

    #[test]
    fn after_a_full_sync_each_prefix_has_one_entry_with_want_equal_to_sent() {
        let a = attrs(1);
        let b = attrs(2);
        let mut rib = AdjRibOut::default();
        let table: RouteMap = (0..1000u32)
            .map(|i| {
                let prefix = IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                    0x0a00_0000 + i,
                )));
                (prefix, if i % 2 == 0 { a.clone() } else { b.clone() })
            })
            .collect();
        rib.set_desired(&table);
        rib.commit(&rib.diff());
        assert_eq!(rib.slots.len(), table.len());
        assert_eq!(rib.len(), table.len());
        assert_eq!(rib.wanted(), table.len());
        for (prefix, attrs) in &table {
            let slot = &rib.slots[prefix];
            assert_eq!(slot.want.as_ref(), Some(attrs));
            assert_eq!(slot.sent.as_ref(), Some(attrs));
            // Both states share the caller's attribute allocation: no per-prefix copies.
            assert!(Arc::ptr_eq(slot.want.as_ref().unwrap(), attrs));
            assert!(Arc::ptr_eq(slot.sent.as_ref().unwrap(), attrs));
        }
        assert!(rib.diff().is_empty());

        // Withdrawing everything (as at shutdown) leaves no entry behind once committed.
        rib.set_desired(&RouteMap::new());
        assert_eq!(rib.slots.len(), table.len(), "still sent, so still held");
        let d = rib.diff();
        assert_eq!(d.withdraw.len(), table.len());
        rib.commit(&d);
        assert!(rib.is_empty());
        assert!(rib.slots.is_empty());
    }

    #[test]
    fn per_prefix_changes_and_session_resets_keep_the_counts_right() {
        let a = attrs(1);
        let b = attrs(2);
        let mut rib = AdjRibOut::default();
        rib.set_want(p("10.0.0.1/32"), Some(a.clone()));
        rib.set_want(p("10.0.0.2/32"), Some(a.clone()));
        // Withdrawing a prefix never wanted nor sent leaves nothing behind.
        rib.set_want(p("10.0.0.9/32"), None);
        assert_eq!(rib.slots.len(), 2);
        assert!(rib.is_empty(), "nothing sent yet");
        rib.commit(&rib.diff());
        assert_eq!(rib.len(), 2);

        // A new session forgets what was sent but not what is wanted.
        rib.clear();
        assert!(rib.is_empty());
        assert_eq!(rib.wanted(), 2);
        assert_eq!(rib.diff().announced(), 2);
        rib.commit(&rib.diff());

        // Changing one prefix's attributes re-announces it; withdrawing one, once
        // committed, drops its entry; a prefix wanted again before that is kept.
        rib.set_want(p("10.0.0.1/32"), Some(b.clone()));
        rib.set_want(p("10.0.0.2/32"), None);
        let changed = [p("10.0.0.1/32"), p("10.0.0.2/32")];
        let d = rib.diff_prefixes(&changed, |_| true);
        assert_eq!(d.announce[&b], vec![p("10.0.0.1/32")]);
        assert_eq!(d.withdraw, vec![p("10.0.0.2/32")]);
        rib.commit(&d);
        assert_eq!(rib.len(), 1);
        assert_eq!(rib.slots.len(), 1);
        assert!(rib.diff().is_empty());

        // A wanted prefix that was never sent has nothing to forget.
        rib.set_want(p("10.0.0.3/32"), Some(a.clone()));
        rib.forget(|_| true);
        assert!(rib.is_empty());
        assert_eq!(rib.slots.len(), 2);
    }

    #[test]
    fn one_slot_costs_less_than_an_entry_in_each_of_two_maps() {
        let two_maps = 2 * std::mem::size_of::<(IpNet, Arc<RouteAttributes>)>();
        let one_map = std::mem::size_of::<(IpNet, Slot)>();
        println!(
            "per prefix: two maps {two_maps} B, slot map {one_map} B (+1 control byte per map)"
        );
        assert!(one_map * 3 <= two_maps * 2, "{one_map} vs {two_maps}");
    }
}
