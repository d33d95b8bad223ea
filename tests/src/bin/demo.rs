//! `make demo`: the whole system, end to end, on this machine.
//!
//! 1. starts the local cluster (control plane, operator, process kubelet,
//!    simulated Kubegres);
//! 2. creates the Kubegres cluster `mypostgres` and loads the Pagila sample
//!    database into its primary;
//! 3. backs it up with the Kubegres backup CronJob `backup-mypostgres`, a Job
//!    started from it as `kubectl create job --from=cronjob/...` does
//!    (Kubegres's `backup_database.sh`: `pg_dumpall -c | gzip` from the
//!    replica Service into `<name>-backup-DD_MM_YYYY_HH_MM_SS.gz` on the
//!    backup PVC), next to an older backup taken before Pagila was loaded;
//! 4. applies `deploy/examples/restore-latest-backup.yaml` and shows the
//!    restore's phase and progress while it runs;
//! 5. checks `mypostgres-restored` against `mypostgres`, object by object and
//!    row by row, and that only the database is left; prints the result; stops.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;
use std::time::Duration;

use harness::compare;
use harness::localcluster::world::{self, phase};
use harness::localcluster::{LocalCluster, Options};
use proto::KubegresRestore;

const NAMESPACE: &str = "demo";
const SOURCE: &str = "mypostgres";
const RESTORED: &str = "mypostgres-restored";
const BACKUP_PVC: &str = "mypostgres-backup-pvc";
const EXAMPLE: &str = "restore-latest-backup.yaml";

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("kubegres-restore-demo-").tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("error: cannot create a directory for the demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    say("starting the local cluster: kube-apiserver + etcd, the operator, the process kubelet, simulated Kubegres");
    let cluster = match LocalCluster::start(Options::beside_current_exe(dir.path().to_path_buf())).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: the local cluster did not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", cluster.usage());
    let outcome = tokio::spawn(run(cluster.control_plane().client(), dir.path().to_path_buf())).await;
    say("stopping the local cluster");
    cluster.stop().await;
    match outcome {
        Ok(Ok(())) => {
            say("demo finished: the backup was restored by the operator and matches its source");
            ExitCode::SUCCESS
        }
        Ok(Err(problem)) => {
            eprintln!("\nDEMO FAILED: {problem}");
            ExitCode::FAILURE
        }
        Err(panic) => {
            eprintln!("\nDEMO FAILED: {panic}");
            ExitCode::FAILURE
        }
    }
}

