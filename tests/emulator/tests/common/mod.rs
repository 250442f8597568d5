//! Shared helpers for the client-level conformance suite (`conformance_*.rs`).
//!
//! Every test starts its own in-process emulator and talks to it only through
//! unmodified kube clients, raw HTTP through a kube `Client`, or the real
//! `kubectl`. Waiting is always on a condition with a deadline.

// Each test binary uses a different subset of these helpers, and this is test
// support code: a panic here is a failed assertion, like in a test body.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use kube_emulator::{Emulator, EmulatorConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Generous deadline for anything a test waits on; normally reached in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An emulator plus a default kube client for it.
pub struct Env {
    /// The in-process emulator.
    pub emu: Emulator,
    /// A kube client built from the emulator's kubeconfig (retries on, as shipped).
    pub client: Client,
}

/// Starts an emulator with default settings.
pub async fn start() -> Env {
    start_with(EmulatorConfig::default()).await
}

/// Starts an emulator with `cfg`.
pub async fn start_with(cfg: EmulatorConfig) -> Env {
    let emu = Emulator::start(cfg).await.expect("emulator starts");
    let client = emu
        .client()
        .await
        .expect("kube client from the emulator's kubeconfig");
    Env { emu, client }
}

/// Starts an emulator with default settings and the chart's CRDs installed.
pub async fn start_with_crds() -> Env {
    let env = start().await;
    install_crds(&env.emu);
    env
}

impl Env {
    /// An `Api` for a namespaced kind in `default`, through the default client.
    pub fn default_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        in_default(&self.client)
    }
}

/// An `Api` for a namespaced kind in `default`, through `client`.
pub fn in_default<K>(client: &Client) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(client.clone(), "default")
}

/// Starts an emulator with the chart's CRDs installed, plus a client for it without kube's
/// retries (see [`no_retry_client`]).
pub async fn start_with_crds_no_retry() -> (Env, Client) {
    let env = start_with_crds().await;
    let client = no_retry_client(&env.emu).await;
    (env, client)
}

/// Starts an emulator that sends periodic bookmarks every 100 ms.
pub async fn start_fast_bookmarks() -> Env {
    start_with(EmulatorConfig {
        bookmark_interval: Some(Duration::from_millis(100)),
        ..EmulatorConfig::default()
    })
    .await
}

/// A kube client with kube's default retry layer (429/503/504) switched off,
/// so a test sees exactly the status the server answered.
pub async fn no_retry_client(emu: &Emulator) -> Client {
    let mut cfg = kube::Config::from_custom_kubeconfig(
        emu.kubeconfig(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config from kubeconfig");
    cfg.default_retry = false;
    Client::try_from(cfg).expect("client")
}

/// Polls `f` until it returns true; panics with `what` after [`DEADLINE`].
pub async fn wait_until<F: FnMut() -> bool>(what: &str, mut f: F) {
    let ok = tokio::time::timeout(DEADLINE, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "timed out after {DEADLINE:?} waiting for: {what}"
    );
}

/// Like [`wait_until`], for an async condition.
pub async fn wait_until_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let ok = tokio::time::timeout(DEADLINE, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "timed out after {DEADLINE:?} waiting for: {what}"
    );
}

/// Runs `fut` with the [`DEADLINE`]; panics with `what` when it does not finish.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?}: {what}"),
    }
}

/// The first answer from the server to `f` after the emulator dropped its connections (F5
/// stop/start, F6 restart). A request can still go out on a pooled connection that the server
/// has already closed, and kube does not retry transport errors, so those are retried until
/// [`DEADLINE`]; an answer from the server (success or a `Status`) is returned as it is.
pub async fn after_reconnect<T, F, Fut>(mut f: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    within("an answer from the server after reconnecting", async {
        loop {
            match f().await {
                Err(e) if !matches!(e, kube::Error::Api(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answer => break answer,
            }
        }
    })
    .await
}

/// The API `Status` of a failed kube call; panics on success or a non-API error.
pub fn api_status<T: std::fmt::Debug>(r: kube::Result<T>) -> Status {
    match r {
        Ok(v) => panic!("expected an API error, got success: {v:?}"),
        Err(kube::Error::Api(s)) => *s,
        Err(e) => panic!("expected an API error, got: {e}"),
    }
}

/// Builds a typed object from JSON (test fixtures).
pub fn obj<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture JSON decodes")
}

/// A LoadBalancer Service with one port and the given labels.
pub fn lb_service(name: &str, labels: &[(&str, &str)]) -> Service {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    obj(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
}

/// A ConfigMap with the given labels and one data key.
pub fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    obj(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}))
}

