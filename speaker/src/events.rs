//! Events on a Service when its announcement from this node really starts or stops, never
//! per resync: [`AnnouncementTracker`] (pure) finds the flips, [`publish`] sends them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferrolb_shared::allocator::ServiceKey;
use ferrolb_shared::announce::{Decisions, PeerName, ServiceDecision};
use k8s_openapi::api::core::v1::Service;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Event reason when this node starts announcing a Service.
pub const REASON_ANNOUNCED: &str = "Announced";
/// Event reason when this node stops announcing a Service.
pub const REASON_WITHDRAWN: &str = "Withdrawn";

/// One announcement that started or stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flip {
    /// The Service.
    pub key: ServiceKey,
    /// Now announced (true) or withdrawn (false).
    pub announced: bool,
    /// Human-readable detail: the peers, or the reason for withdrawing.
    pub note: String,
}

/// Remembers which Services this node announces, to report only real changes.
#[derive(Debug, Default)]
pub struct AnnouncementTracker {
    announced: BTreeMap<ServiceKey, bool>,
    primed: bool,
}

impl AnnouncementTracker {
    /// The Services whose announcement flipped since the last call. The first call only
    /// records the state: a restarted speaker does not repeat an event per Service. Services
    /// that disappeared are forgotten without an event (there is nothing left to annotate).
    pub fn update(&mut self, decisions: &Decisions, node: &str) -> Vec<Flip> {
        let mut flips = Vec::new();
        // Updated in place: at 10k Services, rebuilding the map on every run costs more than
        // the comparisons.
        self.announced
            .retain(|key, _| decisions.services.contains_key(key));
        for (key, d) in &decisions.services {
            let now = d.is_announced();
            match self.announced.get_mut(key) {
                Some(was) if *was == now => continue,
                Some(was) => *was = now,
                None => {
                    self.announced.insert(key.clone(), now);
                    if !now {
                        continue;
                    }
                }
            }
            if self.primed {
                flips.push(Flip {
                    key: key.clone(),
                    announced: now,
                    note: note(d, now, node, &decisions.sessions),
                });
            }
        }
        self.primed = true;
        flips
    }
}

fn note(d: &ServiceDecision, announced: bool, node: &str, sessions: &BTreeSet<PeerName>) -> String {
    if announced {
        let peers: BTreeSet<&str> = d
            .ips
            .iter()
            .flat_map(|ip| &ip.peers)
            .filter(|(_, o)| o.is_announced())
            .map(|(p, _)| &**p)
            .collect();
        let peers: Vec<&str> = peers.into_iter().collect();
        return format!("announced from node {node} to {}", peers.join(", "));
    }
    // The reason towards a peer this node has a session with says most.
    let reason = d
        .ips
        .iter()
        .flat_map(|ip| &ip.peers)
        .filter(|(p, _)| sessions.contains(p))
        .chain(d.ips.iter().flat_map(|ip| &ip.peers))
        .find_map(|(_, o)| o.reason())
        .map_or("noIPAssigned", |r| r.as_str());
    format!("withdrawn from node {node}: {reason}")
}

/// Publishes one event per flip on its Service (those still cached), in the background.
pub fn publish(
    client: &kube::Client,
    reporter: &Reporter,
    flips: Vec<Flip>,
    services: &[std::sync::Arc<Service>],
) {
    if flips.is_empty() {
        return;
    }
    let by_key: HashMap<(&str, &str), &Service> = services
        .iter()
        .map(|s| {
            (
                (
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    s.metadata.name.as_deref().unwrap_or_default(),
                ),
                &**s,
            )
        })
        .collect();
    for flip in flips {
        let Some(svc) = by_key.get(&(flip.key.namespace.as_str(), flip.key.name.as_str())) else {
            continue;
        };
        let reference = svc.object_ref(&());
        // A fresh Recorder per event: `Recorder` caches every event it sent and scans that
        // cache on each publish; repeats are already impossible here.
        let recorder = Recorder::new(client.clone(), reporter.clone());
        tokio::spawn(async move {
            let ev = Event {
                type_: EventType::Normal,
                reason: if flip.announced {
                    REASON_ANNOUNCED
                } else {
                    REASON_WITHDRAWN
                }
                .to_owned(),
                note: Some(flip.note),
                action: "Announce".to_owned(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "could not publish event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_shared::announce::{
        AdvertisementView, EndpointView, NodeView, PeerView, PoolView, ServiceView, Snapshot,
        TrafficPolicy, decide,
    };
    use ferrolb_shared::crd::{BGPAdvertisementSpec, BGPPeerSpec, IPAddressPoolSpec};

    fn decisions(ready: bool, endpoints: bool) -> Decisions {
        let node = NodeView {
            name: "n1".into(),
            ready,
            ..NodeView::default()
        };
        let pool: IPAddressPoolSpec =
            serde_json::from_value(serde_json::json!({"addresses": ["192.0.2.0/24"]})).unwrap();
        let peer: BGPPeerSpec = serde_json::from_value(serde_json::json!({
            "myASN": 64513, "peerASN": 64512, "peerAddress": "127.0.0.1"}))
        .unwrap();
        let ad: BGPAdvertisementSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let mut ep = EndpointView::default();
        if endpoints {
            ep.ready_nodes.insert("n1".into());
        }
        let svc = ServiceView {
            key: ServiceKey::new("app", "web"),
            labels: Default::default(),
            ips: vec!["192.0.2.10".parse().unwrap()],
            traffic_policy: TrafficPolicy::Cluster,
            endpoints: ep,
        };
        decide(&Snapshot {
            node: &node,
            pools: &[PoolView {
                name: "p".into(),
                labels: Default::default(),
                pool: pool.validate().unwrap(),
            }],
            advertisements: &[AdvertisementView {
                name: "a".into(),
                advertisement: ad.validate().unwrap(),
            }],
            peers: &[PeerView {
                name: "r1".into(),
                peer: peer.validate().unwrap(),
            }],
            services: &[svc],
        })
    }

    #[test]
    fn only_real_flips_are_reported_with_their_reason() {
        let mut t = AnnouncementTracker::default();
        assert!(
            t.update(&decisions(true, true), "n1").is_empty(),
            "first run is silent"
        );
        assert!(
            t.update(&decisions(true, true), "n1").is_empty(),
            "no change, no event"
        );
        let flips = t.update(&decisions(true, false), "n1");
        assert_eq!(flips.len(), 1);
        assert!(!flips[0].announced);
        assert_eq!(flips[0].note, "withdrawn from node n1: noEndpoints");
        assert!(
            t.update(&decisions(false, false), "n1").is_empty(),
            "still withdrawn"
        );
        let flips = t.update(&decisions(true, true), "n1");
        assert!(flips[0].announced);
        assert_eq!(flips[0].note, "announced from node n1 to r1");
    }
}
