//! Real routers (BIRD 2, FRR bgpd, GoBGP, ExaBGP) in network namespaces of
//! the test's own, as laid out in /work/shared/ROUTERS.md: a router
//! namespace with a bridge (172.30.0.1/24, fd30::1/64) and a node namespace
//! (172.30.0.2, fd30::2) running `ferrolb-bgp announce`.
//!
//! Every [`Topo`] has its own namespace names and state directory (process
//! id + tag), so tests run side by side; dropping it (also on panic) kills
//! its processes by pid, then deletes the namespaces.
//!
//! Shared by `tests/routers.rs` and `examples/bench_routers.rs`.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const ROUTER_IP: &str = "172.30.0.1";
pub const ROUTER_IP6: &str = "fd30::1";
pub const NODE_IP: &str = "172.30.0.2";
pub const NODE_IP6: &str = "fd30::2";
pub const ROUTER_AS: u32 = 64512;
pub const NODE_AS: u32 = 64513;

const INSTALL_HINT: &str =
    "run scripts/install-deps.sh (as root) to install bird2, frr, gobgpd and exabgp";

/// Fails (never skips) when the test cannot run here.
pub fn require(binaries: &[&str]) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "router interop tests need root (network namespaces); {INSTALL_HINT}"
    );
    for b in binaries.iter().chain(&["ip"]) {
        let found = Path::new(b).is_absolute() && Path::new(b).exists()
            || std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(b).exists()))
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(b).exists());
        assert!(found, "{b} is not installed; {INSTALL_HINT}");
    }
}

pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn output(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 10 ms until it gives a value or `deadline` passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The one-letter process state from /proc (R, S, T, Z…); `None` once
/// the process is gone. PID 1 here reaps late, so `kill -0` is no guide.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The four routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bird,
    Frr,
    Gobgp,
    Exabgp,
}

impl Kind {
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            Kind::Bird => &["bird", "birdc"],
            Kind::Frr => &["/usr/lib/frr/bgpd", "vtysh"],
            Kind::Gobgp => &["gobgpd", "gobgp"],
            Kind::Exabgp => &["exabgp", "python3"],
        }
    }
}

/// How the router is configured.
#[derive(Debug, Clone, Default)]
pub struct RouterOpts {
    /// iBGP (same AS as the node) instead of eBGP.
    pub ibgp: bool,
    /// TCP MD5 password. GoBGP then gets static passive neighbours (its
    /// dynamic neighbours have no key on the listener).
    pub password: Option<String>,
}

/// A route as a router holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub next_hop: String,
    pub as_path: Vec<u32>,
    pub local_pref: Option<u32>,
    /// `"asn:value"`.
    pub communities: Vec<String>,
    /// `"global:local1:local2"`.
    pub large_communities: Vec<String>,
    /// Kept by graceful restart, not yet refreshed.
    pub stale: bool,
}

pub struct Proc {
    child: Child,
    pub log: String,
    done: bool,
}

pub struct Topo {
    pub name: String,
    pub dir: PathBuf,
    procs: Vec<Proc>,
    router: Option<(Kind, RouterOpts, usize)>,
}

