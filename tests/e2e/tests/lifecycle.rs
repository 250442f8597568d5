//! Processes coming and going: a frozen speaker is dropped when the hold time expires, a
//! killed one as soon as the router notices, a SIGTERMed one at once; a restarted speaker
//! announces again; restarting the controllers changes no IP and no route; a BGP password
//! from a Secret (TCP MD5) must match before any route flows.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{base_lab, expect_hops, expect_hops_on, ip, service};
use ferrolb_e2e::Lab;
use ferrolb_e2e::lab::{LEASE_NAME, SYSTEM_NAMESPACE};
use ferrolb_e2e::{Port, RouterKind, TrafficPolicy};
use nix::sys::signal::Signal;

/// The base configuration's hold time.
const HOLD: Duration = Duration::from_secs(3);

on_both_routers!(processes_come_and_go);

async fn processes_come_and_go(router: RouterKind) {
    let Some(mut lab) = base_lab(router).await else {
        return;
    };
    let name = router.name();
    let all = [(1, true), (2, true), (3, true)];
    let web = service(&lab, "web", TrafficPolicy::Cluster, &all).await;
    expect_hops(&lab, &web, &[1, 2, 3]).await;

    // Frozen (SIGSTOP): the connection stays open, only the hold timer can tell.
    let t = Instant::now();
    lab.signal_speaker(2, Signal::SIGSTOP).unwrap();
    expect_hops(&lab, &web, &[1, 3]).await;
    let frozen = t.elapsed();
    eprintln!("{name}: frozen speaker dropped after {frozen:?} (hold time {HOLD:?})");
    assert!(
        frozen >= HOLD - Duration::from_millis(1500) && frozen <= HOLD + Duration::from_secs(3),
        "dropped after {frozen:?}, hold time {HOLD:?}"
    );
    lab.signal_speaker(2, Signal::SIGCONT).unwrap();
    expect_hops(&lab, &web, &[1, 2, 3]).await;

    // SIGKILL: no NOTIFICATION; gone within the hold time at the latest.
    let t = Instant::now();
    lab.stop_speaker(2, Signal::SIGKILL).await.unwrap();
    expect_hops(&lab, &web, &[1, 3]).await;
    let killed = t.elapsed();
    eprintln!("{name}: killed speaker dropped after {killed:?}");
    assert!(killed <= HOLD + Duration::from_secs(2), "{killed:?}");
    lab.start_speaker(2).unwrap();
    expect_hops(&lab, &web, &[1, 2, 3]).await;

    // SIGTERM: the speaker closes its sessions before it exits; the routes go at once.
    let t = Instant::now();
    lab.stop_speaker(3, Signal::SIGTERM).await.unwrap();
    expect_hops(&lab, &web, &[1, 2]).await;
    let termed = t.elapsed();
    eprintln!("{name}: SIGTERMed speaker withdrawn after {termed:?}");
    assert!(termed < Duration::from_secs(2), "{termed:?}");
    lab.start_speaker(3).unwrap();
    expect_hops(&lab, &web, &[1, 2, 3]).await;

    restart_controllers(&mut lab, &web).await;
    md5_from_secret(&lab, &web).await;
}

/// The leader replaced twice, once gracefully (SIGTERM: it releases the Lease) and once
/// by SIGKILL: the Service keeps its IP, the router sees no change at all, and whoever
/// leads afterwards still allocates.
async fn restart_controllers(lab: &mut Lab, web: &str) {
    let c = lab.cluster.clone();
    let ip_before = ip(lab, "web").await;
    let before = lab.router.snapshot().await.unwrap();
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        let leader = c
            .lease_holder(SYSTEM_NAMESPACE, LEASE_NAME)
            .await
            .unwrap()
            .expect("no controller holds the lease");
        let r = usize::from(leader != Lab::controller_identity(0));
        lab.stop_controller(r, sig).await.unwrap();
        let restarted = jiff::Timestamp::now();
        lab.start_controller(r).unwrap();
        let t = Instant::now();
        let now = ferrolb_e2e::sys::wait_until(
            "a controller to renew the lease after the restart",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                c.lease_renewed_since(SYSTEM_NAMESPACE, LEASE_NAME, restarted)
                    .await
            },
        )
        .await
        .unwrap();
        eprintln!(
            "{leader} stopped with {sig}; {now} leads after {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        ip(lab, "web").await,
        ip_before,
        "a controller restart changed the IP"
    );
    let after = lab
        .assert_router_quiet(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "the router saw changes across controller restarts"
    );
    // The leader serves new Services.
    let api = service(lab, "api", TrafficPolicy::Cluster, &[(1, true)]).await;
    assert_ne!(api, web);
    expect_hops(lab, &api, &[1, 2, 3]).await;
}

/// A peer on the router's MD5 port with its password in a Secret: a wrong password never
/// brings the session up; the right one does, and the routes follow.
async fn md5_from_secret(lab: &Lab, web: &str) {
    let c = &lab.cluster;
    c.secret(SYSTEM_NAMESPACE, "bgp-md5", "password", "not-the-password")
        .await
        .unwrap();
    c.apply_yaml(
        r#"
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: secure, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 10.0.2.1
  holdTime: 3s
  keepaliveTime: 1s
  connectTime: 1s
  passwordSecret: {name: bgp-md5}
"#,
    )
    .await
    .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let up = lab.router.sessions().await.unwrap();
        assert!(
            !up.iter()
                .any(|s| s.established
                    && Port::node_of(s.neighbor).is_some_and(|n| n.0 == Port::Md5)),
            "a session with the wrong MD5 password came up: {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.secret(
        SYSTEM_NAMESPACE,
        "bgp-md5",
        "password",
        &lab.cfg.md5_password,
    )
    .await
    .unwrap();
    expect_hops_on(lab, Port::Md5, web, &[1, 2, 3]).await;
}
