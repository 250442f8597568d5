//! The per-peer task: performs the FSM's outputs and feeds back events.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::adj_rib_out::AdjRibOut;
use super::{Inbox, PeerConfig, PeerStatus, RouteAttributes, SharedInbox, Stop, lock};
use crate::codec::{
    self, AsPath, CodecOptions, DecodeError, Family, HEADER_LEN, Message, NextHop, Origin,
    PathAttribute, Update, UpdateBuilder,
};
use crate::fsm::{ConnId, DownReason, Input, Negotiated, Output, SessionFsm, Timer};

/// Events from connection tasks.
enum Event {
    Connected(ConnId, io::Result<TcpStream>),
    Frame(ConnId, Vec<u8>),
    BadHeader(ConnId, DecodeError),
    Closed(ConnId),
}

struct Conn {
    writer: BufWriter<OwnedWriteHalf>,
    reader: JoinHandle<()>,
    local: SocketAddr,
}

struct Session {
    conn: ConnId,
    negotiated: Negotiated,
    local: SocketAddr,
}

struct Peer {
    config: PeerConfig,
    fsm: SessionFsm,
    events: mpsc::Sender<Event>,
    connecting: HashMap<ConnId, JoinHandle<()>>,
    conns: HashMap<ConnId, Conn>,
    timers: HashMap<Timer, Instant>,
    session: Option<Session>,
    /// The desired routes and what the peer was told, in one map: at 10k prefixes per
    /// peer a separate desired map would hold the table a second time.
    rib: AdjRibOut,
    status: watch::Sender<PeerStatus>,
    /// Inputs produced while performing outputs (e.g. a failed write).
    pending: VecDeque<Input>,
    /// Families to send in full, each followed by End-of-RIB: all of them
    /// on a new session, one after a route refresh request.
    resend: Vec<Family>,
}

pub(super) async fn run(
    config: PeerConfig,
    inbox: SharedInbox,
    mut wake: watch::Receiver<()>,
    status: watch::Sender<PeerStatus>,
    mut incoming: mpsc::Receiver<TcpStream>,
    mut stop: oneshot::Receiver<Stop>,
) {
    let mut incoming_seq = 0;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (events_tx, mut events) = mpsc::channel(1024);
    let mut peer = Peer {
        fsm: SessionFsm::new(config.session.clone(), seed),
        config,
        events: events_tx,
        connecting: HashMap::new(),
        conns: HashMap::new(),
        timers: HashMap::new(),
        session: None,
        rib: AdjRibOut::default(),
        status,
        pending: VecDeque::new(),
        resend: Vec::new(),
    };
    peer.input(Input::ManualStart).await;
    loop {
        let deadline = peer.timers.values().min().copied();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            how = &mut stop => {
                match how {
                    // The transport is closed below, without a NOTIFICATION.
                    Ok(Stop::Close) => {}
                    Ok(Stop::Cease(reason)) => peer.input(Input::ManualStop(reason)).await,
                    Err(_) => peer.input(Input::ManualStop(String::new())).await,
                }
                break;
            }
            Some(ev) = events.recv() => peer.event(ev).await,
            Some(stream) = incoming.recv() => {
                incoming_seq += 1;
                let id = ConnId::incoming(incoming_seq);
                peer.attach(id, stream);
                peer.input(Input::TcpAccepted(id)).await;
            }
            () = sleep => {
                let now = Instant::now();
                let due: Vec<Timer> = peer.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
                for t in due {
                    peer.timers.remove(&t);
                    peer.input(Input::TimerExpired(t)).await;
                }
            }
            changed = wake.changed() => {
                if changed.is_err() {
                    // The handle is gone without a shutdown: stop quietly.
                    peer.input(Input::ManualStop(String::new())).await;
                    break;
                }
                let Inbox { full, changes } = std::mem::take(&mut *lock(&inbox));
                let whole = full.is_some();
                if let Some(full) = full {
                    // Copied into the slots; the caller's map is released here unless the
                    // caller kept it (`set_routes_shared`).
                    peer.rib.set_desired(&full);
                }
                let mut changed = Vec::with_capacity(if whole { 0 } else { changes.len() });
                for (prefix, attrs) in changes {
                    peer.rib.set_want(prefix, attrs);
                    if !whole {
                        changed.push(prefix);
                    }
                }
                if whole {
                    peer.sync(None).await;
                } else if !changed.is_empty() {
                    peer.sync(Some(&changed)).await;
                }
            }
        }
        if !peer.resend.is_empty() {
            peer.resend_families().await;
        }
        peer.drain_pending().await;
    }
    for (_, c) in peer.connecting.drain() {
        c.abort();
    }
    for (_, mut c) in peer.conns.drain() {
        let _ = c.writer.flush().await;
        let _ = c.writer.shutdown().await;
        c.reader.abort();
    }
}

