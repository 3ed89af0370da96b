//! A test certificate authority made with openssl, for the TLS tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::support::*;

/// A CA made with openssl for one test, a server certificate it signed for
/// 127.0.0.1 and localhost, and a second CA that signed nothing.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = TempDir::new("ca");
        signed_server_cert(dir.path(), "IP:127.0.0.1,DNS:localhost");
        sh_in(
            dir.path(),
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rtinspect-test-other-ca \
             -keyout other-ca.key -out other-ca.pem 2>/dev/null",
        );
        TestCa { dir }
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM of a CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("server.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Arc::new(config)
    }
}

/// Runs `cmd` with `sh -c` in `dir`; the test fails, with its stderr,
/// unless it succeeded.
pub fn sh_in(dir: &Path, cmd: &str) {
    succeeded(Command::new("sh").arg("-c").arg(cmd).current_dir(dir));
}

/// Makes with openssl, in `dir`, a CA (`ca.pem`, `ca.key`) and a server
/// certificate it signed for the subject alternative names `san`
/// (`server.crt`, `server.key`).
pub fn signed_server_cert(dir: &Path, san: &str) {
    sh_in(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rtinspect-test-ca \
         -keyout ca.key -out ca.pem 2>/dev/null",
    );
    sh_in(
        dir,
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key \
         -out server.csr 2>/dev/null",
    );
    sh_in(
        dir,
        &format!(
            "printf 'subjectAltName={san}\\n' > san.ext && \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile san.ext -out server.crt 2>/dev/null"
        ),
    );
}
