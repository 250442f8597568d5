//! Interoperability with an independent implementation: `netgauze-bgp-pkt`
//! decodes what we encode, and we decode what it encodes.
//!
//! Each case encodes one of our messages, parses it with netgauze and checks
//! the fields netgauze sees, then has netgauze serialize its own parse and
//! checks that we decode that back to the original message.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::BgpCapability;
use netgauze_bgp_pkt::notification::{BgpNotificationMessage, CeaseError};
use netgauze_bgp_pkt::path_attribute::{MpReach, PathAttributeValue};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::*;

const FOUR: CodecOptions = CodecOptions::FOUR_OCTET_AS;

fn netgauze_parse(bytes: &[u8], asn4: bool) -> BgpMessage {
    let mut ctx =
        BgpParsingContext::new(asn4, HashMap::new(), HashMap::new(), true, true, true, true);
    let mut reader = SliceReader::new(bytes);
    let parsed = BgpMessage::parse(&mut reader, &mut ctx);
    let msg = parsed.unwrap_or_else(|e| panic!("netgauze rejected our bytes {bytes:02x?}: {e:?}"));
    assert_eq!(reader.remaining(), 0, "netgauze left bytes unread");
    msg
}

fn netgauze_write(msg: &BgpMessage) -> Vec<u8> {
    let mut out = Vec::new();
    msg.write(&mut out).unwrap();
    out
}

/// Ours → netgauze → netgauze's bytes → ours, which must equal the original.
fn round_trip_through_netgauze(m: &Message, asn4: bool) -> BgpMessage {
    let opts = CodecOptions {
        four_octet_as: asn4,
    };
    let ours = m.encode(opts).unwrap();
    let theirs = netgauze_parse(&ours, asn4);
    let their_bytes = netgauze_write(&theirs);
    let back = decode(&their_bytes, opts).unwrap().into_message().unwrap();
    assert_eq!(&back, m);
    theirs
}

#[test]
fn open_with_every_capability_we_send() {
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(192, 0, 2, 7),
        vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart {
                restart_flags: GracefulRestart::RESTART_STATE | GracefulRestart::NOTIFICATION,
                restart_time: 300,
                families: vec![
                    GracefulRestartFamily::new(Family::Ipv4Unicast, true),
                    GracefulRestartFamily::new(Family::Ipv6Unicast, false),
                ],
            }),
            Capability::Unknown {
                code: 230,
                value: vec![1, 2, 3],
            },
        ],
    );
    let BgpMessage::Open(theirs) = round_trip_through_netgauze(&Message::Open(open), true) else {
        panic!("not an OPEN")
    };
    assert_eq!(theirs.my_as(), AS_TRANS);
    assert_eq!(theirs.my_asn4(), 4_200_000_001);
    assert_eq!(theirs.hold_time(), 90);
    assert_eq!(theirs.bgp_id(), Ipv4Addr::new(192, 0, 2, 7));
    let caps = theirs.capabilities();
    let families: Vec<AddressType> = caps
        .iter()
        .filter_map(|c| match c {
            BgpCapability::MultiProtocolExtensions(m) => Some(m.address_type()),
            _ => None,
        })
        .collect();
    assert_eq!(
        families,
        vec![AddressType::Ipv4Unicast, AddressType::Ipv6Unicast]
    );
    assert!(
        caps.iter()
            .any(|c| matches!(c, BgpCapability::RouteRefresh))
    );
    let gr = caps
        .iter()
        .find_map(|c| match c {
            BgpCapability::GracefulRestartCapability(g) => Some(g),
            _ => None,
        })
        .unwrap();
    assert!(gr.restart() && gr.graceful_notification());
    assert_eq!(gr.time(), 300);
    assert_eq!(gr.address_families().len(), 2);
    assert!(gr.address_families()[0].forwarding_state());
}

