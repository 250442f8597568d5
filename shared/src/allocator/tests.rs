//! Behaviour tables for the allocator, one section per rule of DESIGN §3.

use std::net::IpAddr;

use super::*;

/// Addresses granted, or the refusal reason.
type Outcome = Result<Vec<IpAddr>, String>;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn pool(name: &str, ranges: &[&str]) -> PoolConfig {
    PoolConfig::new(name, ranges.iter().map(|r| r.parse().unwrap()).collect())
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest::new("default", name)
}

fn alloc_with(pools: Vec<PoolConfig>) -> Allocator {
    let mut a = Allocator::new();
    let report = a.set_pools(pools);
    assert!(report.duplicates.is_empty());
    a
}

fn got(a: &mut Allocator, req: &ServiceRequest) -> Outcome {
    let r = a
        .allocate(req)
        .map(|al| al.ips)
        .map_err(|e| e.reason().to_owned());
    a.check_invariants().unwrap();
    r
}

fn ok(list: &[&str]) -> Outcome {
    Ok(ips(list))
}

fn refused(reason: &str) -> Outcome {
    Err(reason.to_owned())
}

fn allocation(priority: Option<i32>) -> ServiceAllocation {
    ServiceAllocation {
        priority,
        ..Default::default()
    }
}

// ----- pool selection ------------------------------------------------------------------

#[test]
fn pool_order_table() {
    let pools = || {
        vec![
            pool("z-open", &["10.0.9.0/30"]),
            pool("a-open", &["10.0.1.0/30"]),
            pool("no-prio", &["10.0.2.0/30"]).allocation(allocation(None)),
            pool("prio-5", &["10.0.3.0/30"]).allocation(allocation(Some(5))),
            pool("prio-1", &["10.0.4.0/30"]).allocation(allocation(Some(1))),
            pool("manual", &["10.0.5.0/30"]).auto_assign(false),
            pool("team-b", &["10.0.6.0/30"]).allocation(ServiceAllocation {
                priority: Some(0),
                namespaces: vec!["b".into()],
                ..Default::default()
            }),
        ]
    };
    let a = alloc_with(pools());
    assert_eq!(
        a.pool_order(&svc("x")).unwrap(),
        vec!["prio-1", "prio-5", "no-prio", "a-open", "z-open"],
        "matching pools by priority, unset priority last, then open pools by name; \
         autoAssign false and non-matching pools left out"
    );
    let in_b = ServiceRequest::new("b", "x");
    assert_eq!(a.pool_order(&in_b).unwrap()[0], "team-b");
    assert_eq!(
        a.pool_order(&svc("x").in_pool("manual")).unwrap(),
        vec!["manual"]
    );
    assert_eq!(
        a.pool_order(&svc("x").in_pool("team-b"))
            .unwrap_err()
            .reason(),
        "PoolNotAllowed"
    );
    assert_eq!(
        a.pool_order(&svc("x").in_pool("nope"))
            .unwrap_err()
            .reason(),
        "PoolNotFound"
    );
    // The first pool in order is used; when full, the next.
    let mut a = alloc_with(pools());
    let order: Vec<Outcome> = (0..6)
        .map(|i| got(&mut a, &svc(&format!("s{i}"))))
        .collect();
    assert_eq!(
        order,
        vec![
            ok(&["10.0.4.0"]),
            ok(&["10.0.4.1"]),
            ok(&["10.0.4.2"]),
            ok(&["10.0.4.3"]),
            ok(&["10.0.3.0"]),
            ok(&["10.0.3.1"]),
        ]
    );
}

