//! The upstream router: BIRD 2 (default) or FRR's bgpd, in the router namespace, accepting
//! every node on three ports (see [`Port`]), with multipath on so it keeps a path per node.
//! Queries return what the router holds: paths per prefix with next hop and attributes,
//! and per-session counters to detect churn.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::Error;
use crate::procs::{Proc, Spawn};
use crate::sys::output;
use crate::topology::Port;

/// The router's AS on every port.
pub const ROUTER_ASN: u32 = 64500;
/// The nodes' AS on the eBGP ports.
pub const NODE_ASN: u32 = 64512;

/// Which router software runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RouterKind {
    /// BIRD 2.
    #[default]
    Bird,
    /// FRR's bgpd (without zebra).
    Frr,
}

impl RouterKind {
    /// The programs it needs.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            RouterKind::Bird => &["bird", "birdc"],
            RouterKind::Frr => &["/usr/lib/frr/bgpd", "vtysh"],
        }
    }

    /// `bird` or `frr`.
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        }
    }
}

impl std::str::FromStr for RouterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bird" => Ok(RouterKind::Bird),
            "frr" => Ok(RouterKind::Frr),
            other => Err(format!("unknown router {other:?} (bird or frr)")),
        }
    }
}

/// One path to a prefix as the router holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoutePath {
    /// BGP NEXT_HOP (the global one, for IPv6).
    pub next_hop: IpAddr,
    /// AS_PATH, flattened.
    pub as_path: Vec<u32>,
    /// LOCAL_PREF, where the router shows one.
    pub local_pref: Option<u32>,
    /// Standard communities as `asn:value`.
    pub communities: Vec<String>,
    /// Large communities as `global:local1:local2`.
    pub large_communities: Vec<String>,
    /// Kept as stale by graceful restart: the session it came from is down (or
    /// re-established and not yet through its End-of-RIB). FRR shows this; BIRD does not
    /// (its sessions do: [`SessionInfo::restart_wait`]).
    pub stale: bool,
}

impl RoutePath {
    /// The port and node index behind the next hop.
    pub fn node(&self) -> Option<(Port, usize)> {
        Port::node_of(self.next_hop)
    }
}

/// Every BGP route the router holds: prefix → paths (sorted).
pub type Table = BTreeMap<String, Vec<RoutePath>>;

/// One BGP session as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionInfo {
    /// The node's address.
    pub neighbor: IpAddr,
    /// Established.
    pub established: bool,
    /// Something that changes when the session is re-established (instance name and
    /// start time).
    pub incarnation: String,
    /// UPDATE-carried route changes received on this session.
    pub updates_received: u64,
    /// The session is down and the router keeps its routes while it waits for the node to
    /// come back (graceful restart, RFC 4724 helper; restart timer running).
    pub restart_wait: bool,
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    /// Which software.
    pub kind: RouterKind,
    dir: PathBuf,
    proc: Proc,
}

