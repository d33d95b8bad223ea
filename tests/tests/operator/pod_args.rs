//! The arguments the operator gives the restore Pod's container parse with
//! the agent's own command line (`restore_agent::cli::Cli`), to the values
//! the spec asks for: for every example of deploy/examples (a PVC's latest
//! and a named backup into new clusters, S3 into a database of an existing
//! cluster, HTTP into a PostgreSQL server) and an exact S3 key. Nothing runs
//! here: the Pod is built, not created.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use operator::decide::{connection, desired_cluster_spec, restore_pod};
use proto::KubegresRestore;
use proto::crd::{CompressionChoice, EngineChoice, FormatChoice, OnError};
use restore_agent::cli::{Cli, Command, LogFormat, ProgressMode, RestoreArgs};
use restore_agent::source::Pick;
use serde_json::{Map, Value, json};

const NAMESPACE: &str = "db";
const UID: &str = "0b7e9d2c-restore-uid";

/// The spec of the Kubegres cluster a restore copies or restores into.
fn existing_cluster() -> Map<String, Value> {
    let spec = json!({
        "replicas": 3, "image": "postgres:17", "database": {"size": "1Gi"},
        "env": [{"name": "POSTGRES_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": "mypostgres-secret", "key": "superUserPassword"}}}]
    });
    spec.as_object().cloned().unwrap_or_default()
}

/// A restore of deploy/examples, in [`NAMESPACE`] with [`UID`].
fn example(file: &str) -> KubegresRestore {
    let path = harness::deploy::deploy_dir().join("examples").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut value: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    value["metadata"]["namespace"] = json!(NAMESPACE);
    value["metadata"]["uid"] = json!(UID);
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{file} is not a KubegresRestore: {e}"))
}

/// The agent container's args of the restore's first Pod, as the operator
/// builds them (the one place this test calls the Pod builder).
fn pod_args(restore: &KubegresRestore) -> Vec<String> {
    let target = restore.spec.target().expect("the example's target resolves");
    let existing = existing_cluster();
    let desired = desired_cluster_spec(&target, Some(&existing)).expect("a desired cluster spec");
    let connection = connection(restore, &target, desired.as_ref(), Some(&existing)).expect("a target connection");
    let pod = restore_pod(restore, 1, &connection, "registry.test/restore-agent:test");
    let spec = pod.spec.expect("a Pod spec");
    spec.containers[0].args.clone().expect("container args")
}

