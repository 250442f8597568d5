//! The API server goes away for a minute (every connection and watch dropped, nothing
//! listening): the speakers keep announcing exactly what they announced, and when it comes
//! back and every client has re-listed, still nothing changes at the router.

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{base_lab, endpoints, expect_hops, ip, service};
use ferrolb_e2e::{RouterKind, TrafficPolicy};

/// How long the API server stays down (`FERROLB_E2E_OUTAGE_SECS`, default 60).
fn outage() -> Duration {
    let secs = std::env::var("FERROLB_E2E_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

on_both_routers!(api_server_outage_changes_nothing);

async fn api_server_outage_changes_nothing(router: RouterKind) {
    let Some(lab) = base_lab(router).await else {
        return;
    };
    let local = service(&lab, "web", TrafficPolicy::Local, &[(1, true), (2, true)]).await;
    let cluster = service(&lab, "db", TrafficPolicy::Cluster, &[(3, true)]).await;
    expect_hops(&lab, &local, &[1, 2]).await;
    expect_hops(&lab, &cluster, &[1, 2, 3]).await;
    let ips = (ip(&lab, "web").await, ip(&lab, "db").await);
    // Every client's watches are open before the outage: the count has stopped changing
    // (the same over ten polls, 1 s).
    let mut seen = (lab.api.watch_count(), 0u32);
    ferrolb_e2e::sys::wait_until(
        "the number of open watches to settle",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let now = lab.api.watch_count();
            seen = if now == seen.0 {
                (now, seen.1 + 1)
            } else {
                (now, 0)
            };
            let settled = seen.1 >= 10 && now > 0;
            async move { Ok(settled.then_some(())) }
        },
    )
    .await
    .unwrap();
    let watches = lab.api.watch_count();

    lab.api.stop().await.unwrap();
    let before = lab.assert_router_quiet(outage()).await.unwrap();
    lab.api.resume().await.unwrap();

    // Clients come back with their own backoff; wait until every watch is open again,
    // then make sure the re-lists changed nothing.
    let t = Instant::now();
    ferrolb_e2e::sys::wait_until(
        &format!("{watches} watches open again"),
        Duration::from_secs(90),
        Duration::from_millis(100),
        || async { Ok((lab.api.watch_count() >= watches).then_some(())) },
    )
    .await
    .unwrap();
    eprintln!("{}: clients back after {:?}", router.name(), t.elapsed());
    let after = lab
        .assert_router_quiet(Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "the router changed across the API server outage"
    );
    assert_eq!((ip(&lab, "web").await, ip(&lab, "db").await), ips);

    // And the speakers follow changes again.
    endpoints(&lab, "web", &[(1, true), (2, false)]).await;
    expect_hops(&lab, &local, &[1]).await;
}
