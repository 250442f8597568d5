//! HTTP front end: routing (E2), content negotiation (E3), discovery (E5–E7),
//! the verb handlers, watch streams (E25–E30) and the `/__emulator` hooks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::EmulatorConfig;
use crate::errors::{ApiError, ApiResult, success_status};
use crate::faults::{Action, FaultTable, RequestAttrs};
use crate::journal::{JournalEntry, JournalStore, WatchEventRecord};
use crate::machinery::{FieldSelector, LabelSelector, supported_fields};
use crate::resources::ResourceInfo;
use crate::store::{
    Deleted, DropMode, Filter, ListOpts, PatchKind, Payload, Store, WatchMsg, WatchTags, WriteOpts,
    meta_str,
};

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

const MAX_BODY: usize = 3 * 1024 * 1024;

/// State shared by the listener, the request handlers and the handles.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub cfg: EmulatorConfig,
    pub faults: Mutex<FaultTable>,
    pub fault_rng: Mutex<u64>,
    pub journal: JournalStore,
    pub paused: watch::Sender<bool>,
    pub bookmark_interval: watch::Sender<Option<Duration>>,
    pub event_delay_us: AtomicU64,
    pub inflight: AtomicUsize,
    pub queued: Arc<AtomicI64>,
    pub committed: Arc<AtomicU64>,
    pub addr: Mutex<SocketAddr>,
    pub listener: tokio::sync::Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
    /// Stop/restart requests from the HTTP hooks, run by a supervisor task
    /// (a hook cannot restart the server that is serving it).
    pub control: mpsc::UnboundedSender<Control>,
}

/// Listener control requests from the HTTP hooks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    Stop,
    Restart { keep_state: bool },
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultTable> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------- listener

/// Binds `addr` and serves until the returned token is cancelled.
pub(crate) async fn start_listener(
    shared: &Arc<Shared>,
    addr: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    *shared.addr.lock().unwrap_or_else(PoisonError::into_inner) = local;
    let token = CancellationToken::new();
    let t = token.clone();
    let sh = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = t.cancelled() => break,
                r = listener.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let _ = stream.set_nodelay(true);
                    let sh = sh.clone();
                    let ct = t.child_token();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(sh.clone(), req));
                        let mut builder = hyper::server::conn::http1::Builder::new();
                        builder.keep_alive(true).header_read_timeout(None);
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            _ = ct.cancelled() => {}
                        }
                    });
                }
            }
        }
    });
    *shared.listener.lock().await = Some((token, task));
    Ok(local)
}

/// Closes the listener and every connection.
pub(crate) async fn stop_listener(shared: &Arc<Shared>) {
    let taken = shared.listener.lock().await.take();
    if let Some((token, task)) = taken {
        token.cancel();
        let _ = task.await;
    }
}

// ---------------------------------------------------------------- helpers

fn full(status: StatusCode, ct: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Ok(v) = ct.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    full(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after
        && let Ok(v) = s.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string; tolerates "", "?" and a leading "&" (E2).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(p), String::new()),
        })
        .collect()
}

struct Params(Vec<(String, String)>);
impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }
}

/// How objects are rendered for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Render {
    meta_only: bool,
}

/// Content negotiation (E3, E32).
fn negotiate(accept: Option<&str>) -> ApiResult<Render> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Render { meta_only: false });
    };
    for part in accept.split(',') {
        let mut it = part.split(';').map(str::trim);
        let mime = it.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = it
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let as_ = params
            .iter()
            .find(|(k, _)| k == "as")
            .map(|(_, v)| v.as_str());
        let json_ok = matches!(mime.as_str(), "application/json" | "*/*" | "application/*");
        if !json_ok {
            continue;
        }
        match as_ {
            None => return Ok(Render { meta_only: false }),
            Some("PartialObjectMetadataList" | "PartialObjectMetadata") => {
                return Ok(Render { meta_only: true });
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::not_acceptable())
}

/// The object as this endpoint version and render mode show it.
fn render_obj(obj: &Value, info: &ResourceInfo, r: Render) -> Value {
    if r.meta_only {
        return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))});
    }
    let mut v = obj.clone();
    if info.version != info.storage_version {
        v["apiVersion"] = json!(info.api_version());
    }
    v
}

