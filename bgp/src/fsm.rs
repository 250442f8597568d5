//! The BGP session state machine (RFC 4271 §8), as a pure function from
//! [`Input`] to a list of [`Output`]s. No I/O and no clock: the caller passes
//! `now`, performs the outputs (connect, send, close, arm timers) and feeds
//! back what happened.
//!
//! One [`SessionFsm`] handles one configured peer. It may hold up to two
//! transport connections at once (one we opened, one the peer opened) and
//! resolves the collision as RFC 4271 §6.8 says, so a session comes up
//! whether the router is configured active or passive.
//!
//! Deviations kept on purpose:
//! - After any failure the session goes to Active (accepting connections)
//!   and retries outgoing connections with capped exponential backoff,
//!   instead of RFC 4271's Idle plus IdleHoldTimer; the effect is the
//!   "automatic start" of §8.1.1 with damping.
//! - The optional DelayOpen timer (§8.1.1) is not implemented.
//! - Hold timers are lazy: instead of re-arming on every message, the FSM
//!   remembers when the peer last spoke and, when the timer fires early,
//!   re-arms it for the remaining time.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::codec::notification::{cease, code, fsm as fsm_sub, open as open_sub};
use crate::codec::{
    Capability, CodecOptions, DecodeError, Family, GracefulRestart, GracefulRestartFamily, Message,
    Notification, Open, Received, UpdateOutcome,
};

/// Which side opened a transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// Identifies one transport connection of a session. Outgoing ids are
/// chosen by the FSM ([`Output::Connect`]); incoming ids by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Who opened it.
    pub direction: Direction,
    /// Distinguishes connections of the same direction.
    pub seq: u64,
}

impl ConnId {
    /// An id for a connection the peer opened.
    pub fn incoming(seq: u64) -> Self {
        Self {
            direction: Direction::Incoming,
            seq,
        }
    }
}

/// Timers the caller runs for the FSM (RFC 4271 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Connect timeout while connecting; backoff delay while Active.
    ConnectRetry,
    /// Hold timer of one connection.
    Hold(ConnId),
    /// Keepalive timer of one connection.
    Keepalive(ConnId),
}

/// Session states (RFC 4271 §8.2.2). With two connections, the state is
/// that of the most advanced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Not started; connections are refused.
    Idle,
    /// An outgoing connection is being attempted.
    Connect,
    /// Waiting: for the peer to connect, or for the backoff to retry.
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Routes can flow.
    Established,
}

/// What we accept as the peer's ASN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAsn {
    /// Exactly this ASN.
    Exact(u32),
    /// Our own ASN (iBGP).
    Internal,
    /// Any ASN but ours (eBGP).
    External,
}

/// Graceful restart we advertise (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartConfig {
    /// Seconds the peer should keep our routes after losing the session (≤ 4095).
    pub restart_time: u16,
    /// Set the R (Restart State) bit: this process has just restarted
    /// within the restart time of a previous session. The FSM clears it
    /// once a session is Established, so only the OPENs up to the first
    /// Established session carry it.
    pub restarting: bool,
    /// Set the F bit for every family: forwarding survives our restart.
    pub forwarding_preserved: bool,
}

/// Capped exponential backoff for reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1-based), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1 << shift).min(self.max)
    }
}

/// Per-peer configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our ASN.
    pub local_asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// The peer's ASN check.
    pub peer_asn: PeerAsn,
    /// Hold time we propose, seconds (0, or at least 3).
    pub hold_time: u16,
    /// Keepalive interval we would like; capped at a third of the
    /// negotiated hold time. `None`: a third of it.
    pub keepalive: Option<u16>,
    /// Families we advertise.
    pub families: Vec<Family>,
    /// Advertise route refresh.
    pub route_refresh: bool,
    /// Advertise graceful restart.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Never connect out; wait for the peer.
    pub passive: bool,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// How long one outgoing connection attempt may take.
    pub connect_timeout: Duration,
    /// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
    pub open_hold_time: Duration,
}