fn prefixes(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn ipv4_update_with_communities() {
    let announce = prefixes(&["198.51.100.7/32", "203.0.113.0/24", "10.0.0.0/8"]);
    let updates = UpdateBuilder::new(FOUR)
        .attributes([
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::sequence([4_200_000_001, 65001])),
            PathAttribute::Med(10),
            PathAttribute::LocalPref(200),
            PathAttribute::Communities(vec![0xfde9_0064, 0xffff_ff01]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local_data1: 7,
                local_data2: 8,
            }]),
        ])
        .next_hop_v4(Ipv4Addr::new(192, 0, 2, 1))
        .announce(announce.clone())
        .withdraw(prefixes(&["192.0.2.128/25"]))
        .build()
        .unwrap();
    assert_eq!(updates.len(), 1);
    let m = Message::Update(updates[0].clone());
    let BgpMessage::Update(theirs) = round_trip_through_netgauze(&m, true) else {
        panic!("not an UPDATE")
    };
    let nlri: Vec<IpNet> = theirs
        .nlri()
        .iter()
        .map(|a| IpNet::V4(a.network().address()))
        .collect();
    assert_eq!(nlri, announce);
    assert_eq!(theirs.withdraw_routes().len(), 1);
    let mut saw = 0;
    for a in theirs.path_attributes() {
        match a.value() {
            PathAttributeValue::NextHop(nh) => {
                assert_eq!(nh.next_hop(), Ipv4Addr::new(192, 0, 2, 1));
                saw += 1;
            }
            PathAttributeValue::Communities(c) => {
                let v: Vec<u32> = c.communities().iter().map(|c| c.value()).collect();
                assert_eq!(v, vec![0xfde9_0064, 0xffff_ff01]);
                saw += 1;
            }
            PathAttributeValue::LargeCommunities(c) => {
                let l = &c.communities()[0];
                assert_eq!(
                    (l.global_admin(), l.local_data1(), l.local_data2()),
                    (4_200_000_001, 7, 8)
                );
                saw += 1;
            }
            _ => {}
        }
    }
    assert_eq!(saw, 3);
}

#[test]
fn ipv4_update_on_a_two_octet_session() {
    let u = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Egp),
            PathAttribute::AsPath(AsPath::sequence([65001, 65002])),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
        ],
        nlri: vec!["10.1.0.0/16".parse().unwrap()],
        ..Update::default()
    };
    round_trip_through_netgauze(&Message::Update(u), false);
}

#[test]
fn ipv6_update_with_link_local_next_hop_and_withdrawals() {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let announce = prefixes(&["2001:db8:100::/48", "2001:db8:200::5/128"]);
    let updates = UpdateBuilder::new(FOUR)
        .attributes([
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::sequence([64512])),
            PathAttribute::Communities(vec![0xfc00_0001]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 64512,
                local_data1: 1,
                local_data2: 2,
            }]),
        ])
        .next_hop_v6(NextHop::V6 {
            global,
            link_local: Some(link_local),
        })
        .announce(announce.clone())
        .withdraw(prefixes(&["2001:db8:300::/64"]))
        .build()
        .unwrap();
    assert_eq!(updates.len(), 2);
    let BgpMessage::Update(theirs) =
        round_trip_through_netgauze(&Message::Update(updates[0].clone()), true)
    else {
        panic!("not an UPDATE")
    };
    let reach = theirs
        .path_attributes()
        .iter()
        .find_map(|a| match a.value() {
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global,
                next_hop_local,
                nlri,
            }) => Some((*next_hop_global, *next_hop_local, nlri.len())),
            _ => None,
        })
        .unwrap();
    assert_eq!(reach, (global, Some(link_local), 2));
    round_trip_through_netgauze(&Message::Update(updates[1].clone()), true);
}

#[test]
fn end_of_rib_markers_are_recognised() {
    for fam in Family::ALL {
        let theirs = round_trip_through_netgauze(&Message::Update(Update::end_of_rib(fam)), true);
        let BgpMessage::Update(u) = theirs else {
            panic!()
        };
        let expected = match fam {
            Family::Ipv4Unicast => AddressType::Ipv4Unicast,
            Family::Ipv6Unicast => AddressType::Ipv6Unicast,
        };
        assert_eq!(u.end_of_rib(), Some(expected));
    }
}

#[test]
fn notification_keepalive_and_route_refresh() {
    let n = Notification::administrative_shutdown("maintenance window");
    let BgpMessage::Notification(theirs) =
        round_trip_through_netgauze(&Message::Notification(n), true)
    else {
        panic!()
    };
    assert!(matches!(
        theirs,
        BgpNotificationMessage::CeaseError(CeaseError::AdministrativeShutdown { .. })
    ));
    assert_eq!(
        round_trip_through_netgauze(&Message::Keepalive, true),
        BgpMessage::KeepAlive
    );
    let BgpMessage::RouteRefresh(rr) = round_trip_through_netgauze(
        &Message::RouteRefresh(RouteRefresh::new(Family::Ipv6Unicast)),
        true,
    ) else {
        panic!()
    };
    assert_eq!(rr.address_type(), AddressType::Ipv6Unicast);
}

#[test]
fn we_decode_messages_netgauze_builds() {
    // Built with netgauze's constructors, not from our encoder.
    let bytes = netgauze_write(&BgpMessage::Notification(
        BgpNotificationMessage::CeaseError(CeaseError::ConnectionCollisionResolution {
            value: Box::new([]),
        }),
    ));
    assert_eq!(
        decode(&bytes, FOUR).unwrap(),
        Received::Notification(Notification::cease(
            notification::cease::CONNECTION_COLLISION_RESOLUTION
        ))
    );
    let bytes = netgauze_write(&BgpMessage::KeepAlive);
    assert_eq!(decode(&bytes, FOUR).unwrap(), Received::Keepalive);
}
