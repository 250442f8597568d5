//! Codec tests on byte strings built by hand from the RFC layouts.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::notification::{code, header, open as open_sub, update as update_sub};
use super::update::raw_attribute;
use super::*;

const FOUR: CodecOptions = CodecOptions::FOUR_OCTET_AS;
const TWO: CodecOptions = CodecOptions {
    four_octet_as: false,
};

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

fn p(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn notification_of(err: DecodeError) -> (u8, u8, Vec<u8>) {
    (
        err.notification.code,
        err.notification.subcode,
        err.notification.data,
    )
}

/// ORIGIN IGP, AS_PATH [65001] (4-octet), NEXT_HOP 192.0.2.1.
fn basic_attrs() -> Vec<u8> {
    let mut a = vec![0x40, 1, 1, 0];
    a.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]);
    a.extend_from_slice(&[0x40, 3, 4, 192, 0, 2, 1]);
    a
}

fn accepted(r: Received) -> (Update, Vec<AttributeError>) {
    match r {
        Received::Update(UpdateOutcome::Accepted { update, discarded }) => (update, discarded),
        other => panic!("expected an accepted UPDATE, got {other:?}"),
    }
}

fn withdrawn(r: Received) -> (Vec<IpNet>, AttributeError) {
    match r {
        Received::Update(UpdateOutcome::TreatAsWithdraw { prefixes, reason }) => (prefixes, reason),
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

#[test]
fn keepalive_is_the_bare_header() {
    let bytes = Message::Keepalive.encode(FOUR).unwrap();
    assert_eq!(bytes, msg(4, &[]));
    assert_eq!(decode(&bytes, FOUR).unwrap(), Received::Keepalive);
}

#[test]
fn open_with_capabilities_matches_rfc_layout() {
    let open = Open::new(
        4_200_000_000,
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart {
                restart_flags: GracefulRestart::RESTART_STATE,
                restart_time: 120,
                families: vec![GracefulRestartFamily::new(Family::Ipv4Unicast, true)],
            }),
        ],
    );
    let bytes = Message::Open(open.clone()).encode(FOUR).unwrap();
    let caps: &[u8] = &[
        1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        2, 0, // route refresh
        64, 6, 0x80, 120, 0, 1, 1, 0x80, // GR: R, 120 s, IPv4 unicast with F
        65, 4, 0xfa, 0x56, 0xea, 0x00, // 4-octet AS 4200000000
    ];
    let mut body = vec![4, 0x5b, 0xa0, 0, 90, 10, 0, 0, 1];
    body.push((caps.len() + 2) as u8);
    body.extend_from_slice(&[2, caps.len() as u8]);
    body.extend_from_slice(caps);
    assert_eq!(bytes, msg(1, &body), "My AS must be AS_TRANS (0x5ba0)");
    let Received::Open(back) = decode(&bytes, FOUR).unwrap() else {
        panic!()
    };
    assert_eq!(back, open);
    assert_eq!(back.asn(), 4_200_000_000);
    assert_eq!(
        back.families(),
        vec![Family::Ipv4Unicast, Family::Ipv6Unicast]
    );
    assert!(back.graceful_restart().unwrap().restarting());
}

#[test]
fn open_tolerates_unknown_capabilities_and_parameters_split_in_several() {
    // Two capability parameters, one carrying an unknown code 73 (FQDN).
    let body = [
        4, 0xfd, 0xe8, 0, 180, 1, 2, 3, 4, 12, //
        2, 4, 73, 2, 0xaa, 0xbb, //
        2, 6, 1, 4, 0, 2, 0, 1,
    ];
    let mut b = body.to_vec();
    b[9] = 14;
    let Received::Open(o) = decode(&msg(1, &b), FOUR).unwrap() else {
        panic!()
    };
    assert_eq!(o.asn(), 65000);
    assert_eq!(
        o.capabilities[0],
        Capability::Unknown {
            code: 73,
            value: vec![0xaa, 0xbb]
        }
    );
    assert_eq!(o.families(), vec![Family::Ipv6Unicast]);
    assert!(!o.route_refresh());
}

