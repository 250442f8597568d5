//! Interop with real routers — BIRD 2, FRR bgpd, GoBGP, ExaBGP — each run
//! as the upstream router in network namespaces of the test's own, with
//! `ferrolb-bgp announce` as the node (see `common/mod.rs`).
//!
//! These run in the normal test run (`scripts/test.sh`). They need root and
//! the routers (`scripts/install-deps.sh`); without them they FAIL, naming
//! that script. Each test has its own namespaces and state directory, so
//! they run in parallel.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ferrolb_bgp::codec::{Capability, CodecOptions, Family, Message, Open};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-bgp");

fn topo(tag: &str, kind: Kind, opts: &RouterOpts) -> Topo {
    require(kind.binaries());
    let mut t = Topo::new(tag);
    t.start_router(kind, opts);
    t
}

/// eBGP flags for one IPv4 session from the node to the router.
fn ebgp<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--local-as",
        "64513",
        "--peer-as",
        "64512",
        "--peer",
        ROUTER_IP,
        "--source",
        NODE_IP,
    ];
    a.extend_from_slice(extra);
    a
}

const PEER4: &str = "172.30.0.1:179";

fn wait_count(t: &Topo, v6: bool, n: usize) {
    wait_for(&format!("{n} routes (v6: {v6})"), DEADLINE, || {
        (t.route_count(v6) == n).then_some(())
    });
}

fn wait_route(t: &Topo, prefix: &str) -> Route {
    wait_for(&format!("route {prefix}"), DEADLINE, || t.route(prefix))
}

// --- 1 and 10k routes, attributes, withdrawal ---------------------------------

/// 1 + 10k IPv4 /32 and 1 + 10k IPv6 /128 over one eBGP session, with next
/// hops, communities, large communities and AS path; the Established line;
/// then withdrawal by re-reading the prefix file (SIGHUP), then Cease.
fn ebgp_10k(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    let mut file = host_routes("10.100.0.0".parse().unwrap(), 10_000);
    file += &host_routes("2001:db8:100::".parse().unwrap(), 10_000);
    std::fs::write(t.path("prefixes"), &file).unwrap();
    let pf = t.path("prefixes");
    let mut args = ebgp(&[
        "--prefix",
        "10.99.0.1/32",
        "--prefix",
        "2001:db8:99::1/128",
        "--next-hop",
        NODE_IP6,
        "--community",
        "64512:100",
        "--community",
        "64512:200",
        "--large-community",
        "64512:1:2",
    ]);
    args.extend(["--prefix-file", &pf]);
    let ours = t.announce(BIN, "ours", &args);
    let up = t.wait_line("ours", PEER4, "Established");
    assert_eq!(up["hold_time"], 90, "{up}");
    assert_eq!(up["peer_as"], 64512, "{up}");
    assert_eq!(
        up["capabilities"]["families"],
        serde_json::json!(["ipv4-unicast", "ipv6-unicast"]),
        "{up}"
    );
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    wait_count(&t, false, 10_001);
    wait_count(&t, true, 10_001);
    for (prefix, nh) in [
        ("10.99.0.1/32", NODE_IP),
        ("10.100.39.15/32", NODE_IP),
        ("2001:db8:99::1/128", NODE_IP6),
        ("2001:db8:100::270f/128", NODE_IP6),
    ] {
        let r = t
            .route(prefix)
            .unwrap_or_else(|| panic!("{prefix} missing"));
        assert_eq!(r.next_hop, nh, "{prefix}: {r:?}");
        assert_eq!(r.as_path, vec![64513], "{prefix}: {r:?}");
        assert_eq!(r.communities, ["64512:100", "64512:200"], "{prefix}: {r:?}");
        assert_eq!(r.large_communities, ["64512:1:2"], "{prefix}: {r:?}");
    }
    // Withdraw all but the first 100 of each family.
    let keep = host_routes("10.100.0.0".parse().unwrap(), 100)
        + &host_routes("2001:db8:100::".parse().unwrap(), 100);
    std::fs::write(t.path("prefixes"), keep).unwrap();
    t.signal(ours, "HUP");
    wait_count(&t, false, 101);
    wait_count(&t, true, 101);
    assert!(t.route("10.100.39.15/32").is_none());
    assert!(t.route("2001:db8:100::270f/128").is_none());
    assert!(t.route("10.100.0.99/32").is_some());
    assert!(t.route("10.99.0.1/32").is_some());
    t.stop_proc(ours, "TERM");
    wait_count(&t, false, 0);
    wait_count(&t, true, 0);
}