/// The args parsed by the agent's CLI, as `restore-agent` would at start.
fn parse(args: &[String]) -> (Cli, RestoreArgs) {
    let cli = Cli::try_parse_from(std::iter::once("restore-agent".to_string()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("the agent does not accept {args:?}:\n{e}"));
    match &cli.command {
        Command::Restore(restore) => {
            let restore = restore.clone();
            (cli, restore)
        }
        other => panic!("not a restore: {other:?}"),
    }
}

/// What every restore Pod says the same way: how the agent reports.
fn assert_reporting(cli: &Cli, args: &RestoreArgs, name: &str) {
    assert_eq!(cli.log_format, LogFormat::Json);
    assert_eq!(args.progress, ProgressMode::Log);
    assert_eq!(args.termination_log.as_deref(), Some(Path::new("/dev/termination-log")));
    let reported = args.kubegres_restore.as_ref().expect("--kubegres-restore");
    assert_eq!((reported.namespace.as_str(), reported.name.as_str()), (NAMESPACE, name));
}

/// The spec's knobs arrive as the same values.
fn assert_knobs(restore: &KubegresRestore, args: &RestoreArgs) {
    let spec = &restore.spec;
    assert_eq!(args.format, spec.format);
    assert_eq!(args.compression, spec.compression);
    assert_eq!(args.engine, spec.engine);
    assert_eq!(args.on_error, spec.on_error);
    assert_eq!(i64::from(args.jobs), i64::from(spec.jobs));
    assert_eq!(args.sha256.as_deref(), spec.sha256.as_deref().map(str::trim));
}

#[test]
fn the_latest_backup_on_a_pvc_into_a_copy_of_a_cluster() {
    let restore = example("restore-latest-backup.yaml");
    let (cli, args) = parse(&pod_args(&restore));
    assert_eq!(args.source.source, "/var/lib/backup");
    assert_eq!(args.source.pick, Pick::Latest);
    assert_eq!(args.target.as_deref(), Some("postgres://postgres@mypostgres-restored.db.svc:5432/postgres"));
    assert_eq!(
        (args.format, args.compression, args.engine, args.on_error, args.jobs),
        (FormatChoice::Auto, CompressionChoice::Auto, EngineChoice::Auto, OnError::Stop, 1)
    );
    assert_knobs(&restore, &args);
    assert!(!args.create_database && !args.allow_non_empty);
    assert_reporting(&cli, &args, "mypostgres-restored");
}

#[test]
fn a_named_backup_on_a_pvc_into_a_new_cluster_given_inline() {
    let restore = example("restore-into-new-cluster-inline.yaml");
    let (cli, args) = parse(&pod_args(&restore));
    assert_eq!(args.source.source, "/var/lib/backup/mypostgres-backup-31_01_2025_02_00_00.gz");
    assert_eq!(args.source.pick, Pick::Exact);
    assert_eq!(args.target.as_deref(), Some("postgres://postgres@staging.db.svc:5432/postgres"));
    assert_knobs(&restore, &args);
    assert!(!args.create_database && !args.allow_non_empty);
    assert_reporting(&cli, &args, restore.metadata.name.as_deref().unwrap_or_default());
}

#[test]
fn the_newest_s3_object_into_a_new_database_of_an_existing_cluster() {
    let restore = example("restore-s3-into-database.yaml");
    let (cli, args) = parse(&pod_args(&restore));
    assert_eq!(args.source.source, "s3://backups/prod/orders/");
    assert_eq!(args.source.pick, Pick::Latest);
    assert_eq!(args.source.s3_endpoint.as_deref(), Some("https://minio.minio.svc:9000"));
    assert_eq!(args.source.s3_region.as_deref(), Some("us-east-1"));
    assert!(args.source.s3_path_style);
    assert_eq!(args.target.as_deref(), Some("postgres://postgres@mypostgres.db.svc:5432/orders"));
    assert_eq!((args.format, args.engine, args.jobs), (FormatChoice::Custom, EngineChoice::PgTools, 4));
    assert_knobs(&restore, &args);
    assert!(args.create_database, "a database target is created by the agent");
    assert_eq!(args.create_database_marker, UID);
    assert_reporting(&cli, &args, "orders-from-s3");
}

#[test]
fn an_exact_s3_key() {
    let mut restore = example("restore-s3-into-database.yaml");
    let s3 = restore.spec.data_source.s3.as_mut().expect("an S3 source");
    s3.key = Some("prod/orders/orders.dump".to_string());
    s3.prefix = None;
    s3.path_style = false;
    let (_, args) = parse(&pod_args(&restore));
    assert_eq!(args.source.source, "s3://backups/prod/orders/orders.dump");
    assert_eq!(args.source.pick, Pick::Exact);
    assert!(!args.source.s3_path_style);
}

#[test]
fn an_http_dump_into_a_postgresql_server() {
    let restore = example("restore-http-into-postgres.yaml");
    let (cli, args) = parse(&pod_args(&restore));
    assert_eq!(args.source.source, "https://dumps.example.com/app/app-2025-01-31.sql.zst");
    assert_eq!(args.source.pick, Pick::Exact);
    assert_eq!(args.source.http_ca_file, None::<PathBuf>);
    assert_eq!(args.target.as_deref(), Some("postgres://db.example.com:5432/app"));
    assert_eq!(args.compression, CompressionChoice::Zstd);
    assert_eq!(args.sha256.as_deref(), Some("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"));
    assert_knobs(&restore, &args);
    assert!(!args.create_database && !args.allow_non_empty);
    assert_reporting(&cli, &args, "app-from-https");
}
