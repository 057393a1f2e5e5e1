//! Local-mode configuration: load the manifest directory, compile it with the one compiler, and
//! apply the result atomically; then watch the directory (polling file metadata, hashing contents
//! only when it moved) and do it again on every change. A configuration with problems is logged
//! and rejected — the last good one keeps serving — and counted in
//! `gatehouse_config_reload_failures`.

use crate::cluster::tls::{ListenerMode, certified_key};
use crate::local;
use crate::state::{Gateway, SecretValues, Snapshot};
use gatehouse_api::config::{GatewayConfig, GatewayId};
use gatehouse_api::manifest::LocalSecret;
use gatehouse_api::refs::ObjectKey;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What to load and which gateway to serve.
#[derive(Clone)]
pub struct Source {
    /// Manifest directory (or single file).
    pub dir: PathBuf,
    /// `--gateway`, when several McpGateways are defined.
    pub gateway: Option<ObjectKey>,
}

/// The manifest files to watch: the directory's, or the single file.
fn watched_paths(dir: &Path) -> Option<Vec<PathBuf>> {
    if dir.is_file() {
        Some(vec![dir.to_path_buf()])
    } else {
        local::manifest_paths(dir).ok()
    }
}

/// A content digest of every manifest file (names and bytes).
fn digest(paths: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in paths {
        h.update(p.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(p).unwrap_or_default());
        h.update([0]);
    }
    h.finalize().into()
}

/// What `stat` says about one manifest file: a change of content shows up here first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: Option<SystemTime>,
    /// `(ctime seconds, nanoseconds, inode, device)`: ctime moves on every write and rename,
    /// also when a tool restores the mtime; a replaced file has a new inode.
    #[cfg(unix)]
    unix: (i64, i64, u64, u64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Some(Stamp {
        len: m.len(),
        mtime: m.modified().ok(),
        #[cfg(unix)]
        unix: (m.ctime(), m.ctime_nsec(), m.ino(), m.dev()),
    })
}

/// A file modified this close to (or after) the moment it was read may have changed again
/// without its timestamps moving (coarse or 1-second mtimes): keep hashing until every file's
/// mtime is safely older than the last read ("racily clean", as git calls it).
const RACY_WINDOW: Duration = Duration::from_secs(2);
/// Hash everything at least this often anyway (clock steps, filesystems with odd timestamps).
const REHASH_EVERY: Duration = Duration::from_secs(30);

/// Change detection for the manifest watcher: each poll lists the files and `stat`s them; the
/// contents are read and hashed only when a name or a stamp changed, while a file is racily
/// recent, and every [`REHASH_EVERY`]. A change is reported only when the content digest moved,
/// so a `touch` does not reload.
struct Detector {
    dir: PathBuf,
    /// The file list and stamps at the last poll (`None`: the directory could not be listed).
    stamps: Option<Vec<(PathBuf, Option<Stamp>)>>,
    digest: Option<[u8; 32]>,
    /// Wall-clock time just before the last hash started (compared with file mtimes).
    hashed_at: SystemTime,
    /// When the last hash ran (for [`REHASH_EVERY`]).
    hashed: Instant,
    /// How many times the contents were hashed (for tests and curiosity).
    hashes: u64,
}

impl Detector {
    fn new(dir: PathBuf) -> Self {
        let mut d = Self {
            dir,
            stamps: None,
            digest: None,
            hashed_at: SystemTime::UNIX_EPOCH,
            hashed: Instant::now(),
            hashes: 0,
        };
        d.poll();
        d
    }

    fn scan(&self) -> Option<Vec<(PathBuf, Option<Stamp>)>> {
        let paths = watched_paths(&self.dir)?;
        Some(
            paths
                .into_iter()
                .map(|p| {
                    let s = stamp(&p);
                    (p, s)
                })
                .collect(),
        )
    }

    /// Whether a file's mtime is too recent to trust an unchanged stamp.
    fn racy(&self) -> bool {
        let Some(stamps) = &self.stamps else {
            return false;
        };
        stamps
            .iter()
            .any(|(_, s)| match s.as_ref().and_then(|s| s.mtime) {
                Some(m) => m + RACY_WINDOW >= self.hashed_at,
                None => true,
            })
    }

