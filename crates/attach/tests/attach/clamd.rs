use std::time::Duration;

use careline_attach::testing::{TestClamd, md5_hex};
use careline_attach::{ClamdAddr, EICAR, ScanError, ScanOptions, Scanner, Verdict};
use tempfile::TempDir;

use crate::samples::{self, write};

fn clamd() -> TestClamd {
    TestClamd::start().unwrap_or_else(|e| panic!("cannot start clamd: {e}"))
}

fn infected_with(verdict: Verdict) -> String {
    match verdict {
        Verdict::Infected { signature } => signature,
        Verdict::Clean => panic!("expected an infection"),
    }
}

#[test]
fn eicar_is_the_standard_test_file() {
    assert_eq!(EICAR.len(), 68);
    assert_eq!(md5_hex(EICAR), "44d88612fea8a8f36de82e1278abb02f");
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        md5_hex(b"message digest"),
        "f96b697d7cb7938d525a2f31aaf161d0"
    );
    assert_eq!(
        md5_hex("1234567890".repeat(8).as_bytes()),
        "57edf4a22be3c955ac49da2e2107b67a"
    );
}

#[tokio::test]
async fn eicar_is_found_and_clean_files_pass() {
    let clamd = clamd();
    let scanner = Scanner::new(clamd.addr(), ScanOptions::default());
    let dir = TempDir::new().unwrap();

    scanner.ping().await.unwrap();
    let version = scanner.version().await.unwrap();
    assert!(version.starts_with("ClamAV "), "{version}");

    let eicar = write(&dir, "eicar.txt", EICAR);
    let name = infected_with(scanner.scan_file(&eicar).await.unwrap());
    assert!(name.contains("Careline-Test-EICAR"), "{name}");

    let zip = write(&dir, "eicar.zip", &samples::zip_stored("eicar.com", EICAR));
    let name = infected_with(scanner.scan_file(&zip).await.unwrap());
    assert!(name.contains("Careline-Test-EICAR"), "{name}");

    // Inside a larger file, only the body signature can match.
    let mut notes = "notas de enfermería\n".repeat(5_000).into_bytes();
    notes.extend_from_slice(EICAR);
    notes.extend_from_slice("\nfin\n".as_bytes());
    let notes = write(&dir, "notes.txt", &notes);
    let name = infected_with(scanner.scan_file(&notes).await.unwrap());
    assert!(name.contains("Careline-Test-EICAR-Body"), "{name}");

    for (file, bytes) in [
        ("clean.txt", samples::SPANISH_TEXT.as_bytes().to_vec()),
        ("clean.pdf", samples::pdf()),
        ("clean.jpg", samples::jpeg_plain()),
        ("empty", Vec::new()),
    ] {
        let path = write(&dir, file, &bytes);
        assert_eq!(
            scanner.scan_file(&path).await.unwrap(),
            Verdict::Clean,
            "{file}"
        );
    }
}

#[tokio::test]
async fn tcp_transport_works() {
    let clamd = TestClamd::start_tcp().unwrap_or_else(|e| panic!("cannot start clamd: {e}"));
    assert!(matches!(clamd.addr(), ClamdAddr::Tcp(_)));
    let scanner = Scanner::new(clamd.addr(), ScanOptions::default());
    let dir = TempDir::new().unwrap();
    scanner.ping().await.unwrap();
    assert!(scanner.version().await.unwrap().starts_with("ClamAV "));
    let eicar = write(&dir, "eicar", EICAR);
    assert!(
        infected_with(scanner.scan_file(&eicar).await.unwrap()).contains("Careline-Test-EICAR")
    );
    let clean = write(&dir, "clean.pdf", &samples::pdf());
    assert_eq!(scanner.scan_file(&clean).await.unwrap(), Verdict::Clean);
}

