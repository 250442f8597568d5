//! Transition tests for the session FSM (RFC 4271 §8.2.2, §6.8).

use std::time::{Duration, Instant};

use super::*;
use crate::codec::notification::{cease, code, fsm as fsm_sub, open as open_sub};
use crate::codec::{RouteRefresh, Update};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn cfg() -> SessionConfig {
    SessionConfig::new(65000, LOCAL_ID, PeerAsn::Exact(65001))
}

fn peer_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    Open::new(
        asn,
        hold,
        id,
        vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
        ],
    )
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn sent(out: &[Output]) -> Vec<(ConnId, Message)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(id, m) => Some((*id, m.clone())),
            _ => None,
        })
        .collect()
}

fn notification_sent(out: &[Output]) -> Option<(u8, u8)> {
    sent(out).into_iter().find_map(|(_, m)| match m {
        Message::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

fn timer_started(out: &[Output], timer: Timer) -> Option<Instant> {
    out.iter().find_map(|o| match o {
        Output::StartTimer(t, at) if *t == timer => Some(*at),
        _ => None,
    })
}

fn connect_id(out: &[Output]) -> ConnId {
    out.iter()
        .find_map(|o| match o {
            Output::Connect(id) => Some(*id),
            _ => None,
        })
        .expect("no Connect output")
}

/// Start, connect, exchange OPEN; returns the connection in OpenConfirm.
fn to_open_confirm(fsm: &mut SessionFsm, t0: Instant, open: Open) -> (ConnId, Vec<Output>) {
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    fsm.handle(Input::TcpConnected(id), t0);
    let out = fsm.handle(Input::Received(id, Received::Open(open)), t0);
    (id, out)
}

fn established(t0: Instant) -> (SessionFsm, ConnId) {
    let mut fsm = SessionFsm::new(cfg(), 7);
    let (id, _) = to_open_confirm(
        &mut fsm,
        t0,
        peer_open(65001, Ipv4Addr::new(10, 0, 0, 9), 90),
    );
    fsm.handle(Input::Received(id, Received::Keepalive), t0);
    assert_eq!(fsm.state(), State::Established);
    (fsm, id)
}

#[test]
fn manual_start_connects_with_a_timeout() {
    let t0 = Instant::now();
    let mut fsm = SessionFsm::new(cfg(), 1);
    assert_eq!(fsm.state(), State::Idle);
    let out = fsm.handle(Input::ManualStart, t0);
    let id = connect_id(&out);
    assert_eq!(id.direction, Direction::Outgoing);
    assert_eq!(timer_started(&out, Timer::ConnectRetry), Some(secs(t0, 5)));
    assert!(out.contains(&Output::StateChanged {
        from: State::Idle,
        to: State::Connect
    }));
    // A second start changes nothing.
    assert!(fsm.handle(Input::ManualStart, t0).is_empty());
}

#[test]
fn passive_start_waits_in_active_without_connecting() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.passive = true;
    let mut fsm = SessionFsm::new(c, 1);
    let out = fsm.handle(Input::ManualStart, t0);
    assert_eq!(
        out,
        vec![Output::StateChanged {
            from: State::Idle,
            to: State::Active
        }]
    );
    // The peer connects: we send OPEN and arm the large hold timer (RFC 4271 §8.2.2).
    let inc = ConnId::incoming(1);
    let out = fsm.handle(Input::TcpAccepted(inc), t0);
    assert!(matches!(sent(&out)[..], [(id, Message::Open(_))] if id == inc));
    assert_eq!(timer_started(&out, Timer::Hold(inc)), Some(secs(t0, 240)));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn idle_refuses_incoming_connections() {
    let mut fsm = SessionFsm::new(cfg(), 1);
    let inc = ConnId::incoming(1);
    assert_eq!(
        fsm.handle(Input::TcpAccepted(inc), Instant::now()),
        vec![Output::Close(inc)]
    );
}

#[test]
fn connect_failures_back_off_exponentially_up_to_the_cap_with_jitter() {
    let t0 = Instant::now();
    let mut fsm = SessionFsm::new(cfg(), 42);
    let mut out = fsm.handle(Input::ManualStart, t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..9 {
        let id = connect_id(&out);
        let o = fsm.handle(Input::TcpConnectFailed(id), now);
        assert_eq!(fsm.state(), State::Active);
        let at = timer_started(&o, Timer::ConnectRetry).expect("retry armed");
        delays.push(at - now);
        now = at;
        out = fsm.handle(Input::TimerExpired(Timer::ConnectRetry), now);
        assert_eq!(fsm.state(), State::Connect);
    }
    let bases = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
    for (d, base) in delays.iter().zip(bases) {
        let base = Duration::from_secs(base);
        assert!(
            *d <= base && *d >= base * 3 / 4,
            "{d:?} not within 75-100% of {base:?}"
        );
    }
    assert_eq!(fsm.failures(), 9);
}

#[test]
fn connect_timeout_abandons_the_attempt_then_retries() {
    let t0 = Instant::now();
    let mut fsm = SessionFsm::new(cfg(), 3);
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    // Early (stale) expiry is ignored.
    assert!(
        fsm.handle(Input::TimerExpired(Timer::ConnectRetry), secs(t0, 1))
            .is_empty()
    );
    let out = fsm.handle(Input::TimerExpired(Timer::ConnectRetry), secs(t0, 5));
    assert!(out.contains(&Output::Close(id)));
    assert_eq!(fsm.state(), State::Active);
    // A late success of the abandoned attempt is closed, not used.
    assert_eq!(
        fsm.handle(Input::TcpConnected(id), secs(t0, 6)),
        vec![Output::Close(id)]
    );
}

#[test]
fn handshake_negotiates_and_establishes() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: true,
    });
    let mut fsm = SessionFsm::new(c, 9);
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    let out = fsm.handle(Input::TcpConnected(id), t0);
    let [(_, Message::Open(ours))] = &sent(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(ours.asn(), 65000);
    assert_eq!(ours.hold_time, 90);
    assert_eq!(ours.families(), Family::ALL.to_vec());
    assert!(ours.route_refresh());
    assert_eq!(ours.graceful_restart().unwrap().families.len(), 2);
    assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));

    let mut peer = Open::new(
        65001,
        30,
        Ipv4Addr::new(10, 0, 0, 9),
        vec![Capability::multiprotocol(Family::Ipv6Unicast)],
    );
    peer.capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            restart_flags: 0,
            restart_time: 90,
            families: vec![],
        }));
    let out = fsm.handle(Input::Received(id, Received::Open(peer)), secs(t0, 1));
    assert_eq!(sent(&out), vec![(id, Message::Keepalive)]);
    assert_eq!(timer_started(&out, Timer::Hold(id)), Some(secs(t0, 31)));
    let ka = timer_started(&out, Timer::Keepalive(id)).unwrap() - secs(t0, 1);
    assert!(ka <= Duration::from_secs(10) && ka >= Duration::from_millis(7500));
    assert_eq!(fsm.state(), State::OpenConfirm);

    let out = fsm.handle(Input::Received(id, Received::Keepalive), secs(t0, 2));
    let negotiated = out
        .iter()
        .find_map(|o| match o {
            Output::Established { conn, negotiated } if *conn == id => Some(negotiated.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(negotiated.hold_time, 30);
    assert_eq!(negotiated.keepalive, 10);
    assert_eq!(negotiated.families, vec![Family::Ipv6Unicast]);
    assert!(!negotiated.route_refresh, "peer did not advertise it");
    assert!(negotiated.four_octet_as);
    assert!(!negotiated.ibgp);
    assert_eq!(negotiated.peer_graceful_restart.unwrap().restart_time, 90);
    assert!(out.contains(&Output::StateChanged {
        from: State::OpenConfirm,
        to: State::Established
    }));
    assert_eq!(fsm.established().map(|(c, _)| c), Some(id));
}

#[test]
fn hold_time_and_keepalive_negotiation_table() {
    // (ours, configured keepalive, theirs) -> (hold, keepalive)
    let table = [
        (90, None, 180, 90, 30),
        (90, None, 9, 9, 3),
        (90, Some(10), 9, 9, 3),
        (90, Some(5), 90, 90, 5),
        (90, None, 0, 0, 0),
        (0, None, 90, 0, 0),
        (3, None, 90, 3, 1),
    ];
    for (ours, ka, theirs, hold, keepalive) in table {
        let t0 = Instant::now();
        let mut c = cfg();
        c.hold_time = ours;
        c.keepalive = ka;
        let mut fsm = SessionFsm::new(c, 1);
        let (id, out) = to_open_confirm(
            &mut fsm,
            t0,
            peer_open(65001, Ipv4Addr::new(10, 0, 0, 9), theirs),
        );
        if hold == 0 {
            assert_eq!(timer_started(&out, Timer::Hold(id)), None);
            assert!(out.contains(&Output::StopTimer(Timer::Hold(id))));
        }
        let out = fsm.handle(Input::Received(id, Received::Keepalive), t0);
        let Some(Output::Established { negotiated, .. }) =
            out.iter().find(|o| matches!(o, Output::Established { .. }))
        else {
            panic!()
        };
        assert_eq!(
            (negotiated.hold_time, negotiated.keepalive),
            (hold, keepalive),
            "ours {ours} theirs {theirs}"
        );
    }
}

#[test]
fn open_errors_send_the_right_notification() {
    let other = Ipv4Addr::new(10, 0, 0, 9);
    let only_v4_peer = Open::new(
        65001,
        90,
        other,
        vec![Capability::multiprotocol(Family::Ipv4Unicast)],
    );
    type Case = (PeerAsn, Vec<Family>, Open, (u8, u8));
    let table: Vec<Case> = vec![
        (
            PeerAsn::Exact(65001),
            Family::ALL.to_vec(),
            peer_open(65002, other, 90),
            (code::OPEN, open_sub::BAD_PEER_AS),
        ),
        (
            PeerAsn::Internal,
            Family::ALL.to_vec(),
            peer_open(65001, other, 90),
            (code::OPEN, open_sub::BAD_PEER_AS),
        ),
        (
            PeerAsn::External,
            Family::ALL.to_vec(),
            peer_open(65000, other, 90),
            (code::OPEN, open_sub::BAD_PEER_AS),
        ),
        (
            PeerAsn::Exact(65001),
            Family::ALL.to_vec(),
            peer_open(65001, other, 2),
            (code::OPEN, open_sub::UNACCEPTABLE_HOLD_TIME),
        ),
        (
            PeerAsn::Exact(65001),
            Family::ALL.to_vec(),
            peer_open(65001, Ipv4Addr::UNSPECIFIED, 90),
            (code::OPEN, open_sub::BAD_BGP_IDENTIFIER),
        ),
        (
            PeerAsn::Internal,
            Family::ALL.to_vec(),
            peer_open(65000, LOCAL_ID, 90),
            (code::OPEN, open_sub::BAD_BGP_IDENTIFIER),
        ),
        (
            PeerAsn::Exact(65001),
            vec![Family::Ipv6Unicast],
            only_v4_peer,
            (code::OPEN, open_sub::UNSUPPORTED_CAPABILITY),
        ),
    ];
    for (peer_asn, families, open, expected) in table {
        let t0 = Instant::now();
        let mut c = cfg();
        c.peer_asn = peer_asn;
        c.families = families;
        let mut fsm = SessionFsm::new(c, 1);
        let (id, out) = to_open_confirm(&mut fsm, t0, open.clone());
        assert_eq!(
            notification_sent(&out),
            Some(expected),
            "{peer_asn:?} {open:?}"
        );
        assert!(out.contains(&Output::Close(id)));
        assert_eq!(fsm.state(), State::Active);
        assert!(
            timer_started(&out, Timer::ConnectRetry).is_some(),
            "retry after failure"
        );
    }
    // Matching modes accept.
    for (mode, asn) in [(PeerAsn::Internal, 65000), (PeerAsn::External, 64999)] {
        let mut c = cfg();
        c.peer_asn = mode;
        let mut fsm = SessionFsm::new(c, 1);
        let (_, out) = to_open_confirm(
            &mut fsm,
            Instant::now(),
            peer_open(asn, Ipv4Addr::new(1, 1, 1, 1), 90),
        );
        assert_eq!(notification_sent(&out), None);
        assert_eq!(fsm.state(), State::OpenConfirm);
    }
}

#[test]
fn unsupported_capability_lists_ours() {
    let mut c = cfg();
    c.families = vec![Family::Ipv6Unicast];
    let mut fsm = SessionFsm::new(c, 1);
    let (_, out) = to_open_confirm(
        &mut fsm,
        Instant::now(),
        Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), vec![]),
    );
    let n = sent(&out).into_iter().find_map(|(_, m)| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    });
    assert_eq!(n.unwrap().data, vec![1, 4, 0, 2, 0, 1]);
}

