//! The fault and journal hooks over HTTP, under `/__emulator/` (spec §8).
//! Never listed in discovery; not journaled; not held by `pause`.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::server::{Body, Control, Shared};
use crate::{BookmarkMode, DropMode, Faults, RequestMatcher};

fn reply(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(bytes::Bytes::from(
            serde_json::to_vec(v).unwrap_or_default(),
        ))
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn bad(msg: &str) -> Response<Body> {
    reply(StatusCode::BAD_REQUEST, &json!({"ok": false, "error": msg}))
}

fn matcher(body: &Value) -> Result<RequestMatcher, String> {
    match body.get("matcher") {
        None | Some(Value::Null) => Ok(RequestMatcher::any()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|e| format!("bad matcher: {e}")),
    }
}

fn u64_of(body: &Value, k: &str) -> Option<u64> {
    body.get(k).and_then(Value::as_u64)
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let op = req
        .uri()
        .path()
        .trim_start_matches("/__emulator")
        .trim_matches('/')
        .to_owned();
    let raw = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad("unreadable body"),
    };
    let body: Value = if raw.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(e) => return bad(&format!("body is not JSON: {e}")),
        }
    };
    let faults = Faults {
        shared: shared.clone(),
    };
    let ok = |extra: Value| reply(StatusCode::OK, &json!({"ok": true, "result": extra}));
    let m = match matcher(&body) {
        Ok(m) => m,
        Err(e) => return bad(&e),
    };
    match (method, op.as_str()) {
        (Method::GET, "journal") => {
            ok(serde_json::to_value(shared.journal.snapshot()).unwrap_or(Value::Null))
        }
        (Method::POST, "journal/clear") => {
            shared.journal.clear();
            ok(Value::Null)
        }
        (Method::GET, "wait_idle") => {
            crate::wait_idle(&shared).await;
            ok(Value::Null)
        }
        (Method::GET, "state") => {
            let st = shared.store();
            ok(
                json!({"resourceVersion": st.rv, "compacted": st.compacted, "watches": st.watch_count()}),
            )
        }
        (Method::POST, "drop_watches") => {
            let mode = match body.get("mode").and_then(Value::as_str).unwrap_or("clean") {
                "clean" => DropMode::Clean,
                "abort" => DropMode::Abort,
                "error" => DropMode::Error(
                    u16::try_from(u64_of(&body, "code").unwrap_or(410)).unwrap_or(410),
                ),
                other => return bad(&format!("unknown mode {other}")),
            };
            ok(json!(faults.drop_watches(&m, mode)))
        }
        (Method::POST, "compact") => {
            faults.compact(u64_of(&body, "upTo"));
            ok(Value::Null)
        }
        (Method::POST, "fail_next") => {
            let n = u32::try_from(u64_of(&body, "n").unwrap_or(1)).unwrap_or(1);
            let code = u16::try_from(u64_of(&body, "code").unwrap_or(500)).unwrap_or(500);
            faults.fail_next(
                n,
                m,
                code,
                body.get("reason").and_then(Value::as_str),
                u64_of(&body, "retryAfter"),
            );
            ok(Value::Null)
        }
        (Method::POST, "conflict_next") => {
            faults.conflict_next(
                u32::try_from(u64_of(&body, "n").unwrap_or(1)).unwrap_or(1),
                m,
            );
            ok(Value::Null)
        }
        (Method::POST, "forbid") => {
            faults.forbid(m);
            ok(Value::Null)
        }
        (Method::POST, "delay") => {
            let d = Duration::from_millis(u64_of(&body, "ms").unwrap_or(0));
            let j = Duration::from_millis(u64_of(&body, "jitterMs").unwrap_or(0));
            faults.delay(m, d, j);
            ok(Value::Null)
        }
        (Method::POST, "delay_events") => {
            faults.delay_events(Duration::from_millis(u64_of(&body, "ms").unwrap_or(0)));
            ok(Value::Null)
        }
        (Method::POST, "pause") => {
            faults.pause();
            ok(Value::Null)
        }
        (Method::POST, "resume") => {
            faults.resume();
            ok(Value::Null)
        }
        (Method::POST, "clear") => {
            faults.clear();
            ok(Value::Null)
        }
        (Method::POST, "stop") => {
            // The supervisor acts after a short pause so this answer gets out.
            let _ = shared.control.send(Control::Stop);
            ok(Value::Null)
        }
        (Method::POST, "restart") => {
            let keep = body
                .get("keepState")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let _ = shared.control.send(Control::Restart { keep_state: keep });
            ok(Value::Null)
        }
        (Method::POST, "touch") => {
            let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            match faults.touch(&s("group"), &s("resource"), &s("namespace"), &s("name")) {
                Ok(rv) => ok(json!({"resourceVersion": rv})),
                Err(e) => bad(&e.to_string()),
            }
        }
        (Method::POST, "bookmarks") => {
            let mode = match body.get("mode").and_then(Value::as_str).unwrap_or("") {
                "off" => BookmarkMode::Off,
                "now" => BookmarkMode::Now,
                "interval" => BookmarkMode::Interval(Duration::from_millis(
                    u64_of(&body, "ms").unwrap_or(60_000),
                )),
                other => return bad(&format!("unknown bookmark mode {other:?}")),
            };
            faults.bookmarks(mode);
            ok(Value::Null)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": format!("unknown hook {op}")}),
        ),
    }
}
