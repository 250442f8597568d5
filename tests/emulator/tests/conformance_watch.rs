//! Conformance: watch, reflector and bookmark behaviour as unmodified kube
//! clients observe it (spec E9, E25–E30, issue "reflector sees
//! create/update/delete and recovers after a forced 410 and after all
//! watches are dropped").

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher};
use kube_emulator::{BookmarkMode, DropMode, RequestMatcher};
use serde_json::{Value, json};

fn names_in<K: kube::Resource + Clone>(reader: &reflector::Store<K>) -> BTreeSet<String>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    reader
        .state()
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn reflector_sees_create_update_delete() {
    let env = start().await;
    let api: Api<Service> = env.default_api();
    create_lb_service(&api, "pre", &[]).await;
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::None).await;
    assert_eq!(names_in(&reader), set(&["pre"]));

    create_lb_service(&api, "a", &[("app", "x")]).await;
    wait_until("reflector sees a", || {
        names_in(&reader) == set(&["a", "pre"])
    })
    .await;

    let updated = merge_patch(&api, "a", json!({"metadata": {"labels": {"v": "2"}}}))
        .await
        .unwrap();
    let want_rv = updated.metadata.resource_version.clone().unwrap();
    wait_until("reflector sees the update", || {
        reader
            .get(&reflector::ObjectRef::new("a").within("default"))
            .is_some_and(|s| {
                s.metadata.resource_version.as_deref() == Some(want_rv.as_str())
                    && s.labels().get("v").is_some_and(|v| v == "2")
            })
    })
    .await;

    api.delete("pre", &DeleteParams::default()).await.unwrap();
    wait_until("reflector drops the deleted object", || {
        names_in(&reader) == set(&["a"])
    })
    .await;
    rec.wait_for(
        "a Delete event for pre",
        |s| matches!(s, Seen::Delete(n, _) if n == "pre"),
    )
    .await;
    assert_eq!(
        rec.count(|s| *s == Seen::Init),
        1,
        "no relist during normal operation"
    );
    assert_eq!(
        env.emu.journal().list_count("services"),
        1,
        "one LIST only: {:?}",
        rec.snapshot()
    );
}

#[tokio::test]
async fn reflector_relists_after_forced_410() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["old"]).await;
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::None).await;
    wait_until("watch open", || env.emu.watch_count() == 1).await;

    // Advance the counter with a write the watch does not select, then expire
    // all history: the watch's last RV is now older than the window.
    env.emu
        .apply_yaml(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: unrelated, namespace: default}\n",
        )
        .unwrap();
    env.emu.faults().compact(None);
    let lists_before = env.emu.journal().list_count("configmaps");
    assert_eq!(
        env.emu.faults().drop_watches(
            &RequestMatcher::any().resource("configmaps"),
            DropMode::Clean
        ),
        1
    );

    rec.wait_for_n("a second Event::Init (relist)", 2, |s| *s == Seen::Init)
        .await;
    rec.wait_for_n("a second InitDone", 2, |s| *s == Seen::InitDone)
        .await;
    let j = env.emu.journal();
    assert!(
        j.list_count("configmaps") > lists_before,
        "the 410 led to a fresh LIST"
    );
    let errored: Vec<_> = j
        .with_verb("watch")
        .into_iter()
        .filter(|e| {
            e.resource == "configmaps" && e.events.iter().any(|ev| ev.event_type == "ERROR")
        })
        .collect();
    assert!(!errored.is_empty(), "the too-old resume got an ERROR event");
    assert!(
        errored.iter().all(|e| e.status == 200),
        "410 arrives as an event on a 200 stream, never an HTTP 410"
    );

    // Recovered: live events flow again into the same store.
    create_configmaps(&api, &["new"]).await;
    api.delete("old", &DeleteParams::default()).await.unwrap();
    wait_until("store converges after relist", || {
        names_in(&reader) == set(&["new"])
    })
    .await;
}