#[test]
fn service_allocation_namespaces_and_selectors_table() {
    let restricted = |alloc: ServiceAllocation| {
        alloc_with(vec![pool("only", &["10.0.0.0/30"]).allocation(alloc)])
    };
    let by_ns = ServiceAllocation {
        namespaces: vec!["team-a".into()],
        ..Default::default()
    };
    let by_ns_selector = ServiceAllocation {
        namespace_selectors: vec![LabelSelector::labels([("tier", "prod")])],
        ..Default::default()
    };
    let by_both_ns = ServiceAllocation {
        namespaces: vec!["team-a".into()],
        namespace_selectors: vec![LabelSelector::labels([("tier", "prod")])],
        ..Default::default()
    };
    let by_svc = ServiceAllocation {
        service_selectors: vec![
            LabelSelector::labels([("app", "web")]),
            LabelSelector::default().and(LabelRequirement::Exists {
                key: "public".into(),
            }),
        ],
        ..Default::default()
    };
    let ns_and_svc = ServiceAllocation {
        namespaces: vec!["team-a".into()],
        service_selectors: vec![LabelSelector::labels([("app", "web")])],
        ..Default::default()
    };
    let a_web = ServiceRequest::new("team-a", "s").label("app", "web");
    let a_db = ServiceRequest::new("team-a", "s").label("app", "db");
    let b_prod = ServiceRequest::new("team-b", "s").namespace_label("tier", "prod");
    let b_public = ServiceRequest::new("team-b", "s").label("public", "yes");
    let b_plain = ServiceRequest::new("team-b", "s");
    let everyone = ServiceAllocation::default();
    let cases: Vec<(&str, &ServiceAllocation, &ServiceRequest, bool)> = vec![
        ("namespace listed", &by_ns, &a_db, true),
        ("namespace not listed", &by_ns, &b_plain, false),
        (
            "namespace selected by label",
            &by_ns_selector,
            &b_prod,
            true,
        ),
        (
            "namespace labels do not match",
            &by_ns_selector,
            &a_db,
            false,
        ),
        ("listed OR selected (listed)", &by_both_ns, &a_db, true),
        ("listed OR selected (selected)", &by_both_ns, &b_prod, true),
        ("neither", &by_both_ns, &b_plain, false),
        ("service selector matches", &by_svc, &a_web, true),
        ("any service selector matches", &by_svc, &b_public, true),
        ("no service selector matches", &by_svc, &a_db, false),
        ("namespace AND service: both", &ns_and_svc, &a_web, true),
        (
            "namespace AND service: service fails",
            &ns_and_svc,
            &a_db,
            false,
        ),
        ("empty allocation admits all", &everyone, &b_plain, true),
    ];
    for (what, alloc, req, admitted) in cases {
        let mut a = restricted(alloc.clone());
        let result = got(&mut a, req);
        if admitted {
            assert_eq!(result, ok(&["10.0.0.0"]), "{what}");
        } else {
            assert_eq!(result, refused("NoPoolForService"), "{what}");
            // Closed even when asked for by name or address.
            assert_eq!(
                got(&mut a, &req.clone().in_pool("only")),
                refused("PoolNotAllowed"),
                "{what}"
            );
            assert_eq!(
                got(&mut a, &req.clone().requesting_ips([ip("10.0.0.1")])),
                refused("RequestedIPNotInAllowedPool"),
                "{what}"
            );
        }
    }
}

#[test]
fn auto_assign_false_pools_serve_only_explicit_requests() {
    let mut a = alloc_with(vec![pool("manual", &["10.0.5.0/30"]).auto_assign(false)]);
    assert_eq!(got(&mut a, &svc("auto")), refused("NoPoolForService"));
    assert_eq!(
        got(&mut a, &svc("named").in_pool("manual")),
        ok(&["10.0.5.0"])
    );
    assert_eq!(
        got(&mut a, &svc("by-ip").requesting_ips([ip("10.0.5.3")])),
        ok(&["10.0.5.3"])
    );
    // Turning autoAssign off later renumbers nobody.
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30"])]);
    assert_eq!(got(&mut a, &svc("s")), ok(&["10.0.0.0"]));
    let report = a.set_pools(vec![pool("p", &["10.0.0.0/30"]).auto_assign(false)]);
    assert!(report.displaced.is_empty());
    let again = a.allocate(&svc("s")).unwrap();
    assert_eq!((again.ips, again.changed), (ips(&["10.0.0.0"]), false));
}

// ----- requested addresses ---------------------------------------------------------------

