//! Local-mode configuration: load the manifest directory, compile it with the one compiler, and
//! apply the result atomically; then watch the directory (polling contents) and do it again on
//! every change. A configuration with problems is logged and rejected — the last good one keeps
//! serving — and counted in `gatehouse_config_reload_failures`.

use crate::local;
use crate::state::{Gateway, Snapshot};
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::manifest::LocalSecret;
use gatehouse_api::refs::ObjectKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to load and which gateway to serve.
#[derive(Clone)]
pub struct Source {
    /// Manifest directory (or single file).
    pub dir: PathBuf,
    /// `--gateway`, when several McpGateways are defined.
    pub gateway: Option<ObjectKey>,
}

/// A content digest of every manifest file (names and bytes).
fn digest(dir: &Path) -> Option<[u8; 32]> {
    let paths = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        local::manifest_paths(dir).ok()?
    };
    let mut h = Sha256::new();
    for p in paths {
        h.update(p.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&p).unwrap_or_default());
        h.update([0]);
    }
    Some(h.finalize().into())
}

/// Load and compile; `Ok` carries the config, the secrets and problems that did not stop it.
fn load(source: &Source) -> Result<(GatewayConfig, Vec<LocalSecret>, Vec<String>), Vec<String>> {
    let (loaded, _) = local::load_dir(&source.dir).map_err(|e| vec![format!("{e:#}")])?;
    let compiled = gatehouse_api::compile(&loaded.resources);
    let mut problems: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    for (obj, cond) in compiled.problems() {
        problems.push(format!(
            "{obj}: {}={} ({}): {}",
            cond.type_, cond.status, cond.reason, cond.message
        ));
    }
    let gateways: Vec<&GatewayConfig> = compiled
        .gateways
        .values()
        .filter(|g| match (&g.gateway, &source.gateway) {
            (GatewayId::Gateway { key }, Some(want)) => key == want,
            (GatewayId::Gateway { .. }, None) => true,
            (GatewayId::Sidecar { .. }, _) => false,
        })
        .collect();
    match gateways.as_slice() {
        [one] => Ok(((*one).clone(), loaded.secrets, problems)),
        [] => {
            problems.push(match &source.gateway {
                Some(k) => format!("McpGateway {k} is not defined or not ready"),
                None => "no usable McpGateway is defined".to_string(),
            });
            Err(problems)
        }
        many => {
            let names: Vec<String> = many.iter().map(|g| g.gateway.to_string()).collect();
            problems.push(format!(
                "several McpGateways are defined ({}); choose one with --gateway NAMESPACE/NAME",
                names.join(", ")
            ));
            Err(problems)
        }
    }
}

/// Load and apply once. At startup (`strict == false`) a configuration with problems is served
/// if it compiles to a snapshot; on reload any problem rejects it. Returns whether it applied.
pub fn apply(gw: &Gateway, source: &Source, strict: bool) -> bool {
    let outcome = load(source).and_then(|(config, secrets, problems)| {
        if strict && !problems.is_empty() {
            return Err(problems);
        }
        for p in &problems {
            tracing::warn!(problem = %p, "configuration problem (serving what compiled)");
        }
        Snapshot::build(config, &secrets, &gw.process)
    });
    match outcome {
        Ok(snapshot) => {
            let version = snapshot.config.version.clone();
            tracing::info!(
                %version,
                gateway = %snapshot.config.gateway,
                servers = snapshot.servers.len(),
                policies = snapshot.config.policies.len(),
                session_key = %snapshot.session_keys.source,
                "configuration applied"
            );
            // Applied even when the version is unchanged: Secret values are not part of it.
            gw.apply(snapshot);
            true
        }
        Err(problems) => {
            gw.metrics.reload_failures.inc();
            for p in &problems {
                tracing::error!(problem = %p, "configuration rejected");
            }
            if gw.snapshot().is_some() {
                tracing::error!("keeping the last good configuration");
            }
            false
        }
    }
}

/// Watch `source` forever, re-applying on every content change.
pub async fn watch(gw: Arc<Gateway>, source: Source, every: Duration) {
    let mut last = {
        let dir = source.dir.clone();
        tokio::task::spawn_blocking(move || digest(&dir))
            .await
            .ok()
            .flatten()
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dir = source.dir.clone();
        let now = tokio::task::spawn_blocking(move || digest(&dir))
            .await
            .ok()
            .flatten();
        if now == last {
            continue;
        }
        last = now;
        tracing::info!(dir = %source.dir.display(), "manifests changed; reloading");
        let (gw2, src) = (gw.clone(), source.clone());
        let applied = tokio::task::spawn_blocking(move || apply(&gw2, &src, true)).await;
        if applied.is_err() {
            gw.metrics.reload_failures.inc();
        }
    }
}
