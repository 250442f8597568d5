//! Restarts and leader changes must never change or duplicate an address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use serde_json::json;

#[tokio::test]
async fn restart_changes_no_ip() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/26"], json!({}));
    let first = replica(&emu, "a", false).await;
    for i in 0..20 {
        create(&emu, &lb_service(&format!("s{i}"), &[])).await;
    }
    wait_until("20 Services with addresses", || async {
        all_ips(&emu)
            .await
            .values()
            .filter(|v| !v.is_empty())
            .count()
            == 20
    })
    .await;
    let before = all_ips(&emu).await;
    assert_no_duplicates(&before);
    first.shutdown().await.unwrap();

    // While no controller runs, more Services arrive.
    for i in 20..30 {
        create(&emu, &lb_service(&format!("s{i}"), &[])).await;
    }
    emu.clear_journal();
    let second = replica(&emu, "b", false).await;
    wait_until("30 Services with addresses", || async {
        all_ips(&emu)
            .await
            .values()
            .filter(|v| !v.is_empty())
            .count()
            == 30
    })
    .await;
    let after = all_ips(&emu).await;
    assert_no_duplicates(&after);
    for (name, ips) in &before {
        assert_eq!(&after[name], ips, "{name} changed address across a restart");
    }
    // Zero churn: the new controller wrote only the new Services' status.
    let journal = emu.journal();
    let rewritten: Vec<&str> = journal
        .writes()
        .iter()
        .filter(|e| e.resource == "services" && e.subresource.as_deref() == Some("status"))
        .filter_map(|e| e.name.as_deref())
        .filter(|n| before.contains_key(*n))
        .collect();
    assert!(rewritten.is_empty(), "rewrote {rewritten:?}");
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_replicas_leader_killed_during_churn_never_duplicates() {
    let emu = emulator().await;
    pool(&emu, "p", &["10.10.0.0/24"], json!({}));
    let a = replica(&emu, "a", true).await;
    let b = replica(&emu, "b", true).await;
    wait_until("a leader", || async {
        a.leadership.is_leader() || b.leadership.is_leader()
    })
    .await;
    let (leader, standby) = if a.leadership.is_leader() {
        (a, b)
    } else {
        (b, a)
    };

    let client = emu.client().await.unwrap();
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let mut leader = Some(leader);
    let mut live: Vec<String> = Vec::new();
    let mut history: BTreeMap<String, Vec<std::net::IpAddr>> = BTreeMap::new();
    for i in 0..120 {
        let name = format!("c{i}");
        create(&emu, &lb_service(&name, &[])).await;
        live.push(name);
        if i % 5 == 4 {
            // Delete an older one now and then, so addresses get reused.
            let victim = live.remove(i % 3);
            svcs.delete(&victim, &DeleteParams::default())
                .await
                .unwrap();
        }
        if i == 40 {
            // Crash the leader mid-churn: no Lease release, writes in flight are cut.
            leader.take().unwrap().abort();
        }
        if i % 10 == 0 {
            let snapshot = all_ips(&emu).await;
            assert_no_duplicates(&snapshot);
            for (name, ips) in snapshot {
                if ips.is_empty() {
                    continue;
                }
                if let Some(old) = history.insert(name.clone(), ips.clone()) {
                    assert_eq!(old, ips, "{name} changed address");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("the standby to lead", || async {
        standby.leadership.is_leader()
    })
    .await;
    wait_until("every live Service to have an address", || async {
        let ips = all_ips(&emu).await;
        assert_no_duplicates(&ips);
        live.iter()
            .all(|n| ips.get(n).is_some_and(|v| v.len() == 1))
    })
    .await;
    let final_ips = all_ips(&emu).await;
    assert_no_duplicates(&final_ips);
    for (name, ips) in &final_ips {
        if let Some(old) = history.get(name) {
            assert_eq!(old, ips, "{name} changed address across the failover");
        }
    }
    standby.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_writing_and_resumes_after_reacquiring() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let ctl = replica(&emu, "a", true).await;
    wait_until("a leads", || async { ctl.leadership.is_leader() }).await;
    create(&emu, &lb_service("before", &[])).await;
    wait_ips(&emu, "before", |v| v.len() == 1).await;
    // The Lease can no longer be renewed.
    emu.faults().fail_always(
        kube_emulator::RequestMatcher::any().resource("leases"),
        500,
        Some("InternalError"),
        None,
    );
    wait_until("a to step down", || async { !ctl.leadership.is_leader() }).await;
    emu.clear_journal();
    create(&emu, &lb_service("during", &[])).await;
    // Give a (wrongly) still-writing replica ample time to act.
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    let journal = emu.journal();
    let status_writes: Vec<_> = journal
        .writes()
        .into_iter()
        .filter(|e| e.resource == "services" && e.subresource.as_deref() == Some("status"))
        .collect();
    assert!(
        status_writes.is_empty(),
        "a non-leader wrote: {status_writes:?}"
    );
    assert!(all_ips(&emu).await["during"].is_empty());
    // The API heals: it leads again and serves the waiting Service.
    emu.faults().clear();
    wait_ips(&emu, "during", |v| v.len() == 1).await;
    assert_no_duplicates(&all_ips(&emu).await);
    ctl.shutdown().await.unwrap();
}
