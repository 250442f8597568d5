//! The BGP sessions of this node: one [`PeerHandle`] per `BGPPeer` that selects it, started,
//! restarted and stopped as the peers change: a new session is given its full route set,
//! a running one only the routes that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::codec::Family;
use ferrolb_bgp::fsm::{Backoff, GracefulRestartConfig, PeerAsn, SessionConfig, State};
use ferrolb_bgp::runtime::{PeerConfig, PeerHandle, PeerStatus, RouteMap};
use ferrolb_shared::announce::PeerName;
use ferrolb_shared::validate::ParsedPeer;
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, PendingChange, follow_peer};
use crate::table::{RouteChanges, RouteTable};

/// Seconds a graceful-restart-capable router keeps our routes after losing the session.
pub const GRACEFUL_RESTART_TIME: u16 = 120;
/// TTL for eBGP multi-hop sessions.
pub const MULTI_HOP_TTL: u8 = 255;
/// How long shutting one session down may take before the task is abandoned.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a session is started from. Two equal specs give the same session, so a
/// change of any field restarts it and nothing else does. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The router's address and port.
    pub remote: SocketAddr,
    /// Local address to bind.
    pub local_address: Option<IpAddr>,
    /// Our ASN.
    pub local_asn: u32,
    /// The router's ASN.
    pub peer_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time, seconds.
    pub hold_time: u16,
    /// Keepalive interval, seconds.
    pub keepalive: u16,
    /// Between connection attempts, and the TCP connect timeout.
    pub connect_time: Duration,
    /// eBGP multi-hop.
    pub multi_hop: bool,
    /// Advertise graceful restart.
    pub graceful_restart: bool,
    /// TCP MD5 password.
    pub password: Option<String>,
}

impl fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSpec")
            .field("remote", &self.remote)
            .field("local_address", &self.local_address)
            .field("local_asn", &self.local_asn)
            .field("peer_asn", &self.peer_asn)
            .field("router_id", &self.router_id)
            .field("hold_time", &self.hold_time)
            .field("keepalive", &self.keepalive)
            .field("connect_time", &self.connect_time)
            .field("multi_hop", &self.multi_hop)
            .field("graceful_restart", &self.graceful_restart)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SessionSpec {
    /// The session for `peer`; `default_router_id` applies when the peer sets no `routerID`.
    pub fn new(peer: &ParsedPeer, default_router_id: Ipv4Addr, password: Option<String>) -> Self {
        SessionSpec {
            remote: SocketAddr::new(peer.peer_address, peer.peer_port),
            local_address: peer.source_address,
            local_asn: peer.my_asn,
            peer_asn: peer.peer_asn,
            router_id: peer.router_id.unwrap_or(default_router_id),
            hold_time: peer.timers.hold_time,
            keepalive: peer.timers.keepalive_time,
            connect_time: peer.timers.connect_time,
            multi_hop: peer.ebgp_multi_hop,
            graceful_restart: peer.graceful_restart,
            password,
        }
    }

    /// The runtime's configuration for this session.
    pub fn peer_config(&self) -> PeerConfig {
        let mut session = SessionConfig::new(
            self.local_asn,
            self.router_id,
            PeerAsn::Exact(self.peer_asn),
        );
        session.hold_time = self.hold_time;
        session.keepalive = Some(self.keepalive);
        // One family per session: the decision never sends a prefix of the other family
        // (its next hop would have to be an address the session does not have).
        session.families = vec![match self.remote.ip() {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        }];
        session.connect_timeout = self.connect_time;
        session.backoff = Backoff {
            initial: self.connect_time,
            max: self.connect_time.max(Duration::from_secs(60)),
        };
        session.graceful_restart = self.graceful_restart.then_some(GracefulRestartConfig {
            restart_time: GRACEFUL_RESTART_TIME,
            restarting: false,
            // Traffic keeps flowing through kube-proxy while the speaker restarts.
            forwarding_preserved: true,
        });
        PeerConfig {
            remote: self.remote,
            local_address: self.local_address,
            session,
            md5_password: self.password.clone(),
            ttl: self.multi_hop.then_some(MULTI_HOP_TTL),
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }
}

/// What the caller wants for one peer that selects this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Run exactly this session.
    Run(SessionSpec),
    /// The session cannot be (re)configured now (e.g. its password Secret is not readable):
    /// keep a running one as it is, start none.
    Keep,
}

