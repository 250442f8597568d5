//! Conformance: the fault-injection and observation hooks F1–F11 as kube
//! clients experience them.

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{reflector, watcher};
use kube_emulator::{DropMode, Emulator, EmulatorConfig, RequestMatcher};
use serde_json::json;

fn names<K: kube::Resource + Clone>(r: &reflector::Store<K>) -> BTreeSet<String>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    r.state()
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

/// F1: drop every watch (clean and abort) during churn of 1 000 Services;
/// the reflector converges and only re-watches, never relists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_dropped_watches_during_churn_converge_without_relist() {
    let env = start().await;
    let api: Api<Service> = env.default_api();
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::None).await;
    let churn = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut futs = Vec::new();
            for chunk in 0..20 {
                let api = api.clone();
                futs.push(tokio::spawn(async move {
                    for i in 0..50 {
                        let n = format!("s-{chunk:02}-{i:02}");
                        api.create(
                            &PostParams::default(),
                            &obj(
                                json!({"metadata": {"name": n}, "spec": {"ports": [{"port": 80}]}}),
                            ),
                        )
                        .await
                        .unwrap();
                        if i % 5 == 0 {
                            api.delete(&n, &Default::default()).await.unwrap();
                        }
                    }
                }));
            }
            for f in futs {
                f.await.unwrap();
            }
        })
    };
    let mut dropped = 0;
    let mut i = 0;
    while !churn.is_finished() {
        let mode = if i % 2 == 0 {
            DropMode::Clean
        } else {
            DropMode::Abort
        };
        dropped += env.emu.faults().drop_watches(&RequestMatcher::any(), mode);
        i += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    churn.await.unwrap();
    assert!(
        dropped >= 3,
        "watches were dropped during the churn ({dropped})"
    );
    let truth: BTreeSet<String> = list_names(&api).await;
    assert_eq!(truth.len(), 800);
    wait_until("reflector converges", || names(&reader) == truth).await;
    let j = env.emu.journal();
    assert_eq!(
        j.list_count("services"),
        2,
        "the initial LIST and the test's own; no relist"
    );
    assert!(j.watch_count("services") >= 3, "re-watched");
    assert_eq!(rec.count(|s| *s == Seen::Init), 1);
}

/// F1: ERROR(410) forces a relist; ERROR(500) ends the stream and resumes.
#[tokio::test]
async fn f1_error_drops_410_relists_other_codes_resume() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::None).await;
    wait_until("watch open", || env.emu.watch_count() == 1).await;

    assert_eq!(
        env.emu
            .faults()
            .drop_watches(&RequestMatcher::any(), DropMode::Error(500)),
        1
    );
    create_configmaps(&api, &["a"]).await;
    wait_until("sees a", || names(&reader).contains("a")).await;
    assert_eq!(
        env.emu.journal().list_count("configmaps"),
        1,
        "500 resumes without a relist"
    );
    assert_eq!(rec.count(|s| *s == Seen::Init), 1);
    wait_until("watch open", || env.emu.watch_count() == 1).await;

    assert_eq!(
        env.emu
            .faults()
            .drop_watches(&RequestMatcher::any(), DropMode::Error(410)),
        1
    );
    rec.wait_for_n("relist after 410", 2, |s| *s == Seen::Init)
        .await;
    rec.wait_for_n("relist done", 2, |s| *s == Seen::InitDone)
        .await;
    assert_eq!(env.emu.journal().list_count("configmaps"), 2);
    assert_eq!(names(&reader), ["a".to_owned()].into());
}

/// E27/F1: a non-410 ERROR event is followed by the end of the stream.
#[tokio::test]
async fn f1_non_410_error_event_ends_the_stream() {
    let env = start().await;
    let mut w = RawWatch::open(
        &env.client,
        "/api/v1/namespaces/default/configmaps?watch=true",
    )
    .await;
    wait_until("watch registered", || env.emu.watch_count() == 1).await;
    assert_eq!(
        env.emu
            .faults()
            .drop_watches(&RequestMatcher::any(), DropMode::Error(500)),
        1
    );
    let ev = w.next_event(DEADLINE).await.expect("an ERROR event");
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev.pointer("/object/code"), Some(&json!(500)), "{ev}");
    assert_eq!(ev.pointer("/object/kind"), Some(&json!("Status")), "{ev}");
    assert!(
        w.next_event(DEADLINE).await.is_none(),
        "the stream ends after the ERROR"
    );
}