#[test]
fn open_errors_map_to_rfc_4271_subcodes() {
    // Version 3.
    let e = decode(&msg(1, &[3, 0, 1, 0, 90, 1, 1, 1, 1, 0]), FOUR).unwrap_err();
    assert_eq!(
        notification_of(e),
        (code::OPEN, open_sub::UNSUPPORTED_VERSION, vec![0, 4])
    );
    // Optional parameter type 1 (authentication, deprecated).
    let e = decode(&msg(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 1, 1, 0]), FOUR).unwrap_err();
    assert_eq!(
        e.notification.subcode,
        open_sub::UNSUPPORTED_OPTIONAL_PARAMETER
    );
    // Opt Parm Len larger than what follows.
    let e = decode(&msg(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 9, 2, 0]), FOUR).unwrap_err();
    assert_eq!(
        notification_of(e),
        (code::OPEN, open_sub::UNSPECIFIC, vec![])
    );
    // Malformed 4-octet AS capability (length 2).
    let e = decode(
        &msg(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 6, 2, 4, 65, 2, 0, 1]),
        FOUR,
    )
    .unwrap_err();
    assert_eq!(e.notification.subcode, open_sub::UNSPECIFIC);
    // Semantic checks.
    let mut o = Open::new(65001, 2, Ipv4Addr::new(1, 1, 1, 1), vec![]);
    assert_eq!(
        o.validate(Ipv4Addr::new(2, 2, 2, 2), false)
            .unwrap_err()
            .notification
            .subcode,
        open_sub::UNACCEPTABLE_HOLD_TIME
    );
    o.hold_time = 0;
    assert!(o.validate(Ipv4Addr::new(2, 2, 2, 2), false).is_ok());
    assert_eq!(
        o.validate(Ipv4Addr::new(1, 1, 1, 1), true)
            .unwrap_err()
            .notification
            .subcode,
        open_sub::BAD_BGP_IDENTIFIER
    );
    o.bgp_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        o.validate(Ipv4Addr::new(1, 1, 1, 1), false)
            .unwrap_err()
            .notification
            .subcode,
        open_sub::BAD_BGP_IDENTIFIER
    );
}

#[test]
fn open_with_rfc_9072_extended_parameters_decodes() {
    let caps = [65u8, 4, 0, 0, 0xfd, 0xe9];
    let mut body = vec![4, 0xfd, 0xe9, 0, 90, 1, 1, 1, 1, 255, 255];
    body.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
    body.push(2);
    body.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    body.extend_from_slice(&caps);
    let Received::Open(o) = decode(&msg(1, &body), FOUR).unwrap() else {
        panic!()
    };
    assert_eq!(o.asn(), 65001);
    // And we produce that format only when capabilities exceed 255 octets.
    let many: Vec<Capability> = (0..100u8)
        .map(|i| Capability::Unknown {
            code: 200,
            value: vec![i],
        })
        .collect();
    let big = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), many);
    let bytes = Message::Open(big.clone()).encode(FOUR).unwrap();
    assert_eq!(bytes[19 + 9], 255);
    assert_eq!(decode(&bytes, FOUR).unwrap(), Received::Open(big));
}

#[test]
fn header_errors_carry_the_offending_field() {
    let mut bad_marker = msg(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        notification_of(decode(&bad_marker, FOUR).unwrap_err()),
        (
            code::MESSAGE_HEADER,
            header::CONNECTION_NOT_SYNCHRONIZED,
            vec![]
        )
    );
    let mut long = msg(4, &[]);
    long[16] = 0x10;
    long[17] = 0x01; // 4097
    assert_eq!(
        notification_of(peek_header(&long).unwrap_err()),
        (
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            vec![0x10, 0x01]
        )
    );
    // KEEPALIVE with a body.
    assert_eq!(
        notification_of(decode(&msg(4, &[0]), FOUR).unwrap_err()),
        (
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            vec![0, 20]
        )
    );
    assert_eq!(
        notification_of(decode(&msg(9, &[]), FOUR).unwrap_err()),
        (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE, vec![9])
    );
    assert_eq!(peek_header(&[0xff; 18]).unwrap(), None);
    assert_eq!(
        peek_header(&msg(2, &[0, 0, 0, 0])).unwrap(),
        Some(Header {
            length: 23,
            message_type: MessageType::Update
        })
    );
}

