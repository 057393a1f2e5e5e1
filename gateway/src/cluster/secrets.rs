//! The Secrets of the served configuration, read from the Kubernetes API: one watch per Secret
//! (a `metadata.name` field selector, which RBAC `resourceNames` permits for list and watch), so
//! a rotation reaches the gateway without a restart. Values live in `Zeroizing` buffers and are
//! never logged; only Secret names are.

use crate::state::{SecretData, SecretValues};
use futures_util::StreamExt;
use gatehouse_api::refs::SecretRef;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use zeroize::Zeroizing;

/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

/// The Secrets `refs` name, deduplicated.
pub fn keys_of(refs: &[SecretRef]) -> BTreeSet<SecretKey> {
    refs.iter()
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .collect()
}

/// What is known about one watched Secret.
enum Known {
    /// Not read yet; the last error, if reading failed.
    Pending(Option<String>),
    /// Read: it does not exist.
    Absent,
    /// Read: its values by key.
    Present(SecretData),
}

struct Watched {
    known: Known,
    task: AbortHandle,
}

type Table = Arc<Mutex<BTreeMap<SecretKey, Watched>>>;

/// Watches a set of Secrets by name and holds their latest values.
pub struct SecretStore {
    client: Client,
    watched: Table,
    /// Bumped on every change of what is known (a read, a rotation, a deletion).
    generation: watch::Sender<u64>,
}

impl SecretStore {
    /// A store reading through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            watched: Arc::default(),
            generation: watch::Sender::new(0),
        }
    }

    /// Notified on every change; the value is a generation counter.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Watch exactly `wanted`: start watches for new names, stop the others. Then wait up to
    /// `timeout` until each of `wanted` was read once; returns those that were not, with the
    /// reason.
    pub async fn watch_exactly(
        &self,
        wanted: &BTreeSet<SecretKey>,
        timeout: Duration,
    ) -> Vec<(SecretKey, String)> {
        let mut changed = self.generation.subscribe();
        {
            let mut table = self.watched.lock().expect("secret table lock");
            table.retain(|key, w| {
                let keep = wanted.contains(key);
                if !keep {
                    w.task.abort();
                    tracing::info!(secret = %format!("{}/{}", key.0, key.1), "stopped watching Secret");
                }
                keep
            });
            for key in wanted {
                if !table.contains_key(key) {
                    tracing::info!(secret = %format!("{}/{}", key.0, key.1), "watching Secret");
                    let task = tokio::spawn(watch_one(
                        self.client.clone(),
                        key.clone(),
                        self.watched.clone(),
                        self.generation.clone(),
                    ));
                    table.insert(
                        key.clone(),
                        Watched {
                            known: Known::Pending(None),
                            task: task.abort_handle(),
                        },
                    );
                }
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self.pending(wanted);
            if pending.is_empty() {
                return pending;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return pending;
            }
        }
    }

    /// Which of `keys` have not been read yet, with the reason.
    fn pending(&self, keys: &BTreeSet<SecretKey>) -> Vec<(SecretKey, String)> {
        let table = self.watched.lock().expect("secret table lock");
        keys.iter()
            .filter_map(|k| {
                let reason = match table.get(k).map(|w| &w.known) {
                    Some(Known::Absent | Known::Present(_)) => return None,
                    Some(Known::Pending(Some(e))) => {
                        format!("Secret {}/{} could not be read: {e}", k.0, k.1)
                    }
                    Some(Known::Pending(None)) | None => {
                        format!("Secret {}/{} could not be read in time", k.0, k.1)
                    }
                };
                Some((k.clone(), reason))
            })
            .collect()
    }

    /// The values of the Secrets `refs` name that exist (and only those).
    pub fn values_for(&self, refs: &[SecretRef]) -> SecretValues {
        let wanted = keys_of(refs);
        let table = self.watched.lock().expect("secret table lock");
        let by_name = wanted
            .into_iter()
            .filter_map(|k| match table.get(&k).map(|w| &w.known) {
                Some(Known::Present(data)) => Some((k, data.clone())),
                _ => None,
            })
            .collect();
        SecretValues::from_secrets(by_name)
    }
}

impl Drop for SecretStore {
    fn drop(&mut self) {
        if let Ok(table) = self.watched.lock() {
            for w in table.values() {
                w.task.abort();
            }
        }
    }
}

/// Move a Secret's values into zeroizing buffers (no copy of the plaintext stays behind).
fn data_of(secret: Secret) -> SecretData {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v.0)))
        .collect()
}

