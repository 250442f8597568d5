//! Shared support for the speaker's integration tests: a scripted BGP router on 127.0.0.1,
//! built from ferrolb-bgp's codec, that completes OPEN/KEEPALIVE and records what the
//! speaker announces; and in [`fixture`] the emulator, fixture objects and in-process
//! speaker the emulator tests share.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ferrolb_bgp::codec::{
    self, Capability, CodecOptions, Family, Message, Open, PathAttribute, Received, UpdateOutcome,
};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub mod fixture;

/// What the scripted router has seen.
#[derive(Clone, Debug, Default)]
pub struct RouterView {
    /// Prefixes currently announced by the speaker in the current session.
    pub rib: BTreeSet<IpNet>,
    /// Sessions that reached Established (OPEN + KEEPALIVE exchanged).
    pub sessions: u32,
    /// UPDATEs received over all sessions (End-of-RIB excluded).
    pub updates: u32,
    /// Communities of the last announcing UPDATE.
    pub communities: Vec<u32>,
    /// (code, subcode) of the last NOTIFICATION received.
    pub notification: Option<(u8, u8)>,
    /// The current session's TCP connection is closed.
    pub closed: bool,
}

/// Reads one BGP message; `None` when the connection ends first.
pub async fn read_msg(s: &mut TcpStream) -> Option<Received> {
    let mut buf = vec![0u8; 19];
    s.read_exact(&mut buf).await.ok()?;
    let h = codec::peek_header(&buf).unwrap().unwrap();
    buf.resize(h.length, 0);
    s.read_exact(&mut buf[19..]).await.ok()?;
    Some(codec::decode(&buf, CodecOptions::FOUR_OCTET_AS).unwrap())
}

/// Sends one BGP message, ignoring a closed connection (the test notices that elsewhere).
pub async fn send(s: &mut TcpStream, m: Message) {
    let _ = s
        .write_all(&m.encode(CodecOptions::FOUR_OCTET_AS).unwrap())
        .await;
}

/// A BGP router that accepts any number of sessions one after the other and records what
/// the speaker sends. A new session starts with an empty RIB, as on a real router.
pub async fn router(listener: TcpListener, view: watch::Sender<RouterView>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let Some(Received::Open(theirs)) = read_msg(&mut s).await else {
            continue;
        };
        assert_eq!(theirs.asn(), 64513);
        let ours = Open::new(
            64512,
            90,
            Ipv4Addr::new(127, 0, 0, 2),
            vec![
                Capability::multiprotocol(Family::Ipv4Unicast),
                Capability::RouteRefresh,
            ],
        );
        send(&mut s, Message::Open(ours)).await;
        send(&mut s, Message::Keepalive).await;
        view.send_modify(|v| {
            v.rib.clear();
            v.sessions += 1;
            v.closed = false;
            v.notification = None;
        });
        while let Some(msg) = read_msg(&mut s).await {
            match msg {
                Received::Keepalive => send(&mut s, Message::Keepalive).await,
                Received::Update(UpdateOutcome::Accepted { update, .. }) => {
                    if update.is_end_of_rib().is_some() {
                        continue;
                    }
                    view.send_modify(|v| {
                        v.updates += 1;
                        for p in update.withdrawn_prefixes() {
                            v.rib.remove(&p);
                        }
                        let announced = update.announced();
                        if !announced.is_empty() {
                            v.communities = update
                                .attributes
                                .iter()
                                .find_map(|a| match a {
                                    PathAttribute::Communities(c) => Some(c.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                        }
                        v.rib.extend(announced);
                    });
                }
                Received::Notification(n) => {
                    view.send_modify(|v| v.notification = Some((n.code, n.subcode)));
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
        view.send_modify(|v| {
            v.closed = true;
            // The TCP session is gone: a router drops everything learned over it.
            v.rib.clear();
        });
    }
}
