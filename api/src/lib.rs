//! Gatehouse API: the five custom resources, the compiler that turns them into gateway
//! configuration, and the policy engine that decides every request.
//!
//! Everything here is pure: no async, no network, no clock that is not passed in. The operator,
//! the gateway's local mode and `gatehouse-gateway check` all call the same [`compile()`] and the
//! same [`policy`] engine, so they cannot drift.

#![forbid(unsafe_code)]
// kube's `printcolumn(name = …, type_ = …)` repeats keys by design.
#![allow(clippy::duplicated_attributes)]

pub mod access_policy;
pub mod compile;
pub mod conditions;
pub mod config;
pub mod crds;
pub mod credential_provider;
pub mod duration;
pub mod gateway;
pub mod glob;
pub mod identity;
pub mod manifest;
pub mod policy;
pub mod push;
pub mod refs;
pub mod server;
pub mod trust_provider;

pub use access_policy::AccessPolicy;
pub use compile::{Compiled, Resources, compile};
pub use config::GatewayConfig;
pub use credential_provider::CredentialProvider;
pub use gateway::McpGateway;
pub use server::McpServer;
pub use trust_provider::TrustProvider;

/// API group of every Gatehouse custom resource.
pub const GROUP: &str = "gatehouse.dev";
/// API version of every Gatehouse custom resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "gatehouse.dev/v1alpha1";
