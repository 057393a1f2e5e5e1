//! The real-cluster suite: the same scenario as `double.rs`, against the cluster `KUBECONFIG`
//! points at (kind in `.github/workflows/kind-e2e.yml`). Without `KUBECONFIG` it prints a
//! SKIPPED line and passes. It applies the CRDs and examples into the cluster and runs the
//! operator as a local process with that kubeconfig; use a throwaway cluster.

mod support;

use support::scenario::{Tokens, full_flow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_examples_on_a_real_cluster() {
    let Some(kubeconfig) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) else {
        println!("SKIPPED: KUBECONFIG not set (operator_reconciles_examples_on_a_real_cluster)");
        return;
    };
    let path = std::path::PathBuf::from(kubeconfig);
    full_flow(&path, Tokens::Cluster).await;
}
