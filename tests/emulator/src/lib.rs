//! A Kubernetes API server emulator for ferrolb's tests, benchmarks and lab.
//!
//! It serves the subset of kube-apiserver behaviour that kube-rs clients
//! (`Api`, `watcher`, `reflector`, `Controller`, `finalizer`, events
//! `Recorder`, lease code) and a stock `kubectl` (get, `apply --server-side`,
//! delete) can observe; see `docs/emulator.md` and the behavioural spec.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::EmulatorError> {
//! use kube_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! let client = emu.client().await?;
//! emu.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n")?;
//! # let _ = client;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod errors;
mod faults;
mod hooks;
mod journal;
mod kinds;
mod machinery;
mod resources;
mod server;
mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub use faults::{RequestAttrs, RequestMatcher};
pub use journal::{Journal, JournalEntry, WatchEventRecord};
pub use store::DropMode;

use faults::{Action, FaultTable, Rule};
use server::Shared;
use store::{PatchKind, Store, StoreConfig, WriteOpts};

/// Errors of the emulator's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// Binding or serving the socket failed.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
    /// A fixture could not be parsed.
    #[error("fixture parse error: {0}")]
    Parse(String),
    /// The API rejected a fixture or hook request.
    #[error("API error {code} {reason}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message.
        message: String,
    },
    /// The configuration is invalid (e.g. a bad service CIDR).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Building the kube client failed.
    #[error("kube client error: {0}")]
    Kube(String),
}

impl From<errors::ApiError> for EmulatorError {
    fn from(e: errors::ApiError) -> Self {
        Self::Api {
            code: e.code,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// Emulator settings. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Listen address; port 0 picks an ephemeral port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Periodic bookmark interval for watches that allow bookmarks
    /// (`None` = only the pre-timeout bookmark). Default 60 s, like upstream.
    pub bookmark_interval: Option<Duration>,
    /// History window: number of events kept for resumes. Default 10 000.
    pub history_max_events: usize,
    /// History window: age of events kept for resumes. Default 5 min.
    pub history_max_age: Duration,
    /// Watch timeout when the client sends no `timeoutSeconds`. Default 30 min.
    pub default_watch_timeout: Duration,
    /// `/version` gitVersion. Default `v1.33.4` (k8s-openapi feature `v1_33`).
    pub git_version: String,
    /// Seed for uids and generateName suffixes (reproducible runs).
    pub seed: Option<u64>,
    /// Service cluster IP ranges: at most one IPv4 and one IPv6 CIDR are used.
    /// Default `["10.96.0.0/12"]`; add an IPv6 CIDR to enable dual-stack.
    pub service_cidrs: Vec<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Some(Duration::from_secs(60)),
            history_max_events: 10_000,
            history_max_age: Duration::from_secs(300),
            default_watch_timeout: Duration::from_secs(1800),
            git_version: "v1.33.4".to_owned(),
            seed: None,
            service_cidrs: vec!["10.96.0.0/12".to_owned()],
        }
    }
}

/// Bookmark control (F8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookmarkMode {
    /// Periodic bookmarks at this interval.
    Interval(Duration),
    /// No periodic bookmarks (the pre-timeout bookmark is still sent).
    Off,
    /// One bookmark on every bookmark-enabled watch, now.
    Now,
}

/// A running emulator. Dropping it stops the listener.
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr())
            .finish()
    }
}

