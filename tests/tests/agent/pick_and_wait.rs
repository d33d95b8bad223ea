//! Three things the agent does so that the operator's default flow cannot go
//! wrong: `--pick latest --backups-of CLUSTER` takes only that cluster's
//! Kubegres backups (a restored cluster's CronJob may write its own into the
//! same PVC), `--connect-wait` rides out a target that does not answer
//! yet (a new Kubegres Service routes a moment after its primary is ready),
//! and a CHECKPOINT ends a successful restore (a Kubegres replica starts
//! with pg_basebackup, which otherwise waits for a spread checkpoint).
//! Real PostgreSQL, real pg_dumpall -c | gzip, real TCP. Source and target
//! have different superuser passwords, so the restores keep the target's
//! (`--keep-role postgres`, as the operator asks for a Kubegres target).

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use harness::agent::{restore, restore_with_password};
use harness::dumps::Dumps;
use harness::net::free_port;
use harness::pg::PgCluster;

/// A backup folder holding `orders`'s backup and a newer one of
/// `orders-restored` (a cluster restored from it, backing up into the same PVC).
fn shared_backup_folder(pg: &PgCluster) -> (Dumps, PathBuf) {
    let dumps = Dumps::new_in(&pg.scratch_dir());
    pg.create_database("shop");
    pg.psql("shop", "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 300) g;");
    let orders = dumps.kubegres_backup(pg, "orders");
    pg.psql("shop", "CREATE TABLE half_restored (x int);");
    let restored = dumps.kubegres_backup(pg, "orders-restored");
    let folder = dumps.path().join("backups");
    fs::create_dir_all(&folder).expect("cannot create the backup folder");
    fs::rename(orders, folder.join("orders-backup-01_01_2025_00_00_00.gz")).expect("rename");
    fs::rename(restored, folder.join("orders-restored-backup-02_01_2025_00_00_00.gz")).expect("rename");
    (dumps, folder)
}

#[test]
fn backups_of_takes_the_named_clusters_newest_backup_and_refuses_to_guess() {
    let source = PgCluster::start();
    let (_dumps, folder) = shared_backup_folder(&source);

    // None named: refused, naming both clusters and the way out.
    let target = PgCluster::start();
    let out = restore(&folder, &target, "postgres", &["--pick", "latest", "--progress", "json"]);
    let message = out.assert_failure(3, &[&["several clusters"], &["orders, orders-restored"], &["--backups-of"]]);
    assert_eq!(
        out.failure().and_then(|f| f["reason"].as_str().map(str::to_string)).as_deref(),
        Some("AmbiguousBackups")
    );
    assert!(!message.is_empty());
    assert_eq!(target.query_one("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop'"), "0");

    // Named: the older file of that cluster, not the newer one of the other.
    let out = restore(
        &folder,
        &target,
        "postgres",
        &["--pick", "latest", "--backups-of", "orders", "--keep-role", "postgres", "--progress", "json"],
    );
    out.assert_success();
    assert_eq!(target.query_one("shop", "SELECT count(*) FROM orders"), "300");
    assert_eq!(target.query_one("shop", "SELECT count(*) FROM pg_tables WHERE tablename = 'half_restored'"), "0");
    // The file it chose is in the progress it reports (the operator pins it for retries).
    let last = out.last_event().expect("a completed event");
    let picked = last["progress"]["source"].as_str().unwrap_or_default();
    assert_eq!(picked, folder.join("orders-backup-01_01_2025_00_00_00.gz").display().to_string());

    // A cluster with no backup there: nothing restored, the ones found named.
    let empty = PgCluster::start();
    let out = restore(&folder, &empty, "postgres", &["--pick", "latest", "--backups-of", "billing"]);
    out.assert_failure(3, &[&["\"billing\""], &["orders, orders-restored"]]);
    // Without --pick latest the option makes no sense.
    let out = restore(&folder, &empty, "postgres", &["--backups-of", "orders"]);
    out.assert_failure(2, &[&["--backups-of needs --pick latest"]]);
}

