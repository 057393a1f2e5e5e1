//! `gatehouse-gateway`: the identity-aware MCP gateway.

#![forbid(unsafe_code)]

mod check;
mod local;

use clap::{Parser, Subcommand};

/// Gatehouse gateway.
#[derive(Parser)]
#[command(name = "gatehouse-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a directory of manifests and, given a question, print the decision and the
    /// policy that made it. Exit code: 0 allow (or clean), 1 deny, 2 invalid manifests.
    Check(check::CheckArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => match check::run(&args, &mut std::io::stdout().lock()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                check::EXIT_INVALID
            }
        },
    };
    std::process::exit(code);
}