/// Creates a plain ConfigMap (see [`configmap`]) and returns it as stored; panics on a
/// failure.
pub async fn create_configmap(api: &Api<ConfigMap>, name: &str) -> ConfigMap {
    api.create(&PostParams::default(), &configmap(name, &[]))
        .await
        .unwrap_or_else(|e| panic!("creating ConfigMap {name}: {e}"))
}

/// Creates [`lb_service`] `name` with `labels` and returns it as stored; panics on a failure.
pub async fn create_lb_service(api: &Api<Service>, name: &str, labels: &[(&str, &str)]) -> Service {
    api.create(&PostParams::default(), &lb_service(name, labels))
        .await
        .unwrap_or_else(|e| panic!("creating Service {name}: {e}"))
}

/// Creates one plain ConfigMap (see [`configmap`]) per name, in order; panics on a failure.
pub async fn create_configmaps(api: &Api<ConfigMap>, names: &[&str]) {
    for name in names {
        create_configmap(api, name).await;
    }
}

/// The collection's resourceVersion, from a full list.
pub async fn list_rv<K>(api: &Api<K>) -> String
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a list carries a resourceVersion")
}

/// A JSON merge patch with default parameters (what `kubectl patch --type=merge` sends).
pub async fn merge_patch<K>(api: &Api<K>, name: &str, patch: Value) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// The names in a full list of the collection, in list order.
pub async fn list_names<K, C>(api: &Api<K>) -> C
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    C: FromIterator<String>,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect()
}

/// The repository root (this crate lives in `tests/emulator`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The generated CRDs of the chart.
pub fn crds_dir() -> PathBuf {
    repo_root().join("charts/ferrolb/crds")
}

/// The chart's example custom resources.
pub fn examples_dir() -> PathBuf {
    repo_root().join("charts/ferrolb/examples")
}

/// Installs the generated CRDs as fixtures (not the path under test).
pub fn install_crds(emu: &Emulator) {
    let n = emu
        .apply_yaml_dir(crds_dir())
        .expect("generated CRDs load as fixtures");
    assert!(n >= 3, "expected at least 3 CRDs, got {n}");
}

/// An `IPAddressPool` with one CIDR.
pub fn pool(name: &str, cidr: &str) -> ferrolb_shared::crd::IPAddressPool {
    obj(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": name},
        "spec": {"addresses": [cidr]}
    }))
}

// ---------------------------------------------------------------------------
// Raw HTTP through a kube client (same transport, no typed decoding).

