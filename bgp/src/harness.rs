//! Property checks shared by the stable proptest suite and the cargo-fuzz
//! targets in `bgp/fuzz`. Each check panics when a property is violated,
//! which is what both drivers look for.
//!
//! Compiled for tests and with the `harness` feature only.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::codec::{self, CodecOptions, Message, Received, UpdateOutcome};
use crate::fsm::{ConnId, Input, Output, PeerAsn, SessionConfig, SessionFsm, State, Timer};

/// Decoder properties on arbitrary bytes. The first byte picks the codec
/// options (bit 0: 4-octet AS); the rest is one message.
///
/// - decoding never panics;
/// - a decode error carries a NOTIFICATION that encodes;
/// - a successfully decoded message re-encodes, and decoding that gives the
///   same message with nothing discarded.
pub fn check_decode(data: &[u8]) {
    let Some((first, msg)) = data.split_first() else {
        return;
    };
    let opts = CodecOptions {
        four_octet_as: first & 1 == 1,
    };
    let _ = codec::peek_header(msg);
    match codec::decode(msg, opts) {
        Err(e) => {
            let n = Message::Notification(e.notification);
            assert!(
                n.encode(opts).is_ok(),
                "NOTIFICATION for a decode error must encode"
            );
        }
        Ok(received) => check_reencode(received, opts),
    }
}

fn check_reencode(received: Received, opts: CodecOptions) {
    let Some(message) = received.into_message() else {
        return;
    };
    let bytes = match message.encode(opts) {
        Ok(b) => b,
        Err(e) => panic!("decoded message does not re-encode: {e}: {message:?}"),
    };
    let again = match codec::decode(&bytes, opts) {
        Ok(r) => r,
        Err(e) => panic!("re-encoded message does not decode: {e}: {message:?} as {bytes:02x?}"),
    };
    match (&message, &again) {
        (Message::Update(u), Received::Update(UpdateOutcome::Accepted { update, discarded })) => {
            assert_eq!(u, update, "UPDATE changed through re-encoding");
            assert!(
                discarded.is_empty(),
                "re-encoded UPDATE lost attributes: {discarded:?}"
            );
        }
        _ => assert_eq!(
            Some(message),
            again.into_message(),
            "message changed through re-encoding"
        ),
    }
}

/// Checks that an encoded message we send decodes back to itself.
pub fn check_sendable(message: &Message, opts: CodecOptions) {
    let bytes = match message.encode(opts) {
        Ok(b) => b,
        Err(e) => panic!("the FSM emitted a message that does not encode: {e}: {message:?}"),
    };
    match codec::decode(&bytes, opts) {
        Ok(r) => check_reencode(r, opts),
        Err(e) => panic!("the FSM emitted a message that does not decode: {e}: {message:?}"),
    }
}

