//! The lab's network: a "core" namespace with a Linux bridge, a router namespace and one
//! namespace per node, each joined to the bridge by a veth pair. Every address lives inside
//! these namespaces; nothing is configured in the caller's namespace.
//!
//! ```text
//!            core (br0 10.0.0.2: API server, controllers)
//!           /        |          |          \
//!   router (eth0)  node-1     node-2     node-3
//!   10.0.0.1 eBGP  10.0.0.11  10.0.0.12  10.0.0.13
//!   10.0.1.1 iBGP  10.0.1.11  ...
//!   10.0.2.1 MD5   10.0.2.11  ...
//!   fd00::1        fd00::11   fd00::12   fd00::13   (IPv6, eBGP)
//! ```
//!
//! Each router address is one "port" with its own BGP policy (see [`crate::router`]); a
//! node reaches each through its address in the same /24, so the router sees a distinct,
//! predictable next hop per node and port.
//!
//! Every port subnet also has an IPv6 twin, `fd00:0:0:S::/64` (ULA, lab only) with the
//! same host numbers written in hex digits (`::1` router, `::11` node 1): IPv6 next hops
//! read like the IPv4 ones. The addresses skip duplicate address detection, which would
//! otherwise keep them unusable ("tentative") for a second or more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::sys::{proc_state, run, run_blocking};

/// Prefix of every namespace the end-to-end tests create (followed by the owner's pid).
pub const TEST_PREFIX: &str = "flbe2e";
/// Prefix of the namespaces of `ferrolb-lab up` (one lab at a time).
pub const LAB_PREFIX: &str = "flblab";
/// Where the API server listens, in the core namespace.
pub const API_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// API server port.
pub const API_PORT: u16 = 6443;

/// The router's address on each of its three BGP ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// eBGP (router AS 64500, nodes 64512), no password.
    Ebgp,
    /// iBGP (AS 64500 both sides): LOCAL_PREF is visible here.
    Ibgp,
    /// eBGP with a TCP MD5 password.
    Md5,
}

impl Port {
    /// All ports.
    pub const ALL: [Port; 3] = [Port::Ebgp, Port::Ibgp, Port::Md5];

    fn subnet(self) -> u8 {
        match self {
            Port::Ebgp => 0,
            Port::Ibgp => 1,
            Port::Md5 => 2,
        }
    }

    /// The router's address on this port.
    pub fn router_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, self.subnet(), 1)
    }

    /// Node `index`'s (1-based) address on this port: the next hop the router sees.
    pub fn node_ip(self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, self.subnet(), 10 + node_octet(index))
    }

    /// The router's IPv6 address on this port (`fd00:0:0:S::1`).
    pub fn router_ip6(self) -> Ipv6Addr {
        lab_ip6(self.subnet(), 1)
    }

    /// Node `index`'s (1-based) IPv6 address on this port (`fd00:0:0:S::1N`).
    pub fn node_ip6(self, index: usize) -> Ipv6Addr {
        lab_ip6(self.subnet(), node_host6(index))
    }

    /// The IPv6 subnet of this port (`fd00:0:0:S::/64`).
    pub fn subnet6(self) -> String {
        format!("{}/64", lab_ip6(self.subnet(), 0))
    }

    /// The port whose subnet holds `ip` (IPv4 or IPv6), and the node index behind it.
    pub fn node_of(ip: impl Into<IpAddr>) -> Option<(Port, usize)> {
        match ip.into() {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                let port = Port::ALL.into_iter().find(|p| p.subnet() == c)?;
                (a == 10 && b == 0 && d > 10).then(|| (port, usize::from(d - 10)))
            }
            IpAddr::V6(v6) => {
                let [a, b, c, s, e, f, g, h] = v6.segments();
                let port = Port::ALL.into_iter().find(|p| u16::from(p.subnet()) == s)?;
                let index = usize::from(h.checked_sub(0x10)?);
                ([a, b, c, e, f, g] == [0xfd00, 0, 0, 0, 0, 0] && index > 0)
                    .then_some((port, index))
            }
        }
    }
}

fn node_octet(index: usize) -> u8 {
    u8::try_from(index).unwrap_or(u8::MAX).min(200)
}

/// Node `index`'s IPv6 host part: hex `0x1N`, printed `1N` like the IPv4 octet `1N`.
fn node_host6(index: usize) -> u16 {
    0x10 + u16::from(node_octet(index))
}

/// `fd00:0:0:S::H`: host `host` of port subnet `subnet`.
fn lab_ip6(subnet: u8, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, u16::from(subnet), 0, 0, 0, host)
}