#[test]
fn requested_ips_table() {
    let setup = || {
        let mut a = alloc_with(vec![
            pool("p", &["10.0.0.0/24", "fd00::/120"]),
            pool("q", &["10.0.1.0/24"]).avoid_buggy_ips(true),
            pool("over-a", &["10.0.2.0/25"]),
            pool("over-b", &["10.0.2.64/26"]),
        ]);
        got(&mut a, &svc("holder").requesting_ips([ip("10.0.0.9")])).unwrap();
        a
    };
    let dual = |r: ServiceRequest, p| r.families(p, &[IpFamily::V4, IpFamily::V6]);
    let cases: Vec<(&str, ServiceRequest, Outcome)> = vec![
        (
            "free address in a pool",
            svc("s").requesting_ips([ip("10.0.0.7")]),
            ok(&["10.0.0.7"]),
        ),
        (
            "outside every pool",
            svc("s").requesting_ips([ip("192.168.0.1")]),
            refused("RequestedIPNotInAllowedPool"),
        ),
        (
            "not in the named pool",
            svc("s").in_pool("q").requesting_ips([ip("10.0.0.7")]),
            refused("RequestedIPNotInAllowedPool"),
        ),
        (
            "in the named pool",
            svc("s").in_pool("q").requesting_ips([ip("10.0.1.7")]),
            ok(&["10.0.1.7"]),
        ),
        (
            "named pool missing",
            svc("s").in_pool("gone").requesting_ips([ip("10.0.0.7")]),
            refused("PoolNotFound"),
        ),
        (
            "held, no sharing key",
            svc("s").requesting_ips([ip("10.0.0.9")]),
            refused("RequestedIPInUse"),
        ),
        (
            "held, sharing key but holder has none",
            svc("s").sharing("k").requesting_ips([ip("10.0.0.9")]),
            refused("SharingRefused"),
        ),
        (
            "avoidBuggyIPs .0",
            svc("s").requesting_ips([ip("10.0.1.0")]),
            refused("RequestedIPAvoided"),
        ),
        (
            "avoidBuggyIPs .255",
            svc("s").requesting_ips([ip("10.0.1.255")]),
            refused("RequestedIPAvoided"),
        ),
        (
            "overlapping part",
            svc("s").requesting_ips([ip("10.0.2.70")]),
            refused("RequestedIPInOverlap"),
        ),
        (
            "non-overlapping part of an overlapping pool",
            svc("s").requesting_ips([ip("10.0.2.3")]),
            ok(&["10.0.2.3"]),
        ),
        (
            "v6 for a v4 single-stack",
            svc("s")
                .families(IpFamilyPolicy::SingleStack, &[IpFamily::V4])
                .requesting_ips([ip("fd00::5")]),
            refused("InvalidRequestedIPs"),
        ),
        (
            "v6 single-stack, families unset",
            svc("s").requesting_ips([ip("fd00::5")]),
            ok(&["fd00::5"]),
        ),
        (
            "two v4",
            dual(svc("s"), IpFamilyPolicy::PreferDualStack)
                .requesting_ips(ips(&["10.0.0.7", "10.0.0.8"])),
            refused("InvalidRequestedIPs"),
        ),
        (
            "require dual-stack with one",
            dual(svc("s"), IpFamilyPolicy::RequireDualStack).requesting_ips([ip("10.0.0.7")]),
            refused("InvalidRequestedIPs"),
        ),
        (
            "dual-stack, reordered per ipFamilies",
            dual(svc("s"), IpFamilyPolicy::RequireDualStack)
                .requesting_ips(ips(&["fd00::5", "10.0.0.7"])),
            ok(&["10.0.0.7", "fd00::5"]),
        ),
        (
            "prefer dual-stack with one",
            dual(svc("s"), IpFamilyPolicy::PreferDualStack).requesting_ips([ip("fd00::5")]),
            ok(&["fd00::5"]),
        ),
    ];
    for (what, req, want) in cases {
        let mut a = setup();
        assert_eq!(got(&mut a, &req), want, "{what}");
        if want.is_err() {
            assert!(
                a.assigned(&req.key).is_empty(),
                "{what}: nothing taken on refusal"
            );
        }
    }
}

#[test]
fn refusals_have_stable_reasons_and_readable_messages() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/31"])]);
    got(&mut a, &svc("a").sharing("k").port(Protocol::Tcp, 80)).unwrap();
    let err = a
        .allocate(
            &svc("b")
                .sharing("k")
                .port(Protocol::Tcp, 80)
                .requesting_ips([ip("10.0.0.0")]),
        )
        .unwrap_err();
    assert_eq!(err.reason(), "SharingRefused");
    assert_eq!(
        err.message(),
        "10.0.0.0 is assigned to default/a and cannot be shared: both Services use port 80/TCP"
    );
    got(&mut a, &svc("c")).unwrap();
    let err = a.allocate(&svc("d")).unwrap_err();
    assert_eq!(err.message(), "no free IPv4 address left in pool(s) p");
}

#[test]
fn changing_the_requested_ip_moves_the_service_and_holds_the_old_one_until_committed() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30"])]);
    let first = svc("s").requesting_ips([ip("10.0.0.1")]);
    assert_eq!(got(&mut a, &first), ok(&["10.0.0.1"]));
    let moved = a
        .allocate(&svc("s").requesting_ips([ip("10.0.0.2")]))
        .unwrap();
    assert_eq!(moved.ips, ips(&["10.0.0.2"]));
    assert_eq!(moved.retiring, ips(&["10.0.0.1"]));
    // Until the status stops showing .1, nobody else gets it.
    assert_eq!(
        got(&mut a, &svc("t").requesting_ips([ip("10.0.0.1")])),
        refused("RequestedIPReleasing")
    );
    assert_eq!(got(&mut a, &svc("u")), ok(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &svc("v")), ok(&["10.0.0.3"]));
    assert_eq!(got(&mut a, &svc("w")), refused("PoolExhausted"));
    a.commit(&ServiceKey::new("default", "s"), &ips(&["10.0.0.2"]));
    assert_eq!(got(&mut a, &svc("w")), ok(&["10.0.0.1"]));
}

// ----- sharing ---------------------------------------------------------------------------

