//! The webhook's transport: one HTTPS (or HTTP) agent, its trusted CAs, a
//! name lookup in the calling thread, and a request that comes back as the
//! raw [`Answer`] it got (its status, the headers that ask for a wait, the
//! start of its body), read to the end so that the connection is kept.
//! What an answer means is [`super::answer`]'s to say.

use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::CaFile;
use crate::tls::{CaError, load_roots};

/// Bound on one request, whole: connecting, TLS, sending, the answer.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an answer's body is read (to the end, so the connection can
/// be kept); a longer one costs the connection.
const BODY_LIMIT: u64 = 64 * 1024;

/// How long a name's addresses are reused: the resolver runs before every
/// request, a pooled connection's included.
const LOOKUP_TTL: Duration = Duration::from_secs(60);

/// Why the webhook sink could not be built: its CA certificates. A start-up
/// usage error, named after the option (or the system bundle).
pub(crate) type SetupError = CaError;

/// An answer, as it came: what [`super::answer`] reads its meaning from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// `Retry-After`, as sent.
    pub(crate) retry_after: Option<String>,
    /// Discord's `X-RateLimit-Remaining`, as sent.
    pub(crate) remaining: Option<String>,
    /// Discord's `X-RateLimit-Reset-After`, as sent.
    pub(crate) reset_after: Option<String>,
    /// The body, up to [`BODY_LIMIT`] bytes.
    pub(crate) body: Vec<u8>,
}

/// One request to send.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// `Content-Type`.
    pub(crate) content_type: &'static str,
    /// `Idempotency-Key`: the receiver de-duplicates on it.
    pub(crate) key: &'a str,
    /// The format's own headers (ntfy's), and `Authorization`.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The body.
    pub(crate) body: &'a [u8],
}

