//! TLS to the database: a server with a certificate from a test CA; the
//! store connects with `sslmode=verify-full` and that CA, refuses a server
//! its root does not vouch for, and `sslmode=require` encrypts without
//! verifying.

use super::*;
use careline_store_pg::testing::{Options, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA (its certificate, PEM) and a server certificate it signed for
/// 127.0.0.1 and localhost.
fn ca_and_server() -> (String, ServerTls) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (
        ca.pem(),
        ServerTls {
            cert_pem: server.pem(),
            key_pem: key.serialize_pem(),
        },
    )
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn encrypted(s: &PgStore) -> bool {
    let (ssl,): (bool,) =
        sqlx_core::query_as::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(s.pool())
            .await
            .unwrap();
    ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_verify_full_connects_with_the_right_root_and_refuses_another() {
    let (ca, server) = ca_and_server();
    let (other_ca, _) = ca_and_server();
    let pg = tokio::task::spawn_blocking(move || TestPg::start_with(Options { tls: Some(server) }))
        .await
        .unwrap()
        .expect("a private PostgreSQL server with TLS");
    let dir = tempfile::tempdir().unwrap();
    let (root, wrong_root) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
    std::fs::write(&root, ca).unwrap();
    std::fs::write(&wrong_root, other_ca).unwrap();
    let url = pg.fresh_url().unwrap();
    let master = MasterKey::generate().unwrap();

    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    let s = PgStore::connect(&verified, master.clone(), 2)
        .await
        .expect("verify-full with the server's CA connects");
    assert!(
        encrypted(&s).await,
        "verify-full connection is not encrypted"
    );
    let x = clinic(&s, "TLS Clinic", 1).await;
    chain_ok(&s, x.org.id).await;

    let wrong = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        wrong_root.display()
    );
    let err = PgStore::connect(&wrong, master.clone(), 2)
        .await
        .err()
        .expect("a server the root does not vouch for is refused")
        .to_string();
    assert!(
        err.contains("cannot connect to PostgreSQL")
            && err.contains("certificate")
            && !err.contains('\n'),
        "{err}"
    );

    let required = format!("{url}?sslmode=require");
    let r = PgStore::connect(&required, master.clone(), 2)
        .await
        .expect("sslmode=require connects without a root");
    assert!(encrypted(&r).await, "require connection is not encrypted");
}