fn needs_rewrite(info: &ResourceInfo, r: Render) -> bool {
    r.meta_only || info.version != info.storage_version
}

// ---------------------------------------------------------------- routing

#[derive(Debug)]
enum Route {
    Version,
    Api,
    Apis,
    ApiGroup(String),
    ResourceList(String, String),
    OpenApiV2,
    Health,
    Resource(ResRoute),
    NotFound,
}

#[derive(Debug, Clone)]
struct ResRoute {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn route(store: &Store, path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => return Route::Api,
        ["apis"] => return Route::Apis,
        ["openapi", "v2"] => return Route::OpenApiV2,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["api", "v1"] => return Route::ResourceList(String::new(), "v1".into()),
        ["apis", g] => return Route::ApiGroup((*g).to_owned()),
        ["apis", g, v] => return Route::ResourceList((*g).to_owned(), (*v).to_owned()),
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match s.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Route::NotFound,
    };
    let reg = &store.registry;
    if let ["namespaces", ns, plural, tail @ ..] = rest
        && let Some(info) = reg.get(group, version, plural).filter(|i| i.namespaced)
    {
        return match tail {
            [] => Route::Resource(ResRoute {
                info,
                namespace: Some((*ns).to_owned()),
                name: None,
                subresource: None,
            }),
            [name] => Route::Resource(ResRoute {
                info,
                namespace: Some((*ns).to_owned()),
                name: Some((*name).to_owned()),
                subresource: None,
            }),
            [name, sub] => Route::Resource(ResRoute {
                info,
                namespace: Some((*ns).to_owned()),
                name: Some((*name).to_owned()),
                subresource: Some((*sub).to_owned()),
            }),
            _ => Route::NotFound,
        };
    }
    match rest {
        [plural] => match reg.get(group, version, plural) {
            Some(info) => Route::Resource(ResRoute {
                info,
                namespace: None,
                name: None,
                subresource: None,
            }),
            None => Route::NotFound,
        },
        [plural, name] => match reg.get(group, version, plural).filter(|i| !i.namespaced) {
            Some(info) => Route::Resource(ResRoute {
                info,
                namespace: None,
                name: Some((*name).to_owned()),
                subresource: None,
            }),
            None => Route::NotFound,
        },
        [plural, name, sub] => match reg.get(group, version, plural).filter(|i| !i.namespaced) {
            Some(info) => Route::Resource(ResRoute {
                info,
                namespace: None,
                name: Some((*name).to_owned()),
                subresource: Some((*sub).to_owned()),
            }),
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

fn verb_of(method: &Method, r: &ResRoute, params: &Params) -> ApiResult<&'static str> {
    if let Some(sub) = &r.subresource {
        if sub != "status" || !r.info.status_subresource {
            return Err(ApiError::path_not_found());
        }
        return match *method {
            Method::GET => Ok("get"),
            Method::PUT => Ok("update"),
            Method::PATCH => Ok("patch"),
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    if r.info.namespaced && r.name.is_some() && r.namespace.is_none() {
        return Err(ApiError::path_not_found());
    }
    match (r.name.is_some(), method.clone()) {
        (false, Method::GET) => Ok(if params.flag("watch") {
            "watch"
        } else {
            "list"
        }),
        (false, Method::POST) => {
            if r.info.namespaced && r.namespace.is_none() {
                Err(ApiError::method_not_allowed())
            } else {
                Ok("create")
            }
        }
        (false, Method::DELETE) => Ok("deletecollection"),
        (true, Method::GET) => Ok(if params.flag("watch") { "watch" } else { "get" }),
        (true, Method::PUT) => Ok("update"),
        (true, Method::PATCH) => Ok("patch"),
        (true, Method::DELETE) => Ok("delete"),
        _ => Err(ApiError::method_not_allowed()),
    }
}

// ---------------------------------------------------------------- entry point

struct InflightGuard<'a>(&'a AtomicUsize);
impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn wait_unpaused(shared: &Shared) {
    let mut rx = shared.paused.subscribe();
    let _ = rx.wait_for(|p| !*p).await;
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let path = req.uri().path().to_owned();
    if path.starts_with("/__emulator") {
        return Ok(crate::hooks::handle(shared, req).await);
    }
    let is_watch_req = req.uri().query().is_some_and(|q| {
        parse_query(q)
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
    });
    if !is_watch_req {
        shared.inflight.fetch_add(1, Ordering::AcqRel);
    }
    let _guard = (!is_watch_req).then(|| InflightGuard(&shared.inflight));
    wait_unpaused(&shared).await;
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error_response(&ApiError::too_large(
                "the request body is too large",
            )));
        }
    };
    let hv = |h: &HeaderMap, n: header::HeaderName| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let user_agent = hv(&headers, header::USER_AGENT);
    let params = Params(parse_query(&query));
    let route = route(&shared.store(), &path);
    let mut entry = JournalEntry {
        id: 0,
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        verb: String::new(),
        group: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        headers: vec![
            ("user-agent".into(), user_agent.clone()),
            ("content-type".into(), hv(&headers, header::CONTENT_TYPE)),
            ("accept".into(), hv(&headers, header::ACCEPT)),
        ],
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
        latency: Duration::ZERO,
        watch: false,
        events: Vec::new(),
    };
    let resp = match route {
        Route::Resource(r) => {
            let verb = verb_of(&method, &r, &params);
            entry.verb = verb.as_ref().map(|v| (*v).to_owned()).unwrap_or_default();
            entry.group = r.info.group.clone();
            entry.resource = r.info.plural.clone();
            entry.subresource = r.subresource.clone();
            entry.namespace = r.namespace.clone();
            entry.name = r.name.clone();
            entry.watch = entry.verb == "watch";
            let jid = shared.journal.push(entry);
            let resp = match verb {
                Err(e) => error_response(&e),
                Ok(verb) => {
                    let attrs = RequestAttrs {
                        verb: verb.to_owned(),
                        group: r.info.group.clone(),
                        resource: r.info.plural.clone(),
                        subresource: r.subresource.clone(),
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        watch: verb == "watch",
                        user_agent: user_agent.clone(),
                    };
                    match apply_faults(&shared, &attrs, &r).await {
                        Some(resp) => resp,
                        None => {
                            match serve(&shared, verb, &r, &params, &headers, &body, &attrs, jid)
                                .await
                            {
                                Ok(resp) => resp,
                                Err(e) => error_response(&e),
                            }
                        }
                    }
                }
            };
            shared
                .journal
                .set_result(jid, resp.status().as_u16(), start.elapsed());
            return Ok(resp);
        }
        Route::Version => json_response(200, &version_doc(&shared.cfg)),
        Route::Api => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr().to_string()}]}),
        ),
        Route::Apis => json_response(200, &apis_doc(&shared.store())),
        Route::ApiGroup(g) => match apis_doc(&shared.store())["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|x| x["name"] == json!(g)))
        {
            Some(gr) => {
                let mut gr = gr.clone();
                gr["kind"] = json!("APIGroup");
                gr["apiVersion"] = json!("v1");
                json_response(200, &gr)
            }
            None => error_response(&ApiError::path_not_found()),
        },
        Route::ResourceList(g, v) => match resource_list_doc(&shared.store(), &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::path_not_found()),
        },
        Route::OpenApiV2 => full(StatusCode::OK, "application/octet-stream", Bytes::new()),
        Route::Health => full(StatusCode::OK, "text/plain", "ok"),
        Route::NotFound => error_response(&ApiError::path_not_found()),
    };
    let jid = shared.journal.push(entry);
    shared
        .journal
        .set_result(jid, resp.status().as_u16(), start.elapsed());
    Ok(resp)
}