struct Session {
    spec: SessionSpec,
    handle: PeerHandle,
    pending: PendingChange,
    follower: JoinHandle<()>,
}

/// The running sessions by peer name.
pub struct Sessions {
    sessions: BTreeMap<PeerName, Session>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("peers", &self.sessions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Sessions {
    /// No sessions yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Sessions {
            sessions: BTreeMap::new(),
            metrics,
        }
    }

    /// Names of the running sessions.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.sessions.keys().map(|p| &**p)
    }

    /// Brings the sessions in line with `wanted` (stopping those not wanted, restarting
    /// those whose spec changed). A session started now gets its complete route set from
    /// `table`; every other one gets only its entries of `changes`. `decided_at` starts
    /// the decision-to-UPDATE clock of the sessions that have something to send.
    pub async fn apply(
        &mut self,
        wanted: &BTreeMap<PeerName, Wanted>,
        table: &RouteTable,
        changes: RouteChanges,
        decided_at: Instant,
    ) {
        let stale: Vec<PeerName> = self
            .sessions
            .iter()
            .filter(|(name, s)| match wanted.get(*name) {
                None => true,
                Some(Wanted::Keep) => false,
                Some(Wanted::Run(spec)) => *spec != s.spec,
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(s) = self.sessions.remove(&name) {
                tracing::info!(peer = %name, "stopping BGP session (peer removed or changed)");
                self.stop(&name, s, "configuration changed").await;
            }
        }
        let mut started = BTreeSet::new();
        for (name, w) in wanted {
            let Wanted::Run(spec) = w else { continue };
            if self.sessions.contains_key(name) {
                continue;
            }
            tracing::info!(peer = %name, remote = %spec.remote, router_id = %spec.router_id, "starting BGP session");
            let handle = PeerHandle::spawn(spec.peer_config());
            // Sent once the session is up; this session's entries of `changes` are in it.
            handle.set_routes(table.routes_for(name));
            started.insert(name.clone());
            let pending = PendingChange::default();
            let follower = tokio::spawn(follow_peer(
                name.to_string(),
                handle.status(),
                pending.clone(),
                self.metrics.clone(),
            ));
            self.sessions.insert(
                name.clone(),
                Session {
                    spec: spec.clone(),
                    handle,
                    pending,
                    follower,
                },
            );
        }
        for (name, list) in changes {
            if started.contains(&name) {
                continue;
            }
            let Some(s) = self.sessions.get(&name) else {
                continue;
            };
            tracing::debug!(peer = %name, changed = list.len(), "routes changed");
            // Only a live session sends the change now; otherwise it goes out with the next
            // session's full table, and that wait is the session's, not the decision's.
            if s.handle.status().borrow().state == State::Established {
                s.pending.mark(decided_at);
            }
            s.handle.update_routes(list);
        }
    }

    /// Ends every session for a speaker that is stopping, all in parallel (DESIGN §4, issue
    /// 5: "routes withdrawn, or with graceful restart enabled, a graceful close"):
    /// - graceful restart negotiated on an Established session (enabled on the `BGPPeer`
    ///   and supported by the router): the TCP connection is closed without a
    ///   NOTIFICATION and nothing is withdrawn, so the router keeps forwarding to this node
    ///   for the restart time while the speaker restarts (RFC 4724 §4.2);
    /// - otherwise every route is withdrawn with UPDATEs (waiting for the runtime to send
    ///   them, at most [`SHUTDOWN_TIMEOUT`]) and the session is closed with a Cease
    ///   NOTIFICATION carrying `reason`.
    pub async fn shutdown_all(&mut self, reason: &str) {
        let sessions = std::mem::take(&mut self.sessions);
        let metrics = self.metrics.clone();
        let stops = sessions.into_iter().map(|(name, s)| {
            let metrics = metrics.clone();
            async move {
                let how = shutdown_kind(&s.spec, &s.handle.status().borrow());
                match how {
                    ShutdownKind::GracefulClose => {
                        tracing::info!(peer = %name, "graceful restart: closing the BGP session without NOTIFICATION; the router keeps our routes for the restart time");
                    }
                    ShutdownKind::WithdrawThenCease => {
                        withdraw_all(&name, &s.handle).await;
                    }
                }
                stop_session(&name, s, how, reason, &metrics).await;
            }
        });
        futures::future::join_all(stops).await;
    }

    async fn stop(&self, name: &str, s: Session, reason: &str) {
        stop_session(
            name,
            s,
            ShutdownKind::WithdrawThenCease,
            reason,
            &self.metrics,
        )
        .await;
    }
}

