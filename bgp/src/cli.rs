//! `ferrolb-bgp announce` options: command-line flags, the YAML file given
//! with `--config`, and how the two combine into peer configurations and
//! routes. Pure apart from reading the named files.
//!
//! Precedence: a peer's own YAML settings, then the command line, then the
//! YAML top level, then defaults. `--peer` adds peers to those of the file.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ferrolb_bgp::codec::LargeCommunity;
use ferrolb_bgp::community::Community;
use ferrolb_bgp::fsm::{GracefulRestartConfig, PeerAsn, SessionConfig};
use ferrolb_bgp::runtime::{PeerConfig, RouteAttributes, RouteMap};
use ipnet::IpNet;
use serde::Deserialize;

/// Errors in the options, each naming the flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML config does not parse.
    #[error("config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is malformed or missing.
    #[error("{what}: {message}")]
    Invalid {
        /// The flag or setting.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(what: &'static str, message: impl Into<String>) -> CliError {
    CliError::Invalid {
        what,
        message: message.into(),
    }
}

/// Flags of `ferrolb-bgp announce`.
#[derive(Debug, Default, Clone, Args)]
pub struct AnnounceArgs {
    /// YAML file with the same settings, and per-peer ones under `peers:`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Our AS number.
    #[arg(long, value_name = "ASN")]
    pub local_as: Option<u32>,
    /// Our BGP identifier (default: --source when it is IPv4).
    #[arg(long, value_name = "IPV4")]
    pub router_id: Option<Ipv4Addr>,
    /// Router to peer with, `ADDR`, `ADDR:PORT` or `[V6ADDR]:PORT` (repeatable).
    #[arg(long = "peer", value_name = "ADDR[:PORT]")]
    pub peers: Vec<String>,
    /// The router's AS number, or `internal` / `external`.
    #[arg(long, value_name = "ASN|internal|external")]
    pub peer_as: Option<String>,
    /// TCP MD5 password (RFC 2385). Never printed.
    #[arg(long, env = "FERROLB_BGP_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Hold time to propose, seconds (0 or ≥ 3; default 90).
    #[arg(long, value_name = "SECONDS")]
    pub hold_time: Option<u16>,
    /// TTL of our packets for eBGP multihop (default: 1 on eBGP).
    #[arg(long, value_name = "TTL")]
    pub multihop: Option<u8>,
    /// Local address to connect from: one IPv4 and/or one IPv6, each used
    /// for peers of its family.
    #[arg(long = "source", value_name = "ADDR")]
    pub sources: Vec<IpAddr>,
    /// Prefix to announce (repeatable).
    #[arg(long = "prefix", value_name = "CIDR")]
    pub prefixes: Vec<IpNet>,
    /// File with one CIDR per line (`#` comments); re-read on SIGHUP (repeatable).
    #[arg(long = "prefix-file", value_name = "FILE")]
    pub prefix_files: Vec<PathBuf>,
    /// Next hop, one IPv4 and/or one IPv6 (default: the session's local address).
    #[arg(long = "next-hop", value_name = "ADDR")]
    pub next_hops: Vec<IpAddr>,
    /// Community `ASN:VALUE` (repeatable).
    #[arg(long = "community", value_name = "ASN:VALUE")]
    pub communities: Vec<String>,
    /// Large community `GLOBAL:LOCAL1:LOCAL2` (repeatable).
    #[arg(long = "large-community", value_name = "G:L1:L2")]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF, sent on iBGP sessions (default 100).
    #[arg(long, value_name = "N")]
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    #[arg(long, value_name = "N")]
    pub med: Option<u32>,
    /// Advertise graceful restart (RFC 4724) with this restart time, seconds.
    #[arg(long, value_name = "SECONDS")]
    pub graceful_restart: Option<u16>,
    /// With --graceful-restart: set the Restart State (R) bit in our OPENs
    /// until each session is up again (RFC 4724 §3). Pass it when this
    /// process replaces one that had sessions less than the restart time ago.
    #[arg(long)]
    pub graceful_restart_restarting: bool,
}

/// An ASN in YAML: a number or `internal` / `external`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum AsSpec {
    Number(u32),
    Word(String),
}

