//! The HTTP endpoints: `/metrics`, `/healthz` (the process answers) and `/readyz` (every
//! watch cache holds a complete list).

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

use crate::metrics::Metrics;

/// What `/readyz` looks at.
#[derive(Debug, Default)]
pub struct Readiness {
    caches_synced: AtomicBool,
}

impl Readiness {
    /// Not ready until [`Readiness::set_caches_synced`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Every watch cache holds a complete list.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Whether the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
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
        "/readyz" if readiness.is_ready() => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced\n",
            PLAIN,
        ),
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
    async fn readyz_waits_for_caches() {
        let m = Metrics::new();
        let r = Readiness::new();
        let resp = route(&Method::GET, "/readyz", &m, &r);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(resp).await.contains("caches not synced"));
        r.set_caches_synced();
        assert_eq!(
            route(&Method::GET, "/readyz", &m, &r).status(),
            StatusCode::OK
        );
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
        let resp = route(&Method::GET, "/metrics", &m, &r);
        assert!(
            body(resp)
                .await
                .contains("ferrolb_speaker_announced_service_ips")
        );
    }
}
