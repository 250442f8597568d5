//! The operational surface both binaries share: the `/metrics`, `/healthz` and `/readyz`
//! server, log setup, and the retry policy of their watches ([`backoff`]).
//!
//! Each binary brings what differs: how it encodes its metrics ([`MetricsText`]) and what
//! "ready" means for it ([`Readiness`]).

pub mod backoff;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Content type of `/healthz`, `/readyz` and the error answers.
const PLAIN: &str = "text/plain; charset=utf-8";
/// Content type of `/metrics`.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A source of the `/metrics` body.
pub trait MetricsText: Send + Sync {
    /// The current metrics in OpenMetrics text format.
    fn encode(&self) -> String;
}

/// What `/readyz` asks.
pub trait Readiness: Send + Sync {
    /// `Ok(status)` when ready (answered as `200 {status}\n`, e.g. `ok: leading`), `Err(why)`
    /// when not (answered as `503 not ready: {why}\n`).
    fn check(&self) -> Result<String, String>;
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
    metrics: &dyn MetricsText,
    readiness: &dyn Readiness,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            PLAIN,
        );
    }
    match path {
        "/metrics" => text(StatusCode::OK, metrics.encode(), OPENMETRICS),
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => match readiness.check() {
            Ok(status) => text(StatusCode::OK, format!("{status}\n"), PLAIN),
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
    metrics: Arc<dyn MetricsText>,
    readiness: Arc<dyn Readiness>,
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
                    let resp = route(req.method(), req.uri().path(), &*metrics, &*readiness);
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

/// Log output format (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up logging in the chosen format; `RUST_LOG` overrides the default `info` level.
///
/// A second call keeps the first subscriber, so tests may call it freely.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Mutex;

    struct FakeMetrics;
    impl MetricsText for FakeMetrics {
        fn encode(&self) -> String {
            "# TYPE ferrolb_test counter\nferrolb_test_total 1\n# EOF\n".to_owned()
        }
    }

    /// Readiness whose answer the test sets.
    struct Switch(Mutex<Result<String, String>>);
    impl Readiness for Switch {
        fn check(&self) -> Result<String, String> {
            self.0.lock().unwrap().clone()
        }
    }
    fn switch(answer: Result<&str, &str>) -> Switch {
        Switch(Mutex::new(answer.map(str::to_owned).map_err(str::to_owned)))
    }

    /// Asks `route` and returns what a client would see: status, content type, body.
    async fn get(method: Method, path: &str, r: &Switch) -> (StatusCode, String, String) {
        let resp = route(&method, path, &FakeMetrics, r);
        let status = resp.status();
        let ctype = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(b.to_vec()).unwrap())
    }

    fn plain(status: StatusCode, body: &str) -> (StatusCode, String, String) {
        (status, PLAIN.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn readyz_reports_the_readiness_answer() {
        let r = switch(Err("caches not synced"));
        assert_eq!(
            get(Method::GET, "/readyz", &r).await,
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: caches not synced\n"
            )
        );
        *r.0.lock().unwrap() = Ok("ok: leading".to_owned());
        assert_eq!(
            get(Method::GET, "/readyz", &r).await,
            plain(StatusCode::OK, "ok: leading\n")
        );
    }

    #[tokio::test]
    async fn health_metrics_and_errors() {
        let r = switch(Err("not yet"));
        // Liveness does not depend on readiness.
        for path in ["/healthz", "/livez"] {
            assert_eq!(
                get(Method::GET, path, &r).await,
                plain(StatusCode::OK, "ok\n")
            );
        }
        assert_eq!(get(Method::HEAD, "/healthz", &r).await.0, StatusCode::OK);
        let (status, ctype, body) = get(Method::GET, "/metrics", &r).await;
        assert_eq!((status, ctype.as_str()), (StatusCode::OK, OPENMETRICS));
        assert!(body.contains("ferrolb_test_total 1"), "{body}");
        assert_eq!(
            get(Method::GET, "/nope", &r).await,
            plain(StatusCode::NOT_FOUND, "not found\n")
        );
        assert_eq!(
            get(Method::POST, "/metrics", &r).await,
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        );
    }

    #[tokio::test]
    async fn serves_over_tcp_until_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stop = CancellationToken::new();
        let (addr, fut) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(FakeMetrics),
            Arc::new(switch(Ok("ok"))),
            stop.clone(),
        )
        .await
        .unwrap();
        let task = tokio::spawn(fut);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
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
        assert!(out.contains("ferrolb_test_total 1"), "{out}");
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(
            addr,
            Arc::new(FakeMetrics),
            Arc::new(switch(Ok("ok"))),
            CancellationToken::new(),
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