#[test]
fn notification_and_route_refresh_round_trip() {
    let n = Notification::new(code::CEASE, 2, vec![3, b'b', b'y', b'e']);
    let bytes = Message::Notification(n.clone()).encode(FOUR).unwrap();
    assert_eq!(bytes, msg(3, &[6, 2, 3, b'b', b'y', b'e']));
    assert_eq!(decode(&bytes, FOUR).unwrap(), Received::Notification(n));
    let rr = RouteRefresh::new(Family::Ipv6Unicast);
    let bytes = Message::RouteRefresh(rr).encode(FOUR).unwrap();
    assert_eq!(bytes, msg(5, &[0, 2, 0, 1]));
    assert_eq!(decode(&bytes, FOUR).unwrap(), Received::RouteRefresh(rr));
}

#[test]
fn ipv4_update_with_communities_matches_rfc_layout() {
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&[0xc0, 8, 4, 0xfd, 0xe9, 0, 100]); // 65001:100
    attrs.extend_from_slice(&[0xc0, 32, 12, 0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2]);
    let bytes = msg(
        2,
        &update_body(
            &[32, 203, 0, 113, 9],
            &attrs,
            &[32, 198, 51, 100, 7, 24, 10, 1, 2],
        ),
    );
    let (u, discarded) = accepted(decode(&bytes, FOUR).unwrap());
    assert!(discarded.is_empty());
    assert_eq!(u.withdrawn, vec!["203.0.113.9/32".parse().unwrap()]);
    assert_eq!(u.announced(), vec![p("198.51.100.7/32"), p("10.1.2.0/24")]);
    assert_eq!(
        u.attribute(type_code::COMMUNITIES),
        Some(&PathAttribute::Communities(vec![0xfde9_0064]))
    );
    assert_eq!(
        u.attribute(type_code::LARGE_COMMUNITIES),
        Some(&PathAttribute::LargeCommunities(vec![LargeCommunity {
            global_admin: 65001,
            local_data1: 1,
            local_data2: 2
        }]))
    );
    // Our encoder produces exactly these bytes back.
    assert_eq!(Message::Update(u).encode(FOUR).unwrap(), bytes);
}

#[test]
fn as_path_uses_two_octet_asns_without_the_capability() {
    let path = PathAttribute::AsPath(AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentType::AsSequence,
                asns: vec![65001, 4_200_000_000],
            },
            AsSegment {
                kind: SegmentType::AsSet,
                asns: vec![1, 2],
            },
        ],
    });
    let mut two = Vec::new();
    path.encode(false, &mut two).unwrap();
    assert_eq!(
        two,
        [0x40, 2, 12, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0, 1, 2, 0, 1, 0, 2]
    );
    let mut four = Vec::new();
    path.encode(true, &mut four).unwrap();
    assert_eq!(four.len(), 3 + 2 + 8 + 2 + 8);
    let update = Update {
        attributes: vec![PathAttribute::Origin(Origin::Igp), path.clone()],
        ..Update::default()
    };
    let (u, _) =
        accepted(decode(&Message::Update(update.clone()).encode(FOUR).unwrap(), FOUR).unwrap());
    assert_eq!(u, update);
}

#[test]
fn ipv6_update_uses_mp_reach_with_16_or_32_octet_next_hops() {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    for (nh, nh_len) in [
        (NextHop::v6(global), 16u8),
        (
            NextHop::V6 {
                global,
                link_local: Some(ll),
            },
            32,
        ),
    ] {
        let update = Update {
            attributes: vec![
                PathAttribute::MpReach(MpReach {
                    family: Family::Ipv6Unicast,
                    next_hop: nh,
                    prefixes: vec![p("2001:db8:1::/48"), p("2001:db8:2::1/128")],
                }),
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::AsPath(AsPath::default()),
                PathAttribute::LocalPref(100),
            ],
            ..Update::default()
        };
        let bytes = Message::Update(update.clone()).encode(FOUR).unwrap();
        // Attribute list starts right after the empty withdrawn field.
        let mp = &bytes[23..];
        assert_eq!(&mp[..7], &[0x80, 14, 5 + nh_len + 7 + 17, 0, 2, 1, nh_len]);
        let (u, _) = accepted(decode(&bytes, FOUR).unwrap());
        assert_eq!(u, update);
        assert_eq!(u.announced().len(), 2);
    }
}

