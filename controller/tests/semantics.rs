//! Allocation semantics end to end: overlaps, pool shrink, dual-stack, sharing,
//! namespace selectors, invalid pools, class filtering, readiness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;
use ferrolb_controller::app::start;
use ferrolb_controller::translate::ClassFilter;
use ferrolb_shared::crd::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams};
use kube_emulator::EmulatorConfig;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn pool_condition(
    emu: &kube_emulator::Emulator,
    name: &str,
    type_: &str,
) -> Option<(String, String)> {
    let api: Api<IPAddressPool> = Api::namespaced(emu.client().await.unwrap(), "ferrolb-system");
    let p = api.get(name).await.unwrap();
    p.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.message))
}

#[tokio::test]
async fn overlapping_pools_are_flagged_and_the_overlap_never_assigned() {
    let emu = emulator().await;
    pool(&emu, "a", &["192.0.2.0-192.0.2.3"], json!({}));
    pool(&emu, "b", &["192.0.2.2-192.0.2.5"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    for p in ["a", "b"] {
        wait_until(&format!("Overlaps=True on {p}"), || async {
            pool_condition(&emu, p, "Overlaps")
                .await
                .is_some_and(|(s, _)| s == "True")
        })
        .await;
    }
    let (_, msg) = pool_condition(&emu, "a", "Overlaps").await.unwrap();
    assert!(msg.contains('b'), "{msg}");
    // Four non-overlapping addresses exist (.0 .1 .4 .5); six Services: four get them.
    for i in 0..6 {
        create(&emu, &lb_service(&format!("s{i}"), &[])).await;
    }
    create(
        &emu,
        &lb_service(
            "asks-overlap",
            &[("ferrolb.io/loadBalancerIPs", "192.0.2.2")],
        ),
    )
    .await;
    wait_until("four Services served", || async {
        all_ips(&emu)
            .await
            .values()
            .filter(|v| !v.is_empty())
            .count()
            == 4
    })
    .await;
    let ips = all_ips(&emu).await;
    assert_no_duplicates(&ips);
    for v in ips.values().flatten() {
        assert!(
            ![ip("192.0.2.2"), ip("192.0.2.3")].contains(v),
            "overlap address {v} assigned"
        );
    }
    let note = wait_event(&emu, "default", "asks-overlap", "RequestedIPInOverlap").await;
    assert!(note.contains("192.0.2.2"), "{note}");
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn shrinking_a_pool_revokes_with_a_warning_and_moves_the_service() {
    let emu = emulator().await;
    pool(&emu, "main", &["192.0.2.10/32"], json!({}));
    pool(&emu, "spare", &["198.51.100.1/32"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    create(
        &emu,
        &lb_service("s", &[("ferrolb.io/address-pool", "main")]),
    )
    .await;
    wait_ips(&emu, "s", |v| v == [ip("192.0.2.10")]).await;
    // The pool no longer holds the Service's address.
    pool(&emu, "main", &["192.0.2.20/32"], json!({}));
    let note = wait_event(&emu, "default", "s", "IPRevoked").await;
    assert!(note.contains("192.0.2.10"), "{note}");
    // It asked for pool main: it gets main's new address, never keeps the revoked one.
    wait_ips(&emu, "s", |v| v == [ip("192.0.2.20")]).await;
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn dual_stack_service_gets_one_address_per_family_in_order() {
    let emu = emulator_with(EmulatorConfig {
        service_cidrs: vec!["10.96.0.0/12".into(), "fd00:10:96::/112".into()],
        ..EmulatorConfig::default()
    })
    .await;
    pool(&emu, "ds", &["192.0.2.0/29", "2001:db8::/125"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    let mut s = lb_service("ds", &[]);
    let spec = s.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    create(&emu, &s).await;
    let ips = wait_ips(&emu, "ds", |v| v.len() == 2).await;
    assert!(ips[0].is_ipv6() && ips[1].is_ipv4(), "{ips:?}");
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn sharing_needs_the_same_key_and_distinct_ports() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    let shared = [
        ("ferrolb.io/allow-shared-ip", "k"),
        ("ferrolb.io/loadBalancerIPs", "192.0.2.5"),
    ];
    create(&emu, &lb_service("http", &shared)).await;
    let mut dns = lb_service("dns", &shared);
    dns.spec.as_mut().unwrap().ports = Some(vec![
        serde_json::from_value(json!({"port": 53, "protocol": "UDP"})).unwrap(),
    ]);
    create(&emu, &dns).await;
    wait_ips(&emu, "http", |v| v == [ip("192.0.2.5")]).await;
    wait_ips(&emu, "dns", |v| v == [ip("192.0.2.5")]).await;
    // Same key, same port 80: refused.
    create(&emu, &lb_service("clash", &shared)).await;
    let note = wait_event(&emu, "default", "clash", "SharingRefused").await;
    assert!(note.contains("80"), "{note}");
    // No key: the address is in use.
    create(
        &emu,
        &lb_service("nokey", &[("ferrolb.io/loadBalancerIPs", "192.0.2.5")]),
    )
    .await;
    wait_event(&emu, "default", "nokey", "RequestedIPInUse").await;
    let ips = all_ips(&emu).await;
    assert!(
        ips["clash"].is_empty() && ips["nokey"].is_empty(),
        "{ips:?}"
    );
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn namespace_selector_follows_namespace_labels() {
    let emu = emulator().await;
    emu.apply_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
        .unwrap();
    pool(
        &emu,
        "team",
        &["192.0.2.0/30"],
        json!({"serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]}}),
    );
    let ctl = replica(&emu, "x", false).await;
    create_in(&emu, "team-a", &lb_service("s", &[])).await;
    wait_event(&emu, "team-a", "s", "NoPoolForService").await;
    let ns: Api<Namespace> = Api::all(emu.client().await.unwrap());
    ns.patch(
        "team-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .unwrap();
    let got = wait_ips_in(&emu, "team-a", "s", |v| !v.is_empty()).await;
    assert!((ip("192.0.2.0")..=ip("192.0.2.3")).contains(&got[0]));
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_pool_gets_valid_false_with_the_field() {
    let emu = emulator().await;
    pool(&emu, "bad", &["192.0.2.0/33"], json!({}));
    let ctl = replica(&emu, "x", false).await;
    wait_until("Valid=False", || async {
        pool_condition(&emu, "bad", "Valid")
            .await
            .is_some_and(|(s, _)| s == "False")
    })
    .await;
    let (_, msg) = pool_condition(&emu, "bad", "Valid").await.unwrap();
    assert!(msg.contains("spec.addresses[0]"), "{msg}");
    ctl.shutdown().await.unwrap();
}

#[tokio::test]
async fn lb_class_flag_selects_only_that_class() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let mut settings = settings("x", false);
    settings.reconciler.class = ClassFilter {
        lb_class: Some("example.com/lb".into()),
    };
    let ctl = start(emu.client().await.unwrap(), settings).await.unwrap();
    let mut classed = lb_service("classed", &[]);
    classed.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    create(&emu, &classed).await;
    create(&emu, &lb_service("plain", &[])).await;
    wait_ips(&emu, "classed", |v| !v.is_empty()).await;
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    assert!(all_ips(&emu).await["plain"].is_empty());
    ctl.shutdown().await.unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn readyz_reports_leading_and_standby_replicas() {
    let emu = emulator().await;
    let a = replica(&emu, "a", true).await;
    wait_until("a leads", || async { a.leadership.is_leader() }).await;
    let b = replica(&emu, "b", true).await;
    wait_until("b ready as standby", || async {
        http_get(b.http_addr, "/readyz")
            .await
            .contains("ok: standby")
    })
    .await;
    wait_until("a ready as leader", || async {
        http_get(a.http_addr, "/readyz")
            .await
            .contains("ok: leading")
    })
    .await;
    assert!(
        http_get(a.http_addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let metrics = http_get(a.http_addr, "/metrics").await;
    assert!(metrics.contains("ferrolb_controller_leader 1"), "{metrics}");
    let metrics = http_get(b.http_addr, "/metrics").await;
    assert!(metrics.contains("ferrolb_controller_leader 0"), "{metrics}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = Service::default();
}