async fn apply_faults(
    shared: &Shared,
    attrs: &RequestAttrs,
    r: &ResRoute,
) -> Option<Response<Body>> {
    let verdict = {
        let mut rng = shared
            .fault_rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shared.faults().check(attrs, &mut rng)
    };
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    let name = r.name.clone().unwrap_or_default();
    let e = match verdict.fail? {
        Action::Fail {
            code,
            reason,
            message,
            retry_after,
        } => ApiError::custom(code, reason.as_deref(), message.as_deref(), retry_after),
        Action::Conflict => ApiError::conflict(&r.info.group, &r.info.plural, &name),
        Action::Forbid => ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: User \"system:anonymous\" cannot {} resource \"{}\" in API group \"{}\"{}",
            crate::errors::qualified(&r.info.plural, &r.info.group),
            attrs.verb,
            r.info.plural,
            r.info.group,
            r.namespace
                .as_deref()
                .map(|n| format!(" in the namespace \"{n}\""))
                .unwrap_or_default()
        )),
        Action::Delay { .. } => return None,
    };
    Some(error_response(&e))
}

// ---------------------------------------------------------------- discovery

fn version_doc(cfg: &EmulatorConfig) -> Value {
    let gv = cfg.git_version.trim_start_matches('v');
    let mut parts = gv.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major, "minor": minor, "gitVersion": cfg.git_version,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64", "emulationMajor": major, "emulationMinor": minor
    })
}

