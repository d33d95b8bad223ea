//! The agent binary restores from remote sources end to end: S3 (the real
//! s3s-fs server) and HTTP (servers started here that drop the connection
//! mid-body), and reports progress while it runs. Restored databases are
//! compared with the source object by object and row by row.

use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use harness::agent::run_agent;
use harness::compare::assert_same_database;
use harness::dumps::{DumpKind, Dumps, kubegres_file_name, sha256_file};
use harness::fixtures::{PAGILA_DB, load_pagila};
use harness::http::{Behaviour, HttpServer};
use harness::pg::PgCluster;
use harness::s3::S3Server;
use serde_json::Value;

struct Shared {
    source: PgCluster,
    target: PgCluster,
    dumps: Dumps,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let source = PgCluster::start();
        source.create_database(PAGILA_DB);
        load_pagila(&source, PAGILA_DB);
        let target = PgCluster::start();
        let dumps = Dumps::new_in(&source.scratch_dir());
        Shared { source, target, dumps }
    })
}

fn restore_args<'a>(source: &'a str, target_url: &'a str, extra: &'a [&'a str]) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = ["restore", "--source", source, "--target", target_url, "--progress", "json"]
        .into_iter()
        .map(OsStr::new)
        .collect();
    args.extend(["--progress-interval", "0.02"].map(OsStr::new));
    args.extend(extra.iter().map(OsStr::new));
    args
}

fn progress_events(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["event"] == "progress").map(|l| &l["progress"]).collect()
}

#[test]
fn s3_latest_kubegres_backup_of_pagila_restores_with_progress() {
    let s = shared();
    let s3 = S3Server::start();
    s3.create_bucket("backups");
    let dump = std::fs::read(s.dumps.dump(&s.source, PAGILA_DB, DumpKind::PlainGzip, "s3")).unwrap();
    // Three backups whose names do not sort by time: the newest is 02_01_2027.
    let old_but_lexically_last =
        kubegres_file_name("pagila", SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_675_200)); // 31_12_2026
    let newest = kubegres_file_name("pagila", SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_848_000)); // 02_01_2027
    assert!(old_but_lexically_last > newest, "the fixture must defeat lexical order");
    s3.put("backups", &format!("pagila/{old_but_lexically_last}"), b"not a dump: must not be picked");
    s3.put("backups", &format!("pagila/{newest}"), &dump);

    s.target.create_database("from_s3");
    let url = s.target.url_without_password("from_s3");
    let endpoint = s3.endpoint();
    let extra = ["--pick", "latest", "--s3-endpoint", &endpoint, "--s3-path-style", "--s3-region", "us-east-1"];
    let args = restore_args("s3://backups/pagila/", &url, &extra);
    let mut env = s3.env();
    env.push(("PGPASSWORD".into(), s.target.password().into()));
    let out = run_agent(&args, &env);
    out.assert_success();
    assert_same_database(&s.source, PAGILA_DB, &s.target, "from_s3");

    let lines = out.json_lines();
    let last = out.last_event().expect("a final JSON event");
    assert_eq!(last["event"], "completed", "{}", out.describe());
    assert_eq!(last["summary"]["format"], "plain");
    assert_eq!(last["summary"]["compression"], "gzip");
    assert_eq!(last["progress"]["bytesRead"], dump.len() as u64);
    assert_eq!(last["progress"]["bytesTotal"], dump.len() as u64);
    assert_eq!(last["progress"]["percent"], 100);
    // Every row of every table (partitions counted once, through their leaves).
    let rows: u64 = s
        .source
        .query_one(
            PAGILA_DB,
            "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', \
             n.nspname, c.relname), false, true, '')))[1]::text::bigint) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        )
        .parse()
        .unwrap();
    assert!(rows > 40_000, "Pagila has tens of thousands of rows, got {rows}");
    assert_eq!(last["progress"]["rowsCopied"], rows);
    // Progress was reported along the way, with the total known.
    let events = progress_events(&lines);
    assert!(!events.is_empty(), "no progress events\n{}", out.describe());
    // The total is unknown only before the object is opened; from then on it is exact.
    let first_sized = events.iter().position(|p| !p["bytesTotal"].is_null()).expect("a sized progress event");
    assert!(events[..first_sized].iter().all(|p| p["bytesRead"] == 0));
    assert!(events[first_sized..].iter().all(|p| p["bytesTotal"] == dump.len() as u64), "{events:?}");
    let reads: Vec<u64> = events.iter().map(|p| p["bytesRead"].as_u64().unwrap()).collect();
    assert!(reads.windows(2).all(|w| w[0] <= w[1]), "bytesRead went backwards: {reads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_custom_archive_resumes_after_a_drop_and_is_checksummed() {
    let s = shared();
    let path = s.dumps.dump(&s.source, PAGILA_DB, DumpKind::Custom, "http");
    let body = std::fs::read(&path).unwrap();
    let sha = sha256_file(&path);
    let cut = body.len() as u64 / 2;
    let server =
        HttpServer::builder().file("/dumps/pagila.dump", body.clone()).with(Behaviour::DropOnceAt(cut)).start().await;
    let url = server.url("/dumps/pagila.dump?X-Signature=secret-token");

    s.target.create_database("from_http");
    let target = s.target.url_without_password("from_http");
    let extra = ["--sha256", sha.as_str()];
    let args: Vec<String> =
        restore_args(&url, &target, &extra).iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let env = vec![("PGPASSWORD".to_string(), s.target.password().to_string())];
    let out = tokio::task::spawn_blocking(move || run_agent(&args, &env)).await.unwrap();
    out.assert_success();
    assert_same_database(&s.source, PAGILA_DB, &s.target, "from_http");

    let ranges = server.ranges();
    assert_eq!(ranges.len(), 2, "one request, one resume: {ranges:?}");
    assert_eq!(ranges[1].as_deref(), Some(format!("bytes={cut}-").as_str()));
    let last = out.last_event().unwrap();
    assert_eq!(last["summary"]["format"], "custom");
    assert_eq!(last["summary"]["sha256"], sha);
    assert_eq!(last["progress"]["bytesRead"], body.len() as u64);
    // The pre-signed URL's query string never shows.
    assert!(!out.stdout.contains("secret-token") && !out.stderr.contains("secret-token"), "{}", out.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_404_and_403_fail_at_once_with_the_status() {
    for (status, word) in [(404u16, "404"), (403, "403")] {
        let server = HttpServer::builder().with(Behaviour::Status(status)).start().await;
        let url = server.url("/x.sql.gz");
        let log = tempfile::NamedTempFile::new().unwrap();
        let args: Vec<String> = vec![
            "restore".into(),
            "--source".into(),
            url,
            "--target".into(),
            "postgres://u@127.0.0.1:1/db".into(),
            "--termination-log".into(),
            log.path().display().to_string(),
        ];
        let out = tokio::task::spawn_blocking(move || run_agent(&args, &[])).await.unwrap();
        out.assert_failure(3, &[&[word]]);
        assert_eq!(server.requests().len(), 1, "a {status} is not retried");
        // What the operator reads from the container's termination message.
        let failure: Value = serde_json::from_slice(&std::fs::read(log.path()).unwrap()).unwrap();
        let want = if status == 404 { "SourceNotFound" } else { "SourceAccessDenied" };
        assert_eq!(failure["reason"], want, "{failure}");
        assert_eq!(failure["exitCode"], 3);
        assert!(failure["message"].as_str().unwrap().contains(word), "{failure}");
    }
}
