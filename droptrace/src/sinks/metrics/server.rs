//! The exporter's HTTP server: `/metrics` and `/healthz`, GET or HEAD, nothing else, and
//! nothing that changes the host. Every connection is bounded: how many at once (the
//! rest wait in the listen backlog), how long its request headers may take, how big they
//! may be, and how long it may live; bodies are the shared encoded figures, so hundreds
//! of scrapers cost no more memory than one.
use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming,
    header::{HeaderValue, ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::pipeline::source::Control;

use super::{encode, Shared};

/// Limits on every client, well-behaved or not.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait to be accepted.
    pub connections: usize,
    /// Time from the connection (or the previous response) to a complete request head.
    pub header_timeout: Duration,
    /// Size of a request head.
    pub header_bytes: usize,
    /// Life of a connection, requests and responses included.
    pub connection_time: Duration,
    /// Listening on loopback: answer only requests addressed to a loopback name, so a web
    /// page cannot read the metrics through DNS rebinding.
    pub loopback_only: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 256,
            header_timeout: Duration::from_secs(5),
            header_bytes: 16 * 1024,
            connection_time: Duration::from_secs(15),
            loopback_only: true,
        }
    }
}

/// Serves until `control` asks to stop.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    control: Arc<Control>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = control.stopping() => return,
        };
        let Ok(slot) = slot else { return };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, a reset before accept: the next one may work,
                // a little later (no spinning on EMFILE).
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = control.stopping() => return,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move {
                    let response = if limits.loopback_only && !addressed_to_loopback(&req) {
                        respond(
                            StatusCode::FORBIDDEN,
                            PLAIN,
                            "this server answers only requests for a loopback address\n".into(),
                        )
                    } else {
                        answer(&req, &shared)
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.header_bytes)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_time, connection).await;
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    match (path, read) {
        ("/metrics", true) => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let openmetrics = encode::wants_openmetrics(accept);
            let content_type = if openmetrics {
                encode::OPENMETRICS_CONTENT_TYPE
            } else {
                encode::TEXT_CONTENT_TYPE
            };
            respond(StatusCode::OK, content_type, shared.body(openmetrics))
        }
        ("/healthz", true) if shared.healthy() => respond(StatusCode::OK, PLAIN, "ok\n".into()),
        ("/healthz", true) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "not reading the kernel's drops\n".into(),
        ),
        ("/", true) => respond(
            StatusCode::OK,
            PLAIN,
            "droptrace serve: /metrics (Prometheus, OpenMetrics), /healthz\n".into(),
        ),
        ("/metrics" | "/healthz" | "/", false) => {
            let mut r = respond(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN,
                "only GET and HEAD\n".into(),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /metrics\n".into(),
        ),
    }
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// Whether the request's Host names a loopback address (or is absent, as HTTP/1.0 allows).
fn addressed_to_loopback(req: &Request<Incoming>) -> bool {
    let Some(host) = req.headers().get(hyper::header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    loopback_host(host)
}

fn loopback_host(host: &str) -> bool {
    // `name`, `name:port`, `[v6]`, `[v6]:port`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for ok in [
            "127.0.0.1:9877",
            "127.0.0.1",
            "localhost:9877",
            "LOCALHOST",
            "[::1]:9877",
            "[::1]",
            "127.8.9.10:1",
        ] {
            assert!(super::loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9877",
            "10.0.0.1:9877",
            "[fe80::1]:80",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!super::loopback_host(bad), "{bad}");
        }
    }
}