impl Router {
    /// Writes the configuration and starts the router in `netns`; returns once its control
    /// socket answers. `password` is the MD5 port's password.
    pub async fn start(
        kind: RouterKind,
        netns: &str,
        dir: &Path,
        password: &str,
    ) -> Result<Router, Error> {
        for p in kind.programs() {
            if crate::sys::find_program(p).is_none() {
                return Err(Error::Missing(format!(
                    "{p} is not installed (run scripts/install-deps.sh as root)"
                )));
            }
        }
        let dir = dir.to_path_buf();
        let spawn = match kind {
            RouterKind::Bird => {
                let conf = dir.join("bird.conf");
                write(&conf, &bird_config(password))?;
                let (c, s) = (path_str(&conf), path_str(&dir.join("bird.ctl")));
                Spawn::new(
                    "bird",
                    netns,
                    &["bird", "-f", "-c", &c, "-s", &s],
                    &dir.join("bird.log"),
                )
            }
            RouterKind::Frr => {
                let conf = dir.join("bgpd.conf");
                write(&conf, &frr_config(password, &dir.join("bgpd.log")))?;
                let (c, d) = (path_str(&conf), path_str(&dir));
                let z = path_str(&dir.join("zserv.api"));
                let pid = path_str(&dir.join("bgpd.pid"));
                let argv = vec![
                    "/usr/lib/frr/bgpd",
                    "-S",
                    "--vty_socket",
                    &d,
                    "-z",
                    &z,
                    "-Z",
                    "-n",
                    "-P",
                    "0",
                    "-i",
                    &pid,
                    "-f",
                    &c,
                ];
                // No `-l`: FRR 8.4 puts the MD5 key of a listen range on one listener only
                // when several `-l` addresses of a family are given. The namespace is ours.
                Spawn::new("bgpd", netns, &argv, &dir.join("bgpd.out"))
            }
        };
        let proc = spawn.start()?;
        let mut router = Router { kind, dir, proc };
        let start = std::time::Instant::now();
        loop {
            let up = match router.kind {
                RouterKind::Bird => router.cli("show status").await?.contains("Daemon is up"),
                RouterKind::Frr => router
                    .cli("show running-config")
                    .await?
                    .contains("router bgp"),
            };
            if up {
                break;
            }
            if !router.proc.running() || start.elapsed() > Duration::from_secs(20) {
                return Err(Error::Process(format!(
                    "{} did not start; its log:\n{}\n{}",
                    router.kind.name(),
                    router.proc.log_tail(20),
                    router.log_tail(20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(router)
    }

    /// The router's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Runs one CLI command (birdc or vtysh) and returns its output.
    pub async fn cli(&self, cmd: &str) -> Result<String, Error> {
        let out = match self.kind {
            RouterKind::Bird => {
                let sock = path_str(&self.dir.join("bird.ctl"));
                let mut args = vec!["birdc", "-s", &sock];
                args.extend(cmd.split(' '));
                output(&args).await?
            }
            RouterKind::Frr => {
                let dir = path_str(&self.dir);
                output(&["vtysh", "--vty_socket", &dir, "-d", "bgpd", "-c", cmd]).await?
            }
        };
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every BGP route the router holds, IPv4 and IPv6.
    pub async fn table(&self) -> Result<Table, Error> {
        let mut table = self.family_table(false).await?;
        table.extend(self.family_table(true).await?);
        Ok(table)
    }

    /// The BGP routes of one address family (IPv6 when `v6`).
    pub async fn family_table(&self, v6: bool) -> Result<Table, Error> {
        let (bird, frr) = if v6 {
            ("master6", "ipv6")
        } else {
            ("master4", "ipv4")
        };
        match self.kind {
            RouterKind::Bird => Ok(parse_bird_routes(
                &self
                    .cli(&format!(
                        "show route table {bird} where source = RTS_BGP all"
                    ))
                    .await?,
            )),
            RouterKind::Frr => {
                let text = self
                    .cli(&format!("show bgp {frr} unicast json detail"))
                    .await?;
                parse_frr_routes(&text)
            }
        }
    }

    /// The paths the router holds for exactly `prefix` (e.g. `192.168.100.240/32` or
    /// `fd00:100::5/128`).
    pub async fn paths(&self, prefix: &str) -> Result<Vec<RoutePath>, Error> {
        Ok(self
            .family_table(prefix.contains(':'))
            .await?
            .remove(prefix)
            .unwrap_or_default())
    }

    /// Number of IPv4 prefixes the router holds BGP routes for.
    pub async fn prefix_count(&self) -> Result<usize, Error> {
        match self.kind {
            RouterKind::Bird => {
                let out = self
                    .cli("show route table master4 where source = RTS_BGP count")
                    .await?;
                // "30 of 30 routes for 10 networks in table master4"
                Ok(out
                    .lines()
                    .find_map(|l| {
                        let words: Vec<&str> = l.split_whitespace().collect();
                        let i = words.iter().position(|w| *w == "for")?;
                        words.get(i + 1)?.parse().ok()
                    })
                    .unwrap_or(0))
            }
            RouterKind::Frr => {
                let v: Value = serde_json::from_str(&self.cli("show bgp ipv4 unicast json").await?)
                    .map_err(|e| Error::Router(format!("FRR JSON: {e}")))?;
                Ok(v["routes"].as_object().map_or(0, serde_json::Map::len))
            }
        }
    }

    /// The BGP sessions the router has.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        match self.kind {
            RouterKind::Bird => Ok(parse_bird_protocols(&self.cli("show protocols all").await?)),
            RouterKind::Frr => parse_frr_neighbors(&self.cli("show bgp neighbors json").await?),
        }
    }

    /// Routes and sessions together: two equal snapshots mean nothing moved in between
    /// (no session reset, no UPDATE received).
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        Ok(Snapshot {
            table: self.table().await?,
            sessions: self.sessions().await?.into_iter().collect(),
        })
    }

    /// Whether the router process still runs.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }

    /// The router's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let file = match self.kind {
            RouterKind::Bird => "bird.log",
            RouterKind::Frr => "bgpd.log",
        };
        crate::procs::log_tail(&self.dir.join(file), lines)
    }
}

/// Routes and sessions at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Routes.
    pub table: Table,
    /// Sessions.
    pub sessions: BTreeSet<SessionInfo>,
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Process(format!("{}: {e}", path.display())))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// BIRD: one dynamic protocol per port, all nodes accepted, plus one for IPv6 on the eBGP
/// port; routes also exported to the router namespace's kernel tables with ECMP
/// (`merge paths`), as a real router would. `error wait time` is short: by default BIRD
/// refuses a neighbour for 60 s after a session error (e.g. hold timer expired), which
/// would hide the speaker's reconnects. Graceful restart is BIRD's default (it keeps the
/// routes of a peer that advertised the capability, for the peer's restart time).
pub fn bird_config(password: &str) -> String {
    let proto = |name: &str, local: IpAddr, range: String, mode: &str, extra: &str| {
        let channel = if local.is_ipv6() { "ipv6" } else { "ipv4" };
        format!(
            "protocol bgp nodes_{name} {{\n  local {local} as {ROUTER_ASN};\n  neighbor range {range} {mode};\n  \
             dynamic name \"{name}\";\n  strict bind yes;\n  error wait time 1, 5;\n  {extra}\n  \
             {channel} {{ import all; export none; }};\n}}\n",
        )
    };
    let v4 = |port: Port| {
        (
            IpAddr::V4(port.router_ip()),
            format!("10.0.{}.0/24", port.router_ip().octets()[2]),
        )
    };
    let (ebgp, ibgp, md5) = (v4(Port::Ebgp), v4(Port::Ibgp), v4(Port::Md5));
    format!(
        "router id {rid};\nlog stderr all;\ntimeformat protocol iso long ms;\n\
         protocol device {{ scan time 10; }}\n\
         protocol direct {{ ipv4; ipv6; interface \"eth0\"; }}\n\
         protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; merge paths on; }}\n\
         protocol kernel {{ ipv6 {{ export where source = RTS_BGP; }}; merge paths on; }}\n{}{}{}{}",
        proto("ebgp", ebgp.0, ebgp.1, "external", ""),
        proto("ibgp", ibgp.0, ibgp.1, "internal", ""),
        proto(
            "md5",
            md5.0,
            md5.1,
            "external",
            &format!("password \"{password}\";")
        ),
        proto(
            "ebgp6_",
            IpAddr::V6(Port::Ebgp.router_ip6()),
            Port::Ebgp.subnet6(),
            "external",
            ""
        ),
        rid = Port::Ebgp.router_ip(),
    )
}

/// FRR: one peer group per port, dynamic neighbours by listen range, multipath on; IPv6
/// on the eBGP port in a group of its own. FRR 8.4 is a graceful-restart helper by
/// default.
pub fn frr_config(password: &str, log: &Path) -> String {
    let mut c = format!(
        "frr defaults traditional\nhostname router\nlog file {} informational\nlog timestamp precision 3\n\
         router bgp {ROUTER_ASN}\n bgp router-id {}\n bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n \
         bgp bestpath as-path multipath-relax\n",
        log.display(),
        Port::Ebgp.router_ip(),
    );
    for (group, port, remote) in [
        ("EBGP", Port::Ebgp, "external"),
        ("IBGP", Port::Ibgp, "internal"),
        ("MD5", Port::Md5, "external"),
    ] {
        c += &format!(" neighbor {group} peer-group\n neighbor {group} remote-as {remote}\n");
        if port == Port::Md5 {
            c += &format!(" neighbor {group} password {password}\n");
        }
        c += &format!(
            " bgp listen range 10.0.{}.0/24 peer-group {group}\n",
            port.router_ip().octets()[2]
        );
    }
    c += &format!(
        " neighbor EBGP6 peer-group\n neighbor EBGP6 remote-as external\n \
         bgp listen range {} peer-group EBGP6\n",
        Port::Ebgp.subnet6()
    );
    c += " address-family ipv4 unicast\n  maximum-paths 16\n  maximum-paths ibgp 16\n";
    for group in ["EBGP", "IBGP", "MD5"] {
        c += &format!("  neighbor {group} activate\n");
    }
    c += "  no neighbor EBGP6 activate\n exit-address-family\n";
    c += " address-family ipv6 unicast\n  maximum-paths 16\n  neighbor EBGP6 activate\n \
          exit-address-family\n";
    c
}

/// Parses `birdc show route ... all`.
pub fn parse_bird_routes(text: &str) -> Table {
    let mut table = Table::new();
    let mut prefix = String::new();
    let mut current: Option<RoutePath> = None;
    let flush = |prefix: &str, p: Option<RoutePath>, table: &mut Table| {
        if let Some(p) = p
            && !prefix.is_empty()
        {
            table.entry(prefix.to_owned()).or_default().push(p);
        }
    };
    for line in text.lines() {
        let starts_path = line.contains(" unicast [") || line.contains(" unreachable [");
        if starts_path {
            flush(&prefix, current.take(), &mut table);
            if !line.starts_with(char::is_whitespace)
                && let Some(p) = line.split_whitespace().next()
            {
                prefix = p.to_owned();
            }
            current = Some(RoutePath {
                next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                as_path: Vec::new(),
                local_pref: None,
                communities: Vec::new(),
                large_communities: Vec::new(),
                // BIRD marks no route of a restarting peer; see `SessionInfo::restart_wait`.
                stale: false,
            });
            continue;
        }
        let Some(p) = current.as_mut() else { continue };
        let l = line.trim();
        if let Some(v) = l.strip_prefix("BGP.next_hop:") {
            if let Some(ip) = v.split_whitespace().next().and_then(|s| s.parse().ok()) {
                p.next_hop = ip;
            }
        } else if let Some(v) = l.strip_prefix("BGP.as_path:") {
            p.as_path = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        } else if let Some(v) = l.strip_prefix("BGP.local_pref:") {
            p.local_pref = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("BGP.community:") {
            p.communities = bird_tuples(v);
        } else if let Some(v) = l.strip_prefix("BGP.large_community:") {
            p.large_communities = bird_tuples(v);
        }
    }
    flush(&prefix, current.take(), &mut table);
    for paths in table.values_mut() {
        paths.sort();
    }
    table
}

/// `(64512,100) (65000,1)` → `["64512:100", "65000:1"]`.
fn bird_tuples(v: &str) -> Vec<String> {
    v.split(')')
        .map(|x| x.trim().trim_start_matches('(').replace(' ', ""))
        .filter(|x| !x.is_empty())
        .map(|x| x.replace(',', ":"))
        .collect()
}

/// Parses `birdc show protocols all` into the BGP sessions.
pub fn parse_bird_protocols(text: &str) -> Vec<SessionInfo> {
    let mut out = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() && !block.is_empty() {
            blocks.push(std::mem::take(&mut block));
        }
        block.push(line);
    }
    blocks.push(block);
    for b in blocks {
        let Some(head) = b.first() else { continue };
        let cols: Vec<&str> = head.split_whitespace().collect();
        if cols.get(1) != Some(&"BGP") {
            continue;
        }
        let field = |name: &str| {
            b.iter()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(str::trim)
        };
        let Some(neighbor) = field("Neighbor address:").and_then(|v| v.parse().ok()) else {
            continue;
        };
        let first_number = |name: &str| {
            field(name)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.push(SessionInfo {
            neighbor,
            established: field("BGP state:") == Some("Established"),
            // BIRD derives "since" from its monotonic clock at each query, so the
            // milliseconds may move by one between two reads of the same session: whole
            // seconds only (a re-established session also shows in the counters).
            incarnation: format!(
                "{} {}",
                cols.first().copied().unwrap_or(""),
                cols.get(4..6)
                    .map(|c| c.join(" "))
                    .map(|since| since
                        .split_once('.')
                        .map_or(since.clone(), |(whole, _)| whole.to_owned()))
                    .unwrap_or_default()
            ),
            updates_received: first_number("Import updates:") + first_number("Import withdraws:"),
            restart_wait: b
                .iter()
                .any(|l| l.trim() == "Neighbor graceful restart active"),
        });
    }
    out.sort();
    out
}

/// Parses FRR's `show bgp ipv4 unicast json detail`.
pub fn parse_frr_routes(text: &str) -> Result<Table, Error> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Error::Router(format!("FRR JSON: {e}")))?;
    let mut table = Table::new();
    let Some(routes) = v["routes"].as_object() else {
        return Ok(table);
    };
    for (prefix, entry) in routes {
        // With `detail` each prefix is an object holding `paths`; without it, an array.
        let paths = entry["paths"].as_array().or_else(|| entry.as_array());
        let mut out = Vec::new();
        // FRR 8.4 puts a summary object (no `nexthops`) before the paths.
        for p in paths
            .into_iter()
            .flatten()
            .filter(|p| p["nexthops"].is_array())
        {
            // An IPv6 path may list a link-local next hop besides the global one.
            let next_hop = p["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["scope"] != "link-local")
                .find_map(|n| n["ip"].as_str()?.parse().ok())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let list = |x: &Value| -> Vec<String> {
                x["list"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .or_else(|| {
                        x["string"]
                            .as_str()
                            .map(|s| s.split_whitespace().map(String::from).collect())
                    })
                    .unwrap_or_default()
            };
            out.push(RoutePath {
                next_hop,
                as_path: p["aspath"]["string"]
                    .as_str()
                    .or_else(|| p["path"].as_str())
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
                local_pref: p["locPrf"]
                    .as_u64()
                    .or_else(|| p["localpref"].as_u64())
                    .and_then(|x| u32::try_from(x).ok()),
                communities: list(&p["community"])
                    .into_iter()
                    .map(|c| frr_well_known(&c).map_or(c, str::to_owned))
                    .collect(),
                large_communities: list(&p["largeCommunity"]),
                stale: p["stale"].as_bool().unwrap_or(false),
            });
        }
        out.sort();
        if !out.is_empty() {
            table.insert(prefix.clone(), out);
        }
    }
    Ok(table)
}

/// FRR prints well-known communities by name; BIRD and the tests use numbers.
fn frr_well_known(name: &str) -> Option<&'static str> {
    Some(match name {
        "gracefulShutdown" => "65535:0",
        "acceptOwn" => "65535:1",
        "llgrStale" => "65535:6",
        "noLlgr" => "65535:7",
        "blackhole" => "65535:666",
        "noExport" => "65535:65281",
        "noAdvertise" => "65535:65282",
        "localAs" => "65535:65283",
        "noPeer" => "65535:65284",
        _ => return None,
    })
}

/// Parses FRR's `show bgp neighbors json`.
pub fn parse_frr_neighbors(text: &str) -> Result<Vec<SessionInfo>, Error> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Error::Router(format!("FRR JSON: {e}")))?;
    let mut out = Vec::new();
    for (addr, n) in v.as_object().into_iter().flatten() {
        let Ok(neighbor) = addr.parse() else { continue };
        out.push(SessionInfo {
            neighbor,
            established: n["bgpState"] == "Established",
            // The session's TCP ports: a new connection has a new ephemeral port. (The
            // established epoch FRR prints is "now - uptime" and jitters by a second.)
            incarnation: format!("{}:{}", n["portLocal"], n["portForeign"]),
            updates_received: n["messageStats"]["updatesRecv"].as_u64().unwrap_or(0),
            // Present only while the restart timer runs.
            restart_wait: n["gracefulRestartInfo"]["timers"]["restartTimerRemaining"].is_u64(),
        });
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_routes_parse_every_path() {
        let t = parse_bird_routes(include_str!("testdata/bird-routes.txt"));
        assert_eq!(t.len(), 2);
        let paths = &t["192.168.100.240/32"];
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].next_hop, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(paths[0].as_path, [64512]);
        assert_eq!(paths[0].communities, ["64512:100", "65000:1"]);
        assert_eq!(paths[0].local_pref, Some(100));
        assert!(paths[0].large_communities.is_empty());
        assert_eq!(paths[1].large_communities, ["64512:1:2"]);
        assert_eq!(paths[1].node(), Some((Port::Ebgp, 2)));
        let ibgp = &t["192.168.100.241/32"][0];
        assert!(ibgp.as_path.is_empty());
        assert_eq!(ibgp.local_pref, Some(250));
        assert_eq!(ibgp.node(), Some((Port::Ibgp, 3)));
    }

    #[test]
    fn bird_protocols_give_only_bgp_sessions() {
        let s = parse_bird_protocols(include_str!("testdata/bird-protocols.txt"));
        let addrs: Vec<String> = s.iter().map(|s| s.neighbor.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
        assert!(s.iter().all(|s| s.established));
        assert!(s[0].incarnation == "ebgp1 2026-11-25 22:12:05", "{s:?}");
        // The demo: node-1 announced once; node-2 announced and withdrew; node-3 nothing.
        let updates: Vec<u64> = s.iter().map(|s| s.updates_received).collect();
        assert_eq!(updates, [1, 2, 0]);
    }

    #[test]
    fn frr_routes_skip_the_summary_entry() {
        let text = r#"{"routes": {"192.168.100.240/32": [
            {"prefix": "192.168.100.240/32", "version": 2},
            {"aspath": {"string": "64512"}, "community": {"string": "64512:100 noExport",
             "list": ["64512:100", "noExport"]}, "largeCommunity": {"list": ["64512:1:2"]},
             "nexthops": [{"ip": "10.0.0.11"}]},
            {"aspath": {"string": ""}, "locPrf": 250, "nexthops": [{"ip": "10.0.1.12"}]}
        ]}}"#;
        let t = parse_frr_routes(text).unwrap();
        let paths = &t["192.168.100.240/32"];
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].communities, ["64512:100", "65535:65281"]);
        assert_eq!(paths[0].large_communities, ["64512:1:2"]);
        assert_eq!(paths[1].local_pref, Some(250));
        assert_eq!(paths[1].node(), Some((Port::Ibgp, 2)));
    }

    #[test]
    fn ports_map_addresses_to_nodes() {
        for port in Port::ALL {
            assert_eq!(Port::node_of(port.node_ip(3)), Some((port, 3)));
            assert_eq!(Port::node_of(port.router_ip()), None);
            assert_eq!(Port::node_of(port.node_ip6(3)), Some((port, 3)));
            assert_eq!(Port::node_of(port.router_ip6()), None);
        }
        assert_eq!(Port::Ebgp.node_ip6(2).to_string(), "fd00::12");
        assert_eq!(Port::Ibgp.router_ip6().to_string(), "fd00:0:0:1::1");
        assert_eq!(Port::node_of("fd01::12".parse::<IpAddr>().unwrap()), None);
    }

    #[test]
    fn bird_ipv6_routes_keep_the_global_next_hop() {
        let text = "BIRD 2.0.12 ready.\nTable master6:\n\
            fd00:100::/128       unicast [ebgp6_1 00:36:01.120] * (100) [AS64512i]\n\
            \tvia fd00::11 on eth0\n\tType: BGP univ\n\tBGP.origin: IGP\n\
            \tBGP.as_path: 64512\n\tBGP.next_hop: fd00::11 fe80::1c2b:3ff:fe4d:5e6f\n\
            \tBGP.local_pref: 100\n\
            \x20                    unicast [ebgp6_2 00:36:01.130] (100) [AS64512i]\n\
            \tvia fd00::12 on eth0\n\tType: BGP univ\n\tBGP.origin: IGP\n\
            \tBGP.as_path: 64512\n\tBGP.next_hop: fd00::12\n\tBGP.local_pref: 100\n";
        let t = parse_bird_routes(text);
        let paths = &t["fd00:100::/128"];
        let hops: Vec<_> = paths.iter().map(RoutePath::node).collect();
        assert_eq!(hops, [Some((Port::Ebgp, 1)), Some((Port::Ebgp, 2))]);
        assert_eq!(paths[0].next_hop, IpAddr::V6(Port::Ebgp.node_ip6(1)));
    }

    #[test]
    fn bird_session_waiting_for_a_restart() {
        let text = "BIRD 2.0.12 ready.\n\
            Name       Proto      Table      State  Since         Info\n\
            ebgp3      BGP        ---        start  2026-11-26 00:34:37.403  Active        Socket: Connection closed\n\
            \x20 BGP state:          Active\n\
            \x20   Neighbor address: 10.0.0.12\n\
            \x20   Neighbor AS:      64512\n\
            \x20   Neighbor graceful restart active\n\
            \x20   Restart timer:    119.988/-\n\
            \x20 Channel ipv4\n\
            \x20   State:          START\n";
        let s = parse_bird_protocols(text);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(!s[0].established && s[0].restart_wait, "{s:?}");
        let up = parse_bird_protocols(include_str!("testdata/bird-protocols.txt"));
        assert!(up.iter().all(|s| !s.restart_wait), "{up:?}");
    }

    #[test]
    fn frr_ipv6_paths_and_graceful_restart() {
        let text = r#"{"routes": {"fd00:100::/128": {"paths": [
            {"aspath": {"string": "64512"}, "stale": true, "nexthops": [
                {"ip": "fe80::1", "scope": "link-local"},
                {"ip": "fd00::12", "scope": "global"}]},
            {"aspath": {"string": "64512"}, "nexthops": [{"ip": "fd00::11", "scope": "global"}]}
        ]}}}"#;
        let t = parse_frr_routes(text).unwrap();
        let paths = &t["fd00:100::/128"];
        assert_eq!(paths.len(), 2);
        let stale: Vec<_> = paths.iter().map(|p| (p.node(), p.stale)).collect();
        assert_eq!(
            stale,
            [
                (Some((Port::Ebgp, 1)), false),
                (Some((Port::Ebgp, 2)), true)
            ]
        );
        let neighbors = r#"{
            "10.0.0.12": {"bgpState": "Idle", "gracefulRestartInfo": {"timers":
                {"configuredRestartTimer": 120, "receivedRestartTimer": 120,
                 "restartTimerRemaining": 119}}},
            "fd00::11": {"bgpState": "Established", "gracefulRestartInfo": {"timers":
                {"configuredRestartTimer": 120, "receivedRestartTimer": 0}}}
        }"#;
        let s = parse_frr_neighbors(neighbors).unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.neighbor.to_string(), s.established, s.restart_wait))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.12".to_owned(), false, true),
                ("fd00::11".to_owned(), true, false)
            ]
        );
    }
}
