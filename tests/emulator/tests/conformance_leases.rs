//! Conformance: Lease-based leader election (spec E10, E12, E36). The
//! elector lives in `common`; its safety comes only from the server's
//! resourceVersion preconditions.

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn micro(t: k8s_openapi::jiff::Timestamp) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(t)).unwrap()
}

type Log = Arc<Mutex<Vec<(String, Instant, Step)>>>;

fn spawn_elector(e: Elector, log: Log, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let step = e
                .tick()
                .await
                .unwrap_or_else(|err| panic!("{}: {err}", e.id));
            log.lock()
                .unwrap()
                .push((e.id.clone(), Instant::now(), step));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn leads(log: &Log, id: &str) -> Vec<Instant> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(who, _, s)| who == id && s.leads())
        .map(|(_, t, _)| *t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_one_leads_then_the_other_takes_over() {
    let env = start().await;
    let log: Log = Arc::default();
    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let ea = Elector::new(
        env.client.clone(),
        "kube-system",
        "ferrolb-controller",
        "a",
        2,
    );
    let eb = Elector::new(
        env.client.clone(),
        "kube-system",
        "ferrolb-controller",
        "b",
        2,
    );
    let ta = spawn_elector(ea, log.clone(), stop_a.clone());
    let tb = spawn_elector(eb, log.clone(), stop_b.clone());

    // Run well past one lease duration: the leader keeps renewing, the other follows.
    wait_until("a leader renewed 15 times", || {
        leads(&log, "a").len() >= 15 || leads(&log, "b").len() >= 15
    })
    .await;
    let (la, lb) = (leads(&log, "a"), leads(&log, "b"));
    let (leader, follower, stop_leader, leader_task) = if la.len() >= 15 {
        ("a", "b", stop_a.clone(), ta)
    } else {
        ("b", "a", stop_b.clone(), tb)
    };
    assert!(
        la.is_empty() || lb.is_empty(),
        "exactly one leads: a led {} times, b {} times",
        la.len(),
        lb.len()
    );
    let follower_steps: Vec<Step> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(w, _, _)| w == follower)
        .map(|(_, _, s)| s.clone())
        .collect();
    assert!(
        follower_steps
            .iter()
            .all(|s| matches!(s, Step::Follower | Step::LostRace)),
        "{follower_steps:?}"
    );
    assert!(!follower_steps.is_empty());

    // The leader stops renewing; the follower takes over after expiry.
    stop_leader.store(true, Ordering::SeqCst);
    within("leader task stops", leader_task).await.unwrap();
    let last_renew = *leads(&log, leader).last().unwrap();
    wait_until("the follower takes over", || {
        !leads(&log, follower).is_empty()
    })
    .await;
    let took_over = leads(&log, follower)[0];
    assert!(
        took_over.duration_since(last_renew) >= Duration::from_millis(1800),
        "not before the lease expired: {:?}",
        took_over.duration_since(last_renew)
    );
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let l = leases
        .get("ferrolb-controller")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(l.holder_identity.as_deref(), Some(follower));
    assert_eq!(l.lease_transitions, Some(1));
    stop_a.store(true, Ordering::SeqCst);
    stop_b.store(true, Ordering::SeqCst);
    assert!(
        env.emu.journal().puts_without_resource_version().is_empty(),
        "every PUT carried an RV"
    );
}

/// E36 test idea: two electors race for an expired Lease from the same
/// observation; exactly one wins and the loser's write gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_for_an_expired_lease_has_one_winner() {
    let env = start().await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let old =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(30);
    let expired: Lease = obj(json!({"metadata": {"name": "l"}, "spec": {
        "holderIdentity": "gone", "leaseDurationSeconds": 5, "leaseTransitions": 3,
        "renewTime": micro(old), "acquireTime": micro(old)}}));
    leases
        .create(&PostParams::default(), &expired)
        .await
        .unwrap();
    for round in 0..5 {
        let ea = Elector::new(
            env.client.clone(),
            "kube-system",
            "l",
            &format!("a{round}"),
            5,
        );
        let eb = Elector::new(
            env.client.clone(),
            "kube-system",
            "l",
            &format!("b{round}"),
            5,
        );
        let seen = ea.observe().await.unwrap();
        assert!(
            !ea.held_by_other(seen.as_ref().unwrap()),
            "round {round}: lease expired"
        );
        let (ra, rb) = tokio::join!(ea.act(seen.clone()), eb.act(seen.clone()));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let wins = [&ra, &rb].iter().filter(|s| ***s == Step::Acquired).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} / {rb:?}");
        assert!(
            ra == Step::LostRace || rb == Step::LostRace,
            "the loser got 409"
        );
        let l = leases.get("l").await.unwrap().spec.unwrap();
        let winner = if ra == Step::Acquired { &ea.id } else { &eb.id };
        assert_eq!(l.holder_identity.as_ref(), Some(winner));
        assert_eq!(l.lease_transitions, Some(4 + round));
        // Expire it again for the next round.
        let old = micro(
            k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(30),
        );
        merge_patch(&leases, "l", json!({"spec": {"renewTime": old}}))
            .await
            .unwrap();
    }
}

/// E36: Lease validation and write semantics.
#[tokio::test]
async fn lease_validation_and_write_semantics() {
    let env = start().await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let mk = |spec: serde_json::Value| -> Lease {
        obj(json!({"metadata": {"name": "v"}, "spec": spec}))
    };
    for bad in [
        json!({"leaseDurationSeconds": 0}),
        json!({"leaseTransitions": -1}),
        json!({"preferredHolder": "x"}),
    ] {
        let s = api_status(
            leases
                .create(&PostParams::default(), &mk(bad.clone()))
                .await,
        );
        assert!(s.is_invalid(), "{bad}: {s:?}");
    }
    // MicroTime is stored as sent (microseconds kept).
    let t = "2026-01-02T03:04:05.123456Z";
    let l = leases
        .create(
            &PostParams::default(),
            &mk(json!({"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": t})),
        )
        .await
        .unwrap();
    assert!(l.metadata.generation.is_none(), "no generation on Leases");
    let raw_l = raw_get(
        &env.client,
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/v",
    )
    .await
    .json();
    assert_eq!(raw_l["spec"]["renewTime"], t);
    assert!(raw_l.get("status").is_none());
    // SSA with the fetched RV, as kube-coordinate does: stale → 409.
    let pp = PatchParams::apply("elector").force();
    let apply = |rv: &str, holder: &str| {
        Patch::Apply(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "v", "resourceVersion": rv}, "spec": {"holderIdentity": holder}}),
        )
    };
    let rv = l.metadata.resource_version.clone().unwrap();
    leases.patch("v", &pp, &apply(&rv, "b")).await.unwrap();
    assert!(api_status(leases.patch("v", &pp, &apply(&rv, "c")).await).is_conflict());
}
