//! Example manifests parse into the types, keep their meaning through a round trip, and
//! validate (or fail validation exactly where expected).

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool};
use ferrolb_shared::validate::{Community, IpFamily};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn chart_example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/ferrolb/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses YAML, then checks JSON and YAML round trips give back the same object.
fn load<T>(yaml: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let obj: T = serde_saphyr::from_str(yaml).unwrap();
    // Every field written in the manifest must survive: a misspelt serde name would be
    // silently dropped on parse (the API server prunes unknown fields the same way).
    let written: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let kept = serde_json::to_value(&obj).unwrap();
    assert_subset(&written, &kept, "");
    let json = serde_json::to_string(&obj).unwrap();
    assert_eq!(
        serde_json::from_str::<T>(&json).unwrap(),
        obj,
        "JSON round trip"
    );
    let yaml_out = serde_saphyr::to_string(&obj).unwrap();
    assert_eq!(
        serde_saphyr::from_str::<T>(&yaml_out).unwrap(),
        obj,
        "YAML round trip"
    );
    obj
}

/// Asserts every key and scalar of `small` appears in `big` (which may add defaults).
fn assert_subset(small: &serde_json::Value, big: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (small, big) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = format!("{path}.{k}");
                let other = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{child} was dropped on parse"));
                assert_subset(v, other, &child);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: list length changed");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_subset(x, y, &format!("{path}[{i}]"));
            }
        }
        // YAML `values: [a]` vs `"yes"` etc. are compared as written.
        (a, b) => assert_eq!(a, b, "{path} changed on parse"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn full_pool_parses_with_status_and_validates() {
    let pool: IPAddressPool = load(&fixture("pool-full.yaml"));
    assert_eq!(pool.metadata.name.as_deref(), Some("production"));
    assert!(!pool.spec.auto_assign);
    let alloc = pool.spec.service_allocation.as_ref().unwrap();
    assert_eq!(alloc.priority, Some(10));
    let status = pool.status.as_ref().unwrap();
    assert_eq!((status.assigned_ipv4, status.available_ipv6), (3, 260));
    assert_eq!(status.conditions.len(), 2);
    assert_eq!(status.conditions[0].type_, "Valid");
    assert_eq!(status.conditions[0].observed_generation, Some(4));

    let parsed = pool.validate().unwrap();
    assert_eq!(parsed.ranges.len(), 5);
    assert_eq!(parsed.ranges[4].to_string(), "2001:db8:2::5-2001:db8:2::9");
    // 128 + 11 + 1 addresses, minus .0 and .127? No: only .0/.255 are skipped, and
    // 192.0.2.0 is the only one of those in the pool.
    assert_eq!(parsed.capacity(IpFamily::V4), 128 + 11 + 1 - 1);
    assert_eq!(parsed.capacity(IpFamily::V6), 256 + 5);
    assert!(parsed.contains(ip("192.0.2.0")));
    assert!(!parsed.is_assignable(ip("192.0.2.0")));
    assert!(parsed.is_assignable(ip("192.0.2.1")));
    assert!(!parsed.contains(ip("192.0.2.128")));
    let a = parsed.allocation.as_ref().unwrap();
    assert!(a.namespaces.contains("web") && a.namespaces.contains("api"));
    assert_eq!(a.namespace_selectors.len(), 1);
    assert_eq!(parsed.max_prefix_len(IpFamily::V4), Some(32));
    assert_eq!(parsed.max_prefix_len(IpFamily::V6), Some(128));
}

#[test]
fn minimal_pool_gets_metallb_defaults() {
    let pool: IPAddressPool = load(&fixture("pool-minimal.yaml"));
    assert!(pool.spec.auto_assign, "autoAssign defaults to true");
    assert!(!pool.spec.avoid_buggy_ips);
    assert!(pool.spec.service_allocation.is_none());
    assert!(pool.status.is_none());
    let parsed = pool.validate().unwrap();
    assert_eq!(parsed.capacity(IpFamily::V4), 256);
    assert_eq!(parsed.capacity(IpFamily::V6), 0);
    assert_eq!(parsed.max_prefix_len(IpFamily::V6), None);
}

#[test]
fn full_peer_parses_and_validates() {
    let peer: BGPPeer = load(&fixture("peer-full.yaml"));
    let parsed = peer.validate().unwrap();
    assert_eq!(
        (parsed.my_asn, parsed.peer_asn),
        (4_200_000_001, 4_200_000_001)
    );
    assert!(parsed.is_ibgp());
    assert_eq!(parsed.peer_address, ip("2001:db8::1"));
    assert_eq!(parsed.peer_port, 1179);
    assert_eq!(parsed.source_address, Some(ip("2001:db8::10")));
    assert_eq!(
        (parsed.timers.hold_time, parsed.timers.keepalive_time),
        (90, 20)
    );
    assert_eq!(parsed.timers.connect_time, Duration::from_secs(2));
    assert_eq!(parsed.router_id, Some("10.255.0.1".parse().unwrap()));
    assert_eq!(parsed.node_selectors.len(), 2);
    let secret = parsed.password_secret.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("tor-a-md5", "secret")
    );
    assert!(parsed.ebgp_multi_hop && parsed.graceful_restart);
}