/// How one session ends when the speaker stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownKind {
    /// Withdraw every route, then a Cease NOTIFICATION.
    WithdrawThenCease,
    /// Close the transport only: the router keeps our routes as stale (RFC 4724).
    GracefulClose,
}

/// A graceful close only when it will be honoured: graceful restart configured on our side
/// and advertised by the router in the session that is up now. Anything else (the router
/// does not do graceful restart, the session is not up) withdraws and sends a Cease.
pub fn shutdown_kind(spec: &SessionSpec, status: &PeerStatus) -> ShutdownKind {
    let negotiated = status.state == State::Established
        && status
            .negotiated
            .as_ref()
            .is_some_and(|n| n.peer_graceful_restart.is_some());
    if spec.graceful_restart && negotiated {
        ShutdownKind::GracefulClose
    } else {
        ShutdownKind::WithdrawThenCease
    }
}

/// Withdraws every route of an Established session and waits (at most
/// [`SHUTDOWN_TIMEOUT`]) until the runtime has sent the withdrawals.
async fn withdraw_all(name: &str, handle: &PeerHandle) {
    let mut status = handle.status();
    if status.borrow().state != State::Established {
        return;
    }
    handle.set_routes(RouteMap::new());
    let done = status.wait_for(|s| s.state != State::Established || s.advertised == 0);
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, done).await {
        Ok(_) => tracing::info!(peer = %name, "routes withdrawn"),
        Err(_) => tracing::warn!(peer = %name, "routes not withdrawn in time; closing anyway"),
    }
}

