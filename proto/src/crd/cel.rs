//! The CEL rules (`x-kubernetes-validations`) that the apiserver checks on
//! every write of a KubegresRestore, and small schema helpers.
//!
//! Each rule carries a message that is one readable sentence naming the field
//! by its path, because that message is what `kubectl apply` prints. The
//! types attach the rules with `#[schemars(extend("x-kubernetes-validations"
//! = ...))]`; unit tests check where each list lands in the CRD, and
//! `tests/tests/deploy/crd.rs` checks that the real apiserver enforces them.
//!
//! Strings that a rule inspects carry a generous `maxLength` so that the
//! apiserver's cost estimate stays bounded; the limit sits above what the rule
//! accepts, so a too-long value still gets the rule's sentence.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::Serialize;

/// One CEL validation rule with its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CelRule {
    /// The CEL expression; `self` is the value of the field that carries it.
    pub rule: &'static str,
    /// The sentence the apiserver answers with when the rule fails.
    pub message: &'static str,
}

const fn rule(rule: &'static str, message: &'static str) -> CelRule {
    CelRule { rule, message }
}

/// On `spec`: how the target is chosen.
pub const SPEC: &[CelRule] = &[
    rule(
        "(has(self.target) && !has(self.target.newCluster)) || has(self.clusterName) \
         || (has(self.target) && has(self.target.newCluster.name))",
        "a restore into a new cluster needs its name in spec.clusterName (or spec.target.newCluster.name)",
    ),
    rule(
        "(has(self.target) && !has(self.target.newCluster)) || has(self.dataSource.cluster) \
         || (has(self.target) && (has(self.target.newCluster.copyFrom) || has(self.target.newCluster.clusterSpec)))",
        "a restore into a new cluster needs its Kubegres spec: set spec.dataSource.cluster.clusterName to copy \
         an existing cluster, or spec.dataSource.cluster.clusterSpec",
    ),
    rule(
        "!has(self.target) || has(self.target.newCluster) || (!has(self.clusterName) && !has(self.dataSource.cluster))",
        "spec.clusterName and spec.dataSource.cluster describe a new cluster and cannot be used with \
         spec.target.database or spec.target.postgres",
    ),
    rule(
        "!has(self.target) || !has(self.target.newCluster) || !has(self.target.newCluster.name) \
         || !has(self.clusterName) || self.target.newCluster.name == self.clusterName",
        "spec.target.newCluster.name and spec.clusterName name the same cluster and must be equal when both are set",
    ),
    rule(
        "!has(self.target) || !has(self.target.newCluster) || !has(self.dataSource.cluster) \
         || (!has(self.target.newCluster.copyFrom) && !has(self.target.newCluster.clusterSpec))",
        "spec.dataSource.cluster and spec.target.newCluster.copyFrom or clusterSpec both describe the new \
         cluster's spec: set only one of them",
    ),
];

/// On `spec.clusterName`.
pub const CLUSTER_NAME: &[CelRule] = &[rule(
    "size(self) <= 63 && self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "spec.clusterName must be a lowercase DNS label: letters, digits and '-', starting with a letter, \
     at most 63 characters",
)];

/// On `spec.dataSource`.
pub const DATA_SOURCE: &[CelRule] = &[rule(
    "(has(self.file) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.http) ? 1 : 0) == 1",
    "spec.dataSource must set exactly one of file, s3 or http",
)];

/// On `spec.dataSource.cluster`.
pub const CLUSTER_SOURCE: &[CelRule] = &[rule(
    "has(self.clusterName) != has(self.clusterSpec)",
    "spec.dataSource.cluster must set exactly one of clusterName or clusterSpec",
)];

/// On `spec.dataSource.file.pvcName`.
pub const PVC_NAME: &[CelRule] =
    &[rule("self != ''", "spec.dataSource.file.pvcName must name a PersistentVolumeClaim")];

/// On `spec.dataSource.file.mountPath`.
pub const MOUNT_PATH: &[CelRule] = &[rule(
    "self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",
    "spec.dataSource.file.mountPath must be an absolute path without '..'",
)];

/// On `spec.dataSource.file.snapshot`.
pub const SNAPSHOT: &[CelRule] = &[
    rule("self.trim() != ''", "spec.dataSource.file.snapshot must be 'latest' or the name of a backup file, not empty"),
    rule(
        "!self.matches('(^|/)[.][.](/|$)')",
        "spec.dataSource.file.snapshot must stay inside the volume: '..' is not allowed",
    ),
];

/// On `spec.dataSource.s3`.
pub const S3: &[CelRule] =
    &[rule("has(self.key) != has(self.prefix)", "spec.dataSource.s3 must set exactly one of key or prefix")];

/// On `spec.dataSource.s3.bucket`.
pub const S3_BUCKET: &[CelRule] = &[rule("self != ''", "spec.dataSource.s3.bucket must not be empty")];

/// On `spec.dataSource.s3.key`.
pub const S3_KEY: &[CelRule] = &[rule("self != ''", "spec.dataSource.s3.key must not be empty")];

/// On `spec.dataSource.s3.endpoint`.
pub const S3_ENDPOINT: &[CelRule] = &[rule(
    "self.startsWith('http://') || self.startsWith('https://')",
    "spec.dataSource.s3.endpoint must start with http:// or https://",
)];