/// The Kubernetes name of node `index` (1-based).
pub fn node_name(index: usize) -> String {
    format!("node-{index}")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces alive in this process, for the signal handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A fresh namespace prefix for a test: unique per process and call, so tests run side by
/// side (nextest runs each in its own process, `cargo test` in threads).
pub fn unique_prefix() -> String {
    format!(
        "{TEST_PREFIX}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The namespaces of one lab.
#[derive(Debug)]
pub struct Topology {
    /// Namespace name prefix.
    pub prefix: String,
    /// Number of nodes.
    pub nodes: usize,
    destroyed: bool,
}

impl Topology {
    /// Creates the namespaces, bridge, veths and addresses, and waits for the links.
    pub async fn create(prefix: &str, nodes: usize) -> Result<Topology, Error> {
        let topo = Topology {
            prefix: prefix.to_owned(),
            nodes,
            destroyed: false,
        };
        // Registered before the first namespace exists, so an interrupted set-up is cleaned.
        if let Ok(mut live) = LIVE.lock() {
            live.extend(topo.namespaces());
        }
        let core = topo.core();
        let api = format!("{API_ADDR}/24");
        run(&["ip", "netns", "add", &core]).await?;
        no_dad(&core).await?;
        for cmd in [
            vec!["ip", "-n", &core, "link", "set", "lo", "up"],
            // Multicast snooping off: IPv6 neighbour discovery is plain flooding, whatever
            // MLD reports the bridge did or did not see while the ports came up.
            vec![
                "ip",
                "-n",
                &core,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            vec!["ip", "-n", &core, "addr", "add", &api, "dev", "br0"],
            vec!["ip", "-n", &core, "link", "set", "br0", "up"],
        ] {
            run(&cmd).await?;
        }
        // (namespace, bridge-side veth, IPv4 host octet, IPv6 host part)
        let mut members = vec![(topo.router(), "vr".to_owned(), 1u8, 1u16)];
        for i in 1..=nodes {
            members.push((
                topo.node(i),
                format!("v{i}"),
                10 + node_octet(i),
                node_host6(i),
            ));
        }
        for (ns, veth, host, host6) in &members {
            run(&["ip", "netns", "add", ns]).await?;
            no_dad(ns).await?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]).await?;
            run(&[
                "ip", "-n", &core, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ])
            .await?;
            run(&[
                "ip", "-n", &core, "link", "set", veth, "master", "br0", "up",
            ])
            .await?;
            for port in Port::ALL {
                let addr = format!("10.0.{}.{host}/24", port.subnet());
                run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"]).await?;
                let addr6 = format!("{}/64", lab_ip6(port.subnet(), *host6));
                run(&[
                    "ip", "-n", ns, "addr", "add", &addr6, "dev", "eth0", "nodad",
                ])
                .await?;
            }
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"]).await?;
        }
        crate::sys::wait_until(
            "lab links up",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || async {
                for (ns, veth, _, _) in &members {
                    let inner = run(&["ip", "-n", ns, "-o", "link", "show", "eth0"]).await?;
                    let outer = run(&["ip", "-n", &core, "-o", "link", "show", veth]).await?;
                    if !inner.contains("state UP") || !outer.contains("state UP") {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await?;
        Ok(topo)
    }

    /// The core namespace (bridge, API server, controllers).
    pub fn core(&self) -> String {
        format!("{}-core", self.prefix)
    }

    /// The router namespace.
    pub fn router(&self) -> String {
        format!("{}-rtr", self.prefix)
    }

    /// Node `index`'s namespace (1-based).
    pub fn node(&self, index: usize) -> String {
        format!("{}-n{index}", self.prefix)
    }

    /// Every namespace of this lab.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.core(), self.router()];
        v.extend((1..=self.nodes).map(|i| self.node(i)));
        v
    }

    /// Kills whatever still runs in the namespaces and deletes them.
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        let names = self.namespaces();
        destroy_namespaces(&names);
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|n| !names.contains(n));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Turns IPv6 duplicate address detection off for links created in `ns` from now on (the
/// link-local addresses would be tentative for a while otherwise; `nodad` covers the
/// global ones).
async fn no_dad(ns: &str) -> Result<(), Error> {
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ])
    .await
    .map(drop)
}

/// Names of existing namespaces starting with `prefix`.
pub fn list_namespaces(prefix: &str) -> Vec<String> {
    run_blocking(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Kills every process inside each namespace (never this process), waits for them to go,
/// then deletes the namespaces. `ip netns del` alone kills nothing.
pub fn destroy_namespaces(names: &[String]) {
    let me = std::process::id();
    let mut pids = Vec::new();
    for ns in names {
        let listed = run_blocking(&["ip", "netns", "pids", ns]).unwrap_or_default();
        pids.extend(
            listed
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .filter(|&p| p != me),
        );
    }
    for &pid in &pids {
        let _ = crate::sys::signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5)
        && pids
            .iter()
            .any(|&p| !matches!(proc_state(p), None | Some('Z')))
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for ns in names {
        let _ = run_blocking(&["ip", "netns", "del", ns]);
    }
}

/// Deletes test namespaces left behind by test processes that no longer run (a test killed
/// with SIGKILL cannot clean up after itself).
pub fn sweep_stale_test_namespaces() {
    let stale: Vec<String> = list_namespaces(TEST_PREFIX)
        .into_iter()
        .filter(|n| {
            let owner = n[TEST_PREFIX.len()..]
                .split('x')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            owner.is_some_and(|pid| pid != std::process::id() && proc_state(pid).is_none())
        })
        .collect();
    if !stale.is_empty() {
        destroy_namespaces(&stale);
    }
}

/// Destroys every namespace this process still has (used by the signal handler).
pub fn destroy_all_live() {
    let names = LIVE.lock().map(|mut l| std::mem::take(&mut *l));
    if let Ok(names) = names {
        destroy_namespaces(&names);
    }
}