#[test]
fn bird_holds_1_and_10k_v4_and_v6_routes_with_attributes_then_withdrawals() {
    ebgp_10k(Kind::Bird, "b10k");
}

#[test]
fn frr_holds_1_and_10k_v4_and_v6_routes_with_attributes_then_withdrawals() {
    ebgp_10k(Kind::Frr, "f10k");
}

#[test]
fn gobgp_holds_1_and_10k_v4_and_v6_routes_with_attributes_then_withdrawals() {
    ebgp_10k(Kind::Gobgp, "g10k");
}

/// iBGP: LOCAL_PREF as configured, empty AS path, next hop ours, both families.
fn ibgp(kind: Kind, tag: &str) {
    let mut t = topo(
        tag,
        kind,
        &RouterOpts {
            ibgp: true,
            ..RouterOpts::default()
        },
    );
    t.announce(
        BIN,
        "ours",
        &[
            "--local-as",
            "64512",
            "--peer-as",
            "internal",
            "--peer",
            ROUTER_IP,
            "--source",
            NODE_IP,
            "--prefix",
            "10.98.0.1/32",
            "--prefix",
            "2001:db8:98::1/128",
            "--next-hop",
            NODE_IP6,
            "--local-pref",
            "250",
            "--community",
            "64512:7",
        ],
    );
    let up = t.wait_line("ours", PEER4, "Established");
    assert_eq!(up["ibgp"], true, "{up}");
    for (p, nh) in [("10.98.0.1/32", NODE_IP), ("2001:db8:98::1/128", NODE_IP6)] {
        let r = wait_route(&t, p);
        assert_eq!(r.local_pref, Some(250), "{p}: {r:?}");
        assert!(r.as_path.is_empty(), "{p}: {r:?}");
        assert_eq!(r.next_hop, nh, "{p}: {r:?}");
        assert_eq!(r.communities, ["64512:7"], "{p}: {r:?}");
    }
}

#[test]
fn bird_ibgp_gets_local_pref_and_an_empty_as_path() {
    ibgp(Kind::Bird, "bib");
}

#[test]
fn frr_ibgp_gets_local_pref_and_an_empty_as_path() {
    ibgp(Kind::Frr, "fib");
}

#[test]
fn gobgp_ibgp_gets_local_pref_and_an_empty_as_path() {
    ibgp(Kind::Gobgp, "gib");
}

// --- MD5 ---------------------------------------------------------------------

/// A wrong password never establishes (the router's kernel drops the
/// SYNs, so our connect times out and is retried); the right one does.
fn md5(kind: Kind, tag: &str) {
    let mut t = topo(
        tag,
        kind,
        &RouterOpts {
            password: Some("s3cret".into()),
            ..RouterOpts::default()
        },
    );
    let wrong = t.announce(
        BIN,
        "wrong",
        &ebgp(&["--prefix", "10.97.0.1/32", "--password", "wrong"]),
    );
    let right = t.announce(
        BIN,
        "right",
        &[
            "--local-as",
            "64513",
            "--peer-as",
            "64512",
            "--peer",
            ROUTER_IP6,
            "--source",
            NODE_IP6,
            "--router-id",
            NODE_IP,
            "--prefix",
            "10.97.0.2/32",
            "--next-hop",
            NODE_IP,
            "--password",
            "s3cret",
        ],
    );
    t.wait_line("right", "[fd30::1]:179", "Established");
    wait_route(&t, "10.97.0.2/32");
    // The wrong one's first connect must have timed out (5 s) and been retried.
    wait_for("wrong password: a second connect attempt", DEADLINE, || {
        let attempts = t
            .lines("wrong")
            .iter()
            .filter(|l| l["state"] == "Connect")
            .count();
        (attempts >= 2).then_some(())
    });
    assert!(
        !t.lines("wrong").iter().any(|l| l["state"] == "Established"),
        "{}",
        t.log("wrong.out")
    );
    assert!(t.route("10.97.0.1/32").is_none());
    assert_eq!(t.sessions_up(), 1);
    // Neither the password nor anything derived from it is printed.
    for log in ["wrong.out", "wrong.err", "right.out", "right.err"] {
        let text = t.log(log);
        assert!(
            !text.contains("s3cret") && !text.contains("wrong\""),
            "{log}: {text}"
        );
    }
    t.stop_proc(wrong, "TERM");
    t.stop_proc(right, "TERM");
}

