//! The CA certificates a TLS client trusts (PostgreSQL's, the webhook's): one
//! careful, bounded read of a CA file or the system bundle, each certificate
//! checked as rustls will use it, and errors that name the file and the
//! option that named it.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};

use crate::config::CaFile;

/// The system's CA bundle on Debian and its relatives.
pub(crate) const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Bound on a CA file: Debian's whole bundle is about 220 KB, and a path to a
/// device or a huge file must not exhaust memory.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// Why the trusted CA certificates could not be loaded.
#[derive(Debug)]
pub(crate) enum CaError {
    /// The CA file cannot be read: missing, not permitted, not a regular file, too big.
    Read {
        /// The file.
        ca: CaFile,
        /// The system's words.
        source: io::Error,
    },
    /// The CA file is not PEM.
    Parse {
        /// The file.
        ca: CaFile,
        /// The PEM parser's words.
        source: pem::Error,
    },
    /// A certificate in the CA file cannot be used as a trust anchor.
    Bad {
        /// The file.
        ca: CaFile,
        /// rustls's words.
        source: rustls::Error,
    },
    /// The CA file holds no certificate.
    Empty {
        /// The file.
        ca: CaFile,
    },
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = |ca: &CaFile| format!("{} {}", ca.named_by, ca.path.display());
        match self {
            CaError::Read { ca, source } => {
                write!(f, "{}: cannot read CA certificates: {source}", named(ca))
            }
            CaError::Parse { ca, source } => {
                write!(f, "{}: not PEM CA certificates: {source}", named(ca))
            }
            CaError::Bad { ca, source } => {
                write!(f, "{}: unusable CA certificate: {source}", named(ca))
            }
            CaError::Empty { ca } => write!(f, "{}: no CA certificate in it", named(ca)),
        }
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaError::Read { source, .. } => Some(source),
            CaError::Parse { source, .. } => Some(source),
            CaError::Bad { source, .. } => Some(source),
            CaError::Empty { .. } => None,
        }
    }
}

/// The whole CA file, if it is a regular file of at most [`MAX_CA_FILE_BYTES`].
fn read_ca_file(ca: &CaFile) -> Result<Vec<u8>, CaError> {
    let read_error = |source| CaError::Read {
        ca: ca.clone(),
        source,
    };
    // Looked at before it is opened: opening a FIFO would wait for a writer.
    if !std::fs::metadata(&ca.path).map_err(read_error)?.is_file() {
        return Err(read_error(io::Error::other("not a regular file")));
    }
    let file = std::fs::File::open(&ca.path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(read_error(io::Error::other(format!(
            "larger than {MAX_CA_FILE_BYTES} bytes"
        ))));
    }
    Ok(bytes)
}

/// The trusted certificates of `ca_file`, else of the system bundle (named
/// in errors as `system_named_by`), each checked as a rustls trust anchor.
pub(crate) fn load_roots(
    ca_file: Option<&CaFile>,
    system_named_by: &str,
) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let ca = ca_file.cloned().unwrap_or_else(|| CaFile {
        path: PathBuf::from(SYSTEM_BUNDLE),
        named_by: system_named_by.into(),
    });
    let bytes = read_ca_file(&ca)?;
    let mut check = RootCertStore::empty();
    let mut roots = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|source| CaError::Parse {
            ca: ca.clone(),
            source,
        })?;
        check.add(cert.clone()).map_err(|source| CaError::Bad {
            ca: ca.clone(),
            source,
        })?;
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(CaError::Empty { ca });
    }
    Ok(roots)
}