#[test]
fn minimal_peer_gets_defaults() {
    let peer: BGPPeer = load(&fixture("peer-minimal.yaml"));
    assert_eq!(peer.spec.peer_port, 179);
    let secret = peer.spec.password_secret.as_ref().unwrap();
    assert_eq!(
        secret.key, "password",
        "Secret key defaults to \"password\""
    );
    assert_eq!(secret.namespace, None);
    let parsed = peer.validate().unwrap();
    assert!(!parsed.is_ibgp());
    assert_eq!(
        (parsed.timers.hold_time, parsed.timers.keepalive_time),
        (90, 30)
    );
    assert_eq!(parsed.timers.connect_time, Duration::from_secs(10));
    assert!(!parsed.ebgp_multi_hop && !parsed.graceful_restart);
}

#[test]
fn full_advertisement_parses_and_validates() {
    let adv: BGPAdvertisement = load(&fixture("advertisement-full.yaml"));
    let parsed = adv.validate().unwrap();
    assert_eq!(
        (parsed.aggregation_length, parsed.aggregation_length_v6),
        (28, 124)
    );
    assert_eq!(parsed.local_pref, Some(200));
    assert_eq!(
        parsed.communities,
        [
            Community::Standard((65000 << 16) | 100),
            Community::Standard(0xFFFF_FF01),
            Community::Large {
                global_admin: 4_200_000_001,
                local_data1: 1,
                local_data2: 2
            },
        ]
    );
    assert!(parsed.peers.contains("tor-a") && parsed.peers.contains("tor-b"));
    assert!(!parsed.selects_all_pools());
    assert_eq!(
        parsed.announced_prefix(ip("192.0.2.77")).to_string(),
        "192.0.2.64/28"
    );
    assert_eq!(
        parsed.announced_prefix(ip("2001:db8::1:17")).to_string(),
        "2001:db8::1:10/124"
    );
}

#[test]
fn minimal_advertisement_announces_everything_as_host_routes() {
    let adv: BGPAdvertisement = load(&fixture("advertisement-minimal.yaml"));
    let parsed = adv.validate().unwrap();
    assert!(parsed.selects_all_pools());
    assert!(parsed.peers.is_empty() && parsed.node_selectors.is_empty());
    assert_eq!(
        (parsed.aggregation_length, parsed.aggregation_length_v6),
        (32, 128)
    );
    assert_eq!(
        parsed.announced_prefix(ip("192.0.2.77")).to_string(),
        "192.0.2.77/32"
    );
}

