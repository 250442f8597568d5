//! The authoritative object store: one resourceVersion counter, the history
//! ring, watch fan-out and every write's semantics (spec E9–E24, E26–E27).
//!
//! The whole store sits behind one mutex owned by the server, so each public
//! method here runs as a single critical section (E10): precondition checks,
//! mutation, RV assignment and queueing of watch events happen together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::errors::{ApiError, ApiResult, Cause, qualified};
use crate::kinds;
use crate::machinery::{self, FieldSelector, LabelSelector};
use crate::resources::{Builtin, Registry, ResourceInfo, storage_key};

/// `(namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub(crate) type ObjKey = (String, String);

/// An object as sent on watches, serialized at most once.
#[derive(Debug)]
pub(crate) struct Payload {
    pub obj: Arc<Value>,
    json: OnceLock<Bytes>,
}

impl Payload {
    pub(crate) fn new(obj: Arc<Value>) -> Arc<Self> {
        Arc::new(Self {
            obj,
            json: OnceLock::new(),
        })
    }
    /// The compact JSON of the object.
    pub(crate) fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.obj).unwrap_or_default()))
            .clone()
    }
}

/// Kind of change a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EvType {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub(crate) struct HistEvent {
    pub rv: u64,
    pub at: Instant,
    pub skey: String,
    pub key: ObjKey,
    pub ty: EvType,
    /// The new state (for DELETED: the last state stamped with the delete RV).
    pub payload: Arc<Payload>,
    /// The state before the change (None for ADDED).
    pub prev: Option<Arc<Value>>,
    /// `prev` restamped with this event's RV, for "stopped matching" DELETEDs.
    prev_restamped: OnceLock<Arc<Payload>>,
}

impl HistEvent {
    fn prev_payload(&self) -> Arc<Payload> {
        self.prev_restamped
            .get_or_init(|| {
                let mut v = self.prev.as_deref().cloned().unwrap_or(Value::Null);
                set_rv(&mut v, self.rv);
                Payload::new(Arc::new(v))
            })
            .clone()
    }
}

/// How a watch stream is ended by a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropMode {
    /// End with the terminating chunk; clients resume from their last RV.
    Clean,
    /// Reset the connection mid-stream.
    Abort,
    /// Send an ERROR event with this HTTP code, then end cleanly.
    Error(u16),
}

/// What the store sends to a watch stream task.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    Event {
        ty: &'static str,
        rv: u64,
        payload: Arc<Payload>,
    },
    /// An ERROR event carrying this Status, then end of stream.
    Error(Value),
    End(DropMode),
    BookmarkNow,
}

/// Selection of a watch or list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                != ns
        {
            return false;
        }
        self.labels
            .matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
            && self.fields.matches_fn(|f| {
                // Upstream reads an absent Node `spec.unschedulable` as false.
                let v = ferrolb_apimachinery::selector::field_value(obj, f);
                if v.is_empty() && f == "spec.unschedulable" {
                    "false".to_owned()
                } else {
                    v
                }
            })
    }
}

/// Attributes of a watch that fault matchers select on.
#[derive(Debug, Clone, Default)]
pub(crate) struct WatchTags {
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: String,
}

pub(crate) struct Watcher {
    pub id: u64,
    pub skey: String,
    pub filter: Filter,
    /// Events with an RV at or below this are not for this watch (future-RV starts).
    pub start_rv: u64,
    pub tx: UnboundedSender<WatchMsg>,
    pub tags: WatchTags,
}

/// Store tuning.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub history_max_events: usize,
    pub history_max_age: Duration,
    pub service_cidrs: Vec<String>,
    pub seed: Option<u64>,
}

/// Options shared by the write verbs.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: Option<bool>,
    /// The User-Agent, whose prefix names the manager of non-apply writes.
    pub user_agent: String,
}

impl WriteOpts {
    /// The field manager of a non-apply write (E15): `fieldManager`, else
    /// the User-Agent up to its first `/`.
    fn manager(&self) -> String {
        match self.field_manager.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => m.to_owned(),
            None => {
                let p = self
                    .user_agent
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(128)
                    .collect::<String>();
                if p.is_empty() {
                    "unknown".to_owned()
                } else {
                    p
                }
            }
        }
    }
}

fn managed_of(obj: &Value) -> Vec<Value> {
    ferrolb_apimachinery::managed::ManagedFields::from_object(obj).entries
}

fn set_managed(obj: &mut Value, entries: Vec<Value>) {
    let meta = meta_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Parsed list options (E20–E24).
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOpts {
    pub filter: Filter,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub rv_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    pub continue_token: Option<String>,
}

/// Result of a DELETE.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// The object is gone; this is its final state.
    Gone(Arc<Value>),
    /// The object is still there (finalizers); this is its state.
    Pending(Arc<Value>),
}

/// Patch flavours (E13, E14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Json,
    Apply,
}

/// The store proper.
pub(crate) struct Store {
    pub rv: u64,
    /// Resuming from an RV below this is impossible (410).
    pub compacted: u64,
    pub registry: Registry,
    pub objects: HashMap<String, BTreeMap<ObjKey, Arc<Value>>>,
    pub history: VecDeque<Arc<HistEvent>>,
    pub watchers: Vec<Watcher>,
    pub cfg: StoreConfig,
    pub alloc: kinds::ServiceAllocator,
    rng: Rng,
    next_watch_id: u64,
    /// Highest RV whose events are all queued; read by bookmark timers.
    pub committed: Arc<AtomicU64>,
    /// Messages queued to watch tasks and not yet written (for `wait_idle`).
    pub queued: Arc<AtomicI64>,
    touch_counter: u64,
}

/// Queues a message to a watch task, counting it for `wait_idle`.
pub(crate) fn send_msg(queued: &AtomicI64, tx: &UnboundedSender<WatchMsg>, msg: WatchMsg) {
    if tx.send(msg).is_ok() {
        queued.fetch_add(1, Ordering::AcqRel);
    }
}

/// splitmix64: deterministic when seeded (F11).
#[derive(Debug, Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }
}

/// Current time as RFC 3339 UTC whole seconds (E3).
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object)
        && let Some(o) = obj.as_object_mut()
    {
        o.insert("metadata".into(), json!({}));
    }
    // The branch above guarantees an object here unless `obj` itself is not one,
    // which callers rule out before calling.
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable_meta(),
    }
}

#[allow(clippy::panic)]
fn unreachable_meta() -> ! {
    panic!("metadata of a non-object value")
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn parse_rv(s: &str) -> Option<u64> {
    s.parse::<u64>().ok()
}

/// Encodes a continue token.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    use base64::Engine;
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(tok: &str) -> ApiResult<(u64, ObjKey)> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: invalid token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_owned(), name.to_owned())))
}

impl Store {
    pub(crate) fn new(cfg: StoreConfig) -> Result<Self, String> {
        let seed = cfg.seed.unwrap_or_else(|| {
            let u = uuid::Uuid::new_v4();
            let b = u.as_bytes();
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        });
        let alloc = kinds::new_allocator(&cfg.service_cidrs)?;
        let mut s = Self {
            rv: 0,
            compacted: 0,
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            watchers: Vec::new(),
            cfg,
            alloc,
            rng: Rng(seed),
            next_watch_id: 1,
            committed: Arc::new(AtomicU64::new(0)),
            queued: Arc::new(AtomicI64::new(0)),
            touch_counter: 0,
        };
        s.seed_namespaces();
        Ok(s)
    }