#[tokio::test]
async fn reflector_resumes_without_list_after_watches_dropped() {
    let env = start().await;
    let api: Api<Service> = env.default_api();
    let (reader, rec) = synced_reflector(&api, watcher::Config::default(), Backoff::None).await;
    wait_until("watch open", || env.emu.watch_count() == 1).await;

    for (i, mode) in [DropMode::Clean, DropMode::Abort].into_iter().enumerate() {
        let before = env.emu.journal();
        let (lists, watches) = (
            before.list_count("services"),
            before.watch_count("services"),
        );
        assert_eq!(
            env.emu.faults().drop_watches(&RequestMatcher::any(), mode),
            1,
            "{mode:?}: one watch dropped"
        );
        let name = format!("after-{i}");
        create_lb_service(&api, &name, &[]).await;
        wait_until(&format!("{mode:?}: reflector sees {name}"), || {
            names_in(&reader).contains(&name)
        })
        .await;
        let j = env.emu.journal();
        assert_eq!(
            j.list_count("services"),
            lists,
            "{mode:?}: resumed without a LIST"
        );
        assert!(j.watch_count("services") > watches, "{mode:?}: re-watched");
        let rewatch = j
            .with_verb("watch")
            .into_iter()
            .rfind(|e| e.resource == "services")
            .unwrap()
            .clone();
        let rv = rewatch.query_param("resourceVersion").unwrap_or_default();
        assert!(
            !rv.is_empty() && rv != "0",
            "{mode:?}: the resume names the last RV, got {rv:?}"
        );
        wait_until("re-watch open", || env.emu.watch_count() == 1).await;
    }
    assert_eq!(
        rec.count(|s| *s == Seen::Init),
        1,
        "no relist: {:?}",
        rec.snapshot()
    );
}

/// E9: one strictly increasing counter; the delete consumes a value that
/// the DELETED event carries.
#[tokio::test]
async fn resource_versions_increase_and_deleted_event_carries_delete_rv() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let list = api.list(&ListParams::default()).await.unwrap();
    let start_rv = list.metadata.resource_version.unwrap();
    let mut w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start_rv}"),
    )
    .await;
    assert_eq!(w.status, 200);
    let a = create_configmap(&api, "a").await;
    let b = create_configmap(&api, "b").await;
    let a2 = merge_patch(&api, "a", json!({"data": {"k": "v2"}}))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let rvs = [&a, &b, &a2].map(|o| rv_num(o.metadata.resource_version.as_deref()));
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "RVs strictly increase: {rvs:?}"
    );
    assert!(rvs[0] > rv_num(Some(&start_rv)));

    let mut got = Vec::new();
    while got.len() < 4 {
        let ev = w.next_event(DEADLINE).await.expect("stream open");
        if ev["type"] != "BOOKMARK" {
            got.push(ev);
        }
    }
    let kinds: Vec<_> = got.iter().map(ev_kind_name).collect();
    let want: Vec<(String, String)> = [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    .iter()
    .map(|(t, n)| ((*t).into(), (*n).into()))
    .collect();
    assert_eq!(kinds, want);
    let ev_rvs: Vec<u64> = got.iter().map(ev_rv).collect();
    assert_eq!(&ev_rvs[..3], &rvs[..], "events carry the write's RV");
    assert!(
        ev_rvs[3] > rvs[2],
        "the DELETED event carries the delete's own RV ({} > {})",
        ev_rvs[3],
        rvs[2]
    );
    assert_eq!(
        got[3].pointer("/object/data/k"),
        Some(&json!("v2")),
        "DELETED carries the last state"
    );
    let after = api.list(&ListParams::default()).await.unwrap();
    assert!(
        rv_num(after.metadata.resource_version.as_deref()) >= ev_rvs[3],
        "a list reports the counter at read time"
    );
    assert!(
        got.iter()
            .all(|e| e.pointer("/object/kind") == Some(&json!("ConfigMap"))
                && e.pointer("/object/apiVersion") == Some(&json!("v1")))
    );
}