/// Keep `key`'s entry in `table` up to date until aborted.
async fn watch_one(client: Client, key: SecretKey, table: Table, generation: watch::Sender<u64>) {
    let name = format!("{}/{}", key.0, key.1);
    let api: Api<Secret> = Api::namespaced(client, &key.0);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.1));
    let mut events = watcher(api, config).default_backoff().boxed();
    // During a (re)list: what the list said so far.
    let mut listing: Option<Option<SecretData>> = None;
    while let Some(event) = events.next().await {
        let now = match event {
            Ok(Event::Init) => {
                listing = Some(None);
                continue;
            }
            Ok(Event::InitApply(s)) => {
                if let Some(l) = listing.as_mut() {
                    *l = Some(data_of(s));
                }
                continue;
            }
            Ok(Event::InitDone) => match listing.take().flatten() {
                Some(data) => Known::Present(data),
                None => Known::Absent,
            },
            Ok(Event::Apply(s)) => Known::Present(data_of(s)),
            Ok(Event::Delete(_)) => Known::Absent,
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "reading Secret failed; retrying");
                let mut t = table.lock().expect("secret table lock");
                if let Some(w) = t.get_mut(&key)
                    && let Known::Pending(last) = &mut w.known
                {
                    *last = Some(e.to_string());
                }
                continue;
            }
        };
        let mut t = table.lock().expect("secret table lock");
        let Some(w) = t.get_mut(&key) else { return };
        let same = match (&w.known, &now) {
            (Known::Absent, Known::Absent) => true,
            (Known::Present(a), Known::Present(b)) => a == b,
            _ => false,
        };
        if same {
            continue;
        }
        match &now {
            Known::Present(data) => {
                tracing::info!(secret = %name, keys = data.len(), "Secret read")
            }
            _ => tracing::warn!(secret = %name, "Secret does not exist"),
        }
        w.known = now;
        drop(t);
        generation.send_modify(|g| *g += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_kube_double::{KubeDouble, Options};
    use kube::api::{DeleteParams, PostParams};

    fn mk_secret(name: &str, token: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"token": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, token)},
        }))
        .expect("a Secret")
    }

    fn mk_ref(name: &str) -> SecretRef {
        SecretRef::key("default", name, "token")
    }

    async fn wait_for(store: &SecretStore, r: &SecretRef, want: Option<&[u8]>) {
        let mut changed = store.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.values_for(std::slice::from_ref(r)).key(r) != want {
            tokio::time::timeout_at(deadline, changed.changed())
                .await
                .expect("the change arrives")
                .expect("store alive");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_watches_and_forgets_secrets_by_name() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let double = KubeDouble::start(Options::default()).await.expect("double");
        let kc = kube::config::Kubeconfig::read_from(double.kubeconfig_path()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        let api: Api<Secret> = Api::namespaced(client.clone(), "default");
        api.create(&PostParams::default(), &mk_secret("upstream", "one"))
            .await
            .unwrap();
        api.create(&PostParams::default(), &mk_secret("unrelated", "nope"))
            .await
            .unwrap();

        let store = SecretStore::new(client);
        let (upstream, missing) = (mk_ref("upstream"), mk_ref("missing"));
        let wanted = keys_of(&[upstream.clone(), missing.clone()]);
        let unread = store.watch_exactly(&wanted, Duration::from_secs(10)).await;
        assert!(unread.is_empty(), "{unread:?}");
        let values = store.values_for(&[upstream.clone(), missing.clone(), mk_ref("unrelated")]);
        assert_eq!(values.key(&upstream), Some(&b"one"[..]));
        assert_eq!(
            values.key(&missing),
            None,
            "an absent Secret is read as absent"
        );
        assert_eq!(
            values.key(&mk_ref("unrelated")),
            None,
            "only watched Secrets are held"
        );

        // A rotation and a creation arrive through the watches.
        let before = store.generation();
        api.replace(
            "upstream",
            &PostParams::default(),
            &mk_secret("upstream", "two"),
        )
        .await
        .unwrap();
        wait_for(&store, &upstream, Some(b"two")).await;
        assert!(store.generation() > before);
        api.create(&PostParams::default(), &mk_secret("missing", "late"))
            .await
            .unwrap();
        wait_for(&store, &missing, Some(b"late")).await;

        // Deletion is seen; unwatched Secrets are forgotten.
        api.delete("upstream", &DeleteParams::default())
            .await
            .unwrap();
        wait_for(&store, &upstream, None).await;
        store
            .watch_exactly(&keys_of(std::slice::from_ref(&missing)), Duration::ZERO)
            .await;
        assert_eq!(store.watched.lock().unwrap().len(), 1);
    }
}
