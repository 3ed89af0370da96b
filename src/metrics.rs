//! The metrics endpoint: `GET /metrics` in the Prometheus text format 0.0.4
//! (with the latest board's gauges, `metrics/board.rs`), `GET /healthz`,
//! and the status page, `GET /` (HTML) and `GET /status.json` (what
//! `rtinspect status --json` prints), answered by a listener of our own on
//! one thread (`metrics/listener.rs`).
//!
//! The answers only read the atomics of [`Telemetry`] and the last board
//! the inspector published (an `Arc` taken under a short lock), so a slow
//! or abusive client can cost the listener thread at most, never the
//! inspector or the publisher; and the listener bounds what any client can
//! cost it: connections, time, and the page's rows.

mod board;
mod exposition;
mod health;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use exposition::render;
pub(crate) use health::{HealthInputs, health};
pub(crate) use listener::ListenError;
use listener::{Limits, Listener, RequestLine, Response};

use crate::status::html::PAGE_ROWS;
use crate::status::live::LiveBoard;
use crate::telemetry::Telemetry;

/// The running listener.
pub(crate) struct MetricsServer {
    listener: Listener,
    board: Arc<LiveBoard>,
}

/// Binds `addr` and starts the listener thread, the status page being of
/// `host`; the error names the address.
pub(crate) fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    inputs: HealthInputs,
    host: String,
) -> Result<MetricsServer, ListenError> {
    let board = Arc::new(LiveBoard::new(host));
    let shown = board.clone();
    let handler = Box::new(move |request: RequestLine<'_>| {
        answer(request, &telemetry, &inputs, &shown, Instant::now())
    });
    let listener = listener::spawn(addr, Limits::default(), handler)?;
    log::info!(
        "serving the status page, /metrics and /healthz on http://{}",
        listener.local_addr()
    );
    Ok(MetricsServer { listener, board })
}

impl MetricsServer {
    /// The board the status page shows: the inspector publishes to it.
    pub(crate) fn board(&self) -> Arc<LiveBoard> {
        self.board.clone()
    }

    /// Stops listening, closes every connection and joins the thread.
    pub(crate) fn stop(self) {
        self.listener.stop();
    }
}

const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

fn answer(
    request: RequestLine<'_>,
    telemetry: &Telemetry,
    inputs: &HealthInputs,
    live: &LiveBoard,
    now: Instant,
) -> Response {
    match (request.method, request.path) {
        ("GET", "/metrics") => {
            let mut body = render(telemetry, &(inputs.queue_depths)());
            board::render(&mut body, live.latest().as_deref(), telemetry, now);
            Response {
                status: 200,
                content_type: EXPOSITION,
                body,
            }
        }
        ("GET", "/healthz") => match health(telemetry, inputs, now) {
            Ok(msg) => Response::text(200, format!("{msg}\n")),
            Err(reason) => Response::text(503, format!("{reason}\n")),
        },
        ("GET", "/") => Response {
            status: 200,
            content_type: HTML,
            body: crate::status::html::render(
                live.latest().as_deref(),
                std::time::SystemTime::now(),
                inputs.interval,
            ),
        },
        ("GET", "/status.json") => match live.latest() {
            Some(board) => Response {
                status: 200,
                content_type: JSON,
                body: board.json(PAGE_ROWS * 2),
            },
            None => Response::text(503, "no look yet: the first tick has not ended\n"),
        },
        (_, "/metrics" | "/healthz" | "/" | "/status.json") => Response::text(405, "only GET\n"),
        _ => Response::text(
            404,
            "not found: try /, /status.json, /metrics or /healthz\n",
        ),
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
        let live = LiveBoard::new("h".into());
        let status =
            |method, path, now| answer(RequestLine { method, path }, &t, &i, &live, now).status;
        let table = [
            ("GET", "/metrics", t0, 200),
            ("GET", "/healthz", t0, 200),
            ("GET", "/healthz", t0 + ms(8000), 503),
            ("GET", "/", t0, 200),
            ("GET", "/status.json", t0, 503),
            ("POST", "/", t0, 405),
            ("GET", "/index.html", t0, 404),
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
        assert_eq!(
            answer(get_metrics, &t, &i, &live, t0).content_type,
            EXPOSITION
        );
    }
}
