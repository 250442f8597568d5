//! `ferrolb-bgp`: a small BGP speaker for tests and benchmarks.
//!
//! `ferrolb-bgp announce` connects to one router, announces the given
//! prefixes and keeps them announced until SIGINT/SIGTERM, when it sends
//! Cease/Administrative Shutdown. State changes are printed to stdout as
//! JSON lines, e.g. `{"state":"Established","advertised":10000,...}`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ferrolb_bgp::codec::{Family, LargeCommunity};
use ferrolb_bgp::fsm::{PeerAsn, SessionConfig};
use ferrolb_bgp::runtime::{PeerConfig, PeerHandle, RouteAttributes, RouteMap};
use ipnet::IpNet;

#[derive(Parser)]
#[command(name = "ferrolb-bgp", about = "ferrolb BGP speaker tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Announce prefixes to one router until interrupted.
    Announce(Announce),
}

#[derive(Parser)]
struct Announce {
    /// Router address, optionally with port (default 179).
    #[arg(long)]
    peer: String,
    /// Router ASN, or "internal" / "external".
    #[arg(long)]
    peer_asn: String,
    /// Our ASN.
    #[arg(long)]
    local_asn: u32,
    /// Our BGP identifier (default: the local address if IPv4).
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    /// Local address to connect from.
    #[arg(long)]
    local_address: Option<IpAddr>,
    /// Hold time to propose, seconds.
    #[arg(long, default_value_t = 90)]
    hold_time: u16,
    /// TCP MD5 password (RFC 2385).
    #[arg(long, env = "FERROLB_BGP_MD5_PASSWORD")]
    md5_password: Option<String>,
    /// IPv4 next hop (default: the session's local address).
    #[arg(long)]
    next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop (default: the session's local address when IPv6).
    #[arg(long)]
    next_hop_v6: Option<Ipv6Addr>,
    /// Prefix to announce (repeatable).
    #[arg(long = "prefix")]
    prefixes: Vec<IpNet>,
    /// Announce COUNT consecutive host routes from ADDR: `ADDR,COUNT`.
    #[arg(long)]
    generate_hosts: Option<String>,
    /// Community `ASN:VALUE` (repeatable).
    #[arg(long = "community")]
    communities: Vec<String>,
    /// Large community `GLOBAL:LOCAL1:LOCAL2` (repeatable).
    #[arg(long = "large-community")]
    large_communities: Vec<String>,
    /// LOCAL_PREF for iBGP.
    #[arg(long)]
    local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    #[arg(long)]
    med: Option<u32>,
    /// Advertise graceful restart with this restart time, seconds.
    #[arg(long)]
    graceful_restart: Option<u16>,
    /// Only IPv4 unicast (no IPv6 multiprotocol capability).
    #[arg(long)]
    ipv4_only: bool,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb-bgp: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Announce(a) => rt.block_on(announce(a)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-bgp: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn parse_pair(s: &str) -> Result<u32, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("community {s:?}: want ASN:VALUE"))?;
    let a: u16 = a.parse().map_err(|e| format!("community {s:?}: {e}"))?;
    let b: u16 = b.parse().map_err(|e| format!("community {s:?}: {e}"))?;
    Ok(u32::from(a) << 16 | u32::from(b))
}

fn parse_large(s: &str) -> Result<LargeCommunity, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [g, l1, l2] = parts[..] else {
        return Err(format!("large community {s:?}: want G:L1:L2"));
    };
    let n = |x: &str| {
        x.parse::<u32>()
            .map_err(|e| format!("large community {s:?}: {e}"))
    };
    Ok(LargeCommunity {
        global_admin: n(g)?,
        local_data1: n(l1)?,
        local_data2: n(l2)?,
    })
}

fn generate(spec: &str) -> Result<Vec<IpNet>, String> {
    let (addr, count) = spec
        .split_once(',')
        .ok_or("--generate-hosts wants ADDR,COUNT")?;
    let count: u32 = count.parse().map_err(|e| format!("count: {e}"))?;
    let addr: IpAddr = addr.parse().map_err(|e| format!("address: {e}"))?;
    Ok(match addr {
        IpAddr::V4(a) => (0..count)
            .map(|i| IpNet::from(IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(i)))))
            .collect(),
        IpAddr::V6(a) => (0..count)
            .map(|i| {
                IpNet::from(IpAddr::V6(Ipv6Addr::from(
                    u128::from(a).wrapping_add(u128::from(i)),
                )))
            })
            .collect(),
    })
}

async fn announce(a: Announce) -> Result<(), String> {
    let remote: SocketAddr = match a.peer.parse::<SocketAddr>() {
        Ok(s) => s,
        Err(_) => SocketAddr::new(a.peer.parse().map_err(|e| format!("--peer: {e}"))?, 179),
    };
    let peer_asn = match a.peer_asn.as_str() {
        "internal" => PeerAsn::Internal,
        "external" => PeerAsn::External,
        n => PeerAsn::Exact(n.parse().map_err(|e| format!("--peer-asn: {e}"))?),
    };
    let router_id = a
        .router_id
        .or(match a.local_address {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        })
        .ok_or("--router-id is needed when --local-address is not IPv4")?;
    let mut session = SessionConfig::new(a.local_asn, router_id, peer_asn);
    session.hold_time = a.hold_time;
    if a.ipv4_only {
        session.families = vec![Family::Ipv4Unicast];
    }
    session.graceful_restart =
        a.graceful_restart
            .map(|t| ferrolb_bgp::fsm::GracefulRestartConfig {
                restart_time: t,
                restarting: false,
                forwarding_preserved: true,
            });
    let attrs = Arc::new(RouteAttributes {
        communities: a
            .communities
            .iter()
            .map(|c| parse_pair(c))
            .collect::<Result<_, _>>()?,
        large_communities: a
            .large_communities
            .iter()
            .map(|c| parse_large(c))
            .collect::<Result<_, _>>()?,
        local_pref: a.local_pref,
        med: a.med,
    });
    let mut prefixes = a.prefixes.clone();
    if let Some(spec) = &a.generate_hosts {
        prefixes.extend(generate(spec)?);
    }
    let routes: RouteMap = prefixes.into_iter().map(|p| (p, attrs.clone())).collect();
    let total = routes.len();
    let peer = PeerHandle::spawn(PeerConfig {
        remote,
        local_address: a.local_address,
        session,
        md5_password: a.md5_password,
        next_hop_v4: a.next_hop_v4,
        next_hop_v6: a.next_hop_v6,
    });
    peer.set_routes(routes);
    let mut status = peer.status();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("signal: {e}"))?;
    let mut last = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    return Err("peer task ended".into());
                }
                let s = status.borrow_and_update().clone();
                let key = (s.state, s.advertised, s.last_error.clone());
                if last.as_ref() != Some(&key) {
                    let line = serde_json::json!({
                        "state": format!("{:?}", s.state),
                        "advertised": s.advertised,
                        "wanted": total,
                        "updates_sent": s.updates_sent,
                        "hold_time": s.negotiated.as_ref().map(|n| n.hold_time),
                        "last_error": s.last_error,
                    });
                    println!("{line}");
                    last = Some(key);
                }
            }
        }
    }
    peer.shutdown("ferrolb-bgp announce stopped").await;
    println!("{}", serde_json::json!({"state": "Stopped"}));
    Ok(())
}