    /// Look once; `true` when the manifests' content changed since the last look.
    fn poll(&mut self) -> bool {
        let stamps = self.scan();
        let must_hash = self.hashes == 0
            || stamps != self.stamps
            || self.racy()
            || self.hashed.elapsed() >= REHASH_EVERY;
        self.stamps = stamps;
        if !must_hash {
            return false;
        }
        self.hashed_at = SystemTime::now();
        self.hashed = Instant::now();
        self.hashes += 1;
        let digest = self.stamps.as_ref().map(|s| {
            let paths: Vec<PathBuf> = s.iter().map(|(p, _)| p.clone()).collect();
            digest(&paths)
        });
        let changed = digest != self.digest;
        self.digest = digest;
        changed && self.hashes > 1
    }
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
        let cert = listener_certificate(gw, &config, &secrets)?;
        Snapshot::build(config, &secrets, &gw.process).map(|s| (s, cert))
    });
    match outcome {
        Ok((snapshot, cert)) => {
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
            if let (Some(key), Some(ListenerMode::TlsFromSnapshot(served))) =
                (cert, gw.process.listener.get())
            {
                served.install(key);
            }
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

/// The listener certificate a configuration needs, checked against how the listener was
/// started: from the manifests' TLS Secret (`spec.listener.tls`, rotated on reload), from
/// `--tls-cert` files (the Secret is not used), or plain — which a configuration asking for
/// TLS is never served as. Before the listener is started nothing is checked (`run` decides
/// the mode from the first configuration).
fn listener_certificate(
    gw: &Gateway,
    config: &GatewayConfig,
    secrets: &[LocalSecret],
) -> Result<Option<Arc<CertifiedKey>>, Vec<String>> {
    match (gw.process.listener.get(), &config.listener.tls) {
        (Some(ListenerMode::TlsFromSnapshot(_)), Some(r)) => {
            certified_key(r, &SecretValues::select(config, secrets))
                .map(Some)
                .map_err(|e| vec![e])
        }
        (Some(ListenerMode::TlsFromSnapshot(_)), None) => Err(vec![
            "spec.listener.tls was removed: the listener keeps serving TLS until the gateway is restarted".into(),
        ]),
        (Some(ListenerMode::Plain), Some(r)) => Err(vec![format!(
            "spec.listener.tls ({r}) was added: restart the gateway to serve TLS (a plain listener never serves a configuration that asks for TLS)"
        )]),
        _ => Ok(None),
    }
}

/// Watch `source` forever, re-applying on every content change.
pub async fn watch(gw: Arc<Gateway>, source: Source, every: Duration) {
    let dir = source.dir.clone();
    let Ok(mut detector) = tokio::task::spawn_blocking(move || Detector::new(dir)).await else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok((d, changed)) = tokio::task::spawn_blocking(move || {
            let changed = detector.poll();
            (detector, changed)
        })
        .await
        else {
            return;
        };
        detector = d;
        if !changed {
            continue;
        }
        tracing::info!(dir = %source.dir.display(), "manifests changed; reloading");
        let started = Instant::now();
        let (gw2, src) = (gw.clone(), source.clone());
        let applied = tokio::task::spawn_blocking(move || apply(&gw2, &src, true)).await;
        match applied {
            Ok(ok) => tracing::info!(
                applied = ok,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "reload finished"
            ),
            Err(_) => {
                gw.metrics.reload_failures.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn old(path: &Path) {
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = d.path().join(name);
            fs::write(&p, body).unwrap();
            old(&p);
        }
        d
    }

    #[test]
    fn an_unchanged_directory_is_only_stat_ed() {
        let d = dir_with(&[("a.yaml", "kind: A\n"), ("b.yaml", "kind: B\n")]);
        let mut det = Detector::new(d.path().to_path_buf());
        assert_eq!(det.hashes, 1);
        for _ in 0..5 {
            assert!(!det.poll());
        }
        assert_eq!(det.hashes, 1, "nothing changed: no file was read");
    }

    #[test]
    fn edits_additions_and_removals_are_detected() {
        let d = dir_with(&[("a.yaml", "kind: A\n")]);
        let mut det = Detector::new(d.path().to_path_buf());
        fs::write(d.path().join("a.yaml"), "kind: AA\n").unwrap();
        assert!(det.poll(), "an edit");
        assert!(!det.poll());
        fs::write(d.path().join("b.yaml"), "kind: B\n").unwrap();
        assert!(det.poll(), "a new file");
        fs::remove_file(d.path().join("a.yaml")).unwrap();
        assert!(det.poll(), "a removed file");
        fs::write(d.path().join("notes.txt"), "not a manifest").unwrap();
        assert!(!det.poll(), "other files are not manifests");
    }

    #[test]
    fn a_touch_rehashes_but_does_not_reload() {
        let d = dir_with(&[("a.yaml", "kind: A\n")]);
        let mut det = Detector::new(d.path().to_path_buf());
        let f = fs::File::options()
            .write(true)
            .open(d.path().join("a.yaml"))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(1800))
            .unwrap();
        assert!(!det.poll());
        assert_eq!(det.hashes, 2, "the stamp moved, so the content was read");
    }

    #[test]
    fn a_change_the_stamps_do_not_show_is_still_found() {
        // Same size, and (as on a filesystem with coarse timestamps) the same stamps: while
        // the file is racily recent every poll reads it.
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.yaml");
        fs::write(&a, "kind: A\n").unwrap();
        let mut det = Detector::new(d.path().to_path_buf());
        fs::write(&a, "kind: B\n").unwrap();
        det.stamps = det.scan(); // pretend the stamps did not move
        assert!(det.poll(), "racily recent: hashed anyway");

        // Once the file is old the stamps are trusted — until the periodic re-hash.
        old(&a);
        assert!(!det.poll());
        let hashes = det.hashes;
        assert!(!det.poll());
        assert_eq!(det.hashes, hashes);
        fs::write(&a, "kind: C\n").unwrap();
        old(&a);
        det.stamps = det.scan();
        assert!(!det.poll(), "stamps unchanged and old: not read yet");
        det.hashed = Instant::now().checked_sub(REHASH_EVERY).unwrap();
        assert!(det.poll(), "the periodic re-hash finds it");
    }
}
