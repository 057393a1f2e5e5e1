//! Where per-user grants (`oauth2AuthorizationCode` token sets) live between requests and
//! restarts. Stores hold only sealed blobs (AES-256-GCM, see [`super::sealed`]): they never see
//! a token in the clear, and a blob copied to another user's slot does not open.
//!
//! - [`FileTokenStore`] (local mode, `--token-store DIR`): one file per (provider, user digest),
//!   written atomically (temporary file, fsync, rename), mode 0600 in a 0700 directory.
//! - [`SecretTokenStore`] (cluster mode): one Secret per (provider, user) in the provider's
//!   namespace, named `gatehouse-grant-<slot digest>`, of type `gatehouse.dev/sealed-grant`,
//!   holding the same sealed blob (see `gatehouse_api::push::grants`). Every replica — and every
//!   gateway using the same CredentialProvider — reads the same grant.
//!
//! RBAC for grant Secrets (Kubernetes cannot restrict `create` by name, nor any verb by name
//! prefix): the gateway's Role may `create` Secrets in the namespaces of its
//! `oauth2AuthorizationCode` providers — which reads nothing — and `get`/`update`/`delete`
//! exactly the existing grant Secrets of those providers, by name. The operator lists those
//! names from its Secret watch, counting only Secrets whose (immutable) `type` is the grant
//! type and whose name is a grant name. Until the operator has caught up with a Secret a
//! gateway just created, that gateway cannot read it back; it does not need to: the grant
//! stays in its memory.

use futures_util::future::BoxFuture;
use gatehouse_api::config::GatewayId;
use gatehouse_api::push::grants::{
    GRANT_DATA_KEY, GRANT_GATEWAY_LABEL, GRANT_NAME_PREFIX, GRANT_PROVIDER_LABEL, GRANT_SECRET_TYPE,
};
use gatehouse_api::refs::ObjectKey;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
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

// === impl SecretTokenStore ===

/// Grants in Secrets, one per slot, in the provider's namespace.
pub struct SecretTokenStore {
    client: kube::Client,
    /// Value of the `written-by` label.
    written_by: String,
}

/// Longest label value Kubernetes accepts.
const MAX_LABEL_VALUE: usize = 63;

/// The `written-by` label value for a deployment: `gateway.NS.NAME` / `sidecar.NS.SERVER`, or
/// `sha256-<hex prefix>` of that when it is too long for a label value.
pub fn written_by(id: &GatewayId) -> String {
    let (kind, key) = match id {
        GatewayId::Gateway { key } => ("gateway", key),
        GatewayId::Sidecar { server } => ("sidecar", server),
    };
    let full = format!("{kind}.{}.{}", key.namespace, key.name);
    if full.len() <= MAX_LABEL_VALUE {
        full
    } else {
        format!(
            "sha256-{}",
            &hex::encode(Sha256::digest(full.as_bytes()))[..40]
        )
    }
}

/// The name of `slot`'s grant Secret: the prefix and the slot's 64-hex digest (80 characters,
/// a valid Secret name).
pub fn grant_secret_name(slot: &GrantSlot) -> String {
    format!("{GRANT_NAME_PREFIX}{}", slot.digest())
}

/// The Secret holding `sealed` for `slot`: only the sealed blob, never a token in the clear.
pub fn grant_secret(slot: &GrantSlot, sealed: &[u8], written_by: &str) -> Result<Secret, String> {
    let provider = &slot.provider;
    if provider.name.len() > MAX_LABEL_VALUE {
        return Err(format!(
            "token store: CredentialProvider {provider}: names longer than {MAX_LABEL_VALUE} \
             characters cannot label grant Secrets; shorten the name or run the gateway with \
             --token-store DIR"
        ));
    }
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": grant_secret_name(slot),
            "namespace": provider.namespace,
            "labels": {
                "app.kubernetes.io/name": "gatehouse",
                "app.kubernetes.io/component": "consent-grant",
                GRANT_PROVIDER_LABEL: provider.name,
                GRANT_GATEWAY_LABEL: written_by,
            },
        },
        "type": GRANT_SECRET_TYPE,
        "data": {
            GRANT_DATA_KEY: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sealed),
        },
    });
    Ok(serde_json::from_value(secret).expect("a Secret"))
}

