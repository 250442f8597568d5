//! The controller against the in-process API emulator: Services get addresses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use ferrolb_shared::crd::IPAddressPool;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn service_gets_an_ip_from_the_pool_and_one_normal_event() {
    let emu = emulator().await;
    pool(&emu, "default", &["192.0.2.10-192.0.2.12"], json!({}));
    let ctl = replica(&emu, "a", false).await;
    create(&emu, &lb_service("web", &[])).await;
    let ips = wait_ips(&emu, "web", |ips| !ips.is_empty()).await;
    assert_eq!(ips.len(), 1);
    assert!(
        (ip("192.0.2.10")..=ip("192.0.2.12")).contains(&ips[0]),
        "{ips:?}"
    );

    // The status write carried a resourceVersion and our field manager.
    let client = emu.client().await.unwrap();
    let journal = emu.journal();
    let status_writes: Vec<_> = journal
        .writes()
        .into_iter()
        .filter(|e| e.path.contains("/services/") && e.path.ends_with("/status"))
        .collect();
    assert!(!status_writes.is_empty());
    for w in &status_writes {
        assert!(
            w.body_resource_version().is_some(),
            "unfenced write {:?}",
            w.path
        );
    }

    // One Normal event naming the address; no more after the pool status churns a bit.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_until("the IPAllocated event", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("IPAllocated"))
        }
    })
    .await;
    // Pool status shows one assigned IPv4 address.
    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), "ferrolb-system");
    wait_until("pool status counts", || {
        let pools = pools.clone();
        async move {
            let p = pools.get("default").await.unwrap();
            p.status
                .is_some_and(|s| s.assigned_ipv4 == 1 && s.available_ipv4 == 2)
        }
    })
    .await;
    let allocated: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("IPAllocated"))
        .collect();
    assert_eq!(allocated.len(), 1);
    assert!(
        allocated[0].series.is_none(),
        "event repeated: {:?}",
        allocated[0].series
    );
    assert!(
        allocated[0]
            .note
            .as_deref()
            .unwrap()
            .contains(&ips[0].to_string())
    );

    // Metrics show the allocation and pool counts.
    let text = ctl.metrics.encode();
    assert!(text.contains("ferrolb_allocations_total 1"), "{text}");
    assert!(
        text.contains("ferrolb_pool_addresses_in_use{pool=\"default\",family=\"IPv4\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ferrolb_service_ip_latency_seconds_count 1"),
        "{text}"
    );
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn exhausted_pool_warns_once_and_deleting_a_service_frees_its_ip() {
    let emu = emulator().await;
    pool(&emu, "tiny", &["192.0.2.1/32"], json!({}));
    let ctl = replica(&emu, "a", false).await;
    create(&emu, &lb_service("first", &[])).await;
    wait_ips(&emu, "first", |ips| ips == [ip("192.0.2.1")]).await;
    create(&emu, &lb_service("second", &[])).await;
    let client = emu.client().await.unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let warning_for_second = || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("second")
                })
                .collect::<Vec<_>>()
        }
    };
    wait_until("PoolExhausted warning", || async {
        warning_for_second()
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("PoolExhausted"))
    })
    .await;
    // Touch the waiting Service (a resync-like update): no second warning.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    svcs.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    emu.faults()
        .touch("", "services", "default", "second")
        .unwrap();
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    let warnings = warning_for_second().await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].series.is_none());
    assert!(all_ips(&emu).await["second"].is_empty());

    // Deleting the holder frees the address for the waiting Service.
    svcs.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    wait_ips(&emu, "second", |ips| ips == [ip("192.0.2.1")]).await;
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn requested_ip_annotation_and_metallb_spelling() {
    let emu = emulator().await;
    pool(&emu, "blue", &["192.0.2.0/28"], json!({}));
    pool(
        &emu,
        "green",
        &["198.51.100.0/28"],
        json!({"autoAssign": false}),
    );
    let ctl = replica(&emu, "a", false).await;
    create(
        &emu,
        &lb_service("asks", &[("ferrolb.io/loadBalancerIPs", "192.0.2.7")]),
    )
    .await;
    create(
        &emu,
        &lb_service(
            "legacy",
            &[("metallb.universe.tf/loadBalancerIPs", "198.51.100.3")],
        ),
    )
    .await;
    create(
        &emu,
        &lb_service("by-pool", &[("metallb.io/address-pool", "green")]),
    )
    .await;
    create(
        &emu,
        &lb_service("outside", &[("ferrolb.io/loadBalancerIPs", "203.0.113.1")]),
    )
    .await;
    wait_ips(&emu, "asks", |ips| ips == [ip("192.0.2.7")]).await;
    wait_ips(&emu, "legacy", |ips| ips == [ip("198.51.100.3")]).await;
    let by_pool = wait_ips(&emu, "by-pool", |ips| !ips.is_empty()).await;
    assert!((ip("198.51.100.0")..=ip("198.51.100.15")).contains(&by_pool[0]));
    // Not in any pool: a Warning with the reason, and no address.
    let events: Api<Event> = Api::namespaced(emu.client().await.unwrap(), "default");
    wait_until("RequestedIPNotInAllowedPool warning", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("RequestedIPNotInAllowedPool")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("outside")
                })
        }
    })
    .await;
    assert!(all_ips(&emu).await["outside"].is_empty());
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn service_that_stops_being_a_load_balancer_is_cleared_and_its_ip_reused() {
    let emu = emulator().await;
    pool(&emu, "one", &["192.0.2.1/32"], json!({}));
    let ctl = replica(&emu, "a", false).await;
    create(&emu, &lb_service("a", &[])).await;
    wait_ips(&emu, "a", |ips| ips == [ip("192.0.2.1")]).await;
    create(&emu, &lb_service("b", &[])).await;
    let svcs: Api<Service> = Api::namespaced(emu.client().await.unwrap(), "default");
    svcs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"type": "ClusterIP", "allocateLoadBalancerNodePorts": null,
            "ports": [{"port": 80, "nodePort": null}]}}),
        ),
    )
    .await
    .unwrap();
    wait_ips(&emu, "a", <[IpAddr]>::is_empty).await;
    wait_ips(&emu, "b", |ips| ips == [ip("192.0.2.1")]).await;
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_load_balancer_classes_are_left_alone() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let ctl = replica(&emu, "a", false).await;
    let mut other = lb_service("other", &[]);
    other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    create(&emu, &other).await;
    create(&emu, &lb_service("mine", &[])).await;
    wait_ips(&emu, "mine", |ips| !ips.is_empty()).await;
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    assert!(all_ips(&emu).await["other"].is_empty());
    assert!(
        emu.journal()
            .writes()
            .iter()
            .all(|e| !e.path.ends_with("/services/other/status")),
        "wrote to another class's Service"
    );
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_patch_with_a_stale_resource_version_is_refused() {
    // The fence every status write relies on: the API answers 409 to a stale version.
    let emu = emulator().await;
    create(&emu, &lb_service("s", &[])).await;
    let api: Api<Service> = Api::namespaced(emu.client().await.unwrap(), "default");
    let stale = api
        .get("s")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    let err = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": stale},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
}