/// Drives a [`SessionFsm`] with inputs chosen by `data` and checks that it
/// never panics, never emits a message that fails to encode/decode, keeps
/// at most two connections' worth of timers straight, and reports state
/// changes consistently.
pub fn check_fsm(data: &[u8]) -> State {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(setup) = next() else {
        return State::Idle;
    };
    let router_id = Ipv4Addr::new(10, 0, 0, next().unwrap_or(5));
    let mut cfg = SessionConfig::new(
        65000,
        router_id,
        match setup & 3 {
            0 => PeerAsn::Exact(65001),
            1 => PeerAsn::Internal,
            2 => PeerAsn::External,
            _ => PeerAsn::Exact(4_200_000_000),
        },
    );
    cfg.passive = setup & 4 != 0;
    cfg.hold_time = [0, 3, 9, 90][usize::from((setup >> 3) & 3)];
    cfg.route_refresh = setup & 0x20 != 0;
    if setup & 0x40 != 0 {
        cfg.families = vec![codec::Family::Ipv6Unicast];
    }
    if setup & 0x80 != 0 {
        cfg.graceful_restart = Some(crate::fsm::GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: true,
        });
    }
    let mut fsm = SessionFsm::new(cfg, u64::from(setup));
    let mut now = Instant::now();
    let mut armed: Vec<(Timer, Instant)> = Vec::new();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut incoming_seq = 0;
    let mut best = State::Idle;
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        let pick_conn = |conns: &[ConnId]| {
            conns
                .get(usize::from(arg) % conns.len().max(1))
                .copied()
                .unwrap_or(ConnId::incoming(u64::from(arg)))
        };
        let input = match op % 14 {
            0 => Input::ManualStart,
            1 => Input::ManualStop(if arg & 1 == 0 {
                String::new()
            } else {
                "stop".into()
            }),
            2 => {
                // Fire one armed timer at its deadline (or a bogus one).
                if armed.is_empty() {
                    now += Duration::from_secs(u64::from(arg));
                    Input::TimerExpired(Timer::ConnectRetry)
                } else {
                    let (t, at) = armed.remove(usize::from(arg) % armed.len());
                    now = now.max(at);
                    Input::TimerExpired(t)
                }
            }
            3 => Input::TcpConnected(pick_conn(&conns)),
            4 => Input::TcpConnectFailed(pick_conn(&conns)),
            5 => {
                incoming_seq += 1;
                let id = ConnId::incoming(incoming_seq);
                conns.push(id);
                Input::TcpAccepted(id)
            }
            6 => Input::TcpClosed(pick_conn(&conns)),
            7 => {
                let asn = [65000, 65001, 4_200_000_000, 23456][usize::from(arg & 3)];
                let id = Ipv4Addr::new(10, 0, 0, next().unwrap_or(0));
                let hold = [0, 1, 3, 90][usize::from((arg >> 2) & 3)];
                let mut caps = Vec::new();
                if arg & 0x10 != 0 {
                    caps.push(codec::Capability::multiprotocol(codec::Family::Ipv4Unicast));
                }
                if arg & 0x20 != 0 {
                    caps.push(codec::Capability::multiprotocol(codec::Family::Ipv6Unicast));
                }
                if arg & 0x40 != 0 {
                    caps.push(codec::Capability::RouteRefresh);
                }
                let mut open = codec::Open::new(asn, hold, id, caps);
                if arg & 0x80 != 0 {
                    // A 2-octet-only peer.
                    open.capabilities
                        .retain(|c| !matches!(c, codec::Capability::FourOctetAs(_)));
                }
                Input::Received(pick_conn(&conns), Received::Open(open))
            }
            8 => Input::Received(pick_conn(&conns), Received::Keepalive),
            9 => Input::Received(
                pick_conn(&conns),
                Received::Update(UpdateOutcome::Accepted {
                    update: codec::Update::end_of_rib(codec::Family::Ipv4Unicast),
                    discarded: Vec::new(),
                }),
            ),
            10 => Input::Received(
                pick_conn(&conns),
                Received::Notification(codec::Notification::cease(arg)),
            ),
            11 => Input::Received(
                pick_conn(&conns),
                Received::RouteRefresh(codec::RouteRefresh {
                    afi: u16::from(arg & 3),
                    subtype: 0,
                    safi: 1,
                }),
            ),
            12 => {
                now += Duration::from_millis(u64::from(arg) * 100);
                continue;
            }
            _ => {
                // Bytes through the real decoder, as the runtime would.
                let len = usize::from(arg) % 64;
                let mut msg = vec![0xff; 16];
                msg.extend_from_slice(&((19 + len) as u16).to_be_bytes());
                msg.push(next().unwrap_or(4) % 6);
                for _ in 0..len {
                    msg.push(next().unwrap_or(0));
                }
                let conn = pick_conn(&conns);
                match codec::decode(&msg, CodecOptions::FOUR_OCTET_AS) {
                    Ok(r) => Input::Received(conn, r),
                    Err(e) => Input::DecodeError(conn, e),
                }
            }
        };
        let before = fsm.state();
        let out = fsm.handle(input, now);
        let mut state = before;
        for o in &out {
            match o {
                Output::Send(_, m) => check_sendable(m, CodecOptions::FOUR_OCTET_AS),
                Output::Connect(id) => conns.push(*id),
                Output::StartTimer(t, at) => {
                    assert!(*at >= now, "timer armed in the past");
                    armed.retain(|(x, _)| x != t);
                    armed.push((*t, *at));
                }
                Output::StopTimer(t) => armed.retain(|(x, _)| x != t),
                Output::StateChanged { from, to } => {
                    assert_eq!(*from, state, "StateChanged.from disagrees");
                    assert_ne!(from, to);
                    state = *to;
                }
                Output::Established { negotiated, .. } => {
                    assert!(negotiated.hold_time == 0 || negotiated.hold_time >= 3);
                    assert!(
                        negotiated.keepalive <= negotiated.hold_time / 3
                            || negotiated.hold_time == 0
                    );
                    assert!(!negotiated.families.is_empty());
                }
                _ => {}
            }
        }
        assert_eq!(state, fsm.state(), "state changes not all reported");
        best = best.max(state);
        if conns.len() > 64 {
            conns.drain(..32);
        }
    }
    best
}

