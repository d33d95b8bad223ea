//! Serde round-trips of the fixtures, defaults, and what is left out.

use serde_json::{Value, json};

use super::*;
use crate::crd::*;

/// Serialises, parses again, and checks nothing changed.
fn round_trip(restore: &KubegresRestore) -> Value {
    let value = serde_json::to_value(restore).unwrap();
    let back: KubegresRestore = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(&back, restore, "round trip changed the object");
    value
}

#[test]
fn a_fork_restore_reads_unchanged() {
    let r = restore(FORK_RESTORE);
    let spec = &r.spec;
    assert_eq!(spec.cluster_name.as_deref(), Some("mypostgres-restored"));
    assert_eq!(spec.database_name.as_deref(), Some("postgres"));
    assert_eq!(spec.custom_config.as_deref(), Some("mypostgres-restore-config"));
    let file = spec.data_source.file.as_ref().unwrap();
    assert_eq!(file.pvc_name, "mypostgres-backup-pvc");
    assert_eq!(file.mount_path, "/var/lib/backup");
    assert_eq!(file.snapshot(), Snapshot::File("mypostgres-backup-24_02_2023_13_00_01.gz"));
    assert_eq!(file.agent_path(), "/var/lib/backup/mypostgres-backup-24_02_2023_13_00_01.gz");
    let requests = spec.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "1", "an integer quantity reads as a Quantity");
    assert_eq!(requests["memory"].0, "200Mi");
    assert_eq!(spec.env[0].name, "PGCONNECT_TIMEOUT");

    let value = round_trip(&r);
    // What the fork's user wrote comes back as written.
    let fork_fields = ["clusterName", "databaseName", "customConfig", "dataSource", "resources", "env"];
    for field in fork_fields {
        assert!(value["spec"].get(field).is_some(), "{field} lost");
    }
    assert_eq!(value["spec"]["dataSource"]["cluster"], json!({"clusterName": "mypostgres"}));
    assert_eq!(
        value["spec"]["dataSource"]["file"],
        json!({
            "pvcName": "mypostgres-backup-pvc",
            "mountPath": "/var/lib/backup",
            "snapshot": "mypostgres-backup-24_02_2023_13_00_01.gz"
        })
    );
    // Optional fields it did not set stay out; defaulted knobs are explicit.
    for absent in ["target", "sha256", "activeDeadlineSeconds", "agent"] {
        assert!(value["spec"].get(absent).is_none(), "{absent} should be left out: {value}");
    }
    assert!(value.get("status").is_none());
}

#[test]
fn knobs_default_to_the_agents_defaults() {
    let r = restore(FORK_RESTORE);
    let spec = &r.spec;
    assert_eq!(spec.format, FormatChoice::Auto);
    assert_eq!(spec.compression, CompressionChoice::Auto);
    assert_eq!(spec.engine, EngineChoice::Auto);
    assert_eq!(spec.on_error, OnError::Stop);
    assert_eq!(spec.jobs, 1);
    assert_eq!(spec.backoff_limit, 3);
    assert_eq!(spec.active_deadline_seconds, None);
    let value = serde_json::to_value(spec).unwrap();
    assert_eq!(value["format"], "auto");
    assert_eq!(value["onError"], "stop");
    assert_eq!(value["backoffLimit"], 3);
}

#[test]
fn file_source_defaults_to_the_latest_backup_under_var_lib_backup() {
    let r = restore(
        "apiVersion: kubegres.reactive-tech.io/v1\nkind: KubegresRestore\nmetadata: {name: r}\n\
         spec: {clusterName: c, dataSource: {file: {pvcName: p}, cluster: {clusterName: src}}}",
    );
    let file = r.spec.data_source.file.as_ref().unwrap();
    assert_eq!(file.mount_path, FileSource::DEFAULT_MOUNT_PATH);
    assert_eq!(file.snapshot, None);
    assert_eq!(file.snapshot(), Snapshot::Latest);
    assert_eq!(file.agent_path(), "/var/lib/backup");
    assert_eq!(r.spec.source_summary().as_deref(), Some("pvc/p:latest"));
    // An unset snapshot is not written back as `latest`.
    let value = round_trip(&r);
    assert!(value["spec"]["dataSource"]["file"].get("snapshot").is_none());
}

