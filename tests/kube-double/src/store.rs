//! In-memory object storage: one map behind a mutex, a global resourceVersion counter, a bounded
//! event history for watches, a broadcast channel for live watchers, finalizers and the
//! owner-reference garbage collector (the only controller the double runs).

use crate::cel_rules::SkippedRule;
use crate::registry::Registry;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjKey {
    /// Builds a key.
    pub fn new(group: &str, plural: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// ADDED / MODIFIED / DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Change type.
    pub kind: EventType,
    /// Which object.
    pub key: ObjKey,
    /// The object after the change (for DELETED: the last state).
    pub object: Value,
    /// The object before the change (MODIFIED only), for selector transitions.
    pub old: Option<Value>,
}

/// Who a token belongs to (answered by TokenReview).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `status.user.username`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: String,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// `status.audiences` (empty: echo the requested audiences).
    pub audiences: Vec<String>,
}

/// The mutable state of the double.
#[derive(Debug)]
pub struct State {
    /// Served types.
    pub registry: Registry,
    objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Every event with `rv > floor` is still in `history`.
    floor: u64,
    tx: broadcast::Sender<Arc<Event>>,
    counter: u64,
    seed: u64,
    /// CEL rules the double could not evaluate.
    pub skipped_rules: Vec<SkippedRule>,
    /// Tokens registered for TokenReview.
    pub tokens: HashMap<String, UserInfo>,
}

