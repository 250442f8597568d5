//! The node's [`SpeakerStatus`] object: this speaker's BGP sessions as an operator sees them
//! with `kubectl get speakerstatus`.
//!
//! Sources: [`SessionBoard`] holds what each session's runtime status last said (fed by
//! [`follow_peer`](crate::metrics::follow_peer)); [`NodeFacts`] is what the decision loop
//! knows (which peers select this node, their addresses, why a session cannot be
//! configured, how many Service addresses are announced). [`desired_status`] turns both into
//! the status, purely.
//!
//! Writing ([`spawn_writer`]): only when the status differs from the last one written
//! (times aside), at most once per [`MIN_WRITE_INTERVAL`] (changes in between are coalesced
//! into the next write), creating the object if it is missing, writing the status through
//! the `/status` subresource with a resourceVersion precondition and retrying conflicts.
//! The object is owned by the Node (an `ownerReference`, no `blockOwnerDeletion`), so the
//! garbage collector removes it when the Node is deleted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::runtime::PeerStatus;
use ferrolb_shared::crd::{
    CONDITION_SESSIONS_ESTABLISHED, PeerSessionStatus, REASON_ALL_ESTABLISHED, REASON_NO_SESSIONS,
    REASON_SESSIONS_DOWN, SessionState, SpeakerStatus, SpeakerStatusSpec, SpeakerStatusStatus,
    set_condition,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// At most one status write per this interval; changes in between wait and are written
/// together.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failed write.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Attempts of one write when resourceVersion conflicts keep happening.
pub const CONFLICT_ATTEMPTS: u32 = 5;
/// The `reconcile_errors` kind counted when a status write fails.
pub const ERROR_KIND: &str = "statusWrite";

/// Whole seconds: Kubernetes times are serialized at that precision, and sub-second noise
/// would make two equal statuses differ.
fn now_secs() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The wall-clock time of a monotonic instant in the past, in whole seconds.
fn wall_clock(at: Instant) -> Timestamp {
    let now = Timestamp::now();
    let ago = k8s_openapi::jiff::SignedDuration::try_from(at.elapsed()).unwrap_or_default();
    let then = now.checked_sub(ago).unwrap_or(now);
    Timestamp::from_second(then.as_second()).unwrap_or(then)
}

/// What one session's runtime last reported, as the status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSession {
    /// FSM state.
    pub state: SessionState,
    /// When the current session became Established.
    pub established_since: Option<Timestamp>,
    /// Prefixes currently advertised.
    pub advertised: u64,
    /// UPDATEs sent in the current session.
    pub updates_sent: u64,
    /// When the last UPDATE of the current session was sent.
    pub last_update_sent: Option<Timestamp>,
    /// Last error or NOTIFICATION.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Tracked {
    shown: PeerSession,
    /// The runtime's `established_at` the wall-clock `established_since` was computed
    /// from: computed once per session, so it does not wobble between observations.
    established_at: Option<Instant>,
}

/// The latest status of every running session, shared between the sessions' followers
/// and the status writer. Cheap to clone.
#[derive(Clone)]
pub struct SessionBoard {
    peers: Arc<Mutex<BTreeMap<String, Tracked>>>,
    changed: Arc<watch::Sender<()>>,
}

impl Default for SessionBoard {
    fn default() -> Self {
        SessionBoard {
            peers: Arc::default(),
            changed: Arc::new(watch::channel(()).0),
        }
    }
}

impl fmt::Debug for SessionBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBoard")
            .field("peers", &self.snapshot())
            .finish()
    }
}

impl SessionBoard {
    /// Records a session's status; wakes the writer only when what the status shows changed.
    pub fn observe(&self, peer: &str, s: &PeerStatus) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let t = peers.entry(peer.to_owned()).or_default();
        let before = t.shown.clone();
        let new_session = s.established_at != t.established_at;
        if new_session {
            t.established_at = s.established_at;
            t.shown.established_since = s.established_at.map(wall_clock);
            t.shown.last_update_sent = None;
        }
        if s.established_at.is_none() {
            t.shown.last_update_sent = None;
        } else if s.updates_sent > t.shown.updates_sent || (new_session && s.updates_sent > 0) {
            t.shown.last_update_sent = Some(now_secs());
        }
        t.shown.state = session_state(s.state);
        t.shown.advertised = u64::try_from(s.advertised).unwrap_or(u64::MAX);
        t.shown.updates_sent = s.updates_sent;
        t.shown.last_error = s.last_error.clone();
        let changed = t.shown != before;
        drop(peers);
        if changed {
            self.changed.send_replace(());
        }
    }

    /// Drops a session that was stopped.
    pub fn forget(&self, peer: &str) {
        let removed = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(peer)
            .is_some();
        if removed {
            self.changed.send_replace(());
        }
    }

    /// Every session's status, by peer name.
    pub fn snapshot(&self) -> BTreeMap<String, PeerSession> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, t)| (k.clone(), t.shown.clone()))
            .collect()
    }

    /// A receiver that sees a change whenever a session's shown status changes.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