impl Emulator {
    /// Starts the server on `cfg.listen`. Must run inside a tokio runtime.
    pub async fn start(cfg: EmulatorConfig) -> Result<Self, EmulatorError> {
        let store = Store::new(StoreConfig {
            history_max_events: cfg.history_max_events,
            history_max_age: cfg.history_max_age,
            service_cidrs: cfg.service_cidrs.clone(),
            seed: cfg.seed,
        })
        .map_err(EmulatorError::Config)?;
        let queued = store.queued.clone();
        let committed = store.committed.clone();
        let (paused, _) = tokio::sync::watch::channel(false);
        let (bookmark_interval, _) = tokio::sync::watch::channel(cfg.bookmark_interval);
        let listen = cfg.listen;
        let (control, mut control_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            control,
            store: Mutex::new(store),
            faults: Mutex::new(FaultTable::default()),
            fault_rng: Mutex::new(cfg.seed.unwrap_or(0x2545_F491_4F6C_DD1D) | 1),
            journal: journal::JournalStore::default(),
            paused,
            bookmark_interval,
            event_delay_us: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            queued,
            committed,
            addr: Mutex::new(listen),
            listener: tokio::sync::Mutex::new(None),
            cfg,
        });
        server::start_listener(&shared, listen).await?;
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(c) = control_rx.recv().await {
                let Some(shared) = weak.upgrade() else { break };
                tokio::time::sleep(Duration::from_millis(50)).await;
                let f = Faults { shared };
                match c {
                    server::Control::Stop => f.stop().await,
                    server::Control::Restart { keep_state } => {
                        let _ = f.restart(keep_state).await;
                    }
                }
            }
        });
        Ok(Self { shared })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A kubeconfig (cluster, user, context `emulator`, namespace `default`).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        let doc = kubeconfig_json(&self.url());
        serde_json::from_value(doc).unwrap_or_default()
    }

    /// Writes the kubeconfig (JSON, which kubectl reads as YAML) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), EmulatorError> {
        let text = serde_json::to_string_pretty(&kubeconfig_json(&self.url()))
            .map_err(|e| EmulatorError::Parse(e.to_string()))?;
        std::fs::write(path, text)?;
        Ok(())
    }

    /// A kube client configured from [`Self::kubeconfig`].
    pub async fn client(&self) -> Result<kube::Client, EmulatorError> {
        let opts = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(self.kubeconfig(), &opts)
            .await
            .map_err(|e| EmulatorError::Kube(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| EmulatorError::Kube(e.to_string()))
    }

    /// Creates or updates every object in a (multi-document) YAML or JSON
    /// string, in order (F11). CRDs register at once, so CRs may follow
    /// them in the same string. Returns the stored objects.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, EmulatorError> {
        apply_docs(&self.shared, yaml)
    }

    /// Applies every `*.yaml`, `*.yml` and `*.json` file in `dir`, sorted by
    /// name. Returns the number of objects applied.
    pub fn apply_yaml_dir(&self, dir: impl AsRef<Path>) -> Result<usize, EmulatorError> {
        apply_dir(&self.shared, dir.as_ref())
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
        }
    }

    /// A snapshot of the request journal.
    pub fn journal(&self) -> Journal {
        Journal {
            entries: self.shared.journal.snapshot(),
        }
    }

    /// Forgets every journal entry recorded so far.
    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Returns once no non-watch request is in flight and every watch has
    /// written all queued events (F10). Wrap in a timeout in tests.
    pub async fn wait_idle(&self) {
        wait_idle(&self.shared).await;
    }

    /// The current value of the global resourceVersion counter.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Number of open watch streams.
    pub fn watch_count(&self) -> usize {
        self.shared.store().watch_count()
    }

    /// Stops the listener and closes every connection.
    pub async fn shutdown(self) {
        server::stop_listener(&self.shared).await;
        self.shared.store().end_all_watches(DropMode::Clean);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(mut g) = self.shared.listener.try_lock()
            && let Some((token, _)) = g.take()
        {
            token.cancel();
        }
    }
}

pub(crate) async fn wait_idle(shared: &Shared) {
    loop {
        if shared.inflight.load(Ordering::Acquire) == 0
            && shared.queued.load(Ordering::Acquire) <= 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn kubeconfig_json(url: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "emulator-any-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"}}],
        "current-context": "emulator",
        "preferences": {}
    })
}

fn apply_dir(shared: &Arc<Shared>, dir: &Path) -> Result<usize, EmulatorError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    let mut n = 0;
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        n += apply_docs(shared, &text)
            .map_err(|e| match e {
                EmulatorError::Parse(m) => EmulatorError::Parse(format!("{}: {m}", f.display())),
                other => other,
            })?
            .len();
    }
    Ok(n)
}

