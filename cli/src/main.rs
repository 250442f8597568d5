//! `ferrolb`: see [`ferrolb_cli`].

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    ferrolb_cli::run(ferrolb_cli::Cli::parse()).await
}
