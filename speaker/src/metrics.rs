//! The speaker's Prometheus metrics, all prefixed `ferrolb_`, and the per-peer task that
//! follows a session's status into them (and into the [`SessionBoard`] behind the node's
//! `SpeakerStatus`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::runtime::PeerStatus;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::status::SessionBoard;

/// Label set `{peer}`.
pub type PeerLabels = Vec<(String, String)>;
/// Label set `{kind}`.
pub type KindLabels = Vec<(String, String)>;

/// `{peer}` labels.
pub fn peer_labels(peer: &str) -> PeerLabels {
    vec![("peer".to_owned(), peer.to_owned())]
}

/// `{kind}` labels.
pub fn kind_labels(kind: &str) -> KindLabels {
    vec![("kind".to_owned(), kind.to_owned())]
}

/// Every metric the speaker exports, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// 1 while the session with a peer is Established.
    pub session_up: Family<PeerLabels, Gauge>,
    /// UPDATE messages sent to a peer (over all sessions).
    pub updates_sent: Family<PeerLabels, Counter>,
    /// Prefixes currently advertised to a peer.
    pub prefixes_advertised: Family<PeerLabels, Gauge>,
    /// Service addresses this node announces to at least one peer.
    pub announced_ips: Gauge,
    /// From a decision that changed a peer's routes to the first UPDATE carrying it.
    pub decision_to_update: Histogram,
    /// Failed reconcile steps, by kind (`invalidConfig`, `passwordSecret`, …).
    pub reconcile_errors: Family<KindLabels, Counter>,
    /// Decision runs.
    pub reconciles: Counter,
    /// 1 once every watch cache is synced.
    pub caches_synced: Gauge,
    /// The sessions' latest status, for the node's `SpeakerStatus` object (not exported as
    /// metrics; kept here because [`follow_peer`] already sees every status change).
    pub session_board: SessionBoard,
}