#[test]
fn bird_md5_right_password_establishes_and_wrong_never_does() {
    md5(Kind::Bird, "bmd5");
}

#[test]
fn frr_md5_right_password_establishes_and_wrong_never_does() {
    md5(Kind::Frr, "fmd5");
}

#[test]
fn gobgp_md5_right_password_establishes_and_wrong_never_does() {
    md5(Kind::Gobgp, "gmd5");
}

#[test]
fn exabgp_md5_right_password_establishes_and_wrong_never_does() {
    md5(Kind::Exabgp, "xmd5");
}

// --- router restart and freeze -------------------------------------------------

/// The router goes away and comes back: we notice, reconnect (backoff) and
/// announce everything again.
fn router_restart(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    t.announce(BIN, "ours", &ebgp(&["--prefix", "10.96.0.1/32"]));
    t.wait_line("ours", PEER4, "Established");
    wait_route(&t, "10.96.0.1/32");
    t.restart_router("TERM");
    wait_for("our session to go down", DEADLINE, || {
        t.lines("ours")
            .iter()
            .any(|l| l["peer"] == PEER4 && l["state"] == "Active")
            .then_some(())
    });
    let r = wait_route(&t, "10.96.0.1/32");
    assert_eq!(r.next_hop, NODE_IP);
    let ups = t
        .lines("ours")
        .iter()
        .filter(|l| l["state"] == "Established")
        .count();
    assert_eq!(ups, 2, "{}", t.log("ours.out"));
}

#[test]
fn bird_restart_gets_the_routes_back() {
    router_restart(Kind::Bird, "brs");
}

#[test]
fn frr_restart_gets_the_routes_back() {
    router_restart(Kind::Frr, "frs");
}

#[test]
fn gobgp_restart_gets_the_routes_back() {
    router_restart(Kind::Gobgp, "grs");
}

#[test]
fn exabgp_restart_gets_the_routes_back() {
    router_restart(Kind::Exabgp, "xrs");
}

/// A frozen router (SIGSTOP) sends nothing: with a 3 s hold time we send
/// Hold Timer Expired (4/0) and declare the session down within the hold
/// time, not earlier than a keepalive interval.
fn router_frozen(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    t.announce(
        BIN,
        "ours",
        &ebgp(&["--prefix", "10.95.0.1/32", "--hold-time", "3"]),
    );
    let up = t.wait_line("ours", PEER4, "Established");
    assert_eq!(up["hold_time"], 3, "{up}");
    wait_route(&t, "10.95.0.1/32");
    let router = t.router_index();
    let pid = t.pid(router);
    t.signal(router, "STOP");
    let frozen = Instant::now();
    wait_for("router stopped", DEADLINE, || {
        (proc_state(pid) == Some('T')).then_some(())
    });
    let down = wait_for("hold timer expiry", DEADLINE, || {
        t.lines("ours").into_iter().find(|l| {
            l["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("sent 4/0"))
        })
    });
    let took = frozen.elapsed();
    assert_ne!(down["state"], "Established", "{down}");
    assert!(
        // The timer fires ≤ 3 s after the router's last message; the rest
        // is for seeing our output on a loaded machine.
        took <= Duration::from_millis(4_500),
        "declared down after {took:?}, hold time 3 s"
    );
    t.signal(router, "CONT");
}

#[test]
fn bird_frozen_is_declared_down_within_the_hold_time() {
    router_frozen(Kind::Bird, "bfz");
}

#[test]
fn frr_frozen_is_declared_down_within_the_hold_time() {
    router_frozen(Kind::Frr, "ffz");
}

#[test]
fn gobgp_frozen_is_declared_down_within_the_hold_time() {
    router_frozen(Kind::Gobgp, "gfz");
}

#[test]
fn exabgp_frozen_is_declared_down_within_the_hold_time() {
    router_frozen(Kind::Exabgp, "xfz");
}

// --- graceful restart ----------------------------------------------------------

/// With `--graceful-restart`, kill -9 of our process leaves our routes at
/// the router (stale); when we come back with a changed set and End-of-RIB,
/// the kept one is refreshed and the dropped one goes. Without it, the
/// routes go when the session does.
fn graceful_restart(kind: Kind, tag: &str, gr: bool) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    let mut extra = vec!["--prefix", "10.94.0.1/32", "--prefix", "10.94.0.2/32"];
    if gr {
        extra.extend(["--graceful-restart", "60"]);
    }
    let first = t.announce(BIN, "first", &ebgp(&extra));
    t.wait_line("first", PEER4, "Established");
    wait_route(&t, "10.94.0.2/32");
    assert!(!wait_route(&t, "10.94.0.1/32").stale);
    t.stop_proc(first, "KILL");
    if !gr {
        wait_count(&t, false, 0);
        return;
    }
    wait_for("router to see the session go", DEADLINE, || {
        (t.sessions_up() == 0).then_some(())
    });
    let kept = wait_for("route marked stale", DEADLINE, || {
        t.route("10.94.0.1/32").filter(|r| r.stale)
    });
    assert_eq!(kept.next_hop, NODE_IP);
    assert!(t.route("10.94.0.2/32").is_some(), "stale routes are kept");
    t.announce(
        BIN,
        "second",
        &ebgp(&["--prefix", "10.94.0.1/32", "--graceful-restart", "60"]),
    );
    t.wait_line("second", PEER4, "Established");
    wait_for("10.94.0.2 gone after End-of-RIB", DEADLINE, || {
        t.route("10.94.0.2/32").is_none().then_some(())
    });
    wait_for("10.94.0.1 refreshed", DEADLINE, || {
        t.route("10.94.0.1/32").filter(|r| !r.stale)
    });
}

