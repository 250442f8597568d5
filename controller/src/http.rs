//! The HTTP endpoints: `/metrics`, `/healthz` (the process answers) and `/readyz` (caches
//! synced, and leader election has an answer: leading or standing by).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::leader::Leadership;
use crate::metrics::Metrics;

/// What `/readyz` looks at.
#[derive(Debug)]
pub struct Readiness {
    caches_synced: AtomicBool,
    election_settled: AtomicBool,
    leadership: Leadership,
}

impl Readiness {
    /// Not ready until [`Readiness::set_caches_synced`] and [`Readiness::set_election_settled`].
    pub fn new(leadership: Leadership) -> Self {
        Readiness {
            caches_synced: AtomicBool::new(false),
            election_settled: AtomicBool::new(false),
            leadership,
        }
    }

    /// The watch caches hold a complete list.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// The elector has talked to the API server at least once (or election is off).
    pub fn set_election_settled(&self) {
        self.election_settled.store(true, Ordering::Release);
    }

    /// `Ok(role)` when ready, `Err(why)` when not.
    pub fn check(&self) -> Result<&'static str, &'static str> {
        if !self.caches_synced.load(Ordering::Acquire) {
            return Err("caches not synced");
        }
        if !self.election_settled.load(Ordering::Acquire) {
            return Err("leader election has not settled");
        }
        Ok(if self.leadership.is_leader() {
            "leading"
        } else {
            "standby"
        })
    }
}

/// Failures of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Answers one request; separate from the socket code so tests can call it directly.
pub fn route(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            PLAIN,
        );
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => match readiness.check() {
            Ok(role) => text(StatusCode::OK, format!("ok: {role}\n"), PLAIN),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                PLAIN,
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n", PLAIN),
    }
}

/// Binds `addr`; returns the bound address (port 0 picks one) and a future serving until
/// `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = ()>), HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let fut = async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => break,
            };
            let (stream, _) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            };
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = route(req.method(), req.uri().path(), &metrics, &readiness);
                    async move { Ok::<_, Infallible>(resp) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            });
        }
    };
    Ok((bound, fut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn readyz_waits_for_caches_and_election() {
        let m = Metrics::new();
        let r = Readiness::new(Leadership::always());
        let resp = route(&Method::GET, "/readyz", &m, &r);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(resp).await.contains("caches not synced"));
        r.set_caches_synced();
        assert_eq!(
            route(&Method::GET, "/readyz", &m, &r).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        r.set_election_settled();
        let resp = route(&Method::GET, "/readyz", &m, &r);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await, "ok: leading\n");
        assert_eq!(
            route(&Method::GET, "/healthz", &m, &r).status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&Method::GET, "/nope", &m, &r).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/metrics", &m, &r).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn serves_metrics_over_tcp() {
        let m = Arc::new(Metrics::new());
        m.allocations.inc();
        let r = Arc::new(Readiness::new(Leadership::always()));
        let stop = CancellationToken::new();
        let (addr, fut) = serve("127.0.0.1:0".parse().unwrap(), m, r, stop.clone())
            .await
            .unwrap();
        let task = tokio::spawn(fut);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.read_to_string(&mut out),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("ferrolb_allocations_total 1"), "{out}");
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