impl Metrics {
    /// Registers every metric under the `ferrolb` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb");
        let session_up = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "bgp_session_up",
            "1 while the BGP session with a peer is Established",
            session_up.clone(),
        );
        let updates_sent = Family::<PeerLabels, Counter>::default();
        registry.register(
            "bgp_updates_sent",
            "BGP UPDATE messages sent to a peer",
            updates_sent.clone(),
        );
        let prefixes_advertised = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "bgp_prefixes_advertised",
            "Prefixes currently advertised to a peer",
            prefixes_advertised.clone(),
        );
        let announced_ips = Gauge::default();
        registry.register(
            "speaker_announced_service_ips",
            "Service addresses this node announces to at least one peer",
            announced_ips.clone(),
        );
        let decision_to_update = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "speaker_decision_to_update_seconds",
            "Time from a decision that changed a peer's routes to the UPDATE sent for it",
            decision_to_update.clone(),
        );
        let reconcile_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "speaker_reconcile_errors",
            "Failed reconcile steps, by kind",
            reconcile_errors.clone(),
        );
        let reconciles = Counter::default();
        registry.register(
            "speaker_reconciles",
            "Announcement decision runs",
            reconciles.clone(),
        );
        let caches_synced = Gauge::default();
        registry.register(
            "speaker_caches_synced",
            "1 once the speaker's watch caches are synced",
            caches_synced.clone(),
        );
        Metrics {
            registry,
            session_up,
            updates_sent,
            prefixes_advertised,
            announced_ips,
            decision_to_update,
            reconcile_errors,
            reconciles,
            caches_synced,
            session_board: SessionBoard::default(),
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one failed reconcile step.
    pub fn error(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&kind_labels(kind))
            .inc();
    }

    /// Drops a peer's series once its session is gone, so a deleted peer does not linger.
    pub fn forget_peer(&self, peer: &str) {
        let labels = peer_labels(peer);
        self.session_up.remove(&labels);
        self.prefixes_advertised.remove(&labels);
        self.updates_sent.remove(&labels);
        self.session_board.forget(peer);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// When the routes for a peer last changed and no UPDATE has carried the change yet.
#[derive(Clone, Debug, Default)]
pub struct PendingChange(Arc<Mutex<Option<Instant>>>);

impl PendingChange {
    /// Notes a decision that changed the peer's routes; an older pending change keeps its
    /// (earlier) time, so the latency covers the whole wait.
    pub fn mark(&self, at: Instant) {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.get_or_insert(at);
    }

    fn take(&self) -> Option<Instant> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn clear(&self) {
        self.take();
    }
}

/// Follows one peer's status into the metrics until the peer task ends.
///
/// The runtime's `updates_sent` counts per session; the counter here adds the growth and
/// starts over with each new session (a new `established_at`).
pub async fn follow_peer(
    peer: String,
    mut status: watch::Receiver<PeerStatus>,
    pending: PendingChange,
    metrics: Arc<Metrics>,
) {
    let labels = peer_labels(&peer);
    let mut last_updates = 0u64;
    let mut last_session = None;
    loop {
        let s = status.borrow_and_update().clone();
        metrics.session_board.observe(&peer, &s);
        if s.established_at != last_session {
            // A new session counts from zero again.
            last_session = s.established_at;
            if s.established_at.is_some() {
                last_updates = 0;
            }
        }
        let up = s.state == State::Established;
        metrics.session_up.get_or_create(&labels).set(i64::from(up));
        metrics
            .prefixes_advertised
            .get_or_create(&labels)
            .set(i64::try_from(s.advertised).unwrap_or(i64::MAX));
        let grown = s
            .updates_sent
            .checked_sub(last_updates)
            .unwrap_or(s.updates_sent);
        last_updates = s.updates_sent;
        if grown > 0 {
            metrics.updates_sent.get_or_create(&labels).inc_by(grown);
            if let Some(at) = pending.take() {
                metrics
                    .decision_to_update
                    .observe(at.elapsed().as_secs_f64());
            }
        }
        if !up {
            // A change made while the session is down goes out with the next session's full
            // table: that wait is the session's, not the decision's.
            pending.clear();
        }
        if status.changed().await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn text_exposition_has_prefixed_names() {
        let m = Metrics::new();
        m.session_up.get_or_create(&peer_labels("r1")).set(1);
        m.updates_sent.get_or_create(&peer_labels("r1")).inc_by(3);
        m.announced_ips.set(2);
        m.error("invalidConfig");
        let text = m.encode();
        for want in [
            "ferrolb_bgp_session_up{peer=\"r1\"} 1",
            "ferrolb_bgp_updates_sent_total{peer=\"r1\"} 3",
            "ferrolb_speaker_announced_service_ips 2",
            "ferrolb_speaker_reconcile_errors_total{kind=\"invalidConfig\"} 1",
            "ferrolb_speaker_decision_to_update_seconds_count 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        m.forget_peer("r1");
        assert!(!m.encode().contains("peer=\"r1\""));
    }

    #[tokio::test]
    async fn follows_status_and_measures_latency() {
        let m = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(PeerStatus::default());
        let pending = PendingChange::default();
        let task = tokio::spawn(follow_peer("r1".into(), rx, pending.clone(), m.clone()));
        // Waits until the exposition contains `want` (the follower runs concurrently).
        let seen = |want: &'static str| {
            let m = m.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), async {
                    while !m.encode().contains(want) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
                .await
                .unwrap_or_else(|_| panic!("never saw {want:?} in\n{}", m.encode()));
            }
        };
        let first = PeerStatus {
            state: State::Established,
            established_at: Some(Instant::now()),
            ..PeerStatus::default()
        };
        tx.send_replace(first.clone());
        seen("ferrolb_bgp_session_up{peer=\"r1\"} 1").await;
        pending.mark(Instant::now());
        tx.send_replace(PeerStatus {
            updates_sent: 2,
            advertised: 5,
            ..first.clone()
        });
        seen("ferrolb_bgp_updates_sent_total{peer=\"r1\"} 2").await;
        seen("ferrolb_bgp_prefixes_advertised{peer=\"r1\"} 5").await;
        seen("ferrolb_speaker_decision_to_update_seconds_count 1").await;
        // A new session counts from zero: its 3 UPDATEs add 3, not 1.
        tx.send_replace(PeerStatus {
            updates_sent: 3,
            established_at: Some(Instant::now() + Duration::from_secs(1)),
            ..first
        });
        seen("ferrolb_bgp_updates_sent_total{peer=\"r1\"} 5").await;
        // No change was pending: the histogram did not move.
        assert!(
            m.encode()
                .contains("ferrolb_speaker_decision_to_update_seconds_count 1")
        );
        tx.send_replace(PeerStatus::default());
        seen("ferrolb_bgp_session_up{peer=\"r1\"} 0").await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
