//! `gatehouse-gateway`: the identity-aware MCP gateway.
//!
//! Layers: `main` → wiring (`run`, `reload`, `cluster`, `state`) → pipeline stages (`listener`,
//! `route`, `authn`, `inspect`, `authz`, `credentials`, `relay`, `session`, `audit`) plus `admin`
//! and `metrics` → `gatehouse_api`.

#![forbid(unsafe_code)]

// Many small, short-lived allocations on every worker thread: glibc malloc's arena locks showed
// up as ~30% of profile samples under load (bench/RESULTS.md); jemalloc's thread caches avoid them.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod admin;
mod audit;
mod authn;
mod authz;
mod body;
mod check;
mod cluster;
mod consent;
mod credentials;
mod error;
mod http1;
mod inspect;
mod listener;
mod local;
mod metrics;
mod provider_http;
mod relay;
mod reload;
mod route;
mod run;
mod session;
mod state;
mod workers;

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
    /// Serve MCP from a directory of manifests (local mode), reloading when they change; or,
    /// with `--cluster`, from the configuration the operator pushes.
    Run(run::RunArgs),
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
        Command::Run(args) => match run::run(args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
    };
    std::process::exit(code);
}
