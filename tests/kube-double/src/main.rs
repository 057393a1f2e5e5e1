//! `kube-double`: runs the Kubernetes API server TEST DOUBLE until killed.
#![forbid(unsafe_code)]

use clap::Parser;
use gatehouse_kube_double::{KubeDouble, Options};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A test double of the Kubernetes API server (in memory, HTTPS, not a real apiserver).
#[derive(Debug, Parser)]
#[command(name = "kube-double", version)]
struct Args {
    /// Where to write the kubeconfig pointing at the double.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Address to listen on (port 0: chosen by the OS).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Events kept for watches resuming from a resourceVersion (older ones get 410).
    #[arg(long, default_value_t = 1000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let double = KubeDouble::start(Options {
        listen: args.listen,
        kubeconfig_path: Some(args.kubeconfig.clone()),
        watch_history_limit: args.watch_history,
        record_requests: false,
        ..Options::default()
    })
    .await?;
    println!("{}", double.url());
    eprintln!(
        "kube-double (a TEST DOUBLE, not a Kubernetes API server) serving {}; kubeconfig written to {}",
        double.url(),
        args.kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    double.shutdown().await;
    Ok(())
}
