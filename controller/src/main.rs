//! `ferrolb-controller`: assigns LoadBalancer IPs from ferrolb address pools.
//! Everything lives in the library crate; this only parses flags and reports failure.

use clap::Parser;
use ferrolb_controller::app::main_with;
use ferrolb_controller::cli::Args;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match main_with(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-controller: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
