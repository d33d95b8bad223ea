//! The agent's sources against real files, a real S3 server (s3s-fs) and
//! real HTTP servers: `restore_agent::source::resolve`, then reading to the end.

use std::path::Path;
use std::time::{Duration, SystemTime};

use harness::http::{Behaviour, HttpServer};
use harness::s3::{DropOnceProxy, REGION, S3Server};
use rand::{Rng, SeedableRng};
use restore_agent::source::{
    Pick, Resolved, RetryOptions, S3Credentials, S3Options, SourceError, SourceLocation, SourceOptions, resolve,
};
use tokio::io::AsyncReadExt;

/// Reproducible pseudo-random bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Fast retries and a short idle timeout, so failures show quickly.
fn opts() -> SourceOptions {
    SourceOptions {
        retry: RetryOptions {
            attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn s3_opts(server: &S3Server) -> SourceOptions {
    SourceOptions {
        s3: S3Options {
            endpoint: Some(server.endpoint()),
            region: Some(REGION.into()),
            path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: server.access_key().into(),
                secret_access_key: server.secret_key().into(),
                session_token: None,
            }),
        },
        ..opts()
    }
}

async fn resolve_str(src: &str, opts: &SourceOptions) -> Result<Resolved, SourceError> {
    resolve(&SourceLocation::parse(src)?, opts).await
}

/// Resolves to a stream and reads it to the end: (bytes, size, display).
async fn read_stream(src: &str, opts: &SourceOptions) -> (Vec<u8>, Option<u64>, String) {
    match resolve_str(src, opts).await {
        Ok(Resolved::Stream(mut s)) => {
            let mut out = Vec::new();
            s.reader.read_to_end(&mut out).await.unwrap_or_else(|e| panic!("reading {}: {e}", s.display));
            (out, s.size, s.display)
        }
        Ok(other) => panic!("expected a stream from {src}, got {other:?}"),
        Err(e) => panic!("resolving {src}: {e}"),
    }
}

async fn resolve_err(src: &str, opts: &SourceOptions) -> SourceError {
    match resolve_str(src, opts).await {
        Ok(r) => panic!("expected an error from {src}, got {r:?}"),
        Err(e) => e,
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn write_with_mtime(path: &Path, bytes: &[u8], modified: SystemTime) {
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
}

/// Kubegres names whose lexical order is wrong: (name, mtime), the newest by name is index 3.
const KUBEGRES_NAMES: [(&str, u64); 6] = [
    ("mydb-backup-31_12_2023_23_00_00.gz", 1_700_000_600),
    ("mydb-backup-15_06_2024_02_00_00.gz", 1_700_000_500),
    ("mydb-backup-09_01_2025_02_00_00.gz", 1_700_000_100),
    ("mydb-backup-10_01_2025_01_59_59.gz", 1_700_000_200),
    ("mydb-backup-28_02_2024_02_00_00.gz", 1_700_000_400),
    ("mydb-backup-10_01_2025_01_00_00.gz", 1_700_000_300),
];

// ---------------------------------------------------------------- files

#[tokio::test]
async fn a_local_file_streams_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = payload(300_000, 1);
    let path = dir.path().join("dump.sql.gz");
    std::fs::write(&path, &data).unwrap();
    let (out, size, display) = read_stream(path.to_str().unwrap(), &opts()).await;
    assert_eq!(out, data);
    assert_eq!(size, Some(data.len() as u64));
    assert_eq!(display, path.display().to_string());
    // The same through a file:// URL.
    let (out, _, _) = read_stream(&format!("file://{}", path.display()), &opts()).await;
    assert_eq!(out, data);
}

#[tokio::test]
async fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.gz");
    let e = resolve_err(path.to_str().unwrap(), &opts()).await;
    assert_eq!(e.reason(), "SourceNotFound");
    assert!(e.to_string().starts_with(&format!("{} not found", path.display())), "{e}");
}

#[tokio::test]
async fn a_local_directory_dump_resolves_to_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("db.dir");
    std::fs::create_dir(&dump).unwrap();
    std::fs::write(dump.join("toc.dat"), payload(1000, 2)).unwrap();
    std::fs::write(dump.join("3001.dat.gz"), payload(500, 3)).unwrap();
    match resolve_str(dump.to_str().unwrap(), &opts()).await.unwrap() {
        Resolved::Directory { path, display, size, staging } => {
            assert_eq!(path, dump);
            assert_eq!(display, dump.display().to_string());
            assert_eq!(size, Some(1500));
            assert!(staging.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pick_latest_in_a_folder_goes_by_the_kubegres_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, mtime)) in KUBEGRES_NAMES.iter().enumerate() {
        write_with_mtime(&dir.path().join(name), &payload(1000 + i, i as u64), at(*mtime));
    }
    // Newer by mtime, but not Kubegres-named, hidden, or a plain subdirectory: never picked.
    write_with_mtime(&dir.path().join("manual.sql.gz"), b"manual", at(1_800_000_000));
    write_with_mtime(&dir.path().join(".mydb-backup-01_01_2030_00_00_00.gz"), b"hidden", at(1_800_000_000));
    std::fs::create_dir(dir.path().join("mydb-backup-01_01_2031_00_00_00.gz")).unwrap();

    let latest = SourceOptions { pick: Pick::Latest, ..opts() };
    let (out, size, display) = read_stream(dir.path().to_str().unwrap(), &latest).await;
    assert_eq!(out, payload(1003, 3));
    assert_eq!(size, Some(1003));
    assert!(display.ends_with("/mydb-backup-10_01_2025_01_59_59.gz"), "{display}");

    // Without a Kubegres name, the newest modification time wins.
    let dir = tempfile::tempdir().unwrap();
    write_with_mtime(&dir.path().join("b.sql"), b"older", at(1_000));
    write_with_mtime(&dir.path().join("a.sql"), b"newer", at(2_000));
    let (out, _, _) = read_stream(dir.path().to_str().unwrap(), &latest).await;
    assert_eq!(out, b"newer");

    // An empty folder is a clear error.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join(".hidden"), b"x").unwrap();
    let e = resolve_err(empty.path().to_str().unwrap(), &latest).await;
    assert_eq!(e.reason(), "NoDumpFound");
    assert!(e.to_string().contains("holds no files"), "{e}");
}

#[tokio::test]
async fn unsupported_schemes_are_refused() {
    let e = SourceLocation::parse("ftp://user:secret@host/dump.gz").unwrap_err();
    assert_eq!(e.reason(), "InvalidSource");
    assert!(e.to_string().contains("unsupported source scheme ftp://"), "{e}");
    assert!(!format!("{e} {e:?}").contains("secret"));
}

// ---------------------------------------------------------------- S3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_streams_with_its_size() {
    let server = S3Server::start();
    let data = payload(3 * 1024 * 1024 + 17, 10);
    server.put("backups", "prod/db.sql.gz", &data);
    let (out, size, display) = read_stream("s3://backups/prod/db.sql.gz", &s3_opts(&server)).await;
    assert_eq!(size, Some(data.len() as u64));
    assert!(out == data, "the bytes read differ from the object");
    assert_eq!(display, "s3://backups/prod/db.sql.gz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_drop_mid_body_resumes_with_a_range_request() {
    let server = S3Server::start();
    let data = payload(3 * 1024 * 1024, 11);
    server.put("backups", "db.sql.gz", &data);
    let proxy = DropOnceProxy::start(server.addr(), 1_000_000).await;
    let mut o = s3_opts(&server);
    o.s3.endpoint = Some(proxy.endpoint());
    let (out, size, _) = read_stream("s3://backups/db.sql.gz", &o).await;
    assert_eq!(size, Some(data.len() as u64));
    assert!(out == data, "resumed bytes differ");
    // The resume asked for the rest from where the cut connection stopped
    // (1,000,000 bytes passed, less the response headers), with If-Match.
    let sent = proxy.client_bytes().join("").to_ascii_lowercase();
    let ranges: Vec<u64> = sent
        .lines()
        .filter_map(|l| l.strip_prefix("range: bytes="))
        .map(|r| r.trim().trim_end_matches('-').parse().unwrap())
        .collect();
    assert_eq!(ranges.len(), 1, "{sent}");
    assert!((990_000..1_000_000).contains(&ranges[0]), "{ranges:?}");
    assert!(sent.contains("if-match: "), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_pick_latest_by_prefix() {
    let server = S3Server::start();
    for (i, (name, mtime)) in KUBEGRES_NAMES.iter().enumerate() {
        server.put_with_mtime("backups", &format!("kubegres/{name}"), &payload(2000 + i, 20 + i as u64), at(*mtime));
    }
    server.put_with_mtime("backups", "kubegres/notes.txt", b"newest by mtime", at(1_800_000_000));
    server.put_with_mtime("backups", "kubegres/.mydb-backup-01_01_2030_00_00_00.gz", b"hidden", at(1_800_000_000));
    server.put("backups", "kubegres/older/mydb-backup-01_01_2031_00_00_00.gz", b"in a subfolder");
    server.put("backups", "other/mydb-backup-01_01_2032_00_00_00.gz", b"other prefix");

    let latest = SourceOptions { pick: Pick::Latest, ..s3_opts(&server) };
    for src in ["s3://backups/kubegres", "s3://backups/kubegres/"] {
        let (out, size, display) = read_stream(src, &latest).await;
        assert_eq!(display, "s3://backups/kubegres/mydb-backup-10_01_2025_01_59_59.gz");
        assert_eq!(size, Some(2003));
        assert_eq!(out, payload(2003, 23));
    }

    // Only mtimes: the newest LastModified.
    server.put_with_mtime("backups", "plain/a.sql", b"older", at(1_000));
    server.put_with_mtime("backups", "plain/b.sql", b"newer", at(2_000));
    let (out, _, _) = read_stream("s3://backups/plain/", &latest).await;
    assert_eq!(out, b"newer");

    // An empty prefix is a clear error.
    let e = resolve_err("s3://backups/nothing-here/", &latest).await;
    assert_eq!(e.reason(), "NoDumpFound");
    assert_eq!(
        e.to_string(),
        "no dump found in s3://backups/nothing-here/: the prefix holds no objects (hidden names and folders without toc.dat are ignored)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_key_bucket_and_bad_credentials_are_clear_errors() {
    let server = S3Server::start();
    server.put("backups", "db.sql.gz", b"x");
    let o = s3_opts(&server);

    let e = resolve_err("s3://backups/missing.sql.gz", &o).await;
    assert_eq!(e.reason(), "SourceNotFound");
    assert!(e.to_string().starts_with("s3://backups/missing.sql.gz not found: NoSuchKey"), "{e}");

    // (s3s-fs says NoSuchKey here where AWS says NoSuchBucket.)
    let e = resolve_err("s3://no-such-bucket/db.sql.gz", &o).await;
    assert_eq!(e.reason(), "SourceNotFound");
    assert!(e.to_string().starts_with("s3://no-such-bucket/db.sql.gz not found: NoSuch"), "{e}");

    let mut wrong = o.clone();
    wrong.s3.credentials.as_mut().unwrap().secret_access_key = "wrong-secret-value".into();
    let e = resolve_err("s3://backups/db.sql.gz", &wrong).await;
    assert_eq!(e.reason(), "SourceAccessDenied", "{e}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("wrong-secret-value") && !shown.contains(server.secret_key()), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_directory_dump_is_staged() {
    let server = S3Server::start();
    let files =
        [("toc.dat", payload(4000, 30)), ("3001.dat.gz", payload(10_000, 31)), ("3002.dat.gz", payload(20, 32))];
    for (name, bytes) in &files {
        server.put("backups", &format!("dirdump/{name}"), bytes);
    }
    for src in ["s3://backups/dirdump", "s3://backups/dirdump/"] {
        match resolve_str(src, &s3_opts(&server)).await.unwrap() {
            Resolved::Directory { path, display, size, staging } => {
                assert_eq!(display, "s3://backups/dirdump/");
                assert_eq!(size, Some(14_020));
                let staging = staging.expect("a remote directory dump is staged");
                assert_eq!(path, staging.path());
                for (name, bytes) in &files {
                    assert_eq!(&std::fs::read(path.join(name)).unwrap(), bytes, "{name}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn http_plain_download() {
    let data = payload(1_000_000, 40);
    let server = HttpServer::serving(data.clone()).await;
    let (out, size, display) = read_stream(&server.url("/dump"), &opts()).await;
    assert_eq!(out, data);
    assert_eq!(size, Some(1_000_000));
    assert_eq!(display, server.url("/dump"));
    assert_eq!(server.ranges(), vec![None]);
}

#[tokio::test]
async fn http_drop_mid_body_resumes_with_a_range_request() {
    // 100,000 bytes fit in the loopback socket buffers, so they all reach the
    // client before the server drops the connection, whatever the load.
    let data = payload(2_000_000, 41);
    let server =
        HttpServer::builder().file("/dump.gz", data.clone()).with(Behaviour::DropOnceAt(100_000)).start().await;
    let (out, size, _) = read_stream(&server.url("/dump.gz"), &opts()).await;
    assert_eq!(size, Some(2_000_000));
    assert!(out == data, "resumed bytes differ");
    let log = server.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].range.as_deref(), Some("bytes=100000-"));
    assert!(log[1].if_range.is_some(), "the resume carries If-Range with the ETag");
    assert_eq!(log[1].status, 206);
}

#[tokio::test]
async fn http_stalled_body_times_out_and_resumes() {
    let data = payload(500_000, 42);
    let server = HttpServer::builder().file("/dump", data.clone()).with(Behaviour::StallOnceAt(123_456)).start().await;
    let o = SourceOptions { idle_timeout: Duration::from_millis(400), ..opts() };
    let started = std::time::Instant::now();
    let (out, _, _) = read_stream(&server.url("/dump"), &o).await;
    assert!(out == data, "resumed bytes differ");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(server.ranges(), vec![None, Some("bytes=123456-".to_string())]);
}

#[tokio::test]
async fn http_500_then_200_is_retried() {
    let data = payload(10_000, 43);
    let server = HttpServer::builder().file("/dump", data.clone()).with(Behaviour::FailFirst(2, 500)).start().await;
    let (out, size, _) = read_stream(&server.url("/dump"), &opts()).await;
    assert_eq!(out, data);
    assert_eq!(size, Some(10_000));
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
}

#[tokio::test]
async fn http_5xx_gives_up_after_the_configured_attempts() {
    let server = HttpServer::builder().file("/dump", vec![1u8; 10]).with(Behaviour::Status(503)).start().await;
    let e = resolve_err(&server.url("/dump?token=abc"), &opts()).await;
    assert_eq!(
        e.to_string(),
        format!("HTTP 503 Service Unavailable from {} (gave up after 4 attempts)", server.url("/dump"))
    );
    assert_eq!(e.reason(), "SourceServerError");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn http_404_and_403_fail_at_once_with_the_status() {
    for (status, text, reason) in
        [(404, "404 Not Found", "SourceNotFound"), (403, "403 Forbidden", "SourceAccessDenied")]
    {
        let server = HttpServer::builder().file("/dump", vec![1u8; 10]).with(Behaviour::Status(status)).start().await;
        // Credentials and the query string (a pre-signed URL's signature) never show.
        let url = server.url("/dump?X-Amz-Signature=s1gnature").replace("http://", "http://user:pa55word@");
        let e = resolve_err(&url, &opts()).await;
        assert_eq!(e.to_string(), format!("HTTP {text} from {}", server.url("/dump")));
        assert_eq!(e.reason(), reason);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s1gnature") && !shown.contains("pa55word"), "{shown}");
        assert_eq!(server.requests().len(), 1, "no retry after {status}");
    }
}

#[tokio::test]
async fn http_headers_are_sent_and_never_shown() {
    let data = payload(5000, 44);
    let server = HttpServer::builder()
        .file("/dump", data.clone())
        .with(Behaviour::RequireHeader("authorization".into(), "Bearer t0psecret".into()))
        .start()
        .await;
    let mut o = opts();
    o.http.headers = vec![("Authorization".into(), "Bearer t0psecret".into())];
    let (out, _, _) = read_stream(&server.url("/dump"), &o).await;
    assert_eq!(out, data);

    o.http.headers = vec![("Authorization".into(), "Bearer wr0ng".into())];
    let e = resolve_err(&server.url("/dump"), &o).await;
    assert_eq!(e.to_string(), format!("HTTP 401 Unauthorized from {}", server.url("/dump")));
    assert!(!format!("{e:?} {o:?}").contains("wr0ng"));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn http_range_ignored_on_resume_fails_clearly() {
    let data = payload(300_000, 45);
    let server = HttpServer::builder()
        .file("/dump", data)
        .with(Behaviour::DropOnceAt(100_000))
        .with(Behaviour::IgnoreRange)
        .start()
        .await;
    // The server sends an ETag, so the resume carries If-Range; this server
    // ignores both and answers 200 with the whole object.
    let Resolved::Stream(mut s) = resolve_str(&server.url("/dump"), &opts()).await.unwrap() else { panic!() };
    let mut out = Vec::new();
    let e = s.reader.read_to_end(&mut out).await.unwrap_err();
    assert!(restore_agent::source::is_source_error(&e), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} changed while it was being read: the server sent the whole object again instead of the rest: it changed since the first request",
            server.url("/dump")
        )
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn http_unreachable_server_is_retried_then_fails() {
    // A port nobody listens on.
    let port = harness::net::free_port().unwrap();
    let e = resolve_err(&format!("http://127.0.0.1:{port}/dump"), &opts()).await;
    assert_eq!(e.reason(), "SourceNetworkError", "{e}");
    assert!(e.to_string().ends_with("(gave up after 4 attempts)"), "{e}");
    assert!(e.to_string().starts_with(&format!("network error reading http://127.0.0.1:{port}/dump")), "{e}");
}

#[tokio::test]
async fn http_directory_dump_is_staged_from_its_toc() {
    let toc = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../restore-agent/src/archive/testdata/directory_toc.dat"),
    )
    .expect("the archive helper's directory toc.dat fixture");
    let layout = restore_agent::archive::directory_layout(&toc).expect("a readable toc.dat");
    assert!(!layout.data_files.is_empty());
    let mut builder = HttpServer::builder().file("/dumps/db/toc.dat", toc.clone());
    let mut expected = vec![("toc.dat".to_string(), toc.clone())];
    for (i, name) in layout.data_files.iter().enumerate() {
        let bytes = payload(100 + i, 50 + i as u64);
        builder = builder.file(&format!("/dumps/db/{name}"), bytes.clone());
        expected.push((name.clone(), bytes));
    }
    for name in &layout.blob_tocs {
        // An empty large-object TOC lists no blob files.
        builder = builder.file(&format!("/dumps/db/{name}"), Vec::new());
        expected.push((name.clone(), Vec::new()));
    }
    let server = builder.start().await;
    for src in [server.url("/dumps/db/?token=t"), server.url("/dumps/db/toc.dat?token=t")] {
        match resolve_str(&src, &opts()).await.unwrap() {
            Resolved::Directory { path, display, size, staging } => {
                assert_eq!(display, server.url("/dumps/db/"));
                assert!(staging.is_some());
                let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
                assert_eq!(size, Some(total as u64));
                for (name, bytes) in &expected {
                    assert_eq!(&std::fs::read(path.join(name)).unwrap(), bytes, "{name}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    // Every request kept the query string (a token in it keeps working).
    assert!(server.requests().iter().all(|r| r.query.as_deref() == Some("token=t")));
}