#[test]
fn hold_timer_expiry_sends_4_0_and_goes_down() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    // The peer spoke at t0+60: the timer firing at t0+90 re-arms for t0+150.
    fsm.handle(Input::Received(id, Received::Keepalive), secs(t0, 60));
    let out = fsm.handle(Input::TimerExpired(Timer::Hold(id)), secs(t0, 90));
    assert_eq!(
        out,
        vec![Output::StartTimer(Timer::Hold(id), secs(t0, 150))]
    );
    let out = fsm.handle(Input::TimerExpired(Timer::Hold(id)), secs(t0, 150));
    assert_eq!(notification_sent(&out), Some((code::HOLD_TIMER_EXPIRED, 0)));
    assert!(
        out.contains(&Output::SessionDown(DownReason::NotificationSent(
            Notification::hold_timer_expired()
        )))
    );
    assert!(out.contains(&Output::StopTimer(Timer::Keepalive(id))));
    assert!(out.contains(&Output::StateChanged {
        from: State::Established,
        to: State::Active
    }));
    assert!(timer_started(&out, Timer::ConnectRetry).is_some());
}

#[test]
fn hold_timer_in_open_sent_is_not_extended() {
    let t0 = Instant::now();
    let mut fsm = SessionFsm::new(cfg(), 1);
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    fsm.handle(Input::TcpConnected(id), t0);
    let out = fsm.handle(Input::TimerExpired(Timer::Hold(id)), secs(t0, 240));
    assert_eq!(notification_sent(&out), Some((code::HOLD_TIMER_EXPIRED, 0)));
}

