//! Leader election against the in-process API emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ferrolb_controller::leader::{LeaderConfig, LeaderElector, Leadership};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kube_emulator::{Emulator, EmulatorConfig, RequestMatcher};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

fn cfg(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_name: "ferrolb-controller".into(),
        namespace: "kube-system".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

struct Replica {
    leadership: Leadership,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(emu: &Emulator, identity: &str) -> Replica {
    let client = emu.client().await.unwrap();
    let (elector, leadership) = LeaderElector::new(client, cfg(identity));
    let stop = CancellationToken::new();
    let task = tokio::spawn(elector.run(stop.clone()));
    Replica {
        leadership,
        stop,
        task,
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn holder(emu: &Emulator) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(emu.client().await.unwrap(), "kube-system");
    api.get_opt("ferrolb-controller")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn two_electors_exactly_one_leads() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = replica(&emu, "a").await;
    let b = replica(&emu, "b").await;
    wait_until("a leader", || {
        a.leadership.is_leader() || b.leadership.is_leader()
    })
    .await;
    // Across many renewal rounds, never both, and the Lease names the one that leads.
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < end {
        assert!(
            !(a.leadership.is_leader() && b.leadership.is_leader()),
            "both replicas lead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = if a.leadership.is_leader() { "a" } else { "b" };
    assert_eq!(holder(&emu).await.as_deref(), Some(leader));
    // Every Lease write carried a resourceVersion precondition.
    assert!(emu.journal().puts_without_resource_version().is_empty());
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_stops_renewing() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = replica(&emu, "a").await;
    wait_until("a to lead", || a.leadership.is_leader()).await;
    let b = replica(&emu, "b").await;
    // b sees a valid Lease held by a and stays standby.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!b.leadership.is_leader());
    // a dies without releasing (aborted task: no graceful shutdown).
    a.task.abort();
    let died = tokio::time::Instant::now();
    wait_until("b to take over", || b.leadership.is_leader()).await;
    let took = died.elapsed();
    // Takeover waits for the lease duration (3 s) measured from b's first sight of the
    // last record, plus at most a couple of retry periods.
    assert!(
        took <= Duration::from_secs(3) + Duration::from_secs(2),
        "took {took:?}"
    );
    assert_eq!(holder(&emu).await.as_deref(), Some("b"));
    b.stop.cancel();
}

#[tokio::test]
async fn graceful_shutdown_releases_so_standby_takes_over_quickly() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = replica(&emu, "a").await;
    wait_until("a to lead", || a.leadership.is_leader()).await;
    let b = replica(&emu, "b").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.stop.cancel();
    tokio::time::timeout(DEADLINE, a.task)
        .await
        .unwrap()
        .unwrap();
    assert!(!a.leadership.is_leader());
    let released = tokio::time::Instant::now();
    wait_until("b to take over", || b.leadership.is_leader()).await;
    // Well under the 3 s lease duration: no waiting for expiry.
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "took {:?}",
        released.elapsed()
    );
    b.stop.cancel();
}

#[tokio::test]
async fn leader_that_cannot_renew_stops_leading_before_the_lease_expires() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = replica(&emu, "a").await;
    wait_until("a to lead", || a.leadership.is_leader()).await;
    // Every Lease request now fails: a can no longer renew.
    emu.faults().fail_always(
        RequestMatcher::any().resource("leases"),
        500,
        Some("InternalError"),
        None,
    );
    let cut = tokio::time::Instant::now();
    wait_until("a to step down", || !a.leadership.is_leader()).await;
    // Steps down within the renew deadline (2 s) of its last renewal: before the Lease
    // (3 s) could be taken by anyone else.
    assert!(
        cut.elapsed() < Duration::from_secs(3),
        "took {:?}",
        cut.elapsed()
    );
    a.stop.cancel();
}

#[tokio::test]
async fn a_stolen_lease_makes_the_old_leader_step_down() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = replica(&emu, "a").await;
    wait_until("a to lead", || a.leadership.is_leader()).await;
    // Someone else overwrites the Lease (as a replica with a skewed view could).
    let api: Api<Lease> = Api::namespaced(emu.client().await.unwrap(), "kube-system");
    let mut lease = api.get("ferrolb-controller").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(60);
    api.replace("ferrolb-controller", &PostParams::default(), &lease)
        .await
        .unwrap();
    wait_until("a to step down", || !a.leadership.is_leader()).await;
    assert_eq!(holder(&emu).await.as_deref(), Some("intruder"));
    a.stop.cancel();
}