#[test]
fn bird_keeps_our_routes_over_graceful_restart_then_refreshes_them() {
    graceful_restart(Kind::Bird, "bgr", true);
}

#[test]
fn frr_keeps_our_routes_over_graceful_restart_then_refreshes_them() {
    graceful_restart(Kind::Frr, "fgr", true);
}

#[test]
fn gobgp_keeps_our_routes_over_graceful_restart_then_refreshes_them() {
    graceful_restart(Kind::Gobgp, "ggr", true);
}

#[test]
fn bird_drops_our_routes_when_killed_without_graceful_restart() {
    graceful_restart(Kind::Bird, "bng", false);
}

#[test]
fn frr_drops_our_routes_when_killed_without_graceful_restart() {
    graceful_restart(Kind::Frr, "fng", false);
}

/// `--graceful-restart-restarting`: the router sees the Restart State (R)
/// bit in our first OPEN; after the router restarts, our reconnect (same
/// process, no restart of ours) no longer carries it.
fn restart_state_bit(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    t.announce(
        BIN,
        "ours",
        &ebgp(&[
            "--prefix",
            "10.88.0.1/32",
            "--graceful-restart",
            "60",
            "--graceful-restart-restarting",
        ]),
    );
    t.wait_line("ours", PEER4, "Established");
    wait_route(&t, "10.88.0.1/32");
    assert_eq!(t.peer_restart_state(), Some(true), "R in the first OPEN");
    t.restart_router("TERM");
    wait_route(&t, "10.88.0.1/32");
    let r = wait_for("the router to see our new OPEN", DEADLINE, || {
        t.peer_restart_state()
    });
    assert!(!r, "no R once a session was up");
}

#[test]
fn bird_sees_the_restart_state_bit_only_until_we_are_up_again() {
    restart_state_bit(Kind::Bird, "brb");
}

#[test]
fn frr_sees_the_restart_state_bit_only_until_we_are_up_again() {
    restart_state_bit(Kind::Frr, "frb");
}

#[test]
fn gobgp_sees_the_restart_state_bit_only_until_we_are_up_again() {
    restart_state_bit(Kind::Gobgp, "grb");
}

#[test]
fn exabgp_sees_the_restart_state_bit_only_until_we_are_up_again() {
    restart_state_bit(Kind::Exabgp, "xrb");
}

/// Without graceful restart, a frozen speaker's routes go when the
/// router's hold timer (3 s, as we proposed) expires, not before.
fn speaker_frozen(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    let ours = t.announce(
        BIN,
        "ours",
        &ebgp(&["--prefix", "10.90.0.1/32", "--hold-time", "3"]),
    );
    t.wait_line("ours", PEER4, "Established");
    wait_route(&t, "10.90.0.1/32");
    t.signal(ours, "STOP");
    let frozen = Instant::now();
    wait_for("our process stopped", DEADLINE, || {
        (proc_state(t.pid(ours)) == Some('T')).then_some(())
    });
    wait_count(&t, false, 0);
    let took = frozen.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "routes went after {took:?}: before the hold time could expire"
    );
    t.signal(ours, "CONT");
}