#[test]
fn end_of_rib_markers() {
    let v4 = Message::Update(Update::end_of_rib(Family::Ipv4Unicast))
        .encode(FOUR)
        .unwrap();
    assert_eq!(v4, msg(2, &[0, 0, 0, 0]));
    let v6 = Message::Update(Update::end_of_rib(Family::Ipv6Unicast))
        .encode(FOUR)
        .unwrap();
    assert_eq!(v6, msg(2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]));
    for (bytes, fam) in [(v4, Family::Ipv4Unicast), (v6, Family::Ipv6Unicast)] {
        let (u, _) = accepted(decode(&bytes, FOUR).unwrap());
        assert_eq!(u.is_end_of_rib(), Some(fam));
    }
}

#[test]
fn update_length_errors_reset_the_session() {
    // Withdrawn length beyond the message.
    let e = decode(&msg(2, &[0, 9, 0, 0]), FOUR).unwrap_err();
    assert_eq!(
        notification_of(e),
        (code::UPDATE, update_sub::MALFORMED_ATTRIBUTE_LIST, vec![])
    );
    // Total attribute length beyond the message.
    let e = decode(&msg(2, &[0, 0, 0, 9]), FOUR).unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::MALFORMED_ATTRIBUTE_LIST);
    // NLRI prefix length 33.
    let e = decode(
        &msg(2, &update_body(&[], &basic_attrs(), &[33, 1, 1, 1, 1, 1])),
        FOUR,
    )
    .unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::INVALID_NETWORK_FIELD);
    // Withdrawn prefix running past its field.
    let e = decode(&msg(2, &update_body(&[24, 10], &[], &[])), FOUR).unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::INVALID_NETWORK_FIELD);
}

#[test]
fn rfc_7606_treat_as_withdraw_cases() {
    let nlri = [24, 10, 1, 2];
    let cases: Vec<(Vec<u8>, u8)> = vec![
        // ORIGIN 5.
        (raw_attribute(0x40, 1, &[5]), update_sub::INVALID_ORIGIN),
        // ORIGIN flagged optional.
        (
            raw_attribute(0xc0, 1, &[0]),
            update_sub::ATTRIBUTE_FLAGS_ERROR,
        ),
        // NEXT_HOP of 3 octets.
        (
            raw_attribute(0x40, 3, &[1, 2, 3]),
            update_sub::ATTRIBUTE_LENGTH_ERROR,
        ),
        // NEXT_HOP 0.0.0.0.
        (
            raw_attribute(0x40, 3, &[0, 0, 0, 0]),
            update_sub::INVALID_NEXT_HOP,
        ),
        // AS_PATH segment type 9.
        (
            raw_attribute(0x40, 2, &[9, 1, 0, 0, 0, 1]),
            update_sub::MALFORMED_AS_PATH,
        ),
        // AS_PATH empty segment.
        (
            raw_attribute(0x40, 2, &[2, 0]),
            update_sub::MALFORMED_AS_PATH,
        ),
        // COMMUNITIES of 5 octets.
        (
            raw_attribute(0xc0, 8, &[0, 0, 0, 1, 2]),
            update_sub::OPTIONAL_ATTRIBUTE_ERROR,
        ),
        // LARGE_COMMUNITY of 8 octets.
        (
            raw_attribute(0xc0, 32, &[0; 8]),
            update_sub::OPTIONAL_ATTRIBUTE_ERROR,
        ),
        // MED of 2 octets.
        (
            raw_attribute(0x80, 4, &[0, 1]),
            update_sub::ATTRIBUTE_LENGTH_ERROR,
        ),
    ];
    for (bad, subcode) in cases {
        // The bad attribute replaces a good one of the same type or is added.
        let bad_type = bad[1];
        let mut attrs: Vec<u8> = Vec::new();
        let good = basic_attrs();
        let mut i = 0;
        while i < good.len() {
            let len = usize::from(good[i + 2]) + 3;
            if good[i + 1] != bad_type {
                attrs.extend_from_slice(&good[i..i + len]);
            }
            i += len;
        }
        attrs.extend_from_slice(&bad);
        let (prefixes, reason) =
            withdrawn(decode(&msg(2, &update_body(&[8, 20], &attrs, &nlri)), FOUR).unwrap());
        assert_eq!(reason.notification.subcode, subcode, "{bad:?}");
        assert_eq!(reason.type_code, bad_type);
        assert_eq!(prefixes, vec![p("20.0.0.0/8"), p("10.1.2.0/24")]);
    }
}