fn error_lines<T>(result: Result<T, Vec<ferrolb_shared::validate::ConfigError>>) -> Vec<String> {
    match result {
        Ok(_) => panic!("expected validation errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn invalid_pool_reports_every_problem_with_its_path() {
    let pool: IPAddressPool = load(&fixture("invalid-pool.yaml"));
    let errors = error_lines(pool.validate());
    assert_eq!(
        errors,
        [
            r#"spec.addresses[0]: "10.0.0.5/24" has host bits set; did you mean 10.0.0.0/24?"#,
            "spec.addresses[2]: 10.1.0.200-10.1.0.255 overlaps entry 1 (10.1.0.0/24) of the same pool",
            "spec.addresses[3]: range start 10.2.0.9 is after range end 10.2.0.1",
            "spec.addresses[4]: range fd00::1-10.0.0.1 mixes IPv4 and IPv6",
            r#"spec.addresses[5]: "not-an-address" is not a CIDR, an IP address or an address range (a-b)"#,
            r#"spec.serviceAllocation.namespaces[0]: "Web" is not a valid namespace name: must be a DNS label (1-63 lowercase alphanumerics or '-')"#,
            r#"spec.serviceAllocation.namespaces[2]: duplicate entry "web""#,
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values: operator In needs at least one value",
        ]
    );
}

#[test]
fn invalid_peer_reports_every_problem_with_its_path() {
    // Out-of-range numbers (peerPort 70000) still deserialize, so one bad object cannot
    // break a watch; validation reports them instead.
    let peer: BGPPeer = load(&fixture("invalid-peer.yaml"));
    let errors = error_lines(peer.validate());
    assert!(
        errors.contains(&"spec.peerPort: port 70000 is outside 1..=65535".to_owned()),
        "{errors:?}"
    );
    assert!(errors.contains(&"spec.peerASN: AS number 23456 is AS_TRANS (RFC 6793), a placeholder that no real AS may use".to_owned()), "{errors:?}");
    let paths: Vec<String> = error_lines(peer.validate())
        .into_iter()
        .map(|l| l.split(": ").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "spec.myASN",
            "spec.peerASN",
            "spec.peerAddress",
            "spec.peerPort",
            "spec.sourceAddress",
            "spec.connectTime",
            "spec.holdTime",
            "spec.routerID",
            "spec.nodeSelectors[0].matchLabels[bad key]",
            "spec.passwordSecret.name",
            "spec.passwordSecret.key",
        ]
    );
}

#[test]
fn invalid_advertisement_reports_every_problem_with_its_path() {
    let adv: BGPAdvertisement = load(&fixture("invalid-advertisement.yaml"));
    let errors = error_lines(adv.validate());
    assert_eq!(
        errors,
        [
            r#"spec.ipAddressPools[1]: duplicate entry "a""#,
            r#"spec.peers[0]: "UPPER" is not a valid object name: must be a DNS subdomain"#,
            "spec.nodeSelectors[0].matchExpressions[0].values: operator Exists takes no values",
            "spec.aggregationLength: aggregation length 33 is outside 0..=32",
            "spec.aggregationLengthV6: aggregation length -1 is outside 0..=128",
            "spec.localPref: localPref 4294967296 is outside 0..=4294967295",
            r#"spec.communities[0]: "65536:1": each half of a standard community must be 0..=65535"#,
            r#"spec.communities[2]: duplicate entry "65535:65281""#,
            r#"spec.communities[3]: "large:1:2" is not a community: use "65000:100", "large:65000:1:2" or a well-known name (no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, ...)"#,
        ]
    );
}

#[test]
fn chart_examples_are_valid_and_consistent() {
    let pool: IPAddressPool = load(&chart_example("ipaddresspool.yaml"));
    let peer: BGPPeer = load(&chart_example("bgppeer.yaml"));
    let adv: BGPAdvertisement = load(&chart_example("bgpadvertisement.yaml"));
    let parsed_pool = pool
        .validate()
        .unwrap_or_else(|e| panic!("pool example: {e:?}"));
    let parsed_peer = peer
        .validate()
        .unwrap_or_else(|e| panic!("peer example: {e:?}"));
    let parsed_adv = adv
        .validate()
        .unwrap_or_else(|e| panic!("advertisement example: {e:?}"));
    let pool_name = pool.metadata.name.clone().unwrap();
    let peer_name = peer.metadata.name.clone().unwrap();
    assert!(
        parsed_adv.ip_address_pools.contains(&pool_name),
        "advertisement names the example pool"
    );
    assert!(
        parsed_adv.peers.contains(&peer_name),
        "advertisement names the example peer"
    );
    assert_eq!(parsed_adv.check_pool(&pool_name, &parsed_pool), []);
    assert_eq!(
        parsed_adv.peer_warnings([(peer_name.as_str(), &parsed_peer)]),
        []
    );
    let ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.namespace.clone();
    assert_eq!(ns(&pool.metadata), ns(&peer.metadata));
    assert_eq!(ns(&pool.metadata), ns(&adv.metadata));
}