impl Peer {
    async fn input(&mut self, input: Input) {
        self.pending.push_back(input);
        self.drain_pending().await;
    }

    async fn drain_pending(&mut self) {
        while let Some(input) = self.pending.pop_front() {
            let outputs = self.fsm.handle(input, Instant::now());
            for o in outputs {
                self.output(o).await;
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Connected(id, Ok(stream)) => {
                self.connecting.remove(&id);
                self.attach(id, stream);
                self.input(Input::TcpConnected(id)).await;
            }
            Event::Connected(id, Err(e)) => {
                self.connecting.remove(&id);
                debug!(peer = %self.config.remote, error = %e, "connect failed");
                self.set_error(format!("connect: {e}"));
                self.input(Input::TcpConnectFailed(id)).await;
            }
            Event::Frame(id, bytes) => {
                let opts = self
                    .session
                    .as_ref()
                    .filter(|s| s.conn == id)
                    .map_or(CodecOptions::FOUR_OCTET_AS, |s| s.negotiated.codec());
                let input = match codec::decode(&bytes, opts) {
                    Ok(r) => Input::Received(id, r),
                    Err(e) => {
                        warn!(peer = %self.config.remote, error = %e, "malformed message");
                        Input::DecodeError(id, e)
                    }
                };
                self.input(input).await;
            }
            Event::BadHeader(id, e) => {
                warn!(peer = %self.config.remote, error = %e, "malformed header");
                self.input(Input::DecodeError(id, e)).await;
            }
            Event::Closed(id) => {
                if self.conns.contains_key(&id) {
                    self.input(Input::TcpClosed(id)).await;
                }
            }
        }
    }

    async fn output(&mut self, o: Output) {
        match o {
            Output::Connect(id) => {
                let task = tokio::spawn(connect(
                    id,
                    self.config.remote,
                    self.config.local_address,
                    self.config.md5_password.clone(),
                    self.config.ttl,
                    self.events.clone(),
                ));
                self.connecting.insert(id, task);
            }
            Output::Send(id, m) => {
                if let Message::Notification(n) = &m {
                    info!(peer = %self.config.remote, notification = %n, "sending NOTIFICATION");
                    self.set_error(format!("sent {n}"));
                }
                self.send(id, &m, CodecOptions::FOUR_OCTET_AS).await;
                self.flush(id).await;
            }
            Output::Close(id) => {
                if let Some(t) = self.connecting.remove(&id) {
                    t.abort();
                }
                if let Some(mut c) = self.conns.remove(&id) {
                    let _ = c.writer.flush().await;
                    let _ = c.writer.shutdown().await;
                    c.reader.abort();
                }
            }
            Output::StartTimer(t, at) => {
                self.timers.insert(t, at);
            }
            Output::StopTimer(t) => {
                self.timers.remove(&t);
            }
            Output::StateChanged { from, to } => {
                debug!(peer = %self.config.remote, ?from, ?to, "state");
                self.status.send_modify(|s| s.state = to);
            }
            Output::Established { conn, negotiated } => {
                info!(peer = %self.config.remote, hold = negotiated.hold_time, families = ?negotiated.families, "established");
                let local = self
                    .conns
                    .get(&conn)
                    .map(|c| c.local)
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                self.rib.clear();
                self.status.send_modify(|s| {
                    s.established_at = Some(Instant::now());
                    s.negotiated = Some(negotiated.clone());
                    s.advertised = 0;
                    s.updates_sent = 0;
                });
                self.resend = negotiated.families.clone();
                self.session = Some(Session {
                    conn,
                    negotiated,
                    local,
                });
            }
            Output::SessionDown(reason) => {
                let text = match &reason {
                    DownReason::NotificationSent(n) => format!("sent {n}"),
                    DownReason::NotificationReceived(n) => format!("received {n}"),
                    DownReason::TransportClosed => "transport closed".to_string(),
                };
                info!(peer = %self.config.remote, reason = %text, "session down");
                self.session = None;
                self.rib.clear();
                self.status.send_modify(|s| {
                    s.established_at = None;
                    s.negotiated = None;
                    s.advertised = 0;
                    s.last_error = Some(text);
                });
            }
            Output::Update(outcome) => {
                // We announce only; what the router sends is not used.
                debug!(peer = %self.config.remote, ?outcome, "UPDATE received");
            }
            Output::RouteRefreshRequested(family) => {
                if !self.resend.contains(&family) {
                    self.resend.push(family);
                }
            }
        }
    }

    /// Sends every route of the families in `resend`, then End-of-RIB for each.
    async fn resend_families(&mut self) {
        let families = std::mem::take(&mut self.resend);
        self.rib.forget(|p| families.contains(&Family::of(p)));
        self.sync(None).await;
        let Some(s) = &self.session else { return };
        let conn = s.conn;
        let opts = s.negotiated.codec();
        for f in families {
            self.send(conn, &Message::Update(Update::end_of_rib(f)), opts)
                .await;
        }
        self.flush(conn).await;
    }

    fn attach(&mut self, id: ConnId, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (read, write) = stream.into_split();
        let reader = tokio::spawn(read_frames(id, read, self.events.clone()));
        self.conns.insert(
            id,
            Conn {
                writer: BufWriter::with_capacity(64 * 1024, write),
                reader,
                local,
            },
        );
    }

    async fn send(&mut self, id: ConnId, m: &Message, opts: CodecOptions) {
        let bytes = match m.encode(opts) {
            Ok(b) => b,
            Err(e) => {
                warn!(peer = %self.config.remote, error = %e, "cannot encode message");
                return;
            }
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if let Err(e) = c.writer.write_all(&bytes).await {
            debug!(peer = %self.config.remote, error = %e, "write failed");
            self.pending.push_back(Input::TcpClosed(id));
        }
    }

    async fn flush(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id)
            && let Err(e) = c.writer.flush().await
        {
            debug!(peer = %self.config.remote, error = %e, "flush failed");
            self.pending.push_back(Input::TcpClosed(id));
        }
    }

    fn set_error(&self, text: String) {
        self.status.send_modify(|s| s.last_error = Some(text));
    }

    /// Sends what it takes to make the peer's view equal the desired routes: for every
    /// prefix, or for `changed` ones only when the caller knows that no other prefix
    /// changed.
    async fn sync(&mut self, changed: Option<&[IpNet]>) {
        let Some(s) = &self.session else { return };
        let conn = s.conn;
        let opts = s.negotiated.codec();
        let next_hop_v4 = self.config.next_hop_v4.or(match s.local.ip() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        });
        let next_hop_v6 = self.config.next_hop_v6.or(match s.local.ip() {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        });
        // Only what this session can carry.
        let sendable = |p: &IpNet| {
            let f = Family::of(p);
            s.negotiated.families.contains(&f)
                && match f {
                    Family::Ipv4Unicast => next_hop_v4.is_some(),
                    Family::Ipv6Unicast => next_hop_v6.is_some(),
                }
        };
        let diff = match changed {
            None => self.rib.diff_sendable(sendable),
            Some(prefixes) => self.rib.diff_prefixes(prefixes, sendable),
        };
        if diff.is_empty() {
            return;
        }
        let mut messages = Vec::new();
        let mut failed = None;
        for (attrs, prefixes) in &diff.announce {
            let mut b = UpdateBuilder::new(opts)
                .attributes(self.path_attributes(attrs, &s.negotiated))
                .announce(prefixes.iter().copied());
            if let Some(nh) = next_hop_v4 {
                b = b.next_hop_v4(nh);
            }
            if let Some(nh) = next_hop_v6 {
                b = b.next_hop_v6(NextHop::v6(nh));
            }
            match b.build() {
                Ok(u) => messages.extend(u),
                Err(e) => failed = Some(e),
            }
        }
        if !diff.withdraw.is_empty() {
            match UpdateBuilder::new(opts)
                .withdraw(diff.withdraw.iter().copied())
                .build()
            {
                Ok(u) => messages.extend(u),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            warn!(peer = %self.config.remote, error = %e, "cannot build UPDATEs");
            self.set_error(format!("build: {e}"));
            return;
        }
        let count = messages.len() as u64;
        for u in messages {
            self.send(conn, &Message::Update(u), opts).await;
        }
        self.flush(conn).await;
        self.rib.commit(&diff);
        let advertised = self.rib.len();
        self.status.send_modify(|st| {
            st.advertised = advertised;
            st.updates_sent += count;
        });
    }

    /// ORIGIN IGP, AS_PATH (empty on iBGP, our ASN on eBGP), MED,
    /// LOCAL_PREF (iBGP only) and communities.
    fn path_attributes(&self, a: &RouteAttributes, n: &Negotiated) -> Vec<PathAttribute> {
        let mut out = vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(if n.ibgp {
                AsPath::default()
            } else {
                AsPath::sequence([self.config.session.local_asn])
            }),
        ];
        if let Some(med) = a.med {
            out.push(PathAttribute::Med(med));
        }
        if n.ibgp {
            out.push(PathAttribute::LocalPref(a.local_pref.unwrap_or(100)));
        }
        if !a.communities.is_empty() {
            let mut c = a.communities.clone();
            c.sort_unstable();
            c.dedup();
            out.push(PathAttribute::Communities(c));
        }
        if !a.large_communities.is_empty() {
            let mut c = a.large_communities.clone();
            c.sort_unstable();
            c.dedup();
            out.push(PathAttribute::LargeCommunities(c));
        }
        out
    }
}

