//! TLS to PostgreSQL with rustls (no OpenSSL), and libpq's `sslmode` values.
//!
//! tokio-postgres understands only `disable`, `prefer` and `require`, so
//! `sslmode` and `sslrootcert` are taken out of the database URL here, in
//! either form, before the rest is handed to the driver:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | yes | no |
//! | `verify-ca` | yes | chain to a trusted CA |
//! | `verify-full` | yes | chain, and the host name |
//!
//! The trusted CAs are `sslrootcert` (or `--database-ca-file`), else the
//! system bundle.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The system's CA bundle on Debian and its relatives.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// libpq's `sslmode`, as far as it concerns a client without a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
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
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told.
    pub fn driver_mode(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

/// A database URL with `sslmode` and `sslrootcert` taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    /// The URL the driver gets.
    pub rest: String,
    /// `sslmode`, when given.
    pub sslmode: Option<String>,
    /// `sslrootcert`, when given.
    pub sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query or a
/// `key=value` connection string, keeping everything else as it was.
pub fn split_tls_params(url: &str) -> SplitUrl {
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

/// Why the TLS setup failed.
#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let path: PathBuf = ca_file.map_or_else(|| PathBuf::from(SYSTEM_BUNDLE), Path::to_owned);
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
        TlsError(format!(
            "cannot read CA certificates from {}: {e}",
            path.display()
        ))
    })?;
    for cert in certs {
        let cert =
            cert.map_err(|e| TlsError(format!("bad certificate in {}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| {
            TlsError(format!(
                "unusable CA certificate in {}: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError(format!("no CA certificate in {}", path.display())));
    }
    Ok(roots)
}

/// The connector for `mode`, trusting `ca_file` (else the system bundle)
/// where the mode verifies.
pub fn connector(mode: SslMode, ca_file: Option<&Path>) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?;
    let config = match mode {
        SslMode::VerifyFull => builder
            .with_root_certificates(load_roots(ca_file)?)
            .with_no_client_auth(),
        SslMode::VerifyCa => {
            let inner = WebPkiServerVerifier::builder_with_provider(
                Arc::new(load_roots(ca_file)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `verify-ca`: the chain must lead to a trusted CA; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, the certificate taken on trust (libpq's
/// meaning of those modes); the handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            postgres::config::SslMode::Require
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = connector(SslMode::VerifyFull, Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