#[test]
fn missing_mandatory_attribute_is_treat_as_withdraw_only_with_nlri() {
    let only_origin = raw_attribute(0x40, 1, &[0]);
    let (prefixes, reason) =
        withdrawn(decode(&msg(2, &update_body(&[], &only_origin, &[8, 10])), FOUR).unwrap());
    assert_eq!(
        reason.notification.subcode,
        update_sub::MISSING_WELL_KNOWN_ATTRIBUTE
    );
    assert_eq!(reason.notification.data, vec![type_code::AS_PATH]);
    assert_eq!(prefixes, vec![p("10.0.0.0/8")]);
    // Pure withdrawal: nothing is required.
    let (u, _) = accepted(decode(&msg(2, &update_body(&[8, 10], &[], &[])), FOUR).unwrap());
    assert_eq!(u.withdrawn_prefixes(), vec![p("10.0.0.0/8")]);
}

#[test]
fn attribute_overrunning_the_list_is_treat_as_withdraw() {
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&[0xc0, 8, 200, 0, 0]);
    let (prefixes, reason) =
        withdrawn(decode(&msg(2, &update_body(&[], &attrs, &[8, 10])), FOUR).unwrap());
    assert_eq!(
        reason.notification.subcode,
        update_sub::MALFORMED_ATTRIBUTE_LIST
    );
    assert_eq!(prefixes, vec![p("10.0.0.0/8")]);
}

#[test]
fn discard_cases_keep_the_routes() {
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&raw_attribute(0x40, 6, &[1])); // ATOMIC_AGGREGATE with a value
    attrs.extend_from_slice(&raw_attribute(0xc0, 7, &[1, 2, 3])); // AGGREGATOR too short
    attrs.extend_from_slice(&raw_attribute(0x40, 1, &[2])); // repeated ORIGIN
    attrs.extend_from_slice(&raw_attribute(0x80, 99, &[1, 2])); // unknown non-transitive: ignored
    attrs.extend_from_slice(&raw_attribute(0xe0, 100, &[7])); // unknown transitive, partial: kept
    let (u, discarded) =
        accepted(decode(&msg(2, &update_body(&[], &attrs, &[8, 10])), FOUR).unwrap());
    assert_eq!(
        discarded.iter().map(|d| d.type_code).collect::<Vec<_>>(),
        vec![6, 7, 1]
    );
    assert_eq!(u.attribute(1), Some(&PathAttribute::Origin(Origin::Igp)));
    assert_eq!(u.attribute(99), None);
    assert_eq!(
        u.attribute(100),
        Some(&PathAttribute::Raw(RawAttribute {
            flags: 0xe0,
            type_code: 100,
            value: vec![7]
        }))
    );
    assert_eq!(u.announced(), vec![p("10.0.0.0/8")]);
}

#[test]
fn session_reset_cases() {
    let nlri = [8, 10];
    // Unrecognized well-known attribute: data is the attribute.
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&raw_attribute(0x40, 99, &[1]));
    let e = decode(&msg(2, &update_body(&[], &attrs, &nlri)), FOUR).unwrap_err();
    assert_eq!(
        notification_of(e),
        (
            code::UPDATE,
            update_sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            vec![0x40, 99, 1, 1]
        )
    );
    // MP_REACH_NLRI twice.
    let mp = raw_attribute(
        0x80,
        14,
        &[
            0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ],
    );
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&mp);
    attrs.extend_from_slice(&mp);
    let e = decode(&msg(2, &update_body(&[], &attrs, &[])), FOUR).unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::MALFORMED_ATTRIBUTE_LIST);
    // MP_REACH_NLRI next hop length beyond the attribute.
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&raw_attribute(0x80, 14, &[0, 2, 1, 40, 1, 2]));
    let e = decode(&msg(2, &update_body(&[], &attrs, &[])), FOUR).unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::OPTIONAL_ATTRIBUTE_ERROR);
    // MP_UNREACH_NLRI prefix length 129.
    let e = decode(
        &msg(
            2,
            &update_body(&[], &raw_attribute(0x80, 15, &[0, 2, 1, 129]), &[]),
        ),
        FOUR,
    )
    .unwrap_err();
    assert_eq!(e.notification.subcode, update_sub::INVALID_NETWORK_FIELD);
}