impl Topo {
    pub fn new(tag: &str) -> Self {
        let name = format!("flb{}{tag}", std::process::id());
        let t = Topo {
            dir: std::env::temp_dir().join(format!("ferrolb-bgp-{name}")),
            name,
            procs: Vec::new(),
            router: None,
        };
        let (r, n) = (t.router_ns(), t.node_ns());
        let _ = fs::remove_dir_all(&t.dir);
        fs::create_dir_all(&t.dir).unwrap();
        let v4r = format!("{ROUTER_IP}/24");
        let v6r = format!("{ROUTER_IP6}/64");
        let v4n = format!("{NODE_IP}/24");
        let v6n = format!("{NODE_IP6}/64");
        run(&["ip", "netns", "add", &r]);
        run(&["ip", "netns", "add", &n]);
        for cmd in [
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
        wait_for("links up", DEADLINE, || {
            let a = output(&["ip", "-n", &r, "-o", "link", "show", "vn1"]);
            let b = output(&["ip", "-n", &n, "-o", "link", "show", "eth0"]);
            let br = output(&["ip", "-n", &r, "-o", "link", "show", "br0"]);
            (a.contains("state UP") && b.contains("state UP") && br.contains("state UP"))
                .then_some(())
        });
        t
    }

    pub fn router_ns(&self) -> String {
        format!("{}-r", self.name)
    }
    pub fn node_ns(&self) -> String {
        format!("{}-n", self.name)
    }
    pub fn path(&self, f: &str) -> String {
        self.dir.join(f).to_string_lossy().into_owned()
    }

    /// Runs a command in a namespace with stdout/stderr to `<log>.out` /
    /// `<log>.err`; returns its index.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> usize {
        let out = fs::File::create(self.path(&format!("{log}.out"))).unwrap();
        let err = fs::File::create(self.path(&format!("{log}.err"))).unwrap();
        // `ip netns exec` execs the command: the child pid is the daemon's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.procs.push(Proc {
            child,
            log: log.to_string(),
            done: false,
        });
        self.procs.len() - 1
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].child.id()
    }

    pub fn signal(&self, i: usize, sig: &str) {
        run(&["kill", &format!("-{sig}"), &self.pid(i).to_string()]);
    }

    /// Whether the process still runs.
    pub fn alive(&mut self, i: usize) -> bool {
        let p = &mut self.procs[i];
        !p.done && p.child.try_wait().unwrap().is_none()
    }

    /// Sends `sig` and waits for the process to end.
    pub fn stop_proc(&mut self, i: usize, sig: &str) {
        self.signal(i, sig);
        let start = Instant::now();
        while self.procs[i].child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < DEADLINE,
                "{} did not exit",
                self.procs[i].log
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.procs[i].done = true;
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    // --- ferrolb-bgp ------------------------------------------------------------

    /// Starts `ferrolb-bgp announce ARGS` in the node namespace, logging to
    /// `<log>.out` (JSON lines) and `<log>.err`.
    pub fn announce(&mut self, bin: &str, log: &str, args: &[&str]) -> usize {
        let mut a = vec![bin, "announce"];
        a.extend_from_slice(args);
        let ns = self.node_ns();
        self.spawn(&ns, &a, log)
    }

    /// The JSON state lines `ferrolb-bgp` printed to `<log>.out`.
    pub fn lines(&self, log: &str) -> Vec<serde_json::Value> {
        self.log(&format!("{log}.out"))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a state line of `peer` with this state; returns it.
    pub fn wait_line(&self, log: &str, peer: &str, state: &str) -> serde_json::Value {
        wait_for(&format!("{peer} {state} in {log}.out"), DEADLINE, || {
            self.lines(log)
                .into_iter()
                .find(|l| l["peer"] == peer && l["state"] == state)
        })
    }

    // --- routers ------------------------------------------------------------------

    /// Starts the router; returns its process index.
    pub fn start_router(&mut self, kind: Kind, opts: &RouterOpts) -> usize {
        require(kind.binaries());
        let i = match kind {
            Kind::Bird => self.start_bird(opts),
            Kind::Frr => self.start_frr(opts),
            Kind::Gobgp => self.start_gobgp(opts),
            Kind::Exabgp => self.start_exabgp(opts),
        };
        self.router = Some((kind, opts.clone(), i));
        i
    }

    pub fn router_index(&self) -> usize {
        self.router.as_ref().unwrap().2
    }

    /// Stops the router with `sig` and starts it again with the same
    /// configuration.
    pub fn restart_router(&mut self, sig: &str) {
        let (kind, opts, i) = self.router.clone().unwrap();
        self.stop_proc(i, sig);
        for f in ["bird.ctl", "bgpd.vty", "gobgp.sock"] {
            let _ = fs::remove_file(self.path(f));
        }
        if kind == Kind::Exabgp {
            // ExaBGP's RIB is its API log: the new process starts with an
            // empty one (the old receiver, if still draining, writes to
            // the renamed file).
            let mut n = 1;
            while Path::new(&self.path(&format!("received.{n}.jsonl"))).exists() {
                n += 1;
            }
            let _ = fs::rename(
                self.path("received.jsonl"),
                self.path(&format!("received.{n}.jsonl")),
            );
        }
        self.start_router(kind, &opts);
    }

    fn start_bird(&mut self, o: &RouterOpts) -> usize {
        let mode = if o.ibgp { "internal" } else { "external" };
        let pw = o
            .password
            .as_ref()
            .map(|p| format!("password \"{p}\";"))
            .unwrap_or_default();
        let proto = |n: &str, local: &str, range: &str| {
            format!(
                "protocol bgp nodes{n} {{\n  local {local} as {ROUTER_AS};\n  neighbor range {range} {mode};\n  \
                 dynamic name \"node{n}\";\n  strict bind yes;\n  debug {{ states }};\n  {pw}\n  \
                 ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n"
            )
        };
        let conf = format!(
            "router id {ROUTER_IP};\nlog stderr all;\nprotocol device {{}}\n\
             protocol direct {{ interface \"br0\"; ipv4; ipv6; }}\n{}{}",
            proto("4", ROUTER_IP, "172.30.0.0/24"),
            proto("6", ROUTER_IP6, "fd30::/64"),
        );
        fs::write(self.path("bird.conf"), conf).unwrap();
        let ns = self.router_ns();
        let (c, s, p) = (
            self.path("bird.conf"),
            self.path("bird.ctl"),
            self.path("bird.pid"),
        );
        let i = self.spawn(&ns, &["bird", "-f", "-c", &c, "-s", &s, "-P", &p], "bird");
        wait_for("bird control socket", DEADLINE, || {
            self.bird("show status")
                .contains("Daemon is up")
                .then_some(())
        });
        i
    }

    pub fn bird(&self, cmd: &str) -> String {
        let sock = self.path("bird.ctl");
        let mut args = vec!["birdc", "-s", &sock];
        args.extend(cmd.split(' '));
        output(&args)
    }

    fn start_frr(&mut self, o: &RouterOpts) -> usize {
        let remote = if o.ibgp { "internal" } else { "external" };
        let pw = o
            .password
            .as_ref()
            .map(|p| format!(" neighbor NODES password {p}\n"))
            .unwrap_or_default();
        let conf = format!(
            "frr defaults traditional\nhostname r\nlog file {log} debugging\nlog timestamp precision 3\n\
             router bgp {ROUTER_AS}\n bgp router-id {ROUTER_IP}\n bgp log-neighbor-changes\n \
             no bgp ebgp-requires-policy\n neighbor NODES peer-group\n neighbor NODES remote-as {remote}\n{pw} \
             bgp listen range 172.30.0.0/24 peer-group NODES\n bgp listen range fd30::/64 peer-group NODES\n \
             address-family ipv4 unicast\n  neighbor NODES activate\n exit-address-family\n \
             address-family ipv6 unicast\n  neighbor NODES activate\n exit-address-family\n",
            log = self.path("bgpd.log"),
        );
        fs::write(self.path("bgpd.conf"), conf).unwrap();
        let ns = self.router_ns();
        let (dir, z, pid, conf) = (
            self.dir.to_string_lossy().into_owned(),
            self.path("zserv.api"),
            self.path("bgpd.pid"),
            self.path("bgpd.conf"),
        );
        let i = self.spawn(
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
                ROUTER_IP,
                "-l",
                ROUTER_IP6,
                "-P",
                "0",
                "-i",
                &pid,
                "-f",
                &conf,
            ],
            "bgpd",
        );
        wait_for("bgpd vty", DEADLINE, || {
            self.frr("show running-config")
                .contains("router bgp")
                .then_some(())
        });
        i
    }

    pub fn frr(&self, cmd: &str) -> String {
        let dir = self.dir.to_string_lossy().into_owned();
        output(&["vtysh", "--vty_socket", &dir, "-d", "bgpd", "-c", cmd])
    }

    fn start_gobgp(&mut self, o: &RouterOpts) -> usize {
        let mut conf = format!(
            "[global.config]\n  as = {ROUTER_AS}\n  router-id = \"{ROUTER_IP}\"\n  \
             local-address-list = [\"{ROUTER_IP}\", \"{ROUTER_IP6}\"]\n\
             [[peer-groups]]\n  [peer-groups.config]\n    peer-group-name = \"nodes\"\n"
        );
        if o.ibgp {
            conf += &format!("    peer-as = {ROUTER_AS}\n");
        }
        conf +=
            "  [peer-groups.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n";
        for f in ["ipv4-unicast", "ipv6-unicast"] {
            conf += &format!(
                "  [[peer-groups.afi-safis]]\n    [peer-groups.afi-safis.config]\n      afi-safi-name = \"{f}\"\n    \
                 [peer-groups.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
            );
        }
        if let Some(pw) = &o.password {
            // Dynamic neighbours put no MD5 key on the listener: one static
            // passive neighbour per node address instead.
            let peer_as = if o.ibgp { ROUTER_AS } else { NODE_AS };
            for (nip, rip) in [(NODE_IP, ROUTER_IP), (NODE_IP6, ROUTER_IP6)] {
                conf += &format!(
                    "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{nip}\"\n    \
                     peer-as = {peer_as}\n    auth-password = \"{pw}\"\n  \
                     [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{rip}\"\n"
                );
                for f in ["ipv4-unicast", "ipv6-unicast"] {
                    conf += &format!(
                        "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n"
                    );
                }
            }
        } else {
            for p in ["172.30.0.0/24", "fd30::/64"] {
                conf += &format!(
                    "[[dynamic-neighbors]]\n  [dynamic-neighbors.config]\n    prefix = \"{p}\"\n    peer-group = \"nodes\"\n"
                );
            }
        }
        fs::write(self.path("gobgp.toml"), conf).unwrap();
        let ns = self.router_ns();
        let (conf, api) = (
            self.path("gobgp.toml"),
            format!("unix://{}", self.path("gobgp.sock")),
        );
        let i = self.spawn(
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
        wait_for("gobgpd API", DEADLINE, || {
            self.gobgp(&["global"]).contains("AS:").then_some(())
        });
        i
    }

    pub fn gobgp(&self, args: &[&str]) -> String {
        let target = format!("unix://{}", self.path("gobgp.sock"));
        let mut a = vec!["gobgp", "--target", &target];
        a.extend_from_slice(args);
        output(&a)
    }

    /// ExaBGP keeps no RIB: an API process appends what it receives, as
    /// JSON, to `received.jsonl`. One passive neighbour per node address.
    fn start_exabgp(&mut self, o: &RouterOpts) -> usize {
        let recv = format!(
            "import sys\nwith open({:?}, 'a') as f:\n    for line in sys.stdin:\n        f.write(line)\n        f.flush()\n",
            self.path("received.jsonl")
        );
        fs::write(self.path("recv.py"), recv).unwrap();
        let peer_as = if o.ibgp { ROUTER_AS } else { NODE_AS };
        let mut conf = format!(
            "process receiver {{\n    run /usr/bin/python3 {};\n    encoder json;\n}}\n",
            self.path("recv.py")
        );
        let md5 = o
            .password
            .as_ref()
            .map(|p| format!("md5-password \"{p}\";\n    "))
            .unwrap_or_default();
        for (nip, rip) in [(NODE_IP, ROUTER_IP), (NODE_IP6, ROUTER_IP6)] {
            conf += &format!(
                "neighbor {nip} {{\n    router-id {ROUTER_IP};\n    local-address {rip};\n    local-as {ROUTER_AS};\n    \
                 peer-as {peer_as};\n    passive;\n    {md5}family {{ ipv4 unicast; ipv6 unicast; }}\n    \
                 api {{ processes [ receiver ]; neighbor-changes; receive {{ parsed; open; update; }} }}\n}}\n"
            );
        }
        fs::write(self.path("exabgp.conf"), conf).unwrap();
        let ns = self.router_ns();
        let conf = self.path("exabgp.conf");
        let bind = format!("exabgp.tcp.bind={ROUTER_IP} {ROUTER_IP6}");
        self.spawn(
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
        )
    }

    /// Time of day (UTC seconds) at which the router logged its first
    /// session Established (BIRD `debug { states }`, FRR
    /// `log-neighbor-changes`, both to the millisecond).
    pub fn established_logged_at(&self) -> Option<f64> {
        let (log, marker) = match self.kind() {
            Kind::Bird => (self.log("bird.err"), ": State changed to up"),
            Kind::Frr => (self.log("bgpd.log"), "%ADJCHANGE: neighbor"),
            _ => return None,
        };
        let line = log
            .lines()
            .find(|l| l.contains(marker) && (l.ends_with(" up") || l.ends_with(" Up")))?;
        let hms = line.split_whitespace().nth(1)?;
        let mut parts = hms.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let m: f64 = parts.next()?.parse().ok()?;
        let s: f64 = parts.next()?.parse().ok()?;
        Some(h * 3600.0 + m * 60.0 + s)
    }

    // --- what the router holds -------------------------------------------------

    fn kind(&self) -> Kind {
        self.router.as_ref().unwrap().0
    }

    /// Established BGP sessions the router has.
    pub fn sessions_up(&self) -> usize {
        match self.kind() {
            Kind::Bird => self.bird("show protocols").matches("Established").count(),
            Kind::Frr => {
                let v: serde_json::Value =
                    serde_json::from_str(&self.frr("show bgp ipv4 unicast summary json"))
                        .unwrap_or_default();
                v["peers"].as_object().map_or(0, |p| {
                    p.values().filter(|x| x["state"] == "Established").count()
                })
            }
            Kind::Gobgp => self.gobgp(&["neighbor"]).matches("Establ").count(),
            Kind::Exabgp => {
                let r = self.log("received.jsonl");
                r.matches("\"state\": \"up\"")
                    .count()
                    .saturating_sub(r.matches("\"state\": \"down\"").count())
            }
        }
    }

    /// BGP routes of one family the router holds.
    pub fn route_count(&self, v6: bool) -> usize {
        match self.kind() {
            Kind::Bird => {
                let table = if v6 { "master6" } else { "master4" };
                let out = self.bird(&format!(
                    "show route table {table} where source = RTS_BGP count"
                ));
                out.lines()
                    .find(|l| l.contains(" routes for "))
                    .and_then(|l| l.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0)
            }
            Kind::Frr => {
                let af = if v6 { "ipv6" } else { "ipv4" };
                let v: serde_json::Value =
                    serde_json::from_str(&self.frr(&format!("show bgp {af} unicast summary json")))
                        .unwrap_or_default();
                v["peers"].as_object().map_or(0, |p| {
                    p.values().filter_map(|x| x["pfxRcd"].as_u64()).sum::<u64>() as usize
                })
            }
            Kind::Gobgp => {
                let af = if v6 { "ipv6" } else { "ipv4" };
                let out = self.gobgp(&["global", "rib", "summary", "-a", af]);
                out.split("Destination: ")
                    .nth(1)
                    .and_then(|x| x.split(',').next()?.trim().parse().ok())
                    .unwrap_or(0)
            }
            Kind::Exabgp => self
                .exabgp_rib()
                .keys()
                .filter(|p| p.contains(':') == v6)
                .count(),
        }
    }

    /// Whether the router saw the Restart State (R) bit in the graceful
    /// restart capability of our OPEN on the Established session; `None`
    /// while no session is up.
    pub fn peer_restart_state(&self) -> Option<bool> {
        match self.kind() {
            Kind::Bird => {
                // Protocol blocks start unindented; BIRD prints "Restart
                // recovery" under the neighbour's graceful restart
                // capability when R is set.
                let out = self.bird("show protocols all");
                let mut blocks: Vec<String> = Vec::new();
                for l in out.lines() {
                    if !l.starts_with(' ') || blocks.is_empty() {
                        blocks.push(String::new());
                    }
                    if let Some(b) = blocks.last_mut() {
                        *b += l;
                        *b += "\n";
                    }
                }
                let up = blocks
                    .iter()
                    .find(|b| b.contains("BGP state:") && b.contains("Established"))?;
                let caps = up.split_once("Neighbor capabilities")?.1;
                let caps = caps.split_once("Session:").map_or(caps, |c| c.0);
                Some(caps.contains("Restart recovery"))
            }
            Kind::Frr => {
                let v: serde_json::Value =
                    serde_json::from_str(&self.frr("show bgp neighbors json")).ok()?;
                v.as_object()?
                    .values()
                    .find(|n| n["bgpState"] == "Established")?["gracefulRestartInfo"]["rBit"]
                    .as_bool()
            }
            Kind::Gobgp => {
                let list = self.gobgp(&["neighbor"]);
                let addr = list
                    .lines()
                    .find(|l| l.contains("Establ"))?
                    .split_whitespace()
                    .next()?
                    .to_string();
                let detail = self.gobgp(&["neighbor", &addr]);
                let remote = detail
                    .lines()
                    .skip_while(|l| !l.contains("graceful-restart:"))
                    .find(|l| l.trim_start().starts_with("Remote:"))?;
                Some(remote.contains("restart flag set"))
            }
            Kind::Exabgp => {
                // The last OPEN received from the neighbour that is up.
                // ExaBGP 4.2 swaps the labels: the session-wide R bit (0x8)
                // is printed as "restart-flags": ["forwarding"], a family's
                // F bit as "restart".
                let mut up: Option<String> = None;
                let mut r = std::collections::HashMap::new();
                for line in self.log("received.jsonl").lines() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                        continue;
                    };
                    let peer = v["neighbor"]["address"]["peer"].as_str().map(String::from);
                    match v["type"].as_str() {
                        Some("state") if v["neighbor"]["state"] == "up" => up = peer,
                        Some("state") if up == peer => up = None,
                        Some("open") if v["neighbor"]["direction"] == "receive" => {
                            let gr = &v["neighbor"]["open"]["capabilities"]["64"];
                            let flags = gr["restart-flags"].as_array().cloned();
                            r.insert(peer, flags.map(|f| f.iter().any(|x| x == "forwarding")));
                        }
                        _ => {}
                    }
                }
                r.remove(&Some(up?)).flatten()
            }
        }
    }

    /// ExaBGP's routes as rebuilt from its API log (`received.jsonl`):
    /// prefix → route, per neighbour; a neighbour's state change (up,
    /// down) forgets what it had sent.
    pub fn exabgp_rib(&self) -> std::collections::HashMap<String, Route> {
        use serde_json::Value;
        let mut rib: std::collections::HashMap<String, (String, Route)> = Default::default();
        for line in self.log("received.jsonl").lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let peer = v["neighbor"]["address"]["peer"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if v["type"] == "state" {
                rib.retain(|_, (p, _)| *p != peer);
                continue;
            }
            let u = &v["neighbor"]["message"]["update"];
            if !u.is_object() {
                continue;
            }
            if let Some(w) = u["withdraw"].as_object() {
                for nlris in w.values() {
                    for n in nlris.as_array().into_iter().flatten() {
                        if let Some(p) = n["nlri"].as_str() {
                            rib.remove(p);
                        }
                    }
                }
            }
            let a = &u["attribute"];
            let pairs = |x: &Value| -> Vec<String> {
                x.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        let parts: Vec<String> = c
                            .as_array()?
                            .iter()
                            .map(|n| n.as_u64().map(|n| n.to_string()))
                            .collect::<Option<_>>()?;
                        Some(parts.join(":"))
                    })
                    .collect()
            };
            let base = Route {
                as_path: a["as-path"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_u64().map(|x| x as u32))
                    .collect(),
                local_pref: a["local-preference"].as_u64().map(|x| x as u32),
                communities: pairs(&a["community"]),
                large_communities: pairs(&a["large-community"]),
                ..Route::default()
            };
            for by_nh in u["announce"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for (nh, nlris) in by_nh.as_object().into_iter().flatten() {
                    for n in nlris.as_array().into_iter().flatten() {
                        if let Some(p) = n["nlri"].as_str() {
                            let r = Route {
                                next_hop: nh.clone(),
                                ..base.clone()
                            };
                            rib.insert(p.to_string(), (peer.clone(), r));
                        }
                    }
                }
            }
        }
        rib.into_iter().map(|(p, (_, r))| (p, r)).collect()
    }

    /// The router's best route for exactly `prefix`.
    pub fn route(&self, prefix: &str) -> Option<Route> {
        let v6 = prefix.contains(':');
        match self.kind() {
            Kind::Bird => {
                let out = self.bird(&format!("show route {prefix} all"));
                if !out.contains(prefix) {
                    return None;
                }
                let field = |name: &str| {
                    out.lines()
                        .find_map(|l| l.trim().strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let pairs = |v: Option<String>, sep: &str| -> Vec<String> {
                    v.unwrap_or_default()
                        .split(')')
                        .map(|x| x.trim().trim_start_matches('(').replace(' ', ""))
                        .filter(|x| !x.is_empty())
                        .map(|x| x.replace(',', sep))
                        .collect()
                };
                let gr = self.bird("show protocols all");
                Some(Route {
                    next_hop: field("BGP.next_hop:")
                        .unwrap_or_default()
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    as_path: field("BGP.as_path:")
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    local_pref: field("BGP.local_pref:").and_then(|v| v.parse().ok()),
                    communities: pairs(field("BGP.community:"), ":"),
                    large_communities: pairs(field("BGP.large_community:"), ":"),
                    // BIRD shows no per-route flag: a neighbour in graceful
                    // restart means its routes are stale.
                    stale: gr.contains("Neighbor graceful restart active"),
                })
            }
            Kind::Frr => {
                let af = if v6 { "ipv6" } else { "ipv4" };
                let v: serde_json::Value = serde_json::from_str(
                    &self.frr(&format!("show bgp {af} unicast {prefix} json")),
                )
                .ok()?;
                let p = v["paths"].as_array()?.first()?.clone();
                let strings = |x: &serde_json::Value| -> Vec<String> {
                    x["list"]
                        .as_array()
                        .map(|l| {
                            l.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Some(Route {
                    next_hop: p["nexthops"][0]["ip"].as_str().unwrap_or("").to_string(),
                    as_path: p["aspath"]["string"]
                        .as_str()
                        .unwrap_or("")
                        .split_whitespace()
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    local_pref: p["locPrf"].as_u64().map(|x| x as u32),
                    communities: strings(&p["community"]),
                    large_communities: strings(&p["largeCommunity"]),
                    stale: p["stale"].as_bool().unwrap_or(false),
                })
            }
            Kind::Gobgp => {
                let af = if v6 { "ipv6" } else { "ipv4" };
                let v: serde_json::Value =
                    serde_json::from_str(&self.gobgp(&["global", "rib", "-a", af, prefix, "-j"]))
                        .ok()?;
                let p = v[prefix]
                    .as_array()?
                    .iter()
                    .find(|p| p["best"] == true)?
                    .clone();
                let mut r = Route {
                    stale: p["stale"].as_bool().unwrap_or(false),
                    ..Route::default()
                };
                for a in p["attrs"].as_array()? {
                    match a["type"].as_u64()? {
                        2 => {
                            r.as_path = a["as_paths"]
                                .as_array()?
                                .iter()
                                .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
                                .filter_map(|x| x.as_u64().map(|x| x as u32))
                                .collect()
                        }
                        3 | 14 => r.next_hop = a["nexthop"].as_str()?.to_string(),
                        5 => r.local_pref = a["value"].as_u64().map(|x| x as u32),
                        8 => {
                            r.communities = a["communities"]
                                .as_array()?
                                .iter()
                                .filter_map(|c| c.as_u64())
                                .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                                .collect()
                        }
                        32 => {
                            r.large_communities = a["value"]
                                .as_array()?
                                .iter()
                                .map(|c| {
                                    format!("{}:{}:{}", c["ASN"], c["LocalData1"], c["LocalData2"])
                                })
                                .collect()
                        }
                        _ => {}
                    }
                }
                Some(r)
            }
            Kind::Exabgp => self.exabgp_rib().remove(prefix),
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        // By pid, before the namespaces go: `ip netns del` kills nothing.
        for p in &mut self.procs {
            if !p.done {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.router_ns()])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.node_ns()])
            .output();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP listener inside network namespace `ns` (e.g. a scripted hostile
/// peer): a short-lived thread enters the namespace and binds; the socket
/// stays in that namespace whichever thread uses it.
#[allow(unsafe_code)]
pub fn listen_in_netns(ns: &str, addr: SocketAddr) -> TcpListener {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = fs::File::open(&path).unwrap();
        // SAFETY: setns with a valid namespace fd changes only this
        // thread's network namespace; the thread ends right after.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        TcpListener::bind(addr).unwrap()
    })
    .join()
    .unwrap()
}

/// The current UTC time of day in seconds (the routers log local time;
/// the test machines run in UTC).
pub fn time_of_day() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_secs() % 86_400) as f64 + f64::from(now.subsec_micros()) / 1e6
}

/// Consecutive host routes from `first` (/32 or /128), one per line.
pub fn host_routes(first: std::net::IpAddr, count: u32) -> String {
    let mut s = String::new();
    for i in 0..count {
        match first {
            std::net::IpAddr::V4(a) => {
                s += &format!("{}/32\n", std::net::Ipv4Addr::from(u32::from(a) + i))
            }
            std::net::IpAddr::V6(a) => {
                s += &format!(
                    "{}/128\n",
                    std::net::Ipv6Addr::from(u128::from(a) + u128::from(i))
                )
            }
        }
    }
    s
}