/// E26: where a watch starts, including the too-old ERROR event.
#[tokio::test]
async fn watch_start_points() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["a", "b"]).await;
    let rv = list_rv(&api).await;
    create_configmaps(&api, &["c"]).await;
    let base = "/api/v1/namespaces/default/configmaps?watch=true";

    // Unset and "0": a synthetic ADDED for every object, then live events.
    for q in ["", "&resourceVersion=0"] {
        let mut w = RawWatch::open(&env.client, &format!("{base}{q}")).await;
        assert_eq!(w.status, 200);
        let mut names = BTreeSet::new();
        for _ in 0..3 {
            let (t, n) = ev_kind_name(&w.next_event(DEADLINE).await.unwrap());
            assert_eq!(t, "ADDED", "{q}");
            names.insert(n);
        }
        assert_eq!(names, set(&["a", "b", "c"]), "{q}");
    }

    // Inside the window: only changes after that RV.
    let mut w = RawWatch::open(&env.client, &format!("{base}&resourceVersion={rv}")).await;
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev_kind_name(&ev), ("ADDED".into(), "c".into()));
    create_configmaps(&api, &["d"]).await;
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        ev_kind_name(&ev),
        ("ADDED".into(), "d".into()),
        "then live events"
    );

    // Too old: HTTP 200, one ERROR event with a 410 Status, then the end.
    env.emu.faults().compact(None);
    let mut w = RawWatch::open(&env.client, &format!("{base}&resourceVersion={rv}")).await;
    assert_eq!(w.status, 200, "never an HTTP 410 on watch");
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev.pointer("/object/code"), Some(&json!(410)), "{ev}");
    assert_eq!(ev.pointer("/object/kind"), Some(&json!("Status")));
    let reason = ev
        .pointer("/object/reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(reason == "Expired" || reason == "Gone", "{ev}");
    let msg = ev
        .pointer("/object/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(msg.contains("too old resource version"), "{msg}");
    assert!(
        w.next_event(DEADLINE).await.is_none(),
        "the stream ends after the ERROR"
    );

    // kube's typed watch sees the same as WatchEvent::Error(410).
    let mut s = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match within("typed too-old watch", s.next()).await {
        Some(Ok(WatchEvent::Error(st))) => assert_eq!(st.code, 410),
        other => panic!(
            "expected a 410 error event, got {:?}",
            other.map(|r| r.map(|_| "event"))
        ),
    }

    // A malformed RV is rejected with an HTTP error before streaming.
    let bad = raw_get(&env.client, &format!("{base}&resourceVersion=abc")).await;
    assert!(
        (400..500).contains(&bad.status),
        "malformed RV answered {}",
        bad.status
    );
    assert_eq!(bad.json()["kind"], "Status");
}

/// E28: bookmarks carry kind and apiVersion (kube's `Bookmark` needs both)
/// and never run ahead of what the stream delivered.
#[tokio::test]
async fn bookmarks_carry_kind_api_version_and_current_rv() {
    let env = start_fast_bookmarks().await;
    install_crds(&env.emu);
    let api: Api<ConfigMap> = env.default_api();
    let created = create_configmap(&api, "a").await;
    let created_rv = rv_num(created.metadata.resource_version.as_deref());
    let mut s = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut saw_added = false;
    let bm = within("typed bookmark", async {
        loop {
            match s.next().await {
                Some(Ok(WatchEvent::Added(_))) => saw_added = true,
                Some(Ok(WatchEvent::Bookmark(b))) => return b,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    panic!("watch error (a bookmark without kind/apiVersion fails to decode): {e}")
                }
                None => panic!("watch ended"),
            }
        }
    })
    .await;
    assert!(saw_added, "the synthetic ADDED precedes the bookmark");
    assert_eq!(bm.types.kind, "ConfigMap");
    assert_eq!(bm.types.api_version, "v1");
    assert!(
        rv_num(Some(&bm.metadata.resource_version)) >= created_rv,
        "bookmark RV ≥ every RV sent"
    );

    // A custom resource's bookmark names the CR's kind and group version.
    let mut w = RawWatch::open(
        &env.client,
        "/apis/ferrolb.io/v1alpha1/ipaddresspools?watch=true&allowWatchBookmarks=true",
    )
    .await;
    let ev = w.until("a CR bookmark", |e| e["type"] == "BOOKMARK").await;
    assert_eq!(
        ev.pointer("/object/kind"),
        Some(&json!("IPAddressPool")),
        "{ev}"
    );
    assert_eq!(
        ev.pointer("/object/apiVersion"),
        Some(&json!("ferrolb.io/v1alpha1")),
        "{ev}"
    );
    assert!(
        ev.pointer("/object/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
    );

    // Without allowWatchBookmarks no bookmark is sent.
    let mut w = RawWatch::open(
        &env.client,
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0",
    )
    .await;
    let evs = w.drain_for(Duration::from_millis(400)).await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    // drain_for drops bookmarks, so check the raw journal instead.
    let j = env.emu.journal();
    let plain = j
        .with_verb("watch")
        .into_iter()
        .rfind(|e| e.query_param("allowWatchBookmarks").is_none())
        .cloned()
        .unwrap();
    assert!(
        plain.events.iter().all(|e| e.event_type != "BOOKMARK"),
        "{:?}",
        plain.events
    );
}

/// E28 test idea: a quiet filtered watch stays resumable through 1 000
/// unrelated writes and a compaction thanks to bookmarks.
#[tokio::test]
async fn quiet_filtered_watch_resumes_after_compaction_thanks_to_bookmarks() {
    let env = start_fast_bookmarks().await;
    let api: Api<ConfigMap> = env.default_api();
    let cfg = watcher::Config::default().labels("app=quiet");
    let (reader, rec) = synced_reflector(&api, cfg, Backoff::None).await;
    wait_until("watch open", || env.emu.watch_count() == 1).await;

    let mut yaml = String::new();
    for i in 0..1000 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: noise-{i}, namespace: default, labels: {{app: loud}}}}\n"));
    }
    env.emu.apply_yaml(&yaml).unwrap();
    let head = env.emu.resource_version();
    wait_until("a bookmark at or after the last unrelated write", || {
        env.emu.journal().with_verb("watch").iter().any(|e| {
            e.resource == "configmaps"
                && e.events.iter().any(|ev| {
                    ev.event_type == "BOOKMARK"
                        && ev.resource_version.parse::<u64>().unwrap_or(0) >= head
                })
        })
    })
    .await;
    env.emu.faults().compact(None);
    let lists = env.emu.journal().list_count("configmaps");
    assert_eq!(
        env.emu
            .faults()
            .drop_watches(&RequestMatcher::any(), DropMode::Clean),
        1
    );
    api.create(&PostParams::default(), &configmap("q", &[("app", "quiet")]))
        .await
        .unwrap();
    wait_until("the quiet watch sees q", || {
        names_in(&reader) == set(&["q"])
    })
    .await;
    let j = env.emu.journal();
    assert_eq!(
        j.list_count("configmaps"),
        lists,
        "resumed from the bookmark without a relist"
    );
    assert_eq!(rec.count(|s| *s == Seen::Init), 1, "{:?}", rec.snapshot());
    assert!(
        j.with_verb("watch")
            .iter()
            .all(|e| e.events.iter().all(|ev| ev.event_type != "ERROR")),
        "no 410 on resume"
    );
}

