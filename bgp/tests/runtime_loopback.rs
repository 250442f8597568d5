//! The peer runtime against a scripted BGP peer on 127.0.0.1 that uses our
//! codec: session setup, full table with End-of-RIB, incremental changes,
//! route refresh and shutdown.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::codec::{
    self, Capability, CodecOptions, Family, Message, Notification, Open, PathAttribute, Received,
    RouteRefresh, UpdateOutcome, notification::cease,
};
use ferrolb_bgp::fsm::{PeerAsn, SessionConfig, State};
use ferrolb_bgp::runtime::{PeerConfig, PeerHandle, RouteAttributes, RouteMap};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(20);

async fn read_msg(s: &mut TcpStream) -> Received {
    let mut buf = vec![0u8; 19];
    timeout(DEADLINE, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let h = codec::peek_header(&buf).unwrap().unwrap();
    buf.resize(h.length, 0);
    timeout(DEADLINE, s.read_exact(&mut buf[19..]))
        .await
        .unwrap()
        .unwrap();
    codec::decode(&buf, CodecOptions::FOUR_OCTET_AS).unwrap()
}

async fn send(s: &mut TcpStream, m: Message) {
    s.write_all(&m.encode(CodecOptions::FOUR_OCTET_AS).unwrap())
        .await
        .unwrap();
}

/// Reads UPDATEs (skipping KEEPALIVEs) until End-of-RIB has been seen for
/// `eor` families, or until the announced/withdrawn sets reach the
/// expected sizes; returns (announced, withdrawn, eor families).
async fn read_updates(
    s: &mut TcpStream,
    want_announced: usize,
    want_withdrawn: usize,
    want_eor: usize,
) -> (
    BTreeSet<IpNet>,
    BTreeSet<IpNet>,
    Vec<Family>,
    Vec<Vec<PathAttribute>>,
) {
    let (mut ann, mut wd, mut eor, mut attrs) =
        (BTreeSet::new(), BTreeSet::new(), Vec::new(), Vec::new());
    while ann.len() < want_announced || wd.len() < want_withdrawn || eor.len() < want_eor {
        match read_msg(s).await {
            Received::Update(UpdateOutcome::Accepted { update, discarded }) => {
                assert!(discarded.is_empty());
                if let Some(f) = update.is_end_of_rib() {
                    eor.push(f);
                    continue;
                }
                ann.extend(update.announced());
                wd.extend(update.withdrawn_prefixes());
                attrs.push(update.attributes.clone());
            }
            Received::Keepalive => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (ann, wd, eor, attrs)
}

/// The router's side of session setup without capabilities (IPv4 unicast only): our
/// OPEN is read, the router's OPEN and a KEEPALIVE are sent, our KEEPALIVE is read.
async fn establish(s: &mut TcpStream) {
    let Received::Open(_) = read_msg(s).await else {
        panic!("no OPEN")
    };
    send(
        s,
        Message::Open(Open::new(64512, 90, Ipv4Addr::new(127, 0, 0, 2), vec![])),
    )
    .await;
    send(s, Message::Keepalive).await;
    assert_eq!(read_msg(s).await, Received::Keepalive);
}

/// An eBGP peer task towards `remote` carrying IPv4 only, with a fixed next hop.
fn ipv4_peer(remote: SocketAddr) -> PeerHandle {
    let mut session = SessionConfig::new(64513, Ipv4Addr::new(127, 0, 0, 1), PeerAsn::External);
    session.families = vec![Family::Ipv4Unicast];
    PeerHandle::spawn(PeerConfig {
        remote,
        local_address: None,
        session,
        md5_password: None,
        ttl: None,
        next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        next_hop_v6: None,
    })
}

fn hosts(n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| IpNet::from(std::net::IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + i))))
        .collect()
}

