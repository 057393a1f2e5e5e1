//! Where per-user grants (`oauth2AuthorizationCode` token sets) live between requests and
//! restarts. Stores hold only sealed blobs (AES-256-GCM, see [`super::sealed`]): they never see
//! a token in the clear, and a blob copied to another user's slot does not open.
//!
//! - [`FileTokenStore`] (local mode, `--token-store DIR`): one file per (provider, user digest),
//!   written atomically (temporary file, fsync, rename), mode 0600 in a 0700 directory.
//! - Cluster mode (next step): one Secret per (provider, user) in the provider's namespace,
//!   named `gatehouse-grant-<digest>`, holding the same sealed blob; the operator grants the
//!   gateway's Role `create`/`update`/`delete` on Secrets with that prefix.

use futures_util::future::BoxFuture;
use gatehouse_api::refs::ObjectKey;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The slot of one user's grant for one CredentialProvider.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GrantSlot {
    /// The CredentialProvider.
    pub provider: ObjectKey,
    /// The user: `<trust provider>\0<user id>`.
    pub user: String,
}

impl std::fmt::Debug for GrantSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // User ids are not secret, but slot names need not reveal them either.
        write!(f, "GrantSlot({}, {})", self.provider, &self.digest()[..12])
    }
}

impl GrantSlot {
    /// A stable, filesystem- and Secret-name-safe name: hex SHA-256 of provider and user.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"gatehouse-grant-v1\0");
        h.update(self.provider.to_string().as_bytes());
        h.update(b"\0");
        h.update(self.user.as_bytes());
        hex::encode(h.finalize())
    }

    /// Associated data binding a sealed grant to this slot.
    pub fn aad(&self) -> Vec<u8> {
        format!("grant\0{}\0{}", self.provider, self.user).into_bytes()
    }
}

/// Persistent storage of sealed grants. Errors are sentences without secrets.
pub trait TokenStore: Send + Sync + 'static {
    /// The sealed grant in `slot`, if any.
    fn load(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<Option<Vec<u8>>, String>>;
    /// Store (replace) the sealed grant in `slot`.
    fn save(&self, slot: &GrantSlot, sealed: Vec<u8>) -> BoxFuture<'static, Result<(), String>>;
    /// Forget `slot` (a revoked or expired grant). Deleting nothing is not an error.
    fn delete(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<(), String>>;
}

/// Grants in files under a directory.
pub struct FileTokenStore {
    dir: Option<PathBuf>,
}

impl FileTokenStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir: Some(dir) }
    }

    /// The default directory: `$XDG_STATE_HOME/gatehouse/tokens`, else
    /// `$HOME/.local/state/gatehouse/tokens`; without either, a store that refuses to save
    /// (consent then fails with a message naming `--token-store`).
    pub fn default_location() -> Self {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state"))
            });
        Self {
            dir: base.map(|b| b.join("gatehouse/tokens")),
        }
    }

    fn path(&self, slot: &GrantSlot) -> Result<PathBuf, String> {
        let dir = self.dir.as_ref().ok_or_else(|| {
            "no token store: run the gateway with --token-store DIR (or set HOME)".to_string()
        })?;
        Ok(dir.join(format!("{}.grant", slot.digest())))
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> BoxFuture<'static, Result<T, String>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| format!("token store task failed: {e}"))?
    })
}

impl TokenStore for FileTokenStore {
    fn load(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<Option<Vec<u8>>, String>> {
        let path = self.path(slot);
        blocking(move || {
            let Ok(path) = path else { return Ok(None) };
            match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("token store: reading {}: {e}", path.display())),
            }
        })
    }

    fn save(&self, slot: &GrantSlot, sealed: Vec<u8>) -> BoxFuture<'static, Result<(), String>> {
        let path = self.path(slot);
        blocking(move || {
            use std::io::Write;
            let path = path?;
            let dir = path.parent().expect("a file in a directory");
            let err = |what: &str, e: std::io::Error| {
                format!("token store: {what} in {}: {e}", dir.display())
            };
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| err("creating the directory", e))?;
            let tmp = dir.join(format!(".{:016x}.tmp", rand::random::<u64>()));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let written = (|| {
                let mut f = opts.open(&tmp)?;
                f.write_all(&sealed)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(err("writing a grant", e));
            }
            Ok(())
        })
    }

    fn delete(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<(), String>> {
        let path = self.path(slot);
        blocking(move || {
            let Ok(path) = path else { return Ok(()) };
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("token store: deleting {}: {e}", path.display())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(user: &str) -> GrantSlot {
        GrantSlot {
            provider: ObjectKey::new("team-a", "saas"),
            user: format!("corp\0{user}"),
        }
    }

    #[tokio::test]
    async fn files_per_slot_are_written_atomically_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("tokens"));
        assert_eq!(store.load(&slot("alice")).await.unwrap(), None);
        store.save(&slot("alice"), b"one".to_vec()).await.unwrap();
        store.save(&slot("alice"), b"two".to_vec()).await.unwrap();
        store.save(&slot("bob"), b"bob".to_vec()).await.unwrap();
        assert_eq!(
            store.load(&slot("alice")).await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        let names: Vec<String> = std::fs::read_dir(dir.path().join("tokens"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
        assert!(names.iter().all(|n| !n.contains("alice")), "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = store.path(&slot("bob")).unwrap();
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete(&slot("alice")).await.unwrap();
        store.delete(&slot("alice")).await.unwrap();
        assert_eq!(store.load(&slot("alice")).await.unwrap(), None);
        assert!(store.load(&slot("bob")).await.unwrap().is_some());
        assert!(!format!("{:?}", slot("alice")).contains("alice"));
    }

    #[tokio::test]
    async fn a_store_without_a_directory_refuses_to_save() {
        let store = FileTokenStore { dir: None };
        let err = store.save(&slot("a"), vec![1]).await.unwrap_err();
        assert!(err.contains("--token-store"), "{err}");
        assert_eq!(store.load(&slot("a")).await.unwrap(), None);
    }
}
