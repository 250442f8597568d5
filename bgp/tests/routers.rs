//! Interop with real routers (BIRD 2, FRR bgpd, GoBGP) in network
//! namespaces, as laid out in ROUTERS.md: a router namespace with a bridge,
//! a node namespace running `ferrolb-bgp announce`.
//!
//! Needs root, iproute2 and `apt-get install -y bird2 frr gobgpd`; hence
//! `#[ignore]`. Run with
//! `cargo test -p ferrolb-bgp --test routers -- --ignored`
//! (tests use distinct namespaces and subnets, so they may run in parallel).

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Router namespace `<name>-r` with br0 172.31.<idx>.1/24 + fd31:<idx>::1/64,
/// node namespace `<name>-n` with eth0 .2 / ::2.
struct Topo {
    name: String,
    idx: u8,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Topo {
    fn new(name: &str, idx: u8) -> Self {
        let t = Topo {
            name: name.to_string(),
            idx,
            dir: std::env::temp_dir().join(format!("ferrolb-bgp-{name}")),
            children: Vec::new(),
        };
        let (r, n) = (t.router_ns(), t.node_ns());
        let _ = Command::new("ip").args(["netns", "del", &r]).output();
        let _ = Command::new("ip").args(["netns", "del", &n]).output();
        let _ = fs::remove_dir_all(&t.dir);
        fs::create_dir_all(&t.dir).unwrap();
        let v4r = format!("172.31.{idx}.1/24");
        let v6r = format!("fd31:{idx}::1/64");
        let v4n = format!("172.31.{idx}.2/24");
        let v6n = format!("fd31:{idx}::2/64");
        for cmd in [
            vec!["ip", "netns", "add", &r],
            vec!["ip", "netns", "add", &n],
            vec!["ip", "-n", &r, "link", "set", "lo", "up"],
            vec!["ip", "-n", &n, "link", "set", "lo", "up"],
            vec!["ip", "-n", &r, "link", "add", "br0", "type", "bridge"],
            vec!["ip", "-n", &r, "addr", "add", &v4r, "dev", "br0"],
            vec!["ip", "-n", &r, "addr", "add", &v6r, "dev", "br0", "nodad"],
            vec!["ip", "-n", &r, "link", "set", "br0", "up"],
            vec![
                "ip", "-n", &r, "link", "add", "vn1", "type", "veth", "peer", "name", "eth0",
                "netns", &n,
            ],
            vec!["ip", "-n", &r, "link", "set", "vn1", "master", "br0", "up"],
            vec!["ip", "-n", &n, "addr", "add", &v4n, "dev", "eth0"],
            vec!["ip", "-n", &n, "addr", "add", &v6n, "dev", "eth0", "nodad"],
            vec!["ip", "-n", &n, "link", "set", "eth0", "up"],
        ] {
            run(&cmd);
        }
        // Wait until both ends of the veth are up (there is no ping here).
        wait_for("link up", DEADLINE, || {
            let a = output(&["ip", "-n", &r, "-o", "link", "show", "vn1"]);
            let b = output(&["ip", "-n", &n, "-o", "link", "show", "eth0"]);
            (a.contains("state UP") && b.contains("state UP")).then_some(())
        });
        t
    }

    fn router_ns(&self) -> String {
        format!("{}-r", self.name)
    }
    fn node_ns(&self) -> String {
        format!("{}-n", self.name)
    }
    fn router_ip(&self) -> String {
        format!("172.31.{}.1", self.idx)
    }
    fn node_ip(&self) -> String {
        format!("172.31.{}.2", self.idx)
    }
    fn node_ip6(&self) -> String {
        format!("fd31:{}::2", self.idx)
    }
    fn path(&self, f: &str) -> String {
        self.dir.join(f).to_string_lossy().into_owned()
    }

    /// Runs a command in a namespace with stdout/stderr to files; returns
    /// the index of the child.
    fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> usize {
        let out = fs::File::create(self.path(&format!("{log}.out"))).unwrap();
        let err = fs::File::create(self.path(&format!("{log}.err"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts `ferrolb-bgp announce` in the node namespace.
    fn announce(&mut self, extra: &[&str]) -> usize {
        let bin = env!("CARGO_BIN_EXE_ferrolb-bgp");
        let (rip, nip) = (self.router_ip(), self.node_ip());
        let mut args = vec![bin, "announce", "--peer", &rip, "--local-address", &nip];
        args.extend_from_slice(extra);
        let ns = self.node_ns();
        self.spawn(&ns, &args, "ours")
    }

    fn ours_output(&self) -> String {
        fs::read_to_string(self.path("ours.out")).unwrap_or_default()
    }

    /// SIGTERM to a child and wait for it.
    fn terminate(&mut self, i: usize) {
        let pid = self.children[i].id().to_string();
        run(&["kill", "-TERM", &pid]);
        let start = Instant::now();
        loop {
            if self.children[i].try_wait().unwrap().is_some() {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "child did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.router_ns()])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.node_ns()])
            .output();
    }
}

// --- routers ------------------------------------------------------------------

fn start_bird(t: &mut Topo, mode: &str, extra: &str) {
    let conf = format!(
        r#"router id {rip};
log stderr all;
protocol device {{}}
protocol direct {{ interface "br0"; ipv4; ipv6; }}
protocol bgp nodes {{
  local {rip} as 64512;
  neighbor range 172.31.{idx}.0/24 {mode};
  dynamic name "node";
  strict bind yes;
  {extra}
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"#,
        rip = t.router_ip(),
        idx = t.idx,
    );
    fs::write(t.path("bird.conf"), conf).unwrap();
    let ns = t.router_ns();
    let (c, s, p) = (t.path("bird.conf"), t.path("bird.ctl"), t.path("bird.pid"));
    t.spawn(&ns, &["bird", "-f", "-c", &c, "-s", &s, "-P", &p], "bird");
    let sock = t.path("bird.ctl");
    wait_for("bird socket", DEADLINE, || fs::metadata(&sock).ok());
}

fn bird(t: &Topo, cmd: &str) -> String {
    let sock = t.path("bird.ctl");
    let mut args = vec!["birdc", "-s", &sock];
    args.extend(cmd.split(' '));
    output(&args)
}

fn start_frr(t: &mut Topo) {
    let conf = format!(
        "frr defaults traditional\nhostname r\nrouter bgp 64512\n bgp router-id {rip}\n no bgp ebgp-requires-policy\n \
         neighbor NODES peer-group\n neighbor NODES remote-as external\n bgp listen range 172.31.{idx}.0/24 peer-group NODES\n \
         address-family ipv4 unicast\n  neighbor NODES activate\n exit-address-family\n \
         address-family ipv6 unicast\n  neighbor NODES activate\n exit-address-family\n",
        rip = t.router_ip(),
        idx = t.idx,
    );
    fs::write(t.path("bgpd.conf"), conf).unwrap();
    let ns = t.router_ns();
    let (dir, z, pid, conf, rip) = (
        t.dir.to_string_lossy().into_owned(),
        t.path("zserv.api"),
        t.path("bgpd.pid"),
        t.path("bgpd.conf"),
        t.router_ip(),
    );
    t.spawn(
        &ns,
        &[
            "/usr/lib/frr/bgpd",
            "-S",
            "--vty_socket",
            &dir,
            "-z",
            &z,
            "-Z",
            "-n",
            "-l",
            &rip,
            "-P",
            "0",
            "-i",
            &pid,
            "-f",
            &conf,
        ],
        "bgpd",
    );
    let vty = t.path("bgpd.vty");
    wait_for("bgpd vty socket", DEADLINE, || fs::metadata(&vty).ok());
}

fn frr(t: &Topo, cmd: &str) -> String {
    let dir = t.dir.to_string_lossy().into_owned();
    output(&["vtysh", "--vty_socket", &dir, "-d", "bgpd", "-c", cmd])
}

fn start_gobgp(t: &mut Topo) {
    let conf = format!(
        r#"[global.config]
  as = 64512
  router-id = "{rip}"
  local-address-list = ["{rip}"]
[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "nodes"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "172.31.{idx}.0/24"
    peer-group = "nodes"
"#,
        rip = t.router_ip(),
        idx = t.idx,
    );
    fs::write(t.path("gobgp.toml"), conf).unwrap();
    let ns = t.router_ns();
    let (conf, api) = (
        t.path("gobgp.toml"),
        format!("unix://{}", t.path("gobgp.sock")),
    );
    t.spawn(
        &ns,
        &[
            "gobgpd",
            "-f",
            &conf,
            "-p",
            "--pprof-disable",
            "--api-hosts",
            &api,
        ],
        "gobgpd",
    );
    let sock = t.path("gobgp.sock");
    wait_for("gobgp socket", DEADLINE, || fs::metadata(&sock).ok());
}

fn gobgp(t: &Topo, args: &[&str]) -> String {
    let target = format!("unix://{}", t.path("gobgp.sock"));
    let mut a = vec!["gobgp", "--target", &target];
    a.extend_from_slice(args);
    output(&a)
}

const ANNOUNCE_EBGP: &[&str] = &[
    "--peer-asn",
    "64512",
    "--local-asn",
    "64513",
    "--prefix",
    "10.99.0.1/32",
    "--prefix",
    "10.99.1.0/24",
    "--prefix",
    "2001:db8:99::1/128",
    "--community",
    "64512:100",
    "--large-community",
    "64512:1:2",
];

#[test]
#[ignore = "needs root, netns and bird2"]
fn bird_learns_v4_and_v6_routes_with_communities_and_drops_them_on_shutdown() {
    let mut t = Topo::new("flbb1", 211);
    start_bird(&mut t, "external", "");
    let nh6 = t.node_ip6();
    let mut args = ANNOUNCE_EBGP.to_vec();
    args.extend(["--next-hop-v6", &nh6]);
    let ours = t.announce(&args);
    let routes = wait_for("routes in BIRD", DEADLINE, || {
        let r = bird(&t, "show route all");
        (r.contains("10.99.0.1/32")
            && r.contains("10.99.1.0/24")
            && r.contains("2001:db8:99::1/128"))
        .then_some(r)
    });
    assert!(routes.contains("BGP.community: (64512,100)"), "{routes}");
    assert!(
        routes.contains("BGP.large_community: (64512, 1, 2)"),
        "{routes}"
    );
    assert!(routes.contains("BGP.as_path: 64513"), "{routes}");
    assert!(routes.contains(&format!("BGP.next_hop: {nh6}")), "{routes}");
    assert!(
        routes.contains(&format!("BGP.next_hop: {}", t.node_ip())),
        "{routes}"
    );
    t.terminate(ours);
    wait_for("routes withdrawn", DEADLINE, || {
        (!bird(&t, "show route").contains("10.99.0.1/32")).then_some(())
    });
    let log = fs::read_to_string(t.path("bird.err")).unwrap();
    assert!(
        log.contains("Administrative shutdown"),
        "BIRD should log our Cease: {log}"
    );
}

#[test]
#[ignore = "needs root, netns and bird2"]
fn bird_ibgp_gets_local_pref_and_an_empty_as_path() {
    let mut t = Topo::new("flbb2", 212);
    start_bird(&mut t, "internal", "");
    t.announce(&[
        "--peer-asn",
        "internal",
        "--local-asn",
        "64512",
        "--prefix",
        "10.98.0.1/32",
        "--local-pref",
        "250",
        "--ipv4-only",
    ]);
    let routes = wait_for("route in BIRD", DEADLINE, || {
        let r = bird(&t, "show route all");
        r.contains("10.98.0.1/32").then_some(r)
    });
    assert!(routes.contains("BGP.local_pref: 250"), "{routes}");
    assert!(
        routes.contains("BGP.as_path: \n") || routes.contains("BGP.as_path:\n"),
        "{routes}"
    );
}

#[test]
#[ignore = "needs root, netns and bird2"]
fn tcp_md5_right_password_establishes_and_wrong_never_does() {
    let mut t = Topo::new("flbb3", 213);
    start_bird(&mut t, "external", "password \"s3cret\";");
    let wrong = t.announce(&[
        "--peer-asn",
        "64512",
        "--local-asn",
        "64513",
        "--prefix",
        "10.97.0.1/32",
        "--md5-password",
        "wrong",
        "--ipv4-only",
    ]);
    // The router's kernel drops wrongly signed SYNs: the first attempt
    // times out (5 s), and the retry must fail the same way.
    wait_for("a second connect attempt", DEADLINE, || {
        (t.ours_output().matches("\"state\":\"Connect\"").count() >= 2).then_some(())
    });
    assert!(
        !t.ours_output().contains("Established"),
        "{}",
        t.ours_output()
    );
    assert!(!bird(&t, "show route").contains("10.97.0.1/32"));
    t.terminate(wrong);
    t.announce(&[
        "--peer-asn",
        "64512",
        "--local-asn",
        "64513",
        "--prefix",
        "10.97.0.1/32",
        "--md5-password",
        "s3cret",
        "--ipv4-only",
    ]);
    wait_for("route over MD5 session", DEADLINE, || {
        bird(&t, "show route")
            .contains("10.97.0.1/32")
            .then_some(())
    });
}

#[test]
#[ignore = "needs root, netns and frr"]
fn frr_learns_v4_and_v6_routes_with_communities_and_drops_them_on_shutdown() {
    let mut t = Topo::new("flbf1", 214);
    start_frr(&mut t);
    let nh6 = t.node_ip6();
    let mut args = ANNOUNCE_EBGP.to_vec();
    args.extend(["--next-hop-v6", &nh6]);
    let ours = t.announce(&args);
    let v4 = wait_for("IPv4 routes in FRR", DEADLINE, || {
        let r = frr(&t, "show bgp ipv4 unicast json detail");
        (r.contains("10.99.0.1/32") && r.contains("10.99.1.0/24")).then_some(r)
    });
    assert!(v4.contains("64512:100"), "{v4}");
    assert!(v4.contains("64512:1:2"), "{v4}");
    let v6 = wait_for("IPv6 route in FRR", DEADLINE, || {
        let r = frr(&t, "show bgp ipv6 unicast json detail");
        r.contains("2001:db8:99::1/128").then_some(r)
    });
    assert!(v6.contains(&nh6), "{v6}");
    t.terminate(ours);
    wait_for("routes withdrawn", DEADLINE, || {
        (!frr(&t, "show bgp ipv4 unicast json").contains("10.99.0.1/32")).then_some(())
    });
}

#[test]
#[ignore = "needs root, netns and gobgpd"]
fn gobgp_learns_v4_and_v6_routes_with_communities_and_drops_them_on_shutdown() {
    let mut t = Topo::new("flbg1", 215);
    start_gobgp(&mut t);
    let nh6 = t.node_ip6();
    let mut args = ANNOUNCE_EBGP.to_vec();
    args.extend(["--next-hop-v6", &nh6]);
    let ours = t.announce(&args);
    let v4 = wait_for("IPv4 routes in GoBGP", DEADLINE, || {
        let r = gobgp(&t, &["global", "rib", "-a", "ipv4", "-j"]);
        (r.contains("10.99.0.1/32") && r.contains("10.99.1.0/24")).then_some(r)
    });
    // GoBGP prints communities as uint32: 64512:100 = 4227858532.
    assert!(v4.contains("4227858532"), "{v4}");
    assert!(
        v4.contains("\"ASN\":64512,\"LocalData1\":1,\"LocalData2\":2"),
        "{v4}"
    );
    let v6 = wait_for("IPv6 route in GoBGP", DEADLINE, || {
        let r = gobgp(&t, &["global", "rib", "-a", "ipv6", "-j"]);
        r.contains("2001:db8:99::1/128").then_some(r)
    });
    assert!(v6.contains(&nh6), "{v6}");
    t.terminate(ours);
    wait_for("routes withdrawn", DEADLINE, || {
        (!gobgp(&t, &["global", "rib", "-a", "ipv4", "-j"]).contains("10.99.0.1/32")).then_some(())
    });
}

/// ExaBGP keeps no RIB: an API process records what it receives as JSON.
fn start_exabgp(t: &mut Topo) {
    let recv = format!(
        "import sys\nwith open({:?}, 'a') as f:\n    for line in sys.stdin:\n        f.write(line)\n        f.flush()\n",
        t.path("received.jsonl")
    );
    fs::write(t.path("recv.py"), recv).unwrap();
    let conf = format!(
        r#"process receiver {{
    run /usr/bin/python3 {script};
    encoder json;
}}
neighbor {nip} {{
    router-id {rip};
    local-address {rip};
    local-as 64512;
    peer-as 64513;
    passive;
    family {{ ipv4 unicast; ipv6 unicast; }}
    api {{ processes [ receiver ]; neighbor-changes; receive {{ parsed; update; }} }}
}}
"#,
        script = t.path("recv.py"),
        nip = t.node_ip(),
        rip = t.router_ip(),
    );
    fs::write(t.path("exabgp.conf"), conf).unwrap();
    let ns = t.router_ns();
    let bind = format!("exabgp.tcp.bind={}", t.router_ip());
    let conf = t.path("exabgp.conf");
    t.spawn(
        &ns,
        &[
            "env",
            &bind,
            "exabgp.tcp.port=179",
            "exabgp.daemon.user=root",
            "exabgp.daemon.drop=false",
            "exabgp.api.cli=false",
            "exabgp.log.destination=stderr",
            "exabgp",
            &conf,
        ],
        "exabgp",
    );
}

#[test]
#[ignore = "needs root, netns and exabgp"]
fn exabgp_receives_v4_and_v6_routes_communities_and_end_of_rib() {
    let mut t = Topo::new("flbx1", 216);
    start_exabgp(&mut t);
    let nh6 = t.node_ip6();
    let mut args = ANNOUNCE_EBGP.to_vec();
    args.extend(["--next-hop-v6", &nh6]);
    let ours = t.announce(&args);
    let received = t.path("received.jsonl");
    let log = wait_for(
        "updates and both End-of-RIB markers in ExaBGP",
        Duration::from_secs(60),
        || {
            let r = fs::read_to_string(&received).unwrap_or_default();
            (r.contains("\"afi\" : \"ipv4\"") && r.contains("\"afi\" : \"ipv6\"")).then_some(r)
        },
    );
    assert!(log.contains("\"nlri\": \"10.99.0.1/32\""), "{log}");
    assert!(log.contains("\"nlri\": \"10.99.1.0/24\""), "{log}");
    assert!(
        log.contains(&format!(
            "\"{nh6}\": [ {{ \"nlri\": \"2001:db8:99::1/128\" }} ]"
        )),
        "{log}"
    );
    assert!(log.contains("\"community\": [ [ 64512, 100 ] ]"), "{log}");
    assert!(
        log.contains("\"large-community\": [ [ 64512, 1 , 2 ] ]"),
        "{log}"
    );
    assert!(log.contains("\"as-path\": [ 64513 ]"), "{log}");
    t.terminate(ours);
    wait_for("session down in ExaBGP", DEADLINE, || {
        fs::read_to_string(&received)
            .unwrap_or_default()
            .contains("\"state\": \"down\"")
            .then_some(())
    });
}

/// Established → all 10k /32 in the router's RIB, as in ROUTERS.md's
/// reference table (gobgpd as the sender: BIRD 0.07–0.12 s, FRR
/// 0.09–0.27 s, GoBGP 0.22–0.43 s). Prints the figures; asserts a generous
/// bound only. "Established" is when a 20 ms poll of the router (or our
/// status line) first shows it, so the first figure is coarse; the second,
/// from starting `ferrolb-bgp`, includes connecting and the OPEN exchange.
#[test]
#[ignore = "needs root, netns, bird2, frr and gobgpd"]
fn ten_thousand_routes_reach_each_router_quickly() {
    let mut report = Vec::new();
    for (i, router) in ["bird", "frr", "gobgp"].into_iter().enumerate() {
        let mut t = Topo::new(&format!("flbk{i}"), 220 + i as u8);
        match router {
            "bird" => start_bird(&mut t, "external", ""),
            "frr" => start_frr(&mut t),
            _ => start_gobgp(&mut t),
        }
        let spawned = Instant::now();
        t.announce(&[
            "--peer-asn",
            "64512",
            "--local-asn",
            "64513",
            "--generate-hosts",
            "10.100.0.0,10000",
            "--ipv4-only",
        ]);
        let established = wait_for("Established", DEADLINE, || {
            let up = match router {
                "bird" => bird(&t, "show protocols").contains("Established"),
                "frr" => frr(&t, "show bgp summary").contains("10000"),
                _ => gobgp(&t, &["neighbor"]).contains("Establ"),
            };
            (up || t.ours_output().contains("Established")).then(Instant::now)
        });
        wait_for("10k routes", DEADLINE, || {
            let n = match router {
                "bird" => bird(&t, "show route count")
                    .split_whitespace()
                    .next_back()
                    .is_some_and(|_| {
                        bird(&t, "show route count").contains("10001 of 10001 routes")
                    }),
                "frr" => frr(&t, "show bgp ipv4 unicast summary").contains(" 10000 "),
                _ => gobgp(&t, &["global", "rib", "summary", "-a", "ipv4"]).contains("10000"),
            };
            n.then_some(())
        });
        let took = established.elapsed();
        report.push(format!(
            "{router}: {:.3} s after Established was seen ({:.3} s after process start)",
            took.as_secs_f64(),
            spawned.elapsed().as_secs_f64()
        ));
        assert!(took < Duration::from_secs(10), "{router} took {took:?}");
    }
    println!("Established -> 10k routes in RIB: {}", report.join(", "));
}