#[test]
fn sharing_table() {
    let sel = |app: &str| vec![("app".to_string(), app.to_string())];
    let first = svc("first").sharing("k").port(Protocol::Tcp, 80);
    let first_local = svc("first")
        .sharing("k")
        .port(Protocol::Tcp, 80)
        .local(sel("web"));
    let cases: Vec<(&str, &ServiceRequest, ServiceRequest, bool, &str)> = vec![
        (
            "same key, other port",
            &first,
            svc("b").sharing("k").port(Protocol::Tcp, 443),
            true,
            "",
        ),
        (
            "same key, same port other protocol",
            &first,
            svc("b").sharing("k").port(Protocol::Udp, 80),
            true,
            "",
        ),
        (
            "same key, port clash",
            &first,
            svc("b").sharing("k").port(Protocol::Tcp, 80),
            false,
            "PortClash",
        ),
        (
            "different key",
            &first,
            svc("b").sharing("j").port(Protocol::Tcp, 443),
            false,
            "KeyMismatch",
        ),
        (
            "no key",
            &first,
            svc("b").port(Protocol::Tcp, 443),
            false,
            "",
        ),
        (
            "empty key is no key",
            &first,
            svc("b").sharing("").port(Protocol::Tcp, 443),
            false,
            "",
        ),
        (
            "both Local, same pods",
            &first_local,
            svc("b")
                .sharing("k")
                .port(Protocol::Tcp, 443)
                .local(sel("web")),
            true,
            "",
        ),
        (
            "both Local, other pods",
            &first_local,
            svc("b")
                .sharing("k")
                .port(Protocol::Tcp, 443)
                .local(sel("db")),
            false,
            "DifferentPods",
        ),
        (
            "Local vs Cluster",
            &first_local,
            svc("b").sharing("k").port(Protocol::Tcp, 443),
            false,
            "DifferentPods",
        ),
        (
            "Cluster vs Local",
            &first,
            svc("b")
                .sharing("k")
                .port(Protocol::Tcp, 443)
                .local(sel("web")),
            false,
            "DifferentPods",
        ),
    ];
    for (what, holder, second, shares, conflict) in cases {
        // Automatic: a compatible Service joins the holder's address.
        let mut a = alloc_with(vec![pool("p", &["10.0.0.0/24"])]);
        assert_eq!(got(&mut a, holder), ok(&["10.0.0.0"]), "{what}");
        let auto = got(&mut a, &second);
        assert_eq!(
            auto,
            if shares {
                ok(&["10.0.0.0"])
            } else {
                ok(&["10.0.0.1"])
            },
            "{what}"
        );
        // Explicit: asking for the holder's address.
        let mut a = alloc_with(vec![pool("p", &["10.0.0.0/24"])]);
        got(&mut a, holder).unwrap();
        let asked = a.allocate(&second.clone().requesting_ips([ip("10.0.0.0")]));
        match asked {
            Ok(al) => {
                assert!(shares, "{what}: must not share");
                assert_eq!(al.ips, ips(&["10.0.0.0"]));
                let mut holders = a.holders(ip("10.0.0.0"));
                holders.sort();
                assert_eq!(holders.len(), 2, "{what}");
            }
            Err(Refusal::SharingRefused { conflict: c, .. }) => {
                assert!(!shares, "{what}: should share");
                assert_eq!(c.reason(), conflict, "{what}");
            }
            Err(e) => {
                assert!(!shares && conflict.is_empty(), "{what}: {e}");
                assert_eq!(e.reason(), "RequestedIPInUse", "{what}");
            }
        }
        a.check_invariants().unwrap();
    }
}

#[test]
fn shared_address_is_freed_only_when_the_last_holder_goes() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/31"])]);
    let s1 = svc("s1").sharing("k").port(Protocol::Tcp, 80);
    let s2 = svc("s2").sharing("k").port(Protocol::Tcp, 81);
    assert_eq!(got(&mut a, &s1), ok(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &s2), ok(&["10.0.0.0"]));
    assert_eq!(a.pool_stats("p").unwrap().ipv4.in_use, 1);
    assert!(a.release(&s1.key).is_empty(), "still held by s2");
    assert_eq!(got(&mut a, &svc("x")), ok(&["10.0.0.1"]));
    assert_eq!(a.release(&s2.key), ips(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &svc("y")), ok(&["10.0.0.0"]));
}

#[test]
fn a_port_change_that_clashes_moves_the_changed_service_only() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30"])]);
    let s1 = svc("s1").sharing("k").port(Protocol::Tcp, 80);
    got(&mut a, &s1).unwrap();
    got(&mut a, &svc("s2").sharing("k").port(Protocol::Tcp, 81)).unwrap();
    let clash = a
        .allocate(&svc("s2").sharing("k").port(Protocol::Tcp, 80))
        .unwrap();
    assert_eq!(clash.ips, ips(&["10.0.0.1"]));
    assert_eq!(clash.retiring, ips(&["10.0.0.0"]));
    assert!(!a.allocate(&s1).unwrap().changed);
}

