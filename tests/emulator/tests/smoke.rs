//! Smoke tests: the emulator as kube-rs clients and kubectl see it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_emulator::{DropMode, Emulator, EmulatorConfig, RequestMatcher};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

fn svc(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .unwrap()
}

async fn wait_for<F: FnMut() -> bool>(mut f: F) {
    tokio::time::timeout(DEADLINE, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not reached before the deadline");
}

#[tokio::test]
async fn client_version_and_service_defaults() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.ip_families.unwrap(), vec!["IPv4".to_owned()]);
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert!(spec.cluster_ip.unwrap().starts_with("10.9"));
    assert!(spec.ports.unwrap()[0].node_port.is_some());
    assert!(
        created.metadata.generation.is_none(),
        "Services have no generation"
    );
    // Status ip reads back with ipMode VIP.
    let st = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
        )
        .await
        .unwrap();
    let ing = st.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ing[0].ip_mode.as_deref(), Some("VIP"));
    // Invalid status IP gets 422.
    let err = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.300"}]}}})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert!(s.is_invalid(), "{s:?}"),
        e => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn status_errors_match_kube_predicates() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = |e: kube::Error| match e {
        kube::Error::Api(s) => s,
        e => panic!("unexpected {e}"),
    };
    let s = err(api.get("nope").await.unwrap_err());
    assert!(s.is_not_found());
    assert_eq!(s.message, "configmaps \"nope\" not found");
    assert!(api.get_opt("nope").await.unwrap().is_none());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let s = err(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert!(s.is_already_exists());
    // A stale RV on PUT conflicts.
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_owned(), "fresh".to_owned())].into());
    api.replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some([("k".to_owned(), "v".to_owned())].into());
    let s = err(api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err());
    assert!(s.is_conflict(), "{s:?}");
    // An IPv6 address is not a label value.
    let bad: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "b", "labels": {"ip": "fd00::1"}}}))
            .unwrap();
    let s = err(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert!(s.is_invalid());
    // Missing namespace.
    let other: Api<ConfigMap> = Api::namespaced(client, "missing");
    let s = err(other.create(&PostParams::default(), &cm).await.unwrap_err());
    assert!(s.is_not_found());
    assert_eq!(s.message, "namespaces \"missing\" not found");
}

#[tokio::test]
async fn reflector_sees_create_update_delete() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let (reader, writer) = reflector::store::<Service>();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(r) = s.next().await {
            r.unwrap();
        }
    });
    api.create(&PostParams::default(), &svc("a")).await.unwrap();
    wait_for(|| {
        reader
            .get(&reflector::ObjectRef::new("a").within("default"))
            .is_some()
    })
    .await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
    )
    .await
    .unwrap();
    wait_for(|| {
        reader
            .get(&reflector::ObjectRef::new("a").within("default"))
            .is_some_and(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("v").map(String::as_str) == Some("2"))
            })
    })
    .await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    wait_for(|| {
        reader
            .get(&reflector::ObjectRef::new("a").within("default"))
            .is_none()
    })
    .await;
    // After a clean drop, the watcher resumes without a relist.
    let lists_before = emu.journal().list_count("services");
    assert_eq!(
        emu.faults()
            .drop_watches(&RequestMatcher::any().resource("services"), DropMode::Clean),
        1
    );
    api.create(&PostParams::default(), &svc("b")).await.unwrap();
    wait_for(|| {
        reader
            .get(&reflector::ObjectRef::new("b").within("default"))
            .is_some()
    })
    .await;
    assert_eq!(emu.journal().list_count("services"), lists_before);
    task.abort();
}

#[tokio::test]
async fn compaction_forces_relist() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, i2) = (seen.clone(), inits.clone());
    let w = watcher(api.clone(), watcher::Config::default());
    let task = tokio::spawn(async move {
        let mut w = std::pin::pin!(w);
        // The 410 surfaces as an error item before the watcher relists.
        while let Some(ev) = w.next().await {
            let Ok(ev) = ev else { continue };
            match ev {
                watcher::Event::Init => {
                    i2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    s2.lock().unwrap().insert(o.metadata.name.unwrap());
                }
                _ => {}
            }
        }
    });
    wait_for(|| inits.load(std::sync::atomic::Ordering::SeqCst) == 1 && emu.watch_count() == 1)
        .await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    wait_for(|| seen.lock().unwrap().contains("x")).await;
    emu.faults().compact(None);
    // A write of another kind, then compaction: the watcher's RV is too old.
    emu.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: other, namespace: default}\n")
        .unwrap();
    emu.faults().compact(None);
    let lists = emu.journal().list_count("configmaps");
    emu.faults()
        .drop_watches(&RequestMatcher::any(), DropMode::Clean);
    wait_for(|| inits.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
    assert!(
        emu.journal().list_count("configmaps") > lists,
        "410 led to a relist"
    );
    let resumed = emu
        .journal()
        .with_verb("watch")
        .iter()
        .any(|e| e.events.iter().any(|ev| ev.event_type == "ERROR"));
    assert!(resumed, "the resume got an ERROR event, not an HTTP error");
    task.abort();
}

