//! `ferrolb-speaker`: announces this node's eligible Service IPs to BGP peers.
//! Everything lives in the library crate; this only parses flags and reports failure.

use clap::Parser;
use ferrolb_speaker::app::main_with;
use ferrolb_speaker::cli::Args;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match main_with(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-speaker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
