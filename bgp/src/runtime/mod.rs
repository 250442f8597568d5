//! The tokio runtime around the pure codec and FSM: one task per peer that
//! owns the transport connections, runs the FSM's timers and keeps the
//! peer's Adj-RIB-Out in step with the desired routes.
//!
//! The caller states *what* should be announced ([`PeerHandle::set_routes`]
//! with the full desired set, or [`PeerHandle::update_routes`] with the
//! prefixes that changed); the task works out the minimal UPDATEs,
//! packs them, re-sends everything on a new session or a route refresh
//! request, and ends with End-of-RIB markers (RFC 4724 §2).

mod adj_rib_out;
mod peer;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use adj_rib_out::{AdjRibOut, RibDiff, RouteMap};

use crate::codec::LargeCommunity;
use crate::fsm::{Negotiated, SessionConfig, State};

/// Per-route attributes the caller controls. ORIGIN, AS_PATH and NEXT_HOP
/// are derived from the session (DESIGN §5: ORIGIN IGP, empty AS_PATH on
/// iBGP and our ASN on eBGP, NEXT_HOP the session's local address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteAttributes {
    /// RFC 1997 communities (`asn << 16 | value`).
    pub communities: Vec<u32>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF, sent on iBGP only (100 when unset).
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
}

/// One BGP neighbour. `Debug` never shows the MD5 password.
#[derive(Clone)]
pub struct PeerConfig {
    /// The router's address and port (normally 179).
    pub remote: SocketAddr,
    /// Local address to bind before connecting.
    pub local_address: Option<IpAddr>,
    /// Session parameters (ASNs, hold time, families…).
    pub session: SessionConfig,
    /// TCP MD5 password (RFC 2385).
    pub md5_password: Option<String>,
    /// IP TTL / IPv6 hop limit of our packets (eBGP multihop); `None`
    /// keeps the system default.
    pub ttl: Option<u8>,
    /// IPv4 next hop; default: the session's local address when IPv4.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop; default: the session's local address when IPv6.
    /// Without one, IPv6 routes are not announced on an IPv4 session.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("remote", &self.remote)
            .field("local_address", &self.local_address)
            .field("session", &self.session)
            .field(
                "md5_password",
                &self.md5_password.as_ref().map(|_| "<redacted>"),
            )
            .field("ttl", &self.ttl)
            .field("next_hop_v4", &self.next_hop_v4)
            .field("next_hop_v6", &self.next_hop_v6)
            .finish()
    }
}

/// What the peer task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// FSM state.
    pub state: State,
    /// When the current session became Established.
    pub established_at: Option<Instant>,
    /// What the current session negotiated.
    pub negotiated: Option<Negotiated>,
    /// Prefixes currently advertised.
    pub advertised: usize,
    /// UPDATE messages sent in this session.
    pub updates_sent: u64,
    /// Last error or NOTIFICATION, as a stable string.
    pub last_error: Option<String>,
}

impl Default for PeerStatus {
    fn default() -> Self {
        Self {
            state: State::Idle,
            established_at: None,
            negotiated: None,
            advertised: 0,
            updates_sent: 0,
            last_error: None,
        }
    }
}

/// How the peer task is asked to end.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Cease/Administrative Shutdown NOTIFICATION with this reason, then close.
    Cease(String),
    /// Close the transport without a NOTIFICATION (graceful restart).
    Close,
}

/// Route changes handed to a peer task and not yet taken by it.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// A new complete desired set, replacing the task's.
    pub(crate) full: Option<Arc<RouteMap>>,
    /// Per-prefix changes after `full` (or after the task's current set): the new
    /// attributes, or `None` to withdraw. The latest change of a prefix wins.
    pub(crate) changes: HashMap<IpNet, Option<Arc<RouteAttributes>>>,
}

/// What [`PeerHandle`] shares with its task.
pub(crate) type SharedInbox = Arc<Mutex<Inbox>>;

/// Locks an inbox; a poisoned lock (a panicking holder) still holds valid changes.
pub(crate) fn lock(inbox: &SharedInbox) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle to a running peer task.
#[derive(Debug)]
pub struct PeerHandle {
    inbox: SharedInbox,
    /// Pokes the task after the inbox changed; dropping it tells the task its handle is gone.
    wake: watch::Sender<()>,
    status: watch::Receiver<PeerStatus>,
    incoming: mpsc::Sender<TcpStream>,
    stop: Option<oneshot::Sender<Stop>>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Starts a peer task on the current tokio runtime.
    pub fn spawn(config: PeerConfig) -> Self {
        let inbox = SharedInbox::default();
        let (wake_tx, wake_rx) = watch::channel(());
        let (status_tx, status_rx) = watch::channel(PeerStatus::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(4);
        let task = tokio::spawn(peer::run(
            config,
            inbox.clone(),
            wake_rx,
            status_tx,
            incoming_rx,
            stop_rx,
        ));
        Self {
            inbox,
            wake: wake_tx,
            status: status_rx,
            incoming: incoming_tx,
            stop: Some(stop_tx),
            task,
        }
    }

    /// Replaces the desired routes; the task sends only the difference.
    /// Calls in quick succession coalesce.
    pub fn set_routes(&self, routes: RouteMap) {
        self.set_routes_shared(Arc::new(routes));
    }

    /// [`set_routes`](Self::set_routes) for a map the caller keeps too (to compare the
    /// next desired set against), so a large table is held once, not twice.
    pub fn set_routes_shared(&self, routes: Arc<RouteMap>) {
        {
            let mut inbox = lock(&self.inbox);
            inbox.full = Some(routes);
            inbox.changes.clear();
        }
        self.wake.send_replace(());
    }

    /// Changes some prefixes of the desired routes: `Some` attributes announce (or
    /// re-announce) a prefix, `None` withdraws it; prefixes not named stay as they are.
    /// The task then looks only at the named prefixes, so a caller that knows what changed
    /// pays for the change, not for the table. Calls in quick succession coalesce (the
    /// latest change of a prefix wins), and they apply after any earlier
    /// [`set_routes`](Self::set_routes).
    pub fn update_routes(
        &self,
        changes: impl IntoIterator<Item = (IpNet, Option<Arc<RouteAttributes>>)>,
    ) {
        lock(&self.inbox).changes.extend(changes);
        self.wake.send_replace(());
    }

    /// Hands over a connection the peer opened to us. The caller's listener
    /// (port 179, with [`crate::sys::set_tcp_md5`] set per peer when MD5 is
    /// used) dispatches accepted streams by source address. Collisions with
    /// our own outgoing connection are resolved by the FSM (RFC 4271 §6.8).
    /// If the task is busy with several pending connections, the stream is
    /// dropped (closed) and the peer will retry.
    pub fn accept(&self, stream: TcpStream) {
        let _ = self.incoming.try_send(stream);
    }

    /// A receiver of status updates.
    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// Sends Cease/Administrative Shutdown with `reason` and waits for the
    /// task to end.
    pub async fn shutdown(self, reason: &str) {
        self.stop_with(Stop::Cease(reason.to_string())).await;
    }

    /// Closes the TCP connection without a NOTIFICATION and waits for the task to end.
    /// With graceful restart negotiated (RFC 4724 §4.2) the peer then keeps our routes,
    /// marked stale, for the restart time we advertised, so traffic keeps flowing while
    /// this speaker restarts; without it the peer drops them as on any lost session.
    pub async fn close(self) {
        self.stop_with(Stop::Close).await;
    }

    async fn stop_with(mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}
