//! Binary level, on every CI run: the API double serves, kubectl applies the CRDs and the
//! examples, and the real `gatehouse-operator` process reconciles them.

mod support;

use gatehouse_kube_double::{KubeDouble, Options};
use support::scenario::{Tokens, full_flow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_reconciles_examples_against_the_api_double() {
    let double = KubeDouble::start(Options::default())
        .await
        .expect("double starts");
    full_flow(double.kubeconfig_path(), Tokens::Double(&double)).await;
}