/// RFC 3339 "now" with second precision, like the real server's timestamps.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl State {
    /// A fresh state with `default`, `kube-system`, `kube-public` namespaces.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut s = Self {
            registry: Registry::with_builtins(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            floor: 0,
            tx,
            counter: 0,
            seed,
            skipped_rules: Vec::new(),
            tokens: HashMap::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
                "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}});
            s.insert(ObjKey::new("", "namespaces", "", ns), obj);
        }
        s.floor = s.rv;
        s.history.clear();
        s
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// A new unique id.
    pub fn new_uid(&mut self) -> String {
        self.counter += 1;
        let c = self.counter;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (self.seed >> 32) as u32,
            (self.seed >> 16) as u16,
            (c >> 12) & 0xfff,
            c & 0xfff,
            c.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        )
    }

    /// Five random-looking characters for `generateName`.
    pub fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.counter += 1;
        let mut x = self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.seed;
        (0..5)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
                x /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    /// A counter value for allocations (cluster IPs).
    pub fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Reads an object.
    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one type, optionally in one namespace, starting after `after` (exclusive).
    pub fn list<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        let start = ObjKey::new(group, plural, namespace.unwrap_or(""), "");
        self.objects.range(start..).take_while(move |(k, _)| {
            k.group == group && k.plural == plural && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .contains_key(&ObjKey::new("", "namespaces", "", ns))
    }

    fn emit(&mut self, kind: EventType, key: ObjKey, object: Value, old: Option<Value>) {
        let ev = Arc::new(Event {
            rv: self.rv,
            kind,
            key,
            object,
            old,
        });
        self.history.push_back(ev.clone());
        self.trim_history();
        let _ = self.tx.send(ev);
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
    }

    /// Changes how many events are kept for watches resuming from a resourceVersion.
    pub fn set_history_limit(&mut self, n: usize) {
        self.history_limit = n.max(1);
        self.trim_history();
    }

    fn stamp(&mut self, obj: &mut Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    /// Stores a new object (metadata already completed by the caller), emitting ADDED.
    pub fn insert(&mut self, key: ObjKey, mut obj: Value) -> Value {
        if obj["metadata"]["uid"].as_str().is_none_or(str::is_empty) {
            obj["metadata"]["uid"] = json!(self.new_uid());
        }
        if obj["metadata"]["creationTimestamp"].as_str().is_none() {
            obj["metadata"]["creationTimestamp"] = json!(now());
        }
        self.stamp(&mut obj);
        self.objects.insert(key.clone(), obj.clone());
        self.emit(EventType::Added, key, obj.clone(), None);
        obj
    }

    /// Replaces a stored object, emitting MODIFIED.
    pub fn replace(&mut self, key: ObjKey, mut obj: Value) -> Value {
        self.stamp(&mut obj);
        let old = self.objects.insert(key.clone(), obj.clone());
        self.emit(EventType::Modified, key, obj.clone(), old);
        obj
    }

    /// Removes an object for good, emitting DELETED; runs type cleanup for CRDs and namespaces.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.stamp(&mut obj);
        self.emit(EventType::Deleted, key.clone(), obj.clone(), None);
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            let group = obj["spec"]["group"].as_str().unwrap_or("").to_string();
            let plural = obj["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let keys: Vec<ObjKey> = self
                .list(&group, &plural, None)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.remove(&k);
            }
            self.registry.unregister(&group, &plural);
        }
        Some(obj)
    }

    /// Deletes an object the way the API server does: immediately when it has no finalizers,
    /// otherwise by setting `deletionTimestamp`. `policy` is the propagation policy.
    /// Returns the object's last state and whether it is gone.
    pub fn delete(&mut self, key: &ObjKey, policy: &str) -> Option<(Value, bool)> {
        let mut obj = self.objects.get(key)?.clone();
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if key.plural == "namespaces" && key.group.is_empty() {
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            for k in inside {
                self.delete(&k, "Background");
            }
            obj["status"]["phase"] = json!("Terminating");
        }
        if policy == "Orphan" {
            self.orphan_dependents(&uid);
        }
        let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if policy == "Foreground" && self.has_dependents(&uid) {
            let f = json!("foregroundDeletion");
            if !finalizers.contains(&f) {
                finalizers.push(f);
            }
            obj["metadata"]["finalizers"] = Value::Array(finalizers.clone());
        }
        let namespace_busy = key.plural == "namespaces"
            && key.group.is_empty()
            && self.objects.keys().any(|k| k.namespace == key.name);
        if finalizers.is_empty() && !namespace_busy {
            let last = self.remove(key)?;
            self.collect_garbage();
            return Some((last, true));
        }
        if obj["metadata"]["deletionTimestamp"].is_null() {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        let out = self.replace(key.clone(), obj);
        self.collect_garbage();
        let gone = !self.objects.contains_key(key);
        Some((out, gone))
    }

    fn owner_uids(obj: &Value) -> Vec<String> {
        obj["metadata"]["ownerReferences"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r["uid"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| Self::owner_uids(o).iter().any(|u| u == uid))
    }

    fn orphan_dependents(&mut self, uid: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, o)| Self::owner_uids(o).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let mut o = self.objects[&k].clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            self.replace(k, o);
        }
    }

    /// The garbage collector: deletes dependents whose owners are all gone (or being deleted in
    /// the foreground), drops dangling owner references, releases `foregroundDeletion`, and
    /// removes terminating objects whose finalizers are all cleared. Runs to a fixpoint.
    pub fn collect_garbage(&mut self) {
        loop {
            let mut changed = false;
            let live: HashSet<String> = self
                .objects
                .values()
                .filter(|o| {
                    !(o["metadata"]["deletionTimestamp"].is_string()
                        && o["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| f.contains(&json!("foregroundDeletion"))))
                })
                .filter_map(|o| o["metadata"]["uid"].as_str().map(String::from))
                .collect();
            let keys: Vec<ObjKey> = self.objects.keys().cloned().collect();
            for k in keys {
                let Some(o) = self.objects.get(&k).cloned() else {
                    continue;
                };
                let meta = &o["metadata"];
                let terminating = meta["deletionTimestamp"].is_string();
                let finalizers = meta["finalizers"].as_array().cloned().unwrap_or_default();
                let uid = meta["uid"].as_str().unwrap_or("").to_string();
                if terminating
                    && finalizers.contains(&json!("foregroundDeletion"))
                    && !self.has_dependents(&uid)
                {
                    let mut o = o.clone();
                    let rest: Vec<Value> = finalizers
                        .into_iter()
                        .filter(|f| f != "foregroundDeletion")
                        .collect();
                    o["metadata"]["finalizers"] = Value::Array(rest);
                    self.replace(k, o);
                    changed = true;
                    continue;
                }
                let namespace_busy = k.plural == "namespaces"
                    && k.group.is_empty()
                    && self.objects.keys().any(|x| x.namespace == k.name);
                if terminating && finalizers.is_empty() && !namespace_busy {
                    self.remove(&k);
                    changed = true;
                    continue;
                }
                let owners = Self::owner_uids(&o);
                if owners.is_empty() || terminating {
                    continue;
                }
                let alive: Vec<&String> = owners.iter().filter(|u| live.contains(*u)).collect();
                if alive.is_empty() {
                    self.delete(&k, "Background");
                    changed = true;
                } else if alive.len() < owners.len() && owners.iter().any(|u| !self.uid_exists(u)) {
                    let mut o = o.clone();
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str().is_some_and(|u| self.uid_exists(u)));
                    }
                    self.replace(k, o);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| o["metadata"]["uid"].as_str() == Some(uid))
    }

    /// Subscribes to changes after `from_rv`, returning the buffered events to replay first.
    /// `Err(floor)` when `from_rv` is older than the kept history (answered with 410).
    #[allow(clippy::type_complexity)]
    pub fn subscribe(
        &self,
        from_rv: u64,
    ) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>), u64> {
        if from_rv < self.floor {
            return Err(self.floor);
        }
        let rx = self.tx.subscribe();
        let replay = self
            .history
            .iter()
            .filter(|e| e.rv > from_rv)
            .cloned()
            .collect();
        Ok((replay, rx))
    }

    /// A receiver for live events only.
    pub fn live(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