async fn connect(
    id: ConnId,
    remote: SocketAddr,
    local: Option<IpAddr>,
    md5: Option<String>,
    ttl: Option<u8>,
    events: mpsc::Sender<Event>,
) {
    let result = async {
        let socket = if remote.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(key) = &md5 {
            crate::sys::set_tcp_md5(&socket, remote, key.as_bytes())?;
        }
        if let Some(ttl) = ttl {
            crate::sys::set_ttl(&socket, remote.is_ipv6(), ttl)?;
        }
        if let Some(l) = local {
            socket.bind(SocketAddr::new(l, 0))?;
        }
        socket.connect(remote).await
    }
    .await;
    let _ = events.send(Event::Connected(id, result)).await;
}

/// Reads whole messages: the 19-octet header, checked, then the body.
async fn read_frames(
    id: ConnId,
    mut read: tokio::net::tcp::OwnedReadHalf,
    events: mpsc::Sender<Event>,
) {
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, &mut read);
    loop {
        let mut buf = vec![0u8; HEADER_LEN];
        if reader.read_exact(&mut buf).await.is_err() {
            break;
        }
        let len = match codec::peek_header(&buf) {
            Ok(Some(h)) => h.length,
            Ok(None) => break,
            Err(e) => {
                let _ = events.send(Event::BadHeader(id, e)).await;
                return;
            }
        };
        buf.resize(len, 0);
        if reader.read_exact(&mut buf[HEADER_LEN..]).await.is_err() {
            break;
        }
        if events.send(Event::Frame(id, buf)).await.is_err() {
            return;
        }
    }
    let _ = events.send(Event::Closed(id)).await;
}