/// Ends a session's task: a Cease NOTIFICATION for [`ShutdownKind::WithdrawThenCease`] (any
/// withdrawal was sent before), a close without NOTIFICATION for
/// [`ShutdownKind::GracefulClose`]; then forgets its metrics.
async fn stop_session(name: &str, s: Session, how: ShutdownKind, reason: &str, metrics: &Metrics) {
    let stopped = match how {
        ShutdownKind::WithdrawThenCease => {
            tokio::time::timeout(SHUTDOWN_TIMEOUT, s.handle.shutdown(reason)).await
        }
        ShutdownKind::GracefulClose => {
            tokio::time::timeout(SHUTDOWN_TIMEOUT, s.handle.close()).await
        }
    };
    if stopped.is_err() {
        tracing::warn!(peer = %name, "BGP session did not stop in time; abandoned");
    }
    // The follower ends once the peer task has dropped its status sender; waiting for it
    // means it cannot re-create the series removed below.
    let mut follower = s.follower;
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut follower)
        .await
        .is_err()
    {
        follower.abort();
    }
    metrics.forget_peer(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_shared::crd::BGPPeerSpec;

    fn peer(v: serde_json::Value) -> ParsedPeer {
        serde_json::from_value::<BGPPeerSpec>(v)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn spec_follows_the_peer() {
        let p = peer(serde_json::json!({
            "myASN": 64513, "peerASN": 64512, "peerAddress": "172.30.0.1", "peerPort": 1179,
            "holdTime": "9s", "connectTime": "2s", "ebgpMultiHop": true,
            "enableGracefulRestart": true, "sourceAddress": "172.30.0.2",
        }));
        let spec = SessionSpec::new(&p, Ipv4Addr::new(10, 0, 0, 1), Some("s3cret".into()));
        assert_eq!(spec.remote, "172.30.0.1:1179".parse().unwrap());
        assert_eq!(spec.router_id, Ipv4Addr::new(10, 0, 0, 1));
        assert!(!format!("{spec:?}").contains("s3cret"));
        let cfg = spec.peer_config();
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert_eq!(cfg.md5_password.as_deref(), Some("s3cret"));
        assert_eq!(cfg.session.hold_time, 9);
        assert_eq!(cfg.session.keepalive, Some(3));
        assert_eq!(cfg.session.families, vec![Family::Ipv4Unicast]);
        assert_eq!(cfg.session.connect_timeout, Duration::from_secs(2));
        assert_eq!(cfg.session.backoff.initial, Duration::from_secs(2));
        assert_eq!(cfg.ttl, Some(MULTI_HOP_TTL));
        assert!(cfg.session.graceful_restart.is_some());
        assert_eq!(cfg.local_address, Some("172.30.0.2".parse().unwrap()));

        let with_id = peer(serde_json::json!({
            "myASN": 64512, "peerASN": 64512, "peerAddress": "fd30::1", "routerID": "1.2.3.4",
        }));
        let spec = SessionSpec::new(&with_id, Ipv4Addr::new(10, 0, 0, 1), None);
        assert_eq!(spec.router_id, Ipv4Addr::new(1, 2, 3, 4));
        let cfg = spec.peer_config();
        assert_eq!(cfg.session.families, vec![Family::Ipv6Unicast]);
        assert_eq!(cfg.ttl, None);
        assert_eq!(cfg.session.graceful_restart, None);
    }

    #[test]
    fn graceful_close_only_when_both_sides_do_graceful_restart() {
        let spec = |gr: bool| {
            SessionSpec::new(
                &peer(serde_json::json!({
                    "myASN": 64513, "peerASN": 64512, "peerAddress": "172.30.0.1",
                    "enableGracefulRestart": gr,
                })),
                Ipv4Addr::new(10, 0, 0, 1),
                None,
            )
        };
        let status = |state: State, router_gr: bool| {
            let negotiated = ferrolb_bgp::fsm::Negotiated {
                peer_asn: 64512,
                peer_router_id: Ipv4Addr::new(172, 30, 0, 1),
                ibgp: false,
                hold_time: 90,
                keepalive: 30,
                four_octet_as: true,
                families: vec![Family::Ipv4Unicast],
                route_refresh: true,
                peer_graceful_restart: router_gr.then(|| ferrolb_bgp::codec::GracefulRestart {
                    restart_flags: 0,
                    restart_time: 120,
                    families: vec![],
                }),
            };
            PeerStatus {
                state,
                negotiated: (state == State::Established).then_some(negotiated),
                ..PeerStatus::default()
            }
        };
        use ShutdownKind::*;
        assert_eq!(
            shutdown_kind(&spec(true), &status(State::Established, true)),
            GracefulClose
        );
        assert_eq!(
            shutdown_kind(&spec(false), &status(State::Established, true)),
            WithdrawThenCease
        );
        assert_eq!(
            shutdown_kind(&spec(true), &status(State::Established, false)),
            WithdrawThenCease
        );
        assert_eq!(
            shutdown_kind(&spec(true), &status(State::Active, true)),
            WithdrawThenCease
        );
    }
}