/// The agent every request of one webhook goes through.
pub(crate) struct Http {
    agent: Agent,
    lookup: Arc<Lookup>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// The transport; for `https` its CA file (else the system bundle) is
    /// read now, so a bad one stops the start.
    pub(crate) fn new(https: bool, ca_file: Option<&CaFile>) -> Result<Http, SetupError> {
        let roots = if https {
            load_roots(ca_file, "the system bundle (no --webhook-ca-file)")?
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::from(roots))
            // ring, as for PostgreSQL: no second crypto library in the binary.
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = Agent::config_builder()
            // Every status is an answer this sink classifies itself.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // Shorter than the idle timeout of the usual front ends (60 s).
            .max_idle_age(Duration::from_secs(30))
            .proxy(None)
            .user_agent(concat!("rtinspect/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        let lookup = Arc::new(Lookup::default());
        let agent = Agent::with_parts(
            config,
            DefaultConnector::new(),
            SharedLookup(lookup.clone()),
        );
        Ok(Http { agent, lookup })
    }

    /// `POST`s `request` to `target` (a secret: the URL, token included);
    /// the answer, whatever its status, or why there was none. A failed
    /// request forgets the name's addresses: the next looks it up afresh.
    pub(crate) fn post(&self, target: &str, request: Request<'_>) -> Result<Answer, ureq::Error> {
        let mut builder = self
            .agent
            .post(target)
            .header("Content-Type", request.content_type)
            // Delivery is at least once: the receiver de-duplicates on it.
            .header("Idempotency-Key", request.key);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let mut response = match builder.send(request.body) {
            Ok(r) => r,
            Err(e) => {
                self.lookup.forget();
                return Err(e);
            }
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let retry_after = header("retry-after");
        // Discord says how many requests are left and when its bucket
        // resets on every answer, a 2xx's included.
        let remaining = header("x-ratelimit-remaining");
        let reset_after = header("x-ratelimit-reset-after");
        // Read to the end, so the connection is kept; a 2xx whose body
        // breaks off was still accepted.
        let mut body = Vec::new();
        let _ = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .reader()
            .read_to_end(&mut body);
        Ok(Answer {
            status,
            retry_after,
            remaining,
            reset_after,
            body,
        })
    }
}

/// ntfy's or another's `Authorization` for a URL's userinfo: a user alone,
/// or an empty user with a password, is a token (`Bearer`), a user and a
/// password are `Basic`.
pub(crate) fn authorization(user: &str, pass: Option<&str>) -> String {
    match pass {
        None => format!("Bearer {user}"),
        Some(token) if user.is_empty() => format!("Bearer {token}"),
        Some(pass) => format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Name lookups for the agent, in the calling thread and remembered for
/// [`LOOKUP_TTL`].
///
/// ureq's default resolver starts a thread for each lookup when a timeout is
/// set, and panics if it cannot; under the unit's `TasksMax` that is a crash
/// waiting for a busy day. Here the lookup runs in the publisher's thread,
/// bounded by the C library's resolver timeouts (musl: 5 s, 2 attempts, the
/// name servers asked in parallel), and its answer is kept: the resolver is
/// asked before every request, a pooled connection's included.
#[derive(Debug, Default)]
struct Lookup {
    cached: Mutex<Option<(String, Instant, Vec<SocketAddr>)>>,
}

impl Lookup {
    fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn addresses(&self, host_port: &str) -> io::Result<Vec<SocketAddr>> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((key, at, addrs)) = cached.as_ref()
            && key == host_port
            && at.elapsed() < LOOKUP_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs: Vec<SocketAddr> = host_port.to_socket_addrs()?.collect();
        *cached = Some((host_port.to_owned(), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// The agent's handle on the shared [`Lookup`].
#[derive(Debug)]
struct SharedLookup(Arc<Lookup>);

impl Resolver for SharedLookup {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri("no host".into()))?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host_port = format!("{}:{port}", authority.host());
        let found = self.0.addresses(&host_port).map_err(|e| {
            log::debug!(err:% = e; "looking up {} failed", authority.host());
            ureq::Error::HostNotFound
        })?;
        let mut addrs = self.empty();
        for addr in config.ip_family().keep_wanted(found.into_iter()).take(16) {
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Webhook, WebhookFormat, WebhookUrl};

    /// The transport of `webhook`, as its sink builds it.
    fn transport(webhook: &Webhook) -> Result<Http, SetupError> {
        Http::new(webhook.url.is_https(), webhook.ca_file.as_ref())
    }

    #[test]
    fn a_userinfo_becomes_a_bearer_token_or_basic() {
        assert_eq!(authorization("", Some("tk_abc")), "Bearer tk_abc");
        assert_eq!(authorization("tk_abc", None), "Bearer tk_abc");
        // RFC 7617's example.
        assert_eq!(
            authorization("Aladdin", Some("open sesame")),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for (bytes, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(bytes.as_bytes()), want);
        }
    }

    fn url(u: &str) -> WebhookUrl {
        WebhookUrl::parse(u).unwrap()
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("rtinspect-webhook-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let fifo = dir.join("fifo.pem");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let table = [
            (
                dir.join("missing.pem"),
                "--webhook-ca-file",
                "cannot read CA certificates",
            ),
            (dir.clone(), "--webhook-ca-file", "not a regular file"),
            (fifo, "--webhook-ca-file", "not a regular file"),
            (empty, "--webhook-ca-file", "no CA certificate in it"),
            (garbage, "--webhook-ca-file", "not PEM CA certificates"),
        ];
        for (path, named_by, want) in table {
            let e = transport(&Webhook {
                url: url("https://example.org/SECRETTOKEN"),
                format: WebhookFormat::Envelope,
                ca_file: Some(CaFile {
                    path: path.clone(),
                    named_by: named_by.into(),
                }),
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with(&format!("{named_by} {}", path.display())),
                "{e}"
            );
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_http_webhook_reads_no_ca_file() {
        transport(&Webhook {
            url: url("http://127.0.0.1:9/x"),
            format: WebhookFormat::Slack,
            ca_file: None,
        })
        .unwrap();
    }
}
