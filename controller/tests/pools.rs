//! Pool semantics end to end against the emulator: pool deletion under Services in use,
//! `avoidBuggyIPs`, `autoAssign: false`, pool by name, `serviceAllocation` priority and
//! selectors, sharing under `externalTrafficPolicy: Local`, and a relist after a watch gap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use ferrolb_shared::crd::IPAddressPool;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use kube_emulator::{DropMode, RequestMatcher};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn delete_pool(emu: &kube_emulator::Emulator, name: &str) {
    let pools: Api<IPAddressPool> = Api::namespaced(emu.client().await.unwrap(), "ferrolb-system");
    pools.delete(name, &DeleteParams::default()).await.unwrap();
}

fn local_service(name: &str, port: i32, app: &str, annotations: &[(&str, &str)]) -> Service {
    let mut s = lb_service(name, annotations);
    let spec = s.spec.as_mut().unwrap();
    spec.external_traffic_policy = Some("Local".into());
    spec.ports = Some(vec![serde_json::from_value(json!({"port": port})).unwrap()]);
    spec.selector = Some([("app".to_owned(), app.to_owned())].into());
    s
}

#[tokio::test]
async fn deleting_a_pool_in_use_revokes_and_the_address_is_handed_out_once() {
    let emu = emulator().await;
    pool(&emu, "a", &["192.0.2.1/32"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    create(&emu, &lb_service("one", &[])).await;
    wait_ips(&emu, "one", |v| v == [ip("192.0.2.1")]).await;

    delete_pool(&emu, "a").await;
    // The Service may not keep an address no pool holds any more, and is told why.
    wait_ips(&emu, "one", <[IpAddr]>::is_empty).await;
    let note = wait_event(&emu, "default", "one", "IPRevoked").await;
    assert!(note.contains("192.0.2.1"), "{note}");

    // The same address comes back in another pool while a second Service waits too:
    // exactly one of the two gets it.
    create(&emu, &lb_service("two", &[])).await;
    wait_event(&emu, "default", "two", "NoPoolForService").await;
    pool(&emu, "b", &["192.0.2.1/32"], json!({}));
    wait_until("one of the two Services to get 192.0.2.1", || async {
        let ips = all_ips(&emu).await;
        assert_no_duplicates(&ips);
        ips.values().any(|v| v == &[ip("192.0.2.1")])
    })
    .await;
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    let ips = all_ips(&emu).await;
    assert_no_duplicates(&ips);
    let holders = ips.values().filter(|v| !v.is_empty()).count();
    assert_eq!(holders, 1, "{ips:?}");
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn avoid_buggy_ips_and_auto_assign_false_pools() {
    let emu = emulator().await;
    // .255 and .0 lie inside the range; with avoidBuggyIPs only .254 and .1 are handed out.
    pool(
        &emu,
        "edge",
        &["198.51.100.254-198.51.101.1"],
        json!({"avoidBuggyIPs": true}),
    );
    pool(
        &emu,
        "manual",
        &["192.0.2.0/28"],
        json!({"autoAssign": false}),
    );
    let ctl = replica(&emu, "x", false).await;
    for name in ["s1", "s2", "s3"] {
        create(&emu, &lb_service(name, &[])).await;
    }
    wait_event(&emu, "default", "s3", "PoolExhausted").await;
    let mut got: Vec<IpAddr> = Vec::new();
    for name in ["s1", "s2"] {
        got.extend(wait_ips(&emu, name, |v| v.len() == 1).await);
    }
    got.sort();
    assert_eq!(got, vec![ip("198.51.100.254"), ip("198.51.101.1")]);
    // The autoAssign: false pool never served the overflow…
    assert!(all_ips(&emu).await["s3"].is_empty());
    // …but serves a Service that names it.
    create(
        &emu,
        &lb_service("named", &[("ferrolb.io/address-pool", "manual")]),
    )
    .await;
    wait_ips(&emu, "named", |v| v == [ip("192.0.2.0")]).await;
    // Asking for a skipped address of the buggy-IP pool is refused with the reason.
    create(
        &emu,
        &lb_service("buggy", &[("ferrolb.io/loadBalancerIPs", "198.51.100.255")]),
    )
    .await;
    let note = wait_event(&emu, "default", "buggy", "RequestedIPAvoided").await;
    assert!(note.contains("avoidBuggyIPs"), "{note}");
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn service_allocation_priority_and_service_selectors_pick_the_pool() {
    let emu = emulator().await;
    pool(&emu, "general", &["192.0.2.0/28"], json!({}));
    pool(
        &emu,
        "gold",
        &["198.51.100.0/28"],
        json!({"serviceAllocation": {"priority": 1,
               "serviceSelectors": [{"matchLabels": {"tier": "gold"}}]}}),
    );
    pool(
        &emu,
        "silver",
        &["203.0.113.0/28"],
        json!({"serviceAllocation": {"priority": 5}}),
    );
    let ctl = replica(&emu, "x", false).await;
    let mut gold = lb_service("vip", &[]);
    gold.metadata.labels = Some([("tier".to_owned(), "gold".to_owned())].into());
    create(&emu, &gold).await;
    create(&emu, &lb_service("plain", &[])).await;
    // The gold Service goes to the priority-1 pool that selects it; the other one skips
    // "gold" (not admitted) and takes "silver" (a priority beats none) over "general".
    wait_ips(&emu, "vip", |v| v == [ip("198.51.100.0")]).await;
    wait_ips(&emu, "plain", |v| v == [ip("203.0.113.0")]).await;
    // Naming a pool whose serviceAllocation excludes the Service is refused.
    create(
        &emu,
        &lb_service("sneaky", &[("ferrolb.io/address-pool", "gold")]),
    )
    .await;
    wait_event(&emu, "default", "sneaky", "PoolNotAllowed").await;
    assert!(all_ips(&emu).await["sneaky"].is_empty());
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn sharing_under_local_needs_the_same_pods() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    let shared = [
        ("ferrolb.io/allow-shared-ip", "k"),
        ("ferrolb.io/loadBalancerIPs", "192.0.2.5"),
    ];
    create(&emu, &local_service("web", 80, "web", &shared)).await;
    create(&emu, &local_service("web-tls", 443, "web", &shared)).await;
    wait_ips(&emu, "web", |v| v == [ip("192.0.2.5")]).await;
    wait_ips(&emu, "web-tls", |v| v == [ip("192.0.2.5")]).await;
    // Other pods behind the same address would be announced from the wrong nodes.
    create(&emu, &local_service("api", 8080, "api", &shared)).await;
    let note = wait_event(&emu, "default", "api", "SharingRefused").await;
    assert!(note.contains("192.0.2.5"), "{note}");
    assert!(all_ips(&emu).await["api"].is_empty());
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_service_deleted_during_a_watch_gap_is_released_after_the_relist() {
    let emu = emulator().await;
    pool(&emu, "tiny", &["192.0.2.1/32"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    create(&emu, &lb_service("holder", &[])).await;
    wait_ips(&emu, "holder", |v| v == [ip("192.0.2.1")]).await;
    create(&emu, &lb_service("waiting", &[])).await;
    wait_event(&emu, "default", "waiting", "PoolExhausted").await;

    // Cut the controller's Service watch and keep it from coming back…
    let faults = emu.faults();
    let services = RequestMatcher::any().resource("services");
    faults.fail_always(services.clone().watch(true), 503, None, None);
    assert!(faults.drop_watches(&services, DropMode::Clean) > 0);
    // …delete the holder meanwhile, and expire the history, so only a relist can tell.
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), "default");
    api.delete("holder", &DeleteParams::default())
        .await
        .unwrap();
    faults.compact(None);
    faults.clear();

    // The watch comes back with 410 Gone, relists, misses "holder", and frees its address.
    wait_ips(&emu, "waiting", |v| v == [ip("192.0.2.1")]).await;
    ctl.shutdown().await.unwrap();
}
