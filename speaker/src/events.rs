//! Events on a Service when its announcement from this node really starts or stops, never
//! per resync: the route table (`crate::table`) finds the flips, [`note`] words them and
//! [`publish`] sends them.

use std::collections::{BTreeSet, HashMap};

use ferrolb_shared::allocator::ServiceKey;
use ferrolb_shared::announce::{PeerName, ServiceDecision};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Service;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

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

/// The note of a Service's event: the peers it is announced to, or the reason it is not
/// (the reason towards a peer this node has a session with first).
pub fn note(
    d: &ServiceDecision,
    announced: bool,
    node: &str,
    sessions: &BTreeSet<PeerName>,
) -> String {
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

/// How many events may wait for the API server. A burst beyond it (thousands of new
/// Services at once) drops the rest: events are best-effort, and one task per event would
/// hold several MiB for as long as the burst takes to send.
pub const EVENT_QUEUE: usize = 1000;

/// Sends the speaker's events one at a time, from a bounded queue.
#[derive(Clone, Debug)]
pub struct EventSink {
    queue: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventSink {
    /// Starts the sender on the current runtime; it ends when every sink is dropped.
    pub fn start(client: kube::Client, reporter: Reporter) -> Self {
        let (sink, mut rx) = Self::queue(EVENT_QUEUE);
        tokio::spawn(async move {
            while let Some((event, reference)) = rx.recv().await {
                // A fresh Recorder per event: `Recorder` caches every event it sent and
                // scans that cache on each publish; repeats are already impossible here.
                let recorder = Recorder::new(client.clone(), reporter.clone());
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, "could not publish event");
                }
            }
        });
        sink
    }

    fn queue(capacity: usize) -> (Self, mpsc::Receiver<(Event, ObjectReference)>) {
        let (queue, rx) = mpsc::channel(capacity);
        (EventSink { queue }, rx)
    }

    /// Queues one event per flip on its Service (those still cached); returns how many
    /// were dropped because the queue was full.
    pub fn publish(&self, flips: Vec<Flip>, services: &[std::sync::Arc<Service>]) -> usize {
        if flips.is_empty() {
            return 0;
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
        let mut dropped = 0;
        for flip in flips {
            let Some(svc) = by_key.get(&(flip.key.namespace.as_str(), flip.key.name.as_str()))
            else {
                continue;
            };
            let event = Event {
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
            if self.queue.try_send((event, svc.object_ref(&()))).is_err() {
                dropped += 1;
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_shared::announce::Decisions;
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
    fn a_burst_beyond_the_queue_is_dropped_and_counted() {
        let (sink, mut rx) = EventSink::queue(4);
        let services: Vec<std::sync::Arc<Service>> = (0..6)
            .map(|i| {
                let mut s = Service::default();
                s.metadata.namespace = Some("app".into());
                s.metadata.name = Some(format!("s{i}"));
                std::sync::Arc::new(s)
            })
            .collect();
        let flip = |i: usize, announced: bool| Flip {
            key: ServiceKey::new("app", format!("s{i}")),
            announced,
            note: format!("note {i}"),
        };
        // s9 is not cached: no event, and not counted as dropped.
        let flips = (0..6)
            .map(|i| flip(i, i % 2 == 0))
            .chain([flip(9, true)])
            .collect();
        assert_eq!(sink.publish(flips, &services), 2);
        let mut seen = Vec::new();
        while let Ok((event, reference)) = rx.try_recv() {
            seen.push((reference.name.unwrap(), event.reason, event.note.unwrap()));
        }
        assert_eq!(
            seen,
            (0..4)
                .map(|i| (
                    format!("s{i}"),
                    if i % 2 == 0 {
                        REASON_ANNOUNCED
                    } else {
                        REASON_WITHDRAWN
                    }
                    .to_owned(),
                    format!("note {i}")
                ))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn notes_name_the_peers_or_the_reason() {
        let sessions: BTreeSet<PeerName> = [PeerName::from("r1")].into();
        let d = decisions(true, true);
        let web = &d.services[&ServiceKey::new("app", "web")];
        assert_eq!(
            note(web, true, "n1", &sessions),
            "announced from node n1 to r1"
        );
        let d = decisions(true, false);
        let web = &d.services[&ServiceKey::new("app", "web")];
        assert_eq!(
            note(web, false, "n1", &sessions),
            "withdrawn from node n1: noEndpoints"
        );
        let d = decisions(false, true);
        let web = &d.services[&ServiceKey::new("app", "web")];
        assert_eq!(
            note(web, false, "n1", &sessions),
            "withdrawn from node n1: nodeNotReady"
        );
    }
}
