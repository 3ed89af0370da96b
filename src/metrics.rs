//! The metrics endpoint: `GET /metrics` in the Prometheus text format 0.0.4
//! and `GET /healthz`, answered by a listener of our own on one thread
//! (`metrics/listener.rs`).
//!
//! The answers only read the atomics of [`Telemetry`], so a slow or abusive
//! scraper can cost the listener thread at most, never the inspector or the
//! publisher; and the listener bounds what any client can cost it.

mod exposition;
mod health;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use exposition::render;
pub use health::{HealthInputs, health};
pub use listener::ListenError;
use listener::{Limits, Listener, RequestLine, Response};

use crate::telemetry::Telemetry;

/// The running listener.
pub struct MetricsServer {
    listener: Listener,
}

/// Binds `addr` and starts the listener thread; the error names the address.
pub fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    inputs: HealthInputs,
) -> Result<MetricsServer, ListenError> {
    let handler = Box::new(move |request: RequestLine<'_>| {
        answer(request, &telemetry, &inputs, Instant::now())
    });
    let listener = listener::spawn(addr, Limits::default(), handler)?;
    log::info!(
        "serving /metrics and /healthz on http://{}",
        listener.local_addr()
    );
    Ok(MetricsServer { listener })
}

impl MetricsServer {
    /// Stops listening, closes every connection and joins the thread.
    pub fn stop(self) {
        self.listener.stop();
    }
}

const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

fn answer(
    request: RequestLine<'_>,
    telemetry: &Telemetry,
    inputs: &HealthInputs,
    now: Instant,
) -> Response {
    match (request.method, request.path) {
        ("GET", "/metrics") => Response {
            status: 200,
            content_type: EXPOSITION,
            body: render(telemetry, &(inputs.queue_depths)()),
        },
        ("GET", "/healthz") => match health(telemetry, inputs, now) {
            Ok(msg) => Response::text(200, format!("{msg}\n")),
            Err(reason) => Response::text(503, format!("{reason}\n")),
        },
        (_, "/metrics" | "/healthz") => Response::text(405, "only GET\n"),
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    pub(crate) fn inputs(interval_ms: u64, started: Instant) -> HealthInputs {
        HealthInputs {
            interval: Duration::from_millis(interval_ms),
            started,
            queue_depths: Box::new(|| vec![0]),
        }
    }

    pub(crate) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn routes() {
        let t0 = Instant::now();
        let t = Telemetry::for_sinks(&["stdout"]);
        t.sink(0).publisher_alive.store(true, Relaxed);
        let i = inputs(1000, t0);
        let status = |method, path, now| answer(RequestLine { method, path }, &t, &i, now).status;
        let table = [
            ("GET", "/metrics", t0, 200),
            ("GET", "/healthz", t0, 200),
            ("GET", "/healthz", t0 + ms(8000), 503),
            ("GET", "/", t0, 404),
            ("GET", "/metrics/", t0, 404),
            ("POST", "/metrics", t0, 405),
            ("HEAD", "/healthz", t0, 405),
            ("get", "/metrics", t0, 405),
            ("POST", "/nope", t0, 404),
        ];
        for (method, path, now, expected) in table {
            assert_eq!(status(method, path, now), expected, "{method} {path}");
        }
        let get_metrics = RequestLine {
            method: "GET",
            path: "/metrics",
        };
        assert_eq!(answer(get_metrics, &t, &i, t0).content_type, EXPOSITION);
    }
}