/// Accepts connections on `port` only after `delay`, then forwards each to `to`.
fn late_forwarder(port: u16, to: u16, delay: Duration) {
    thread::spawn(move || {
        thread::sleep(delay);
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("cannot bind the forwarder");
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else { continue };
            let pipe = |mut a: TcpStream, mut b: TcpStream| {
                thread::spawn(move || {
                    let _ = io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                })
            };
            let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            pipe(client, server);
            pipe(s2, c2);
        }
    });
}

#[test]
fn the_agent_waits_for_a_target_that_answers_late_and_gives_up_in_time() {
    let source = PgCluster::start();
    source.create_database("shop");
    source.psql("shop", "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g;");
    let dumps = Dumps::new_in(&source.scratch_dir());
    let backup = dumps.kubegres_backup(&source, "late");

    // Nothing listens for the first 1.5 s: the restore still succeeds.
    let target = PgCluster::start();
    let port = free_port().expect("a free port");
    late_forwarder(port, target.port(), Duration::from_millis(1500));
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let out =
        restore_with_password(&backup, &url, target.password(), &["--connect-wait", "30", "--keep-role", "postgres"]);
    out.assert_success();
    assert!(out.stderr.contains("does not answer yet"), "{}", out.describe());
    assert_eq!(target.query_one("shop", "SELECT count(*) FROM t"), "100");

    // Nothing ever listens: TargetUnreachable after the wait, not before, and not much later.
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port().expect("a free port"));
    let started = Instant::now();
    let out = restore_with_password(&backup, &nowhere, "pw", &["--connect-wait", "3", "--progress", "json"]);
    let took = started.elapsed();
    out.assert_failure(4, &[&["kept trying for 3 s"]]);
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        out.failure().and_then(|f| f["reason"].as_str().map(str::to_string)).as_deref(),
        Some("TargetUnreachable")
    );

    // Wrong credentials never wait.
    let started = Instant::now();
    let out =
        restore_with_password(&backup, &target.url_without_password("postgres"), "wrong", &["--connect-wait", "30"]);
    out.assert_failure(4, &[&["authentication failed"]]);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// WAL bytes written since `lsn`, and since the redo point of the last checkpoint.
fn wal_since(pg: &PgCluster, lsn: &str) -> (i64, i64) {
    let row = pg.query(
        "postgres",
        &format!(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')::bigint, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn)::bigint FROM pg_control_checkpoint()"
        ),
    );
    let parse = |v: &str| v.parse::<i64>().expect("a WAL distance");
    (parse(&row[0][0]), parse(&row[0][1]))
}

#[test]
fn a_successful_restore_ends_with_a_checkpoint() {
    let source = PgCluster::start();
    let dumps = Dumps::new_in(&source.scratch_dir());
    source.create_database("shop");
    source.psql(
        "shop",
        "CREATE TABLE orders AS SELECT g AS id, repeat('x', 200) AS note FROM generate_series(1, 60000) g;",
    );
    let backup = dumps.kubegres_backup(&source, "orders");

    let target = PgCluster::start();
    let before = target.query_one("postgres", "SELECT pg_current_wal_lsn()");
    let out = restore(&backup, &target, "postgres", &["--keep-role", "postgres", "--progress", "json"]);
    out.assert_success();
    assert_eq!(target.query_one("shop", "SELECT count(*) FROM orders"), "60000");
    let (written, since_checkpoint) = wal_since(&target, &before);
    // The restore wrote megabytes of WAL; the last checkpoint began after
    // nearly all of it (only what the server logs on its own comes after).
    assert!(written > 8 << 20, "the restore wrote only {written} bytes of WAL: too little to tell");
    assert!(
        since_checkpoint < 256 << 10,
        "{since_checkpoint} bytes of WAL since the last checkpoint's redo point (of {written} written by the restore): \
         the restore did not end with a CHECKPOINT"
    );
    assert!(!out.stderr.contains("CHECKPOINT failed"), "{}", out.describe());
}