#[test]
fn bird_drops_a_frozen_speakers_routes_at_hold_expiry() {
    speaker_frozen(Kind::Bird, "bsf");
}

#[test]
fn frr_drops_a_frozen_speakers_routes_at_hold_expiry() {
    speaker_frozen(Kind::Frr, "fsf");
}

// --- IPv6 sessions, YAML config --------------------------------------------------

/// An IPv6 session (fd30::/64) carrying IPv6 and IPv4 prefixes, the next
/// hops taken from the session and from `--next-hop`.
fn ipv6_session(kind: Kind, tag: &str) {
    let mut t = topo(tag, kind, &RouterOpts::default());
    t.announce(
        BIN,
        "ours",
        &[
            "--local-as",
            "64513",
            "--peer-as",
            "external",
            "--peer",
            "[fd30::1]",
            "--source",
            NODE_IP6,
            "--router-id",
            NODE_IP,
            "--prefix",
            "2001:db8:93::1/128",
            "--prefix",
            "10.93.0.1/32",
            "--next-hop",
            NODE_IP,
            "--large-community",
            "64513:9:9",
        ],
    );
    t.wait_line("ours", "[fd30::1]:179", "Established");
    let r = wait_route(&t, "2001:db8:93::1/128");
    assert_eq!(r.next_hop, NODE_IP6, "{r:?}");
    assert_eq!(r.as_path, vec![64513]);
    assert_eq!(r.large_communities, ["64513:9:9"]);
    let r = wait_route(&t, "10.93.0.1/32");
    assert_eq!(r.next_hop, NODE_IP, "{r:?}");
}

#[test]
fn frr_ipv6_session_carries_ipv6_and_ipv4_prefixes() {
    ipv6_session(Kind::Frr, "fv6");
}

#[test]
fn gobgp_ipv6_session_carries_ipv6_and_ipv4_prefixes() {
    ipv6_session(Kind::Gobgp, "gv6");
}

/// `--config` YAML with two peers (an IPv4 and an IPv6 session to the same
/// BIRD), per-peer hold time, shared prefixes and communities.
#[test]
fn bird_yaml_config_runs_an_ipv4_and_an_ipv6_session() {
    let mut t = topo("byml", Kind::Bird, &RouterOpts::default());
    let yaml = format!(
        "local-as: 64513\nrouter-id: {NODE_IP}\npeer-as: 64512\nsources: [{NODE_IP}, '{NODE_IP6}']\n\
         prefixes: [10.92.0.1/32, '2001:db8:92::1/128']\ncommunities: ['64512:92']\n\
         peers:\n  - address: {ROUTER_IP}\n    hold-time: 30\n    next-hops: ['{NODE_IP6}']\n\
         \x20 - address: '[{ROUTER_IP6}]:179'\n    hold-time: 60\n"
    );
    std::fs::write(t.path("config.yaml"), yaml).unwrap();
    let conf = t.path("config.yaml");
    t.announce(BIN, "ours", &["--config", &conf]);
    let v4 = t.wait_line("ours", PEER4, "Established");
    let v6 = t.wait_line("ours", "[fd30::1]:179", "Established");
    assert_eq!(v4["hold_time"], 30, "{v4}");
    assert_eq!(v6["hold_time"], 60, "{v6}");
    wait_for("two sessions at BIRD", DEADLINE, || {
        (t.sessions_up() == 2).then_some(())
    });
    // Both sessions carry both prefixes; BIRD keeps one best route each.
    let r = wait_route(&t, "2001:db8:92::1/128");
    assert_eq!(r.next_hop, NODE_IP6);
    assert_eq!(r.communities, ["64512:92"]);
    let r = wait_route(&t, "10.92.0.1/32");
    assert_eq!(r.communities, ["64512:92"]);
    let all = t.bird("show route all");
    assert!(all.contains("node41") && all.contains("node61"), "{all}");
}

// --- ExaBGP -----------------------------------------------------------------

