//! The config-push protocol between `gatehouse-operator` and gateways in cluster mode.
//!
//! Pure wire types (serde only) plus the URL scheme, so the operator (server) and the gateway
//! (client) share one definition.
//!
//! # Endpoints
//!
//! The operator serves plain HTTP/1.1 on `--push-listen` (default `0.0.0.0:8443`; TLS is a later
//! concern). A gateway is told the base URL with `--operator <URL>` (e.g.
//! `http://gatehouse-operator.gatehouse-system.svc:8443`).
//!
//! | method | path | body |
//! |---|---|---|
//! | `GET`  | `/v1/snapshots/{gateway-id}` | — ; response: a stream of [`StreamMessage`] |
//! | `POST` | `/v1/snapshots/{gateway-id}/status` | a [`StatusReport`]; response `204` |
//!
//! `{gateway-id}` is [`id_path`] of the [`GatewayId`]: `gateway/<namespace>/<name>` for a
//! standalone `McpGateway` (`--gateway NS/NAME`), `sidecar/<namespace>/<server>` for the sidecar
//! of a workload `McpServer` (`--sidecar NS/SERVER`). Example:
//! `GET /v1/snapshots/gateway/tools/tools-gateway`.
//!
//! # Headers
//!
//! - `Authorization: Bearer <token>` (required): the pod's projected ServiceAccount token with
//!   audience [`TOKEN_AUDIENCE`] (`gatehouse`), mounted by the operator at [`TOKEN_PATH`]. Re-read
//!   the file on every (re)connect: the kubelet rotates it. The operator validates it with a
//!   `TokenReview` (audience `gatehouse`) and requires the ServiceAccount to be the one it created
//!   for that gateway ([`service_account_name`]); otherwise `401` (bad token) or `403` (valid
//!   token, wrong ServiceAccount or gateway).
//! - [`POD_HEADER`] `Gatehouse-Pod: <pod name>` (required on `GET`): identifies the replica
//!   (the Deployment sets `POD_NAME` from the downward API). When the TokenReview names the pod
//!   (bound tokens do), the two must agree.
//!
//! # Stream framing
//!
//! The `GET` response is `200`, `Content-Type: application/x-ndjson`, and never ends on its own:
//! one JSON object per line (`\n`-terminated, no pretty printing), each a [`StreamMessage`]:
//!
//! - [`StreamMessage::Snapshot`] — a full, versioned [`GatewayConfig`]. The first message is the
//!   current snapshot, sent immediately; after that one is sent on every change of this gateway's
//!   configuration (and only then). Each is complete: replace, never merge. Versions are content
//!   hashes (equal version = equal config), not ordered numbers.
//! - [`StreamMessage::Heartbeat`] — every [`HEARTBEAT_INTERVAL_SECONDS`] seconds, carrying the
//!   version the operator currently publishes (or `null` when no valid snapshot exists for this
//!   gateway, e.g. its McpGateway is invalid or deleted; the gateway then keeps its last known
//!   good configuration).
//!
//! Unknown `type` values must be ignored (forward compatibility).
//!
//! # Reconnect and backoff
//!
//! A gateway treats the stream as dead when no line arrives for
//! `3 × HEARTBEAT_INTERVAL_SECONDS`, or on EOF or error, and reconnects with exponential backoff
//! (start 200 ms, factor 2, cap 10 s, ±20 % jitter; reset after a stream delivered its first
//! message). While disconnected it keeps serving its last applied configuration (or the one
//! mounted from the `<gateway>-gatehouse-snapshot` ConfigMap at start). An operator restart or
//! leader change therefore never interrupts traffic.
//!
//! # ACK / NACK
//!
//! After **every** `Snapshot` message — including the first one after each reconnect, even when
//! its version is already applied — the gateway validates and applies it atomically, then posts a
//! [`StatusReport`]: `accepted: true` (ACK) once the new configuration serves traffic, or
//! `accepted: false` with a `reason` (NACK) when it was rejected, in which case the previous
//! configuration keeps serving unchanged. The operator turns these into the `Programmed`
//! condition of every object the snapshot carries (`n/m replicas applied version v`, or `False`
//! with the NACK reason) and into `McpGateway.status.replicasApplied`. Only replicas with an open
//! stream count as connected.

use crate::config::GatewayId;
use crate::refs::ObjectKey;
use serde::{Deserialize, Serialize};

pub use crate::config::GatewayConfig;

/// Audience of the projected ServiceAccount token a gateway presents to the operator.
pub const TOKEN_AUDIENCE: &str = "gatehouse";
/// Where the operator mounts that token in gateway pods.
pub const TOKEN_PATH: &str = "/var/run/secrets/gatehouse/token";
/// Header naming the pod (replica) on a snapshot stream.
pub const POD_HEADER: &str = "Gatehouse-Pod";
/// Seconds between heartbeats on a snapshot stream.
pub const HEARTBEAT_INTERVAL_SECONDS: u64 = 10;
/// Where the operator mounts the last-known-good snapshot ConfigMap in gateway pods.
pub const SNAPSHOT_DIR: &str = "/etc/gatehouse/snapshot";
/// The key (file name) of the snapshot JSON in that ConfigMap.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// One line of a snapshot stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StreamMessage {
    /// A full snapshot to apply atomically, then ACK or NACK.
    ///
    /// `{"type":"snapshot","config":{"version":"…","gateway":{…},…}}`
    Snapshot {
        /// The configuration; `config.version` identifies it.
        config: Box<GatewayConfig>,
    },
    /// Keep-alive.
    ///
    /// `{"type":"heartbeat","version":"…"}`
    Heartbeat {
        /// The version the operator currently publishes for this gateway, if any.
        version: Option<String>,
    },
}

