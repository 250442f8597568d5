//! Figures for DESIGN §6 against the kube emulator and BIRD, with the real binaries:
//! Service created → route at the router (p50/p99), last endpoint not ready → route
//! withdrawn at the router (p50/p99), and speaker RSS with 10k Services and 3 peers.
//!
//! ```sh
//! cargo test -p ferrolb-e2e --release --test bench -- --ignored --nocapture
//! ```
//! `BENCH_SAMPLES` (default 200) sets the number of latency samples, `BENCH_SERVICES`
//! (default 10000) the number of Services for the RSS figure. Latencies are measured by
//! polling the router's CLI, which adds a few milliseconds of resolution.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use ferrolb_e2e::lab::{APP_NAMESPACE, DEADLINE, SYSTEM_NAMESPACE};
use ferrolb_e2e::{Lab, RouterKind, TrafficPolicy};
use futures::StreamExt;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: big, namespace: ferrolb-system}
spec: {addresses: ["100.64.0.0/16"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: upstream, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, connectTime: 1s}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: internal, namespace: ferrolb-system}
spec: {myASN: 64500, peerASN: 64500, peerAddress: 10.0.1.1, connectTime: 1s}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: secure, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.2.1, connectTime: 1s, passwordSecret: {name: bgp-md5}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: all, namespace: ferrolb-system}
spec: {communities: ["64512:100"]}
"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn wait_present(lab: &Lab, prefix: &str, present: bool) {
    ferrolb_e2e::sys::wait_until(
        &format!("{prefix} present={present} at the router"),
        DEADLINE,
        Duration::from_millis(1),
        || async { Ok((lab.router.paths(prefix).await?.is_empty() != present).then_some(())) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture (release)"]
async fn bench_latency_and_rss() {
    let Some(lab) = ferrolb_e2e::lab::for_test(RouterKind::Bird).await else {
        return;
    };
    let c = &lab.cluster;
    c.secret(
        SYSTEM_NAMESPACE,
        "bgp-md5",
        "password",
        &lab.cfg.md5_password,
    )
    .await
    .unwrap();
    c.apply_yaml(CONFIG).await.unwrap();
    lab.wait_sessions(3 * lab.cfg.nodes).await.unwrap();
    println!("bench: BIRD, 3 nodes, 3 peers per node (eBGP, iBGP, eBGP+MD5), 2 controllers");

    // Latency: one Service at a time, its endpoint (on node-1, policy Cluster) already there.
    let samples = env("BENCH_SAMPLES", 200);
    let mut announce = Vec::new();
    let mut withdraw = Vec::new();
    for i in 0..samples {
        let name = format!("lat-{i}");
        c.set_endpoints(APP_NAMESPACE, &name, &[(1, true)])
            .await
            .unwrap();
        let t = Instant::now();
        c.create_service(APP_NAMESPACE, &name, TrafficPolicy::Cluster, &[], &[])
            .await
            .unwrap();
        let ip = c
            .wait_service_ip(APP_NAMESPACE, &name, DEADLINE)
            .await
            .unwrap();
        let prefix = Lab::host_prefix(ip);
        wait_present(&lab, &prefix, true).await;
        announce.push(t.elapsed());
        let t = Instant::now();
        c.set_endpoints(APP_NAMESPACE, &name, &[(1, false)])
            .await
            .unwrap();
        wait_present(&lab, &prefix, false).await;
        withdraw.push(t.elapsed());
        c.delete_service(APP_NAMESPACE, &name).await.unwrap();
    }
    report("Service created -> route at the router", announce);
    report(
        "last endpoint not ready -> route withdrawn at the router",
        withdraw,
    );

    // RSS with many Services, each with a ready endpoint on every node.
    let services = env("BENCH_SERVICES", 10_000);
    let t = Instant::now();
    futures::stream::iter(0..services)
        .map(|i| async move {
            let name = format!("svc-{i}");
            c.set_endpoints(APP_NAMESPACE, &name, &[(1, true), (2, true), (3, true)])
                .await
                .unwrap();
            c.create_service(APP_NAMESPACE, &name, TrafficPolicy::Cluster, &[], &[])
                .await
                .unwrap();
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    println!("bench: created {services} Services in {:?}", t.elapsed());
    ferrolb_e2e::sys::wait_until(
        &format!("{services} prefixes at the router"),
        Duration::from_secs(600),
        Duration::from_millis(500),
        || async { Ok((lab.router.prefix_count().await? >= services).then_some(())) },
    )
    .await
    .unwrap();
    println!(
        "bench: all {services} prefixes at the router {:?} after the first create",
        t.elapsed()
    );
    // Let the speakers settle (status writes, allocator caches) before reading RSS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 1..=lab.cfg.nodes {
        let pid = lab.speaker(i).unwrap().pid();
        let rss = ferrolb_e2e::sys::rss_kib(pid).unwrap_or(0);
        println!(
            "speaker node-{i}: RSS {:.1} MiB with {services} Services, 3 peers",
            rss as f64 / 1024.0
        );
    }
}