/// ExaBGP (no RIB: its API process logs JSON): 1 + 10k IPv4 and IPv6
/// prefixes with attributes and both End-of-RIB markers, then withdrawal.
#[test]
fn exabgp_receives_1_and_10k_v4_and_v6_routes_with_attributes_and_end_of_rib() {
    let mut t = topo("x10k", Kind::Exabgp, &RouterOpts::default());
    let mut file = host_routes("10.100.0.0".parse().unwrap(), 10_000);
    file += &host_routes("2001:db8:100::".parse().unwrap(), 10_000);
    std::fs::write(t.path("prefixes"), &file).unwrap();
    let pf = t.path("prefixes");
    let mut args = ebgp(&[
        "--prefix",
        "10.99.0.1/32",
        "--prefix",
        "2001:db8:99::1/128",
        "--next-hop",
        NODE_IP6,
        "--community",
        "64512:100",
        "--large-community",
        "64512:1:2",
    ]);
    args.extend(["--prefix-file", &pf]);
    let ours = t.announce(BIN, "ours", &args);
    t.wait_line("ours", PEER4, "Established");
    let log = wait_for("both End-of-RIB markers", Duration::from_secs(60), || {
        let r = t.log("received.jsonl");
        (r.contains("\"eor\": { \"afi\" : \"ipv4\"") && r.contains("\"eor\": { \"afi\" : \"ipv6\""))
            .then_some(r)
    });
    let nlri = log.matches("{ \"nlri\": \"").count();
    assert_eq!(nlri, 20_002, "every prefix exactly once");
    assert!(log.contains("\"nlri\": \"10.99.0.1/32\""));
    assert!(log.contains("\"nlri\": \"10.100.39.15/32\""));
    assert!(log.contains(&format!(
        "\"{NODE_IP6}\": [ {{ \"nlri\": \"2001:db8:99::1/128\" }}"
    )));
    assert!(log.contains(&format!(
        "\"{NODE_IP}\": [ {{ \"nlri\": \"10.99.0.1/32\" }}"
    )));
    assert!(
        log.contains("\"community\": [ [ 64512, 100 ] ]"),
        "communities"
    );
    assert!(
        log.contains("\"large-community\": [ [ 64512, 1 , 2 ] ]"),
        "large communities"
    );
    assert!(log.contains("\"as-path\": [ 64513 ]"), "as path");
    std::fs::write(t.path("prefixes"), "").unwrap();
    t.signal(ours, "HUP");
    wait_for("withdrawals", DEADLINE, || {
        let r = t.log("received.jsonl");
        let withdrawn = r.split_once("\"withdraw\"").map_or("", |(_, w)| w);
        (withdrawn.contains("\"10.100.39.15/32\"")
            && withdrawn.contains("\"2001:db8:100::270f/128\""))
        .then_some(())
    });
    t.stop_proc(ours, "TERM");
    wait_for("session down at ExaBGP", DEADLINE, || {
        t.log("received.jsonl")
            .contains("\"state\": \"down\"")
            .then_some(())
    });
}

/// ExaBGP over an IPv6 session, iBGP: IPv6 and IPv4 prefixes with their
/// next hops, LOCAL_PREF and an empty AS path.
#[test]
fn exabgp_ibgp_over_an_ipv6_session_gets_local_pref_and_both_families() {
    let mut t = topo(
        "xv6",
        Kind::Exabgp,
        &RouterOpts {
            ibgp: true,
            ..RouterOpts::default()
        },
    );
    t.announce(
        BIN,
        "ours",
        &[
            "--local-as",
            "64512",
            "--peer-as",
            "internal",
            "--peer",
            "[fd30::1]",
            "--source",
            NODE_IP6,
            "--router-id",
            NODE_IP,
            "--prefix",
            "2001:db8:89::1/128",
            "--prefix",
            "10.89.0.1/32",
            "--next-hop",
            NODE_IP,
            "--local-pref",
            "250",
        ],
    );
    let up = t.wait_line("ours", "[fd30::1]:179", "Established");
    assert_eq!(up["ibgp"], true, "{up}");
    let log = wait_for("both End-of-RIB markers", Duration::from_secs(60), || {
        let r = t.log("received.jsonl");
        (r.contains("\"eor\": { \"afi\" : \"ipv4\"") && r.contains("\"eor\": { \"afi\" : \"ipv6\""))
            .then_some(r)
    });
    assert!(
        log.contains(&format!(
            "\"{NODE_IP6}\": [ {{ \"nlri\": \"2001:db8:89::1/128\" }}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "\"{NODE_IP}\": [ {{ \"nlri\": \"10.89.0.1/32\" }}"
        )),
        "{log}"
    );
    assert!(log.contains("\"local-preference\": 250"), "{log}");
    assert!(
        log.contains("\"as-path\": [ ]") || !log.contains("\"as-path\""),
        "{log}"
    );
}