/// A named fuzz seed.
pub type Seed = (String, Vec<u8>);

/// Seed inputs for the fuzz targets, built with our own encoder: named
/// `(decode seeds, fsm seeds)`. Written to `bgp/fuzz/corpus/<target>/` by
/// the ignored test `write_fuzz_seed_corpus`.
pub fn seed_corpus() -> (Vec<Seed>, Vec<Seed>) {
    use crate::codec::*;
    use ipnet::IpNet;

    let four = CodecOptions::FOUR_OCTET_AS;
    let two = CodecOptions::default();
    let mut decode = Vec::new();
    let mut add = |name: &str, opts: CodecOptions, m: &Message| {
        if let Ok(bytes) = m.encode(opts) {
            let mut data = vec![u8::from(opts.four_octet_as)];
            data.extend_from_slice(&bytes);
            decode.push((name.to_string(), data));
        }
    };
    let id = Ipv4Addr::new(192, 0, 2, 1);
    let gr = Capability::GracefulRestart(GracefulRestart {
        restart_flags: GracefulRestart::RESTART_STATE,
        restart_time: 120,
        families: Family::ALL
            .iter()
            .map(|f| GracefulRestartFamily::new(*f, true))
            .collect(),
    });
    let caps = vec![
        Capability::multiprotocol(Family::Ipv4Unicast),
        Capability::multiprotocol(Family::Ipv6Unicast),
        Capability::RouteRefresh,
        gr,
        Capability::Unknown {
            code: 73,
            value: b"node-1".to_vec(),
        },
    ];
    add(
        "open-full",
        four,
        &Message::Open(Open::new(64512, 90, id, caps.clone())),
    );
    add(
        "open-as-trans",
        four,
        &Message::Open(Open::new(4_200_000_000, 9, id, caps)),
    );
    add(
        "open-bare",
        two,
        &Message::Open(Open::new(65001, 0, id, vec![])),
    );
    let many: Vec<Capability> = (0..90u8)
        .map(|i| Capability::Unknown {
            code: 200,
            value: vec![i],
        })
        .collect();
    add(
        "open-extended-params",
        four,
        &Message::Open(Open::new(65001, 90, id, many)),
    );
    add("keepalive", four, &Message::Keepalive);
    add(
        "notification-shutdown",
        four,
        &Message::Notification(Notification::administrative_shutdown("maintenance")),
    );
    add(
        "notification-hold",
        four,
        &Message::Notification(Notification::hold_timer_expired()),
    );
    add(
        "route-refresh-v4",
        four,
        &Message::RouteRefresh(RouteRefresh::new(Family::Ipv4Unicast)),
    );
    add(
        "route-refresh-v6",
        four,
        &Message::RouteRefresh(RouteRefresh::new(Family::Ipv6Unicast)),
    );
    for f in Family::ALL {
        add(
            &format!("eor-{f}"),
            four,
            &Message::Update(Update::end_of_rib(f)),
        );
    }
    let attrs = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::AsSequence,
                    asns: vec![64512, 4_200_000_000],
                },
                AsSegment {
                    kind: SegmentType::AsSet,
                    asns: vec![1, 2, 3],
                },
            ],
        }),
        PathAttribute::Med(5),
        PathAttribute::LocalPref(100),
        PathAttribute::AtomicAggregate,
        PathAttribute::Aggregator(Aggregator {
            asn: 64512,
            address: id,
        }),
        PathAttribute::Communities(vec![0xfc00_0001, 0xffff_ff02]),
        PathAttribute::LargeCommunities(vec![LargeCommunity {
            global_admin: 64512,
            local_data1: 1,
            local_data2: 2,
        }]),
        PathAttribute::Raw(RawAttribute {
            flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
            type_code: 99,
            value: vec![1, 2, 3],
        }),
    ];
    let v4: Vec<IpNet> = [
        "10.0.0.0/8",
        "198.51.100.7/32",
        "0.0.0.0/0",
        "192.0.2.128/25",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let v6: Vec<IpNet> = [
        "2001:db8::/32",
        "2001:db8:1::7/128",
        "::/0",
        "2001:db8:ff00::/40",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let ll = NextHop::V6 {
        global: std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        link_local: Some(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    };
    for (opts, tag) in [(four, "as4"), (two, "as2")] {
        let builder = UpdateBuilder::new(opts)
            .attributes(attrs.clone())
            .next_hop_v4(id)
            .next_hop_v6(ll);
        let sets: [(&str, Vec<IpNet>, Vec<IpNet>); 4] = [
            ("announce-v4", v4.clone(), vec![]),
            ("announce-v6", v6.clone(), vec![]),
            (
                "withdraw-both",
                vec![],
                v4.iter().chain(&v6).copied().collect(),
            ),
            ("mixed", v4.clone(), v4.iter().rev().copied().collect()),
        ];
        for (name, announce, withdraw) in sets {
            if let Ok(updates) = builder
                .clone()
                .announce(announce)
                .withdraw(withdraw)
                .build()
            {
                for (i, u) in updates.into_iter().enumerate() {
                    add(
                        &format!("update-{name}-{tag}-{i}"),
                        opts,
                        &Message::Update(u),
                    );
                }
            }
        }
    }
    // A near-full UPDATE.
    let hosts: Vec<IpNet> = (0..900u32)
        .map(|i| {
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap_or_default())
        })
        .collect();
    if let Some(u) = UpdateBuilder::new(four)
        .attributes(attrs[..2].to_vec())
        .next_hop_v4(id)
        .announce(hosts)
        .build()
        .ok()
        .and_then(|u| u.into_iter().next())
    {
        add("update-full", four, &Message::Update(u));
    }

    // Malformed messages hitting each error path (RFC 4271 §6, RFC 7606).
    let frame = |kind: u8, body: &[u8]| {
        let mut m = vec![1u8];
        m.extend_from_slice(&[0xff; 16]);
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(body);
        m
    };
    let upd = |attrs: &[u8], nlri: &[u8]| {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    };
    let good = [
        0x40u8, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, 0x40, 3, 4, 192, 0, 2, 1,
    ];
    let with = |extra: &[u8]| {
        let mut a = good.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let mut bad_marker = frame(4, &[]);
    bad_marker[5] = 0;
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("marker", bad_marker),
        ("type", frame(9, &[])),
        ("keepalive-length", frame(4, &[0])),
        ("open-version", frame(1, &[3, 0, 1, 0, 90, 1, 1, 1, 1, 0])),
        (
            "open-param-type",
            frame(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 1, 1, 0]),
        ),
        (
            "open-cap-overrun",
            frame(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 2, 65, 9]),
        ),
        ("update-withdrawn-overrun", frame(2, &[0, 9, 0, 0])),
        (
            "update-origin-value",
            frame(
                2,
                &upd(
                    &[0x40, 1, 1, 7, 0x40, 2, 0, 0x40, 3, 4, 1, 2, 3, 4],
                    &[8, 10],
                ),
            ),
        ),
        (
            "update-as-path-segment",
            frame(2, &upd(&with(&[0x40, 2, 2, 2, 0]), &[8, 10])),
        ),
        (
            "update-attr-overrun",
            frame(2, &upd(&with(&[0xc0, 8, 200, 0]), &[8, 10])),
        ),
        (
            "update-missing-next-hop",
            frame(2, &upd(&good[..13], &[8, 10])),
        ),
        (
            "update-flags",
            frame(2, &upd(&with(&[0x80, 5, 4, 0, 0, 0, 100]), &[8, 10])),
        ),
        (
            "update-unknown-well-known",
            frame(2, &upd(&with(&[0x40, 99, 1, 0]), &[8, 10])),
        ),
        (
            "update-mp-next-hop",
            frame(
                2,
                &upd(&with(&[0x80, 14, 9, 0, 2, 1, 4, 1, 2, 3, 4, 0]), &[]),
            ),
        ),
        (
            "update-nlri-length",
            frame(2, &upd(&good, &[33, 1, 2, 3, 4, 5])),
        ),
        (
            "update-extended-length",
            frame(2, &upd(&with(&[0xd0, 8, 0, 4, 0, 0, 0, 1]), &[8, 10])),
        ),
    ];
    for (name, bytes) in malformed {
        decode.push((format!("malformed-{name}"), bytes));
    }

    // FSM scripts, in the byte language of `check_fsm`.
    let fsm: Vec<Seed> = [
        ("establish", vec![0x18, 5, 0, 0, 3, 0, 7, 0x1d, 9, 8, 0]),
        (
            "establish-then-updates",
            vec![
                0x18, 5, 0, 0, 3, 0, 7, 0x3d, 9, 8, 0, 9, 0, 11, 1, 11, 2, 2, 0, 2, 1,
            ],
        ),
        (
            "establish-hold-expiry",
            vec![
                0x18, 5, 0, 0, 3, 0, 7, 0x1d, 9, 8, 0, 12, 255, 2, 0, 2, 0, 2, 0,
            ],
        ),
        (
            "passive-incoming",
            vec![0x1c, 5, 0, 0, 5, 0, 7, 0x3d, 9, 8, 0, 6, 0],
        ),
        (
            "collision-local-wins",
            vec![
                0x18, 200, 0, 0, 5, 0, 3, 0, 7, 0x1d, 9, 7, 0x1d, 9, 8, 0, 8, 1,
            ],
        ),
        (
            "collision-peer-wins",
            vec![
                0x18, 1, 0, 0, 5, 0, 3, 0, 7, 0x1d, 9, 7, 0x1d, 9, 8, 0, 8, 1,
            ],
        ),
        (
            "bad-peer-as",
            vec![0x18, 5, 0, 0, 3, 0, 7, 0x1e, 9, 2, 0, 2, 0],
        ),
        (
            "backoff",
            vec![0x18, 5, 0, 0, 4, 0, 2, 0, 4, 0, 2, 0, 4, 0, 2, 0, 4, 0],
        ),
        (
            "stop-restart",
            vec![0x18, 5, 0, 0, 3, 0, 7, 0x1d, 9, 8, 0, 1, 1, 0, 0, 3, 1],
        ),
        (
            "decode-garbage",
            vec![0x18, 5, 0, 0, 3, 0, 13, 4, 1, 1, 2, 3, 4, 13, 0, 4],
        ),
        ("ibgp-v6-only", vec![0x59, 5, 0, 0, 3, 0, 7, 0x20, 9, 8, 0]),
        (
            "hold-zero",
            vec![0x00, 5, 0, 0, 3, 0, 7, 0x11, 9, 8, 0, 12, 200],
        ),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_string(), b))
    .collect();
    (decode, fsm)
}