impl SessionConfig {
    /// Defaults: hold time 90 s, both families, route refresh, active,
    /// backoff 1 s doubling to 60 s, 5 s connect timeout.
    pub fn new(local_asn: u32, router_id: Ipv4Addr, peer_asn: PeerAsn) -> Self {
        Self {
            local_asn,
            router_id,
            peer_asn,
            hold_time: 90,
            keepalive: None,
            families: Family::ALL.to_vec(),
            route_refresh: true,
            graceful_restart: None,
            passive: false,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            connect_timeout: Duration::from_secs(5),
            open_hold_time: Duration::from_secs(240),
        }
    }

    /// The OPEN we send.
    pub fn open_message(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::multiprotocol(*f))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if let Some(gr) = self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_flags: if gr.restarting {
                    GracefulRestart::RESTART_STATE
                } else {
                    0
                },
                restart_time: gr.restart_time.min(0x0fff),
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily::new(*f, gr.forwarding_preserved))
                    .collect(),
            }));
        }
        Open::new(self.local_asn, self.hold_time, self.router_id, caps)
    }
}

/// What both sides agreed on (RFC 4271 §4.2, RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's ASN.
    pub peer_asn: u32,
    /// The peer's BGP Identifier.
    pub peer_router_id: Ipv4Addr,
    /// Same ASN on both sides.
    pub ibgp: bool,
    /// min(ours, theirs); 0 means no keepalives and no hold timer.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs (0 when the hold time is 0).
    pub keepalive: u16,
    /// Both sides advertised 4-octet ASNs (RFC 6793).
    pub four_octet_as: bool,
    /// Families both sides advertised (RFC 4760).
    pub families: Vec<Family>,
    /// Both sides advertised route refresh (RFC 2918).
    pub route_refresh: bool,
    /// The peer's graceful restart capability (RFC 4724), if any.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    /// Codec options for this session's UPDATEs.
    pub fn codec(&self) -> CodecOptions {
        CodecOptions {
            four_octet_as: self.four_octet_as,
        }
    }
}

/// Why an Established session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (error, hold timer, stop…).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The transport closed without a NOTIFICATION.
    TransportClosed,
}

/// Events fed to the FSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start the session (RFC 4271 event 1).
    ManualStart,
    /// Stop it, sending Cease/Administrative Shutdown with this text
    /// (RFC 8203; empty for none).
    ManualStop(String),
    /// A timer the FSM armed has expired.
    TimerExpired(Timer),
    /// The outgoing connection from [`Output::Connect`] is up.
    TcpConnected(ConnId),
    /// The outgoing connection attempt failed.
    TcpConnectFailed(ConnId),
    /// The peer opened a connection to us.
    TcpAccepted(ConnId),
    /// A connection closed (or broke).
    TcpClosed(ConnId),
    /// A message arrived on a connection.
    Received(ConnId, Received),
    /// A message on a connection could not be decoded.
    DecodeError(ConnId, DecodeError),
}

/// Actions for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open an outgoing connection with this id.
    Connect(ConnId),
    /// Send a message on a connection.
    Send(ConnId, Message),
    /// Close a connection (after sending what was queued before).
    Close(ConnId),
    /// Arm (or re-arm) a timer to fire at this instant.
    StartTimer(Timer, Instant),
    /// Disarm a timer.
    StopTimer(Timer),
    /// The session state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is Established on this connection.
    Established {
        /// The surviving connection.
        conn: ConnId,
        /// What was agreed.
        negotiated: Negotiated,
    },
    /// An Established session ended.
    SessionDown(DownReason),
    /// An UPDATE arrived on the Established session.
    Update(UpdateOutcome),
    /// The peer asked for our routes of this family again (RFC 2918).
    RouteRefreshRequested(Family),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    state: ConnState,
    negotiated: Option<Negotiated>,
    /// Hold time in force on this connection.
    hold: Duration,
    last_rx: Instant,
}

