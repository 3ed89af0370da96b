//! TLS to a real PostgreSQL that accepts nothing else, with rustls and a CA
//! of the test's own: each sslmode does what libpq's does.

use crate::support::{PgCluster, bin};

fn migrate(url: &str, ca: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(["migrate", "--database-url", url]);
    if let Some(ca) = ca {
        cmd.args(["--database-ca-file", ca.to_str().unwrap()]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sslmodes_against_a_tls_only_server() {
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    let ca = cluster.serve_tls_only();

    let (ok, err) = migrate(&cluster.tcp_url("localhost", "verify-full"), Some(&ca));
    assert!(ok, "verify-full with the CA: {err}");

    let (ok, err) = migrate(&cluster.tcp_url("localhost", "verify-full"), None);
    assert!(!ok, "verify-full without the CA must fail");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let (ok, err) = migrate(&cluster.tcp_url("127.0.0.1", "verify-full"), Some(&ca));
    assert!(
        !ok,
        "verify-full with a name the certificate lacks must fail"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let (ok, err) = migrate(&cluster.tcp_url("127.0.0.1", "verify-ca"), Some(&ca));
    assert!(ok, "verify-ca checks the chain, not the name: {err}");

    let (ok, err) = migrate(&cluster.tcp_url("127.0.0.1", "require"), None);
    assert!(ok, "require encrypts without verifying: {err}");

    let (ok, err) = migrate(&cluster.tcp_url("localhost", "disable"), None);
    assert!(!ok, "the server takes TLS only");
    assert!(err.contains("pg_hba.conf"), "{err}");

    // The URL form carries sslrootcert too.
    let port = cluster
        .tcp_url("x", "x")
        .split("port=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let (ok, err) = migrate(&url, None);
    assert!(ok, "URL form with sslrootcert: {err}");
}