#[test]
fn mp_reach_with_a_bad_next_hop_length_withdraws_its_prefixes() {
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&raw_attribute(
        0x80,
        14,
        &[0, 2, 1, 4, 1, 2, 3, 4, 0, 32, 0x20, 1, 0x0d, 0xb8],
    ));
    let (prefixes, reason) =
        withdrawn(decode(&msg(2, &update_body(&[], &attrs, &[])), FOUR).unwrap());
    assert_eq!(reason.type_code, type_code::MP_REACH_NLRI);
    // The MP_REACH prefixes were not decoded, so only what is located is listed.
    assert!(prefixes.is_empty());
}

#[test]
fn mp_for_unknown_families_is_ignored() {
    let mut attrs = basic_attrs();
    attrs.extend_from_slice(&raw_attribute(
        0x80,
        14,
        &[0, 1, 128, 4, 1, 2, 3, 4, 0, 1, 2, 3],
    ));
    attrs.extend_from_slice(&raw_attribute(0x80, 15, &[0, 25, 70, 1, 2, 3]));
    let (u, _) = accepted(decode(&msg(2, &update_body(&[], &attrs, &[8, 10])), FOUR).unwrap());
    assert_eq!(u.attributes.len(), 3);
}

#[test]
fn two_octet_sessions_decode_two_octet_as_paths() {
    let attrs = [
        0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 0xfd, 0xe9, 0x40, 3, 4, 1, 2, 3, 4,
    ];
    let (u, _) = accepted(decode(&msg(2, &update_body(&[], &attrs, &[8, 10])), TWO).unwrap());
    assert_eq!(
        u.attribute(2),
        Some(&PathAttribute::AsPath(AsPath::sequence([65001])))
    );
    // The same bytes on a 4-octet session are a malformed AS_PATH.
    let (_, reason) =
        withdrawn(decode(&msg(2, &update_body(&[], &attrs, &[8, 10])), FOUR).unwrap());
    assert_eq!(reason.notification.subcode, update_sub::MALFORMED_AS_PATH);
}

#[test]
fn encoder_refuses_oversized_messages_and_mismatched_families() {
    let update = Update {
        nlri: (0..2000u32)
            .map(|i| ipnet::Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap())
            .collect(),
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(update).encode(FOUR),
        Err(EncodeError::MessageTooLong { .. })
    ));
    let bad = Update {
        attributes: vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::Ipv6Unicast,
            prefixes: vec![p("10.0.0.0/8")],
        })],
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(bad).encode(FOUR),
        Err(EncodeError::PrefixFamilyMismatch { .. })
    ));
}

mod builder {
    use super::*;

