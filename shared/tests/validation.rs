//! Table tests of the spec-level validation rules (field interplay, defaults, cross-object
//! checks). Single-value parsers have their tables beside their code.

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrolb_shared::crd::{
    BGPAdvertisementSpec, BGPPeerSpec, IPAddressPoolSpec, SecretKeyReference,
};
use ferrolb_shared::validate::{
    ConfigError, IpFamily, ParsedPeer, ParsedPool, Problem, TimerError, find_pool_overlaps,
    summarize,
};

fn peer() -> BGPPeerSpec {
    BGPPeerSpec {
        my_asn: 64512,
        peer_asn: 64500,
        peer_address: "10.0.0.1".into(),
        peer_port: 179,
        source_address: None,
        hold_time: None,
        keepalive_time: None,
        connect_time: None,
        router_id: None,
        node_selectors: Vec::new(),
        password_secret: None,
        ebgp_multi_hop: false,
        enable_graceful_restart: false,
    }
}

fn pool(addresses: &[&str]) -> IPAddressPoolSpec {
    IPAddressPoolSpec {
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        service_allocation: None,
    }
}

fn paths(errors: &[ConfigError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn peer_timer_table() {
    // (hold, keepalive, connect) -> Ok((hold s, keepalive s, connect s)) or Err(field paths)
    type Row = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Result<(u16, u16, u64), &'static [&'static str]>,
    );
    let rows: &[Row] = &[
        (None, None, None, Ok((90, 30, 10))),
        (Some("90s"), None, None, Ok((90, 30, 10))),
        (Some("1m30s"), Some("30s"), Some("5s"), Ok((90, 30, 5))),
        (Some("0s"), None, None, Ok((0, 0, 10))),
        (Some("0"), Some("0s"), None, Ok((0, 0, 10))),
        (Some("3s"), None, None, Ok((3, 1, 10))),
        (Some("3s"), Some("3s"), None, Ok((3, 3, 10))),
        (Some("18h12m15s"), None, None, Ok((65535, 21845, 10))),
        (None, Some("60s"), None, Ok((90, 60, 10))),
        (Some("2s"), None, None, Err(&["spec.holdTime"])),
        (Some("1s"), Some("1s"), None, Err(&["spec.holdTime"])),
        (Some("18h12m16s"), None, None, Err(&["spec.holdTime"])),
        (Some("90s"), Some("91s"), None, Err(&["spec.keepaliveTime"])),
        (Some("0s"), Some("10s"), None, Err(&["spec.keepaliveTime"])),
        (Some("90s"), Some("0s"), None, Err(&["spec.keepaliveTime"])),
        (None, Some("120s"), None, Err(&["spec.keepaliveTime"])),
        (Some("90.5s"), None, None, Err(&["spec.holdTime"])),
        (
            Some("90"),
            Some("30x"),
            None,
            Err(&["spec.holdTime", "spec.keepaliveTime"]),
        ),
        (None, None, Some("0s"), Err(&["spec.connectTime"])),
        (None, None, Some("-1s"), Err(&["spec.connectTime"])),
        (
            Some("2s"),
            None,
            Some("0s"),
            Err(&["spec.connectTime", "spec.holdTime"]),
        ),
    ];
    for (hold, keepalive, connect, want) in rows {
        let spec = BGPPeerSpec {
            hold_time: hold.map(Into::into),
            keepalive_time: keepalive.map(Into::into),
            connect_time: connect.map(Into::into),
            ..peer()
        };
        let got = spec.validate();
        let label = format!("hold={hold:?} keepalive={keepalive:?} connect={connect:?}");
        match (got, want) {
            (Ok(p), Ok((h, k, c))) => {
                assert_eq!(
                    (
                        p.timers.hold_time,
                        p.timers.keepalive_time,
                        p.timers.connect_time.as_secs()
                    ),
                    (*h, *k, *c),
                    "{label}"
                );
            }
            (Err(e), Err(want_paths)) => {
                assert_eq!(paths(&e), *want_paths, "{label}: {}", summarize(&e))
            }
            (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn timer_errors_carry_the_rfc_reason() {
    let spec = BGPPeerSpec {
        hold_time: Some("2s".into()),
        ..peer()
    };
    let errors = spec.validate().unwrap_err();
    assert_eq!(
        errors[0].problem,
        Problem::Timer(TimerError::HoldTooShort { secs: 2 })
    );
    assert_eq!(
        errors[0].to_string(),
        "spec.holdTime: hold time 2s must be 0s or at least 3s (RFC 4271 §4.2)"
    );
}

#[test]
fn peer_address_table() {
    // (peer address, source address, router ID) -> failing field paths
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str]);
    let rows: &[Row] = &[
        ("10.0.0.1", None, None, &[]),
        ("2001:db8::1", Some("2001:db8::2"), Some("192.0.2.1"), &[]),
        ("10.0.0.1", Some("10.0.0.2"), None, &[]),
        (
            "10.0.0.1",
            Some("2001:db8::2"),
            None,
            &["spec.sourceAddress"],
        ),
        ("fe80::1%eth0", None, None, &["spec.peerAddress"]),
        ("0.0.0.0", None, None, &["spec.peerAddress"]),
        ("::", None, None, &["spec.peerAddress"]),
        ("255.255.255.255", None, None, &["spec.peerAddress"]),
        ("ff02::5", None, None, &["spec.peerAddress"]),
        ("10.0.0.1/32", None, None, &["spec.peerAddress"]),
        ("router.example", None, None, &["spec.peerAddress"]),
        ("10.0.0.1", None, Some("0.0.0.0"), &["spec.routerID"]),
        ("10.0.0.1", None, Some("2001:db8::1"), &["spec.routerID"]),
        ("10.0.0.1", None, Some("1.2.3"), &["spec.routerID"]),
    ];
    for (addr, src, router_id, want) in rows {
        let spec = BGPPeerSpec {
            peer_address: (*addr).into(),
            source_address: src.map(Into::into),
            router_id: router_id.map(Into::into),
            ..peer()
        };
        let got = spec.validate().err().unwrap_or_default();
        assert_eq!(
            paths(&got),
            *want,
            "{addr} {src:?} {router_id:?}: {}",
            summarize(&got)
        );
    }
}

#[test]
fn asn_rules_apply_to_both_sides() {
    for (my, theirs, want) in [
        (64512, 64512, &[][..]),
        (1, 4_294_967_295, &[][..]),
        (0, 64500, &["spec.myASN"][..]),
        (64512, 0, &["spec.peerASN"][..]),
        (23456, 23456, &["spec.myASN", "spec.peerASN"][..]),
        (-1, 4_294_967_296, &["spec.myASN", "spec.peerASN"][..]),
    ] {
        let spec = BGPPeerSpec {
            my_asn: my,
            peer_asn: theirs,
            ..peer()
        };
        let got = spec.validate().err().unwrap_or_default();
        assert_eq!(paths(&got), want, "{my}/{theirs}");
    }
}

#[test]
fn password_secret_reference_rules() {
    let secret = |name: &str, ns: Option<&str>, key: &str| SecretKeyReference {
        name: name.into(),
        namespace: ns.map(Into::into),
        key: key.into(),
    };
    let rows = [
        (secret("bgp-md5", None, "password"), &[][..]),
        (
            secret("bgp.md5", Some("ferrolb-system"), "tor_a.key"),
            &[][..],
        ),
        (
            secret("", None, "password"),
            &["spec.passwordSecret.name"][..],
        ),
        (
            secret("BGP", Some("Bad NS"), "a/b"),
            &[
                "spec.passwordSecret.name",
                "spec.passwordSecret.namespace",
                "spec.passwordSecret.key",
            ][..],
        ),
    ];
    for (s, want) in rows {
        let spec = BGPPeerSpec {
            password_secret: Some(s.clone()),
            ..peer()
        };
        let got = spec.validate().err().unwrap_or_default();
        assert_eq!(paths(&got), want, "{s:?}");
    }
}

#[test]
fn pool_rules() {
    let rows: &[(&[&str], &[&str])] = &[
        (&["10.0.0.0/24"], &[]),
        (&["10.0.0.0/24", "10.0.1.0/24", "fd00::/64"], &[]),
        (&[], &["spec.addresses"]),
        (&["10.0.0.0/24", "10.0.0.128/25"], &["spec.addresses[1]"]),
        (
            &["10.0.0.7", "10.0.0.0/29", "10.0.0.7"],
            &[
                "spec.addresses[1]",
                "spec.addresses[2]",
                "spec.addresses[2]",
            ],
        ),
        (
            &["fd00::/64", "fd00::ffff-fd00::1:0:0:0"],
            &["spec.addresses[1]"],
        ),
        (&["10.0.0.0/24", ""], &["spec.addresses[1]"]),
    ];
    for (addresses, want) in rows {
        let got = pool(addresses).validate().err().unwrap_or_default();
        assert_eq!(paths(&got), *want, "{addresses:?}: {}", summarize(&got));
    }
}

#[test]
fn overlapping_pools_are_found_across_the_cluster() {
    let specs = [
        ("blue", pool(&["10.0.0.0/24", "fd00::/120"])),
        ("green", pool(&["10.0.1.0/24"])),
        ("red", pool(&["10.0.0.100-10.0.1.1"])),
    ];
    let parsed: Vec<(&str, ParsedPool)> = specs
        .iter()
        .map(|(n, s)| (*n, s.validate().unwrap()))
        .collect();
    let overlaps = find_pool_overlaps(parsed.iter().map(|(n, p)| (*n, p.ranges.iter())));
    let shown: Vec<String> = overlaps
        .iter()
        .map(|o| format!("{}~{}@{}", o.first, o.second, o.range))
        .collect();
    assert_eq!(
        shown,
        [
            "blue~red@10.0.0.100-10.0.0.255",
            "green~red@10.0.1.0-10.0.1.1"
        ]
    );
}

#[test]
fn aggregation_length_must_not_reach_outside_the_pool() {
    let adv = |v4: i32, v6: i32| BGPAdvertisementSpec {
        aggregation_length: v4,
        aggregation_length_v6: v6,
        ..BGPAdvertisementSpec::default()
    };
    let rows: &[(&[&str], i32, i32, &[&str])] = &[
        (&["10.0.0.0/24"], 24, 128, &[]),
        (&["10.0.0.0/24"], 32, 128, &[]),
        (&["10.0.0.0/24"], 23, 128, &["spec.aggregationLength"]),
        (
            &["10.0.0.0/24", "10.0.1.7"],
            24,
            128,
            &["spec.aggregationLength"],
        ),
        // A range decomposes into CIDRs: 10.0.0.0-10.0.0.127 is one /25.
        (&["10.0.0.0-10.0.0.127"], 25, 128, &[]),
        (
            &["10.0.0.1-10.0.0.127"],
            25,
            128,
            &["spec.aggregationLength"],
        ),
        (&["fd00::/64"], 32, 64, &[]),
        (&["fd00::/64"], 32, 48, &["spec.aggregationLengthV6"]),
        (
            &["10.0.0.0/8", "fd00::/64"],
            0,
            0,
            &["spec.aggregationLength", "spec.aggregationLengthV6"],
        ),
        // No IPv6 in the pool: the IPv6 length does not matter.
        (&["10.0.0.0/8"], 8, 0, &[]),
    ];
    for (addresses, v4, v6, want) in rows {
        let p = pool(addresses).validate().unwrap();
        let a = adv(*v4, *v6).validate().unwrap();
        let got = a.check_pool("p", &p);
        assert_eq!(
            paths(&got),
            *want,
            "{addresses:?} /{v4} /{v6}: {}",
            summarize(&got)
        );
    }
    let p = pool(&["10.0.0.0/24"]).validate().unwrap();
    let msg = adv(16, 128).validate().unwrap().check_pool("p", &p)[0].to_string();
    assert!(
        msg.contains("10.0.0.0/24") && msg.contains("pool \"p\""),
        "{msg}"
    );
    assert_eq!(p.max_prefix_len(IpFamily::V4), Some(24));
}

#[test]
fn local_pref_warns_only_for_ebgp_peers() {
    let ibgp: ParsedPeer = BGPPeerSpec {
        peer_asn: 64512,
        ..peer()
    }
    .validate()
    .unwrap();
    let ebgp: ParsedPeer = peer().validate().unwrap();
    let with_pref = BGPAdvertisementSpec {
        local_pref: Some(150),
        ..BGPAdvertisementSpec::default()
    }
    .validate()
    .unwrap();
    let without = BGPAdvertisementSpec::default().validate().unwrap();
    assert!(with_pref.peer_warnings([("core", &ibgp)]).is_empty());
    let warnings = with_pref.peer_warnings([("core", &ibgp), ("isp", &ebgp)]);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "spec.localPref");
    assert!(
        warnings[0].to_string().contains("\"isp\""),
        "{}",
        warnings[0]
    );
    assert!(without.peer_warnings([("isp", &ebgp)]).is_empty());
}
