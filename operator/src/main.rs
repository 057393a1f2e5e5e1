//! `gatehouse-operator`: reconciles Gatehouse custom resources into gateway configuration.
//!
//! Today it generates the CRDs (`gatehouse-operator crds`); the controllers come next.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output } => {
            let crds = gatehouse_api::crds::all();
            match output {
                None => {
                    for crd in &crds {
                        print!("{}", gatehouse_api::crds::to_yaml(crd));
                    }
                }
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for crd in &crds {
                        let path = dir.join(gatehouse_api::crds::file_name(crd));
                        std::fs::write(&path, gatehouse_api::crds::to_yaml(crd))
                            .with_context(|| format!("writing {}", path.display()))?;
                        println!("wrote {}", path.display());
                    }
                }
            }
        }
    }
    Ok(())
}
