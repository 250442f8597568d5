//! Measurements (ignored by default; run explicitly):
//!
//! ```text
//! BENCH_SERVICES=1000 cargo test -p ferrolb-controller --release --test bench -- --ignored --nocapture
//! BENCH_SERVICES=1000 BENCH_RATE=200 cargo test -p ferrolb-controller --release --test bench -- --ignored --nocapture
//! BENCH_SERVICES=10000 cargo test -p ferrolb-controller --release --test bench -- --ignored --nocapture
//! ```
//!
//! Runs the real `ferrolb-controller` binary as a child process against the in-process
//! emulator, creates Services at a steady pace, and reports Service-created-to-IP latency
//! (from the create response to the watch event showing the address) and the controller's
//! resident memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ferrolb_controller::translate::status_ips;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn service_to_ip_latency_and_rss() {
    let n: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let emu = emulator().await;
    pool(&emu, "bench", &["10.64.0.0/16"], json!({}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .args(["--leader-elect", "false", "--metrics-addr", "127.0.0.1:0"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();

    let client = emu.client().await.unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let watch = {
        let created = created.clone();
        let latencies = latencies.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut s = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                let Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) = ev else {
                    continue;
                };
                let name = svc.metadata.name.clone().unwrap();
                if status_ips(&svc).is_empty() || seen.contains(&name) {
                    continue;
                }
                let at = Instant::now();
                if let Some(t0) = created.lock().unwrap().get(&name).copied() {
                    seen.insert(name);
                    latencies.lock().unwrap().push(at - t0);
                }
            }
        })
    };
    // Wait for the controller to be up (it reclaims nothing here).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    // Four creators in parallel, like a busy cluster; BENCH_RATE (Services/s, all creators
    // together) paces them, 0 = as fast as the API allows.
    let rate: u64 = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let per = n.div_ceil(4);
    let mut creators = Vec::new();
    for c in 0..4 {
        let api = api.clone();
        let created = created.clone();
        creators.push(tokio::spawn(async move {
            let gap = (rate > 0).then(|| Duration::from_secs_f64(4.0 / rate as f64));
            let mut next = tokio::time::Instant::now();
            for i in (c * per)..((c + 1) * per).min(n) {
                if let Some(gap) = gap {
                    tokio::time::sleep_until(next).await;
                    next += gap;
                }
                let name = format!("b{i}");
                let svc: Service = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name},
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                             "ports": [{"port": 80}], "selector": {"app": name}}
                }))
                .unwrap();
                let t0 = Instant::now();
                created.lock().unwrap().insert(name.clone(), t0);
                api.create(&PostParams::default(), &svc).await.unwrap();
            }
        }));
    }
    for c in creators {
        c.await.unwrap();
    }
    let create_time = started.elapsed();
    let deadline = Duration::from_secs(60 + (n as u64) / 50);
    tokio::time::timeout(deadline, async {
        while latencies.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {n} Services got an address",
            latencies.lock().unwrap().len()
        )
    });
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let ips = all_ips(&emu).await;
    assert_no_duplicates(&ips);
    eprintln!(
        "BENCH services={n} rate={rate}/s created_in={create_time:?} all_served_in={total:?} \
         latency p50={:?} p90={:?} p99={:?} max={:?} controller_rss={} KiB peak_rss={} KiB",
        percentile(&l, 0.50),
        percentile(&l, 0.90),
        percentile(&l, 0.99),
        l.last().unwrap(),
        rss,
        hwm
    );
    watch.abort();
    child.kill().await.unwrap();
}