/// E29: timeoutSeconds ends the stream cleanly (after a bookmark), and the
/// kube watcher re-watches from the last RV without relisting.
#[tokio::test]
async fn watch_timeout_closes_cleanly_and_watcher_rewatches() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["a"]).await;
    let t0 = Instant::now();
    let mut w = RawWatch::open(&env.client, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&allowWatchBookmarks=true").await;
    assert_eq!(w.status, 200);
    let mut types = Vec::new();
    while let Some(ev) = w.next_event(Duration::from_secs(10)).await {
        types.push(ev["type"].as_str().unwrap_or("").to_owned());
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(6),
        "stream lasted {took:?}"
    );
    assert_eq!(
        types.first().map(String::as_str),
        Some("ADDED"),
        "{types:?}"
    );
    assert!(
        types.iter().any(|t| t == "BOOKMARK"),
        "a bookmark before the timeout: {types:?}"
    );

    let rec = Recorder::spawn(watcher(api.clone(), watcher::Config::default().timeout(1)));
    rec.wait_for("initial list done", |s| *s == Seen::InitDone)
        .await;
    let t1 = Instant::now();
    wait_until("three watch requests", || {
        env.emu.journal().watch_count("configmaps") >= 4
    })
    .await;
    assert!(
        t1.elapsed() >= Duration::from_millis(1500),
        "watches are not closed early: {:?}",
        t1.elapsed()
    );
    let j = env.emu.journal();
    assert_eq!(
        j.list_count("configmaps"),
        1,
        "timeouts never cause a relist"
    );
    assert_eq!(rec.count(|s| *s == Seen::Init), 1);
    let rewatches: Vec<_> = j
        .with_verb("watch")
        .into_iter()
        .filter(|e| e.resource == "configmaps")
        .skip(2)
        .collect();
    assert!(rewatches.iter().all(|e| {
        e.query_param("resourceVersion")
            .is_some_and(|r| !r.is_empty() && r != "0")
    }));
    create_configmaps(&api, &["b"]).await;
    rec.wait_applied("live events still flow", "b").await;
}