/// A raw HTTP answer.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON; panics if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// Asserts the HTTP status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, code: u16) {
        assert_eq!(self.status, code, "{}", String::from_utf8_lossy(&self.body));
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// Sends one raw request and collects the whole answer.
pub async fn raw(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> RawResponse {
    raw_with(
        client,
        method,
        uri,
        &[("content-type", content_type.unwrap_or("application/json"))],
        body,
    )
    .await
}

/// Sends one raw request with extra headers and collects the whole answer.
pub async fn raw_with(
    client: &Client,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawResponse {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(kube::client::Body::from(body))
        .expect("request builds");
    let res = within(&format!("{method} {uri}"), client.send(req))
        .await
        .expect("transport works");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = within("response body", res.into_body().collect_bytes())
        .await
        .expect("body reads");
    RawResponse {
        status,
        headers,
        body,
    }
}

/// GET a path and return the answer.
pub async fn raw_get(client: &Client, uri: &str) -> RawResponse {
    raw(client, "GET", uri, None, Vec::new()).await
}

/// An open raw watch: the response head plus a line reader over the body.
pub struct RawWatch {
    /// HTTP status of the response head.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    body: kube::client::Body,
    buf: Vec<u8>,
    /// Set once the body has ended.
    pub ended: bool,
}

impl RawWatch {
    /// Opens `uri` (a watch URL) and returns after the response head.
    pub async fn open(client: &Client, uri: &str) -> Self {
        let req = http::Request::builder()
            .method("GET")
            .uri(uri)
            .body(kube::client::Body::from(Vec::new()))
            .expect("request builds");
        let res = within(&format!("watch {uri}"), client.send(req))
            .await
            .expect("transport works");
        Self {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.into_body(),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next complete line (one JSON event), or `None` at end of stream.
    /// Panics when nothing arrives within `wait`.
    pub async fn next_line(&mut self, wait: Duration) -> Option<String> {
        let fut = async {
            loop {
                if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    return Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
                }
                if self.ended {
                    return None;
                }
                match self.body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            self.buf.extend_from_slice(&d);
                        }
                    }
                    Some(Err(_)) | None => self.ended = true,
                }
            }
        };
        match tokio::time::timeout(wait, fut).await {
            Ok(v) => v,
            Err(_) => panic!("no watch line within {wait:?}"),
        }
    }

    /// The next event as JSON (`{"type", "object"}`), or `None` at end of stream.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        let line = self.next_line(wait).await?;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {line}")),
        )
    }

    /// Reads events until one matches `pred` (skipping others); returns it.
    pub async fn until(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            match self.next_event(DEADLINE).await {
                Some(ev) if pred(&ev) => return ev,
                Some(_) => {}
                None => panic!("watch ended before: {what}"),
            }
        }
    }

    /// Reads non-bookmark events for `quiet`, and returns them (used to
    /// prove that nothing else arrives).
    pub async fn drain_for(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let end = tokio::time::Instant::now() + quiet;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.ended {
                return out;
            }
            let fut = async {
                loop {
                    if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = self.buf.drain(..=pos).collect();
                        return Some(line);
                    }
                    match self.body.frame().await {
                        Some(Ok(f)) => {
                            if let Ok(d) = f.into_data() {
                                self.buf.extend_from_slice(&d);
                            }
                        }
                        Some(Err(_)) | None => return None,
                    }
                }
            };
            match tokio::time::timeout(left, fut).await {
                Ok(Some(line)) => {
                    let v: Value = serde_json::from_slice(&line).expect("watch line is JSON");
                    if v["type"] != "BOOKMARK" {
                        out.push(v);
                    }
                }
                Ok(None) => {
                    self.ended = true;
                    return out;
                }
                Err(_) => return out,
            }
        }
    }
}

