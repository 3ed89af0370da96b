//! Connecting to PostgreSQL: the [`Connector`] built at start-up (with its
//! TLS connector, `tls`), a probe that a server answers at all before the
//! driver's unbounded startup exchange, and the bounds every connection gets
//! (connect timeout, TCP keepalives, TCP user timeout).

use std::fmt;
use std::time::Duration;

use postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PgError;
use super::tls::{self, TlsError};
use crate::config::Database;

/// Bound on connecting when the URL sets none (libpq waits forever by default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalives: the first probe after this much silence, then one every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] times (the default idle time
/// is two hours, during which a call on a half-open connection would wait).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 4;

/// How long sent data may stay unacknowledged before the kernel drops the
/// connection: a peer whose packets vanish is noticed within this, even
/// mid-statement, where keepalives (idle connections only) would not.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The database settings with their TLS connector: what every connection of
/// an adapter is opened with.
#[derive(Clone)]
pub struct Connector {
    db: Database,
    tls: MakeRustlsConnect,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Builds the TLS connector for `db`'s sslmode, reading its CA file now,
    /// so that a bad one is a start-up error rather than a failure of each tick.
    pub(crate) fn new(db: Database) -> Result<Connector, TlsError> {
        let tls = tls::connector(db.ssl_mode, db.ca_file.as_ref())?;
        Ok(Connector { db, tls })
    }

    /// Opens a connection; see [`connect`].
    pub(crate) fn connect(&self) -> Result<Client, PgError> {
        connect(&self.db, &self.tls)
    }

    /// Whether the URL asks for a server that takes writes
    /// (`target_session_attrs=read-write`), which a kept connection must
    /// then go on finding: a primary fenced read-only in a failover is left.
    pub(super) fn wants_read_write(&self) -> bool {
        self.db.config.get_target_session_attrs() == postgres::config::TargetSessionAttrs::ReadWrite
    }
}

/// Opens a connection with a connect timeout, TCP keepalives and a TCP user
/// timeout. No statement timeout here: PgBouncer refuses the `options`
/// startup parameter that would carry it ("unsupported startup parameter:
/// options", SQLSTATE 08P01); each transaction sets it (`SET LOCAL`).
pub(crate) fn connect(db: &Database, tls: &MakeRustlsConnect) -> Result<Client, PgError> {
    let mut config = db.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    probe(&mut config)?;
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("rtinspect");
    }
    config
        .connect(tls.clone())
        .map_err(|e| PgError::new("connecting to PostgreSQL", e))
}

/// PostgreSQL's SSLRequest: length 8, code 80877103. Any server answers it
/// with one byte, `S` or `N`, before anything else.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Makes sure, before the driver connects, that a server answers at all.
///
/// tokio-postgres bounds only the socket connect by `connect_timeout`: the
/// startup exchange after it (SSLRequest, startup, authentication) has no
/// bound, so a server frozen with SIGSTOP (its kernel still accepts the
/// connection), or a port that accepts and never speaks, would hold a
/// connect, and the thread calling it, for ever. The probe sends an
/// SSLRequest on a socket of its own and waits at most the connect timeout
/// for the one-byte answer, then closes. (A server that answered `N` logs
/// nothing for that; one that offers TLS logs the unfinished handshake, once
/// per reconnect.) A host name is resolved here, in the calling thread, and
/// handed to the driver as `hostaddr`: the driver's own lookup starts a
/// thread, and aborts the process when it cannot.
fn probe(config: &mut postgres::Config) -> Result<(), PgError> {
    use postgres::config::Host;
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    let hosts = config.get_hosts().to_vec();
    let ports = config.get_ports().to_vec();
    let port_of = |i: usize| match ports.as_slice() {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let ask = |stream: &mut dyn ReadWrite| -> std::io::Result<()> {
        stream.write_all(&SSL_REQUEST)?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer)
    };
    let mut last_error = None;
    for (i, host) in hosts.iter().enumerate() {
        let port = port_of(i);
        let tried = match host {
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                crate::unix_socket::connect_within(&path, Some(timeout))
                    .and_then(|mut s| {
                        s.set_read_timeout(Some(timeout))?;
                        s.set_write_timeout(Some(timeout))?;
                        ask(&mut s)
                    })
                    .map(|()| None)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Host::Tcp(name) => {
                use std::net::ToSocketAddrs;
                let known = config.get_hostaddrs().get(i).copied();
                let addrs: Vec<std::net::SocketAddr> = match known {
                    Some(ip) => vec![(ip, port).into()],
                    None => (name.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| format!("{name}: {e}"))
                        .map(Iterator::collect)
                        .unwrap_or_else(|e| {
                            last_error = Some(e);
                            Vec::new()
                        }),
                };
                let mut answered = Err(format!("{name}:{port}: no address"));
                for addr in addrs {
                    let resolved = known.is_none().then_some(addr.ip());
                    let result =
                        std::net::TcpStream::connect_timeout(&addr, timeout).and_then(|mut s| {
                            s.set_read_timeout(Some(timeout))?;
                            s.set_write_timeout(Some(timeout))?;
                            ask(&mut s)
                        });
                    match result {
                        Ok(()) => {
                            answered = Ok(resolved);
                            break;
                        }
                        Err(e) => answered = Err(format!("{addr}: {e}")),
                    }
                }
                answered
            }
        };
        match tried {
            Ok(ip) => {
                // One host: hand the driver the address that answered, so
                // that it looks nothing up (several: each host must keep its
                // own entry, and the driver resolves them).
                if let (Some(ip), 1) = (ip, hosts.len()) {
                    config.hostaddr(ip);
                }
                return Ok(());
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(PgError {
        step: "connecting to PostgreSQL".into(),
        detail: format!(
            "no server answered within {timeout:?} ({})",
            last_error.unwrap_or_else(|| "no host".into())
        ),
        connection_lost: true,
        sqlstate: None,
        source: None,
    })
}

/// A socket the probe can write its request to and read the answer from.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}