/// E27: an object leaving a selected set yields DELETED, re-entering ADDED;
/// field selectors filter watches.
#[tokio::test]
async fn selector_transitions_on_watch() {
    let env = start().await;
    let api: Api<Service> = env.default_api();
    let rv = list_rv(&api).await;
    let mut w = RawWatch::open(&env.client, &format!("/api/v1/namespaces/default/services?watch=true&labelSelector=app%3Dx&resourceVersion={rv}")).await;
    api.create(
        &PostParams::default(),
        &lb_service("other", &[("app", "y")]),
    )
    .await
    .unwrap();
    let s1 = create_lb_service(&api, "s1", &[("app", "x")]).await;
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        ev_kind_name(&ev),
        ("ADDED".into(), "s1".into()),
        "the non-matching Service is filtered out"
    );

    let moved = merge_patch(&api, "s1", json!({"metadata": {"labels": {"app": "z"}}}))
        .await
        .unwrap();
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        ev_kind_name(&ev),
        ("DELETED".into(), "s1".into()),
        "relabelled out → DELETED"
    );
    assert_eq!(
        ev_rv(&ev),
        rv_num(moved.metadata.resource_version.as_deref()),
        "with the new RV"
    );
    assert!(ev_rv(&ev) > rv_num(s1.metadata.resource_version.as_deref()));

    merge_patch(
        &api,
        "other",
        json!({"metadata": {"annotations": {"n": "1"}}}),
    )
    .await
    .unwrap();
    merge_patch(&api, "s1", json!({"metadata": {"labels": {"app": "x"}}}))
        .await
        .unwrap();
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        ev_kind_name(&ev),
        ("ADDED".into(), "s1".into()),
        "relabelled back → ADDED"
    );

    // The kube watcher with a label selector keeps an exact store.
    let (reader, _rec) = synced_reflector(
        &api,
        watcher::Config::default().labels("app=x"),
        Backoff::None,
    )
    .await;
    assert_eq!(names_in(&reader), set(&["s1"]));
    merge_patch(&api, "s1", json!({"metadata": {"labels": {"app": "gone"}}}))
        .await
        .unwrap();
    wait_until("watcher drops the relabelled Service", || {
        names_in(&reader).is_empty()
    })
    .await;

    // E24: a field-selected Node watch receives nothing for another node.
    let nodes: Api<Node> = Api::all(env.client.clone());
    for n in ["node-a", "node-b"] {
        nodes
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": n}})),
            )
            .await
            .unwrap();
    }
    let mut w = RawWatch::open(
        &env.client,
        "/api/v1/nodes?watch=true&fieldSelector=metadata.name%3Dnode-a",
    )
    .await;
    assert_eq!(
        ev_kind_name(&w.next_event(DEADLINE).await.unwrap()),
        ("ADDED".into(), "node-a".into())
    );
    merge_patch(
        &nodes,
        "node-b",
        json!({"metadata": {"labels": {"x": "1"}}}),
    )
    .await
    .unwrap();
    merge_patch(
        &nodes,
        "node-a",
        json!({"metadata": {"labels": {"x": "1"}}}),
    )
    .await
    .unwrap();
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        ev_kind_name(&ev),
        ("MODIFIED".into(), "node-a".into()),
        "node-b's change never arrives"
    );
}