/// A replica's report about one snapshot: ACK (`accepted: true`) or NACK.
///
/// `{"pod":"tools-gateway-7d9c-abcde","version":"…","accepted":false,"reason":"…"}`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The reporting pod's name.
    pub pod: String,
    /// The snapshot version this report is about.
    pub version: String,
    /// `true`: applied and serving. `false`: rejected, previous configuration still serving.
    pub accepted: bool,
    /// Why it was rejected (required for a NACK, ignored for an ACK). Shown in status; must not
    /// contain secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `{gateway-id}` path segments for a gateway: `gateway/NS/NAME` or `sidecar/NS/SERVER`.
pub fn id_path(id: &GatewayId) -> String {
    match id {
        GatewayId::Gateway { key } => format!("gateway/{}/{}", key.namespace, key.name),
        GatewayId::Sidecar { server } => format!("sidecar/{}/{}", server.namespace, server.name),
    }
}

/// Parse the `{gateway-id}` path segments produced by [`id_path`].
pub fn parse_id_path(s: &str) -> Option<GatewayId> {
    let mut parts = s.split('/');
    let (kind, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || name.is_empty() {
        return None;
    }
    let key = ObjectKey::new(ns, name);
    match kind {
        "gateway" => Some(GatewayId::Gateway { key }),
        "sidecar" => Some(GatewayId::Sidecar { server: key }),
        _ => None,
    }
}

/// Path of the snapshot stream for a gateway: `/v1/snapshots/{gateway-id}`.
pub fn stream_path(id: &GatewayId) -> String {
    format!("/v1/snapshots/{}", id_path(id))
}

/// Path of the status report endpoint for a gateway: `/v1/snapshots/{gateway-id}/status`.
pub fn status_path(id: &GatewayId) -> String {
    format!("/v1/snapshots/{}/status", id_path(id))
}

/// Name of the ServiceAccount (in the gateway's, or the workload McpServer's, namespace) the
/// operator creates for a gateway deployment; only its tokens may fetch that gateway's snapshots.
pub fn service_account_name(id: &GatewayId) -> String {
    match id {
        GatewayId::Gateway { key } => format!("{}-gatehouse", key.name),
        GatewayId::Sidecar { server } => format!("{}-gatehouse", server.name),
    }
}

/// Per-user consent grants in cluster mode: the Secrets a gateway writes and the operator
/// turns into that gateway's RBAC. One Secret per (CredentialProvider, user), in the provider's
/// namespace, named [`GRANT_NAME_PREFIX`] + 64 hex digits, of type [`GRANT_SECRET_TYPE`],
/// labelled with [`GRANT_PROVIDER_LABEL`] (the provider's name) and [`GRANT_GATEWAY_LABEL`]
/// (the writing deployment, informational), holding only the sealed blob under
/// [`GRANT_DATA_KEY`].
pub mod grants {
    /// The Secret `type` of grant Secrets. Immutable once created, so a gateway cannot turn an
    /// existing Secret of another type (say, a ServiceAccount token) into a "grant".
    pub const GRANT_SECRET_TYPE: &str = "gatehouse.dev/sealed-grant";
    /// Name prefix of grant Secrets.
    pub const GRANT_NAME_PREFIX: &str = "gatehouse-grant-";
    /// Label: the name of the CredentialProvider (same namespace) the grant is for.
    pub const GRANT_PROVIDER_LABEL: &str = "gatehouse.dev/credential-provider";
    /// Label: the gateway deployment that wrote the grant (`gateway.NS.NAME` /
    /// `sidecar.NS.SERVER`, or a digest when that is too long for a label value).
    pub const GRANT_GATEWAY_LABEL: &str = "gatehouse.dev/written-by";
    /// The data key holding the sealed blob.
    pub const GRANT_DATA_KEY: &str = "grant";

    /// Whether `name` is a grant Secret's name: the prefix and exactly 64 lowercase hex digits.
    pub fn is_grant_name(name: &str) -> bool {
        name.strip_prefix(GRANT_NAME_PREFIX).is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_names_are_the_prefix_and_a_sha256() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(grants::is_grant_name(&format!("gatehouse-grant-{hex}")));
        assert!(!grants::is_grant_name(&format!("gatehouse-grant-{hex}0")));
        assert!(!grants::is_grant_name(&format!(
            "gatehouse-grant-{}",
            hex.to_uppercase()
        )));
        assert!(!grants::is_grant_name("gatehouse-grant-"));
        assert!(!grants::is_grant_name(&format!("other-{hex}")));
    }

    #[test]
    fn id_paths_round_trip() {
        for id in [
            GatewayId::Gateway {
                key: ObjectKey::new("tools", "gw"),
            },
            GatewayId::Sidecar {
                server: ObjectKey::new("tools", "pg"),
            },
        ] {
            assert_eq!(parse_id_path(&id_path(&id)), Some(id.clone()));
        }
        assert_eq!(parse_id_path("gateway/a"), None);
        assert_eq!(parse_id_path("gateway/a/b/c"), None);
        assert_eq!(parse_id_path("other/a/b"), None);
    }

    #[test]
    fn messages_are_tagged_json_lines() {
        let hb = StreamMessage::Heartbeat {
            version: Some("v1".into()),
        };
        assert_eq!(
            serde_json::to_string(&hb).unwrap(),
            r#"{"type":"heartbeat","version":"v1"}"#
        );
        let r: StatusReport =
            serde_json::from_str(r#"{"pod":"p","version":"v","accepted":false,"reason":"bad"}"#)
                .unwrap();
        assert_eq!(r.reason.as_deref(), Some("bad"));
    }
}
