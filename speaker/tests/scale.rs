//! Scale figures (ignored by default; run in release):
//! `cargo test --release -p ferrolb-speaker --test scale -- --ignored --nocapture`
//!
//! The `ferrolb-speaker` binary against the emulator with `SPEAKER_SCALE_N` (default 10 000)
//! LoadBalancer Services (without node ports, which run out at ~2.7k), each with one
//! ready endpoint on this node, and `SPEAKER_SCALE_PEERS` (default 3, the DESIGN §6 case)
//! scripted routers on 127.0.0.1, one BGPPeer each. Prints: start → all routes at every
//! router, the speaker's RSS, and p50/p99 of endpoint not ready → withdrawal and endpoint
//! ready → announcement at the first router.
//!
//! The speaker runs with the chart's `GLIBC_TUNABLES` (`SPEAKER_SCALE_TUNABLES` overrides).
//! `SPEAKER_SCALE_BIN` measures another build, e.g. the shipped static one:
//! `docker/build-static.sh`, then
//! `SPEAKER_SCALE_BIN=target/x86_64-unknown-linux-gnu/dist/ferrolb-speaker`.
//! `SPEAKER_SCALE_SMAPS=1` lists the largest mappings; `SPEAKER_SCALE_WRAPPER` runs the
//! speaker under a profiler (e.g. `valgrind --tool=massif`).

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{RouterView, router};
use ipnet::IpNet;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::timeout;

const NODE: &str = "node-a";
const DEADLINE: Duration = Duration::from_secs(120);

fn ip(i: usize) -> String {
    format!("10.200.{}.{}", i / 256, i % 256)
}

fn objects(ports: &[u16], n: usize) -> String {
    let mut docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ferrolb-system"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}),
        json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
               "metadata": {"name": "pool", "namespace": "ferrolb-system"},
               "spec": {"addresses": ["10.200.0.0/16"]}}),
        json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPAdvertisement",
               "metadata": {"name": "all", "namespace": "ferrolb-system"}, "spec": {}}),
    ];
    for (k, port) in ports.iter().enumerate() {
        docs.push(
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer",
               "metadata": {"name": format!("router-{k}"), "namespace": "ferrolb-system"},
               "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "127.0.0.1",
                        "peerPort": port, "connectTime": "1s"}}),
        );
    }
    for i in 0..n {
        docs.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("s{i}"), "namespace": "app"},
            "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                     "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip(i)}]}}}));
        docs.push(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("s{i}-x"), "namespace": "app",
                         "labels": {"kubernetes.io/service-name": format!("s{i}")}},
            "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": NODE,
                           "conditions": {"ready": true}}]}),
        );
    }
    serde_json::Value::Array(docs).to_string()
}

/// A field of `/proc/PID/status` in KiB: `VmRSS`, `RssAnon` (heap and stacks), `RssFile`
/// (the binary's pages in memory).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn wait(view: &mut watch::Receiver<RouterView>, f: impl Fn(&RouterView) -> bool) {
    timeout(DEADLINE, view.wait_for(|v| f(v)))
        .await
        .expect("deadline")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale figures; run in release with --ignored --nocapture"]
async fn scale_figures() {
    let n: usize = std::env::var("SPEAKER_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let peers: usize = std::env::var("SPEAKER_SCALE_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut ports = Vec::new();
    let mut views = Vec::new();
    for _ in 0..peers.max(1) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let (tx, view) = watch::channel(RouterView::default());
        tokio::spawn(router(listener, tx));
        views.push(view);
    }
    let (emu, client) = common::fixture::start_emulator_with(&objects(&ports, n)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let started = Instant::now();
    // SPEAKER_SCALE_WRAPPER runs the speaker under a profiler that keeps its pid, e.g.
    // "valgrind --tool=massif --massif-out-file=/tmp/speaker.massif".
    let wrapper = std::env::var("SPEAKER_SCALE_WRAPPER").unwrap_or_default();
    let mut argv: Vec<String> = wrapper.split_whitespace().map(str::to_owned).collect();
    // SPEAKER_SCALE_BIN measures another build, e.g. the shipped one from
    // docker/build-static.sh.
    argv.push(
        std::env::var("SPEAKER_SCALE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferrolb-speaker").to_owned()),
    );
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(["--node-name", NODE, "--namespace", "ferrolb-system"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        // As the chart's DaemonSet sets it; SPEAKER_SCALE_TUNABLES= (empty) measures without.
        .env(
            "GLIBC_TUNABLES",
            std::env::var("SPEAKER_SCALE_TUNABLES")
                .unwrap_or_else(|_| "glibc.malloc.mmap_threshold=131072".into()),
        )
        .env(
            "RUST_LOG",
            std::env::var("SPEAKER_SCALE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for view in &mut views {
        wait(view, |v| v.rib.len() == n).await;
    }
    let to_all = started.elapsed();
    let mut view = views[0].clone();
    let pid = child.id().unwrap();
    let rss = rss_kib(pid);

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "app");
    let set_ready = |i: usize, ready: bool| {
        let slices = slices.clone();
        async move {
            let patch = json!({"endpoints": [{"addresses": ["10.1.0.5"], "nodeName": NODE,
                                              "conditions": {"ready": ready, "serving": ready}}]});
            slices
                .patch(
                    &format!("s{i}-x"),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
                .unwrap();
        }
    };
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for k in 0..30 {
        let i = (k * 331) % n;
        let prefix: IpNet = format!("{}/32", ip(i)).parse().unwrap();
        let t = Instant::now();
        set_ready(i, false).await;
        wait(&mut view, |v| !v.rib.contains(&prefix)).await;
        down.push(t.elapsed());
        let t = Instant::now();
        set_ready(i, true).await;
        wait(&mut view, |v| v.rib.contains(&prefix)).await;
        up.push(t.elapsed());
    }
    down.sort();
    up.sort();
    let rss_after = rss_kib(pid);
    let (anon, file) = (status_kib(pid, "RssAnon"), status_kib(pid, "RssFile"));
    println!("services: {n}, {} peers", ports.len());
    println!("speaker start → all {n} routes at every router: {to_all:?}");
    println!(
        "speaker RSS: {} KiB after start, {} KiB after 60 flips",
        rss, rss_after
    );
    println!("  of which anonymous (heap, stacks) {anon} KiB, file-backed (the binary) {file} KiB");
    if std::env::var_os("SPEAKER_SCALE_SMAPS").is_some() {
        // The largest mappings, to see where resident memory is.
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
        let mut maps: Vec<(u64, String)> = Vec::new();
        let mut name = String::new();
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                let kib: u64 = rss.trim().trim_end_matches("kB").trim().parse().unwrap();
                maps.push((kib, name.clone()));
            } else if line.split_whitespace().next().is_some_and(|range| {
                range.contains('-') && range.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            }) {
                name = line.to_owned();
            }
        }
        maps.sort_by_key(|m| std::cmp::Reverse(m.0));
        for (kib, name) in maps.iter().take(15) {
            println!("  {kib:>7} KiB  {name}");
        }
    }
    println!(
        "endpoint not ready → withdrawn at router: p50 {:?}, p99 {:?}",
        percentile(&down, 0.5),
        percentile(&down, 0.99)
    );
    println!(
        "endpoint ready → announced at router: p50 {:?}, p99 {:?}",
        percentile(&up, 0.5),
        percentile(&up, 0.99)
    );
    // SIGTERM, so that a profiler in SPEAKER_SCALE_WRAPPER writes its output.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if timeout(Duration::from_secs(60), child.wait())
        .await
        .is_err()
    {
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
    emu.shutdown().await;
}
