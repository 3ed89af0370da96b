//! The database settings, as plain values: the driver's parsed connection
//! settings, libpq's `sslmode`, and where the trusted CA certificates are.
//!
//! tokio-postgres understands only `disable`, `prefer` and `require`, so
//! `sslmode` and `sslrootcert` are taken out of the database URL here, in
//! either form, before the rest is handed to the driver. Nothing is read from
//! disk here: the PostgreSQL adapter loads the CA file when it is built.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::ConfigError;
use super::raw::Given;

/// libpq's `sslmode`, as far as it concerns a client without a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified.
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling (`allow` is taken as `prefer`).
    pub(crate) fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against trusted CAs.
    pub(crate) fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// What tokio-postgres is told.
    pub(crate) fn driver_mode(self) -> ::postgres::config::SslMode {
        match self {
            SslMode::Disable => ::postgres::config::SslMode::Disable,
            SslMode::Prefer => ::postgres::config::SslMode::Prefer,
            _ => ::postgres::config::SslMode::Require,
        }
    }
}

/// A CA file and the option that named it, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaFile {
    /// The file of PEM certificates.
    pub(crate) path: PathBuf,
    /// `--database-ca-file`, `RTINSPECT_DATABASE_CA_FILE`, or `sslrootcert in --database-url`.
    pub(crate) named_by: String,
}

/// The database connection settings; the URL itself is not kept.
#[derive(Clone)]
pub(crate) struct Database {
    /// Parsed connection settings, `sslmode` set from [`Database::ssl_mode`].
    pub(crate) config: ::postgres::Config,
    /// libpq's `sslmode`, from the URL (default `prefer`).
    pub(crate) ssl_mode: SslMode,
    /// The trusted CAs for a verifying mode: `--database-ca-file`, else the
    /// URL's `sslrootcert`; `None` means the system bundle. Always `None` when
    /// the mode does not verify.
    pub(crate) ca_file: Option<CaFile>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres::Config redacts the password in its Debug output too.
        f.debug_struct("Database")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Validates the database URL and the CA file option into [`Database`]. The
/// URL is never echoed (it may hold a password); a CA file with a mode that
/// does not verify is refused rather than silently ignored.
pub(super) fn database(url: &Given, ca_option: Option<&Given>) -> Result<Database, ConfigError> {
    let source = url.source;
    let split = split_tls_params(&url.value);
    let mut config = ::postgres::Config::from_str(&split.rest)
        .map_err(|e| ConfigError::new(format!("invalid {source}: {e}")))?;
    if config.get_hosts().is_empty() {
        return Err(ConfigError::new(format!("invalid {source}: no host given")));
    }
    let ssl_mode = match split.sslmode.as_deref() {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(m).ok_or_else(|| {
            ConfigError::new(format!(
                "invalid {source}: sslmode {m:?} is not disable, prefer, require, verify-ca or verify-full"
            ))
        })?,
    };
    config.ssl_mode(ssl_mode.driver_mode());
    let ca_file = match (ca_option, split.sslrootcert) {
        (Some(given), _) => Some(CaFile {
            path: PathBuf::from(&given.value),
            named_by: given.source.to_string(),
        }),
        (None, Some(root)) if !root.is_empty() => Some(CaFile {
            path: PathBuf::from(root),
            named_by: format!("sslrootcert in {source}"),
        }),
        (None, _) => None,
    };
    if let Some(ca) = &ca_file
        && !ssl_mode.verifies()
    {
        let default = if split.sslmode.is_none() {
            " (the default)"
        } else {
            ""
        };
        return Err(ConfigError::new(format!(
            "{} {:?} has no effect with sslmode {}{default}, which does not check the \
                 server's certificate: set sslmode=verify-ca or verify-full in {source}, \
                 or remove it",
            ca.named_by,
            ca.path.display().to_string(),
            ssl_mode.as_str(),
        )));
    }
    Ok(Database {
        config,
        ssl_mode,
        ca_file,
    })
}

/// A database URL with `sslmode` and `sslrootcert` taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitUrl {
    /// The URL the driver gets.
    pub(crate) rest: String,
    /// `sslmode`, when given.
    pub(crate) sslmode: Option<String>,
    /// `sslrootcert`, when given.
    pub(crate) sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query or a
/// `key=value` connection string, keeping everything else as it was.
pub(crate) fn split_tls_params(url: &str) -> SplitUrl {
    let mut split = SplitUrl {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                match k {
                    "sslmode" => split.sslmode = Some(percent_decode(v)),
                    "sslrootcert" => split.sslrootcert = Some(percent_decode(v)),
                    _ => return true,
                }
                false
            })
            .collect();
        split.rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return split;
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_value_tokens(url) {
        match key.as_str() {
            "sslmode" => split.sslmode = Some(value),
            "sslrootcert" => split.sslrootcert = Some(value),
            _ => kept.push(raw),
        }
    }
    split.rest = kept.join(" ");
    split
}