fn apply_docs(shared: &Arc<Shared>, text: &str) -> Result<Vec<Value>, EmulatorError> {
    let docs: Vec<Value> =
        if text.trim_start().starts_with('{') || text.trim_start().starts_with('[') {
            match serde_json::from_str::<Value>(text)
                .map_err(|e| EmulatorError::Parse(e.to_string()))?
            {
                Value::Array(a) => a,
                v => vec![v],
            }
        } else {
            serde_saphyr::from_multiple::<Value>(text)
                .map_err(|e| EmulatorError::Parse(e.to_string()))?
        };
    let mut flat = Vec::new();
    for d in docs {
        if d.is_null() {
            continue;
        }
        let is_list = d
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && d.get("items").is_some();
        if is_list {
            flat.extend(
                d.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        } else {
            flat.push(d);
        }
    }
    let mut out = Vec::new();
    for d in flat {
        out.push(apply_one(shared, d)?);
    }
    Ok(out)
}

fn apply_one(shared: &Arc<Shared>, doc: Value) -> Result<Value, EmulatorError> {
    let av = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut st = shared.store();
    let info = st
        .registry
        .by_kind(av, kind)
        .ok_or_else(|| EmulatorError::Parse(format!("unknown kind {kind} in {av}")))?;
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let ns = if info.namespaced {
        doc.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned()
    } else {
        String::new()
    };
    let fixture_ns_missing = info.namespaced
        && st
            .get_obj("namespaces", &(String::new(), ns.clone()))
            .is_none();
    if fixture_ns_missing && let Some(nsinfo) = st.registry.get("", "v1", "namespaces") {
        st.create(
            &nsinfo,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            &WriteOpts::default(),
        )?;
    }
    let opts = WriteOpts {
        field_manager: Some("emulator-fixtures".into()),
        force: Some(true),
        ..Default::default()
    };
    let body = serde_json::to_vec(&doc).map_err(|e| EmulatorError::Parse(e.to_string()))?;
    let (obj, _) = st.patch(&info, &ns, &name, None, PatchKind::Apply, &body, &opts)?;
    let status = doc.get("status").filter(|s| !s.is_null());
    // Server-side apply through the main resource ignores `status` (E17), even for Nodes whose
    // plain create keeps it, so a fixture's status always goes through `/status`.
    if let (Some(status), true) = (status, info.status_subresource) {
        let patch = serde_json::to_vec(&json!({"status": status}))
            .map_err(|e| EmulatorError::Parse(e.to_string()))?;
        let (obj, _) = st.patch(
            &info,
            &ns,
            &name,
            Some("status"),
            PatchKind::Merge,
            &patch,
            &WriteOpts::default(),
        )?;
        return Ok((*obj).clone());
    }
    Ok((*obj).clone())
}

/// The fault-injection handle (spec §8). Cheap to clone.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    fn add(&self, matcher: RequestMatcher, action: Action, remaining: Option<u32>) {
        self.shared.faults().rules.push(Rule {
            matcher,
            action,
            remaining,
        });
    }

    /// F1: ends every open watch the matcher selects (verb and watch fields
    /// are ignored). Returns how many were dropped.
    pub fn drop_watches(&self, matcher: &RequestMatcher, mode: DropMode) -> usize {
        let pred = |t: &store::WatchTags| {
            let attrs = RequestAttrs {
                verb: "watch".into(),
                group: t.group.clone(),
                resource: t.resource.clone(),
                subresource: None,
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                watch: true,
                user_agent: t.user_agent.clone(),
            };
            let mut m = matcher.clone();
            m.verb = None;
            m.watch = None;
            m.matches(&attrs)
        };
        self.shared.store().drop_watches(&pred, mode)
    }

    /// F2: expires history (and continue tokens) up to `up_to`, or all of it.
    pub fn compact(&self, up_to: Option<u64>) {
        self.shared.store().compact(up_to);
    }

    /// F3: the next `n` matching requests fail with a synthetic Status.
    /// The reason defaults from the code; `retry_after` sets `Retry-After`.
    pub fn fail_next(
        &self,
        n: u32,
        matcher: RequestMatcher,
        code: u16,
        reason: Option<&str>,
        retry_after: Option<u64>,
    ) {
        let action = Action::Fail {
            code,
            reason: reason.map(str::to_owned),
            message: None,
            retry_after,
        };
        self.add(matcher, action, Some(n));
    }

    /// F3: every matching request fails until [`Self::clear`].
    pub fn fail_always(
        &self,
        matcher: RequestMatcher,
        code: u16,
        reason: Option<&str>,
        retry_after: Option<u64>,
    ) {
        let action = Action::Fail {
            code,
            reason: reason.map(str::to_owned),
            message: None,
            retry_after,
        };
        self.add(matcher, action, None);
    }

    /// F4: delays matching requests by `duration` plus up to `jitter`.
    pub fn delay(&self, matcher: RequestMatcher, duration: Duration, jitter: Duration) {
        self.add(matcher, Action::Delay { duration, jitter }, None);
    }

    /// F4: delays every watch event by `duration` (zero turns it off).
    pub fn delay_events(&self, duration: Duration) {
        self.shared.event_delay_us.store(
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }

    /// F5: holds every request and watch event until [`Self::resume`].
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// F5: releases what [`Self::pause`] held.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// F5: closes the listener and every connection; state is kept.
    pub async fn stop(&self) {
        server::stop_listener(&self.shared).await;
        self.shared.store().end_all_watches(DropMode::Abort);
    }

    /// F5: listens again on the same address after [`Self::stop`].
    pub async fn start(&self) -> Result<(), EmulatorError> {
        if self.shared.listener.lock().await.is_some() {
            return Ok(());
        }
        let addr = self.shared.addr();
        server::start_listener(&self.shared, addr).await?;
        Ok(())
    }

    /// F6: drops everything in flight and listens again. With
    /// `keep_state = false`, every object but CRDs is wiped (the system
    /// namespaces are re-created), the RV counter keeps counting, and every
    /// older RV is compacted, so clients must relist.
    pub async fn restart(&self, keep_state: bool) -> Result<(), EmulatorError> {
        self.stop().await;
        if !keep_state {
            self.shared.store().wipe();
        }
        self.start().await
    }

    /// F7: makes a real write (an annotation bump) so cached RVs go stale.
    /// Returns the new resourceVersion.
    pub fn touch(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<String, EmulatorError> {
        let mut st = self.shared.store();
        let info = st
            .registry
            .by_gvr
            .values()
            .find(|i| i.group == group && i.plural == resource)
            .cloned()
            .ok_or_else(|| EmulatorError::from(errors::ApiError::path_not_found()))?;
        let obj = st.touch(&info, namespace, name)?;
        Ok(store::meta_str(&obj, "resourceVersion")
            .unwrap_or("")
            .to_owned())
    }

    /// F7: the next `n` matching requests get 409 Conflict without writing.
    pub fn conflict_next(&self, n: u32, matcher: RequestMatcher) {
        self.add(matcher, Action::Conflict, Some(n));
    }

    /// F8: periodic bookmarks on, off, or one now.
    pub fn bookmarks(&self, mode: BookmarkMode) {
        match mode {
            BookmarkMode::Interval(d) => {
                self.shared.bookmark_interval.send_replace(Some(d));
            }
            BookmarkMode::Off => {
                self.shared.bookmark_interval.send_replace(None);
            }
            BookmarkMode::Now => self.shared.store().bookmark_now(),
        }
    }

    /// F9: matching requests get 403 Forbidden until [`Self::clear`].
    pub fn forbid(&self, matcher: RequestMatcher) {
        self.add(matcher, Action::Forbid, None);
    }

    /// Removes every request rule (fail, conflict, delay, forbid) and the
    /// event delay, and resumes if paused.
    pub fn clear(&self) {
        self.shared.faults().rules.clear();
        self.delay_events(Duration::ZERO);
        self.resume();
    }
}
