//! The specs the CRD tests send: valid values at the edges of what the rules
//! allow, and bad specs with the field and sentence the apiserver answers
//! with.

use serde_json::{Value, json};

use crate::support::fork_with;

/// A spec with a value that is at the edge of what is allowed.
pub fn boundary_specs() -> Vec<(&'static str, Value)> {
    vec![
        ("jobs-1", fork_with(|s| s["jobs"] = json!(1))),
        ("jobs-64", fork_with(|s| s["jobs"] = json!(64))),
        ("backoff-0", fork_with(|s| s["backoffLimit"] = json!(0))),
        ("backoff-20", fork_with(|s| s["backoffLimit"] = json!(20))),
        ("port-1", postgres(1)),
        ("port-65535", postgres(65535)),
        ("sha-upper", fork_with(|s| s["sha256"] = json!("AB".repeat(32)))),
        ("snapshot-path", fork_with(|s| s["dataSource"]["file"]["snapshot"] = json!("/2025/01/db.sql.gz"))),
        ("no-snapshot", fork_with(|s| s["dataSource"]["file"] = json!({"pvcName": "backups"}))),
        (
            "http-url",
            json!({"clusterName": "c", "dataSource": {"http": {"url": "http://h/d.gz"},
                   "cluster": {"clusterName": "m"}}}),
        ),
        (
            "explicit-new-cluster",
            json!({"dataSource": {"file": {"pvcName": "p"}},
                   "target": {"newCluster": {"name": "n", "clusterSpec": {"image": "x"}}}}),
        ),
        (
            "same-name-twice",
            json!({"clusterName": "n", "dataSource": {"file": {"pvcName": "p"}},
                   "target": {"newCluster": {"name": "n", "copyFrom": "m"}}}),
        ),
        (
            "database",
            json!({"dataSource": {"file": {"pvcName": "p"}},
                   "target": {"database": {"clusterName": "m", "database": "d".repeat(63)}}}),
        ),
    ]
}

fn postgres(port: i64) -> Value {
    json!({
        "dataSource": {"s3": {"bucket": "b", "key": "k"}},
        "target": {"postgres": {"host": "h", "port": port, "database": "d", "credentialsSecret": {"name": "s"}}}
    })
}

// What the apiserver rejects, and how it says so

/// A bad spec, the field the apiserver blames, and the sentence it answers with.
pub struct Bad {
    /// The object's name.
    pub name: &'static str,
    /// The spec.
    pub spec: Value,
    /// The field the apiserver blames.
    pub field: &'static str,
    /// What it says, in part.
    pub says: &'static str,
}

fn bad(name: &'static str, spec: Value, field: &'static str, says: &'static str) -> Bad {
    Bad { name, spec, field, says }
}