// ----- dual-stack ------------------------------------------------------------------------

#[test]
fn dual_stack_table() {
    use IpFamily::{V4, V6};
    use IpFamilyPolicy::{
        PreferDualStack as Prefer, RequireDualStack as Require, SingleStack as Single,
    };
    let both = || vec![pool("both", &["10.0.0.0/30", "fd00::/126"])];
    let v4_only = || vec![pool("v4", &["10.0.0.0/30"])];
    let v6_only = || vec![pool("v6", &["fd00::/126"])];
    let split = || {
        vec![
            pool("a-v4", &["10.0.0.0/30"]),
            pool("b-v6", &["fd00::/126"]),
        ]
    };
    type Pools = fn() -> Vec<PoolConfig>;
    let cases: Vec<(&str, Pools, IpFamilyPolicy, &[IpFamily], Outcome)> = vec![
        ("single v4", both, Single, &[V4], ok(&["10.0.0.0"])),
        ("single v6", both, Single, &[V6], ok(&["fd00::"])),
        ("single default is v4", both, Single, &[], ok(&["10.0.0.0"])),
        (
            "single v6 without v6",
            v4_only,
            Single,
            &[V6],
            refused("FamilyUnavailable"),
        ),
        (
            "require v4,v6",
            both,
            Require,
            &[V4, V6],
            ok(&["10.0.0.0", "fd00::"]),
        ),
        (
            "require v6,v4 keeps order",
            both,
            Require,
            &[V6, V4],
            ok(&["fd00::", "10.0.0.0"]),
        ),
        (
            "require from two pools",
            split,
            Require,
            &[V4, V6],
            ok(&["10.0.0.0", "fd00::"]),
        ),
        (
            "require without v6",
            v4_only,
            Require,
            &[V4, V6],
            refused("FamilyUnavailable"),
        ),
        (
            "prefer gets both",
            both,
            Prefer,
            &[V4, V6],
            ok(&["10.0.0.0", "fd00::"]),
        ),
        (
            "prefer falls back to v4",
            v4_only,
            Prefer,
            &[V4, V6],
            ok(&["10.0.0.0"]),
        ),
        (
            "prefer falls back to the secondary",
            v6_only,
            Prefer,
            &[V4, V6],
            ok(&["fd00::"]),
        ),
    ];
    for (what, pools, policy, families, want) in cases {
        let mut a = alloc_with(pools());
        let req = svc("s").families(policy, families);
        assert_eq!(got(&mut a, &req), want, "{what}");
        if want.is_err() {
            assert!(a.assigned(&req.key).is_empty(), "{what}: nothing taken");
            assert_eq!(
                a.pool_stats(&a.pool_order(&req).unwrap()[0])
                    .unwrap()
                    .ipv4
                    .in_use,
                0,
                "{what}"
            );
        }
    }
}

#[test]
fn dual_stack_exhaustion_of_one_family() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30", "fd00::/127"])]);
    let dual = |n: &str, p| svc(n).families(p, &[IpFamily::V4, IpFamily::V6]);
    got(&mut a, &dual("a", IpFamilyPolicy::RequireDualStack)).unwrap();
    got(&mut a, &dual("b", IpFamilyPolicy::RequireDualStack)).unwrap();
    let err = a
        .allocate(&dual("c", IpFamilyPolicy::RequireDualStack))
        .unwrap_err();
    assert_eq!(
        err,
        Refusal::PoolExhausted {
            family: IpFamily::V6,
            pools: vec!["p".into()]
        }
    );
    assert_eq!(
        a.pool_stats("p").unwrap().ipv4.in_use,
        2,
        "no v4 leaked by the refusal"
    );
    assert_eq!(
        got(&mut a, &dual("d", IpFamilyPolicy::PreferDualStack)),
        ok(&["10.0.0.2"])
    );
    // Going dual-stack later keeps the v4 address and adds a v6 one.
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30", "fd00::/127"])]);
    got(&mut a, &svc("s")).unwrap();
    let up = a
        .allocate(&dual("s", IpFamilyPolicy::RequireDualStack))
        .unwrap();
    assert_eq!(
        (up.ips, up.retiring),
        (ips(&["10.0.0.0", "fd00::"]), vec![])
    );
    // Back to single-stack: the v6 one retires.
    let down = a
        .allocate(&svc("s").families(IpFamilyPolicy::SingleStack, &[IpFamily::V4]))
        .unwrap();
    assert_eq!(
        (down.ips, down.retiring),
        (ips(&["10.0.0.0"]), ips(&["fd00::"]))
    );
}