#[test]
fn keepalive_timer_sends_and_rearms() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let out = fsm.handle(Input::TimerExpired(Timer::Keepalive(id)), secs(t0, 30));
    assert_eq!(sent(&out), vec![(id, Message::Keepalive)]);
    let next = timer_started(&out, Timer::Keepalive(id)).unwrap();
    assert!(next > secs(t0, 52) && next <= secs(t0, 60));
}

#[test]
fn unexpected_messages_are_fsm_errors_per_rfc_6608() {
    let t0 = Instant::now();
    let update = Received::Update(UpdateOutcome::Accepted {
        update: Update::default(),
        discarded: vec![],
    });
    // OpenSent.
    let mut fsm = SessionFsm::new(cfg(), 1);
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    fsm.handle(Input::TcpConnected(id), t0);
    let out = fsm.handle(Input::Received(id, update.clone()), t0);
    assert_eq!(
        notification_sent(&out),
        Some((code::FSM, fsm_sub::UNEXPECTED_IN_OPEN_SENT))
    );
    // OpenConfirm.
    let mut fsm = SessionFsm::new(cfg(), 1);
    let open = peer_open(65001, Ipv4Addr::new(10, 0, 0, 9), 90);
    let (id, _) = to_open_confirm(&mut fsm, t0, open.clone());
    let out = fsm.handle(Input::Received(id, Received::Open(open.clone())), t0);
    assert_eq!(
        notification_sent(&out),
        Some((code::FSM, fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM))
    );
    // Established.
    let (mut fsm, id) = established(t0);
    let out = fsm.handle(Input::Received(id, Received::Open(open)), t0);
    assert_eq!(
        notification_sent(&out),
        Some((code::FSM, fsm_sub::UNEXPECTED_IN_ESTABLISHED))
    );
    assert!(out.iter().any(|o| matches!(o, Output::SessionDown(_))));
}