#[cfg(test)]
mod tests {
    //! Stable-Rust versions of the fuzz properties, plus structured
    //! round-trip properties on generated messages.

    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::*;

    fn v4net() -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
    }

    fn v6net() -> impl Strategy<Value = IpNet> {
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
    }

    fn as_path() -> impl Strategy<Value = AsPath> {
        vec(
            (
                prop_oneof![
                    Just(SegmentType::AsSet),
                    Just(SegmentType::AsSequence),
                    Just(SegmentType::ConfedSequence),
                    Just(SegmentType::ConfedSet)
                ],
                vec(any::<u32>(), 1..6),
            )
                .prop_map(|(kind, asns)| AsSegment { kind, asns }),
            0..4,
        )
        .prop_map(|segments| AsPath { segments })
    }

    fn attribute() -> impl Strategy<Value = PathAttribute> {
        prop_oneof![
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]
            .prop_map(PathAttribute::Origin),
            as_path().prop_map(PathAttribute::AsPath),
            (1u32..0xe000_0000).prop_map(|a| PathAttribute::NextHop(Ipv4Addr::from(a))),
            any::<u32>().prop_map(PathAttribute::Med),
            any::<u32>().prop_map(PathAttribute::LocalPref),
            Just(PathAttribute::AtomicAggregate),
            (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| PathAttribute::Aggregator(
                Aggregator {
                    asn,
                    address: Ipv4Addr::from(a)
                }
            )),
            vec(any::<u32>(), 1..20).prop_map(PathAttribute::Communities),
            vec(any::<(u32, u32, u32)>(), 1..10).prop_map(|v| PathAttribute::LargeCommunities(
                v.into_iter()
                    .map(|(g, a, b)| LargeCommunity {
                        global_admin: g,
                        local_data1: a,
                        local_data2: b
                    })
                    .collect()
            )),
            (
                any::<u128>(),
                proptest::option::of(any::<u128>()),
                vec(v6net(), 0..20)
            )
                .prop_map(|(g, l, prefixes)| {
                    PathAttribute::MpReach(MpReach {
                        family: Family::Ipv6Unicast,
                        next_hop: NextHop::V6 {
                            global: Ipv6Addr::from(g),
                            link_local: l.map(Ipv6Addr::from),
                        },
                        prefixes,
                    })
                }),
            vec(v6net(), 0..20).prop_map(|prefixes| PathAttribute::MpUnreach(MpUnreach {
                family: Family::Ipv6Unicast,
                prefixes
            })),
            (40u8..=250, any::<bool>(), vec(any::<u8>(), 0..300)).prop_map(
                |(t, partial, value)| {
                    let known = [1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 32];
                    PathAttribute::Raw(RawAttribute {
                        flags: FLAG_OPTIONAL
                            | FLAG_TRANSITIVE
                            | if partial { FLAG_PARTIAL } else { 0 },
                        type_code: if known.contains(&t) { 200 } else { t },
                        value,
                    })
                }
            ),
        ]
    }

    /// A well-formed UPDATE: unique attribute types, mandatory attributes
    /// present whenever something is announced.
    fn update() -> impl Strategy<Value = Update> {
        (
            vec(v4net(), 0..40),
            vec(attribute(), 0..8),
            vec(v4net(), 0..40),
        )
            .prop_map(|(withdrawn, attrs, nlri)| {
                let mut seen = std::collections::HashSet::new();
                let mut attributes: Vec<PathAttribute> = attrs
                    .into_iter()
                    .filter(|a| seen.insert(a.type_code()))
                    .collect();
                let announces = !nlri.is_empty()
                    || attributes
                        .iter()
                        .any(|a| matches!(a, PathAttribute::MpReach(m) if !m.prefixes.is_empty()));
                if announces {
                    for (t, a) in [
                        (1, PathAttribute::Origin(Origin::Igp)),
                        (2, PathAttribute::AsPath(AsPath::default())),
                        (3, PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1))),
                    ] {
                        if !seen.contains(&t) {
                            attributes.push(a);
                        }
                    }
                }
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                }
            })
    }

    fn capability() -> impl Strategy<Value = Capability> {
        prop_oneof![
            (any::<u16>(), any::<u8>())
                .prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
            Just(Capability::RouteRefresh),
            (0u8..16, 0u16..4096, vec(any::<(u16, u8, u8)>(), 0..4)).prop_map(|(f, t, fams)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_flags: f,
                    restart_time: t,
                    families: fams
                        .into_iter()
                        .map(|(afi, safi, flags)| GracefulRestartFamily { afi, safi, flags })
                        .collect(),
                })
            }),
            (100u8..=255, vec(any::<u8>(), 0..20))
                .prop_map(|(code, value)| Capability::Unknown { code, value }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), any::<u16>(), 1u32.., vec(capability(), 0..10)).prop_map(
                |(asn, hold, id, caps)| Message::Open(Open::new(
                    asn,
                    hold,
                    Ipv4Addr::from(id),
                    caps
                ))
            ),
            update().prop_map(Message::Update),
            (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..50))
                .prop_map(|(c, s, d)| Message::Notification(Notification::new(c, s, d))),
            Just(Message::Keepalive),
            (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
                Message::RouteRefresh(RouteRefresh { afi, subtype, safi })
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn generated_messages_round_trip_exactly(m in message()) {
            let opts = CodecOptions::FOUR_OCTET_AS;
            match m.encode(opts) {
                Ok(bytes) => {
                    let back = codec::decode(&bytes, opts).unwrap();
                    let back = match back {
                        Received::Update(UpdateOutcome::Accepted { update, discarded }) => {
                            prop_assert!(discarded.is_empty(), "{discarded:?}");
                            Message::Update(update)
                        }
                        other => other.into_message().unwrap(),
                    };
                    prop_assert_eq!(back, m);
                }
                // Only size limits may refuse a generated message.
                Err(e) => prop_assert!(matches!(e, EncodeError::MessageTooLong { .. } | EncodeError::CapabilityTooLong { .. }), "{e}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_break_the_decoder(data in vec(any::<u8>(), 0..700)) {
            check_decode(&data);
        }

        #[test]
        fn mutated_valid_messages_never_break_the_decoder(
            m in message(),
            flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            two in any::<bool>(),
        ) {
            let opts = CodecOptions { four_octet_as: !two };
            if let Ok(mut bytes) = m.encode(opts) {
                for (i, b) in flips {
                    // Leave the marker and length alone half of the time so the body gets exercised.
                    let i = i.index(bytes.len());
                    if i >= 18 || b & 1 == 0 {
                        bytes[i] ^= b;
                    }
                }
                if cut.index(4) == 0 {
                    let keep = cut.index(bytes.len() + 1);
                    bytes.truncate(keep);
                    if bytes.len() >= 18 {
                        let l = (bytes.len() as u16).to_be_bytes();
                        bytes[16] = l[0];
                        bytes[17] = l[1];
                    }
                }
                let mut data = vec![u8::from(opts.four_octet_as)];
                data.extend_from_slice(&bytes);
                check_decode(&data);
            }
        }

        #[test]
        fn arbitrary_input_sequences_never_break_the_fsm(data in vec(any::<u8>(), 0..400)) {
            check_fsm(&data);
        }
    }

    proptest! {
        // Large inputs: fewer cases keep the suite quick in debug builds.
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        #[test]
        fn the_builder_output_always_decodes_to_its_input(
            announce in vec(prop_oneof![v4net().prop_map(IpNet::V4), v6net()], 0..2000),
            withdraw in vec(prop_oneof![v4net().prop_map(IpNet::V4), v6net()], 0..2000),
            communities in vec(any::<u32>(), 0..50),
            max in 200usize..=4096,
        ) {
            let mut attrs = vec![PathAttribute::Origin(Origin::Igp), PathAttribute::AsPath(AsPath::sequence([64512]))];
            if !communities.is_empty() {
                attrs.push(PathAttribute::Communities(communities));
            }
            let msgs = UpdateBuilder::new(CodecOptions::FOUR_OCTET_AS)
                .attributes(attrs)
                .next_hop_v4(Ipv4Addr::new(192, 0, 2, 1))
                .next_hop_v6(NextHop::v6("2001:db8::1".parse().unwrap()))
                .announce(announce.clone())
                .withdraw(withdraw.clone())
                .max_message_len(max)
                .build_encoded();
            let msgs = match msgs {
                Ok(m) => m,
                Err(EncodeError::AttributesTooLong { .. }) => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            let (mut a, mut w) = (Vec::new(), Vec::new());
            for m in &msgs {
                prop_assert!(m.len() <= max);
                match codec::decode(m, CodecOptions::FOUR_OCTET_AS).unwrap() {
                    Received::Update(UpdateOutcome::Accepted { update, discarded }) => {
                        prop_assert!(discarded.is_empty());
                        a.extend(update.announced());
                        w.extend(update.withdrawn_prefixes());
                    }
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                }
            }
            let sorted = |mut v: Vec<IpNet>| { v.sort(); v };
            prop_assert_eq!(sorted(a), sorted(announce));
            prop_assert_eq!(sorted(w), sorted(withdraw));
        }

    }

    /// A scripted byte sequence reaches Established, so the random driver
    /// above can get there too (and does, see the fuzz corpus).
    #[test]
    fn the_fsm_driver_reaches_established() {
        // Exact peer AS 65001, active, hold 90; ManualStart; TcpConnected on
        // the outgoing id; OPEN from AS 65001, id 10.0.0.9, hold 90, IPv4;
        // KEEPALIVE.
        let script = [0x18u8, 5, 0, 0, 3, 0, 7, 0x1d, 9, 8, 0];
        assert_eq!(check_fsm(&script), State::Established);
        // Without the KEEPALIVE it stops in OpenConfirm.
        assert_eq!(check_fsm(&script[..9]), State::OpenConfirm);
    }

    fn corpus_dir(target: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target)
    }

    /// Regenerates the committed seed corpus:
    /// `cargo test -p ferrolb-bgp --lib write_fuzz_seed_corpus -- --ignored`.
    #[test]
    #[ignore = "writes files into bgp/fuzz/corpus"]
    fn write_fuzz_seed_corpus() {
        let (decode, fsm) = seed_corpus();
        for (target, seeds) in [("decode", decode), ("fsm", fsm)] {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in seeds {
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
            }
        }
    }

    #[test]
    fn seeds_are_valid_and_committed() {
        let (decode, fsm) = seed_corpus();
        assert!(decode.len() >= 30, "{} decode seeds", decode.len());
        for (name, bytes) in &decode {
            // Every decode seed is a well-formed message, so fuzzing starts from deep paths.
            let opts = CodecOptions {
                four_octet_as: bytes[0] == 1,
            };
            let ok = codec::decode(&bytes[1..], opts).is_ok();
            assert!(ok || name.starts_with("malformed-"), "{name}");
            check_decode(bytes);
            let committed =
                std::fs::read(corpus_dir("decode").join(format!("seed-{name}"))).unwrap();
            assert_eq!(&committed, bytes, "{name}: committed seed is stale");
        }
        let mut established = 0;
        for (name, bytes) in &fsm {
            if check_fsm(bytes) == State::Established {
                established += 1;
            }
            let committed = std::fs::read(corpus_dir("fsm").join(format!("seed-{name}"))).unwrap();
            assert_eq!(&committed, bytes, "{name}: committed seed is stale");
        }
        assert!(
            established >= 6,
            "only {established} FSM seeds reach Established"
        );
    }
}
