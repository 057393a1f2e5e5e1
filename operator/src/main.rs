//! `gatehouse-operator`: reconciles Gatehouse custom resources into gateway configuration.
//!
//! `gatehouse-operator crds` prints (or writes) the CRDs; `gatehouse-operator run` runs the
//! controllers, the snapshot push server and the metrics endpoint.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_operator::runtime::{self, Settings};
use std::path::PathBuf;

/// Gatehouse operator.
#[derive(Parser)]
#[command(name = "gatehouse-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition as YAML, or write one file per CRD to a directory.
    Crds {
        /// Directory to write `<plural>.gatehouse.dev.yaml` files into (created if missing).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run the operator: watch the custom resources, compile, push snapshots to gateways, run
    /// gateway workloads and write status.
    Run(Box<Settings>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output } => print_crds(output),
        Command::Run(settings) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,kube=warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?
                .block_on(runtime::run(*settings))
        }
    }
}

fn print_crds(output: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = gatehouse_api::crds::all();
    match output {
        None => {
            for crd in &crds {
                print!("{}", gatehouse_api::crds::to_yaml(crd));
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(gatehouse_api::crds::file_name(crd));
                std::fs::write(&path, gatehouse_api::crds::to_yaml(crd))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
