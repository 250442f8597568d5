//! Graceful restart (RFC 4724) agreed between a speaker and the router: a speaker stopped
//! with SIGTERM closes its session without a NOTIFICATION, and the router keeps forwarding
//! to that node on the routes it now holds as stale; the restarted speaker brings the
//! session back, and the routes never leave the router in between. What the speaker no
//! longer announces after its restart (an endpoint that went not ready meanwhile) leaves
//! the router once the restarted session has sent everything (End-of-RIB). Without
//! graceful restart, SIGTERM withdraws at once (`lifecycle.rs`).

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{endpoints, expect_hops, service};
use ferrolb_e2e::lab::DEADLINE;
use ferrolb_e2e::router::SessionInfo;
use ferrolb_e2e::{Lab, Port, RoutePath, RouterKind, TrafficPolicy};
use nix::sys::signal::Signal;

/// The common base configuration with graceful restart enabled on the peer.
fn config() -> String {
    let config = common::BASE.replace(
        "connectTime: 1s}",
        "connectTime: 1s, enableGracefulRestart: true}",
    );
    assert!(config.contains("enableGracefulRestart: true"));
    config
}

/// How long the restarting node stays down: longer than the hold time (3 s), so routes
/// still there afterwards are kept by graceful restart, not by a hold timer running.
const DOWN_FOR: Duration = Duration::from_secs(4);

/// The restarting node.
const NODE: usize = 2;

on_both_routers!(graceful_restart_keeps_routes);

async fn graceful_restart_keeps_routes(router: RouterKind) {
    let Some(mut lab) = ferrolb_e2e::lab::for_test(router).await else {
        return;
    };
    lab.cluster.apply_yaml(&config()).await.unwrap();
    lab.wait_sessions(lab.cfg.nodes).await.unwrap();
    let name = router.name();
    let web = service(
        &lab,
        "web",
        TrafficPolicy::Cluster,
        &[(1, true), (2, true), (3, true)],
    )
    .await;
    let local = service(&lab, "local", TrafficPolicy::Local, &[(1, true), (2, true)]).await;
    expect_hops(&lab, &web, &[1, 2, 3]).await;
    expect_hops(&lab, &local, &[1, 2]).await;
    let before = node_session(&lab).await.expect("node 2's session");
    assert!(before.established && !before.restart_wait, "{before:?}");
    let mut watch = Watch::new(&web);

    // SIGTERM: the session closes without NOTIFICATION; the router keeps node 2's paths and
    // runs its restart timer for the node.
    let t = Instant::now();
    lab.signal_speaker(NODE, Signal::SIGTERM).unwrap();
    watch
        .until(
            &lab,
            "the router waiting for node 2 to restart (graceful restart)",
            |o| {
                o.session
                    .as_ref()
                    .is_some_and(|s| !s.established && s.restart_wait)
            },
        )
        .await;
    eprintln!(
        "{name}: session down, restart timer running {:?} after SIGTERM",
        t.elapsed()
    );
    lab.stop_speaker(NODE, Signal::SIGTERM).await.unwrap();
    if router == RouterKind::Frr {
        // FRR marks the kept paths stale (BIRD shows no mark on the routes themselves).
        watch
            .until(&lab, "node 2's paths marked stale", |o| {
                node_path(&o.web).is_some_and(|p| p.stale)
            })
            .await;
    }

    // While it is down nobody can withdraw node 2's paths, not even the Local Service's
    // path whose endpoint goes not ready now.
    endpoints(&lab, "local", &[(1, true), (2, false)]).await;
    watch
        .during(&lab, DOWN_FOR, |o| node_path(&o.local).is_some())
        .await;

    // Restarted: the session comes back, the stale marks go, and the path that the
    // restarted speaker no longer announces leaves once it has sent its full table.
    let t = Instant::now();
    lab.start_speaker(NODE).unwrap();
    watch
        .until(&lab, "node 2's session re-established", |o| {
            o.session.as_ref().is_some_and(|s| {
                s.established && !s.restart_wait && s.incarnation != before.incarnation
            })
        })
        .await;
    eprintln!("{name}: session back {:?} after the restart", t.elapsed());
    watch
        .until(
            &lab,
            "no stale path left, the Local Service's path from node 2 gone",
            |o| node_path(&o.local).is_none() && o.web.iter().chain(&o.local).all(|p| !p.stale),
        )
        .await;
    assert!(
        watch.gaps.is_empty(),
        "{web} lost node 2's path during the restart: {:?}",
        watch.gaps
    );
    eprintln!(
        "{name}: restart complete {:?} after the restart; node 2's path to {web} present in all {} router samples",
        t.elapsed(),
        watch.samples
    );
    expect_hops(&lab, &local, &[1]).await;
}

/// The router's session with the restarting node.
async fn node_session(lab: &Lab) -> Option<SessionInfo> {
    let node = IpAddr::V4(Port::Ebgp.node_ip(NODE));
    lab.router
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.neighbor == node)
}

/// The restarting node's path among `paths`.
fn node_path(paths: &[RoutePath]) -> Option<&RoutePath> {
    paths.iter().find(|p| p.node() == Some((Port::Ebgp, NODE)))
}

/// What the router holds at one poll.
struct Observation {
    web: Vec<RoutePath>,
    local: Vec<RoutePath>,
    session: Option<SessionInfo>,
}

/// Polls the router through the whole restart and remembers every sample in which the
/// Cluster Service's route lacked a node.
struct Watch {
    web: String,
    local: String,
    samples: usize,
    gaps: Vec<(Duration, Vec<RoutePath>)>,
    start: Instant,
}

impl Watch {
    fn new(web: &str) -> Watch {
        Watch {
            web: web.to_owned(),
            local: String::new(),
            samples: 0,
            gaps: Vec::new(),
            start: Instant::now(),
        }
    }

    async fn observe(&mut self, lab: &Lab) -> Observation {
        let table = lab.router.table().await.unwrap();
        if self.local.is_empty() {
            self.local = Lab::host_prefix(
                lab.cluster
                    .service_ips(ferrolb_e2e::lab::APP_NAMESPACE, "local")
                    .await
                    .unwrap()[0],
            );
        }
        let o = Observation {
            web: table.get(&self.web).cloned().unwrap_or_default(),
            local: table.get(&self.local).cloned().unwrap_or_default(),
            session: node_session(lab).await,
        };
        self.samples += 1;
        let nodes: BTreeSet<usize> = o
            .web
            .iter()
            .filter_map(RoutePath::node)
            .map(|(_, n)| n)
            .collect();
        if nodes != BTreeSet::from([1, 2, 3]) {
            self.gaps.push((self.start.elapsed(), o.web.clone()));
        }
        o
    }

    /// Polls until `done` holds (deadline [`DEADLINE`]).
    async fn until(&mut self, lab: &Lab, what: &str, done: impl Fn(&Observation) -> bool) {
        let start = Instant::now();
        loop {
            let o = self.observe(lab).await;
            if done(&o) {
                return;
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; router holds web {:?}, local {:?}, session {:?}\n{}",
                    o.web,
                    o.local,
                    o.session,
                    lab.logs(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls for `period`, `holds` true at every sample.
    async fn during(&mut self, lab: &Lab, period: Duration, holds: impl Fn(&Observation) -> bool) {
        let start = Instant::now();
        while start.elapsed() < period {
            let o = self.observe(lab).await;
            assert!(
                holds(&o),
                "after {:?} down: router holds web {:?}, local {:?}, session {:?}",
                start.elapsed(),
                o.web,
                o.local,
                o.session
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