#[test]
fn established_passes_updates_and_route_refresh_through() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let outcome = UpdateOutcome::Accepted {
        update: Update::end_of_rib(Family::Ipv6Unicast),
        discarded: vec![],
    };
    let out = fsm.handle(Input::Received(id, Received::Update(outcome.clone())), t0);
    assert_eq!(out, vec![Output::Update(outcome)]);
    let out = fsm.handle(
        Input::Received(
            id,
            Received::RouteRefresh(RouteRefresh::new(Family::Ipv6Unicast)),
        ),
        t0,
    );
    assert_eq!(
        out,
        vec![Output::RouteRefreshRequested(Family::Ipv6Unicast)]
    );
    // Unknown AFI/SAFI is ignored (RFC 7313 §5).
    let rr = RouteRefresh {
        afi: 25,
        subtype: 0,
        safi: 70,
    };
    assert!(
        fsm.handle(Input::Received(id, Received::RouteRefresh(rr)), t0)
            .is_empty()
    );
}

#[test]
fn peer_notification_and_transport_loss_end_the_session_without_sending() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let n = Notification::cease(cease::ADMINISTRATIVE_RESET);
    let out = fsm.handle(Input::Received(id, Received::Notification(n.clone())), t0);
    assert!(sent(&out).is_empty());
    assert!(out.contains(&Output::Close(id)));
    assert!(out.contains(&Output::SessionDown(DownReason::NotificationReceived(n))));

    let (mut fsm, id) = established(t0);
    let out = fsm.handle(Input::TcpClosed(id), t0);
    assert!(out.contains(&Output::SessionDown(DownReason::TransportClosed)));
    // The first retry after a good session uses the initial backoff.
    let at = timer_started(&out, Timer::ConnectRetry).unwrap();
    assert!(at <= secs(t0, 1));
}