impl AsSpec {
    fn text(&self) -> String {
        match self {
            AsSpec::Number(n) => n.to_string(),
            AsSpec::Word(w) => w.clone(),
        }
    }
}

/// Settings a peer may override in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FilePeer {
    address: String,
    peer_as: Option<AsSpec>,
    password: Option<String>,
    hold_time: Option<u16>,
    multihop: Option<u8>,
    source: Option<IpAddr>,
    #[serde(default)]
    next_hops: Vec<IpAddr>,
}

/// The `--config` YAML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    local_as: Option<u32>,
    router_id: Option<Ipv4Addr>,
    peer_as: Option<AsSpec>,
    password: Option<String>,
    hold_time: Option<u16>,
    multihop: Option<u8>,
    #[serde(default)]
    sources: Vec<IpAddr>,
    #[serde(default)]
    prefixes: Vec<IpNet>,
    #[serde(default)]
    prefix_files: Vec<PathBuf>,
    #[serde(default)]
    next_hops: Vec<IpAddr>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    local_pref: Option<u32>,
    med: Option<u32>,
    graceful_restart: Option<u16>,
    #[serde(default)]
    graceful_restart_restarting: bool,
    #[serde(default)]
    peers: Vec<FilePeer>,
}

/// What `announce` runs: the peers and where the routes come from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One entry per router.
    pub peers: Vec<PeerConfig>,
    /// Prefixes given inline.
    pub prefixes: Vec<IpNet>,
    /// Prefix files, re-read on SIGHUP.
    pub prefix_files: Vec<PathBuf>,
    /// Attributes of every route.
    pub attributes: Arc<RouteAttributes>,
}

impl Plan {
    /// The routes to announce: inline prefixes plus the files' contents.
    pub fn routes(&self) -> Result<RouteMap, CliError> {
        let mut routes: RouteMap = HashMap::new();
        let mut add = |p: IpNet| {
            routes.insert(p.trunc(), self.attributes.clone());
        };
        self.prefixes.iter().copied().for_each(&mut add);
        for f in &self.prefix_files {
            parse_prefix_list(&read(f)?)?.into_iter().for_each(&mut add);
        }
        Ok(routes)
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// One CIDR per line; blank lines and `#` comments ignored. A bare address
/// is a host route.
pub fn parse_prefix_list(text: &str) -> Result<Vec<IpNet>, CliError> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<IpNet>()
                .or_else(|_| l.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid("--prefix-file", format!("{l:?} is not a CIDR")))
        })
        .collect()
}

/// `ASN:VALUE` (16 bits each) or a well-known name such as `no-export`.
pub fn parse_community(s: &str) -> Result<u32, CliError> {
    let c = Community::parse(s).map_err(|e| invalid("--community", e.to_string()))?;
    c.to_u32().ok_or_else(|| {
        invalid(
            "--community",
            format!("{s:?} is a large community: use --large-community"),
        )
    })
}

/// `GLOBAL:LOCAL1:LOCAL2`, each 32 bits (the `large:` prefix is optional).
pub fn parse_large_community(s: &str) -> Result<LargeCommunity, CliError> {
    let bad = || invalid("--large-community", format!("{s:?}: want G:L1:L2"));
    let spelled = if s.trim_start().to_ascii_lowercase().starts_with("large:") {
        s.to_owned()
    } else {
        format!("large:{s}")
    };
    let [g, l1, l2] = Community::parse(&spelled)
        .ok()
        .and_then(|c| c.large())
        .ok_or_else(bad)?;
    Ok(LargeCommunity {
        global_admin: g,
        local_data1: l1,
        local_data2: l2,
    })
}

/// `ADDR`, `ADDR:PORT` or `[V6]:PORT`; the port defaults to 179.
pub fn parse_peer(s: &str) -> Result<SocketAddr, CliError> {
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<SocketAddr>()
        .or_else(|_| bare.parse::<IpAddr>().map(|a| SocketAddr::new(a, 179)))
        .map_err(|_| {
            invalid(
                "--peer",
                format!("{s:?}: want ADDR, ADDR:PORT or [V6]:PORT"),
            )
        })
}