async fn run(client: kube::Client, dir: std::path::PathBuf) -> Result<(), String> {
    let password = random_password();
    world::create_namespace(&client, NAMESPACE).await;
    world::create_pvc(&client, NAMESPACE, BACKUP_PVC).await;
    say(&format!("creating the Kubegres cluster {SOURCE} (its primary runs PostgreSQL as a local process)"));
    world::create_kubegres(&client, NAMESPACE, SOURCE, 3, &password, Some(BACKUP_PVC)).await;
    let source = world::primary(&client, NAMESPACE, SOURCE, &password).await;
    println!("  primary {SOURCE}-1-0 is Ready at {}:5432", source.host());

    let backups = harness::localcluster::pvc_dir(&dir, NAMESPACE, BACKUP_PVC);
    say("backing it up with its Kubegres backup CronJob, before loading anything");
    let old_name = backup(&client, &password, &backups, "backup-before").await?;
    say("loading Pagila (../shared/testdata/pagila) and 4 million generated page views into mypostgres");
    harness::fixtures::load_pagila(&source, "pagila");
    // Pagila restores in about a second; a generated table gives the
    // progress in status time to show.
    source.create_database("activity");
    source.psql(
        "activity",
        "CREATE TABLE page_views (id bigint PRIMARY KEY, at timestamptz NOT NULL, path text NOT NULL, session text);
         INSERT INTO page_views SELECT i, timestamptz '2026-01-01' + i * interval '1 second', '/films/' || (i % 1000),
           md5(i::text) FROM generate_series(1, 4000000) AS i;",
    );
    say("backing it up with its Kubegres backup CronJob: pg_dumpall -c | gzip from a replica");
    let new_name = backup(&client, &password, &backups, "backup-after").await?;
    for name in [&old_name, &new_name] {
        let size = std::fs::metadata(backups.join(name)).map(|m| m.len()).unwrap_or_default();
        println!("  {BACKUP_PVC}/{name}  {size} bytes");
    }

    let example = harness::deploy::deploy_dir().join("examples").join(EXAMPLE);
    let yaml = std::fs::read_to_string(&example).map_err(|e| format!("cannot read {}: {e}", example.display()))?;
    say(&format!("applying deploy/examples/{EXAMPLE}"));
    println!("{}", yaml.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n"));
    world::create_restore(&client, NAMESPACE, &yaml).await;

    say("the restore, as `kubectl get kubegresrestore -w` would show it");
    let mut last = String::new();
    let restore = world::wait_restore(
        &client,
        NAMESPACE,
        RESTORED,
        Duration::from_secs(600),
        |r| {
            let line = describe(r);
            if line != last {
                println!("  {line}");
                last = line;
            }
        },
        world::finished,
    )
    .await;
    if phase(&restore) != "Succeeded" {
        return Err(format!(
            "the restore ended {}: {}",
            phase(&restore),
            serde_json::to_string_pretty(&restore.status).unwrap_or_default()
        ));
    }

    say("checking mypostgres-restored against mypostgres: every object, every row");
    let restored = world::primary(&client, NAMESPACE, RESTORED, &password).await;
    compare::compare_databases(&source, "pagila", &restored, "pagila")?;
    compare::compare_databases(&source, "activity", &restored, "activity")?;
    for table in compare::data_tables(&source, "pagila") {
        let rows = restored.query("pagila", &format!("SELECT count(*) FROM {table}"));
        println!("  ok  {table:<34} {:>6} rows, identical", rows[0][0]);
    }
    let views = restored.query("activity", "SELECT count(*) FROM page_views");
    println!("  ok  {:<34} {:>6} rows, identical", "activity: public.page_views", views[0][0]);
    if compare::roles_of(&source) != compare::roles_of(&restored) {
        return Err("the roles differ".to_string());
    }
    println!("  ok  roles and their attributes");

    say("what is left: only the database");
    let cluster = world::get_kubegres(&client, NAMESPACE, RESTORED).await.ok_or("the restored cluster is gone")?;
    let replicas = cluster.data.pointer("/spec/replicas").cloned().unwrap_or_default();
    let labels = cluster.metadata.labels.clone().unwrap_or_default();
    println!("  Kubegres {RESTORED}: spec.replicas {replicas} (as {SOURCE}), labels {labels:?}");
    let leftovers = world::leftovers(&client, NAMESPACE).await;
    println!("  restore Pods, ServiceAccounts, Roles, RoleBindings left: {}", leftovers.len());
    if !leftovers.is_empty() {
        return Err(format!("left behind: {leftovers:?}"));
    }
    if replicas != serde_json::json!(3) {
        return Err(format!("the restored cluster has {replicas} replicas, not 3"));
    }
    Ok(())
}

fn describe(restore: &KubegresRestore) -> String {
    let Some(status) = &restore.status else { return "Pending".to_string() };
    let mut line = format!("{:<16}", phase(restore));
    if let Some(p) = &status.progress {
        let percent = p.percent.map(|p| format!("{p:>3}%")).unwrap_or_else(|| "   ?".into());
        line.push_str(&format!(
            " {percent}  {:>9} of {:>9} bytes  {:>6} rows  {:<10} {}",
            p.bytes_read,
            p.bytes_total.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
            p.rows_copied,
            p.eta.as_deref().map(|eta| format!("ETA {eta}")).unwrap_or_default(),
            p.current_object.as_deref().unwrap_or_default(),
        ));
    } else if let Some(condition) = status.conditions.iter().find(|c| c.type_ == "Progressing") {
        line.push_str(&format!(" {}", condition.message));
    }
    line
}

/// A backup by a Job started from the Kubegres backup CronJob, once the
/// replicas (its source) have replayed everything; returns the new file's name.
async fn backup(client: &kube::Client, password: &str, backups: &std::path::Path, job: &str) -> Result<String, String> {
    let listed = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    world::wait_for_replicas(client, NAMESPACE, SOURCE, password, Duration::from_secs(600)).await;
    let before = listed(backups);
    world::start_backup_job(client, NAMESPACE, SOURCE, job).await;
    world::wait_job(client, NAMESPACE, job, Duration::from_secs(600)).await?;
    let new: Vec<String> = listed(backups).difference(&before).cloned().collect();
    match new.as_slice() {
        [name] => Ok(name.clone()),
        _ => Err(format!("the backup Job {job} wrote {new:?} into {}", backups.display())),
    }
}

fn random_password() -> String {
    use rand::Rng as _;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(24).map(char::from).collect()
}