#[test]
fn decode_errors_send_their_notification() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let bytes = [0u8; 19];
    let err = crate::codec::decode(&bytes, CodecOptions::default()).unwrap_err();
    let out = fsm.handle(Input::DecodeError(id, err), t0);
    assert_eq!(notification_sent(&out), Some((code::MESSAGE_HEADER, 1)));
}

#[test]
fn manual_stop_sends_administrative_shutdown_and_stops_everything() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let out = fsm.handle(Input::ManualStop("node drained".into()), t0);
    let n = Notification::administrative_shutdown("node drained");
    assert_eq!(sent(&out), vec![(id, Message::Notification(n.clone()))]);
    assert!(out.contains(&Output::Close(id)));
    assert!(out.contains(&Output::StopTimer(Timer::Hold(id))));
    assert!(out.contains(&Output::StopTimer(Timer::Keepalive(id))));
    assert!(out.contains(&Output::SessionDown(DownReason::NotificationSent(n))));
    assert_eq!(fsm.state(), State::Idle);
    // Stale timers after stop do nothing.
    assert!(
        fsm.handle(Input::TimerExpired(Timer::Hold(id)), secs(t0, 500))
            .is_empty()
    );
}

/// Both sides connect at once; returns the outputs of the step that resolved it.
fn collide(
    local_id: Ipv4Addr,
    peer_id: Ipv4Addr,
    incoming_open_first: bool,
) -> (SessionFsm, ConnId, ConnId, Vec<Output>) {
    let t0 = Instant::now();
    let mut c = cfg();
    c.router_id = local_id;
    let mut fsm = SessionFsm::new(c, 5);
    let out_id = connect_id(&fsm.handle(Input::ManualStart, t0));
    let in_id = ConnId::incoming(1);
    fsm.handle(Input::TcpAccepted(in_id), t0);
    fsm.handle(Input::TcpConnected(out_id), t0);
    let open = Received::Open(peer_open(65001, peer_id, 90));
    let (first, second) = if incoming_open_first {
        (in_id, out_id)
    } else {
        (out_id, in_id)
    };
    let o1 = fsm.handle(Input::Received(first, open.clone()), t0);
    assert_eq!(
        notification_sent(&o1),
        None,
        "no collision before both OPENs"
    );
    let o2 = fsm.handle(Input::Received(second, open), t0);
    (fsm, out_id, in_id, o2)
}

