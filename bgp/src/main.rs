//! `ferrolb-bgp`: a small BGP speaker for checking a router's configuration,
//! for interop tests and for benchmarks.
//!
//! `ferrolb-bgp announce` keeps one session per `--peer` (or per peer of
//! the `--config` file), announces the given prefixes on each and keeps
//! them announced until SIGINT/SIGTERM, when it sends Cease/Administrative
//! Shutdown. SIGHUP re-reads the prefix files and sends only the changes.
//! Every session state change is printed to stdout as one JSON line, e.g.
//! `{"peer":"172.30.0.1:179","state":"Established","hold_time":90,...}`.

mod cli;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use ferrolb_bgp::codec::Family;
use ferrolb_bgp::fsm::Negotiated;
use ferrolb_bgp::runtime::{PeerHandle, PeerStatus};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "ferrolb-bgp", about = "ferrolb BGP speaker tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Announce prefixes to one or more routers until interrupted.
    Announce(cli::AnnounceArgs),
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

fn family_name(f: &Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4-unicast",
        Family::Ipv6Unicast => "ipv6-unicast",
    }
}

/// The capabilities both sides agreed on, for the Established line.
fn capabilities(n: &Negotiated) -> serde_json::Value {
    serde_json::json!({
        "families": n.families.iter().map(family_name).collect::<Vec<_>>(),
        "four_octet_as": n.four_octet_as,
        "route_refresh": n.route_refresh,
        "peer_graceful_restart": n.peer_graceful_restart.as_ref().map(|g| g.restart_time),
    })
}

/// One JSON line for a state change of `peer`.
fn state_line(peer: SocketAddr, s: &PeerStatus, wanted: usize) -> String {
    let mut line = serde_json::json!({
        "peer": peer.to_string(),
        "state": format!("{:?}", s.state),
        "wanted": wanted,
        "last_error": s.last_error,
    });
    if let Some(n) = &s.negotiated {
        line["hold_time"] = n.hold_time.into();
        line["keepalive"] = n.keepalive.into();
        line["peer_as"] = n.peer_asn.into();
        line["peer_router_id"] = n.peer_router_id.to_string().into();
        line["ibgp"] = n.ibgp.into();
        line["capabilities"] = capabilities(n);
    }
    line.to_string()
}

async fn announce(args: cli::AnnounceArgs) -> Result<(), String> {
    let plan = cli::plan(&args).map_err(|e| e.to_string())?;
    let routes = plan.routes().map_err(|e| e.to_string())?;
    let mut wanted = routes.len();
    let (changes_tx, mut changes) = mpsc::unbounded_channel::<(SocketAddr, PeerStatus)>();
    let mut peers = Vec::new();
    for config in plan.peers.iter().cloned() {
        let remote = config.remote;
        let peer = PeerHandle::spawn(config);
        peer.set_routes(routes.clone());
        // Forward each status change, tagged with the peer, to one printer
        // so lines from several sessions never interleave.
        let mut status = peer.status();
        let tx = changes_tx.clone();
        tokio::spawn(async move {
            let mut last = None;
            while status.changed().await.is_ok() {
                let s = status.borrow_and_update().clone();
                let key = (s.state, s.last_error.clone());
                if last.as_ref() != Some(&key) {
                    last = Some(key);
                    if tx.send((remote, s)).is_err() {
                        return;
                    }
                }
            }
        });
        peers.push(peer);
    }
    drop(changes_tx);
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signal: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("signal: {e}"))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match plan.routes() {
                Ok(routes) => {
                    wanted = routes.len();
                    tracing::info!(prefixes = wanted, "prefix files re-read");
                    for p in &peers {
                        p.set_routes(routes.clone());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "prefix files not re-read; keeping the old routes"),
            },
            Some((peer, s)) = changes.recv() => println!("{}", state_line(peer, &s, wanted)),
        }
    }
    for p in peers {
        p.shutdown("ferrolb-bgp announce stopped").await;
    }
    println!("{}", serde_json::json!({"state": "Stopped"}));
    Ok(())
}
