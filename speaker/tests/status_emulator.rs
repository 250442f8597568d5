//! The node's `SpeakerStatus` object, with the speaker running in-process against the kube
//! emulator and a scripted BGP router on 127.0.0.1: it appears with the session Established
//! and the prefix count, is rewritten only when something changed (at most about once a
//! second), is re-created when deleted, survives resourceVersion conflicts, and shows the
//! NOTIFICATION when the router ends the session.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

mod common;

use common::fixture::{
    DEADLINE, Fixture, NODE, NS, set_endpoint_ready, start_emulator, start_speaker,
};
use common::{read_msg, send};
use ferrolb_bgp::codec::notification::{Notification, cease, code};
use ferrolb_bgp::codec::{Capability, CodecOptions, Family, Message, Open, Received};
use ferrolb_shared::crd::{SessionState, SpeakerStatus};
use ferrolb_speaker::app::Running;
use k8s_openapi::api::core::v1::Node;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use kube_emulator::{Emulator, RequestMatcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::timeout;

/// A router that accepts one session and keeps it up until `stop` fires; then it sends
/// Cease/Administrative Shutdown and never answers again (later connection attempts stay
/// unanswered, so the last error stays the NOTIFICATION).
async fn router(listener: TcpListener, stop: oneshot::Receiver<()>) {
    let (mut s, _) = listener.accept().await.unwrap();
    let Some(Received::Open(_)) = read_msg(&mut s).await else {
        panic!("expected OPEN")
    };
    let ours = Open::new(
        64512,
        90,
        Ipv4Addr::new(127, 0, 0, 2),
        vec![Capability::multiprotocol(Family::Ipv4Unicast)],
    );
    send(&mut s, Message::Open(ours)).await;
    send(&mut s, Message::Keepalive).await;
    let (mut rd, mut wr) = s.into_split();
    let reader = tokio::spawn(async move {
        // Drain whatever the speaker sends (UPDATEs, KEEPALIVEs).
        let mut buf = [0u8; 4096];
        while rd.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let _ = stop.await;
    let n = Message::Notification(Notification::new(
        code::CEASE,
        cease::ADMINISTRATIVE_SHUTDOWN,
        Vec::new(),
    ));
    let _ = wr
        .write_all(&n.encode(CodecOptions::FOUR_OCTET_AS).unwrap())
        .await;
    drop(wr);
    reader.abort();
    // Keep the listener (connections queue in the backlog and are never answered).
    std::future::pending::<()>().await;
}

struct Lab {
    emu: Emulator,
    client: kube::Client,
    speaker: Option<Running>,
    stop_router: Option<oneshot::Sender<()>>,
    /// The router's port.
    port: u16,
}

impl Lab {
    async fn start() -> Lab {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(router(listener, stop_rx));
        let (emu, client) = start_emulator(Fixture {
            router_port: port,
            password_secret: false,
        })
        .await;
        let speaker = start_speaker(client.clone()).await;
        Lab {
            emu,
            client,
            speaker: Some(speaker),
            stop_router: Some(stop_tx),
            port,
        }
    }

    fn api(&self) -> Api<SpeakerStatus> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Polls the object until `f` holds; panics with the last version seen.
    async fn wait(&self, what: &str, f: impl Fn(&SpeakerStatus) -> bool) -> SpeakerStatus {
        let api = self.api();
        let mut last = None;
        let r = timeout(DEADLINE, async {
            loop {
                if let Some(o) = api.get_opt(NODE).await.unwrap() {
                    if f(&o) {
                        return o;
                    }
                    last = Some(o);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        r.unwrap_or_else(|_| panic!("timed out waiting for {what}; last seen: {last:#?}"))
    }

    /// Successful status writes to the SpeakerStatus so far.
    fn status_writes(&self) -> usize {
        self.emu
            .journal()
            .entries
            .iter()
            .filter(|e| {
                e.resource == "speakerstatuses"
                    && e.subresource.as_deref() == Some("status")
                    && e.method != "GET"
                    && e.status < 300
            })
            .count()
    }

    async fn set_endpoint_ready(&self, ready: bool) {
        set_endpoint_ready(&self.client, ready).await;
    }
}

fn peer(o: &SpeakerStatus) -> Option<&ferrolb_shared::crd::PeerSessionStatus> {
    o.status.as_ref()?.peers.iter().find(|p| p.name == "router")
}

fn condition(o: &SpeakerStatus) -> (String, String) {
    let c = &o.status.as_ref().unwrap().conditions[0];
    assert_eq!(c.type_, "SessionsEstablished");
    (c.status.clone(), c.reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_status_follows_the_session_and_writes_only_changes() {
    let mut lab = Lab::start().await;

    // 1. Up: Established, one prefix, one Service address, owned by the Node.
    let up = lab
        .wait("an Established session with 1 prefix", |o| {
            peer(o).is_some_and(|p| {
                p.state == SessionState::Established
                    && p.prefixes_advertised == 1
                    && p.updates_sent >= 1
            }) && o.status.as_ref().unwrap().announced_service_ips == 1
        })
        .await;
    let s = up.status.as_ref().unwrap();
    assert_eq!(
        (s.sessions, s.sessions_established, s.prefixes_advertised),
        (1, 1, 1)
    );
    let p = peer(&up).unwrap();
    assert_eq!(
        (p.address.as_str(), p.port),
        ("127.0.0.1", i32::from(lab.port))
    );
    assert!(p.established_since.is_some());
    assert!(p.last_update_sent_time.is_some());
    assert!(s.last_update_time.is_some());
    assert_eq!(up.spec.node_name, NODE);
    assert_eq!(condition(&up), ("True".into(), "AllEstablished".into()));
    let node: Node = Api::all(lab.client.clone()).get(NODE).await.unwrap();
    let owners = up.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Node", NODE)
    );
    assert_eq!(Some(&owners[0].uid), node.metadata.uid.as_ref());

    // 2. A change the status does not show (a Service annotation) makes the speaker decide
    //    again but writes nothing.
    let reconciles = || {
        lab.speaker
            .as_ref()
            .unwrap()
            .metrics
            .encode()
            .lines()
            .find_map(|l| {
                l.strip_prefix("ferrolb_speaker_reconciles_total ")?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap()
    };
    // Let the writes caused by the start-up settle: two reads a coalescing interval apart
    // with the same resourceVersion.
    let mut rv = lab.wait("any status", |_| true).await.resource_version();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = lab.wait("any status", |_| true).await.resource_version();
        if now == rv {
            break;
        }
        rv = now;
    }
    let writes_before = lab.status_writes();
    let before = reconciles();
    lab.emu
        .faults()
        .touch("", "services", "app", "web")
        .unwrap();
    timeout(DEADLINE, async {
        while reconciles() == before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the speaker never reconciled after the Service changed");
    // Longer than the coalescing interval: a write would have happened by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        lab.status_writes(),
        writes_before,
        "a no-op change was written"
    );
    assert_eq!(
        lab.wait("any status", |_| true).await.resource_version(),
        rv
    );

    // 3. Deleted, then a burst of changes: re-created, and the burst coalesced.
    lab.api()
        .delete(NODE, &DeleteParams::default())
        .await
        .unwrap();
    let burst_start = Instant::now();
    let writes_before = lab.status_writes();
    // Twelve flips over more than a second, each one a change the status shows (the
    // announced address count): without the rate limit, each would be a write.
    for i in 0..12 {
        lab.set_endpoint_ready(i % 2 == 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let withdrawn = lab
        .wait("re-created with the route withdrawn", |o| {
            o.status
                .as_ref()
                .is_some_and(|s| s.announced_service_ips == 0 && s.prefixes_advertised == 0)
                && peer(o).is_some_and(|p| p.state == SessionState::Established)
        })
        .await;
    let elapsed = burst_start.elapsed().as_secs_f64();
    assert_ne!(withdrawn.uid(), up.uid(), "the object was not re-created");
    let writes = lab.status_writes() - writes_before;
    let allowed = 2 + elapsed.ceil() as usize;
    assert!(
        writes <= allowed,
        "{writes} status writes in {elapsed:.1}s (at most one a second expected)"
    );

    // 4. The router ends the session, and the first status write conflicts: the status
    //    still shows the session down with the NOTIFICATION.
    lab.emu.faults().conflict_next(
        1,
        RequestMatcher::any()
            .resource("speakerstatuses")
            .subresource("status")
            .verb("update"),
    );
    lab.stop_router.take().unwrap().send(()).unwrap();
    let down = lab
        .wait("the session down with the NOTIFICATION", |o| {
            peer(o).is_some_and(|p| {
                p.state != SessionState::Established
                    && p.last_error.as_deref().is_some_and(|e| e.contains("6/2"))
            })
        })
        .await;
    let s = down.status.as_ref().unwrap();
    assert_eq!((s.sessions, s.sessions_established), (1, 0));
    let p = peer(&down).unwrap();
    assert!(p.established_since.is_none());
    assert_eq!(p.prefixes_advertised, 0);
    assert!(
        p.last_error.as_deref().unwrap().starts_with("received "),
        "{p:?}"
    );
    assert_eq!(condition(&down), ("False".into(), "SessionsDown".into()));
    let conflicts = lab
        .emu
        .journal()
        .entries
        .iter()
        .filter(|e| e.resource == "speakerstatuses" && e.status == 409)
        .count();
    assert_eq!(conflicts, 1, "the injected conflict was not hit");

    lab.speaker.take().unwrap().shutdown().await;
}