/// The state machine of one BGP session.
#[derive(Debug, Clone)]
pub struct SessionFsm {
    config: SessionConfig,
    started: bool,
    pending_connect: Option<ConnId>,
    conns: Vec<Conn>,
    next_seq: u64,
    failures: u32,
    rng: u64,
    armed: Vec<(Timer, Instant)>,
}

impl SessionFsm {
    /// A stopped session. `jitter_seed` drives the jitter applied to retry and
    /// keepalive intervals (RFC 4271 §10: 75–100 % of the base value), so
    /// tests are deterministic.
    pub fn new(config: SessionConfig, jitter_seed: u64) -> Self {
        Self {
            config,
            started: false,
            pending_connect: None,
            conns: Vec::new(),
            next_seq: 0,
            failures: 0,
            // xorshift must not start at zero.
            rng: jitter_seed | 1,
            armed: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.conns.iter().map(|c| c.state).max() {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            None if !self.started => State::Idle,
            None if self.pending_connect.is_some() => State::Connect,
            None => State::Active,
        }
    }

    /// The Established connection and what it negotiated.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| Some((c.id, c.negotiated.as_ref()?)))
    }

    /// Consecutive failures since the last Established session.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let before = self.state();
        let mut out = Vec::new();
        match input {
            Input::ManualStart => self.start(now, &mut out),
            Input::ManualStop(text) => self.stop(&text, &mut out),
            Input::TimerExpired(timer) => self.timer_expired(timer, now, &mut out),
            Input::TcpConnected(id) => self.connected(id, now, &mut out),
            Input::TcpConnectFailed(id) => {
                if self.pending_connect == Some(id) {
                    self.pending_connect = None;
                    self.stop_timer(Timer::ConnectRetry, &mut out);
                    self.after_loss(now, &mut out);
                }
            }
            Input::TcpAccepted(id) => self.accepted(id, now, &mut out),
            Input::TcpClosed(id) => {
                if self.pending_connect == Some(id) {
                    self.pending_connect = None;
                    self.stop_timer(Timer::ConnectRetry, &mut out);
                    self.after_loss(now, &mut out);
                } else if self.conn(id).is_some() {
                    self.drop_conn(id, None, DownReason::TransportClosed, now, &mut out);
                }
            }
            Input::Received(id, msg) => self.received(id, msg, now, &mut out),
            Input::DecodeError(id, err) => {
                if self.conn(id).is_some() {
                    let n = err.notification;
                    self.drop_conn(
                        id,
                        Some(n.clone()),
                        DownReason::NotificationSent(n),
                        now,
                        &mut out,
                    );
                }
            }
        }
        let after = self.state();
        if before != after {
            out.push(Output::StateChanged {
                from: before,
                to: after,
            });
        }
        out
    }

    // --- inputs -------------------------------------------------------------

    /// RFC 4271 §8.2.2 Idle, event 1 (ManualStart) or 4 (passive).
    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.started {
            return;
        }
        self.started = true;
        self.failures = 0;
        if !self.config.passive {
            self.connect(now, out);
        }
    }

    /// RFC 4271 §8.2.2 event 2 in every state: Cease, close, back to Idle.
    fn stop(&mut self, text: &str, out: &mut Vec<Output>) {
        if !self.started {
            return;
        }
        self.started = false;
        self.failures = 0;
        if let Some(id) = self.pending_connect.take() {
            out.push(Output::Close(id));
        }
        let n = Notification::administrative_shutdown(text);
        for c in std::mem::take(&mut self.conns) {
            out.push(Output::Send(c.id, Message::Notification(n.clone())));
            out.push(Output::Close(c.id));
            if c.state == ConnState::Established {
                out.push(Output::SessionDown(DownReason::NotificationSent(n.clone())));
            }
        }
        for (t, _) in std::mem::take(&mut self.armed) {
            out.push(Output::StopTimer(t));
        }
    }

    fn timer_expired(&mut self, timer: Timer, now: Instant, out: &mut Vec<Output>) {
        // Ignore expiries of timers we stopped or re-armed later (races in
        // the caller's timer wheel).
        let Some(pos) = self
            .armed
            .iter()
            .position(|(t, at)| *t == timer && *at <= now)
        else {
            return;
        };
        self.armed.swap_remove(pos);
        match timer {
            Timer::ConnectRetry => {
                if let Some(id) = self.pending_connect.take() {
                    // Connect timeout: abandon the attempt, count a failure.
                    out.push(Output::Close(id));
                    self.after_loss(now, out);
                } else if self.started && self.conns.is_empty() && !self.config.passive {
                    self.connect(now, out);
                }
            }
            Timer::Hold(id) => {
                let Some(c) = self.conn(id) else { return };
                let deadline = c.last_rx + c.hold;
                if c.state != ConnState::OpenSent && now < deadline {
                    self.arm(Timer::Hold(id), deadline, out);
                    return;
                }
                // RFC 4271 §6.5.
                let n = Notification::hold_timer_expired();
                self.drop_conn(
                    id,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    now,
                    out,
                );
            }
            Timer::Keepalive(id) => {
                let Some(c) = self.conn(id) else { return };
                if c.state == ConnState::OpenSent {
                    return;
                }
                let interval = c.negotiated.as_ref().map_or(0, |n| n.keepalive);
                if interval == 0 {
                    return;
                }
                out.push(Output::Send(id, Message::Keepalive));
                let at = now + self.jittered(Duration::from_secs(u64::from(interval)));
                self.arm(Timer::Keepalive(id), at, out);
            }
        }
    }

    fn connected(&mut self, id: ConnId, now: Instant, out: &mut Vec<Output>) {
        if self.pending_connect != Some(id) {
            // Not an attempt we are waiting for (stopped, timed out, stale).
            out.push(Output::Close(id));
            return;
        }
        self.pending_connect = None;
        self.stop_timer(Timer::ConnectRetry, out);
        self.open_connection(id, now, out);
    }

    fn accepted(&mut self, id: ConnId, now: Instant, out: &mut Vec<Output>) {
        // Idle refuses connections (RFC 4271 §8.2.2); two at a time is enough
        // to resolve any collision.
        if !self.started || self.conns.len() >= 2 || self.conn(id).is_some() {
            out.push(Output::Close(id));
            return;
        }
        if self.pending_connect.is_none() {
            // Active: stop waiting to retry (RFC 4271 §8.2.2 Active, event 17).
            self.stop_timer(Timer::ConnectRetry, out);
        }
        self.open_connection(id, now, out);
    }

    fn received(&mut self, id: ConnId, msg: Received, now: Instant, out: &mut Vec<Output>) {
        let Some(c) = self.conn_mut(id) else { return };
        c.last_rx = now;
        let state = c.state;
        match (state, msg) {
            (_, Received::Notification(n)) => {
                self.drop_conn(id, None, DownReason::NotificationReceived(n), now, out);
            }
            (ConnState::OpenSent, Received::Open(open)) => self.open_received(id, &open, now, out),
            (ConnState::OpenConfirm, Received::Keepalive) => self.establish(id, out),
            (ConnState::Established, Received::Keepalive) => {}
            (ConnState::Established, Received::Update(u)) => out.push(Output::Update(u)),
            (ConnState::Established, Received::RouteRefresh(rr)) => {
                // RFC 2918 §4 / RFC 7313 §5: ignore families not negotiated.
                let wanted = self
                    .conn(id)
                    .and_then(|c| c.negotiated.as_ref())
                    .and_then(|n| {
                        let f = rr.family()?;
                        (n.route_refresh && n.families.contains(&f)).then_some(f)
                    });
                if let Some(f) = wanted {
                    out.push(Output::RouteRefreshRequested(f));
                }
            }
            (state, _) => {
                // RFC 6608 §3: unexpected message for the state.
                let sub = match state {
                    ConnState::OpenSent => fsm_sub::UNEXPECTED_IN_OPEN_SENT,
                    ConnState::OpenConfirm => fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM,
                    ConnState::Established => fsm_sub::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = Notification::fsm_error(sub);
                self.drop_conn(
                    id,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    now,
                    out,
                );
            }
        }
    }

    /// OpenSent + OPEN (RFC 4271 §8.2.2 event 19, §6.2 checks, §6.8 collision).
    fn open_received(&mut self, id: ConnId, open: &Open, now: Instant, out: &mut Vec<Output>) {
        let negotiated = match self.negotiate(open) {
            Ok(n) => n,
            Err(n) => {
                self.drop_conn(
                    id,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    now,
                    out,
                );
                return;
            }
        };
        let hold = negotiated.hold_time;
        let keepalive = negotiated.keepalive;
        if let Some(c) = self.conn_mut(id) {
            c.state = ConnState::OpenConfirm;
            c.negotiated = Some(negotiated);
            c.hold = Duration::from_secs(u64::from(hold));
            c.last_rx = now;
        }
        out.push(Output::Send(id, Message::Keepalive));
        if hold > 0 {
            self.arm(
                Timer::Hold(id),
                now + Duration::from_secs(u64::from(hold)),
                out,
            );
            let ka = self.jittered(Duration::from_secs(u64::from(keepalive)));
            self.arm(Timer::Keepalive(id), now + ka, out);
        } else {
            self.stop_timer(Timer::Hold(id), out);
        }
        self.resolve_collision(id, open.bgp_id, now, out);
    }

    /// RFC 4271 §6.8: with two connections that both got an OPEN, keep the
    /// one opened by the speaker with the higher BGP Identifier; a
    /// connection colliding with an Established one is closed.
    fn resolve_collision(
        &mut self,
        id: ConnId,
        peer_id: Ipv4Addr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(other) = self
            .conns
            .iter()
            .find(|c| c.id != id && c.state >= ConnState::OpenConfirm)
            .map(|c| (c.id, c.state))
        else {
            return;
        };
        let loser = if other.1 == ConnState::Established {
            id
        } else {
            let local_wins = u32::from(self.config.router_id) > u32::from(peer_id);
            // The winner keeps the connection *it* opened.
            let keep = if local_wins {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            if id.direction == other.0.direction {
                id
            } else if id.direction == keep {
                other.0
            } else {
                id
            }
        };
        let n = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION);
        self.drop_conn(
            loser,
            Some(n.clone()),
            DownReason::NotificationSent(n),
            now,
            out,
        );
    }

    fn establish(&mut self, id: ConnId, out: &mut Vec<Output>) {
        let Some(c) = self.conn_mut(id) else { return };
        c.state = ConnState::Established;
        let negotiated = c.negotiated.clone();
        self.failures = 0;
        // RFC 4724 §3: R says "I have just restarted". Once a session is up
        // again the restart is over; a later reconnect of this same process
        // is a plain session loss, and an R there would tell the peer not to
        // wait for our End-of-RIB for no reason.
        if let Some(gr) = self.config.graceful_restart.as_mut() {
            gr.restarting = false;
        }
        if let Some(pending) = self.pending_connect.take() {
            out.push(Output::Close(pending));
            self.stop_timer(Timer::ConnectRetry, out);
        }
        if let Some(negotiated) = negotiated {
            out.push(Output::Established {
                conn: id,
                negotiated,
            });
        }
    }

    // --- helpers -------------------------------------------------------------

    /// Checks the peer's OPEN and computes what is agreed; `Err` is the
    /// NOTIFICATION to send.
    fn negotiate(&self, open: &Open) -> Result<Negotiated, Notification> {
        let cfg = &self.config;
        let peer_asn = open.asn();
        let asn_ok = match cfg.peer_asn {
            PeerAsn::Exact(a) => a == peer_asn,
            PeerAsn::Internal => peer_asn == cfg.local_asn,
            PeerAsn::External => peer_asn != cfg.local_asn,
        };
        if !asn_ok {
            return Err(Notification::new(
                code::OPEN,
                open_sub::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            ));
        }
        let ibgp = peer_asn == cfg.local_asn;
        open.validate(cfg.router_id, ibgp)
            .map_err(|e: DecodeError| e.notification)?;
        let theirs = open.families();
        let families: Vec<Family> = cfg
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(f))
            .collect();
        if families.is_empty() {
            // RFC 5492 §5: list the capabilities the peer lacks.
            let mut data = Vec::new();
            for f in &cfg.families {
                // Encoding a 4-octet capability cannot fail.
                let _ = Capability::multiprotocol(*f).encode(&mut data);
            }
            return Err(Notification::new(
                code::OPEN,
                open_sub::UNSUPPORTED_CAPABILITY,
                data,
            ));
        }
        let hold_time = cfg.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            let third = (hold_time / 3).max(1);
            cfg.keepalive.map_or(third, |k| k.clamp(1, third))
        };
        Ok(Negotiated {
            peer_asn,
            peer_router_id: open.bgp_id,
            ibgp,
            hold_time,
            keepalive,
            four_octet_as: open.four_octet_as().is_some(),
            families,
            route_refresh: cfg.route_refresh && open.route_refresh(),
            peer_graceful_restart: open.graceful_restart().cloned(),
        })
    }

    fn connect(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.next_seq += 1;
        let id = ConnId {
            direction: Direction::Outgoing,
            seq: self.next_seq,
        };
        self.pending_connect = Some(id);
        out.push(Output::Connect(id));
        self.arm(Timer::ConnectRetry, now + self.config.connect_timeout, out);
    }

    /// A transport connection is up: send OPEN and wait for the peer's
    /// (RFC 4271 §8.2.2 Connect/Active, events 16-17).
    fn open_connection(&mut self, id: ConnId, now: Instant, out: &mut Vec<Output>) {
        self.conns.push(Conn {
            id,
            state: ConnState::OpenSent,
            negotiated: None,
            hold: self.config.open_hold_time,
            last_rx: now,
        });
        out.push(Output::Send(id, Message::Open(self.config.open_message())));
        self.arm(Timer::Hold(id), now + self.config.open_hold_time, out);
    }

    /// Closes a connection, optionally sending a NOTIFICATION first.
    fn drop_conn(
        &mut self,
        id: ConnId,
        notification: Option<Notification>,
        reason: DownReason,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.conns.swap_remove(pos);
        if let Some(n) = notification {
            out.push(Output::Send(id, Message::Notification(n)));
        }
        out.push(Output::Close(id));
        self.stop_timer(Timer::Hold(id), out);
        self.stop_timer(Timer::Keepalive(id), out);
        if c.state == ConnState::Established {
            out.push(Output::SessionDown(reason));
        }
        self.after_loss(now, out);
    }

    /// After a connection or attempt is gone: if nothing is left, wait in
    /// Active and retry after the backoff.
    fn after_loss(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.started || !self.conns.is_empty() || self.pending_connect.is_some() {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if !self.config.passive {
            let delay = self.jittered(self.config.backoff.delay(self.failures));
            self.arm(Timer::ConnectRetry, now + delay, out);
        }
    }

    fn arm(&mut self, timer: Timer, at: Instant, out: &mut Vec<Output>) {
        self.armed.retain(|(t, _)| *t != timer);
        self.armed.push((timer, at));
        out.push(Output::StartTimer(timer, at));
    }

    fn stop_timer(&mut self, timer: Timer, out: &mut Vec<Output>) {
        let before = self.armed.len();
        self.armed.retain(|(t, _)| *t != timer);
        if self.armed.len() != before {
            out.push(Output::StopTimer(timer));
        }
    }

    /// 75–100 % of `base` (RFC 4271 §10).
    fn jittered(&mut self, base: Duration) -> Duration {
        // xorshift64: good enough to spread reconnects, deterministic per seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let permille = 750 + (self.rng % 251) as u32;
        base * permille / 1000
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests;