/// The runtime's FSM state as the CRD spells it.
pub fn session_state(s: State) -> SessionState {
    match s {
        State::Idle => SessionState::Idle,
        State::Connect => SessionState::Connect,
        State::Active => SessionState::Active,
        State::OpenSent => SessionState::OpenSent,
        State::OpenConfirm => SessionState::OpenConfirm,
        State::Established => SessionState::Established,
    }
}

/// What the decision loop knows that the status shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The Node's uid, once seen: the owner of the status object.
    pub node_uid: Option<String>,
    /// The peers whose `nodeSelectors` select this node, with their address.
    pub sessions: BTreeMap<String, SocketAddr>,
    /// Peers whose session cannot be (re)configured, with the reason (never a secret).
    pub problems: BTreeMap<String, String>,
    /// Service addresses announced to at least one peer.
    pub announced_ips: usize,
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status the object should show: one entry per peer selecting this node (a peer
/// without a running session shows `Idle`, with the configuration problem as its error).
/// `lastUpdateTime` is left unset and the condition's transition time is `now`; the writer
/// fills in the first and keeps the stored transition time when the condition did not flip.
pub fn desired_status(
    facts: &NodeFacts,
    board: &BTreeMap<String, PeerSession>,
    now: Timestamp,
) -> SpeakerStatusStatus {
    let mut peers = Vec::with_capacity(facts.sessions.len());
    for (name, addr) in &facts.sessions {
        let session = board.get(name).cloned().unwrap_or_default();
        let last_error = facts
            .problems
            .get(name)
            .cloned()
            .or(session.last_error.clone());
        peers.push(PeerSessionStatus {
            name: name.clone(),
            address: addr.ip().to_string(),
            port: i32::from(addr.port()),
            state: session.state,
            established_since: session.established_since.map(Time),
            prefixes_advertised: clamp_i64(session.advertised),
            updates_sent: clamp_i64(session.updates_sent),
            last_update_sent_time: session.last_update_sent.map(Time),
            last_error,
        });
    }
    let established: Vec<&str> = peers
        .iter()
        .filter(|p| p.state == SessionState::Established)
        .map(|p| p.name.as_str())
        .collect();
    let down: Vec<String> = peers
        .iter()
        .filter(|p| p.state != SessionState::Established)
        .map(|p| format!("{} ({})", p.name, p.state))
        .collect();
    let (status, reason, message) = if peers.is_empty() {
        (
            "True",
            REASON_NO_SESSIONS,
            "no BGPPeer selects this node".to_owned(),
        )
    } else if down.is_empty() {
        (
            "True",
            REASON_ALL_ESTABLISHED,
            format!("all {} sessions are Established", peers.len()),
        )
    } else {
        (
            "False",
            REASON_SESSIONS_DOWN,
            format!("not Established: {}", down.join(", ")),
        )
    };
    SpeakerStatusStatus {
        sessions_established: i32::try_from(established.len()).unwrap_or(i32::MAX),
        sessions: i32::try_from(peers.len()).unwrap_or(i32::MAX),
        prefixes_advertised: peers.iter().map(|p| p.prefixes_advertised).sum(),
        announced_service_ips: clamp_i64(u64::try_from(facts.announced_ips).unwrap_or(u64::MAX)),
        peers,
        last_update_time: None,
        conditions: vec![Condition {
            type_: CONDITION_SESSIONS_ESTABLISHED.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: None,
            last_transition_time: Time(now),
        }],
    }
}

/// The status with its times that do not mark content changes removed, for comparing.
fn content(status: &SpeakerStatusStatus) -> SpeakerStatusStatus {
    let mut s = status.clone();
    s.last_update_time = None;
    for c in &mut s.conditions {
        c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
    }
    s
}

/// Whether two statuses show the same thing (write times aside).
pub fn same_content(a: &SpeakerStatusStatus, b: &SpeakerStatusStatus) -> bool {
    content(a) == content(b)
}

/// `desired` with the stored condition transition times kept where the condition status
/// did not change.
fn merged(
    stored: Option<&SpeakerStatusStatus>,
    desired: &SpeakerStatusStatus,
) -> SpeakerStatusStatus {
    let mut out = desired.clone();
    let mut conditions = stored.map(|s| s.conditions.clone()).unwrap_or_default();
    for c in &desired.conditions {
        set_condition(&mut conditions, c.clone());
    }
    conditions.retain(|c| desired.conditions.iter().any(|d| d.type_ == c.type_));
    out.conditions = conditions;
    out
}

/// The ownerReference making the Node the status object's owner.
pub fn node_owner(node_name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Node".to_owned(),
        name: node_name.to_owned(),
        uid: uid.to_owned(),
        // Blocking the Node's deletion would need update rights on nodes/finalizers, and a
        // status object has no reason to hold a Node back.
        block_owner_deletion: None,
        controller: None,
    }
}