/// On `spec.dataSource.http.url`.
pub const HTTP_URL: &[CelRule] = &[rule(
    "self.startsWith('http://') || self.startsWith('https://')",
    "spec.dataSource.http.url must start with http:// or https://",
)];

/// On `spec.target`.
pub const TARGET: &[CelRule] = &[rule(
    "(has(self.newCluster) ? 1 : 0) + (has(self.database) ? 1 : 0) + (has(self.postgres) ? 1 : 0) == 1",
    "spec.target must set exactly one of newCluster, database or postgres",
)];

/// On `spec.target.newCluster`.
pub const NEW_CLUSTER: &[CelRule] = &[rule(
    "!(has(self.copyFrom) && has(self.clusterSpec))",
    "spec.target.newCluster may set copyFrom or clusterSpec, not both",
)];

/// On `spec.target.newCluster.name`.
pub const NEW_CLUSTER_NAME: &[CelRule] = &[rule(
    "size(self) <= 63 && self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "spec.target.newCluster.name must be a lowercase DNS label: letters, digits and '-', starting with a \
     letter, at most 63 characters",
)];

/// On `spec.target.database.clusterName`.
pub const DATABASE_CLUSTER_NAME: &[CelRule] =
    &[rule("self != ''", "spec.target.database.clusterName must name an existing Kubegres cluster")];

/// On `spec.target.database.database`.
pub const DATABASE_NAME: &[CelRule] = &[rule(
    "size(self) >= 1 && size(self) <= 63",
    "spec.target.database.database must be a PostgreSQL database name of 1 to 63 characters",
)];

/// On `spec.target.postgres.host`.
pub const POSTGRES_HOST: &[CelRule] = &[rule("self != ''", "spec.target.postgres.host must not be empty")];

/// On `spec.target.postgres.port`.
pub const POSTGRES_PORT: &[CelRule] =
    &[rule("self >= 1 && self <= 65535", "spec.target.postgres.port must be between 1 and 65535")];

/// On `spec.target.postgres.database`.
pub const POSTGRES_DATABASE: &[CelRule] = &[rule(
    "size(self) >= 1 && size(self) <= 63",
    "spec.target.postgres.database must be a PostgreSQL database name of 1 to 63 characters",
)];

/// On `spec.jobs`.
pub const JOBS: &[CelRule] = &[rule("self >= 1 && self <= 64", "spec.jobs must be between 1 and 64")];

/// On `spec.sha256`.
pub const SHA256: &[CelRule] =
    &[rule("self.matches('^[0-9a-fA-F]{64}$')", "spec.sha256 must be 64 hexadecimal characters")];

/// On `spec.backoffLimit`.
pub const BACKOFF_LIMIT: &[CelRule] = &[rule("self >= 0 && self <= 20", "spec.backoffLimit must be between 0 and 20")];

/// On `spec.activeDeadlineSeconds`.
pub const ACTIVE_DEADLINE: &[CelRule] = &[rule("self >= 1", "spec.activeDeadlineSeconds must be at least 1 second")];

/// Every rule list with the path of the schema node that carries it (the
/// path of properties below the CRD's `openAPIV3Schema`). Used by tests.
pub const PLACEMENT: &[(&str, &[CelRule])] = &[
    ("spec", SPEC),
    ("spec.clusterName", CLUSTER_NAME),
    ("spec.dataSource", DATA_SOURCE),
    ("spec.dataSource.cluster", CLUSTER_SOURCE),
    ("spec.dataSource.file.pvcName", PVC_NAME),
    ("spec.dataSource.file.mountPath", MOUNT_PATH),
    ("spec.dataSource.file.snapshot", SNAPSHOT),
    ("spec.dataSource.s3", S3),
    ("spec.dataSource.s3.bucket", S3_BUCKET),
    ("spec.dataSource.s3.key", S3_KEY),
    ("spec.dataSource.s3.endpoint", S3_ENDPOINT),
    ("spec.dataSource.http.url", HTTP_URL),
    ("spec.target", TARGET),
    ("spec.target.newCluster", NEW_CLUSTER),
    ("spec.target.newCluster.name", NEW_CLUSTER_NAME),
    ("spec.target.database.clusterName", DATABASE_CLUSTER_NAME),
    ("spec.target.database.database", DATABASE_NAME),
    ("spec.target.postgres.host", POSTGRES_HOST),
    ("spec.target.postgres.port", POSTGRES_PORT),
    ("spec.target.postgres.database", POSTGRES_DATABASE),
    ("spec.jobs", JOBS),
    ("spec.sha256", SHA256),
    ("spec.backoffLimit", BACKOFF_LIMIT),
    ("spec.activeDeadlineSeconds", ACTIVE_DEADLINE),
];

/// The schema of an object kept as given: a Kubegres spec, which this CRD
/// does not re-declare (Kubegres's own CRD validates it when the operator
/// creates the cluster).
pub fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Marks a list of Conditions as a map keyed by `type`, so that server-side
/// apply merges them entry by entry.
pub fn conditions_list_map(schema: &mut Schema) {
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
}
