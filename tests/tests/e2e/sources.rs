//! Every source into every kind of target, through the operator, checked
//! object by object and row by row.

use std::time::{Duration, SystemTime};

use harness::compare;
use harness::dumps::{Compressor, compress_file, kubegres_file_name, sha256_file};
use harness::http::HttpServer;
use harness::localcluster::world;
use harness::pg::PgCluster;
use harness::s3::S3Server;
use serde_json::{Value, json};

use super::support::*;

/// The default flow: a PVC holding several Kubegres backups, `snapshot:
/// latest`, into a new Kubegres cluster whose replicas and resources are set
/// to the desired spec afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_backup_on_a_pvc_restores_into_a_new_kubegres_cluster() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "pvc").await;
    let tracker = PodTracker::start(&client, &ns);
    world::create_pvc(&client, &ns, "backups").await;
    let backups = cluster.pvc_dir(&ns, "backups");

    // Three backups of one cluster. The newest by the name's timestamp is
    // the last one; the file times say otherwise, so picking by mtime fails.
    let source = PgCluster::start();
    // A Kubegres cluster's primary has what Kubegres's init script made.
    source.psql(
        "postgres",
        "CREATE ROLE replication WITH REPLICATION PASSWORD 'replication-pw' LOGIN; \
         GRANT EXECUTE ON FUNCTION pg_promote TO replication;",
    );
    let day = Duration::from_secs(86_400);
    let empty = backups.join(kubegres_file_name("mypostgres", SystemTime::now() - 2 * day));
    kubegres_backup_to(&source, &empty);
    harness::fixtures::load_pagila(&source, "pagila");
    let middle = backups.join(kubegres_file_name("mypostgres", SystemTime::now() - day));
    kubegres_backup_to(&source, &middle);
    harness::fixtures::load_hard(&source, "hard");
    let newest = backups.join(kubegres_file_name("mypostgres", SystemTime::now()));
    kubegres_backup_to(&source, &newest);
    set_mtime(&middle, "2030-01-01");
    set_mtime(&newest, "2020-01-01");

    // The new cluster's Secret; the operator keeps its passwords whatever the
    // dump says (tests/tests/e2e/safety.rs restores with passwords unlike the source's).
    world::create_secret(
        &client,
        &ns,
        "restored-secret",
        &[("superUserPassword", source.password()), ("replicationUserPassword", "replication-pw")],
    )
    .await;
    let yaml = new_cluster_restore("from-pvc", "restored", "backups", "latest", "");
    world::create_restore(&client, &ns, &yaml).await;
    let restore = wait_succeeded(&client, &ns, "from-pvc").await;
    assert_eq!(restore.status.as_ref().and_then(|s| s.attempts), Some(1));

    let restored = world::primary(&client, &ns, "restored", source.password()).await;
    // The new cluster's replication role is its own (Kubegres made it; the
    // operator keeps it): same attributes and grant, its own password.
    compare::assert_same_cluster_keeping(&source, &restored, &["replication"]);

    let kubegres = world::get_kubegres(&client, &ns, "restored").await.expect("the restored cluster");
    assert_eq!(kubegres.data["spec"]["replicas"], json!(3), "replicas set back to the desired spec");
    assert_eq!(kubegres.data["spec"]["resources"], json!({"requests": {"memory": "512Mi"}}));
    let labels = kubegres.metadata.labels.clone().unwrap_or_default();
    assert!(!labels.contains_key("kubegres.reactive-tech.io/managed-by-restore"), "{labels:?}");
    assert_only_the_database_is_left(&client, &ns, &tracker).await;
}

/// S3 (the real s3s-fs server) into a new database of an existing Kubegres
/// cluster, whose other databases are left as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_restores_into_a_new_database_of_an_existing_cluster() {
    let client = cluster().client().await;
    let ns = namespace(&client, "s3").await;
    let tracker = PodTracker::start(&client, &ns);

    let password = "shop-superuser-pw";
    world::create_kubegres(&client, &ns, "shop", 2, password, None).await;
    let shop = world::primary(&client, &ns, "shop", password).await;
    shop.psql("postgres", "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'before');");

    let source = pagila_source();
    let s3 = S3Server::start();
    s3.create_bucket("backups");
    let dump = source.scratch_dir().join("pagila.dump");
    source.pg_dump_to("pagila", &["-Fc"], &dump);
    s3.put("backups", "shop/pagila.dump", &std::fs::read(&dump).expect("the dump"));
    world::create_secret(
        &client,
        &ns,
        "s3-creds",
        &[("AWS_ACCESS_KEY_ID", s3.access_key()), ("AWS_SECRET_ACCESS_KEY", s3.secret_key())],
    )
    .await;
    let yaml = format!(
        "apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: from-s3
spec:
  dataSource:
    s3:
      bucket: backups
      key: shop/pagila.dump
      endpoint: {endpoint}
      region: us-east-1
      pathStyle: true
      credentialsSecret:
        name: s3-creds
  target:
    database:
      clusterName: shop
      database: pagila
  format: custom
",
        endpoint = s3.endpoint()
    );
    world::create_restore(&client, &ns, &yaml).await;
    wait_succeeded(&client, &ns, "from-s3").await;

    compare::assert_same_database(&source, "pagila", &shop, "pagila");
    assert_eq!(shop.query("postgres", "SELECT id, note FROM kept"), vec![vec!["1".to_string(), "before".to_string()]]);
    let kubegres = world::get_kubegres(&client, &ns, "shop").await.expect("the existing cluster");
    assert_eq!(kubegres.data["spec"]["replicas"], json!(2), "the existing cluster's spec is not touched");
    assert_only_the_database_is_left(&client, &ns, &tracker).await;
}