#[test]
fn collision_keeps_the_connection_opened_by_the_higher_identifier() {
    for incoming_first in [true, false] {
        // We are higher: our outgoing connection survives.
        let (mut fsm, out_id, in_id, out) = collide(
            Ipv4Addr::new(10, 0, 0, 9),
            Ipv4Addr::new(10, 0, 0, 1),
            incoming_first,
        );
        assert_eq!(
            notification_sent(&out),
            Some((code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
        );
        assert!(out.contains(&Output::Close(in_id)) && !out.contains(&Output::Close(out_id)));
        let est = fsm.handle(Input::Received(out_id, Received::Keepalive), Instant::now());
        assert!(
            est.iter()
                .any(|o| matches!(o, Output::Established { conn, .. } if *conn == out_id))
        );

        // The peer is higher: its (incoming) connection survives.
        let (fsm, out_id, in_id, out) = collide(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 9),
            incoming_first,
        );
        assert!(out.contains(&Output::Close(out_id)) && !out.contains(&Output::Close(in_id)));
        assert_eq!(fsm.state(), State::OpenConfirm);
    }
}

#[test]
fn a_connection_colliding_with_an_established_session_is_closed() {
    let t0 = Instant::now();
    let (mut fsm, est) = established(t0);
    let in_id = ConnId::incoming(7);
    fsm.handle(Input::TcpAccepted(in_id), t0);
    let out = fsm.handle(
        Input::Received(
            in_id,
            Received::Open(peer_open(65001, Ipv4Addr::new(10, 0, 0, 9), 90)),
        ),
        t0,
    );
    assert_eq!(
        notification_sent(&out),
        Some((code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert!(out.contains(&Output::Close(in_id)));
    assert_eq!(fsm.established().map(|(c, _)| c), Some(est));
    assert!(!out.iter().any(|o| matches!(o, Output::SessionDown(_))));
}

#[test]
fn a_third_connection_is_refused() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.passive = true;
    let mut fsm = SessionFsm::new(c, 1);
    fsm.handle(Input::ManualStart, t0);
    fsm.handle(Input::TcpAccepted(ConnId::incoming(1)), t0);
    fsm.handle(Input::TcpAccepted(ConnId::incoming(2)), t0);
    assert_eq!(
        fsm.handle(Input::TcpAccepted(ConnId::incoming(3)), t0),
        vec![Output::Close(ConnId::incoming(3))]
    );
}

#[test]
fn every_message_the_fsm_sends_encodes_and_decodes() {
    let t0 = Instant::now();
    let (mut fsm, id) = established(t0);
    let mut all = fsm.handle(Input::TimerExpired(Timer::Keepalive(id)), secs(t0, 30));
    all.extend(fsm.handle(Input::ManualStop("bye".into()), secs(t0, 31)));
    for (_, m) in sent(&all) {
        let bytes = m.encode(CodecOptions::FOUR_OCTET_AS).unwrap();
        assert_eq!(
            crate::codec::decode(&bytes, CodecOptions::FOUR_OCTET_AS)
                .unwrap()
                .into_message(),
            Some(m)
        );
    }
}

/// Remaining transitions as a table: bring the session to a state, apply
/// one input, check what is sent and where it ends up.
#[test]
fn transition_table() {
    #[derive(Clone, Copy, Debug)]
    enum Setup {
        Idle,
        Connect,
        OpenSent,
        OpenConfirm,
    }
    #[derive(Clone, Copy, Debug)]
    enum Event {
        Stop,
        PeerNotification,
        Closed,
        HoldExpired,
        KeepaliveTimer,
        Update,
    }
    let peer = Ipv4Addr::new(10, 0, 0, 9);
    // (setup, event, NOTIFICATION we send, resulting state, KEEPALIVE sent)
    let table = [
        (Setup::Idle, Event::Stop, None, State::Idle, false),
        (Setup::Connect, Event::Stop, None, State::Idle, false),
        (
            Setup::OpenSent,
            Event::Stop,
            Some((code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)),
            State::Idle,
            false,
        ),
        (
            Setup::OpenSent,
            Event::PeerNotification,
            None,
            State::Active,
            false,
        ),
        (Setup::OpenSent, Event::Closed, None, State::Active, false),
        (
            Setup::OpenConfirm,
            Event::PeerNotification,
            None,
            State::Active,
            false,
        ),
        (
            Setup::OpenConfirm,
            Event::Closed,
            None,
            State::Active,
            false,
        ),
        (
            Setup::OpenConfirm,
            Event::HoldExpired,
            Some((code::HOLD_TIMER_EXPIRED, 0)),
            State::Active,
            false,
        ),
        (
            Setup::OpenConfirm,
            Event::KeepaliveTimer,
            None,
            State::OpenConfirm,
            true,
        ),
        (
            Setup::OpenConfirm,
            Event::Update,
            Some((code::FSM, fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM)),
            State::Active,
            false,
        ),
    ];
    for (setup, event, notification, end, keepalive) in table {
        let t0 = Instant::now();
        let mut fsm = SessionFsm::new(cfg(), 11);
        let mut id = ConnId::incoming(99);
        match setup {
            Setup::Idle => {}
            Setup::Connect => {
                id = connect_id(&fsm.handle(Input::ManualStart, t0));
            }
            Setup::OpenSent => {
                id = connect_id(&fsm.handle(Input::ManualStart, t0));
                fsm.handle(Input::TcpConnected(id), t0);
            }
            Setup::OpenConfirm => {
                id = to_open_confirm(&mut fsm, t0, peer_open(65001, peer, 90)).0;
            }
        }
        let at = secs(t0, 90);
        let input = match event {
            Event::Stop => Input::ManualStop(String::new()),
            Event::PeerNotification => Input::Received(
                id,
                Received::Notification(Notification::cease(cease::PEER_DECONFIGURED)),
            ),
            Event::Closed => Input::TcpClosed(id),
            Event::HoldExpired => Input::TimerExpired(Timer::Hold(id)),
            Event::KeepaliveTimer => Input::TimerExpired(Timer::Keepalive(id)),
            Event::Update => Input::Received(
                id,
                Received::Update(UpdateOutcome::Accepted {
                    update: Update::default(),
                    discarded: vec![],
                }),
            ),
        };
        let out = fsm.handle(input, at);
        assert_eq!(
            notification_sent(&out),
            notification,
            "{setup:?} + {event:?}"
        );
        assert_eq!(fsm.state(), end, "{setup:?} + {event:?}");
        assert_eq!(
            sent(&out).contains(&(id, Message::Keepalive)),
            keepalive,
            "{setup:?} + {event:?}"
        );
        if matches!(setup, Setup::Connect) && matches!(event, Event::Stop) {
            assert!(
                out.contains(&Output::Close(id)),
                "the pending connect is abandoned"
            );
            assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));
        }
        if end == State::Active {
            assert!(out.contains(&Output::Close(id)));
            assert!(
                timer_started(&out, Timer::ConnectRetry).is_some(),
                "{setup:?} + {event:?}: retry armed"
            );
            assert!(
                !out.iter().any(|o| matches!(o, Output::SessionDown(_))),
                "never Established, so no SessionDown"
            );
        }
    }
}

/// RFC 4724 §3: a restarted speaker sets R in its OPENs until a session is
/// up again; a later reconnect of the same process is no restart.
#[test]
fn restart_state_bit_is_sent_until_the_first_established_session() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
    });
    let our_open = |out: &[Output]| -> GracefulRestart {
        sent(out)
            .into_iter()
            .find_map(|(_, m)| match m {
                Message::Open(o) => o.graceful_restart().cloned(),
                _ => None,
            })
            .expect("an OPEN with graceful restart")
    };
    let mut fsm = SessionFsm::new(c, 3);
    // First attempt: OPEN with R, then the connection breaks before
    // Established: the retry still says R.
    let id = connect_id(&fsm.handle(Input::ManualStart, t0));
    let gr = our_open(&fsm.handle(Input::TcpConnected(id), t0));
    assert!(gr.restarting(), "{gr:?}");
    assert_eq!(gr.restart_time, 120);
    assert_eq!(
        gr.restart_flags & GracefulRestart::RESTART_STATE,
        GracefulRestart::RESTART_STATE
    );
    fsm.handle(Input::TcpClosed(id), secs(t0, 1));
    let id = connect_id(&fsm.handle(Input::TimerExpired(Timer::ConnectRetry), secs(t0, 3)));
    assert!(our_open(&fsm.handle(Input::TcpConnected(id), secs(t0, 3))).restarting());
    fsm.handle(
        Input::Received(
            id,
            Received::Open(peer_open(65001, Ipv4Addr::new(10, 0, 0, 9), 90)),
        ),
        secs(t0, 3),
    );
    fsm.handle(Input::Received(id, Received::Keepalive), secs(t0, 3));
    assert_eq!(fsm.state(), State::Established);
    assert!(!fsm.config().graceful_restart.unwrap().restarting);
    // The session drops; the reconnect's OPEN has no R.
    fsm.handle(Input::TcpClosed(id), secs(t0, 10));
    let id = connect_id(&fsm.handle(Input::TimerExpired(Timer::ConnectRetry), secs(t0, 12)));
    let gr = our_open(&fsm.handle(Input::TcpConnected(id), secs(t0, 12)));
    assert!(!gr.restarting(), "{gr:?}");
    assert_eq!(
        gr.restart_time, 120,
        "still advertised, just not restarting"
    );
}