/// F2: compaction up to an RV expires older resumes only.
#[tokio::test]
async fn f2_compact_up_to_an_rv() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let a = create_configmap(&api, "a").await;
    let b = create_configmap(&api, "b").await;
    create_configmaps(&api, &["c"]).await;
    let rv_a = rv_num(a.metadata.resource_version.as_deref());
    let rv_b = rv_num(b.metadata.resource_version.as_deref());
    env.emu.faults().compact(Some(rv_b));
    let base = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=";
    let mut old = RawWatch::open(&env.client, &format!("{base}{}", rv_a - 1)).await;
    let ev = old.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev.pointer("/object/code")),
        (Some("ERROR"), Some(&json!(410))),
        "{ev}"
    );
    let mut fine = RawWatch::open(&env.client, &format!("{base}{rv_b}")).await;
    let ev = fine.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev_kind_name(&ev), ("ADDED".into(), "c".into()));
}

/// F3: synthetic failures reach the client; 429 with Retry-After is retried by kube.
#[tokio::test]
async fn f3_fail_next_and_retry_after() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let m = RequestMatcher::any().verb("create").resource("configmaps");
    env.emu.faults().fail_next(2, m.clone(), 500, None, None);
    for _ in 0..2 {
        let s = api_status(
            api.create(&PostParams::default(), &configmap("a", &[]))
                .await,
        );
        assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    }
    create_configmaps(&api, &["a"]).await;
    assert!(api.get("a").await.is_ok());

    env.emu.faults().fail_next(
        1,
        RequestMatcher::any().verb("get").resource("configmaps"),
        409,
        Some("Conflict"),
        None,
    );
    assert!(api_status(api.get("a").await).is_conflict());
    env.emu
        .faults()
        .fail_next(1, RequestMatcher::any().verb("patch"), 422, None, None);
    assert!(api_status(merge_patch(&api, "a", json!({"data": {"x": "1"}})).await).is_invalid());

    // kube's client retries a 429 and honours Retry-After (seconds).
    env.emu.faults().fail_next(
        1,
        RequestMatcher::any().verb("get").resource("configmaps"),
        429,
        None,
        Some(1),
    );
    let t0 = Instant::now();
    api.get("a").await.expect("retried transparently");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After: {:?}",
        t0.elapsed()
    );
    assert_eq!(env.emu.journal().with_status(429).len(), 1);

    env.emu.faults().fail_always(
        RequestMatcher::any().verb("list").resource("configmaps"),
        403,
        None,
        None,
    );
    for _ in 0..3 {
        assert!(api_status(api.list(&ListParams::default()).await).is_forbidden());
    }
    env.emu.faults().clear();
    api.list(&ListParams::default()).await.unwrap();
}

/// F4: request delays and watch-event delays.
#[tokio::test]
async fn f4_delays() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["a"]).await;
    env.emu.faults().delay(
        RequestMatcher::any().verb("get").resource("configmaps"),
        Duration::from_millis(600),
        Duration::ZERO,
    );
    let t0 = Instant::now();
    api.get("a").await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "other verbs undelayed: {:?}",
        t0.elapsed()
    );
    env.emu.faults().clear();

    let rv = list_rv(&api).await;
    let mut w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    env.emu.faults().delay_events(Duration::from_millis(400));
    let t0 = Instant::now();
    create_configmaps(&api, &["b"]).await;
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev_kind_name(&ev).1, "b");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "event delayed: {:?}",
        t0.elapsed()
    );
}

/// F5: pause/resume hold requests and events; stop/start refuse connections but keep state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_pause_resume_and_stop_start() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["a"]).await;
    let rv = list_rv(&api).await;
    let mut w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;

    env.emu.faults().pause();
    let held = tokio::spawn({
        let api = api.clone();
        async move { api.get("a").await }
    });
    env.emu
        .apply_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: during-pause, namespace: default}\n",
        )
        .unwrap();
    assert!(
        w.drain_for(Duration::from_millis(400)).await.is_empty(),
        "events are held while paused"
    );
    assert!(!held.is_finished(), "requests are held while paused");
    env.emu.faults().resume();
    within("held GET completes", held).await.unwrap().unwrap();
    assert_eq!(
        ev_kind_name(&w.next_event(DEADLINE).await.unwrap()).1,
        "during-pause"
    );

    // stop/start: connection refused, state kept, a backing-off reflector recovers.
    // `_rec` keeps the reflector running to the end of the test.
    let (reader, _rec) = synced_reflector(&api, watcher::Config::default(), Backoff::Default).await;
    env.emu.faults().stop().await;
    match api.get("a").await {
        Err(kube::Error::Api(s)) => {
            panic!("expected a transport error while stopped, got API status {s:?}")
        }
        Err(_) => {}
        Ok(_) => panic!("request succeeded while stopped"),
    }
    env.emu.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: while-stopped, namespace: default}\n").unwrap();
    env.emu.faults().start().await.unwrap();
    assert!(
        after_reconnect(|| api.get("while-stopped")).await.is_ok(),
        "state kept across stop/start"
    );
    wait_until("reflector recovers after start", || {
        names(&reader).contains("while-stopped")
    })
    .await;
}

