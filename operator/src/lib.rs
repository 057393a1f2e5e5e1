//! `gatehouse-operator`: reconciles Gatehouse custom resources into gateway configuration,
//! gateway workloads and status.
//!
//! Floors, top to bottom (nothing imports upward, no two rooms import each other):
//!
//! - [`runtime`]: wiring — client, reflectors, the loops below, leader election, servers.
//! - controllers, one concern each: [`snapshots`] (debounced compile + diff), [`workloads`]
//!   (Deployments, Services, RBAC, ConfigMaps by server-side apply), [`push`] (the snapshot
//!   stream gateways connect to), [`status`] (conditions and Events, leader only), [`leader`]
//!   (Lease), [`metrics`].
//! - shared state: [`index`] (reflector stores feeding `gatehouse_api::compile`), [`replicas`]
//!   (connected gateway replicas and their ACK/NACKs), [`secret_keys`], [`grant_secrets`],
//!   [`names`].
//! - `gatehouse_api`: types and the pure compiler.

#![forbid(unsafe_code)]

pub mod fleet_sync;
pub mod grant_secrets;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod push;
pub mod replicas;
pub mod runtime;
pub mod secret_keys;
pub mod serve;
pub mod snapshots;
pub mod status;
pub mod workloads;

#[cfg(test)]
mod testing;