// --- hostile peer ------------------------------------------------------------------

fn read_msg(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 19];
    s.read_exact(&mut buf).unwrap();
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    buf.resize(len, 0);
    s.read_exact(&mut buf[19..]).unwrap();
    buf
}

/// Reads until a NOTIFICATION; returns (code, subcode).
fn read_notification(s: &mut TcpStream) -> (u8, u8) {
    loop {
        let m = read_msg(s);
        if m[18] == 3 {
            return (m[19], m[20]);
        }
    }
}

fn accept(l: &std::net::TcpListener) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let (s, _) = wait_for("our connection to the hostile peer", DEADLINE, || {
        l.accept().ok()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut h = vec![0xff; 16];
    h.extend(len.to_be_bytes());
    h.push(kind);
    h
}

/// One `ferrolb-bgp announce` with two sessions: BIRD and a scripted hostile
/// peer that sends a malformed OPEN, then a malformed UPDATE, then an
/// oversized message. Each time we answer with the right NOTIFICATION
/// (2/1, 3/1, 1/2) and reset that session only: the process keeps running,
/// and the BIRD session stays up with its route.
#[test]
fn hostile_peer_gets_notifications_while_the_bird_session_carries_on() {
    let mut t = topo("host", Kind::Bird, &RouterOpts::default());
    let listener = listen_in_netns(&t.router_ns(), "172.30.0.1:1179".parse().unwrap());
    let ours = t.announce(
        BIN,
        "ours",
        &ebgp(&["--peer", "172.30.0.1:1179", "--prefix", "10.91.0.1/32"]),
    );
    t.wait_line("ours", PEER4, "Established");
    wait_route(&t, "10.91.0.1/32");
    let good_open = Message::Open(Open::new(
        64512,
        90,
        Ipv4Addr::new(172, 30, 0, 1),
        vec![Capability::multiprotocol(Family::Ipv4Unicast)],
    ))
    .encode(CodecOptions::FOUR_OCTET_AS)
    .unwrap();

    // 1. OPEN with version 3: Unsupported Version Number.
    let mut s = accept(&listener);
    assert_eq!(read_msg(&mut s)[18], 1, "our OPEN first");
    let mut bad = good_open.clone();
    bad[19] = 3;
    s.write_all(&bad).unwrap();
    assert_eq!(read_notification(&mut s), (2, 1));
    drop(s);

    // 2. A good OPEN, then an UPDATE whose withdrawn-routes length runs past
    //    the message: Malformed Attribute List, session reset.
    let mut s = accept(&listener);
    read_msg(&mut s);
    s.write_all(&good_open).unwrap();
    s.write_all(&header(19, 4)).unwrap();
    let mut update = header(23, 2);
    update.extend([0x00, 0x10, 0x00, 0x00]);
    s.write_all(&update).unwrap();
    assert_eq!(read_notification(&mut s), (3, 1));
    drop(s);

    // 3. A header announcing a 5000-octet message: Bad Message Length.
    let mut s = accept(&listener);
    read_msg(&mut s);
    s.write_all(&header(5000, 2)).unwrap();
    s.write_all(&[0u8; 64]).unwrap();
    assert_eq!(read_notification(&mut s), (1, 2));
    drop(s);

    // Each reset is reported on the hostile peer's state lines.
    for n in ["sent 2/1", "sent 3/1", "sent 1/2"] {
        wait_for(&format!("{n} reported"), DEADLINE, || {
            t.lines("ours")
                .iter()
                .filter(|l| l["peer"] == "172.30.0.1:1179")
                .any(|l| l["last_error"].as_str().is_some_and(|e| e.starts_with(n)))
                .then_some(())
        });
    }
    assert!(t.alive(ours), "ferrolb-bgp exited: {}", t.log("ours.err"));
    assert!(!t.log("ours.err").contains("panicked"));
    let bird_lines: Vec<_> = t
        .lines("ours")
        .into_iter()
        .filter(|l| l["peer"] == PEER4)
        .collect();
    assert_eq!(
        bird_lines.last().map(|l| l["state"].clone()),
        Some("Established".into()),
        "the BIRD session must stay up: {bird_lines:?}"
    );
    assert_eq!(t.sessions_up(), 1);
    assert!(t.route("10.91.0.1/32").is_some());
}