/// Status write failures.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The API server refused or failed a request.
    #[error("writing SpeakerStatus {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Conflicts kept happening.
    #[error(
        "writing SpeakerStatus {namespace}/{name}: still conflicting after {attempts} attempts"
    )]
    Conflicts {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Writes one node's [`SpeakerStatus`] object.
struct Writer {
    api: Api<SpeakerStatus>,
    nodes: Api<Node>,
    node_name: String,
    namespace: String,
    /// The object as last read or written (its resourceVersion is the precondition of the
    /// next write); `None` after a conflict, so the next attempt reads it again.
    cached: Option<SpeakerStatus>,
    /// The Node's uid when the cache's copy lacks one (looked up once).
    looked_up_uid: Option<String>,
}

impl Writer {
    fn err(&self, source: kube::Error) -> StatusError {
        StatusError::Api {
            namespace: self.namespace.clone(),
            name: self.node_name.clone(),
            source,
        }
    }

    /// The Node's uid: from the facts, else from the API (the cache may have dropped it).
    async fn owner_uid(&mut self, facts: &NodeFacts) -> Option<String> {
        if let Some(uid) = &facts.node_uid {
            return Some(uid.clone());
        }
        if self.looked_up_uid.is_none() {
            match self.nodes.get_opt(&self.node_name).await {
                Ok(node) => self.looked_up_uid = node.and_then(|n| n.metadata.uid),
                Err(e) => tracing::debug!(error = %e, "cannot read this Node's uid"),
            }
        }
        self.looked_up_uid.clone()
    }

    /// The object, read (and created when missing) if not cached.
    async fn object(
        &mut self,
        owner: Option<&OwnerReference>,
    ) -> Result<SpeakerStatus, StatusError> {
        if let Some(obj) = self.cached.take() {
            return Ok(obj);
        }
        if let Some(obj) = self
            .api
            .get_opt(&self.node_name)
            .await
            .map_err(|e| self.err(e))?
        {
            return Ok(obj);
        }
        let obj = SpeakerStatus {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                namespace: Some(self.namespace.clone()),
                owner_references: owner.map(|o| vec![o.clone()]),
                ..ObjectMeta::default()
            },
            spec: SpeakerStatusSpec {
                node_name: self.node_name.clone(),
            },
            status: None,
        };
        match self.api.create(&PostParams::default(), &obj).await {
            Ok(created) => {
                tracing::info!(namespace = %self.namespace, name = %self.node_name, "created SpeakerStatus");
                Ok(created)
            }
            // Someone (an earlier run of this speaker) was quicker: read theirs.
            Err(e) if api_code(&e) == Some(409) => {
                self.api.get(&self.node_name).await.map_err(|e| self.err(e))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Brings the object's status to `desired`. Returns whether a status write was made
    /// (`false`: the stored status already showed the same).
    async fn write(
        &mut self,
        facts: &NodeFacts,
        desired: &SpeakerStatusStatus,
    ) -> Result<bool, StatusError> {
        let uid = self.owner_uid(facts).await;
        let owner = uid.as_deref().map(|u| node_owner(&self.node_name, u));
        let pp = PostParams::default();
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut obj = self.object(owner.as_ref()).await?;
            if let Some(owner) = &owner {
                let refs = obj.metadata.owner_references.get_or_insert_with(Vec::new);
                if !refs.contains(owner) {
                    // A Node re-created under the same name has a new uid: replace the
                    // reference to the old one.
                    refs.retain(|r| !(r.kind == "Node" && r.api_version == "v1"));
                    refs.push(owner.clone());
                    match self.api.replace(&self.node_name, &pp, &obj).await {
                        Ok(o) => obj = o,
                        Err(e) if matches!(api_code(&e), Some(409 | 404)) => continue,
                        Err(e) => return Err(self.err(e)),
                    }
                }
            }
            let status = merged(obj.status.as_ref(), desired);
            if obj
                .status
                .as_ref()
                .is_some_and(|s| same_content(s, &status))
            {
                self.cached = Some(obj);
                return Ok(false);
            }
            let mut status = status;
            status.last_update_time = Some(Time(now_secs()));
            obj.status = Some(status);
            match self.api.replace_status(&self.node_name, &pp, &obj).await {
                Ok(o) => {
                    self.cached = Some(o);
                    return Ok(true);
                }
                // Stale resourceVersion, or the object was deleted: read (or create) again.
                Err(e) if matches!(api_code(&e), Some(409 | 404)) => {
                    tracing::debug!(error = %e, "SpeakerStatus write conflicted; retrying");
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        Err(StatusError::Conflicts {
            namespace: self.namespace.clone(),
            name: self.node_name.clone(),
            attempts: CONFLICT_ATTEMPTS,
        })
    }
}

/// Starts the task that keeps the node's `SpeakerStatus` current. It writes nothing until
/// `facts` holds a value (the first decision run), and stops with `shutdown`.
pub fn spawn_writer(
    client: Client,
    node_name: String,
    namespace: String,
    board: SessionBoard,
    facts: watch::Receiver<Option<NodeFacts>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let writer = Writer {
        api: Api::namespaced(client.clone(), &namespace),
        nodes: Api::all(client),
        node_name,
        namespace,
        cached: None,
        looked_up_uid: None,
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = run_writer(writer, board, facts, metrics) => {}
            _ = shutdown.cancelled() => {}
        }
    })
}

async fn run_writer(
    mut writer: Writer,
    board: SessionBoard,
    mut facts: watch::Receiver<Option<NodeFacts>>,
    metrics: Arc<Metrics>,
) {
    let mut board_rx = board.subscribe();
    // Content of the last status known to be stored, and when it was written.
    let mut written: Option<SpeakerStatusStatus> = None;
    let mut last_write: Option<Instant> = None;
    let mut retry = MIN_WRITE_INTERVAL;
    let mut failed = false;
    loop {
        if !failed {
            tokio::select! {
                r = facts.changed() => if r.is_err() { return },
                _ = board_rx.changed() => {}
            }
        }
        failed = false;
        if let Some(at) = last_write {
            // Coalesce: everything that changes until the interval is over goes into one
            // write of the then-current state.
            tokio::time::sleep_until((at + MIN_WRITE_INTERVAL).into()).await;
        }
        board_rx.borrow_and_update();
        let Some(current) = facts.borrow_and_update().clone() else {
            continue;
        };
        let desired = desired_status(&current, &board.snapshot(), now_secs());
        if written.as_ref().is_some_and(|w| same_content(w, &desired)) {
            continue;
        }
        match writer.write(&current, &desired).await {
            Ok(wrote) => {
                if wrote {
                    last_write = Some(Instant::now());
                    tracing::debug!(
                        sessions = desired.sessions,
                        established = desired.sessions_established,
                        "SpeakerStatus written"
                    );
                }
                written = Some(desired);
                retry = MIN_WRITE_INTERVAL;
            }
            Err(e) => {
                metrics.error(ERROR_KIND);
                tracing::warn!(error = %e, retry_in_s = retry.as_secs(), "cannot write SpeakerStatus");
                writer.cached = None;
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY_INTERVAL);
                failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(peers: &[(&str, &str)]) -> NodeFacts {
        NodeFacts {
            node_uid: Some("uid-1".into()),
            sessions: peers
                .iter()
                .map(|(n, a)| ((*n).to_owned(), a.parse().unwrap()))
                .collect(),
            problems: BTreeMap::new(),
            announced_ips: 2,
        }
    }

    fn established(advertised: usize, updates: u64) -> PeerStatus {
        PeerStatus {
            state: State::Established,
            established_at: Some(Instant::now()),
            advertised,
            updates_sent: updates,
            ..PeerStatus::default()
        }
    }

    #[test]
    fn status_shows_every_selecting_peer_with_totals_and_condition() {
        let board = SessionBoard::default();
        board.observe("a", &established(3, 2));
        board.observe(
            "b",
            &PeerStatus {
                state: State::Active,
                last_error: Some("connect: Connection refused (os error 111)".into()),
                ..PeerStatus::default()
            },
        );
        let mut f = facts(&[
            ("a", "192.0.2.1:179"),
            ("b", "192.0.2.2:1179"),
            ("c", "[fd00::1]:179"),
        ]);
        f.problems
            .insert("c".into(), "Secret ferrolb-system/pw not found".into());
        let s = desired_status(&f, &board.snapshot(), now_secs());
        assert_eq!((s.sessions, s.sessions_established), (3, 1));
        assert_eq!(s.prefixes_advertised, 3);
        assert_eq!(s.announced_service_ips, 2);
        let names: Vec<_> = s.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = &s.peers[0];
        assert_eq!(a.state, SessionState::Established);
        assert!(a.established_since.is_some());
        assert!(a.last_update_sent_time.is_some());
        assert_eq!((a.prefixes_advertised, a.updates_sent), (3, 2));
        let b = &s.peers[1];
        assert_eq!((b.address.as_str(), b.port), ("192.0.2.2", 1179));
        assert_eq!(b.state, SessionState::Active);
        assert!(b.last_error.as_deref().unwrap().contains("refused"));
        let c = &s.peers[2];
        assert_eq!(
            (c.address.as_str(), c.state),
            ("fd00::1", SessionState::Idle)
        );
        assert_eq!(
            c.last_error.as_deref(),
            Some("Secret ferrolb-system/pw not found")
        );
        let cond = &s.conditions[0];
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", REASON_SESSIONS_DOWN)
        );
        assert_eq!(cond.message, "not Established: b (Active), c (Idle)");

        let none = desired_status(&facts(&[]), &board.snapshot(), now_secs());
        assert_eq!(none.conditions[0].reason, REASON_NO_SESSIONS);
        assert!(none.peers.is_empty());
    }

    #[test]
    fn board_changes_only_on_visible_change_and_keeps_established_since() {
        let board = SessionBoard::default();
        let mut rx = board.subscribe();
        let up = established(1, 1);
        board.observe("a", &up);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        let since = board.snapshot()["a"].established_since;
        // The same status again (e.g. a keepalive-only change upstream): nothing to write.
        board.observe("a", &up);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(board.snapshot()["a"].established_since, since);
        board.observe(
            "a",
            &PeerStatus {
                state: State::Idle,
                last_error: Some("received Cease/Administrative Shutdown".into()),
                ..PeerStatus::default()
            },
        );
        assert!(rx.has_changed().unwrap());
        let down = &board.snapshot()["a"];
        assert_eq!(down.established_since, None);
        assert_eq!(down.last_update_sent, None);
        rx.borrow_and_update();
        board.forget("a");
        assert!(rx.has_changed().unwrap());
        assert!(board.snapshot().is_empty());
    }

    #[test]
    fn content_comparison_ignores_write_and_transition_times() {
        let board = SessionBoard::default();
        board.observe("a", &established(1, 1));
        let f = facts(&[("a", "192.0.2.1:179")]);
        let early = desired_status(&f, &board.snapshot(), Timestamp::from_second(100).unwrap());
        let mut late = desired_status(&f, &board.snapshot(), Timestamp::from_second(200).unwrap());
        late.last_update_time = Some(Time(Timestamp::from_second(300).unwrap()));
        assert!(same_content(&early, &late));
        // Merging keeps the stored transition time while the condition holds.
        let m = merged(Some(&early), &late);
        assert_eq!(
            m.conditions[0].last_transition_time,
            early.conditions[0].last_transition_time
        );
        let mut more = f.clone();
        more.announced_ips = 3;
        assert!(!same_content(
            &early,
            &desired_status(&more, &board.snapshot(), now_secs())
        ));
    }

    #[test]
    fn owner_is_the_node_without_blocking_its_deletion() {
        let o = node_owner("node-a", "u-1");
        assert_eq!(
            (
                o.api_version.as_str(),
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str()
            ),
            ("v1", "Node", "node-a", "u-1")
        );
        assert_eq!(o.block_owner_deletion, None);
    }
}
