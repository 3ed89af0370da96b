//! A fake chat receiver: a small HTTP(S) server that records each request
//! and answers as the test says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// What the test webhook answers to one request.
#[derive(Clone, Debug)]
pub enum HookReply {
    /// This status, these extra headers, this body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Never answer: hold the connection until the server is dropped.
    Hang,
}

impl HookReply {
    /// `200 ok`.
    pub fn ok() -> HookReply {
        HookReply::Status(200, Vec::new(), "ok".into())
    }
}

/// One request the test webhook read.
#[derive(Clone, Debug)]
pub struct HookRequest {
    /// When it was read whole.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{:?}: {e}", self.body))
    }
}

type HookHandler = dyn Fn(usize, &HookRequest) -> HookReply + Send + Sync;

struct HookState {
    requests: Mutex<Vec<HookRequest>>,
    handler: Mutex<Arc<HookHandler>>,
}

/// A webhook on 127.0.0.1, plain or TLS, answering each request with its
/// handler's reply (given the request's number, from 0), one thread per
/// connection, connections kept alive.
pub struct HookServer {
    pub addr: std::net::SocketAddr,
    tls: bool,
    state: Arc<HookState>,
    conns: Arc<Connections<TcpStream>>,
}

impl HookServer {
    /// A plain HTTP webhook.
    pub fn start(
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) -> Self {
        Self::listen(None, Arc::new(handler))
    }

    /// An HTTPS webhook with the server certificate of `ca`.
    pub fn start_tls(
        ca: &TestCa,
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) -> Self {
        Self::listen(Some(ca.server_config()), Arc::new(handler))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<HookHandler>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(HookState {
            requests: Mutex::new(Vec::new()),
            handler: Mutex::new(handler),
        });
        let s = state.clone();
        let is_tls = tls.is_some();
        let conns = Connections::accept(
            move || listener.accept().map(|(conn, _)| conn),
            move |conn, conns| match &tls {
                None => serve_hook(conn, &s, conns),
                Some(config) => {
                    let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
                        return;
                    };
                    serve_hook(rustls::StreamOwned::new(session, conn), &s, conns)
                }
            },
        );
        HookServer {
            addr,
            tls: is_tls,
            state,
            conns,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<HookRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.accepted()
    }

    pub fn set_handler(
        &self,
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) {
        *self.state.handler.lock().unwrap() = Arc::new(handler);
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.conns.stop(|| {
            let _ = TcpStream::connect(self.addr);
        });
    }
}

fn serve_hook(stream: impl Read + Write, state: &HookState, conns: &Connections<TcpStream>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = HookRequest {
            at: Instant::now(),
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let n = {
            let mut requests = state.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        let handler = state.handler.lock().unwrap().clone();
        match handler(n, &request) {
            HookReply::Hang => {
                while !conns.stopped() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            HookReply::Status(status, extra, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (name, value) in extra {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                // One write: a second small one would wait for the client's
                // delayed ACK (Nagle), 40 ms a request.
                head.push_str(&body);
                let out = reader.get_mut();
                if out.write_all(head.as_bytes()).is_err() || out.flush().is_err() {
                    return;
                }
            }
        }
    }
}

/// The path of every test webhook: its token and signature must never be
/// seen outside the request.
pub const HOOK: &str = "/hook/SECRETTOKEN?sig=SECRETSIG";

/// That the webhook's token and signature are nowhere in `stderr`.
pub fn assert_no_secret(stderr: &str) {
    assert!(
        !stderr.contains("SECRET"),
        "the URL's token leaked: {stderr}"
    );
}

/// This machine's name as a chat message names it (without `--host-id`):
/// the hostname, its characters other than letters, digits, `.` and `-`
/// as `-`, at most 64.
pub fn this_host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let label: String = name
        .trim()
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label.is_empty() {
        "localhost".into()
    } else {
        label
    }
}