/// The `key=value` pairs of a libpq connection string, each with its
/// unquoted value and its text as written. Values may be single-quoted with
/// backslash escapes; spaces around `=` are allowed.
fn key_value_tokens(s: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        out.push((key, value, raw));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{Case, config, err};

    #[test]
    fn url_form_loses_only_the_tls_params() {
        let s = split_tls_params(
            "postgres://u:p@db/x?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(s.rest, "postgres://u:p@db/x?connect_timeout=5");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let s = split_tls_params("postgresql://db/x?sslmode=require");
        assert_eq!(s.rest, "postgresql://db/x");
        let s = split_tls_params("postgres://db/x");
        assert_eq!((s.rest.as_str(), s.sslmode), ("postgres://db/x", None));
    }

    #[test]
    fn key_value_form_loses_only_the_tls_params() {
        let s = split_tls_params(
            "host=db sslmode = verify-ca password='a b\\'c' sslrootcert='/etc/my ca.pem' user=rt",
        );
        assert_eq!(s.rest, "host=db password='a b\\'c' user=rt");
        assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/my ca.pem"));
    }

    #[test]
    fn sslmode_table() {
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("allow"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("bogus"), None);
        assert_eq!(
            SslMode::VerifyCa.driver_mode(),
            ::postgres::config::SslMode::Require
        );
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(mode).map(SslMode::as_str), Some(mode));
        }
    }

    #[test]
    fn odd_connection_strings_split_without_panicking() {
        for s in [
            "",
            " ",
            "=",
            "'",
            "a='",
            "a='\\",
            "a='x\\'",
            "sslmode='verify-full",
            "sslmode",
            "sslmode=",
            "postgres://",
            "postgres://?",
            "postgres://h?&&=&sslmode",
            "postgres://h?sslrootcert=%",
            "postgres://h?sslrootcert=%zz%2",
            "é=ü sslmode=é",
        ] {
            let split = split_tls_params(s);
            assert!(split.rest.len() <= s.len(), "{s:?}: {split:?}");
        }
        assert_eq!(split_tls_params("sslmode").sslmode.as_deref(), Some(""));
    }

    #[test]
    fn database_url_errors_never_echo_the_password() {
        for url in [
            "postgres://user:hunter2@host:notaport/db",
            "host=x password=hunter2 bogus_option=1",
            "password=hunter2 user=x",
        ] {
            let got = err(&["--database-url", url], &[]);
            assert!(got.starts_with("invalid --database-url"), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }

    #[test]
    fn sslmode_comes_from_the_url_in_either_form() {
        let db = |url: &str| config(&["--database-url", url], &[]).database.unwrap();
        assert_eq!(
            db("postgres://u@db/x?sslmode=require").ssl_mode,
            SslMode::Require
        );
        assert_eq!(db("host=db sslmode=disable").ssl_mode, SslMode::Disable);
        assert_eq!(db("host=db").ssl_mode, SslMode::Prefer);
        let e = err(&["--database-url", "host=db sslmode=sometimes"], &[]);
        assert!(e.contains("sslmode \"sometimes\""), "{e}");
    }

    #[test]
    fn the_ca_file_is_a_path_named_by_its_option_and_not_read_here() {
        let ca = |args: &[&str], env: &[(&str, &str)]| config(args, env).database.unwrap().ca_file;
        let url = "host=db sslmode=verify-full";
        assert_eq!(
            ca(
                &[
                    "--database-url",
                    url,
                    "--database-ca-file",
                    "/nonexistent.pem"
                ],
                &[]
            ),
            Some(CaFile {
                path: PathBuf::from("/nonexistent.pem"),
                named_by: "--database-ca-file".into()
            })
        );
        assert_eq!(
            ca(
                &["--database-url", url],
                &[("RTINSPECT_DATABASE_CA_FILE", "/etc/db-ca.pem")]
            )
            .map(|c| c.named_by),
            Some("RTINSPECT_DATABASE_CA_FILE".into())
        );
        assert_eq!(
            ca(
                &[],
                &[(
                    "RTINSPECT_DATABASE_URL",
                    "postgres://db/x?sslmode=verify-ca&sslrootcert=/r.pem"
                )]
            ),
            Some(CaFile {
                path: PathBuf::from("/r.pem"),
                named_by: "sslrootcert in RTINSPECT_DATABASE_URL".into()
            })
        );
        // The flag wins over the URL's sslrootcert.
        let c = ca(
            &[
                "--database-url",
                "host=db sslmode=verify-ca sslrootcert=/r.pem",
                "--database-ca-file=/f.pem",
            ],
            &[],
        );
        assert_eq!(c.map(|c| c.path), Some(PathBuf::from("/f.pem")));
        assert_eq!(ca(&["--database-url", url], &[]), None);
    }

    #[test]
    fn a_ca_file_with_a_mode_that_does_not_verify_is_refused() {
        let table: &[Case] = &[
            (
                &["--database-url", "host=db", "--database-ca-file", "/ca.pem"],
                &[],
                "--database-ca-file \"/ca.pem\" has no effect with sslmode prefer (the default)",
            ),
            (
                &["--database-url", "host=db sslmode=require"],
                &[("RTINSPECT_DATABASE_CA_FILE", "/ca.pem")],
                "RTINSPECT_DATABASE_CA_FILE \"/ca.pem\" has no effect with sslmode require,",
            ),
            (
                &[
                    "--database-url",
                    "postgres://u:hunter2@db/x?sslmode=disable&sslrootcert=/ca.pem",
                ],
                &[],
                "sslrootcert in --database-url \"/ca.pem\" has no effect with sslmode disable,",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
            assert!(got.contains("verify-ca or verify-full"), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }
}