#[tokio::test]
async fn a_stopped_daemon_is_unavailable_and_retry_works_after_restart() {
    let mut clamd = clamd();
    let scanner = Scanner::new(clamd.addr(), ScanOptions::default());
    let dir = TempDir::new().unwrap();
    let clean = write(&dir, "clean.txt", samples::SPANISH_TEXT.as_bytes());
    assert_eq!(scanner.scan_file(&clean).await.unwrap(), Verdict::Clean);

    clamd.stop();
    let err = scanner.scan_file(&clean).await.unwrap_err();
    assert!(matches!(err, ScanError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(matches!(
        scanner.ping().await,
        Err(ScanError::Unavailable(_))
    ));

    clamd.start_again().unwrap();
    assert_eq!(scanner.scan_file(&clean).await.unwrap(), Verdict::Clean);
}

#[tokio::test]
async fn files_over_the_limit_are_refused_before_connecting() {
    // Nobody listens here: reaching the socket would give Unavailable.
    let dir = TempDir::new().unwrap();
    let addr = ClamdAddr::Unix(dir.path().join("no-clamd.sock"));
    let opts = ScanOptions {
        max_stream_len: 100,
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(addr, opts);
    let big = write(&dir, "big", &[b'a'; 101]);
    let err = scanner.scan_file(&big).await.unwrap_err();
    assert!(
        matches!(
            err,
            ScanError::TooLarge {
                size: 101,
                limit: 100
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let fits = write(&dir, "fits", &[b'a'; 100]);
    assert!(matches!(
        scanner.scan_file(&fits).await,
        Err(ScanError::Unavailable(_))
    ));
}

#[tokio::test]
async fn clamd_size_limit_error_is_reported_after_it_hangs_up() {
    let clamd = clamd();
    // Client limit above clamd's StreamMaxLength (30M) to provoke clamd.
    let opts = ScanOptions {
        max_stream_len: 64 << 20,
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(clamd.addr(), opts);
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("huge.txt");
    std::fs::write(&path, vec![b'x'; 31 << 20]).unwrap();
    match scanner.scan_file(&path).await {
        Err(ScanError::ClamdError(message)) => {
            assert!(message.contains("size limit exceeded"), "{message}")
        }
        other => panic!("expected clamd's size-limit error, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_scans_share_a_bounded_pool() {
    let clamd = clamd();
    let opts = ScanOptions {
        max_concurrent: 2,
        chunk_size: 1000,
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(clamd.addr(), opts);
    let dir = TempDir::new().unwrap();
    let clean = write(
        &dir,
        "clean.txt",
        &samples::SPANISH_TEXT.repeat(500).into_bytes(),
    );
    let eicar = write(&dir, "eicar", EICAR);
    let shared = scanner.clone();
    let (a, b, c, d, e) = tokio::join!(
        scanner.scan_file(&clean),
        scanner.scan_file(&eicar),
        scanner.scan_file(&clean),
        shared.scan_file(&clean),
        scanner.ping(),
    );
    assert_eq!(a.unwrap(), Verdict::Clean);
    assert!(matches!(b.unwrap(), Verdict::Infected { .. }));
    assert_eq!(c.unwrap(), Verdict::Clean);
    assert_eq!(d.unwrap(), Verdict::Clean);
    e.unwrap();
}

/// A fake daemon that accepts one connection and answers `reply` (or stays
/// silent when `None`) after reading the request.
async fn fake_clamd(listener: tokio::net::UnixListener, reply: Option<&[u8]>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 64];
    let _ = conn.read(&mut buf).await.unwrap();
    match reply {
        Some(reply) => conn.write_all(reply).await.unwrap(),
        None => tokio::time::sleep(Duration::from_secs(5)).await,
    }
}

#[tokio::test]
async fn garbage_replies_and_silence_are_reported() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("fake.sock");
    let opts = ScanOptions {
        io_timeout: Duration::from_millis(300),
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(ClamdAddr::Unix(path.clone()), opts);

    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (_, result) = tokio::join!(fake_clamd(listener, Some(b"HELLO\0")), scanner.ping());
    assert!(matches!(result, Err(ScanError::Protocol(_))), "{result:?}");

    std::fs::remove_file(&path).unwrap();
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (_, result) = tokio::join!(fake_clamd(listener, None), scanner.version());
    let err = result.unwrap_err();
    assert!(matches!(err, ScanError::Timeout(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn addresses_parse() {
    assert_eq!(
        "unix:/run/clamav/clamd.ctl".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Unix("/run/clamav/clamd.ctl".into())
    );
    assert_eq!(
        "/run/clamav/clamd.ctl".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Unix("/run/clamav/clamd.ctl".into())
    );
    assert_eq!(
        "tcp://clamav:3310".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Tcp("clamav:3310".into())
    );
    assert_eq!(
        "127.0.0.1:3310".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Tcp("127.0.0.1:3310".into())
    );
    assert_eq!(
        "[::1]:3310".parse::<ClamdAddr>().unwrap(),
        ClamdAddr::Tcp("[::1]:3310".into())
    );
    for bad in [
        "",
        "clamav",
        "tcp://clamav",
        "clamav:notaport",
        "clamav:0",
        "relative/clamd.sock",
        "unix:",
        "::1:3310",
    ] {
        let err = bad.parse::<ClamdAddr>().unwrap_err();
        assert!(
            err.to_string().starts_with("invalid clamd address"),
            "{bad}: {err}"
        );
    }
    let addr: ClamdAddr = "tcp://clamav:3310".parse().unwrap();
    assert_eq!(addr.to_string().parse::<ClamdAddr>().unwrap(), addr);
}