#[tokio::test]
async fn lease_put_race_has_one_winner() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})).unwrap();
    let l = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let api = api.clone();
        let mut l = l.clone();
        tasks.push(tokio::spawn(async move {
            l.spec.as_mut().unwrap().holder_identity = Some(format!("h{i}"));
            api.replace("l", &PostParams::default(), &l).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(kube::Error::Api(s)) if s.is_conflict() => conflicts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    // A PUT without resourceVersion is rejected for Leases.
    let mut cur = api.get("l").await.unwrap();
    cur.metadata.resource_version = None;
    match api
        .replace("l", &PostParams::default(), &cur)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 422),
        e => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn finalizer_json_patch_and_delete() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "f"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    // kube-runtime's finalizer() first patch: test null on an absent member.
    let p: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["ferrolb.io/test"]}
    ]))
    .unwrap();
    api.patch("f", &PatchParams::default(), &Patch::Json::<()>(p))
        .await
        .unwrap();
    let del = api.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = del.left().expect("object with a finalizer stays");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let p: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}])).unwrap();
    api.patch("f", &PatchParams::default(), &Patch::Json::<()>(p))
        .await
        .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn paged_list_keeps_one_resource_version() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut yaml = String::new();
    for i in 0..25 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i:02}, namespace: default}}\n"));
    }
    emu.apply_yaml(&yaml).unwrap();
    let first = api.list(&ListParams::default().limit(10)).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    // A change between pages is not visible in later pages.
    emu.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c20, namespace: default, labels: {changed: 'yes'}}\n").unwrap();
    let second = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let third = api
        .list(
            &ListParams::default()
                .limit(10)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        third.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    assert!(third.metadata.continue_.is_none());
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .chain(&third.items)
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), 25);
    let c20 = third
        .items
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("c20"))
        .unwrap();
    assert!(
        c20.metadata.labels.is_none(),
        "page served from the snapshot"
    );
}

