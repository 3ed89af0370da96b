//! TLS to PostgreSQL with rustls (no OpenSSL), following libpq's `sslmode`:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | yes | no |
//! | `verify-ca` | yes | chain to a trusted CA |
//! | `verify-full` | yes | chain, and the host name |
//!
//! The trusted CAs are the configured CA file (`--database-ca-file`, else the
//! URL's `sslrootcert`), else the system bundle. Configuration only names the
//! file; it is read here, when the PostgreSQL adapter is built at start-up.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{CaFile, SslMode};
use crate::tls::CaError;

/// Why the TLS connector could not be built.
#[derive(Debug)]
pub(crate) enum TlsError {
    /// The trusted CA certificates: each names the CA file and the option
    /// that named it.
    Ca(CaError),
    /// rustls refused the client configuration.
    Setup(rustls::Error),
    /// The certificate verifier could not be built from the trusted CAs.
    Verifier(VerifierBuilderError),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Ca(e) => e.fmt(f),
            TlsError::Setup(e) => write!(f, "cannot set up TLS: {e}"),
            TlsError::Verifier(e) => write!(f, "cannot set up certificate verification: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Ca(e) => e.source(),
            TlsError::Setup(source) => Some(source),
            TlsError::Verifier(source) => Some(source),
        }
    }
}

impl From<CaError> for TlsError {
    fn from(e: CaError) -> Self {
        TlsError::Ca(e)
    }
}

/// The trust anchors of `ca_file`, else of the system bundle.
fn load_roots(ca_file: Option<&CaFile>) -> Result<RootCertStore, TlsError> {
    let certs = crate::tls::load_roots(
        ca_file,
        "the system bundle (no --database-ca-file or sslrootcert)",
    )?;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    Ok(roots)
}

/// The connector for `mode`, trusting `ca_file` (else the system bundle)
/// where the mode verifies; the CA file is read now.
pub(crate) fn connector(
    mode: SslMode,
    ca_file: Option<&CaFile>,
) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
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
            .map_err(TlsError::Verifier)?;
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
    use std::path::PathBuf;

    fn ca(path: &str) -> CaFile {
        CaFile {
            path: PathBuf::from(path),
            named_by: "--database-ca-file".into(),
        }
    }

    fn error(mode: SslMode, ca_file: &CaFile) -> String {
        match connector(mode, Some(ca_file)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{ca_file:?} was accepted"),
        }
    }

    #[test]
    fn a_bad_ca_file_is_named_with_its_option() {
        let dir = std::env::temp_dir().join(format!("rtinspect-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n@@@\n").unwrap();
        let dir_text = dir.display().to_string();
        let table = [
            (
                "/nonexistent/ca.pem".to_owned(),
                "--database-ca-file /nonexistent/ca.pem: cannot read CA certificates",
            ),
            (dir_text.clone(), "not a regular file"),
            ("/dev/zero".to_owned(), "not a regular file"),
            (empty.display().to_string(), "no CA certificate in it"),
            (garbage.display().to_string(), "not PEM CA certificates"),
        ];
        for (path, want) in table {
            for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
                let got = error(mode, &ca(&path));
                assert!(got.contains(want), "{path}: got {got:?}, want {want:?}");
                assert!(got.contains(&path), "{got}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn modes_that_do_not_verify_read_no_file() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            assert!(connector(mode, Some(&ca("/nonexistent/ca.pem"))).is_ok());
        }
    }
}