// ----- avoidBuggyIPs, exhaustion, release/reuse, idempotence -----------------------------

#[test]
fn avoid_buggy_ips_never_hands_out_dot0_or_dot255() {
    let mut a = alloc_with(vec![
        pool("p", &["10.0.0.254-10.0.1.1"]).avoid_buggy_ips(true),
    ]);
    assert_eq!(got(&mut a, &svc("a")), ok(&["10.0.0.254"]));
    assert_eq!(got(&mut a, &svc("b")), ok(&["10.0.1.1"]));
    assert_eq!(got(&mut a, &svc("c")), refused("PoolExhausted"));
    assert_eq!(a.pool_stats("p").unwrap().ipv4.total, 2);
}

#[test]
fn exhaustion_release_and_reuse_of_the_lowest_address() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/30"])]);
    for i in 0..4 {
        assert_eq!(
            got(&mut a, &svc(&format!("s{i}"))),
            Ok(vec![ip(&format!("10.0.0.{i}"))])
        );
    }
    let err = a.allocate(&svc("late")).unwrap_err();
    assert_eq!(
        err,
        Refusal::PoolExhausted {
            family: IpFamily::V4,
            pools: vec!["p".into()]
        }
    );
    assert_eq!(
        a.release(&ServiceKey::new("default", "s2")),
        ips(&["10.0.0.2"])
    );
    assert_eq!(
        a.release(&ServiceKey::new("default", "s2")),
        Vec::<IpAddr>::new(),
        "release is idempotent"
    );
    assert_eq!(got(&mut a, &svc("late")), ok(&["10.0.0.2"]));
    let stats = a.pool_stats("p").unwrap().ipv4;
    assert_eq!((stats.total, stats.in_use, stats.available), (4, 4, 0));
}

#[test]
fn refused_services_are_listed_as_pending_until_served() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/31"])]);
    for n in ["a", "b", "c", "d"] {
        let _ = a.allocate(&svc(n));
    }
    let key = |n: &str| ServiceKey::new("default", n);
    assert_eq!(a.pending(), vec![key("c"), key("d")]);
    assert_eq!(
        a.refusal(&key("c")).map(Refusal::reason),
        Some("PoolExhausted")
    );
    a.release(&key("a"));
    for k in a.pending() {
        let _ = a.allocate(&svc(&k.name));
    }
    assert_eq!(a.pending(), vec![key("d")]);
    assert_eq!(a.assigned(&key("c")), ips(&["10.0.0.0"]).as_slice());
    assert_eq!(a.refusal(&key("c")), None);
}

#[test]
fn allocation_is_idempotent() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/24", "fd00::/64"])]);
    let req = svc("s").families(
        IpFamilyPolicy::RequireDualStack,
        &[IpFamily::V6, IpFamily::V4],
    );
    let first = a.allocate(&req).unwrap();
    assert!(first.changed);
    for _ in 0..3 {
        let again = a.allocate(&req).unwrap();
        assert_eq!(
            (again.ips.clone(), again.changed),
            (first.ips.clone(), false)
        );
    }
    assert_eq!(a.pool_stats("p").unwrap().ipv6.in_use, 1);
}

// ----- overlaps and pool changes ---------------------------------------------------------

#[test]
fn overlapping_pools_are_reported_and_their_overlap_never_handed_out() {
    let mut a = Allocator::new();
    let report = a.set_pools(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.0.2-10.0.0.5"]),
    ]);
    assert_eq!(report.overlaps_of("a"), vec!["b".to_string()]);
    assert_eq!(report.overlaps_of("b"), vec!["a".to_string()]);
    let handed: Vec<_> = (0..5)
        .map(|i| got(&mut a, &svc(&format!("s{i}"))))
        .collect();
    assert_eq!(
        handed,
        vec![
            ok(&["10.0.0.0"]),
            ok(&["10.0.0.1"]),
            ok(&["10.0.0.4"]),
            ok(&["10.0.0.5"]),
            refused("PoolExhausted")
        ]
    );
}

#[test]
fn a_new_overlapping_pool_renumbers_nobody() {
    let mut a = alloc_with(vec![pool("a", &["10.0.0.0/30"])]);
    got(&mut a, &svc("s")).unwrap();
    let report = a.set_pools(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.0.0/31"]),
    ]);
    assert_eq!(report.overlaps.len(), 1);
    assert!(report.displaced.is_empty());
    assert!(!a.allocate(&svc("s")).unwrap().changed);
}