/// F6: restart with and without state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_restart() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["kept"]).await;
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::Default).await;

    env.emu.faults().restart(true).await.unwrap();
    assert!(
        after_reconnect(|| api.get("kept")).await.is_ok(),
        "keep_state=true keeps objects"
    );
    create_configmaps(&api, &["after-1"]).await;
    wait_until("watcher resumes after a stateful restart", || {
        names(&reader).contains("after-1")
    })
    .await;

    let before = env.emu.resource_version();
    env.emu.faults().restart(false).await.unwrap();
    assert!(
        after_reconnect(|| api.get_opt("kept"))
            .await
            .unwrap()
            .is_none(),
        "keep_state=false wipes objects"
    );
    let nss: Api<Namespace> = Api::all(env.client.clone());
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let got = after_reconnect(|| nss.get_opt(ns)).await.unwrap();
        assert!(got.is_some(), "{ns} re-created");
    }
    let fresh = create_configmap(&api, "after-2").await;
    assert!(
        rv_num(fresh.metadata.resource_version.as_deref()) > before,
        "the RV counter never rewinds"
    );
    rec.wait_for_n("relist after a stateless restart", 2, |s| *s == Seen::Init)
        .await;
    wait_until("store matches the wiped state", || {
        names(&reader) == ["after-2".to_owned()].into()
    })
    .await;
}

/// F7: touch makes cached RVs stale; conflict_next answers 409 without writing.
#[tokio::test]
async fn f7_touch_and_conflict_next() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let cached = create_configmap(&api, "a").await;
    let new_rv = env
        .emu
        .faults()
        .touch("", "configmaps", "default", "a")
        .unwrap();
    assert!(rv_num(Some(&new_rv)) > rv_num(cached.metadata.resource_version.as_deref()));
    let now = api.get("a").await.unwrap();
    assert_eq!(now.resource_version().as_deref(), Some(new_rv.as_str()));
    assert_ne!(
        now.annotations(),
        cached.annotations(),
        "touch is a real annotation write"
    );
    assert!(api_status(api.replace("a", &PostParams::default(), &cached).await).is_conflict());

    env.emu.faults().conflict_next(
        1,
        RequestMatcher::any().verb("update").resource("configmaps"),
    );
    let mut edit = now.clone();
    edit.data = Some([("k".to_owned(), "new".to_owned())].into());
    assert!(api_status(api.replace("a", &PostParams::default(), &edit).await).is_conflict());
    assert_eq!(
        api.get("a").await.unwrap().resource_version(),
        now.resource_version(),
        "no write happened"
    );
    api.replace("a", &PostParams::default(), &edit)
        .await
        .unwrap();
}

/// F9 and F10: forbid by namespace; the journal records what clients sent.
#[tokio::test]
async fn f9_forbid_and_f10_journal() {
    let env = start().await;
    env.emu
        .faults()
        .forbid(RequestMatcher::any().namespace("kube-system"));
    let sys: Api<ConfigMap> = Api::namespaced(env.client.clone(), "kube-system");
    let def: Api<ConfigMap> = env.default_api();
    assert!(api_status(sys.list(&ListParams::default()).await).is_forbidden());
    def.create(
        &PostParams {
            field_manager: Some("conformance".into()),
            ..Default::default()
        },
        &configmap("a", &[]),
    )
    .await
    .unwrap();
    env.emu.faults().clear();
    sys.list(&ListParams::default()).await.unwrap();

    within("idle", env.emu.wait_idle()).await;
    let j = env.emu.journal();
    let create = j.with_verb("create").into_iter().next().unwrap().clone();
    assert_eq!((create.method.as_str(), create.status), ("POST", 201));
    assert_eq!(create.path, "/api/v1/namespaces/default/configmaps");
    assert_eq!(
        create.query_param("fieldManager").as_deref(),
        Some("conformance")
    );
    assert!(create.body.contains("\"name\":\"a\""), "{}", create.body);
    assert_eq!(create.header("content-type"), Some("application/json"));
    assert_eq!(j.with_status(403).len(), 1);
    assert_eq!(j.writes().len(), 1);
}

/// F11: a seed makes uids and generateName suffixes reproducible.
#[tokio::test]
async fn f11_seeded_runs_are_reproducible() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = Emulator::start(EmulatorConfig {
            seed: Some(42),
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let client = emu.client().await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let o = api
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"generateName": "x-"}})),
            )
            .await
            .unwrap();
        runs.push((o.name_any(), o.uid().unwrap()));
        emu.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
}
