//! Conformance: kube's events `Recorder` and events.k8s.io/v1 validation (spec E37).

// Helpers outside #[test] bodies panic on failure too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

fn ev(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Allocate".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn recorder_publishes_and_repeats_as_a_series() {
    let env = start().await;
    let svcs: Api<Service> = env.default_api();
    let svc = create_lb_service(&svcs, "web", &[]).await;
    let reporter = Reporter {
        controller: "ferrolb-controller".into(),
        instance: Some("ferrolb-controller-0".into()),
    };
    let recorder = Recorder::new(env.client.clone(), reporter);
    let reference = svc.object_ref(&());
    recorder
        .publish(&ev("IPAllocated", "assigned 192.0.2.1"), &reference)
        .await
        .unwrap();
    let events: Api<K8sEvent> = env.default_api();
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let first = &list.items[0];
    assert!(first.name_any().starts_with("web."), "{}", first.name_any());
    assert_eq!(
        first.regarding.as_ref().and_then(|r| r.uid.clone()),
        svc.uid()
    );
    assert_eq!(
        first.reporting_controller.as_deref(),
        Some("ferrolb-controller")
    );
    assert!(first.series.is_none());

    // The repeat is a merge patch of the cached event with a series.
    recorder
        .publish(&ev("IPAllocated", "assigned again"), &reference)
        .await
        .unwrap();
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "still one object");
    let e = &list.items[0];
    let series = e.series.as_ref().expect("a series after the repeat");
    assert_eq!(series.count, 2);
    assert_eq!(
        e.note.as_deref(),
        Some("assigned 192.0.2.1"),
        "the first note is kept"
    );
    recorder
        .publish(&ev("IPAllocated", "x"), &reference)
        .await
        .unwrap();
    let e = events.get(&first.name_any()).await.unwrap();
    assert_eq!(e.series.unwrap().count, 3);
    let j = env.emu.journal();
    let writes: Vec<_> = j
        .on_resource("events")
        .into_iter()
        .filter(|e| e.verb == "create" || e.verb == "patch")
        .map(|e| e.verb.clone())
        .collect();
    assert_eq!(writes, vec!["create", "patch", "patch"]);

    // A different reason is a separate event.
    recorder
        .publish(&ev("PoolExhausted", "no addresses"), &reference)
        .await
        .unwrap();
    assert_eq!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn recorder_with_an_invalid_reporter_name_gets_422() {
    let env = start().await;
    let svcs: Api<Service> = env.default_api();
    let svc = create_lb_service(&svcs, "web", &[]).await;
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "Ferro LB".into(),
            instance: None,
        },
    );
    let s = api_status(
        recorder
            .publish(&ev("IPAllocated", "n"), &svc.object_ref(&()))
            .await,
    );
    assert!(s.is_invalid(), "{s:?}");
    assert_eq!(s.code, 422);
    assert!(
        s.details
            .unwrap()
            .causes
            .iter()
            .any(|c| c.field == "reportingController"),
        "cause names reportingController"
    );
}

#[tokio::test]
async fn recorder_for_a_cluster_scoped_object_writes_to_default() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node = nodes
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "node-a"}})),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(env.client.clone(), "ferrolb-speaker".into());
    recorder
        .publish(&ev("Announced", "192.0.2.1"), &node.object_ref(&()))
        .await
        .unwrap();
    let events: Api<K8sEvent> = env.default_api();
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].namespace().as_deref(), Some("default"));
}

/// E37: create validation and immutable fields on update.
#[tokio::test]
async fn event_validation() {
    let env = start().await;
    let events: Api<K8sEvent> = env.default_api();
    let good = json!({
        "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "type": "Normal", "reason": "R", "action": "A", "note": "n",
        "reportingController": "ferrolb.io/controller", "reportingInstance": "i",
        "regarding": {"kind": "Service", "namespace": "default", "name": "web", "apiVersion": "v1"}
    });
    let with = |path: &str, v: Value| {
        let mut e = good.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut e
        } else {
            e.pointer_mut(parent).unwrap()
        };
        if v.is_null() {
            target.as_object_mut().unwrap().remove(key);
        } else {
            target[key] = v;
        }
        obj::<K8sEvent>(e)
    };
    for (path, v) in [
        ("/eventTime", Value::Null),
        ("/type", json!("Bogus")),
        ("/reportingController", Value::Null),
        ("/reportingInstance", Value::Null),
        ("/action", Value::Null),
        ("/reason", Value::Null),
        ("/note", json!("n".repeat(1025))),
        ("/regarding/namespace", json!("kube-system")),
        (
            "/series",
            json!({"count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}),
        ),
        ("/deprecatedCount", json!(3)),
    ] {
        let s = api_status(
            events
                .create(&PostParams::default(), &with(path, v.clone()))
                .await,
        );
        assert!(s.is_invalid(), "{path} = {v}: {s:?}");
    }
    events
        .create(
            &PostParams::default(),
            &with("/eventTime", json!("2026-01-01T00:00:00.000000Z")),
        )
        .await
        .unwrap();
    // Immutable on update; a series may be added.
    let s = api_status(merge_patch(&events, "e1", json!({"note": "changed"})).await);
    assert!(s.is_invalid(), "{s:?}");
    let s = api_status(merge_patch(&events, "e1", json!({"reason": "Other"})).await);
    assert!(s.is_invalid(), "{s:?}");
    let ok = events
        .patch(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(ok.series.unwrap().count, 2);
    // Semantic, not textual, comparison: the same eventTime in another spelling is not a change.
    merge_patch(&events, "e1", json!({"eventTime": "2026-01-01T00:00:00Z"}))
        .await
        .unwrap_or_else(|e| panic!("same instant, other spelling: {e}"));
}