/// kubectl against the emulator: get, apply --server-side, get CRs, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_apply_delete() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kc).unwrap();
    let cache = dir.path().join("cache");
    std::fs::write(
        dir.path().join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("crd.yaml"),
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ipaddresspools.ferrolb.io}
spec:
  group: ferrolb.io
  scope: Namespaced
  names: {kind: IPAddressPool, plural: ipaddresspools, singular: ipaddresspool, shortNames: [ipp]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pool.yaml"),
        "apiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: pool1, namespace: default, finalizers: [ferrolb.io/hold]}\nspec: {addresses: [10.0.0.0/24]}\n",
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let kc = kc.clone();
        let cache = cache.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kc)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .args(&args)
                    .output()
                    .expect("kubectl must be on PATH (CI installs it)");
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "kubectl {args:?} failed: {text}");
                text
            })
            .await
            .unwrap()
        }
    };
    let p = |f: &str| dir.path().join(f).display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let out = run(s(&["get", "services", "-A"])).await;
    assert!(out.contains("No resources found"), "{out}");
    let out = run(s(&["apply", "--server-side", "-f", &p("svc.yaml")])).await;
    assert!(out.contains("service/web serverside-applied"), "{out}");
    let out = run(s(&["apply", "--server-side", "-f", &p("crd.yaml")])).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = run(s(&["apply", "--server-side", "-f", &p("pool.yaml")])).await;
    assert!(
        out.contains("ipaddresspool.ferrolb.io/pool1 serverside-applied"),
        "{out}"
    );
    let out = run(s(&["get", "ipp"])).await;
    assert!(out.contains("pool1"), "{out}");
    let out = run(s(&["get", "services", "-A"])).await;
    assert!(out.contains("web"), "{out}");
    // delete waits (GET, list, watch on metadata.name) until the finalizer goes.
    let remover = {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            emu.client().await.unwrap(),
            "default",
            &kube::api::ApiResource {
                group: "ferrolb.io".into(),
                version: "v1alpha1".into(),
                api_version: "ferrolb.io/v1alpha1".into(),
                kind: "IPAddressPool".into(),
                plural: "ipaddresspools".into(),
            },
        );
        tokio::spawn(async move {
            loop {
                if let Some(o) = api.get_opt("pool1").await.unwrap()
                    && o.metadata.deletion_timestamp.is_some()
                {
                    api.patch(
                        "pool1",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await
                    .unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = tokio::time::timeout(DEADLINE, run(s(&["delete", "-f", &p("pool.yaml")])))
        .await
        .unwrap();
    assert!(out.contains("deleted"), "{out}");
    remover.await.unwrap();
    let out = run(s(&["delete", "service", "web"])).await;
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let j = emu.journal();
    assert!(
        j.with_verb("watch")
            .iter()
            .any(|e| e.resource == "ipaddresspools"),
        "kubectl delete waited with a watch"
    );
    assert!(j.entries.iter().all(|e| e.status < 500), "no server errors");
}

/// Sends one raw HTTP/1.1 request and reads the whole response (Connection: close).
async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Decodes a chunked body into its lines.
fn dechunk_lines(body: &str) -> Vec<String> {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn recorder_publishes_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let s = api
        .create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    let reference = s.object_ref(&());
    let rec = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some("pod-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("assigned".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    rec.publish(&ev, &reference).await.unwrap();
    rec.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].series.as_ref().unwrap().count, 2);
    // A reporter that is not a qualified name is rejected.
    let bad = Recorder::new(
        client,
        Reporter {
            controller: "Ferro LB".into(),
            instance: None,
        },
    );
    match bad.publish(&ev, &reference).await.unwrap_err() {
        kube::Error::Api(s) => assert!(s.is_invalid()),
        e => panic!("unexpected {e}"),
    }
}

use kube::Resource;

#[tokio::test]
async fn raw_http_shapes() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = emu.addr();
    let (code, body) = raw(
        a,
        "GET",
        "/api/v1/namespaces/default/services?&limit=2",
        "",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"ServiceList\""));
    let (code, body) = raw(a, "GET", "/apis/nope.io/v1/x", "", "").await;
    assert_eq!(code, 404);
    assert!(body.contains("the server could not find the requested resource"));
    let (code, _) = raw(a, "GET", "/openapi/v3", "", "").await;
    assert_eq!(code, 404);
    let (code, body) = raw(a, "GET", "/openapi/v2?timeout=32s", "", "").await;
    assert_eq!((code, body.as_str()), (200, ""));
    let (code, _) = raw(a, "POST", "/api/v1/services", "application/json", "{}").await;
    assert_eq!(code, 405);
    let (code, _) = raw(
        a,
        "PATCH",
        "/api/v1/namespaces/default",
        "application/strategic-merge-patch+json",
        r#"{"metadata":{"finalizers":["a.io/b"]}}"#,
    )
    .await;
    assert_eq!(code, 415, "strategic merge patch is not supported");
    // A future NotOlderThan list waits, then 504s.
    let rv = emu.resource_version() + 1000;
    let (code, body) = raw(
        a,
        "GET",
        &format!("/api/v1/configmaps?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 504, "{body}");
    // Streaming lists are served; without bookmarks they are refused.
    let (code, _) = raw(
        a,
        "GET",
        "/api/v1/configmaps?watch=true&sendInitialEvents=true",
        "",
        "",
    )
    .await;
    assert_eq!(code, 422);
    // A watch with a 1 s timeout ends cleanly after a bookmark; one JSON event per line.
    let (code, body) = raw(
        a,
        "GET",
        "/api/v1/namespaces?watch=1&timeoutSeconds=1&allowWatchBookmarks=true",
        "",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let lines = dechunk_lines(&body);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["object"]["kind"].is_string() && v["object"]["apiVersion"].is_string());
    }
    assert!(lines[4].contains("\"BOOKMARK\""));
}

#[tokio::test]
async fn http_hooks() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let a = emu.addr();
    let m = r#"{"matcher": {"resource": "configmaps", "verb": "create"}, "n": 1, "code": 429, "retryAfter": 1}"#;
    let (code, _) = raw(a, "POST", "/__emulator/fail_next", "application/json", m).await;
    assert_eq!(code, 200);
    let cm = r#"{"metadata": {"name": "a"}}"#;
    let (code, body) = raw(
        a,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        cm,
    )
    .await;
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("\"retryAfterSeconds\":1"));
    let (code, _) = raw(
        a,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        cm,
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = raw(
        a,
        "POST",
        "/__emulator/forbid",
        "application/json",
        r#"{"matcher": {"resource": "configmaps"}}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = raw(a, "GET", "/api/v1/namespaces/default/configmaps/a", "", "").await;
    assert_eq!(code, 403, "{body}");
    raw(a, "POST", "/__emulator/clear", "application/json", "").await;
    let (code, body) = raw(
        a,
        "POST",
        "/__emulator/touch",
        "application/json",
        r#"{"group": "", "resource": "configmaps", "namespace": "default", "name": "a"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (_, body) = raw(a, "GET", "/__emulator/journal", "", "").await;
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    let statuses: Vec<u64> = j["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 201, 403], "hooks are not journaled");
    // Discovery never shows the hooks.
    let (_, body) = raw(a, "GET", "/apis", "", "").await;
    assert!(!body.contains("__emulator"));
    // Restart without state: objects are gone, RVs keep counting.
    let before = emu.resource_version();
    emu.faults().restart(false).await.unwrap();
    let (code, _) = raw(a, "GET", "/api/v1/namespaces/default/configmaps/a", "", "").await;
    assert_eq!(code, 404);
    assert!(emu.resource_version() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_watches() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let mut streams = Vec::new();
    let rv = emu.resource_version();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
        let req = format!(
            "GET /api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=60 HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        streams.push(s);
    }
    wait_for(|| emu.watch_count() == 200).await;
    emu.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fan, namespace: default}\n")
        .unwrap();
    for mut s in streams {
        let mut buf = Vec::new();
        tokio::time::timeout(DEADLINE, async {
            let mut chunk = [0u8; 4096];
            while !String::from_utf8_lossy(&buf).contains("\"fan\"") {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "stream closed early");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .unwrap();
    }
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
}

#[tokio::test]
async fn streaming_lists_and_metadata_watcher() {
    use k8s_openapi::api::core::v1::Secret;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: s1, namespace: default}\nstringData: {password: hunter2}\n").unwrap();
    let client = emu.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, "default");
    let s = api.get("s1").await.unwrap();
    assert!(s.data.unwrap().contains_key("password"));
    // streaming_lists(): initial events then the initial-events-end bookmark, no LIST.
    let mut w = std::pin::pin!(watcher(
        api.clone(),
        watcher::Config::default().streaming_lists()
    ));
    let mut names = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        loop {
            match w.next().await.unwrap().unwrap() {
                watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(names, ["s1"]);
    assert_eq!(emu.journal().list_count("secrets"), 0);
    // metadata_watcher never sees data.
    let meta_api: Api<kube::core::PartialObjectMeta<Secret>> =
        Api::namespaced(emu.client().await.unwrap(), "default");
    let mut mw = std::pin::pin!(watcher(meta_api, watcher::Config::default()));
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let watcher::Event::InitApply(o) = mw.next().await.unwrap().unwrap() {
                assert_eq!(o.metadata.name.as_deref(), Some("s1"));
                break;
            }
        }
    })
    .await
    .unwrap();
    let j = emu.journal();
    let meta_list = j
        .with_verb("list")
        .into_iter()
        .find(|e| e.resource == "secrets")
        .unwrap();
    assert!(
        meta_list
            .header("accept")
            .unwrap()
            .contains("PartialObjectMetadataList")
    );
}

/// A Node fixture keeps its status (conditions), created or re-applied: speakers read readiness
/// from fixtures only, since no node controller runs here.
#[tokio::test]
async fn node_fixture_keeps_its_status() {
    use k8s_openapi::api::core::v1::Node;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let node = |ready: &str| {
        format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\n\
             status: {{conditions: [{{type: Ready, status: '{ready}'}}]}}\n"
        )
    };
    let nodes: Api<Node> = Api::all(emu.client().await.unwrap());
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone())
            })
    };
    emu.apply_yaml(&node("True")).unwrap();
    assert_eq!(
        ready(&nodes.get("n1").await.unwrap()).as_deref(),
        Some("True")
    );
    emu.apply_yaml(&node("False")).unwrap();
    assert_eq!(
        ready(&nodes.get("n1").await.unwrap()).as_deref(),
        Some("False")
    );
}