#[test]
fn shrinking_or_deleting_a_pool_reports_services_and_holds_their_address_until_released() {
    let mut a = alloc_with(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.0.1.0/30"]),
    ]);
    let s = svc("s").in_pool("p");
    assert_eq!(got(&mut a, &s), ok(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &svc("t").in_pool("p")), ok(&["10.0.0.1"]));
    // Shrink p so that .0 leaves it.
    let report = a.set_pools(vec![
        pool("p", &["10.0.0.1-10.0.0.3"]),
        pool("q", &["10.0.1.0/30"]),
    ]);
    assert_eq!(report.displaced.len(), 1);
    assert_eq!(report.displaced[0].service, s.key);
    assert_eq!(report.displaced[0].ip, ip("10.0.0.0"));
    assert_eq!(
        report.displaced[0].refusal.reason(),
        "RequestedIPNotInAllowedPool"
    );
    assert!(
        a.assigned(&s.key).is_empty(),
        "keeps nothing it may not have"
    );
    assert_eq!(a.retiring(&s.key), ips(&["10.0.0.0"]));
    // Grow p back: .0 is in a pool again but still in s's status: nobody else gets it.
    a.set_pools(vec![
        pool("p", &["10.0.0.0/30"]),
        pool("q", &["10.0.1.0/30"]),
    ]);
    assert_eq!(
        got(&mut a, &svc("u").requesting_ips([ip("10.0.0.0")])),
        refused("RequestedIPReleasing")
    );
    assert_eq!(got(&mut a, &svc("v").in_pool("p")), ok(&["10.0.0.2"]));
    // s itself gets it back (its status may still show it).
    assert_eq!(got(&mut a, &s), ok(&["10.0.0.0"]));
    // Delete p: both are displaced; t was not, it is untouched until reconciled.
    let report = a.set_pools(vec![pool("q", &["10.0.1.0/30"])]);
    let mut who: Vec<String> = report
        .displaced
        .iter()
        .map(|d| d.service.name.clone())
        .collect();
    who.sort();
    assert_eq!(who, vec!["s", "t", "v"]);
    assert_eq!(got(&mut a, &s), refused("PoolNotFound"));
    assert_eq!(
        got(&mut a, &svc("t")),
        ok(&["10.0.1.0"]),
        "t moves once it no longer names p"
    );
    // Once their status is clear, the addresses are free (and p is gone, so not handed out).
    a.commit(&s.key, &[]);
    a.commit(&ServiceKey::new("default", "t"), &ips(&["10.0.1.0"]));
    assert!(a.retiring(&s.key).is_empty());
    assert!(a.holders(ip("10.0.0.0")).is_empty());
}

#[test]
fn removing_a_service_from_a_pools_selector_moves_it_on_reconcile() {
    let restricted = |ns: &str| {
        pool("team", &["10.0.0.0/30"]).allocation(ServiceAllocation {
            namespaces: vec![ns.into()],
            ..Default::default()
        })
    };
    let mut a = alloc_with(vec![restricted("a"), pool("open", &["10.0.9.0/30"])]);
    let s = ServiceRequest::new("a", "s");
    assert_eq!(got(&mut a, &s), ok(&["10.0.0.0"]));
    let report = a.set_pools(vec![restricted("b"), pool("open", &["10.0.9.0/30"])]);
    assert_eq!(report.displaced.len(), 1);
    let moved = a.allocate(&s).unwrap();
    assert_eq!(moved.ips, ips(&["10.0.9.0"]));
}

// ----- start-up reclaim ------------------------------------------------------------------

#[test]
fn reclaim_keeps_valid_addresses_and_changes_nothing() {
    let pools = vec![pool("p", &["10.0.0.0/24", "fd00::/120"])];
    let mut a = alloc_with(pools.clone());
    let dual = svc("d").families(
        IpFamilyPolicy::RequireDualStack,
        &[IpFamily::V4, IpFamily::V6],
    );
    let outcome = a.reclaim_all(vec![
        (svc("s").created(2), ips(&["10.0.0.77"])),
        (dual.clone().created(1), ips(&["10.0.0.5", "fd00::9"])),
    ]);
    assert!(outcome.iter().all(|(_, o)| o.refused.is_empty()));
    a.check_invariants().unwrap();
    // Pending Services come after; reclaimed ones do not move.
    assert_eq!(got(&mut a, &svc("new")), ok(&["10.0.0.0"]));
    for (req, want) in [
        (svc("s"), ips(&["10.0.0.77"])),
        (dual, ips(&["10.0.0.5", "fd00::9"])),
    ] {
        let al = a.allocate(&req).unwrap();
        assert_eq!((al.ips, al.changed), (want, false));
    }
}

