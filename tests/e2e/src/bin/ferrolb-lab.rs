//! `ferrolb-lab`: the local lab (README command 1 runs it through `scripts/lab.sh`).
//!
//! - `ferrolb-lab run` starts the lab, shows the demo and keeps everything up until Ctrl-C;
//!   `--once` stops after the demo (exit 0 when it worked).
//! - `ferrolb-lab up` starts the lab with the demo configuration and keeps it up.
//! - `ferrolb-lab down` removes whatever a previous `run`/`up` left: processes, namespaces,
//!   the run directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferrolb_e2e::lab::{Lab, LabConfig};
use ferrolb_e2e::router::RouterKind;
use ferrolb_e2e::topology::{LAB_PREFIX, destroy_namespaces, list_namespaces};
use ferrolb_e2e::{Error, demo};

/// The ferrolb lab: an emulated cluster, a speaker per node namespace and a real router.
#[derive(Debug, Parser)]
#[command(name = "ferrolb-lab", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// State directory (logs, kubeconfig, router sockets).
    #[arg(long, global = true, default_value_os_t = default_run_dir())]
    run_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the lab and show the demo; keep it up until Ctrl-C unless --once.
    Run {
        /// Router software: bird or frr.
        #[arg(long, default_value = "bird")]
        router: RouterKind,
        /// Stop after the demo.
        #[arg(long)]
        once: bool,
        /// Also build the binaries with cargo first (scripts/lab.sh builds them itself).
        #[arg(long)]
        build: bool,
    },
    /// Start the lab with the demo configuration and keep it up until Ctrl-C.
    Up {
        /// Router software: bird or frr.
        #[arg(long, default_value = "bird")]
        router: RouterKind,
        /// Also build the binaries with cargo first.
        #[arg(long)]
        build: bool,
    },
    /// Remove everything a previous run left behind.
    Down,
}

fn default_run_dir() -> PathBuf {
    std::env::temp_dir().join("ferrolb-lab")
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Down = args.command {
        return down(&args.run_dir);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb-lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        match args.command {
            Command::Run {
                router,
                once,
                build,
            } => lab_main(&args.run_dir, router, build, true, once).await,
            Command::Up { router, build } => {
                lab_main(&args.run_dir, router, build, false, false).await
            }
            Command::Down => ExitCode::SUCCESS,
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    code
}

async fn lab_main(
    run_dir: &PathBuf,
    router: RouterKind,
    build: bool,
    show_demo: bool,
    once: bool,
) -> ExitCode {
    if !list_namespaces(LAB_PREFIX).is_empty() {
        let owner = std::fs::read_to_string(run_dir.join("lab.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if owner.is_some_and(|p| ferrolb_e2e::sys::proc_state(p).is_some()) {
            eprintln!("ferrolb-lab: a lab is already up; stop it first (scripts/lab.sh down)");
            return ExitCode::FAILURE;
        }
        println!("lab: removing what an earlier lab left behind");
        down(run_dir);
    }
    let cfg = LabConfig {
        router,
        prefix: Some(LAB_PREFIX.to_owned()),
        dir: Some(run_dir.clone()),
        build,
        ..LabConfig::default()
    };
    let work = async {
        let lab = Lab::start(cfg).await?;
        let _ = std::fs::write(run_dir.join("lab.pid"), std::process::id().to_string());
        if show_demo {
            demo::run(&lab).await?;
        } else {
            lab.apply_examples().await?;
        }
        Ok::<Lab, Error>(lab)
    };
    let lab = tokio::select! {
        r = work => r,
        () = interrupted() => {
            println!("lab: interrupted; cleaning up");
            return ExitCode::from(130);
        }
    };
    let lab = match lab {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("ferrolb-lab: {e}");
            eprintln!("(logs are in {})", run_dir.display());
            return ExitCode::FAILURE;
        }
    };
    if once {
        println!("lab: demo done; cleaning up");
        drop(lab);
        let _ = std::fs::remove_dir_all(run_dir);
        return ExitCode::SUCCESS;
    }
    demo::print_usage(&lab);
    println!("Press Ctrl-C to stop (or run `scripts/lab.sh down` from another shell).");
    interrupted().await;
    println!("\nlab: stopping");
    drop(lab);
    let _ = std::fs::remove_dir_all(run_dir);
    println!("lab: everything removed");
    ExitCode::SUCCESS
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers there is nothing to wait for; never return.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

/// Stops a running lab (SIGTERM to its process, which cleans up), then removes anything
/// left: processes inside the lab namespaces, the namespaces, the run directory.
fn down(run_dir: &PathBuf) -> ExitCode {
    let owner = std::fs::read_to_string(run_dir.join("lab.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|&p| p != std::process::id());
    if let Some(pid) = owner
        && ferrolb_e2e::sys::proc_state(pid).is_some()
    {
        println!("lab: stopping the lab process {pid}");
        let _ = ferrolb_e2e::sys::signal(pid, nix::sys::signal::Signal::SIGTERM);
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(20)
            && !matches!(ferrolb_e2e::sys::proc_state(pid), None | Some('Z'))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let left = list_namespaces(LAB_PREFIX);
    if !left.is_empty() {
        println!("lab: removing namespaces {}", left.join(" "));
        destroy_namespaces(&left);
    }
    let _ = std::fs::remove_dir_all(run_dir);
    if list_namespaces(LAB_PREFIX).is_empty() {
        println!("lab: down (nothing left)");
        ExitCode::SUCCESS
    } else {
        eprintln!("ferrolb-lab: some namespaces could not be removed");
        ExitCode::FAILURE
    }
}