/// `type` and `object.metadata.name` of a raw event.
pub fn ev_kind_name(ev: &Value) -> (String, String) {
    (
        ev["type"].as_str().unwrap_or("").to_owned(),
        ev.pointer("/object/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    )
}

/// `object.metadata.resourceVersion` of a raw event, as a number.
pub fn ev_rv(ev: &Value) -> u64 {
    ev.pointer("/object/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("event without a numeric resourceVersion: {ev}"))
}

/// Parses a resourceVersion string.
pub fn rv_num(rv: Option<&str>) -> u64 {
    rv.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a numeric resourceVersion: {rv:?}"))
}

// ---------------------------------------------------------------------------
// Recording what a kube watcher stream yields.

/// One item a kube watcher yielded, reduced to what tests assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `Event::Init` (a (re)list started).
    Init,
    /// `Event::InitApply(name)`.
    InitApply(String),
    /// `Event::InitDone`.
    InitDone,
    /// `Event::Apply(name, rv)`.
    Apply(String, String),
    /// `Event::Delete(name, rv)`.
    Delete(String, String),
    /// An error item.
    Error(String),
}

/// A background task that records every watcher item.
pub struct Recorder {
    /// Everything seen so far.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Spawns a task draining `stream` into the record.
    pub fn spawn<K, S>(stream: S) -> Self
    where
        K: Resource + Send + 'static,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let rec = match item {
                    Ok(watcher::Event::Init) => Seen::Init,
                    Ok(watcher::Event::InitApply(o)) => Seen::InitApply(o.name_any()),
                    Ok(watcher::Event::InitDone) => Seen::InitDone,
                    Ok(watcher::Event::Apply(o)) => {
                        Seen::Apply(o.name_any(), o.resource_version().unwrap_or_default())
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        Seen::Delete(o.name_any(), o.resource_version().unwrap_or_default())
                    }
                    Err(e) => Seen::Error(e.to_string()),
                };
                s2.lock().expect("record lock").push(rec);
            }
        });
        Self { seen, task }
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().expect("record lock").clone()
    }

    /// How many items satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .lock()
            .expect("record lock")
            .iter()
            .filter(|s| pred(s))
            .count()
    }

    /// Waits until some item satisfies `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Seen) -> bool) {
        wait_until(what, || self.count(&pred) > 0).await;
    }

    /// Waits until the watcher yields a live `Apply` of `name`.
    pub async fn wait_applied(&self, what: &str, name: &str) {
        self.wait_for(what, |s| matches!(s, Seen::Apply(n, _) if n == name))
            .await;
    }

    /// Waits until `n` items satisfy `pred`.
    pub async fn wait_for_n(&self, what: &str, n: usize, pred: impl Fn(&Seen) -> bool) {
        wait_until(what, || self.count(&pred) >= n).await;
    }
}

/// What a reflector's watcher does after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Nothing: the stream ends at its first error, as kube's bare `watcher` does.
    None,
    /// kube's default backoff: it retries (e.g. while the emulator is stopped or restarts).
    Default,
}

/// Starts a kube reflector over `api` with `cfg`, records what it yields, and waits until
/// its initial list is done. Keep the [`Recorder`] alive: dropping it stops the reflector.
pub async fn synced_reflector<K>(
    api: &Api<K>,
    cfg: watcher::Config,
    backoff: Backoff,
) -> (reflector::Store<K>, Recorder)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector(writer, watcher(api.clone(), cfg));
    let rec = match backoff {
        Backoff::None => Recorder::spawn(stream),
        Backoff::Default => Recorder::spawn(stream.default_backoff()),
    };
    rec.wait_for("initial list done", |s| *s == Seen::InitDone)
        .await;
    (reader, rec)
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// A tiny Lease-based leader elector, in the style of client-go's: safety comes
// only from the server's resourceVersion preconditions (409 on a stale write).

/// A Lease elector for one identity.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    lease: String,
    /// This elector's identity.
    pub id: String,
    duration_secs: i32,
}

/// What one elector step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Created the Lease and holds it.
    Created,
    /// Took over an expired (or free) Lease.
    Acquired,
    /// Renewed its own Lease.
    Renewed,
    /// Another holder's Lease is still valid.
    Follower,
    /// The write lost a race (409 Conflict or 409 AlreadyExists).
    LostRace,
}

