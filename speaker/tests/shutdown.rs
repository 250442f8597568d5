//! What a router sees when the speaker stops (what SIGTERM does), against the Kubernetes API
//! emulator and a scripted router on 127.0.0.1 that logs every message of the session:
//! - graceful restart enabled on the `BGPPeer` and offered by the router: the connection
//!   closes with no NOTIFICATION and no withdrawal, so the router keeps the routes (stale)
//!   while the speaker restarts (RFC 4724);
//! - otherwise: every route is withdrawn with an UPDATE, then a Cease NOTIFICATION.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;

use common::fixture::{self, DEADLINE, NODE};
use common::{read_msg, send};
use ferrolb_bgp::codec::notification::cease;
use ferrolb_bgp::codec::{
    Capability, Family, GracefulRestart, GracefulRestartFamily, Message, Open, Received,
    UpdateOutcome,
};
use ipnet::IpNet;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::timeout;

/// One thing the router saw in the session, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Announced(Vec<IpNet>),
    Withdrawn(Vec<IpNet>),
    EndOfRib,
    Notification(u8, u8),
    Closed,
}

/// Whether the session was Established, and everything the speaker sent in it.
#[derive(Clone, Debug, Default)]
struct Log {
    /// OPEN received from the speaker advertised graceful restart.
    speaker_offered_gr: bool,
    seen: Vec<Seen>,
}

impl Log {
    fn announced(&self) -> Vec<IpNet> {
        let mut rib = Vec::new();
        for s in &self.seen {
            match s {
                Seen::Announced(p) => rib.extend(p.iter().copied()),
                Seen::Withdrawn(p) => rib.retain(|x| !p.contains(x)),
                _ => {}
            }
        }
        rib
    }

    fn closed(&self) -> bool {
        self.seen.last() == Some(&Seen::Closed)
    }
}

/// A router for one session that offers graceful restart when `graceful_restart`, and logs
/// what the speaker sends until the connection closes.
async fn router(listener: TcpListener, graceful_restart: bool, log: watch::Sender<Log>) {
    let (mut s, _) = listener.accept().await.unwrap();
    let Some(Received::Open(theirs)) = read_msg(&mut s).await else {
        panic!("no OPEN from the speaker");
    };
    let mut caps = vec![
        Capability::multiprotocol(Family::Ipv4Unicast),
        Capability::RouteRefresh,
    ];
    if graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_flags: 0,
            restart_time: 120,
            families: vec![GracefulRestartFamily::new(Family::Ipv4Unicast, true)],
        }));
    }
    send(
        &mut s,
        Message::Open(Open::new(64512, 90, Ipv4Addr::new(127, 0, 0, 2), caps)),
    )
    .await;
    send(&mut s, Message::Keepalive).await;
    log.send_modify(|l| l.speaker_offered_gr = theirs.graceful_restart().is_some());
    while let Some(msg) = read_msg(&mut s).await {
        let seen = match msg {
            Received::Keepalive => {
                send(&mut s, Message::Keepalive).await;
                continue;
            }
            Received::Update(UpdateOutcome::Accepted { update, .. }) => {
                if update.is_end_of_rib().is_some() {
                    Seen::EndOfRib
                } else {
                    let withdrawn: Vec<IpNet> = update.withdrawn_prefixes();
                    let announced = update.announced();
                    if !withdrawn.is_empty() {
                        log.send_modify(|l| l.seen.push(Seen::Withdrawn(withdrawn)));
                    }
                    if announced.is_empty() {
                        continue;
                    }
                    Seen::Announced(announced)
                }
            }
            Received::Notification(n) => Seen::Notification(n.code, n.subcode),
            other => panic!("unexpected message {other:?}"),
        };
        log.send_modify(|l| l.seen.push(seen));
    }
    log.send_modify(|l| l.seen.push(Seen::Closed));
}

fn fixtures(port: u16, graceful_restart: bool) -> String {
    json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ferrolb-system"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}},
        {"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
         "metadata": {"name": "pool", "namespace": "ferrolb-system"},
         "spec": {"addresses": ["192.0.2.0/24"]}},
        {"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer",
         "metadata": {"name": "router", "namespace": "ferrolb-system"},
         "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "127.0.0.1",
                  "peerPort": port, "connectTime": "1s",
                  "enableGracefulRestart": graceful_restart}},
        {"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPAdvertisement",
         "metadata": {"name": "all", "namespace": "ferrolb-system"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "web", "namespace": "app"},
         "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                  "ports": [{"port": 80, "protocol": "TCP"}]},
         "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}]}}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-x", "namespace": "app",
                      "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": NODE,
                        "conditions": {"ready": true}}]},
    ])
    .to_string()
}

/// Runs a speaker against a router until both Service addresses are announced, stops the
/// speaker as SIGTERM does, and returns what the router saw.
async fn stop_and_watch(peer_gr: bool, router_gr: bool) -> Log {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut log) = watch::channel(Log::default());
    let router = tokio::spawn(router(listener, router_gr, tx));
    let (emu, client) = fixture::start_emulator_with(&fixtures(port, peer_gr)).await;
    let speaker = fixture::start_speaker(client).await;
    let announced = timeout(
        DEADLINE,
        log.wait_for(|l| l.announced().len() == 2 && l.seen.contains(&Seen::EndOfRib)),
    )
    .await
    .is_ok();
    assert!(announced, "never announced: {:?}", *log.borrow());
    // `shutdown` returns only once every session has been closed: what the router saw by
    // then is what a router sees before the process exits.
    timeout(DEADLINE, speaker.shutdown()).await.unwrap();
    timeout(DEADLINE, router).await.unwrap().unwrap();
    emu.shutdown().await;
    let seen = log.borrow().clone();
    assert!(seen.closed(), "{seen:?}");
    seen
}

fn prefixes() -> Vec<IpNet> {
    vec![
        "192.0.2.10/32".parse().unwrap(),
        "192.0.2.11/32".parse().unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_closes_without_notification_or_withdrawal() {
    let log = stop_and_watch(true, true).await;
    assert!(log.speaker_offered_gr, "{log:?}");
    // Nothing after the announcements but the close: the router keeps both routes stale.
    assert!(
        !log.seen
            .iter()
            .any(|s| matches!(s, Seen::Withdrawn(_) | Seen::Notification(..))),
        "{log:?}"
    );
    let mut kept = log.announced();
    kept.sort();
    assert_eq!(kept, prefixes(), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_graceful_restart_routes_are_withdrawn_then_cease() {
    // The router offers graceful restart but the BGPPeer does not enable it.
    let log = stop_and_watch(false, true).await;
    assert!(!log.speaker_offered_gr, "{log:?}");
    assert_withdrawn_then_cease(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_without_graceful_restart_gets_withdrawals_then_cease() {
    // Enabled on the BGPPeer, but the router does not do graceful restart: a silent close
    // would keep nothing, so the speaker withdraws explicitly.
    let log = stop_and_watch(true, false).await;
    assert!(log.speaker_offered_gr, "{log:?}");
    assert_withdrawn_then_cease(&log);
}

fn assert_withdrawn_then_cease(log: &Log) {
    assert!(log.announced().is_empty(), "routes left: {log:?}");
    let n = log.seen.len();
    assert!(n >= 3, "{log:?}");
    assert!(
        matches!(log.seen[n - 3], Seen::Withdrawn(_)),
        "withdrawal before the NOTIFICATION: {log:?}"
    );
    assert_eq!(
        log.seen[n - 2],
        Seen::Notification(6, cease::ADMINISTRATIVE_SHUTDOWN),
        "{log:?}"
    );
}