#[test]
fn snapshot_paths_are_relative_to_the_mount() {
    let file = |mount: &str, snapshot: Option<&str>| FileSource {
        pvc_name: "p".into(),
        mount_path: mount.into(),
        snapshot: snapshot.map(Into::into),
    };
    assert_eq!(file("/backup/", Some("/a/b.gz")).agent_path(), "/backup/a/b.gz");
    assert_eq!(file("/backup", Some("latest")).agent_path(), "/backup");
    assert_eq!(file("/", None).agent_path(), "/");
    assert_eq!(file("/", Some("x.gz")).agent_path(), "/x.gz");
    assert_eq!(file("/b", Some(" latest ")).snapshot(), Snapshot::Latest);
}

#[test]
fn an_inline_cluster_spec_is_kept_as_given() {
    let r = restore(FORK_INLINE_SPEC);
    let spec = r.spec.data_source.cluster.as_ref().unwrap().cluster_spec.as_ref().unwrap();
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["someFutureKubegresField"], json!({"nested": [1, 2, 3]}));
    let value = round_trip(&r);
    assert_eq!(value["spec"]["dataSource"]["cluster"]["clusterSpec"]["database"]["size"], "8Gi");
}

#[test]
fn s3_into_a_database_reads_every_knob() {
    let r = restore(S3_INTO_DATABASE);
    let spec = &r.spec;
    let s3 = spec.data_source.s3.as_ref().unwrap();
    assert_eq!((s3.bucket.as_str(), s3.prefix.as_deref(), s3.key.as_deref()), ("backups", Some("prod/orders/"), None));
    assert!(s3.path_style);
    let credentials = s3.credentials_secret.as_ref().unwrap();
    assert_eq!(credentials.access_key_id_key, "AWS_ACCESS_KEY_ID");
    assert_eq!(credentials.secret_access_key_key, "AWS_SECRET_ACCESS_KEY");
    assert_eq!(credentials.session_token_key, None);
    assert_eq!(spec.format, FormatChoice::Custom);
    assert_eq!(spec.engine, EngineChoice::PgTools);
    assert_eq!(spec.jobs, 4);
    assert_eq!(spec.backoff_limit, 5);
    assert_eq!(spec.active_deadline_seconds, Some(3600));
    let agent = spec.agent.as_ref().unwrap();
    assert_eq!(agent.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(agent.tolerations[0].effect.as_deref(), Some("NoSchedule"));
    assert_eq!(agent.node_selector["kubernetes.io/arch"], "amd64");
    let value = round_trip(&r);
    assert_eq!(value["spec"]["engine"], "pg-tools");
    assert_eq!(value["spec"]["agent"]["imagePullPolicy"], "IfNotPresent");
    assert!(value["spec"]["agent"].get("imagePullSecrets").is_none());
    assert_eq!(spec.source_summary().as_deref(), Some("s3://backups/prod/orders/*"));
    assert_eq!(spec.target_summary().as_deref(), Some("cluster/main:orders"));
}

#[test]
fn http_into_postgres_fills_the_secret_key_defaults() {
    let r = restore(HTTP_INTO_POSTGRES);
    let spec = &r.spec;
    let http = spec.data_source.http.as_ref().unwrap();
    assert_eq!(http.headers_secret.as_ref().unwrap().key, "headers");
    assert_eq!(http.ca_secret, None);
    let Some(RestoreTarget { postgres: Some(postgres), .. }) = &spec.target else { panic!("postgres target") };
    assert_eq!(postgres.port, 5432);
    assert_eq!(postgres.ssl_mode, SslMode::Prefer);
    assert_eq!(postgres.credentials_secret.username_key, "username");
    assert_eq!(postgres.credentials_secret.password_key, "password");
    assert!(postgres.allow_non_empty);
    assert_eq!(spec.compression, CompressionChoice::Zstd);
    assert_eq!(spec.on_error, OnError::Continue);
    round_trip(&r);
    // The summaries shown by `kubectl get` carry no credentials.
    let source = spec.source_summary().unwrap();
    assert_eq!(source, "https://dumps.example/app/latest.sql.zst");
    assert_eq!(spec.target_summary().as_deref(), Some("postgres://db.example:5432/app"));
    let debug = format!("{r:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("token=abc"), "{debug}");
    assert!(debug.contains("https://dumps.example/app/latest.sql.zst"), "{debug}");
}

#[test]
fn public_urls_drop_user_info_query_and_fragment() {
    assert_eq!(public_url("https://a:b@h:8443/p/q.gz?sig=x"), "https://h:8443/p/q.gz");
    assert_eq!(public_url("http://h"), "http://h");
    assert_eq!(public_url("http://u@h/p@q"), "http://h/p@q");
    assert_eq!(public_url("https://h/p#x"), "https://h/p");
    assert_eq!(public_url(" not a url?x "), "not a url");
}

#[test]
fn agent_knob_values_are_the_agents_command_line_values() {
    // The operator passes the CRD's values to the agent as `as_arg()`: they
    // must be the same strings (the agent's command line takes these types,
    // with the `clap` feature; its own test checks the clap names).
    let cases: Vec<(Value, &str)> = FormatChoice::ALL
        .iter()
        .map(|v| (serde_json::to_value(v).unwrap(), v.as_arg()))
        .chain(CompressionChoice::ALL.iter().map(|v| (serde_json::to_value(v).unwrap(), v.as_arg())))
        .chain(EngineChoice::ALL.iter().map(|v| (serde_json::to_value(v).unwrap(), v.as_arg())))
        .chain(OnError::ALL.iter().map(|v| (serde_json::to_value(v).unwrap(), v.as_arg())))
        .collect();
    for (serialised, arg) in &cases {
        assert_eq!(serialised, arg);
    }
    let args: Vec<&str> = cases.iter().map(|(_, arg)| *arg).collect();
    assert_eq!(
        args,
        [
            "auto",
            "plain",
            "custom",
            "directory",
            "tar",
            "auto",
            "none",
            "gzip",
            "zstd",
            "lz4",
            "auto",
            "native",
            "pg-tools",
            "stop",
            "continue"
        ]
    );
}

#[test]
fn status_patches_carry_only_what_their_manager_owns() {
    // The agent's server-side-apply patch: progress only.
    let agent = KubegresRestoreStatus {
        progress: Some(crate::RestoreProgress { bytes_read: 10, percent: Some(5), ..Default::default() }),
        ..Default::default()
    };
    let value = serde_json::to_value(&agent).unwrap();
    assert_eq!(value.as_object().unwrap().keys().collect::<Vec<_>>(), ["progress"]);
    // An empty status is an empty object, not a list of nulls.
    assert_eq!(serde_json::to_value(KubegresRestoreStatus::default()).unwrap(), json!({}));

    let mut operator = KubegresRestoreStatus::default();
    operator.set_phase(Phase::Restoring);
    let value = serde_json::to_value(&operator).unwrap();
    assert_eq!(value, json!({"phase": "Restoring", "stage": "Restoring the dump", "isCompleted": false}));
    operator.set_phase(Phase::Succeeded);
    assert_eq!(operator.is_completed, Some(true));
    assert_eq!(operator.phase(), Phase::Succeeded);
    assert_eq!(KubegresRestoreStatus::default().phase(), Phase::Pending);
}

#[test]
fn a_fork_status_reads() {
    let status: KubegresRestoreStatus =
        serde_saphyr::from_str("isCompleted: true\nstage: Restore completed\n").unwrap();
    assert_eq!(status.is_completed, Some(true));
    assert_eq!(status.stage.as_deref(), Some("Restore completed"));
    assert_eq!(status.phase, None);
}