/// A number, `internal` or `external`.
pub fn parse_peer_as(s: &str) -> Result<PeerAsn, CliError> {
    match s {
        "internal" => Ok(PeerAsn::Internal),
        "external" => Ok(PeerAsn::External),
        n => n.parse().map(PeerAsn::Exact).map_err(|_| {
            invalid(
                "--peer-as",
                format!("{s:?}: want a number, internal or external"),
            )
        }),
    }
}

fn one_per_family(
    what: &'static str,
    list: &[IpAddr],
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), CliError> {
    let (mut v4, mut v6) = (None, None);
    for a in list {
        let dup = match a {
            IpAddr::V4(a) => v4.replace(*a).is_some(),
            IpAddr::V6(a) => v6.replace(*a).is_some(),
        };
        if dup {
            return Err(invalid(what, "at most one IPv4 and one IPv6 address"));
        }
    }
    Ok((v4, v6))
}

/// Combines the flags with the `--config` file (if any).
pub fn plan(args: &AnnounceArgs) -> Result<Plan, CliError> {
    let file = match &args.config {
        Some(path) => {
            serde_saphyr::from_str::<FileConfig>(&read(path)?).map_err(|e| CliError::Config {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
        None => FileConfig::default(),
    };
    // Command line over the file's top level.
    let local_as = args
        .local_as
        .or(file.local_as)
        .ok_or_else(|| invalid("--local-as", "required"))?;
    let peer_as = args
        .peer_as
        .clone()
        .or(file.peer_as.as_ref().map(AsSpec::text));
    let password = args.password.clone().or(file.password.clone());
    let hold_time = args.hold_time.or(file.hold_time).unwrap_or(90);
    let multihop = args.multihop.or(file.multihop);
    let sources = if args.sources.is_empty() {
        &file.sources
    } else {
        &args.sources
    };
    let (source4, source6) = one_per_family("--source", sources)?;
    let global_next_hops = if args.next_hops.is_empty() {
        &file.next_hops
    } else {
        &args.next_hops
    };
    let graceful_restart = args.graceful_restart.or(file.graceful_restart);
    let restarting = args.graceful_restart_restarting || file.graceful_restart_restarting;
    if restarting && graceful_restart.is_none() {
        return Err(invalid(
            "--graceful-restart-restarting",
            "needs --graceful-restart",
        ));
    }

    let mut peers: Vec<FilePeer> = file.peers.clone();
    peers.extend(args.peers.iter().map(|a| FilePeer {
        address: a.clone(),
        ..FilePeer::default()
    }));
    if peers.is_empty() {
        return Err(invalid("--peer", "at least one peer is required"));
    }
    let mut configs = Vec::with_capacity(peers.len());
    for p in peers {
        let remote = parse_peer(&p.address)?;
        let peer_asn = parse_peer_as(
            &p.peer_as
                .as_ref()
                .map(AsSpec::text)
                .or(peer_as.clone())
                .ok_or_else(|| invalid("--peer-as", format!("required for {}", p.address)))?,
        )?;
        let hold = p.hold_time.unwrap_or(hold_time);
        if hold == 1 || hold == 2 {
            return Err(invalid("--hold-time", "must be 0 or at least 3"));
        }
        let local_address = p.source.or(match remote {
            SocketAddr::V4(_) => source4.map(IpAddr::V4),
            SocketAddr::V6(_) => source6.map(IpAddr::V6),
        });
        let router_id = args
            .router_id
            .or(file.router_id)
            .or(match local_address {
                Some(IpAddr::V4(a)) => Some(a),
                _ => source4,
            })
            .ok_or_else(|| invalid("--router-id", "required unless --source is IPv4"))?;
        let mut session = SessionConfig::new(local_as, router_id, peer_asn);
        session.hold_time = hold;
        session.graceful_restart = graceful_restart.map(|t| GracefulRestartConfig {
            restart_time: t.min(4095),
            restarting,
            forwarding_preserved: true,
        });
        let ebgp = match peer_asn {
            PeerAsn::Exact(a) => a != local_as,
            PeerAsn::External => true,
            PeerAsn::Internal => false,
        };
        let (nh4, nh6) = one_per_family(
            "--next-hop",
            if p.next_hops.is_empty() {
                global_next_hops
            } else {
                &p.next_hops
            },
        )?;
        configs.push(PeerConfig {
            remote,
            local_address,
            session,
            md5_password: p.password.or(password.clone()),
            // Directly connected eBGP uses TTL 1 unless told otherwise.
            ttl: p.multihop.or(multihop).or(ebgp.then_some(1)),
            next_hop_v4: nh4,
            next_hop_v6: nh6,
        });
    }
    let communities = if args.communities.is_empty() {
        &file.communities
    } else {
        &args.communities
    };
    let large = if args.large_communities.is_empty() {
        &file.large_communities
    } else {
        &args.large_communities
    };
    let attributes = Arc::new(RouteAttributes {
        communities: communities
            .iter()
            .map(|c| parse_community(c))
            .collect::<Result<_, _>>()?,
        large_communities: large
            .iter()
            .map(|c| parse_large_community(c))
            .collect::<Result<_, _>>()?,
        local_pref: args.local_pref.or(file.local_pref),
        med: args.med.or(file.med),
    });
    let mut prefixes = file.prefixes;
    prefixes.extend(args.prefixes.iter().copied());
    let mut prefix_files = file.prefix_files;
    prefix_files.extend(args.prefix_files.iter().cloned());
    Ok(Plan {
        peers: configs,
        prefixes,
        prefix_files,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: AnnounceArgs,
    }

    fn args(list: &[&str]) -> AnnounceArgs {
        T::try_parse_from(std::iter::once("x").chain(list.iter().copied()))
            .unwrap()
            .a
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ferrolb-bgp-cli-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn communities_take_numbers_names_and_large_values() {
        assert_eq!(parse_community("65000:100").unwrap(), (65000 << 16) | 100);
        assert_eq!(parse_community("no-export").unwrap(), 0xFFFF_FF01);
        assert!(parse_community("65536:1").is_err());
        assert!(parse_community("large:1:2:3").is_err());
        for spelled in ["1:2:3", "large:1:2:3"] {
            let l = parse_large_community(spelled).unwrap();
            assert_eq!((l.global_admin, l.local_data1, l.local_data2), (1, 2, 3));
        }
        assert!(parse_large_community("1:2").is_err());
    }

    #[test]
    fn flags_make_one_peer_per_address_with_the_shared_settings() {
        let a = args(&[
            "--local-as",
            "64513",
            "--peer",
            "172.30.0.1",
            "--peer",
            "[fd30::1]:1179",
            "--peer",
            "[fd30::3]",
            "--peer-as",
            "external",
            "--source",
            "172.30.0.2",
            "--source",
            "fd30::2",
            "--password",
            "pw",
            "--hold-time",
            "3",
            "--multihop",
            "4",
            "--prefix",
            "10.0.0.1/32",
            "--prefix",
            "2001:db8::1/128",
            "--next-hop",
            "172.30.0.9",
            "--next-hop",
            "fd30::9",
            "--community",
            "64512:100",
            "--large-community",
            "64512:1:2",
            "--local-pref",
            "250",
            "--graceful-restart",
            "120",
        ]);
        let p = plan(&a).unwrap();
        assert_eq!(p.peers.len(), 3);
        let (a, b) = (&p.peers[0], &p.peers[1]);
        assert_eq!(p.peers[2].remote, "[fd30::3]:179".parse().unwrap());
        assert_eq!(a.remote, "172.30.0.1:179".parse().unwrap());
        assert_eq!(b.remote, "[fd30::1]:1179".parse().unwrap());
        assert_eq!(a.local_address, Some("172.30.0.2".parse().unwrap()));
        assert_eq!(b.local_address, Some("fd30::2".parse().unwrap()));
        assert_eq!(b.session.router_id, Ipv4Addr::new(172, 30, 0, 2));
        assert_eq!(a.session.local_asn, 64513);
        assert_eq!(a.session.router_id, Ipv4Addr::new(172, 30, 0, 2));
        assert_eq!(a.session.peer_asn, PeerAsn::External);
        assert_eq!(a.session.hold_time, 3);
        assert_eq!(a.md5_password.as_deref(), Some("pw"));
        assert_eq!(a.ttl, Some(4));
        assert_eq!(a.next_hop_v4, Some(Ipv4Addr::new(172, 30, 0, 9)));
        assert_eq!(a.next_hop_v6, Some("fd30::9".parse().unwrap()));
        assert_eq!(
            a.session.graceful_restart.map(|g| g.restart_time),
            Some(120)
        );
        assert_eq!(
            a.session.graceful_restart.map(|g| g.restarting),
            Some(false),
            "R only when asked for"
        );
        let routes = p.routes().unwrap();
        assert_eq!(routes.len(), 2);
        let attrs = &routes[&"10.0.0.1/32".parse().unwrap()];
        assert_eq!(attrs.communities, vec![(64512 << 16) | 100]);
        assert_eq!(attrs.large_communities[0].local_data2, 2);
        assert_eq!(attrs.local_pref, Some(250));
    }

    #[test]
    fn graceful_restart_restarting_sets_r_and_needs_graceful_restart() {
        let base = [
            "--local-as",
            "64512",
            "--router-id",
            "1.1.1.1",
            "--peer",
            "10.0.0.1",
            "--peer-as",
            "64513",
            "--graceful-restart-restarting",
        ];
        let e = plan(&args(&base)).unwrap_err();
        assert!(e.to_string().contains("--graceful-restart"), "{e}");
        let p = plan(&args(&[&base[..], &["--graceful-restart", "60"]].concat())).unwrap();
        let gr = p.peers[0].session.graceful_restart.unwrap();
        assert!(gr.restarting);
        assert_eq!(gr.restart_time, 60);
        let open = p.peers[0].session.open_message();
        assert!(open.graceful_restart().unwrap().restarting());
    }

    #[test]
    fn ebgp_defaults_to_ttl_one_and_ibgp_to_the_system_default() {
        let base = ["--local-as", "64512", "--router-id", "1.1.1.1", "--peer"];
        let e = plan(&args(
            &[&base[..], &["10.0.0.1", "--peer-as", "64513"]].concat(),
        ))
        .unwrap();
        assert_eq!(e.peers[0].ttl, Some(1));
        assert_eq!(e.peers[0].session.hold_time, 90);
        assert!(e.peers[0].session.graceful_restart.is_none());
        let i = plan(&args(
            &[&base[..], &["10.0.0.1", "--peer-as", "internal"]].concat(),
        ))
        .unwrap();
        assert_eq!(i.peers[0].ttl, None);
        assert_eq!(i.peers[0].session.peer_asn, PeerAsn::Internal);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--peer", "10.0.0.1", "--peer-as", "1"], "--local-as"),
            (&["--local-as", "1", "--peer-as", "2"], "--peer"),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--router-id",
                    "1.1.1.1",
                ],
                "--peer-as",
            ),
            (
                &["--local-as", "1", "--peer", "10.0.0.1", "--peer-as", "2"],
                "--router-id",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "nope",
                    "--peer-as",
                    "2",
                    "--router-id",
                    "1.1.1.1",
                ],
                "--peer",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--peer-as",
                    "x",
                    "--router-id",
                    "1.1.1.1",
                ],
                "--peer-as",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--peer-as",
                    "2",
                    "--router-id",
                    "1.1.1.1",
                    "--hold-time",
                    "2",
                ],
                "--hold-time",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--peer-as",
                    "2",
                    "--router-id",
                    "1.1.1.1",
                    "--community",
                    "70000:1",
                ],
                "--community",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--peer-as",
                    "2",
                    "--router-id",
                    "1.1.1.1",
                    "--large-community",
                    "1:2",
                ],
                "--large-community",
            ),
            (
                &[
                    "--local-as",
                    "1",
                    "--peer",
                    "10.0.0.1",
                    "--peer-as",
                    "2",
                    "--router-id",
                    "1.1.1.1",
                    "--next-hop",
                    "10.0.0.2",
                    "--next-hop",
                    "10.0.0.3",
                ],
                "--next-hop",
            ),
        ];
        for (list, flag) in cases {
            let err = plan(&args(list)).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{list:?}: {err}");
        }
    }

    #[test]
    fn yaml_config_sets_per_peer_values_and_flags_override_the_top_level() {
        let prefixes = temp(
            "yaml-prefixes",
            "# hosts\n10.1.0.1/32\n10.1.0.2\n\n2001:db8::5/128 # v6\n",
        );
        let conf = temp(
            "config.yaml",
            &format!(
                "local-as: 64513\nrouter-id: 10.0.0.2\npeer-as: external\nhold-time: 30\n\
                 communities: ['64512:7']\nlarge-communities: ['1:2:3']\nlocal-pref: 300\n\
                 graceful-restart: 60\ngraceful-restart-restarting: true\nprefixes: [10.9.0.0/24]\nprefix-files: [{}]\n\
                 peers:\n  - address: 10.0.0.1\n    peer-as: 64512\n    password: s3cret\n    hold-time: 6\n\
                 \x20   next-hops: [fd00::2]\n  - address: '[fd00::1]:1179'\n    peer-as: internal\n    multihop: 3\n    source: fd00::2\n",
                prefixes.display()
            ),
        );
        let a = args(&[
            "--config",
            conf.to_str().unwrap(),
            "--hold-time",
            "9",
            "--peer",
            "10.0.0.3",
            "--prefix",
            "10.2.0.1/32",
        ]);
        let p = plan(&a).unwrap();
        assert_eq!(p.peers.len(), 3);
        let [one, two, three] = &p.peers[..] else {
            unreachable!()
        };
        assert_eq!(one.session.peer_asn, PeerAsn::Exact(64512));
        assert_eq!(one.md5_password.as_deref(), Some("s3cret"));
        assert_eq!(one.session.hold_time, 6, "per-peer value wins");
        assert_eq!(one.next_hop_v6, Some("fd00::2".parse().unwrap()));
        assert_eq!(one.ttl, Some(1));
        assert_eq!(two.remote, "[fd00::1]:1179".parse().unwrap());
        assert_eq!(two.session.peer_asn, PeerAsn::Internal);
        assert_eq!(two.ttl, Some(3));
        assert_eq!(two.local_address, Some("fd00::2".parse().unwrap()));
        assert_eq!(two.session.hold_time, 9, "flag beats the top level");
        assert_eq!(three.session.peer_asn, PeerAsn::External);
        assert_eq!(three.md5_password, None);
        assert_eq!(three.session.router_id, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            three
                .session
                .graceful_restart
                .map(|g| (g.restart_time, g.restarting)),
            Some((60, true))
        );
        let routes = p.routes().unwrap();
        let mut got: Vec<String> = routes.keys().map(ToString::to_string).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "10.1.0.1/32",
                "10.1.0.2/32",
                "10.2.0.1/32",
                "10.9.0.0/24",
                "2001:db8::5/128"
            ]
        );
        let attrs = routes.values().next().unwrap();
        assert_eq!(attrs.communities, vec![(64512 << 16) | 7]);
        assert_eq!(attrs.local_pref, Some(300));
    }

    #[test]
    fn yaml_errors_name_the_file_and_unknown_keys_are_refused() {
        let conf = temp("bad.yaml", "local-as: 1\npeerz: []\n");
        let err = plan(&args(&["--config", conf.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.yaml") && err.contains("peerz"), "{err}");
        let missing = plan(&args(&["--config", "/nonexistent/x.yaml"])).unwrap_err();
        assert!(matches!(missing, CliError::Read { .. }), "{missing}");
    }

    #[test]
    fn prefix_list_refuses_garbage_with_the_line() {
        let err = parse_prefix_list("10.0.0.1/32\nhello\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hello"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let p = plan(&args(&[
            "--local-as",
            "1",
            "--peer",
            "10.0.0.1",
            "--peer-as",
            "2",
            "--router-id",
            "1.1.1.1",
            "--password",
            "topsecret",
        ]))
        .unwrap();
        let text = format!("{p:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}
