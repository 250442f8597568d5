//! The speaker's main loop in-process against the Kubernetes API emulator and a scripted
//! BGP router on 127.0.0.1 (built from ferrolb-bgp's codec): what a router sees as the
//! Service's endpoints and the node's health change, and when the speaker stops.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod common;

use common::fixture::{
    DEADLINE, Fixture, NODE, NS, SERVICE_IP, set_endpoint_ready, start_emulator, start_speaker,
};
use common::{RouterView, router};
use ferrolb_bgp::codec::notification::cease;
use ferrolb_speaker::app::Running;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_emulator::Emulator;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

struct Lab {
    emu: Emulator,
    client: kube::Client,
    view: watch::Receiver<RouterView>,
    speaker: Option<Running>,
    child: Option<Child>,
}

/// How the speaker under test runs.
#[derive(Clone, Copy, Debug, Default)]
struct Options {
    /// The peer takes its TCP MD5 password from the Secret `bgp-password` (not created).
    password: Option<&'static str>,
    /// Run the `ferrolb-speaker` binary as a child process instead of in-process.
    binary: bool,
}

struct Child {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        Self::start_with(Options::default()).await
    }

    async fn start_with(opts: Options) -> Lab {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        if let Some(password) = opts.password {
            ferrolb_bgp::sys::set_tcp_md5(
                &listener,
                "127.0.0.1:0".parse().unwrap(),
                password.as_bytes(),
            )
            .unwrap();
        }
        let (tx, view) = watch::channel(RouterView::default());
        tokio::spawn(router(listener, tx));
        let (emu, client) = start_emulator(Fixture {
            router_port: port,
            password_secret: opts.password.is_some(),
        })
        .await;
        let mut lab = Lab {
            emu,
            client: client.clone(),
            view,
            speaker: None,
            child: None,
        };
        if opts.binary {
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = dir.path().join("kubeconfig");
            lab.emu.write_kubeconfig(&kubeconfig).unwrap();
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-speaker"))
                .args(["--node-name", NODE, "--namespace", NS])
                .args(["--metrics-addr", "127.0.0.1:0"])
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("NODE_NAME")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            lab.child = Some(Child { child, _dir: dir });
        } else {
            lab.speaker = Some(start_speaker(client).await);
        }
        lab
    }

    /// Waits until the router's view satisfies `f`; panics with the view after the deadline.
    async fn wait(&mut self, what: &str, f: impl Fn(&RouterView) -> bool) -> RouterView {
        let r = timeout(DEADLINE, self.view.wait_for(|v| f(v)))
            .await
            .map(|r| r.map(|v| v.clone()));
        match r {
            Ok(Ok(v)) => v,
            _ => panic!(
                "timed out waiting for {what}; router saw {:?}",
                *self.view.borrow()
            ),
        }
    }

    /// Waits until the session's connection is closed and checks that the speaker ended
    /// it with Cease/Administrative Shutdown.
    async fn wait_ceased(&mut self, what: &str) -> RouterView {
        let seen = self.wait(what, |v| v.closed).await;
        assert_eq!(
            seen.notification,
            Some((6, cease::ADMINISTRATIVE_SHUTDOWN)),
            "{seen:?}"
        );
        seen
    }

    /// Shuts the in-process speaker down, then the emulator.
    async fn stop(mut self) {
        self.speaker.take().unwrap().shutdown().await;
        self.emu.shutdown().await;
    }

    /// Watches for [`QUIET`]; returns the view if `f` became true meanwhile.
    async fn happens_soon(&mut self, f: impl Fn(&RouterView) -> bool) -> Option<RouterView> {
        timeout(QUIET, self.view.wait_for(|v| f(v)))
            .await
            .ok()
            .and_then(|r| r.ok().map(|v| v.clone()))
    }

    async fn set_endpoint_ready(&self, ready: bool) {
        set_endpoint_ready(&self.client, ready).await;
    }

    async fn set_node_ready(&self, ready: bool) {
        let api: Api<Node> = Api::all(self.client.clone());
        let status = if ready { "True" } else { "False" };
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
        api.patch_status(NODE, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Waits for an event on the Service `app/web` with `reason`; returns its note.
    async fn wait_event(&self, reason: &str) -> String {
        use k8s_openapi::api::events::v1::Event;
        let api: Api<Event> = Api::namespaced(self.client.clone(), "app");
        let found = timeout(DEADLINE, async {
            loop {
                let list = api.list(&Default::default()).await.unwrap();
                if let Some(e) = list.items.into_iter().find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")
                }) {
                    return e.note.unwrap_or_default();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {reason} event on app/web"))
    }

    async fn http_get(&self, path: &str) -> String {
        let addr = self.speaker.as_ref().unwrap().http_addr;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        timeout(DEADLINE, s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }
}

fn service_prefix() -> IpNet {
    SERVICE_IP.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_and_withdraws_with_health_and_on_shutdown() {
    let mut lab = Lab::start().await;
    let p = service_prefix();

    let seen = lab.wait("the Service /32", |v| v.rib.contains(&p)).await;
    assert_eq!(seen.rib.len(), 1, "only the Service address: {seen:?}");
    assert_eq!(seen.communities, vec![64512 << 16 | 100]);
    let ready = lab.http_get("/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = lab.http_get("/metrics").await;
    assert!(
        metrics.contains("ferrolb_bgp_session_up{peer=\"router\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrolb_speaker_announced_service_ips 1"),
        "{metrics}"
    );

    // The only endpoint goes not ready: the route is withdrawn, the session stays.
    let t0 = std::time::Instant::now();
    lab.set_endpoint_ready(false).await;
    let seen = lab
        .wait("withdrawal on endpoint not ready", |v| !v.rib.contains(&p))
        .await;
    eprintln!(
        "endpoint not ready (patch sent) → withdrawal at the router: {:?}",
        t0.elapsed()
    );
    assert!(!seen.closed);
    assert_eq!(seen.sessions, 1);
    let note = lab.wait_event("Withdrawn").await;
    assert_eq!(note, format!("withdrawn from node {NODE}: noEndpoints"));

    lab.set_endpoint_ready(true).await;
    lab.wait("re-announcement on endpoint ready", |v| v.rib.contains(&p))
        .await;
    let note = lab.wait_event("Announced").await;
    assert_eq!(note, format!("announced from node {NODE} to router"));

    // The node goes NotReady: withdrawn, back when Ready again.
    lab.set_node_ready(false).await;
    let seen = lab
        .wait("withdrawal on node NotReady", |v| !v.rib.contains(&p))
        .await;
    assert_eq!(seen.sessions, 1);
    lab.set_node_ready(true).await;
    lab.wait("re-announcement on node Ready", |v| v.rib.contains(&p))
        .await;

    // The exclude label: withdrawn while present.
    let nodes: Api<Node> = Api::all(lab.client.clone());
    let label = |v: Option<&str>| {
        Patch::Merge(json!({"metadata": {"labels": {
            "node.kubernetes.io/exclude-from-external-load-balancers": v}}}))
    };
    nodes
        .patch(NODE, &PatchParams::default(), &label(Some("")))
        .await
        .unwrap();
    lab.wait("withdrawal on the exclude label", |v| !v.rib.contains(&p))
        .await;
    nodes
        .patch(NODE, &PatchParams::default(), &label(None))
        .await
        .unwrap();
    lab.wait("re-announcement without the exclude label", |v| {
        v.rib.contains(&p)
    })
    .await;

    // Graceful shutdown (what SIGTERM does): Cease NOTIFICATION, then the connection closes.
    let metrics = lab.http_get("/metrics").await;
    assert!(
        metrics.contains("ferrolb_speaker_decision_to_update_seconds_count"),
        "{metrics}"
    );
    timeout(DEADLINE, lab.speaker.take().unwrap().shutdown())
        .await
        .unwrap();
    lab.wait_ceased("Cease and close").await;
    lab.emu.shutdown().await;
}

/// How long a "nothing happens" check watches before concluding nothing happened.
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_withdraws_nothing_and_reconnects_without_churn() {
    let mut lab = Lab::start().await;
    let p = service_prefix();
    let before = lab.wait("the Service /32", |v| v.rib.contains(&p)).await;

    lab.emu.faults().stop().await;
    let lost = lab.happens_soon(|v| !v.rib.contains(&p) || v.closed).await;
    assert!(
        lost.is_none(),
        "route changed while the API server was down: {lost:?}"
    );
    lab.emu.faults().start().await.unwrap();

    // The next change after the outage still arrives (the watches came back), and the
    // re-list in between sent nothing: exactly one more UPDATE, the withdrawal.
    lab.set_endpoint_ready(false).await;
    let after = lab
        .wait("withdrawal after the outage", |v| !v.rib.contains(&p))
        .await;
    assert_eq!(after.sessions, 1);
    assert_eq!(after.updates, before.updates + 1, "{before:?} → {after:?}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_advertisement_edit_keeps_the_last_valid_one() {
    use ferrolb_shared::crd::BGPAdvertisement;
    let mut lab = Lab::start().await;
    let p = service_prefix();
    let before = lab.wait("the Service /32", |v| v.rib.contains(&p)).await;
    let ads: Api<BGPAdvertisement> = Api::namespaced(lab.client.clone(), NS);
    let set = |c: &str| Patch::Merge(json!({"spec": {"communities": [c]}}));
    ads.patch("all", &PatchParams::default(), &set("not-a-community"))
        .await
        .unwrap();
    let changed = lab.happens_soon(|v| v.updates != before.updates).await;
    assert!(
        changed.is_none(),
        "an invalid edit changed routes: {changed:?}"
    );
    let metrics = lab.http_get("/metrics").await;
    assert!(
        metrics.contains("ferrolb_speaker_reconcile_errors_total{kind=\"invalidConfig\"} 1"),
        "{metrics}"
    );

    ads.patch("all", &PatchParams::default(), &set("64512:200"))
        .await
        .unwrap();
    let seen = lab
        .wait("the fixed advertisement's community", |v| {
            v.communities == [64512 << 16 | 200]
        })
        .await;
    assert!(seen.rib.contains(&p));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_withdraws_on_sigterm_and_exits_cleanly() {
    let mut lab = Lab::start_with(Options {
        binary: true,
        ..Options::default()
    })
    .await;
    let p = service_prefix();
    lab.wait("the Service /32 from the binary", |v| v.rib.contains(&p))
        .await;
    let mut child = lab.child.take().unwrap();
    let pid = child.child.id().unwrap();
    let kill = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    lab.wait_ceased("Cease and close on SIGTERM").await;
    let status = timeout(DEADLINE, child.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    lab.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_comes_from_the_secret() {
    use k8s_openapi::api::core::v1::Secret;
    let mut lab = Lab::start_with(Options {
        password: Some("s3cret-pw"),
        ..Options::default()
    })
    .await;
    // No Secret yet: no session is started (an unsigned one could never establish).
    let early = lab.happens_soon(|v| v.sessions > 0).await;
    assert!(early.is_none(), "session without its password: {early:?}");
    let metrics = lab.http_get("/metrics").await;
    assert!(
        metrics.contains("ferrolb_speaker_reconcile_errors_total{kind=\"passwordSecret\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("s3cret-pw"));

    let secrets: Api<Secret> = Api::namespaced(lab.client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bgp-password"},
        "stringData": {"password": "s3cret-pw"},
    }))
    .unwrap();
    secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();
    let p = service_prefix();
    let seen = lab
        .wait("an MD5-signed session announcing the /32", |v| {
            v.rib.contains(&p)
        })
        .await;
    assert_eq!(seen.sessions, 1);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_changes_restart_and_deletion_closes_the_session() {
    use ferrolb_shared::crd::BGPPeer;
    let mut lab = Lab::start().await;
    let p = service_prefix();
    lab.wait("the Service /32", |v| v.rib.contains(&p)).await;
    let peers: Api<BGPPeer> = Api::namespaced(lab.client.clone(), NS);

    // A changed hold time needs a new OPEN: the session is closed and opened again.
    peers
        .patch(
            "router",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holdTime": "60s"}})),
        )
        .await
        .unwrap();
    let seen = lab
        .wait("a second session announcing the /32", |v| {
            v.sessions == 2 && v.rib.contains(&p)
        })
        .await;
    assert_eq!(seen.rib.len(), 1);

    // nodeSelectors that stop selecting this node end the session; selecting it again
    // starts a new one.
    let select = |host: &str| {
        Patch::Merge(json!({"spec": {"nodeSelectors": [
            {"matchLabels": {"kubernetes.io/hostname": host}}]}}))
    };
    peers
        .patch("router", &PatchParams::default(), &select("other-node"))
        .await
        .unwrap();
    let seen = lab
        .wait_ceased("Cease when the peer no longer selects the node")
        .await;
    assert_eq!(seen.sessions, 2);
    peers
        .patch("router", &PatchParams::default(), &select(NODE))
        .await
        .unwrap();
    lab.wait("a third session once selected again", |v| {
        v.sessions == 3 && v.rib.contains(&p)
    })
    .await;

    // Deleting the peer ends the session with a Cease.
    peers
        .delete("router", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    lab.wait_ceased("Cease on peer deletion").await;
    // The peer's series go with it (right after the session task has ended).
    timeout(DEADLINE, async {
        while lab.http_get("/metrics").await.contains("peer=\"router\"") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the deleted peer's metrics stay");
    lab.stop().await;
}