#[test]
fn reclaim_conflicts_are_resolved_oldest_first_and_deterministically() {
    let run = |order: [usize; 3]| {
        let mut a = alloc_with(vec![
            pool("p", &["10.0.0.0/24"]),
            pool("r", &["10.0.1.0/24"]).allocation(ServiceAllocation {
                namespaces: vec!["x".into()],
                ..Default::default()
            }),
        ]);
        let items = [
            (svc("young").created(20), ips(&["10.0.0.5"])),
            (svc("old").created(10), ips(&["10.0.0.5"])),
            (svc("stray").created(5), ips(&["10.0.1.5", "10.0.0.6"])),
        ];
        let shuffled: Vec<_> = order.iter().map(|&i| items[i].clone()).collect();
        let out = a.reclaim_all(shuffled);
        a.check_invariants().unwrap();
        (a, out)
    };
    let (mut a, out) = run([0, 1, 2]);
    assert_eq!(out, run([2, 1, 0]).1, "order of input does not matter");
    let find = |n: &str| out.iter().find(|(k, _)| k.name == n).unwrap().1.clone();
    assert_eq!(find("old").kept, ips(&["10.0.0.5"]));
    assert!(find("young").kept.is_empty());
    assert_eq!(find("young").refused[0].1.reason(), "RequestedIPInUse");
    // stray: .1.5 is in a pool closed to it; its other v4 address is fine.
    let stray = find("stray");
    assert_eq!(stray.kept, ips(&["10.0.0.6"]));
    assert_eq!(stray.refused.len(), 1);
    assert_eq!(stray.refused[0].1.reason(), "RequestedIPNotInAllowedPool");
    // The loser gets a fresh address; the refused-but-free .1.5 stays reserved until stray's
    // status is rewritten.
    assert_eq!(got(&mut a, &svc("young")), ok(&["10.0.0.0"]));
    let x = ServiceRequest::new("x", "svc").requesting_ips([ip("10.0.1.5")]);
    assert_eq!(got(&mut a, &x), refused("RequestedIPReleasing"));
    a.commit(&ServiceKey::new("default", "stray"), &[]);
    assert_eq!(got(&mut a, &x), ok(&["10.0.1.5"]));
}

#[test]
fn reclaim_accepts_legal_sharing_and_refuses_illegal_sharing() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/24"])]);
    let out = a.reclaim_all(vec![
        (
            svc("a").sharing("k").port(Protocol::Tcp, 80).created(1),
            ips(&["10.0.0.5"]),
        ),
        (
            svc("b").sharing("k").port(Protocol::Tcp, 81).created(2),
            ips(&["10.0.0.5"]),
        ),
        (
            svc("c").sharing("k").port(Protocol::Tcp, 80).created(3),
            ips(&["10.0.0.5"]),
        ),
    ]);
    assert_eq!(out[0].1.kept, ips(&["10.0.0.5"]));
    assert_eq!(out[1].1.kept, ips(&["10.0.0.5"]));
    assert_eq!(out[2].1.refused[0].1.reason(), "SharingRefused");
    a.check_invariants().unwrap();
}

#[test]
fn v6_pools_of_any_size_work() {
    let mut a = alloc_with(vec![
        pool("big", &["fd00::/64"]),
        pool("huge", &["fe80::/10"]),
    ]);
    let stats = a.pool_stats("big").unwrap().ipv6;
    assert_eq!(stats.total, 1 << 64);
    let req = |n: &str| svc(n).families(IpFamilyPolicy::SingleStack, &[IpFamily::V6]);
    assert_eq!(got(&mut a, &req("a")), ok(&["fd00::"]));
    assert_eq!(got(&mut a, &req("b")), ok(&["fd00::1"]));
    assert_eq!(a.pool_stats("big").unwrap().ipv6.available, (1 << 64) - 2);
}

#[test]
fn a_partner_leaving_a_shared_address_does_not_move_the_one_that_stays() {
    let mut a = alloc_with(vec![pool("p", &["10.0.0.0/29"])]);
    let s1 = svc("s1").sharing("k1");
    let s2 = svc("s2").sharing("k1");
    assert_eq!(got(&mut a, &s1), ok(&["10.0.0.0"]));
    assert_eq!(got(&mut a, &s2), ok(&["10.0.0.0"]));
    // s2 stops sharing: it moves, s1 stays.
    let moved = a.allocate(&svc("s2")).unwrap();
    assert_eq!(
        (moved.ips, moved.retiring),
        (ips(&["10.0.0.1"]), ips(&["10.0.0.0"]))
    );
    // s1 changes its key: alone on the address now, it keeps it.
    let stay = a.allocate(&svc("s1").sharing("k2")).unwrap();
    assert!(!stay.changed);
    // While s2's status may still show .0, nobody new joins it, not even with s1's key.
    assert_eq!(got(&mut a, &svc("s3").sharing("k2")), ok(&["10.0.0.2"]));
    a.commit(&s2.key, &ips(&["10.0.0.1"]));
    assert_eq!(got(&mut a, &svc("s4").sharing("k2")), ok(&["10.0.0.0"]));
}