impl SecretTokenStore {
    /// A store writing through `client`, for the deployment `id`.
    pub fn new(client: kube::Client, id: &GatewayId) -> Self {
        Self {
            client,
            written_by: written_by(id),
        }
    }

    fn api(&self, slot: &GrantSlot) -> kube::Api<Secret> {
        kube::Api::namespaced(self.client.clone(), &slot.provider.namespace)
    }
}

/// A sentence for a failed API call on a grant Secret (the API's messages carry no values).
fn api_error(what: &str, ns: &str, name: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "token store: {what} grant Secret {ns}/{name} is not permitted for this gateway \
             ({}); the operator grants access to grant Secrets of this gateway's \
             oauth2AuthorizationCode providers once it sees them — retry in a moment",
            s.message
        ),
        kube::Error::Api(s) => format!(
            "token store: {what} grant Secret {ns}/{name} failed: {} (HTTP {})",
            s.message, s.code
        ),
        _ => format!("token store: {what} grant Secret {ns}/{name} failed: {e}"),
    }
}

impl TokenStore for SecretTokenStore {
    fn load(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<Option<Vec<u8>>, String>> {
        let api = self.api(slot);
        let (ns, name) = (slot.provider.namespace.clone(), grant_secret_name(slot));
        Box::pin(async move {
            let secret = match api.get(&name).await {
                Ok(s) => s,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                // RBAC lists only existing grant Secrets: asking for one that does not exist
                // (yet, or not yet seen by the operator) is refused before existence is
                // checked. Either way there is no grant this gateway can use.
                Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
                Err(e) => return Err(api_error("reading", &ns, &name, &e)),
            };
            if secret.type_.as_deref() != Some(GRANT_SECRET_TYPE) {
                return Err(format!(
                    "token store: Secret {ns}/{name} is not of type {GRANT_SECRET_TYPE}; \
                     not using it"
                ));
            }
            Ok(secret
                .data
                .and_then(|mut d| d.remove(GRANT_DATA_KEY))
                .map(|b| b.0))
        })
    }

    fn save(&self, slot: &GrantSlot, sealed: Vec<u8>) -> BoxFuture<'static, Result<(), String>> {
        let api = self.api(slot);
        let (ns, name) = (slot.provider.namespace.clone(), grant_secret_name(slot));
        let secret = grant_secret(slot, &sealed, &self.written_by);
        Box::pin(async move {
            let secret = secret?;
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(api_error("creating", &ns, &name, &e)),
            }
            // It exists (an earlier grant, or another replica's): replace it. No
            // resourceVersion: the newest grant wins, which is what the user just approved.
            api.replace(&name, &PostParams::default(), &secret)
                .await
                .map(|_| ())
                .map_err(|e| api_error("updating", &ns, &name, &e))
        })
    }

    fn delete(&self, slot: &GrantSlot) -> BoxFuture<'static, Result<(), String>> {
        let api = self.api(slot);
        let (ns, name) = (slot.provider.namespace.clone(), grant_secret_name(slot));
        Box::pin(async move {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(api_error("deleting", &ns, &name, &e)),
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

#[cfg(test)]
mod secret_tests {
    use super::*;
    use gatehouse_kube_double::{KubeDouble, Options};

    fn slot(user: &str) -> GrantSlot {
        GrantSlot {
            provider: ObjectKey::new("team-a", "saas"),
            user: format!("corp\0{user}"),
        }
    }

    fn gateway() -> GatewayId {
        GatewayId::Gateway {
            key: ObjectKey::new("gatehouse-system", "shared"),
        }
    }

    #[test]
    fn a_grant_secret_holds_the_sealed_blob_only_and_is_named_by_digest() {
        let sealed = b"\x01sealed-bytes".to_vec();
        let s = grant_secret(&slot("alice@example.com"), &sealed, &written_by(&gateway())).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        let name = v["metadata"]["name"].as_str().unwrap();
        assert!(gatehouse_api::push::grants::is_grant_name(name), "{name}");
        assert!(name.len() <= 253);
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "team-a", "labels": {
                    "app.kubernetes.io/name": "gatehouse",
                    "app.kubernetes.io/component": "consent-grant",
                    "gatehouse.dev/credential-provider": "saas",
                    "gatehouse.dev/written-by": "gateway.gatehouse-system.shared",
                }},
                "type": "gatehouse.dev/sealed-grant",
                "data": {"grant": "AXNlYWxlZC1ieXRlcw=="},
            })
        );
        assert!(
            !v.to_string().contains("alice"),
            "no user id in the Secret: {v}"
        );
        assert_ne!(
            grant_secret_name(&slot("alice")),
            grant_secret_name(&slot("bob"))
        );

        let long = GatewayId::Gateway {
            key: ObjectKey::new("ns", "g".repeat(80)),
        };
        let label = written_by(&long);
        assert!(label.len() <= 63 && label.starts_with("sha256-"), "{label}");
        let mut too_long = slot("a");
        too_long.provider.name = "p".repeat(64);
        let e = grant_secret(&too_long, b"x", "w").unwrap_err();
        assert!(e.contains("--token-store"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grants_are_created_replaced_read_and_deleted_as_secrets() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let double = KubeDouble::start(Options::default()).await.expect("double");
        let kc = kube::config::Kubeconfig::read_from(double.kubeconfig_path()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let store = SecretTokenStore::new(client.clone(), &gateway());
        // No namespace yet: a sentence naming the Secret, not a struct dump.
        let e = store.save(&slot("alice"), b"x".to_vec()).await.unwrap_err();
        assert!(
            e.starts_with("token store: creating grant Secret team-a/gatehouse-grant-")
                && e.contains("not found (HTTP 404)"),
            "{e}"
        );
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (alice, bob) = (slot("alice"), slot("bob"));

        assert_eq!(store.load(&alice).await.unwrap(), None);
        store.save(&alice, b"one".to_vec()).await.unwrap();
        // AlreadyExists: the second save replaces it.
        store.save(&alice, b"two".to_vec()).await.unwrap();
        store.save(&bob, b"bob".to_vec()).await.unwrap();
        assert_eq!(
            store.load(&alice).await.unwrap().as_deref(),
            Some(&b"two"[..])
        );

        // A second replica (another store on another client) reads the same grant.
        let replica = SecretTokenStore::new(client.clone(), &gateway());
        assert_eq!(
            replica.load(&bob).await.unwrap().as_deref(),
            Some(&b"bob"[..])
        );

        let api: kube::Api<Secret> = kube::Api::namespaced(client, "team-a");
        let stored = api.get(&grant_secret_name(&alice)).await.unwrap();
        assert_eq!(stored.type_.as_deref(), Some(GRANT_SECRET_TYPE));

        store.delete(&alice).await.unwrap();
        store.delete(&alice).await.unwrap();
        assert_eq!(store.load(&alice).await.unwrap(), None);
        assert!(store.load(&bob).await.unwrap().is_some());

        // A Secret of another type under a grant's name is not used as a grant.
        let mut foreign = grant_secret(&alice, b"x", "w").unwrap();
        foreign.type_ = Some("Opaque".into());
        api.create(&PostParams::default(), &foreign).await.unwrap();
        let e = store.load(&alice).await.unwrap_err();
        assert!(e.contains("not of type gatehouse.dev/sealed-grant"), "{e}");
    }
}