/// E30: sendInitialEvents is either supported (ADDED…, then the
/// initial-events-end bookmark) or rejected with 422 — never ignored.
#[tokio::test]
async fn streaming_list_supported_or_rejected_with_422() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &configmap(n, &[]))
            .await
            .unwrap();
    }
    let base = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true";
    // Without the two companion parameters it is always 422.
    let bad = raw_get(&env.client, base).await;
    bad.assert_status(422);
    assert_eq!(bad.json()["reason"], "Invalid");
    let bad = raw_get(
        &env.client,
        "/api/v1/namespaces/default/configmaps?sendInitialEvents=true",
    )
    .await;
    assert_eq!(bad.status, 422, "sendInitialEvents on a list");

    let mut w = RawWatch::open(
        &env.client,
        &format!("{base}&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    if w.status == 422 {
        // Rejection is compliant; kube's opt-in streaming lists then fail loudly.
        return;
    }
    assert_eq!(w.status, 200);
    let mut added = BTreeSet::new();
    let end = loop {
        let ev = w.next_event(DEADLINE).await.expect("stream open");
        match ev["type"].as_str() {
            Some("ADDED") => {
                added.insert(ev_kind_name(&ev).1);
            }
            Some("BOOKMARK") => {
                if ev.pointer("/object/metadata/annotations/k8s.io~1initial-events-end")
                    == Some(&json!("true"))
                {
                    break ev;
                }
            }
            _ => panic!("unexpected event before the end bookmark: {ev}"),
        }
    };
    assert_eq!(added, set(&["a", "b"]));
    assert_eq!(end.pointer("/object/kind"), Some(&json!("ConfigMap")));

    // kube's opt-in streaming lists reach InitDone without any LIST.
    env.emu.clear_journal();
    let rec = Recorder::spawn(watcher(
        api.clone(),
        watcher::Config::default().streaming_lists(),
    ));
    rec.wait_for("InitDone via streaming list", |s| *s == Seen::InitDone)
        .await;
    assert_eq!(rec.count(|s| matches!(s, Seen::InitApply(_))), 2);
    assert_eq!(env.emu.journal().list_count("configmaps"), 0, "no LIST");
    create_configmaps(&api, &["c"]).await;
    rec.wait_applied("then live events", "c").await;
}

/// F8: a bookmark on demand reaches a watcher even with periodic ones off.
#[tokio::test]
async fn bookmark_now_reaches_open_watches() {
    let env = start().await;
    env.emu.faults().bookmarks(BookmarkMode::Off);
    let mut w = RawWatch::open(
        &env.client,
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true",
    )
    .await;
    wait_until("watch registered", || env.emu.watch_count() == 1).await;
    assert!(w.drain_for(Duration::from_millis(200)).await.is_empty());
    env.emu.faults().bookmarks(BookmarkMode::Now);
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev_rv(&ev), env.emu.resource_version());
}