pub fn bad_specs() -> Vec<Bad> {
    const ONE_SOURCE: &str = "spec.dataSource must set exactly one of file, s3 or http";
    const ONE_TARGET: &str = "spec.target must set exactly one of newCluster, database or postgres";
    const JOBS: &str = "spec.jobs must be between 1 and 64";
    const BACKOFF: &str = "spec.backoffLimit must be between 0 and 20";
    const PORT: &str = "spec.target.postgres.port must be between 1 and 65535";
    const SHA: &str = "spec.sha256 must be 64 hexadecimal characters";
    vec![
        bad(
            "no-source",
            fork_with(|s| s["dataSource"] = json!({"cluster": {"clusterName": "m"}})),
            "spec.dataSource",
            ONE_SOURCE,
        ),
        bad(
            "two-sources",
            fork_with(|s| s["dataSource"]["s3"] = json!({"bucket": "b", "key": "k"})),
            "spec.dataSource",
            ONE_SOURCE,
        ),
        bad(
            "key-and-prefix",
            json!({"clusterName": "c", "dataSource": {"s3": {"bucket": "b", "key": "k", "prefix": "p/"},
                   "cluster": {"clusterName": "m"}}}),
            "spec.dataSource.s3",
            "spec.dataSource.s3 must set exactly one of key or prefix",
        ),
        bad(
            "neither-key-nor-prefix",
            json!({"clusterName": "c", "dataSource": {"s3": {"bucket": "b"}, "cluster": {"clusterName": "m"}}}),
            "spec.dataSource.s3",
            "spec.dataSource.s3 must set exactly one of key or prefix",
        ),
        bad(
            "s3-endpoint",
            json!({"clusterName": "c", "dataSource": {"s3": {"bucket": "b", "key": "k", "endpoint": "minio:9000"},
                   "cluster": {"clusterName": "m"}}}),
            "spec.dataSource.s3.endpoint",
            "spec.dataSource.s3.endpoint must start with http:// or https://",
        ),
        bad(
            "ftp-url",
            json!({"clusterName": "c", "dataSource": {"http": {"url": "ftp://h/d.gz"}, "cluster": {"clusterName": "m"}}}),
            "spec.dataSource.http.url",
            "spec.dataSource.http.url must start with http:// or https://",
        ),
        bad(
            "empty-snapshot",
            fork_with(|s| s["dataSource"]["file"]["snapshot"] = json!("")),
            "spec.dataSource.file.snapshot",
            "spec.dataSource.file.snapshot must be 'latest' or the name of a backup file, not empty",
        ),
        bad(
            "snapshot-escapes",
            fork_with(|s| s["dataSource"]["file"]["snapshot"] = json!("../../etc/passwd")),
            "spec.dataSource.file.snapshot",
            "spec.dataSource.file.snapshot must stay inside the volume: '..' is not allowed",
        ),
        bad(
            "relative-mount",
            fork_with(|s| s["dataSource"]["file"]["mountPath"] = json!("backup")),
            "spec.dataSource.file.mountPath",
            "spec.dataSource.file.mountPath must be an absolute path without '..'",
        ),
        bad("jobs-0", fork_with(|s| s["jobs"] = json!(0)), "spec.jobs", JOBS),
        bad("jobs-65", fork_with(|s| s["jobs"] = json!(65)), "spec.jobs", JOBS),
        bad("backoff-21", fork_with(|s| s["backoffLimit"] = json!(21)), "spec.backoffLimit", BACKOFF),
        bad("backoff-negative", fork_with(|s| s["backoffLimit"] = json!(-1)), "spec.backoffLimit", BACKOFF),
        bad(
            "deadline-0",
            fork_with(|s| s["activeDeadlineSeconds"] = json!(0)),
            "spec.activeDeadlineSeconds",
            "spec.activeDeadlineSeconds must be at least 1 second",
        ),
        bad("port-0", postgres(0), "spec.target.postgres.port", PORT),
        bad("port-65536", postgres(65536), "spec.target.postgres.port", PORT),
        bad("sha-short", fork_with(|s| s["sha256"] = json!("abc123")), "spec.sha256", SHA),
        bad("sha-not-hex", fork_with(|s| s["sha256"] = json!("g".repeat(64))), "spec.sha256", SHA),
        bad(
            "two-targets",
            json!({"dataSource": {"file": {"pvcName": "p"}}, "target": {
                "database": {"clusterName": "m", "database": "d"},
                "postgres": {"host": "h", "database": "d", "credentialsSecret": {"name": "s"}}}}),
            "spec.target",
            ONE_TARGET,
        ),
        bad("empty-target", json!({"dataSource": {"file": {"pvcName": "p"}}, "target": {}}), "spec.target", ONE_TARGET),
        bad(
            "nameless-cluster",
            fork_with(|s| {
                s.as_object_mut().unwrap().remove("clusterName");
            }),
            "spec",
            "a restore into a new cluster needs its name in spec.clusterName (or spec.target.newCluster.name)",
        ),
        bad(
            "specless-cluster",
            fork_with(|s| {
                s["dataSource"].as_object_mut().unwrap().remove("cluster");
            }),
            "spec",
            "a restore into a new cluster needs its Kubegres spec: set spec.dataSource.cluster.clusterName to copy \
             an existing cluster, or spec.dataSource.cluster.clusterSpec",
        ),
        bad(
            "cluster-name-and-spec",
            fork_with(|s| s["dataSource"]["cluster"]["clusterSpec"] = json!({"image": "postgres:17"})),
            "spec.dataSource.cluster",
            "spec.dataSource.cluster must set exactly one of clusterName or clusterSpec",
        ),
        bad(
            "cluster-fields-with-database-target",
            fork_with(|s| s["target"] = json!({"database": {"clusterName": "m", "database": "d"}})),
            "spec",
            "spec.clusterName and spec.dataSource.cluster describe a new cluster and cannot be used with \
             spec.target.database or spec.target.postgres",
        ),
        bad(
            "two-names",
            fork_with(|s| s["target"] = json!({"newCluster": {"name": "other"}})),
            "spec",
            "spec.target.newCluster.name and spec.clusterName name the same cluster and must be equal when both are set",
        ),
        bad(
            "two-cluster-specs",
            fork_with(|s| s["target"] = json!({"newCluster": {"copyFrom": "other"}})),
            "spec",
            "spec.dataSource.cluster and spec.target.newCluster.copyFrom or clusterSpec both describe the new \
             cluster's spec: set only one of them",
        ),
        bad(
            "copy-and-inline",
            json!({"dataSource": {"file": {"pvcName": "p"}},
                   "target": {"newCluster": {"name": "n", "copyFrom": "m", "clusterSpec": {}}}}),
            "spec.target.newCluster",
            "spec.target.newCluster may set copyFrom or clusterSpec, not both",
        ),
        bad(
            "uppercase-cluster",
            fork_with(|s| s["clusterName"] = json!("Restored_DB")),
            "spec.clusterName",
            "spec.clusterName must be a lowercase DNS label: letters, digits and '-', starting with a letter",
        ),
        bad(
            "long-cluster",
            fork_with(|s| s["clusterName"] = json!("c".repeat(49))),
            "spec.clusterName",
            "spec.clusterName must be at most 48 characters: Kubegres names its StatefulSets <name>-<index>",
        ),
        bad(
            "long-database",
            json!({"dataSource": {"file": {"pvcName": "p"}},
                   "target": {"database": {"clusterName": "m", "database": "d".repeat(64)}}}),
            "spec.target.database.database",
            "spec.target.database.database must be a PostgreSQL database name of 1 to 63 characters",
        ),
        bad(
            "empty-host",
            json!({"dataSource": {"file": {"pvcName": "p"}},
                   "target": {"postgres": {"host": "", "database": "d", "credentialsSecret": {"name": "s"}}}}),
            "spec.target.postgres.host",
            "spec.target.postgres.host must not be empty",
        ),
        bad(
            "unknown-format",
            fork_with(|s| s["format"] = json!("xml")),
            "spec.format",
            r#"supported values: "auto", "plain", "custom", "directory", "tar""#,
        ),
        bad(
            "too-many-env",
            fork_with(|s| {
                s["env"] =
                    Value::Array((0..=proto::crd::MAX_SPEC_ITEMS).map(|i| json!({"name": format!("V{i}")})).collect())
            }),
            "spec.env",
            "must have at most 256 items",
        ),
        bad(
            "huge-env-value",
            fork_with(|s| s["env"] = json!([{"name": "V", "value": "x".repeat(16 * 1024 + 1)}])),
            "spec.env[0].value",
            "may not be more than 16384 bytes",
        ),
    ]
}
