//! `kube-emulator`: runs the Kubernetes API emulator as a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube_emulator::{Emulator, EmulatorConfig};

/// A Kubernetes API server emulator for ferrolb's tests and lab.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 = ephemeral).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the emulator to this path.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Apply every YAML/JSON file in this directory at start (e.g. CRDs).
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Apply every YAML/JSON file in this directory after the CRDs.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Periodic watch bookmark interval in milliseconds (0 = off).
    #[arg(long, default_value_t = 60_000)]
    bookmark_interval: u64,
    /// Seed for reproducible uids and generated names.
    #[arg(long)]
    seed: Option<u64>,
    /// Service cluster IP CIDRs (repeat for dual-stack).
    #[arg(long = "service-cidr")]
    service_cidrs: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), kube_emulator::EmulatorError> {
    let mut cfg = EmulatorConfig {
        listen: args.listen,
        bookmark_interval: (args.bookmark_interval > 0)
            .then(|| Duration::from_millis(args.bookmark_interval)),
        seed: args.seed,
        ..EmulatorConfig::default()
    };
    if !args.service_cidrs.is_empty() {
        cfg.service_cidrs = args.service_cidrs;
    }
    let emu = Emulator::start(cfg).await?;
    if let Some(dir) = &args.crds {
        emu.apply_yaml_dir(dir)?;
    }
    if let Some(dir) = &args.fixtures {
        emu.apply_yaml_dir(dir)?;
    }
    if let Some(path) = &args.kubeconfig_out {
        emu.write_kubeconfig(path)?;
    }
    println!("listening on {}", emu.url());
    wait_for_signal().await?;
    emu.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<(), kube_emulator::EmulatorError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