#[tokio::test]
async fn announces_diffs_refreshes_and_shuts_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote: SocketAddr = listener.local_addr().unwrap();
    let mut session = SessionConfig::new(64513, Ipv4Addr::new(127, 0, 0, 1), PeerAsn::Exact(64512));
    session.hold_time = 30;
    let peer = PeerHandle::spawn(PeerConfig {
        remote,
        local_address: None,
        session,
        md5_password: None,
        ttl: None,
        next_hop_v4: None,
        next_hop_v6: Some("2001:db8::1".parse().unwrap()),
    });
    let attrs = Arc::new(RouteAttributes {
        communities: vec![64512 << 16 | 100],
        ..RouteAttributes::default()
    });
    let mut first: RouteMap = hosts(2000)
        .into_iter()
        .map(|p| (p, attrs.clone()))
        .collect();
    first.insert("2001:db8:99::/64".parse().unwrap(), attrs.clone());
    peer.set_routes(first.clone());

    let (mut s, _) = timeout(DEADLINE, listener.accept()).await.unwrap().unwrap();
    let Received::Open(theirs) = read_msg(&mut s).await else {
        panic!("no OPEN")
    };
    assert_eq!(theirs.asn(), 64513);
    assert_eq!(theirs.hold_time, 30);
    let ours = Open::new(
        64512,
        90,
        Ipv4Addr::new(127, 0, 0, 2),
        vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
        ],
    );
    send(&mut s, Message::Open(ours)).await;
    send(&mut s, Message::Keepalive).await;
    assert_eq!(read_msg(&mut s).await, Received::Keepalive);

    // Full table, packed, then End-of-RIB for both families.
    let (ann, wd, eor, attr_sets) = read_updates(&mut s, 2001, 0, 2).await;
    assert_eq!(ann, first.keys().copied().collect());
    assert!(wd.is_empty());
    assert_eq!(eor.len(), 2);
    assert!(
        attr_sets.len() <= 4,
        "2001 routes should take 3 IPv4 UPDATEs + 1 IPv6, got {}",
        attr_sets.len()
    );
    for set in &attr_sets {
        assert!(
            set.contains(&PathAttribute::AsPath(codec::AsPath::sequence([64513]))),
            "eBGP prepends our ASN"
        );
        assert!(set.contains(&PathAttribute::Communities(vec![64512 << 16 | 100])));
        assert!(
            !set.iter().any(|a| matches!(a, PathAttribute::LocalPref(_))),
            "no LOCAL_PREF on eBGP"
        );
    }
    let mut status = peer.status();
    timeout(
        DEADLINE,
        status.wait_for(|s| s.state == State::Established && s.advertised == 2001),
    )
    .await
    .unwrap()
    .unwrap();

    // Remove 500, change attributes of 10: only the difference is sent.
    let mut second = first.clone();
    for p in &hosts(2000)[..500] {
        second.remove(p);
    }
    let other = Arc::new(RouteAttributes {
        med: Some(5),
        ..RouteAttributes::default()
    });
    for p in &hosts(2000)[1000..1010] {
        second.insert(*p, other.clone());
    }
    peer.set_routes(second);
    let (ann, wd, _, _) = read_updates(&mut s, 10, 500, 0).await;
    assert_eq!(ann, hosts(2000)[1000..1010].iter().copied().collect());
    assert_eq!(wd, hosts(2000)[..500].iter().copied().collect());

    // Changes by prefix: a withdrawal, an addition and a prefix re-stated unchanged; only
    // the first two are sent (an unchanged one would ride in the addition's UPDATE).
    let added: IpNet = "10.98.0.1/32".parse().unwrap();
    peer.update_routes([
        (hosts(2000)[500], None),
        (hosts(2000)[501], Some(attrs.clone())),
        (added, Some(attrs.clone())),
    ]);
    let (ann, wd, _, _) = read_updates(&mut s, 1, 1, 0).await;
    assert_eq!(ann, [added].into());
    assert_eq!(wd, [hosts(2000)[500]].into());
    timeout(DEADLINE, status.wait_for(|s| s.advertised == 2001 - 500))
        .await
        .unwrap()
        .unwrap();

    // Route refresh for IPv6: the IPv6 route again, then End-of-RIB.
    send(
        &mut s,
        Message::RouteRefresh(RouteRefresh::new(Family::Ipv6Unicast)),
    )
    .await;
    let (ann, _, eor, _) = read_updates(&mut s, 1, 0, 1).await;
    assert_eq!(ann, ["2001:db8:99::/64".parse().unwrap()].into());
    assert_eq!(eor, vec![Family::Ipv6Unicast]);

    // Shutdown: Cease/Administrative Shutdown with the reason.
    let stop = tokio::spawn(peer.shutdown("test over"));
    loop {
        match read_msg(&mut s).await {
            Received::Keepalive => continue,
            Received::Notification(n) => {
                assert_eq!((n.code, n.subcode), (6, cease::ADMINISTRATIVE_SHUTDOWN));
                assert_eq!(n.shutdown_communication(), Some("test over"));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    timeout(DEADLINE, stop).await.unwrap().unwrap();
}

#[tokio::test]
async fn reconnects_after_the_peer_resets_and_resends_everything() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = listener.local_addr().unwrap();
    let peer = ipv4_peer(remote);
    let routes: RouteMap = hosts(10)
        .into_iter()
        .map(|p| (p, Arc::new(RouteAttributes::default())))
        .collect();
    peer.set_routes(routes.clone());
    for round in 0..2 {
        let (mut s, _) = timeout(DEADLINE, listener.accept()).await.unwrap().unwrap();
        let Received::Open(_) = read_msg(&mut s).await else {
            panic!()
        };
        send(
            &mut s,
            Message::Open(Open::new(64512, 90, Ipv4Addr::new(127, 0, 0, 2), vec![])),
        )
        .await;
        send(&mut s, Message::Keepalive).await;
        assert_eq!(read_msg(&mut s).await, Received::Keepalive);
        let (ann, _, eor, sets) = read_updates(&mut s, 10, 0, 1).await;
        assert_eq!(ann, routes.keys().copied().collect(), "round {round}");
        assert_eq!(eor, vec![Family::Ipv4Unicast]);
        assert!(sets[0].contains(&PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1))));
        // The router goes away with a NOTIFICATION.
        send(
            &mut s,
            Message::Notification(Notification::cease(cease::ADMINISTRATIVE_RESET)),
        )
        .await;
        drop(s);
    }
    let mut status = peer.status();
    timeout(
        DEADLINE,
        status.wait_for(|s| {
            s.state != State::Established
                && s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("received 6/4"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    peer.shutdown("").await;
}

#[tokio::test]
async fn passive_peer_takes_connections_handed_over_by_a_listener() {
    // Our listener; the scripted router connects to it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours = listener.local_addr().unwrap();
    let mut session = SessionConfig::new(64513, Ipv4Addr::new(127, 0, 0, 1), PeerAsn::Exact(64512));
    session.passive = true;
    session.families = vec![Family::Ipv4Unicast];
    let peer = PeerHandle::spawn(PeerConfig {
        remote: "127.0.0.1:9".parse().unwrap(),
        local_address: None,
        session,
        md5_password: None,
        ttl: None,
        next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        next_hop_v6: None,
    });
    let routes: RouteMap = hosts(3)
        .into_iter()
        .map(|p| (p, Arc::new(RouteAttributes::default())))
        .collect();
    peer.set_routes(routes.clone());
    let mut status = peer.status();
    timeout(DEADLINE, status.wait_for(|s| s.state == State::Active))
        .await
        .unwrap()
        .unwrap();

    let (router, accepted) = tokio::join!(TcpStream::connect(ours), listener.accept());
    let mut s = router.unwrap();
    peer.accept(accepted.unwrap().0);
    establish(&mut s).await;
    let (ann, _, eor, _) = read_updates(&mut s, 3, 0, 1).await;
    assert_eq!(ann, routes.keys().copied().collect());
    assert_eq!(eor, vec![Family::Ipv4Unicast]);
    timeout(DEADLINE, status.wait_for(|s| s.state == State::Established))
        .await
        .unwrap()
        .unwrap();
    peer.shutdown("bye").await;
}

#[tokio::test]
async fn routes_given_before_the_session_are_sent_and_an_empty_set_withdraws_all() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = listener.local_addr().unwrap();
    let peer = ipv4_peer(remote);
    let attrs = Arc::new(RouteAttributes::default());
    // A shared table the caller keeps, then per-prefix changes on top, all before any
    // session exists: the task must remember them and send the result once it is up.
    let shared: Arc<RouteMap> =
        Arc::new(hosts(100).into_iter().map(|p| (p, attrs.clone())).collect());
    peer.set_routes_shared(shared.clone());
    let added: IpNet = "10.98.0.1/32".parse().unwrap();
    let v6: IpNet = "2001:db8::/64".parse().unwrap();
    peer.update_routes([
        (hosts(100)[0], None),
        (added, Some(attrs.clone())),
        // Not carried by this IPv4-only session: never sent, never counted.
        (v6, Some(attrs.clone())),
    ]);

    let (mut s, _) = timeout(DEADLINE, listener.accept()).await.unwrap().unwrap();
    establish(&mut s).await;
    let (ann, wd, eor, _) = read_updates(&mut s, 100, 0, 1).await;
    let mut expected: BTreeSet<IpNet> = hosts(100)[1..].iter().copied().collect();
    expected.insert(added);
    assert_eq!(ann, expected);
    assert!(wd.is_empty());
    assert_eq!(eor, vec![Family::Ipv4Unicast]);
    let mut status = peer.status();
    timeout(DEADLINE, status.wait_for(|s| s.advertised == 100))
        .await
        .unwrap()
        .unwrap();
    // The caller's map is its own: the changes did not leak into it.
    assert_eq!(shared.len(), 100);
    assert!(shared.contains_key(&hosts(100)[0]) && !shared.contains_key(&added));

    // An empty set (what the speaker sends before shutting down) withdraws everything.
    peer.set_routes(RouteMap::new());
    let (ann, wd, _, _) = read_updates(&mut s, 0, 100, 0).await;
    assert!(ann.is_empty());
    assert_eq!(wd, expected);
    timeout(DEADLINE, status.wait_for(|s| s.advertised == 0))
        .await
        .unwrap()
        .unwrap();
    peer.shutdown("").await;
}