    fn base() -> Vec<PathAttribute> {
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::sequence([64512])),
            PathAttribute::Communities(vec![0xfc00_0001]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 64512,
                local_data1: 1,
                local_data2: 2,
            }]),
        ]
    }

    fn v4_hosts(n: u32) -> Vec<IpNet> {
        (0..n)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()))
            .collect()
    }

    fn v6_hosts(n: u32) -> Vec<IpNet> {
        (0..n)
            .map(|i| {
                IpNet::V6(
                    ipnet::Ipv6Net::new(
                        Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)),
                        128,
                    )
                    .unwrap(),
                )
            })
            .collect()
    }

    /// Decodes every message and checks the size limit.
    fn decode_all(msgs: &[Vec<u8>], max: usize) -> (Vec<IpNet>, Vec<IpNet>) {
        let (mut ann, mut wd) = (Vec::new(), Vec::new());
        for m in msgs {
            assert!(m.len() <= max, "{} > {max}", m.len());
            let (u, d) = accepted(decode(m, FOUR).unwrap());
            assert!(d.is_empty());
            ann.extend(u.announced());
            wd.extend(u.withdrawn_prefixes());
        }
        (ann, wd)
    }

    #[test]
    fn packs_10k_ipv4_hosts_into_the_fewest_full_messages() {
        let prefixes = v4_hosts(10_000);
        let msgs = UpdateBuilder::new(FOUR)
            .attributes(base())
            .next_hop_v4(Ipv4Addr::new(192, 0, 2, 1))
            .announce(prefixes.clone())
            .build_encoded()
            .unwrap();
        let (ann, wd) = decode_all(&msgs, 4096);
        assert_eq!(ann, prefixes);
        assert!(wd.is_empty());
        // Each /32 takes 5 octets; the attributes take 4+7+7+7+15 = 40 octets.
        let per_msg = (4096 - 23 - 40) / 5;
        assert_eq!(msgs.len(), 10_000usize.div_ceil(per_msg));
        assert!(msgs[..msgs.len() - 1].iter().all(|m| m.len() > 4096 - 5));
    }

    #[test]
    fn mixes_families_and_fills_withdrawals_into_spare_room() {
        let v4 = v4_hosts(900);
        let v6 = v6_hosts(700);
        let wd4 = v4_hosts(2000)[1000..].to_vec();
        let wd6 = v6_hosts(1000)[700..].to_vec();
        let updates = UpdateBuilder::new(FOUR)
            .attributes(base())
            .next_hop_v4(Ipv4Addr::new(192, 0, 2, 1))
            .next_hop_v6(NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            })
            .announce(v4.iter().chain(&v6).copied())
            .withdraw(wd4.iter().chain(&wd6).copied())
            .build()
            .unwrap();
        // The second IPv4 announcement also carries withdrawals.
        assert!(!updates[1].nlri.is_empty() && !updates[1].withdrawn.is_empty());
        let msgs: Vec<Vec<u8>> = updates
            .into_iter()
            .map(|u| Message::Update(u).encode(FOUR).unwrap())
            .collect();
        let (ann, wd) = decode_all(&msgs, 4096);
        assert_eq!(ann, v4.iter().chain(&v6).copied().collect::<Vec<_>>());
        assert_eq!(wd.len(), wd4.len() + wd6.len());
        // Total octets / usable room bounds the count from below.
        let total: usize = msgs.iter().map(Vec::len).sum();
        assert!(
            msgs.len() <= total.div_ceil(4096 - 100) + 1,
            "{} messages for {total} octets",
            msgs.len()
        );
    }

    #[test]
    fn small_limits_are_honoured_and_nothing_is_lost() {
        for max in [100usize, 257, 300, 1000] {
            let ann: Vec<IpNet> = v4_hosts(50).into_iter().chain(v6_hosts(50)).collect();
            let wd: Vec<IpNet> = v4_hosts(120)[60..]
                .iter()
                .copied()
                .chain(v6_hosts(120)[60..].iter().copied())
                .collect();
            let msgs = UpdateBuilder::new(FOUR)
                .attributes([
                    PathAttribute::Origin(Origin::Igp),
                    PathAttribute::AsPath(AsPath::default()),
                ])
                .next_hop_v4(Ipv4Addr::new(192, 0, 2, 1))
                .next_hop_v6(NextHop::v6("2001:db8::1".parse().unwrap()))
                .announce(ann.clone())
                .withdraw(wd.clone())
                .max_message_len(max)
                .build_encoded()
                .unwrap();
            let (a, w) = decode_all(&msgs, max);
            assert_eq!(a, ann, "max {max}");
            let mut w = w;
            w.sort();
            let mut wd = wd;
            wd.sort();
            assert_eq!(w, wd, "max {max}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_build() {
        let b = UpdateBuilder::new(FOUR).attributes(base());
        assert_eq!(
            b.clone().announce(v4_hosts(1)).build().unwrap_err(),
            EncodeError::MissingNextHop(Family::Ipv4Unicast)
        );
        assert_eq!(
            b.clone().announce(v6_hosts(1)).build().unwrap_err(),
            EncodeError::MissingNextHop(Family::Ipv6Unicast)
        );
        assert_eq!(
            b.clone()
                .attributes([PathAttribute::NextHop(Ipv4Addr::LOCALHOST)])
                .build()
                .unwrap_err(),
            EncodeError::ManagedAttribute(3)
        );
        let huge = PathAttribute::Communities((0..1100).collect());
        assert!(matches!(
            UpdateBuilder::new(FOUR)
                .attributes([huge])
                .next_hop_v4(Ipv4Addr::LOCALHOST)
                .announce(v4_hosts(1))
                .build(),
            Err(EncodeError::AttributesTooLong { .. })
        ));
        // Nothing to do: no messages.
        assert!(b.build().unwrap().is_empty());
    }
}
