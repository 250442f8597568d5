//! `kubectl-ferrolb`: the `ferrolb` command as a kubectl plugin (`kubectl ferrolb explain
//! ns/svc`). kubectl finds it on `PATH` by its name and runs it with the remaining
//! arguments, so it is the same program under another name.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    ferrolb_cli::run(ferrolb_cli::Cli::parse()).await
}