impl Step {
    /// True when the elector leads after this step.
    pub fn leads(&self) -> bool {
        matches!(self, Self::Created | Self::Acquired | Self::Renewed)
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// An elector for Lease `lease` in `namespace`.
    pub fn new(client: Client, namespace: &str, lease: &str, id: &str, duration_secs: i32) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            lease: lease.to_owned(),
            id: id.to_owned(),
            duration_secs,
        }
    }

    /// Reads the current Lease (the observation step).
    pub async fn observe(&self) -> kube::Result<Option<Lease>> {
        self.api.get_opt(&self.lease).await
    }

    /// Whether `l` is held by someone else and not expired, by the local clock.
    pub fn held_by_other(&self, l: &Lease) -> bool {
        let Some(spec) = l.spec.as_ref() else {
            return false;
        };
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder.is_empty() || holder == self.id {
            return false;
        }
        let Some(renew) = spec.renew_time.as_ref() else {
            return false;
        };
        let dur = k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds.unwrap_or(0),
        ));
        renew.0 + dur > k8s_openapi::jiff::Timestamp::now()
    }

    /// Acts on an observation: create, take over, renew, or follow. Every
    /// write carries the observed resourceVersion.
    pub async fn act(&self, observed: Option<Lease>) -> kube::Result<Step> {
        let now = now_micro();
        let Some(mut l) = observed else {
            let fresh: Lease = obj(json!({"metadata": {"name": self.lease}, "spec": {
                "holderIdentity": self.id, "leaseDurationSeconds": self.duration_secs, "leaseTransitions": 0}}));
            let mut fresh = fresh;
            if let Some(s) = fresh.spec.as_mut() {
                s.acquire_time = Some(now.clone());
                s.renew_time = Some(now);
            }
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(Step::Created),
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                    Ok(Step::LostRace)
                }
                Err(e) => Err(e),
            };
        };
        if self.held_by_other(&l) {
            return Ok(Step::Follower);
        }
        let spec = l.spec.get_or_insert_with(Default::default);
        let mine = spec.holder_identity.as_deref() == Some(self.id.as_str());
        if !mine {
            spec.holder_identity = Some(self.id.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(self.duration_secs);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&self.lease, &PostParams::default(), &l)
            .await
        {
            Ok(_) if mine => Ok(Step::Renewed),
            Ok(_) => Ok(Step::Acquired),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Step::LostRace),
            Err(e) => Err(e),
        }
    }

    /// One observe-then-act round.
    pub async fn tick(&self) -> kube::Result<Step> {
        let observed = self.observe().await?;
        self.act(observed).await
    }
}

// ---------------------------------------------------------------------------
// kubectl.

/// Looks `name` up on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Both kubectl clients every kubectl scenario runs with: the machine's
/// `kubectl` (a dispatcher picking a versioned kubectl from the server's
/// `/version`) and the project's pinned kubectl 1.35. Fails (never skips)
/// when one is missing.
pub fn kubectl_clients() -> Vec<(&'static str, PathBuf)> {
    let path_kubectl = on_path("kubectl").unwrap_or_else(|| {
        panic!(
            "`kubectl` is not on PATH: run scripts/install-deps.sh to install the test dependencies"
        )
    });
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl-1.35");
    assert!(
        pinned.is_file(),
        "{} is missing: run scripts/install-deps.sh to install the test dependencies",
        pinned.display()
    );
    vec![("kubectl (PATH)", path_kubectl), ("kubectl-1.35", pinned)]
}

/// Output of one kubectl run.
#[derive(Debug)]
pub struct KubectlOut {
    /// Exit success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A kubectl binary pointed at one emulator, with its own kubeconfig and
/// discovery cache in a temporary directory.
pub struct Kubectl {
    /// Label for messages.
    pub label: &'static str,
    bin: PathBuf,
    /// Scratch directory (kubeconfig, cache, manifests).
    pub dir: tempfile::TempDir,
}

impl Kubectl {
    /// Writes the emulator's kubeconfig and returns a runner.
    pub fn new(emu: &Emulator, label: &'static str, bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        emu.write_kubeconfig(dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Self {
            label,
            bin: bin.to_owned(),
            dir,
        }
    }

    /// Writes a manifest into the scratch directory; returns its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("manifest written");
        p.display().to_string()
    }

    /// Runs kubectl with `--kubeconfig` and `--cache-dir`, within the deadline.
    pub async fn run(&self, args: &[&str]) -> KubectlOut {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let what = format!("{} {args:?}", self.label);
        let out = within(&what, cmd.output()).await.unwrap_or_else(|e| {
            panic!(
                "{what}: cannot run {} ({e}); run scripts/install-deps.sh",
                self.bin.display()
            )
        });
        KubectlOut {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts success; returns stdout + stderr.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            self.label, out.stdout, out.stderr
        );
        out.stdout + &out.stderr
    }
}