fn apis_doc(store: &Store) -> Value {
    let groups: Vec<Value> = store
        .registry
        .groups()
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or_else(|| json!({}));
            json!({"name": g, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list_doc(store: &Store, group: &str, version: &str) -> Option<Value> {
    let infos = store.registry.resources_in(group, version);
    if infos.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for i in infos {
        let mut r = json!({
            "name": i.plural, "singularName": i.singular, "namespaced": i.namespaced, "kind": i.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !i.short_names.is_empty() {
            r["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        resources.push(r);
        if i.status_subresource {
            resources.push(json!({"name": format!("{}/status", i.plural), "singularName": "", "namespaced": i.namespaced, "kind": i.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

// ---------------------------------------------------------------- verbs

fn write_opts(params: &Params, attrs: &RequestAttrs) -> ApiResult<WriteOpts> {
    let force = match params.get("force") {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?}"
            )));
        }
    };
    Ok(WriteOpts {
        dry_run: params.get("dryRun").is_some_and(|d| d == "All"),
        field_manager: params.get("fieldManager").map(str::to_owned),
        force,
        user_agent: attrs.user_agent.clone(),
    })
}

fn parse_filter(info: &ResourceInfo, ns: Option<&str>, params: &Params) -> ApiResult<Filter> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(
        params.get("fieldSelector").unwrap_or(""),
        &supported_fields(info),
    )
    .map_err(|e| {
        ApiError::bad_request(format!(
            "Unable to find \"{}\" that match label selector \"\", field selector \"{}\": {e}",
            crate::errors::qualified(&info.plural, &info.group),
            params.get("fieldSelector").unwrap_or("")
        ))
    })?;
    Ok(Filter {
        namespace: ns.map(str::to_owned),
        labels,
        fields,
    })
}

fn list_opts(info: &ResourceInfo, r: &ResRoute, params: &Params) -> ApiResult<ListOpts> {
    let mut filter = parse_filter(info, r.namespace.as_deref(), params)?;
    if let Some(n) = &r.name {
        // Watch on an item path: a name field selector.
        filter
            .fields
            .requirements
            .push(ferrolb_apimachinery::selector::FieldRequirement {
                field: "metadata.name".into(),
                value: n.clone(),
                negated: false,
            });
    }
    let limit = match params.get("limit") {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        ),
    };
    Ok(ListOpts {
        filter,
        limit,
        continue_token: params.get("continue").map(str::to_owned),
        resource_version: params.get("resourceVersion").map(str::to_owned),
        rv_match: params.get("resourceVersionMatch").map(str::to_owned),
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let t = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            crate::machinery::parse_yaml_or_json(t).map_err(ApiError::bad_request)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Arc<Shared>,
    verb: &str,
    r: &ResRoute,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    attrs: &RequestAttrs,
    jid: u64,
) -> ApiResult<Response<Body>> {
    let info = &r.info;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let render = negotiate(accept)?;
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let one = |status: u16, obj: &Value| -> Response<Body> {
        json_response(status, &render_obj(obj, info, render))
    };
    if params.get("sendInitialEvents").is_some() && verb != "watch" {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![crate::errors::Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            )],
        ));
    }
    match verb {
        "get" => {
            let obj = shared.store().get(info, &ns, &name)?;
            Ok(one(200, &obj))
        }
        "list" => list(shared, r, params, render).await,
        "watch" => start_watch(shared, r, params, render, attrs, jid),
        "create" => {
            let opts = write_opts(params, attrs)?;
            let v = decode_body(headers, body)?;
            let obj = shared
                .store()
                .create(info, r.namespace.as_deref(), v, &opts)?;
            Ok(one(201, &obj))
        }
        "update" => {
            let opts = write_opts(params, attrs)?;
            let v = decode_body(headers, body)?;
            let (obj, created) =
                shared
                    .store()
                    .update(info, &ns, &name, r.subresource.as_deref(), v, &opts)?;
            Ok(one(if created { 201 } else { 200 }, &obj))
        }
        "patch" => {
            let ct = content_type(headers);
            let kind = match ct.as_str() {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/json-patch+json" => PatchKind::Json,
                "application/apply-patch+yaml" => PatchKind::Apply,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let opts = write_opts(params, attrs)?;
            let (obj, created) = shared.store().patch(
                info,
                &ns,
                &name,
                r.subresource.as_deref(),
                kind,
                body,
                &opts,
            )?;
            Ok(one(if created { 201 } else { 200 }, &obj))
        }
        "delete" => {
            let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            let dry = params.get("dryRun").is_some_and(|d| d == "All")
                || opts
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let res = shared.store().delete(info, &ns, &name, &opts, dry)?;
            Ok(match res {
                Deleted::Pending(obj) => one(200, &obj),
                Deleted::Gone(obj) => {
                    if info.delete_returns_object {
                        one(200, &obj)
                    } else {
                        json_response(
                            200,
                            &success_status(
                                &info.group,
                                &info.plural,
                                &name,
                                meta_str(&obj, "uid").unwrap_or(""),
                            ),
                        )
                    }
                }
            })
        }
        "deletecollection" => {
            let opts = list_opts(info, r, params)?;
            let dry = params.get("dryRun").is_some_and(|d| d == "All");
            let (items, rv) = {
                let mut st = shared.store();
                let items = st.delete_collection(info, &opts.filter, dry)?;
                (items, st.rv)
            };
            Ok(list_response(info, render, &items, rv, None))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn list_response(
    info: &ResourceInfo,
    render: Render,
    items: &[Arc<Value>],
    rv: u64,
    cont: Option<String>,
) -> Response<Body> {
    let (kind, av) = if render.meta_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (info.list_kind.clone(), info.api_version())
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let mut out = BytesMut::with_capacity(64 + items.len() * 512);
    out.extend_from_slice(br#"{"kind":"#);
    out.extend_from_slice(&serde_json::to_vec(&kind).unwrap_or_default());
    out.extend_from_slice(br#","apiVersion":"#);
    out.extend_from_slice(&serde_json::to_vec(&av).unwrap_or_default());
    out.extend_from_slice(br#","metadata":"#);
    out.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    out.extend_from_slice(br#","items":["#);
    let rewrite = needs_rewrite(info, render);
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        let bytes = if rewrite {
            serde_json::to_vec(&render_obj(it, info, render))
        } else {
            serde_json::to_vec(&**it)
        };
        out.extend_from_slice(&bytes.unwrap_or_default());
    }
    out.extend_from_slice(b"]}");
    full(StatusCode::OK, "application/json", out.freeze())
}

async fn list(
    shared: &Arc<Shared>,
    r: &ResRoute,
    params: &Params,
    render: Render,
) -> ApiResult<Response<Body>> {
    let info = &r.info;
    let opts = list_opts(info, r, params)?;
    Store::check_list_opts(&opts, false)?;
    // A list "not older than" a future RV waits for the counter, then 504s (E21).
    if opts.continue_token.as_deref().unwrap_or("").is_empty()
        && opts.rv_match.as_deref() != Some("Exact")
        && let Some(want) = opts
            .resource_version
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| *v > 0)
    {
        let deadline = Instant::now() + Duration::from_secs(3);
        while shared.store().rv < want {
            if Instant::now() >= deadline {
                return Err(ApiError::too_large_rv());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let page = shared.store().list(info, &opts)?;
    Ok(list_response(
        info,
        render,
        &page.items,
        page.rv,
        page.continue_token,
    ))
}

// ---------------------------------------------------------------- watch

struct WatchCtx {
    shared: Arc<Shared>,
    info: Arc<ResourceInfo>,
    render: Render,
    bookmarks: bool,
    deadline: tokio::time::Instant,
    jid: u64,
    watch_id: u64,
    last_rv: u64,
}

fn start_watch(
    shared: &Arc<Shared>,
    r: &ResRoute,
    params: &Params,
    render: Render,
    attrs: &RequestAttrs,
    jid: u64,
) -> ApiResult<Response<Body>> {
    let info = r.info.clone();
    let opts = list_opts(&info, r, params)?;
    let bookmarks = params.flag("allowWatchBookmarks");
    let send_initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
    if params.get("sendInitialEvents").is_some() {
        let mut causes = Vec::new();
        if !bookmarks {
            causes.push(crate::errors::Cause::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be set to true when sendInitialEvents is specified",
            ));
        }
        if opts.rv_match.as_deref() != Some("NotOlderThan") {
            causes.push(crate::errors::Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", causes));
        }
    } else {
        Store::check_list_opts(&opts, true)?;
    }
    if let Some(rv) = opts.resource_version.as_deref().filter(|s| !s.is_empty())
        && rv.parse::<u64>().is_err()
    {
        return Err(ApiError::bad_request(format!(
            "invalid resource version {rv:?}"
        )));
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(shared.cfg.default_watch_timeout);
    let (tx, rx) = mpsc::unbounded_channel();
    let tags = WatchTags {
        group: info.group.clone(),
        resource: info.plural.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        user_agent: attrs.user_agent.clone(),
    };
    let watch_id = shared.store().watch(&info, &opts, send_initial, tx, tags)?;
    let (out_tx, out_rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    let ctx = WatchCtx {
        shared: shared.clone(),
        info,
        render,
        bookmarks,
        deadline: tokio::time::Instant::now() + timeout,
        jid,
        watch_id,
        last_rv: 0,
    };
    tokio::spawn(watch_task(ctx, rx, out_tx));
    let body = BodyExt::boxed(StreamBody::new(RecvStream(out_rx)));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

type Out = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// The watch body: frames from the watch task.
struct RecvStream(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl futures::Stream for RecvStream {
    type Item = Result<Frame<Bytes>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl WatchCtx {
    fn line(&self, ty: &str, payload: &Payload) -> Bytes {
        let obj = if needs_rewrite(&self.info, self.render) && ty != "BOOKMARK" && ty != "ERROR" {
            Bytes::from(
                serde_json::to_vec(&render_obj(&payload.obj, &self.info, self.render))
                    .unwrap_or_default(),
            )
        } else {
            payload.json()
        };
        let mut b = BytesMut::with_capacity(obj.len() + 32);
        b.extend_from_slice(br#"{"type":""#);
        b.extend_from_slice(ty.as_bytes());
        b.extend_from_slice(br#"","object":"#);
        b.extend_from_slice(&obj);
        b.extend_from_slice(b"}\n");
        b.freeze()
    }

    fn record(&self, ty: &str, obj: &Value) {
        let s = |f: &str| meta_str(obj, f).unwrap_or("").to_owned();
        self.shared.journal.add_event(
            self.jid,
            WatchEventRecord {
                event_type: ty.to_owned(),
                resource_version: s("resourceVersion"),
                namespace: s("namespace"),
                name: s("name"),
            },
        );
    }

    async fn gate(&self) {
        wait_unpaused(&self.shared).await;
        let d = self.shared.event_delay_us.load(Ordering::Acquire);
        if d > 0 {
            tokio::time::sleep(Duration::from_micros(d)).await;
        }
    }

    async fn send_event(&mut self, out: &Out, ty: &str, rv: u64, payload: &Payload) -> bool {
        self.gate().await;
        let line = self.line(ty, payload);
        self.record(ty, &payload.obj);
        self.last_rv = self.last_rv.max(rv);
        out.send(Ok(Frame::data(line))).await.is_ok()
    }

    async fn send_bookmark(
        &mut self,
        out: &Out,
        rx: &mut mpsc::UnboundedReceiver<WatchMsg>,
    ) -> Option<bool> {
        // Read the committed RV first, then drain: every event at or below it
        // is already queued, so the bookmark never runs ahead of an event.
        let committed = self.shared.committed.load(Ordering::Acquire);
        while let Ok(msg) = rx.try_recv() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            match self.process(out, msg, rx).await {
                Some(true) => {}
                other => return other,
            }
        }
        let rv = committed.max(self.last_rv);
        let (kind, av) = if self.render.meta_only {
            (
                "PartialObjectMetadata".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            )
        } else {
            (self.info.kind.clone(), self.info.api_version())
        };
        let payload = Payload::new(Arc::new(
            json!({"kind": kind, "apiVersion": av, "metadata": {"resourceVersion": rv.to_string()}}),
        ));
        Some(self.send_event(out, "BOOKMARK", rv, &payload).await)
    }

    /// Handles one message: Some(true) = keep going, Some(false) = client gone,
    /// None = stream ends (cleanly unless `abort` was sent).
    async fn process(
        &mut self,
        out: &Out,
        msg: WatchMsg,
        rx: &mut mpsc::UnboundedReceiver<WatchMsg>,
    ) -> Option<bool> {
        match msg {
            WatchMsg::Event { ty, rv, payload } => {
                if ty == "BOOKMARK" && !self.bookmarks {
                    return Some(true);
                }
                Some(self.send_event(out, ty, rv, &payload).await)
            }
            WatchMsg::Error(status) => {
                let payload = Payload::new(Arc::new(status));
                self.send_event(out, "ERROR", 0, &payload).await;
                None
            }
            WatchMsg::End(DropMode::Abort) => {
                let _ = out
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "watch aborted by fault injection",
                    )))
                    .await;
                None
            }
            WatchMsg::End(_) => None,
            WatchMsg::BookmarkNow => {
                if !self.bookmarks {
                    return Some(true);
                }
                Box::pin(self.send_bookmark(out, rx)).await
            }
        }
    }
}

async fn watch_task(mut ctx: WatchCtx, mut rx: mpsc::UnboundedReceiver<WatchMsg>, out: Out) {
    let mut interval_rx = ctx.shared.bookmark_interval.subscribe();
    let mut next_bm = interval_rx
        .borrow()
        .map(|d| tokio::time::Instant::now() + d);
    let final_bm_at = ctx
        .deadline
        .checked_sub(Duration::from_secs(2))
        .filter(|t| *t > tokio::time::Instant::now());
    let mut final_bm_sent = false;
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let bm_at = if ctx.bookmarks {
            next_bm.unwrap_or(far)
        } else {
            far
        };
        let fbm_at = if ctx.bookmarks && !final_bm_sent {
            final_bm_at.unwrap_or(far)
        } else {
            far
        };
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                ctx.shared.queued.fetch_sub(1, Ordering::AcqRel);
                match ctx.process(&out, msg, &mut rx).await {
                    Some(true) => {}
                    _ => break,
                }
            }
            _ = out.closed() => break,
            _ = tokio::time::sleep_until(ctx.deadline) => {
                // Short timeouts get their closing bookmark right before the end.
                if ctx.bookmarks && !final_bm_sent {
                    let _ = ctx.send_bookmark(&out, &mut rx).await;
                }
                break;
            }
            _ = tokio::time::sleep_until(bm_at) => {
                next_bm = interval_rx.borrow().map(|d| tokio::time::Instant::now() + d);
                if ctx.send_bookmark(&out, &mut rx).await != Some(true) { break; }
            }
            _ = tokio::time::sleep_until(fbm_at) => {
                final_bm_sent = true;
                if ctx.send_bookmark(&out, &mut rx).await != Some(true) { break; }
            }
            r = interval_rx.changed() => {
                if r.is_err() { break; }
                next_bm = interval_rx.borrow().map(|d| tokio::time::Instant::now() + d);
            }
        }
    }
    ctx.shared.store().unwatch(ctx.watch_id);
    rx.close();
    while rx.try_recv().is_ok() {
        ctx.shared.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_forms() {
        assert!(parse_query("").is_empty());
        assert!(parse_query("?").is_empty());
        assert_eq!(
            parse_query("&limit=2&labelSelector=app%3Dx"),
            vec![
                ("limit".to_owned(), "2".to_owned()),
                ("labelSelector".to_owned(), "app=x".to_owned())
            ]
        );
        assert_eq!(
            parse_query("watch&a=b+c"),
            vec![
                ("watch".to_owned(), String::new()),
                ("a".to_owned(), "b c".to_owned())
            ]
        );
    }

    #[test]
    fn content_negotiation() {
        let plain = Render { meta_only: false };
        assert_eq!(negotiate(None).unwrap(), plain);
        assert_eq!(negotiate(Some("*/*")).unwrap(), plain);
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(table)).unwrap(), plain);
        let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert!(negotiate(Some(meta)).unwrap().meta_only);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(negotiate(Some("application/cbor")).unwrap_err().code, 406);
    }
}