/// E31: with a window of 10 events, the 11th write expires the first RV.
#[tokio::test]
async fn history_window_expires_old_resume_points() {
    let env = start_with(kube_emulator::EmulatorConfig {
        history_max_events: 10,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = env.default_api();
    let first = create_configmap(&api, "c0").await;
    let first_rv = first.resource_version().unwrap();
    for i in 1..12 {
        api.create(&PostParams::default(), &configmap(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={first_rv}"),
    )
    .await;
    assert_eq!(w.status, 200);
    let ev = w.next_event(DEADLINE).await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev.pointer("/object/code")),
        (Some("ERROR"), Some(&json!(410))),
        "{ev}"
    );
    // A recent RV is still inside the window and replays in order.
    let recent = rv_num(Some(&first_rv)) + 8;
    let mut w = RawWatch::open(
        &env.client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={recent}"),
    )
    .await;
    let mut rvs = Vec::new();
    while rvs.len() < 3 {
        let ev = w.next_event(DEADLINE).await.unwrap();
        assert_eq!(ev["type"], "ADDED", "{ev}");
        rvs.push(ev_rv(&ev));
    }
    assert_eq!(rvs, vec![recent + 1, recent + 2, recent + 3]);
}

/// E1/E25: 200 concurrent long-lived watches, each line a complete JSON event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_watches_all_receive_events() {
    let env = start().await;
    let mut watches = Vec::new();
    for _ in 0..200 {
        watches.push(
            RawWatch::open(
                &env.client,
                "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0",
            )
            .await,
        );
    }
    wait_until("200 watches registered", || env.emu.watch_count() == 200).await;
    let w0 = &watches[0];
    assert!(
        w0.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let api: Api<ConfigMap> = env.default_api();
    create_configmaps(&api, &["hello"]).await;
    let tasks: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let ev = w.next_event(DEADLINE).await.expect("event");
                ev_kind_name(&ev)
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), ("ADDED".to_owned(), "hello".to_owned()));
    }
    wait_until("disconnects free the watches", || {
        env.emu.watch_count() == 0
    })
    .await;
}

/// E28: a bookmark arrives about 2 s before the timeout closes the stream,
/// even with periodic bookmarks at their (long) default interval.
#[tokio::test]
async fn closing_bookmark_before_timeout() {
    let env = start().await;
    let api: Api<ConfigMap> = env.default_api();
    let created = create_configmap(&api, "a").await;
    let t0 = Instant::now();
    let mut w = RawWatch::open(&env.client, &format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3&allowWatchBookmarks=true&resourceVersion={}",
        created.resource_version().unwrap()
    ))
    .await;
    let ev = w
        .next_event(Duration::from_secs(10))
        .await
        .expect("a bookmark before the end");
    let at = t0.elapsed();
    assert_eq!(ev["type"], "BOOKMARK", "{ev}");
    assert!(
        at >= Duration::from_millis(500) && at < Duration::from_millis(2800),
        "bookmark at {at:?}"
    );
    assert!(
        w.next_event(Duration::from_secs(10)).await.is_none(),
        "then the stream ends"
    );
    let end = t0.elapsed();
    assert!(
        end >= Duration::from_millis(2500) && end < Duration::from_secs(6),
        "ended at {end:?}"
    );
}

/// E29: without timeoutSeconds the configured server default applies.
#[tokio::test]
async fn server_default_watch_timeout_applies() {
    let env = start_with(kube_emulator::EmulatorConfig {
        default_watch_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let t0 = Instant::now();
    let mut w = RawWatch::open(
        &env.client,
        "/api/v1/namespaces/default/configmaps?watch=true",
    )
    .await;
    assert_eq!(w.status, 200);
    assert!(w.drain_for(Duration::from_secs(10)).await.is_empty());
    assert!(w.ended, "the stream ended");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