    fn seed_namespaces(&mut self) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if let Some(info) = self.registry.get("", "v1", "namespaces") {
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let opts = WriteOpts {
                    user_agent: "kube-apiserver/v1.33".into(),
                    ..WriteOpts::default()
                };
                // Seeding cannot fail: the names are valid and the store is fresh.
                let _ = self.create(&info, None, body, &opts);
            }
        }
    }

    /// Wipes every object but CRDs and re-seeds the system namespaces (F6).
    pub(crate) fn wipe(&mut self) {
        let crd_key = storage_key("apiextensions.k8s.io", "customresourcedefinitions");
        self.objects.retain(|k, _| *k == crd_key);
        self.history.clear();
        // Objects vanished without DELETED events, so even the latest RV
        // cannot be resumed from: every client must relist.
        self.compacted = self.rv + 1;
        if let Ok(a) = kinds::new_allocator(&self.cfg.service_cidrs) {
            self.alloc = a;
        }
        self.seed_namespaces();
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// A random UUID (reproducible when seeded).
    pub(crate) fn new_uid(&mut self) -> String {
        self.rng.uuid()
    }

    fn generate_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[(self.rng.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    pub(crate) fn get_obj(&self, skey: &str, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(skey).and_then(|m| m.get(key)).cloned()
    }

    // ---------------------------------------------------------------- commits

    /// Stores `obj` under a fresh RV and queues its event.
    fn commit_put(&mut self, skey: &str, key: ObjKey, mut obj: Value, ty: EvType) -> Arc<Value> {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        let prev = self
            .objects
            .entry(skey.to_owned())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.emit(rv, skey, key, ty, obj.clone(), prev);
        obj
    }

    /// Removes an object under a fresh RV and queues its DELETED event.
    fn commit_remove(
        &mut self,
        skey: &str,
        key: &ObjKey,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let prev = self.objects.get_mut(skey)?.remove(key)?;
        let rv = self.next_rv();
        let mut fin = last.unwrap_or_else(|| (*prev).clone());
        set_rv(&mut fin, rv);
        let fin = Arc::new(fin);
        self.emit(
            rv,
            skey,
            key.clone(),
            EvType::Deleted,
            fin.clone(),
            Some(prev),
        );
        if skey == "services" {
            self.alloc.release(&fin);
        }
        self.after_remove(skey, key, &fin);
        Some(fin)
    }

    /// Side effects of a removal: CRD cleanup and namespace finalization.
    fn after_remove(&mut self, skey: &str, key: &ObjKey, obj: &Value) {
        if skey == storage_key("apiextensions.k8s.io", "customresourcedefinitions")
            && let Some(ci) = kinds::crd_resources(obj).first()
        {
            let target = ci.skey();
            let keys: Vec<ObjKey> = self
                .objects
                .get(&target)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                self.commit_remove(&target, &k, None);
            }
            self.objects.remove(&target);
            self.registry.remove_skey(&target);
            for w in self.watchers.iter().filter(|w| w.skey == target) {
                send_msg(&self.queued, &w.tx, WatchMsg::End(DropMode::Clean));
            }
            self.watchers.retain(|w| w.skey != target);
        }
        if !key.0.is_empty() {
            self.maybe_finalize_namespace(&key.0.clone());
        }
    }

    fn maybe_finalize_namespace(&mut self, ns: &str) {
        let nkey = (String::new(), ns.to_owned());
        let Some(nsobj) = self.get_obj("namespaces", &nkey) else {
            return;
        };
        if !is_deleting(&nsobj) {
            return;
        }
        let empty = self
            .objects
            .iter()
            .all(|(_, m)| !m.keys().any(|(n, _)| n == ns));
        if empty {
            self.commit_remove("namespaces", &nkey, None);
        }
    }

    fn emit(
        &mut self,
        rv: u64,
        skey: &str,
        key: ObjKey,
        ty: EvType,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(HistEvent {
            rv,
            at: Instant::now(),
            skey: skey.to_owned(),
            key,
            ty,
            payload: Payload::new(obj),
            prev,
            prev_restamped: OnceLock::new(),
        });
        self.watchers.retain(|w| !w.tx.is_closed());
        for w in &self.watchers {
            if w.skey != ev.skey || ev.rv <= w.start_rv {
                continue;
            }
            if let Some(msg) = event_for(&w.filter, &ev) {
                send_msg(&self.queued, &w.tx, msg);
            }
        }
        self.history.push_back(ev);
        self.trim_history();
        self.committed.store(rv, Ordering::Release);
    }

    fn trim_history(&mut self) {
        let max = self.cfg.history_max_events.max(1);
        let age = self.cfg.history_max_age;
        while let Some(front) = self.history.front() {
            if self.history.len() > max || front.at.elapsed() > age {
                self.compacted = self.compacted.max(front.rv);
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    /// Compacts history up to `rv` (inclusive), or everything (F2).
    pub(crate) fn compact(&mut self, up_to: Option<u64>) {
        let target = up_to.unwrap_or(self.rv).min(self.rv);
        self.compacted = self.compacted.max(target);
        while self.history.front().is_some_and(|e| e.rv <= target) {
            self.history.pop_front();
        }
    }

    // ---------------------------------------------------------------- reads

    pub(crate) fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.get_obj(&info.skey(), &(ns.to_owned(), name.to_owned()))
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Validates ListOptions shared by list and watch (E21).
    pub(crate) fn check_list_opts(opts: &ListOpts, watch: bool) -> ApiResult<()> {
        let invalid = |field: &str, v: &str, msg: &str| {
            ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                vec![Cause::invalid(field, &json!(v), msg)],
            )
        };
        if let Some(m) = &opts.rv_match
            && !m.is_empty()
        {
            if watch {
                if m != "NotOlderThan" {
                    return Err(invalid(
                        "resourceVersionMatch",
                        m,
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
            } else {
                if opts.resource_version.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid(
                        "resourceVersionMatch",
                        m,
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if opts
                    .continue_token
                    .as_deref()
                    .is_some_and(|c| !c.is_empty())
                {
                    return Err(invalid(
                        "resourceVersionMatch",
                        m,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                match m.as_str() {
                    "NotOlderThan" => {}
                    "Exact" => {
                        if opts.resource_version.as_deref() == Some("0") {
                            return Err(invalid(
                                "resourceVersionMatch",
                                m,
                                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                            ));
                        }
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "ListOptions",
                            "meta.k8s.io",
                            "",
                            vec![Cause::not_supported(
                                "resourceVersionMatch",
                                &json!(m),
                                &["Exact", "NotOlderThan", ""],
                            )],
                        ));
                    }
                }
            }
        }
        if let Some(rv) = &opts.resource_version
            && !rv.is_empty()
            && parse_rv(rv).is_none()
        {
            return Err(ApiError::bad_request(format!(
                "invalid resource version {rv:?}"
            )));
        }
        Ok(())
    }

    /// One page of a list (E20–E22).
    pub(crate) fn list(&self, info: &ResourceInfo, opts: &ListOpts) -> ApiResult<ListPage> {
        let skey = info.skey();
        let (snapshot_rv, after) = match opts.continue_token.as_deref().filter(|c| !c.is_empty()) {
            Some(tok) => {
                let (rv, key) = decode_continue(tok)?;
                if rv < self.compacted {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some(key))
            }
            None => {
                let rv = match (
                    opts.rv_match.as_deref(),
                    opts.resource_version.as_deref().and_then(parse_rv),
                ) {
                    (Some("Exact"), Some(rv)) => {
                        if rv > self.rv {
                            return Err(ApiError::too_large_rv());
                        }
                        if rv < self.compacted {
                            return Err(ApiError::expired(format!(
                                "too old resource version: {rv} ({})",
                                self.compacted
                            )));
                        }
                        rv
                    }
                    _ => self.rv,
                };
                (rv, None)
            }
        };
        // State at `snapshot_rv`: the first change after it for a key holds
        // that key's state at the snapshot in `prev`.
        let mut overrides: BTreeMap<ObjKey, Option<Arc<Value>>> = BTreeMap::new();
        if snapshot_rv < self.rv {
            for ev in self
                .history
                .iter()
                .filter(|e| e.rv > snapshot_rv && e.skey == skey)
            {
                overrides
                    .entry(ev.key.clone())
                    .or_insert_with(|| ev.prev.clone());
            }
        }
        let empty = BTreeMap::new();
        let current = self.objects.get(&skey).unwrap_or(&empty);
        let lower = match &after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let (lo, hi) = match &opts.filter.namespace {
            Some(ns) if info.namespaced => {
                let lo = match &lower {
                    Bound::Excluded(k) if k.0.as_str() >= ns.as_str() => Bound::Excluded(k.clone()),
                    _ => Bound::Included((ns.clone(), String::new())),
                };
                (lo, Some(ns.clone()))
            }
            _ => (lower, None),
        };
        let mut cur = current.range((lo.clone(), Bound::Unbounded)).peekable();
        let mut ov = overrides.range((lo, Bound::Unbounded)).peekable();
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<ObjKey> = None;
        let mut more = false;
        loop {
            let next: Option<(ObjKey, Option<Arc<Value>>)> = match (cur.peek(), ov.peek()) {
                (None, None) => None,
                (Some((ck, _)), Some((ok, _))) if ok <= ck => {
                    let (ok, ov_v) = ov
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap_or_default();
                    if cur.peek().is_some_and(|(ck, _)| **ck == ok) {
                        cur.next();
                    }
                    Some((ok, ov_v))
                }
                (Some(_), _) => cur.next().map(|(k, v)| (k.clone(), Some(v.clone()))),
                (None, Some(_)) => ov.next().map(|(k, v)| (k.clone(), v.clone())),
            };
            let Some((key, val)) = next else { break };
            if let Some(ns) = &hi
                && key.0 != *ns
            {
                break;
            }
            let Some(val) = val else { continue };
            if !opts.filter.matches(&val) {
                continue;
            }
            if let Some(l) = limit
                && items.len() == l
            {
                more = true;
                break;
            }
            last_key = Some(key);
            items.push(val);
        }
        let continue_token = match (more, last_key) {
            (true, Some(k)) => Some(encode_continue(snapshot_rv, &k)),
            _ => None,
        };
        Ok(ListPage {
            items,
            rv: snapshot_rv,
            continue_token,
        })
    }

    // ---------------------------------------------------------------- watch

    /// Registers a watch and queues its initial events (E26).
    pub(crate) fn watch(
        &mut self,
        info: &ResourceInfo,
        opts: &ListOpts,
        send_initial_events: bool,
        tx: UnboundedSender<WatchMsg>,
        tags: WatchTags,
    ) -> ApiResult<u64> {
        let skey = info.skey();
        self.trim_history();
        let rv = opts.resource_version.as_deref().filter(|s| !s.is_empty());
        let start =
            match rv {
                None => None,
                Some(s) => Some(parse_rv(s).ok_or_else(|| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
            };
        let mut start_rv = self.rv;
        if send_initial_events || matches!(start, None | Some(0)) {
            let page = self.list(
                info,
                &ListOpts {
                    filter: opts.filter.clone(),
                    ..Default::default()
                },
            )?;
            for obj in page.items {
                let rv = meta_str(&obj, "resourceVersion")
                    .and_then(parse_rv)
                    .unwrap_or(0);
                send_msg(
                    &self.queued,
                    &tx,
                    WatchMsg::Event {
                        ty: "ADDED",
                        rv,
                        payload: Payload::new(obj),
                    },
                );
            }
            if send_initial_events {
                send_msg(
                    &self.queued,
                    &tx,
                    WatchMsg::Event {
                        ty: "BOOKMARK",
                        rv: self.rv,
                        payload: Payload::new(Arc::new(json!({
                            "kind": info.kind, "apiVersion": info.api_version(),
                            "metadata": {"resourceVersion": self.rv.to_string(),
                                "annotations": {"k8s.io/initial-events-end": "true"}}
                        }))),
                    },
                );
            }
        } else if let Some(n) = start {
            if n < self.compacted {
                let status = ApiError::expired(format!(
                    "too old resource version: {n} ({})",
                    self.compacted
                ))
                .to_status();
                send_msg(&self.queued, &tx, WatchMsg::Error(status));
                return Ok(0);
            }
            if n > self.rv {
                start_rv = n;
            } else {
                for ev in self.history.iter().filter(|e| e.rv > n && e.skey == skey) {
                    if let Some(msg) = event_for(&opts.filter, ev) {
                        send_msg(&self.queued, &tx, msg);
                    }
                }
            }
        }
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        self.watchers.push(Watcher {
            id,
            skey,
            filter: opts.filter.clone(),
            start_rv,
            tx,
            tags,
        });
        Ok(id)
    }

    pub(crate) fn unwatch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    // ---------------------------------------------------------------- create

    fn check_namespace_for_write(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> ApiResult<()> {
        if !info.namespaced {
            return Ok(());
        }
        match self.get_obj("namespaces", &(String::new(), ns.to_owned())) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_deleting(&n) => Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                resource_name(info)
            ))),
            Some(_) => Ok(()),
        }
    }

    /// POST to a collection (E11).
    pub(crate) fn create(
        &mut self,
        info: &ResourceInfo,
        url_ns: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        self.create_inner(info, url_ns, body, opts, None)
    }

    /// Create with precomputed `managedFields` (apply-create) or recorded ones.
    fn create_inner(
        &mut self,
        info: &ResourceInfo,
        url_ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
        managed: Option<Vec<Value>>,
    ) -> ApiResult<Arc<Value>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_type_meta(info, &mut body)?;
        let meta = meta_mut(&mut body);
        // Namespace.
        let ns = if info.namespaced {
            let url_ns = url_ns.unwrap_or("");
            let body_ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if url_ns.is_empty() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), Value::String(url_ns.to_owned()));
            url_ns.to_owned()
        } else {
            meta.remove("namespace");
            String::new()
        };
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        meta.remove("resourceVersion");
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let gen_name = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let name = if name.is_empty() && !gen_name.is_empty() {
            let prefix: String = gen_name.chars().take(58).collect();
            let n = format!("{prefix}{}", self.generate_suffix());
            meta_mut(&mut body).insert("name".into(), Value::String(n.clone()));
            n
        } else {
            name
        };
        if name.is_empty() {
            return Err(ApiError::invalid(
                &info.kind,
                &info.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        self.check_namespace_for_write(info, &ns, &name)?;
        let uid = self.new_uid();
        let meta = meta_mut(&mut body);
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        meta.remove("selfLink");
        if info.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if info.status_subresource
            && !info.create_keeps_status
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        let causes = machinery::validate_object_meta(info, &body);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        let key = (ns, name.clone());
        if self.get_obj(&info.skey(), &key).is_some() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        // Last check: a Service's admission allocates IPs and ports.
        let causes = kinds::admit(&mut self.alloc, info, &mut body, None);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        machinery::prune_empty_metadata(&mut body);
        let entries = match managed {
            Some(m) => m,
            None => ferrolb_apimachinery::managed::record_update(
                None,
                &body,
                &opts.manager(),
                None,
                &[],
                &now_rfc3339(),
            ),
        };
        set_managed(&mut body, entries);
        if opts.dry_run {
            kinds::undo(&mut self.alloc, info, &body, None);
            return Ok(Arc::new(body));
        }
        let obj = self.commit_put(&info.skey(), key, body, EvType::Added);
        if info.builtin == Builtin::Crd {
            self.register_crd(&obj);
        }
        Ok(obj)
    }

    fn register_crd(&mut self, crd: &Value) {
        let infos = kinds::crd_resources(crd);
        if let Some(first) = infos.first() {
            let skey = first.skey();
            self.registry.remove_skey(&skey);
        }
        for i in infos {
            self.registry.insert(i);
        }
    }

    // ---------------------------------------------------------------- update

    /// PUT on an object or its status (E12, E17).
    pub(crate) fn update(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<(Arc<Value>, bool)> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_type_meta(info, &mut body)?;
        let body_name = meta_str(&body, "name").unwrap_or("").to_owned();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced {
            let body_ns = meta_str(&body, "namespace").unwrap_or("").to_owned();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut body).insert("namespace".into(), Value::String(ns.to_owned()));
        }
        let key = (ns.to_owned(), name.to_owned());
        let Some(old) = self.get_obj(&info.skey(), &key) else {
            if info.create_on_put && subresource.is_none() {
                if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                let obj = self.create(info, Some(ns), body, opts)?;
                return Ok((obj, true));
            }
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        let body_rv = meta_str(&body, "resourceVersion").unwrap_or("").to_owned();
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or("").to_owned();
        if body_rv.is_empty() {
            if !info.unconditional_update {
                return Err(ApiError::invalid(
                    &info.kind,
                    &info.group,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &json!(0),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if body_rv != old_rv {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        let old_uid = meta_str(&old, "uid").unwrap_or("").to_owned();
        if let Some(u) = meta_str(&body, "uid")
            && !u.is_empty()
            && u != old_uid
        {
            return Err(ApiError::conflict_msg(
                &info.group,
                &info.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {old_uid}"
                ),
            ));
        }
        let obj = self.finish_update(info, &old, body, subresource, opts, None)?;
        Ok((obj, false))
    }

    /// Shared tail of PUT, patch and apply: subresource rules, system fields,
    /// validation, no-op detection, generation and finalizer-driven removal.
    fn finish_update(
        &mut self,
        info: &ResourceInfo,
        old: &Arc<Value>,
        mut new: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
        managed: Option<Vec<Value>>,
    ) -> ApiResult<Arc<Value>> {
        let name = meta_str(old, "name").unwrap_or("").to_owned();
        let ns = meta_str(old, "namespace").unwrap_or("").to_owned();
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        check_type_meta(info, &mut new)?;
        // Subresource rules (E17).
        if info.status_subresource {
            match subresource {
                Some("status") => {
                    if info.builtin == Builtin::Custom {
                        let status = new.get("status").cloned();
                        let mut merged = (**old).clone();
                        if let Some(o) = merged.as_object_mut() {
                            match status {
                                Some(s) if !s.is_null() => {
                                    o.insert("status".into(), s);
                                }
                                _ => {
                                    o.remove("status");
                                }
                            }
                        }
                        new = merged;
                    } else if let Some(o) = new.as_object_mut() {
                        match old.get("spec") {
                            Some(s) => {
                                o.insert("spec".into(), s.clone());
                            }
                            None => {
                                o.remove("spec");
                            }
                        }
                    }
                }
                _ => {
                    if let Some(o) = new.as_object_mut() {
                        match old.get("status") {
                            Some(s) => {
                                o.insert("status".into(), s.clone());
                            }
                            None => {
                                o.remove("status");
                            }
                        }
                    }
                }
            }
        }
        // System fields.
        let mut causes = Vec::new();
        {
            let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let meta = meta_mut(&mut new);
            for f in ["uid", "name", "namespace"] {
                let nv = meta.get(f).and_then(Value::as_str).unwrap_or("");
                let ov = old_meta.get(f).and_then(Value::as_str).unwrap_or("");
                if f == "uid" && nv.is_empty() {
                    meta.insert("uid".into(), json!(ov));
                    continue;
                }
                if f == "namespace" && nv.is_empty() && ov.is_empty() {
                    continue;
                }
                if nv != ov {
                    causes.push(Cause::invalid(
                        &format!("metadata.{f}"),
                        &json!(nv),
                        "field is immutable",
                    ));
                }
            }
            if meta.get("deletionTimestamp").filter(|v| !v.is_null())
                != old_meta.get("deletionTimestamp").filter(|v| !v.is_null())
            {
                causes.push(Cause::invalid(
                    "metadata.deletionTimestamp",
                    meta.get("deletionTimestamp").unwrap_or(&Value::Null),
                    "field is immutable; may only be changed via deletion",
                ));
            }
            for f in [
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            meta.remove("managedFields");
            meta.remove("selfLink");
            meta.remove("generateName").filter(|_| false);
            if let Some(g) = old_meta.get("generateName") {
                meta.insert("generateName".into(), g.clone());
            }
        }
        if is_deleting(old) {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                causes.push(Cause::forbidden(
                    "metadata.finalizers",
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        let causes = machinery::validate_object_meta(info, &new);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        let causes = kinds::admit(&mut self.alloc, info, &mut new, Some(old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        machinery::prune_empty_metadata(&mut new);
        let entries = match managed {
            Some(m) => m,
            None => ferrolb_apimachinery::managed::record_update(
                Some(old),
                &new,
                &opts.manager(),
                subresource,
                &managed_of(old),
                &now_rfc3339(),
            ),
        };
        set_managed(&mut new, entries);
        // No-op (E16).
        if ferrolb_apimachinery::managed::equal_ignoring_managed_times(&new, old) {
            return Ok(old.clone());
        }
        // Generation (E18).
        if info.generation && spec_changed(info, old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if opts.dry_run {
            kinds::undo(&mut self.alloc, info, &new, Some(old));
            return Ok(Arc::new(new));
        }
        let key = (ns, name);
        if is_deleting(&new) && finalizers(&new).is_empty() {
            if let Some(fin) = self.commit_remove(&info.skey(), &key, Some(new)) {
                return Ok(fin);
            }
            return Err(ApiError::not_found(&info.group, &info.plural, &key.1));
        }
        let obj = self.commit_put(&info.skey(), key, new, EvType::Modified);
        if info.builtin == Builtin::Crd {
            self.register_crd(&obj);
        }
        Ok(obj)
    }

    // ---------------------------------------------------------------- patch

    /// PATCH on an object or its status (E13, E14).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<(Arc<Value>, bool)> {
        if kind != PatchKind::Apply && opts.force.is_some() {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        let key = (ns.to_owned(), name.to_owned());
        let old = self.get_obj(&info.skey(), &key);
        match kind {
            PatchKind::Merge | PatchKind::Json => {
                let Some(old) = old else {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                };
                let patched = if kind == PatchKind::Merge {
                    let p: Value = serde_json::from_slice(body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    let mut t = (*old).clone();
                    machinery::merge_patch(&mut t, &p);
                    t
                } else {
                    machinery::json_patch(&old, body)?
                };
                let new_rv = meta_str(&patched, "resourceVersion").unwrap_or("");
                if new_rv != meta_str(&old, "resourceVersion").unwrap_or("") && !new_rv.is_empty() {
                    return Err(ApiError::conflict(&info.group, &info.plural, name));
                }
                check_patch_identity(info, &old, &patched, name)?;
                let obj = self.finish_update(info, &old, patched, subresource, opts, None)?;
                Ok((obj, false))
            }
            PatchKind::Apply => {
                if opts.field_manager.as_deref().unwrap_or("").is_empty() {
                    return Err(ApiError::invalid(
                        "PatchOptions",
                        "meta.k8s.io",
                        "",
                        vec![
                            Cause::required("fieldManager")
                                .with_msg("Required value: is required for apply patch"),
                        ],
                    ));
                }
                let text = std::str::from_utf8(body)
                    .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
                let applied: Value =
                    machinery::parse_yaml_or_json(text).map_err(ApiError::bad_request)?;
                if !applied.is_object() {
                    return Err(ApiError::bad_request("apply patch must be an object"));
                }
                let av = applied
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let k = applied.get("kind").and_then(Value::as_str).unwrap_or("");
                if av != info.api_version() {
                    return Err(ApiError::bad_request(format!(
                        "the API version in the data ({av}) does not match the expected API version ({})",
                        info.api_version()
                    )));
                }
                if k != info.kind {
                    return Err(ApiError::bad_request(format!(
                        "the kind in the data ({k}) does not match the expected kind ({})",
                        info.kind
                    )));
                }
                if applied
                    .pointer("/metadata/managedFields")
                    .is_some_and(|v| !v.is_null())
                {
                    return Err(ApiError::bad_request("metadata.managedFields must be nil"));
                }
                if let Some(n) = meta_str(&applied, "name")
                    && !n.is_empty()
                    && n != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                let manager = opts.field_manager.clone().unwrap_or_default();
                let force = opts.force.unwrap_or(false);
                let mut applied = applied;
                let body_rv = meta_str(&applied, "resourceVersion")
                    .unwrap_or("")
                    .to_owned();
                if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                    if info.namespaced
                        && m.get("namespace")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                    {
                        m.insert("namespace".into(), json!(ns));
                    }
                }
                strip_ignored(info, subresource, &mut applied);
                let Some(old) = old else {
                    if subresource.is_some() {
                        return Err(ApiError::not_found(&info.group, &info.plural, name));
                    }
                    if !body_rv.is_empty() {
                        return Err(ApiError::conflict(&info.group, &info.plural, name));
                    }
                    let (mut body, entries) = ferrolb_apimachinery::managed::apply_with_ownership(
                        &json!({}),
                        &applied,
                        &manager,
                        None,
                        force,
                        &[],
                    )
                    .map_err(ApiError::from)?;
                    meta_mut(&mut body).insert("name".into(), json!(name));
                    let url_ns = if info.namespaced { Some(ns) } else { None };
                    let obj = self.create_inner(info, url_ns, body, opts, Some(entries))?;
                    return Ok((obj, true));
                };
                if !body_rv.is_empty() && body_rv != meta_str(&old, "resourceVersion").unwrap_or("")
                {
                    return Err(ApiError::conflict(&info.group, &info.plural, name));
                }
                let (merged, entries) = ferrolb_apimachinery::managed::apply_with_ownership(
                    &old,
                    &applied,
                    &manager,
                    subresource,
                    force,
                    &managed_of(&old),
                )
                .map_err(ApiError::from)?;
                check_patch_identity(info, &old, &merged, name)?;
                let obj =
                    self.finish_update(info, &old, merged, subresource, opts, Some(entries))?;
                Ok((obj, false))
            }
        }
    }

    // ---------------------------------------------------------------- delete

    /// DELETE of one object (E19, E33).
    pub(crate) fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &Value,
        dry_run: bool,
    ) -> ApiResult<Deleted> {
        let key = (ns.to_owned(), name.to_owned());
        let Some(old) = self.get_obj(&info.skey(), &key) else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        if let Some(pre) = opts.get("preconditions") {
            let uid = meta_str(&old, "uid").unwrap_or("");
            if let Some(u) = pre.get("uid").and_then(Value::as_str)
                && u != uid
            {
                return Err(ApiError::conflict_msg(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {u}, UID in object meta: {uid}"
                    ),
                ));
            }
            let rv = meta_str(&old, "resourceVersion").unwrap_or("");
            if let Some(r) = pre.get("resourceVersion").and_then(Value::as_str)
                && r != rv
            {
                return Err(ApiError::conflict_msg(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {rv}"
                    ),
                ));
            }
        }
        if dry_run {
            return Ok(
                if finalizers(&old).is_empty() && info.builtin != Builtin::Namespace {
                    Deleted::Gone(old)
                } else {
                    Deleted::Pending(old)
                },
            );
        }
        Ok(self.delete_obj(info, &key, old))
    }

    fn delete_obj(&mut self, info: &ResourceInfo, key: &ObjKey, old: Arc<Value>) -> Deleted {
        let skey = info.skey();
        if info.builtin == Builtin::Namespace {
            return self.delete_namespace(key, old);
        }
        if finalizers(&old).is_empty() {
            return match self.commit_remove(&skey, key, None) {
                Some(fin) => Deleted::Gone(fin),
                None => Deleted::Gone(old),
            };
        }
        if is_deleting(&old) {
            return Deleted::Pending(old);
        }
        let mut new = (*old).clone();
        let g = new.pointer("/metadata/generation").and_then(Value::as_i64);
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if info.generation
            && let Some(g) = g.filter(|g| *g > 0)
        {
            meta.insert("generation".into(), json!(g + 1));
        }
        Deleted::Pending(self.commit_put(&skey, key.clone(), new, EvType::Modified))
    }

    fn delete_namespace(&mut self, key: &ObjKey, old: Arc<Value>) -> Deleted {
        let ns = key.1.clone();
        let mut cur = old.clone();
        if !is_deleting(&old) {
            let mut new = (*old).clone();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            new["status"] = json!({"phase": "Terminating"});
            cur = self.commit_put("namespaces", key.clone(), new, EvType::Modified);
        }
        let infos: Vec<Arc<ResourceInfo>> = {
            let mut seen = std::collections::HashSet::new();
            self.registry
                .by_gvr
                .values()
                .filter(|i| i.namespaced && seen.insert(i.skey()))
                .cloned()
                .collect()
        };
        for info in infos {
            let keys: Vec<ObjKey> = self
                .objects
                .get(&info.skey())
                .map(|m| m.keys().filter(|k| k.0 == ns).cloned().collect())
                .unwrap_or_default();
            for k in keys {
                if let Some(o) = self.get_obj(&info.skey(), &k) {
                    self.delete_obj(&info, &k, o);
                }
            }
        }
        match self.get_obj("namespaces", key) {
            Some(o) => {
                self.maybe_finalize_namespace(&ns);
                match self.get_obj("namespaces", key) {
                    Some(o) => Deleted::Pending(o),
                    None => Deleted::Pending(o),
                }
            }
            None => Deleted::Pending(cur),
        }
    }

    /// DELETE on a collection with selectors (E19).
    pub(crate) fn delete_collection(
        &mut self,
        info: &ResourceInfo,
        filter: &Filter,
        dry_run: bool,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let skey = info.skey();
        let matches: Vec<(ObjKey, Arc<Value>)> = self
            .objects
            .get(&skey)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| filter.matches(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for (k, v) in matches {
            if dry_run {
                out.push(v);
                continue;
            }
            match self.delete_obj(info, &k, v) {
                Deleted::Gone(o) | Deleted::Pending(o) => out.push(o),
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- faults

    /// Bumps an annotation so cached RVs go stale (F7).
    pub(crate) fn touch(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> ApiResult<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        let Some(old) = self.get_obj(&info.skey(), &key) else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        self.touch_counter += 1;
        let mut new = (*old).clone();
        let meta = meta_mut(&mut new);
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(
                "emulator.ferrolb.io/touch".into(),
                json!(self.touch_counter.to_string()),
            );
        }
        Ok(self.commit_put(&info.skey(), key, new, EvType::Modified))
    }

    /// Ends matching watch streams (F1).
    pub(crate) fn drop_watches(
        &mut self,
        pred: &dyn Fn(&WatchTags) -> bool,
        mode: DropMode,
    ) -> usize {
        let mut n = 0;
        for w in &self.watchers {
            if pred(&w.tags) {
                n += 1;
                let msg = match mode {
                    DropMode::Error(code) => WatchMsg::Error(
                        ApiError::custom(
                            code,
                            None,
                            Some("watch dropped by fault injection"),
                            None,
                        )
                        .to_status(),
                    ),
                    m => WatchMsg::End(m),
                };
                send_msg(&self.queued, &w.tx, msg);
            }
        }
        self.watchers.retain(|w| !pred(&w.tags));
        n
    }

    /// Asks every watch to send a bookmark now (F8).
    pub(crate) fn bookmark_now(&self) {
        for w in &self.watchers {
            send_msg(&self.queued, &w.tx, WatchMsg::BookmarkNow);
        }
    }

    /// Ends every watch (restart/stop).
    pub(crate) fn end_all_watches(&mut self, mode: DropMode) {
        for w in &self.watchers {
            send_msg(&self.queued, &w.tx, WatchMsg::End(mode));
        }
        self.watchers.clear();
    }

    /// Number of registered watches.
    pub(crate) fn watch_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

trait WithMsg {
    fn with_msg(self, m: &str) -> Self;
}
impl WithMsg for Cause {
    fn with_msg(mut self, m: &str) -> Self {
        self.message = m.to_owned();
        self
    }
}

/// Removes from an applied configuration what the endpoint ignores, so the
/// applier does not claim it: `status` on a main resource with the
/// subresource; everything but `status` (and identity) on `/status`.
fn strip_ignored(info: &ResourceInfo, subresource: Option<&str>, applied: &mut Value) {
    if !info.status_subresource {
        return;
    }
    let Some(o) = applied.as_object_mut() else {
        return;
    };
    if subresource == Some("status") {
        o.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "uid"));
        }
    } else {
        o.remove("status");
    }
}

/// Checks/fills `apiVersion` and `kind` of a body against the endpoint.
fn check_type_meta(info: &ResourceInfo, body: &mut Value) -> ApiResult<()> {
    let want_av = info.api_version();
    let Some(o) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the endpoint ({})",
            info.kind
        )));
    }
    let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != want_av {
        let (g, _) = av.split_once('/').unwrap_or(("", av));
        if g != info.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    // Objects are stored with the storage version.
    let stored_av = if info.group.is_empty() {
        info.storage_version.clone()
    } else {
        format!("{}/{}", info.group, info.storage_version)
    };
    o.insert("apiVersion".into(), Value::String(stored_av));
    o.insert("kind".into(), Value::String(info.kind.clone()));
    Ok(())
}

fn check_patch_identity(
    info: &ResourceInfo,
    old: &Value,
    new: &Value,
    name: &str,
) -> ApiResult<()> {
    for f in ["name", "namespace", "uid"] {
        let o = meta_str(old, f).unwrap_or("");
        let n = meta_str(new, f).unwrap_or("");
        if f == "uid" && n.is_empty() {
            continue;
        }
        if o != n {
            if f == "uid" {
                return Err(ApiError::conflict_msg(
                    &info.group,
                    &info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {n}, UID in object meta: {o}"
                    ),
                ));
            }
            return Err(ApiError::invalid(
                &info.kind,
                &info.group,
                name,
                vec![Cause::invalid(
                    &format!("metadata.{f}"),
                    &json!(n),
                    "field is immutable",
                )],
            ));
        }
    }
    Ok(())
}

/// Did anything outside metadata (and status, with the subresource) change?
fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            if info.status_subresource {
                o.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// The event (if any) a change means for one watch filter (E27).
fn event_for(filter: &Filter, ev: &HistEvent) -> Option<WatchMsg> {
    let new_match = filter.matches(&ev.payload.obj);
    let msg = |ty: &'static str, payload: Arc<Payload>| {
        Some(WatchMsg::Event {
            ty,
            rv: ev.rv,
            payload,
        })
    };
    match ev.ty {
        EvType::Added => new_match
            .then(|| msg("ADDED", ev.payload.clone()))
            .flatten(),
        EvType::Deleted => {
            let old_match = ev.prev.as_deref().is_some_and(|p| filter.matches(p));
            (new_match || old_match)
                .then(|| msg("DELETED", ev.payload.clone()))
                .flatten()
        }
        EvType::Modified => {
            let old_match = ev.prev.as_deref().is_some_and(|p| filter.matches(p));
            match (old_match, new_match) {
                (true, true) => msg("MODIFIED", ev.payload.clone()),
                (false, true) => msg("ADDED", ev.payload.clone()),
                (true, false) => msg("DELETED", ev.prev_payload()),
                (false, false) => None,
            }
        }
    }
}

/// `plural[.group]` of a resource.
pub(crate) fn resource_name(info: &ResourceInfo) -> String {
    qualified(&info.plural, &info.group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn store() -> Store {
        Store::new(StoreConfig {
            history_max_events: 100,
            history_max_age: Duration::from_secs(300),
            service_cidrs: vec!["10.96.0.0/12".into()],
            seed: Some(7),
        })
        .unwrap()
    }

    fn info(s: &Store, g: &str, v: &str, p: &str) -> Arc<ResourceInfo> {
        s.registry.get(g, v, p).unwrap()
    }

    fn rv(o: &Value) -> u64 {
        meta_str(o, "resourceVersion").unwrap().parse().unwrap()
    }

    fn opts() -> WriteOpts {
        WriteOpts {
            user_agent: "test/1".into(),
            ..Default::default()
        }
    }

    const POOL_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{"name":"ipaddresspools.ferrolb.io"},
        "spec":{"group":"ferrolb.io","scope":"Namespaced",
          "names":{"kind":"IPAddressPool","plural":"ipaddresspools"},
          "versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}},
            "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;

    fn with_crd() -> (Store, Arc<ResourceInfo>) {
        let mut s = store();
        let crd = info(
            &s,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        );
        s.create(&crd, None, serde_json::from_str(POOL_CRD).unwrap(), &opts())
            .unwrap();
        let pools = info(&s, "ferrolb.io", "v1alpha1", "ipaddresspools");
        (s, pools)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<WatchMsg>) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m {
                WatchMsg::Event { ty, rv, payload } => out.push((
                    ty.to_owned(),
                    meta_str(&payload.obj, "name").unwrap_or("").to_owned(),
                    rv,
                )),
                WatchMsg::Error(st) => out.push(("ERROR".into(), st["code"].to_string(), 0)),
                other => out.push((format!("{other:?}"), String::new(), 0)),
            }
        }
        out
    }

    #[test]
    fn rvs_increase_and_delete_is_stamped() {
        let mut s = store();
        let cm = info(&s, "", "v1", "configmaps");
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &cm,
            &ListOpts {
                resource_version: Some(s.rv.to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        let a = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "a"}}),
                &opts(),
            )
            .unwrap();
        let b = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "b"}}),
                &opts(),
            )
            .unwrap();
        assert!(rv(&b) > rv(&a));
        let Deleted::Gone(d) = s.delete(&cm, "default", "a", &json!({}), false).unwrap() else {
            panic!("not gone")
        };
        assert!(rv(&d) > rv(&b));
        let evs = drain(&mut rx);
        assert_eq!(
            evs.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["ADDED", "ADDED", "DELETED"]
        );
        assert_eq!(evs[2].2, rv(&d));
    }

    #[test]
    fn create_rules() {
        let mut s = store();
        let cm = info(&s, "", "v1", "configmaps");
        let e = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "a", "resourceVersion": "5"}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 500);
        let e = s
            .create(&cm, Some("default"), json!({"metadata": {}}), &opts())
            .unwrap_err();
        assert_eq!(e.code, 422);
        let e = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "a", "namespace": "other"}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 400);
        let e = s
            .create(
                &cm,
                Some("nope"),
                json!({"metadata": {"name": "a"}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "namespaces \"nope\" not found")
        );
        let g1 = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"generateName": "ferrolb-"}}),
                &opts(),
            )
            .unwrap();
        let g2 = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"generateName": "ferrolb-"}}),
                &opts(),
            )
            .unwrap();
        let (n1, n2) = (
            meta_str(&g1, "name").unwrap(),
            meta_str(&g2, "name").unwrap(),
        );
        assert_ne!(n1, n2);
        assert!(n1.starts_with("ferrolb-") && n1.len() == 13, "{n1}");
        let e = s
            .create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": "l", "labels": {"ip": "fd00::1"}}}),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.details.unwrap()["causes"][0]["field"], "metadata.labels");
    }

    #[test]
    fn no_op_writes_keep_rv_and_emit_nothing() {
        let (mut s, pools) = with_crd();
        let p = s
            .create(
                &pools,
                Some("default"),
                json!({"metadata": {"name": "p"}, "spec": {"a": 1}}),
                &opts(),
            )
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &pools,
            &ListOpts {
                resource_version: Some(s.rv.to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        let (same, _) = s
            .update(&pools, "default", "p", None, (*p).clone(), &opts())
            .unwrap();
        assert_eq!(rv(&same), rv(&p));
        let apply = |s: &mut Store| {
            let o = WriteOpts {
                field_manager: Some("m".into()),
                force: Some(true),
                ..opts()
            };
            s.patch(
                &pools,
                "default",
                "p",
                Some("status"),
                PatchKind::Apply,
                br#"{"apiVersion":"ferrolb.io/v1alpha1","kind":"IPAddressPool","status":{"x":1}}"#,
                &o,
            )
            .unwrap()
            .0
        };
        let first = apply(&mut s);
        let second = apply(&mut s);
        assert_eq!(rv(&first), rv(&second));
        assert_eq!(
            drain(&mut rx).len(),
            1,
            "one MODIFIED for two identical applies"
        );
    }

    #[test]
    fn generation_and_status_subresource() {
        let (mut s, pools) = with_crd();
        let p = s.create(&pools, Some("default"), json!({"metadata": {"name": "p", "finalizers": ["x.io/f"]}, "spec": {"a": 1}, "status": {"s": 1}}), &opts()).unwrap();
        assert_eq!(p["metadata"]["generation"], 1);
        assert!(p.get("status").is_none(), "create drops status");
        let merge = |s: &mut Store, sub: Option<&str>, body: Value| {
            s.patch(
                &pools,
                "default",
                "p",
                sub,
                PatchKind::Merge,
                body.to_string().as_bytes(),
                &opts(),
            )
            .unwrap()
            .0
        };
        let p = merge(
            &mut s,
            None,
            json!({"spec": {"a": 2}, "status": {"ignored": true}}),
        );
        assert_eq!(p["metadata"]["generation"], 2);
        assert!(p.get("status").is_none(), "main resource ignores status");
        let p = merge(
            &mut s,
            Some("status"),
            json!({"status": {"ok": true}, "metadata": {"annotations": {"a": "b"}}}),
        );
        assert_eq!(p["metadata"]["generation"], 2);
        assert_eq!(p["status"]["ok"], true);
        assert!(
            p["metadata"].get("annotations").is_none(),
            "CR /status drops metadata changes"
        );
        let Deleted::Pending(p) = s.delete(&pools, "default", "p", &json!({}), false).unwrap()
        else {
            panic!("finalizer keeps it")
        };
        assert_eq!(p["metadata"]["generation"], 3);
        // Services persist metadata written through /status.
        let svc = info(&s, "", "v1", "services");
        s.create(
            &svc,
            Some("default"),
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            &opts(),
        )
        .unwrap();
        let (o, _) = s
            .patch(
                &svc,
                "default",
                "s",
                Some("status"),
                PatchKind::Merge,
                br#"{"metadata":{"annotations":{"a":"b"}},"spec":{"type":"NodePort"}}"#,
                &opts(),
            )
            .unwrap();
        assert_eq!(o["metadata"]["annotations"]["a"], "b");
        assert_eq!(o["spec"]["type"], "ClusterIP");
        assert!(o["metadata"].get("generation").is_none());
    }

    #[test]
    fn finalizers_and_delete() {
        let mut s = store();
        let cm = info(&s, "", "v1", "configmaps");
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "a", "finalizers": ["x.io/f"]}}),
            &opts(),
        )
        .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &cm,
            &ListOpts {
                resource_version: Some(s.rv.to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        let Deleted::Pending(p) = s.delete(&cm, "default", "a", &json!({}), false).unwrap() else {
            panic!()
        };
        assert!(p["metadata"]["deletionTimestamp"].is_string());
        let Deleted::Pending(p2) = s.delete(&cm, "default", "a", &json!({}), false).unwrap() else {
            panic!()
        };
        assert_eq!(rv(&p), rv(&p2), "repeated delete is a no-op");
        let e = s
            .patch(
                &cm,
                "default",
                "a",
                None,
                PatchKind::Merge,
                br#"{"metadata":{"finalizers":["x.io/f","x.io/g"]}}"#,
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
        let (fin, _) = s
            .patch(
                &cm,
                "default",
                "a",
                None,
                PatchKind::Merge,
                br#"{"metadata":{"finalizers":null}}"#,
                &opts(),
            )
            .unwrap();
        assert!(s.get(&cm, "default", "a").is_err());
        let evs = drain(&mut rx);
        assert_eq!(
            evs.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["MODIFIED", "DELETED"]
        );
        assert_eq!(evs[1].2, rv(&fin));
        // Preconditions.
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "b"}}),
            &opts(),
        )
        .unwrap();
        let e = s
            .delete(
                &cm,
                "default",
                "b",
                &json!({"preconditions": {"uid": "nope"}}),
                false,
            )
            .unwrap_err();
        assert_eq!(e.code, 409);
    }

    #[test]
    fn selector_transitions() {
        let mut s = store();
        let cm = info(&s, "", "v1", "configmaps");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let filter = Filter {
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        };
        s.watch(
            &cm,
            &ListOpts {
                filter,
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}}),
            &opts(),
        )
        .unwrap();
        s.patch(
            &cm,
            "default",
            "a",
            None,
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"app":"y"}}}"#,
            &opts(),
        )
        .unwrap();
        s.patch(
            &cm,
            "default",
            "a",
            None,
            PatchKind::Merge,
            br#"{"data":{"k":"v"}}"#,
            &opts(),
        )
        .unwrap();
        s.patch(
            &cm,
            "default",
            "a",
            None,
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"app":"x"}}}"#,
            &opts(),
        )
        .unwrap();
        let evs: Vec<String> = drain(&mut rx).into_iter().map(|e| e.0).collect();
        assert_eq!(evs, ["ADDED", "DELETED", "ADDED"]);
    }

    #[test]
    fn resume_and_expiry() {
        let mut s = store();
        s.cfg.history_max_events = 10;
        let cm = info(&s, "", "v1", "configmaps");
        let start = s.rv;
        for i in 0..11 {
            s.create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": format!("c{i}")}}),
                &opts(),
            )
            .unwrap();
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &cm,
            &ListOpts {
                resource_version: Some(start.to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        assert_eq!(
            drain(&mut rx),
            vec![("ERROR".to_owned(), "410".to_owned(), 0)]
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &cm,
            &ListOpts {
                resource_version: Some((s.rv - 3).to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        assert_eq!(drain(&mut rx).len(), 3);
        // Exact and continue tokens past the window are 410.
        let e = s
            .list(
                &cm,
                &ListOpts {
                    resource_version: Some(start.to_string()),
                    rv_match: Some("Exact".into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code, 410);
    }

    #[test]
    fn paged_list_is_a_snapshot() {
        let mut s = store();
        let cm = info(&s, "", "v1", "configmaps");
        for i in 0..5 {
            s.create(
                &cm,
                Some("default"),
                json!({"metadata": {"name": format!("c{i}")}}),
                &opts(),
            )
            .unwrap();
        }
        let p1 = s
            .list(
                &cm,
                &ListOpts {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .unwrap();
        s.delete(&cm, "default", "c3", &json!({}), false).unwrap();
        s.create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "c9"}}),
            &opts(),
        )
        .unwrap();
        let p2 = s
            .list(
                &cm,
                &ListOpts {
                    limit: Some(2),
                    continue_token: p1.continue_token.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        let p3 = s
            .list(
                &cm,
                &ListOpts {
                    limit: Some(2),
                    continue_token: p2.continue_token.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((p1.rv, p2.rv, p3.rv), (p1.rv, p1.rv, p1.rv));
        let names: Vec<&str> = p1
            .items
            .iter()
            .chain(&p2.items)
            .chain(&p3.items)
            .map(|o| meta_str(o, "name").unwrap())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
        assert!(p3.continue_token.is_none());
    }

    #[test]
    fn namespace_deletion_removes_contents_first() {
        let mut s = store();
        let nsi = info(&s, "", "v1", "namespaces");
        let svc = info(&s, "", "v1", "services");
        s.create(&nsi, None, json!({"metadata": {"name": "t"}}), &opts())
            .unwrap();
        s.create(
            &svc,
            Some("t"),
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            &opts(),
        )
        .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let now = Some(s.rv.to_string());
        s.watch(
            &svc,
            &ListOpts {
                resource_version: now.clone(),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        s.watch(
            &nsi,
            &ListOpts {
                resource_version: now,
                ..Default::default()
            },
            false,
            tx2,
            WatchTags::default(),
        )
        .unwrap();
        s.delete(&nsi, "", "t", &json!({}), false).unwrap();
        let svc_del = drain(&mut rx)
            .into_iter()
            .find(|e| e.0 == "DELETED")
            .unwrap()
            .2;
        let ns_del = drain(&mut rx2)
            .into_iter()
            .find(|e| e.0 == "DELETED")
            .unwrap()
            .2;
        assert!(svc_del < ns_del);
        assert!(s.get(&nsi, "", "t").is_err());
        let e = s
            .create(&svc, Some("t"), json!({"metadata": {"name": "s"}}), &opts())
            .unwrap_err();
        assert_eq!(e.code, 404);
    }

    #[test]
    fn apply_ownership_conflicts_and_removal() {
        let (mut s, pools) = with_crd();
        let apply = |s: &mut Store, mgr: &str, force: bool, spec: Value| {
            let body = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": spec});
            let o = WriteOpts {
                field_manager: Some(mgr.into()),
                force: Some(force),
                ..opts()
            };
            s.patch(
                &pools,
                "default",
                "p",
                None,
                PatchKind::Apply,
                body.to_string().as_bytes(),
                &o,
            )
        };
        let (created, was_created) = apply(&mut s, "a", false, json!({"x": 1, "y": 1})).unwrap();
        assert!(was_created);
        assert!(created["metadata"]["managedFields"].is_array());
        let e = apply(&mut s, "b", false, json!({"x": 2})).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e.message.contains("conflict"), "{}", e.message);
        let (o, _) = apply(&mut s, "a", false, json!({"x": 1})).unwrap();
        assert!(o["spec"].get("y").is_none(), "omitted field removed");
        let (o, _) = apply(&mut s, "b", true, json!({"x": 2})).unwrap();
        assert_eq!(o["spec"]["x"], 2);
        let e = s
            .patch(
                &pools,
                "default",
                "p",
                None,
                PatchKind::Apply,
                b"{}",
                &opts(),
            )
            .unwrap_err();
        assert_eq!(e.code, 422, "fieldManager is required");
    }

    #[test]
    fn crd_delete_removes_objects_and_routes() {
        let (mut s, pools) = with_crd();
        s.create(
            &pools,
            Some("default"),
            json!({"metadata": {"name": "p"}}),
            &opts(),
        )
        .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.watch(
            &pools,
            &ListOpts {
                resource_version: Some(s.rv.to_string()),
                ..Default::default()
            },
            false,
            tx,
            WatchTags::default(),
        )
        .unwrap();
        let crd = info(
            &s,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        );
        let c = s.get(&crd, "", "ipaddresspools.ferrolb.io").unwrap();
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        s.delete(&crd, "", "ipaddresspools.ferrolb.io", &json!({}), false)
            .unwrap();
        assert!(
            s.registry
                .get("ferrolb.io", "v1alpha1", "ipaddresspools")
                .is_none()
        );
        let evs: Vec<String> = drain(&mut rx).into_iter().map(|e| e.0).collect();
        assert_eq!(evs[0], "DELETED");
        assert!(evs[1].starts_with("End"), "{evs:?}");
        let bad = json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"wrong.ferrolb.io"},
            "spec":{"group":"ferrolb.io","scope":"Namespaced","names":{"kind":"X","plural":"xs"},
            "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{}}}}}]}});
        assert_eq!(s.create(&crd, None, bad, &opts()).unwrap_err().code, 422);
    }

    #[test]
    fn update_preconditions() {
        let mut s = store();
        let lease = info(&s, "coordination.k8s.io", "v1", "leases");
        let l = s
            .create(
                &lease,
                Some("default"),
                json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
                &opts(),
            )
            .unwrap();
        let mut body = (*l).clone();
        body["spec"]["holderIdentity"] = json!("b");
        s.update(&lease, "default", "l", None, body.clone(), &opts())
            .unwrap();
        assert_eq!(
            s.update(&lease, "default", "l", None, body.clone(), &opts())
                .unwrap_err()
                .code,
            409
        );
        body["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(
            s.update(&lease, "default", "l", None, body.clone(), &opts())
                .unwrap_err()
                .code,
            422
        );
        body["metadata"]["name"] = json!("other");
        assert_eq!(
            s.update(&lease, "default", "l", None, body, &opts())
                .unwrap_err()
                .code,
            400
        );
        // PUT may create a Lease.
        let (_, created) = s
            .update(
                &lease,
                "default",
                "new",
                None,
                json!({"metadata": {"name": "new"}}),
                &opts(),
            )
            .unwrap();
        assert!(created);
        let bad = json!({"metadata": {"name": "bad"}, "spec": {"leaseDurationSeconds": 0}});
        assert_eq!(
            s.create(&lease, Some("default"), bad, &opts())
                .unwrap_err()
                .code,
            422
        );
    }
}