/// HTTP (a real axum server), zstd-compressed with a sha256, into an
/// existing empty PostgreSQL outside the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_dump_restores_into_an_existing_empty_postgres() {
    let client = cluster().client().await;
    let ns = namespace(&client, "http").await;
    let tracker = PodTracker::start(&client, &ns);

    let source = pagila_source();
    let plain = source.scratch_dir().join("pagila.sql");
    source.pg_dump_to("pagila", &["-Fp"], &plain);
    let zst = source.scratch_dir().join("pagila.sql.zst");
    compress_file(Compressor::Zstd, &plain, &zst);
    let sha256 = sha256_file(&zst);
    let server =
        HttpServer::builder().file("/dumps/pagila.sql.zst", std::fs::read(&zst).expect("the dump")).start().await;

    let target = PgCluster::start();
    target.create_database("app");
    world::create_secret(&client, &ns, "app-db-owner", &[("username", "postgres"), ("password", target.password())])
        .await;
    let yaml = format!(
        "apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: from-http
spec:
  dataSource:
    http:
      url: {url}
  target:
    postgres:
      host: 127.0.0.1
      port: {port}
      database: app
      sslMode: disable
      credentialsSecret:
        name: app-db-owner
  compression: zstd
  sha256: {sha256}
",
        url = server.url("/dumps/pagila.sql.zst"),
        port = target.port()
    );
    world::create_restore(&client, &ns, &yaml).await;
    wait_succeeded(&client, &ns, "from-http").await;
    compare::assert_same_database(&source, "pagila", &target, "app");
    assert!(!server.requests().is_empty());
    assert_only_the_database_is_left(&client, &ns, &tracker).await;
}

/// Progress is in the status while the restore runs: sampled at least twice
/// with bytes growing, with percent and ETA (the size is known).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_visible_in_status_while_a_restore_runs() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "progress").await;
    let (source, backup) = big_source();
    world::create_pvc(&client, &ns, "backups").await;
    let file_name = backup.file_name().and_then(|n| n.to_str()).expect("a file name").to_string();
    std::fs::copy(backup, cluster.pvc_dir(&ns, "backups").join(&file_name)).expect("copy the backup");
    let size = std::fs::metadata(backup).expect("the backup").len();
    world::create_secret(
        &client,
        &ns,
        "big-secret",
        &[("superUserPassword", source.password()), ("replicationUserPassword", "replication-pw")],
    )
    .await;
    world::create_restore(&client, &ns, &new_cluster_restore("big", "big", "backups", &file_name, "")).await;

    let mut samples: Vec<Value> = Vec::new();
    let restore = world::wait_restore(
        &client,
        &ns,
        "big",
        RESTORE_TIMEOUT,
        |r| {
            if world::phase(r) == "Restoring"
                && let Some(progress) = r.status.as_ref().and_then(|s| s.progress.as_ref())
            {
                samples.push(serde_json::to_value(progress).expect("progress as JSON"));
            }
        },
        world::finished,
    )
    .await;
    assert_eq!(world::phase(&restore), "Succeeded", "{}", status_of(&restore));
    // The first report comes before the source is opened (bytes 0, no total).
    samples.retain(|s| s["bytesRead"].as_u64().is_some_and(|b| b > 0));
    let bytes: Vec<u64> = samples.iter().filter_map(|s| s["bytesRead"].as_u64()).collect();
    assert!(bytes.len() >= 2, "fewer than two progress samples while Restoring: {samples:#?}");
    assert!(bytes.windows(2).any(|w| w[1] > w[0]), "bytesRead did not grow: {bytes:?}");
    assert!(bytes.windows(2).all(|w| w[1] >= w[0]), "bytesRead went back: {bytes:?}");
    assert!(samples.iter().all(|s| s["bytesTotal"].as_u64() == Some(size)), "bytesTotal is not {size}: {samples:#?}");
    assert!(samples.iter().all(|s| s["percent"].as_u64().is_some_and(|p| p <= 100)), "{samples:#?}");
    assert!(samples.iter().any(|s| s["eta"].as_str().is_some_and(|e| !e.is_empty())), "no ETA: {samples:#?}");
    assert!(samples.iter().any(|s| s["rowsCopied"].as_u64().is_some_and(|r| r > 0)), "{samples:#?}");

    let restored = world::primary(&client, &ns, "big", source.password()).await;
    compare::assert_same_database(source, "big", &restored, "big");
}

fn set_mtime(path: &std::path::Path, date: &str) {
    let status = std::process::Command::new("touch").arg("-d").arg(date).arg(path).status().expect("touch");
    assert!(status.success(), "touch -d {date} failed");
}
