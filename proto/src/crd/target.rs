//! `spec.target`: what the restore writes into. A restore always writes into
//! something new: a new Kubegres cluster (the default), a new database inside
//! an existing cluster, or an existing PostgreSQL that must be empty unless
//! `allowNonEmpty` says otherwise.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cel;

/// Where the restore writes: exactly one of `newCluster`, `database` or
/// `postgres`. When `spec.target` is absent the restore creates a new Kubegres
/// cluster named `spec.clusterName` from `spec.dataSource.cluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::TARGET))]
pub struct RestoreTarget {
    /// A new Kubegres cluster that the restore creates: the default, spelled
    /// out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cluster: Option<NewClusterTarget>,
    /// A new database inside an existing Kubegres cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseTarget>,
    /// An existing PostgreSQL server, inside or outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresTarget>,
}

/// A new Kubegres cluster. Every field falls back on the fork's fields:
/// `spec.clusterName` and `spec.dataSource.cluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::NEW_CLUSTER))]
pub struct NewClusterTarget {
    /// Name of the Kubegres cluster to create. Default: `spec.clusterName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = cel::NEW_CLUSTER_NAME))]
    pub name: Option<String>,
    /// Copy the spec of this existing Kubegres cluster (same namespace).
    /// Default: `spec.dataSource.cluster.clusterName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
    /// The new cluster's Kubegres spec, kept as given. Default:
    /// `spec.dataSource.cluster.clusterSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "cel::preserved_object")]
    pub cluster_spec: Option<Map<String, Value>>,
}

/// A new database inside an existing Kubegres cluster. The restore creates
/// the database, so the dump must be a single-database dump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTarget {
    /// Name of the existing Kubegres cluster, in the restore's namespace.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = cel::DATABASE_CLUSTER_NAME))]
    pub cluster_name: String,
    /// Name of the database to create; it must not exist yet.
    #[schemars(length(max = 256), extend("x-kubernetes-validations" = cel::DATABASE_NAME))]
    pub database: String,
}

/// An existing PostgreSQL server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresTarget {
    /// Host name or IP address.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = cel::POSTGRES_HOST))]
    pub host: String,
    /// Port. Default: 5432.
    #[serde(default = "default_port")]
    #[schemars(extend("x-kubernetes-validations" = cel::POSTGRES_PORT))]
    pub port: i32,
    /// The database to restore into (for pg_dumpall dumps, where the script
    /// starts).
    #[schemars(length(max = 256), extend("x-kubernetes-validations" = cel::POSTGRES_DATABASE))]
    pub database: String,
    /// The Secret with the user name and password to connect with.
    pub credentials_secret: PostgresCredentialsSecret,
    /// libpq's sslmode. Default: `prefer`.
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// Restore even if the database (for pg_dumpall dumps, the server)
    /// already holds data. Without it, a non-empty target fails the restore
    /// before anything is written.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_non_empty: bool,
}

fn default_port() -> i32 {
    5432
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The Secret that holds the PostgreSQL credentials, in the restore's
/// namespace. The defaults match a `kubernetes.io/basic-auth` Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresCredentialsSecret {
    /// Name of the Secret.
    pub name: String,
    /// Key of the user name in the Secret. Default: `username`.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key of the password in the Secret. Default: `password`.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_string()
}

fn default_password_key() -> String {
    "password".to_string()
}

/// libpq's sslmode values that the agent implements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// No TLS (the agent treats `allow` like `disable`).
    Allow,
    /// TLS when the server offers it, without verifying its certificate.
    #[default]
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, verifying the certificate chain.
    VerifyCa,
    /// TLS, verifying the chain and the host name.
    VerifyFull,
}

impl SslMode {
    /// The value of PGSSLMODE.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The kind of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A new Kubegres cluster (the default).
    NewCluster,
    /// A new database in an existing Kubegres cluster.
    Database,
    /// An existing PostgreSQL server.
    Postgres,
}

impl TargetKind {
    /// The field name under `spec.target`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::NewCluster => "newCluster",
            TargetKind::Database => "database",
            TargetKind::Postgres => "postgres",
        }
    }

    /// Whether the restore creates what it writes into (a cluster or a
    /// database) before it can start.
    pub fn creates_target(self) -> bool {
        matches!(self, TargetKind::NewCluster | TargetKind::Database)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the new cluster's Kubegres spec comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClusterSpecSource<'a> {
    /// Copy the spec of this existing Kubegres cluster.
    CopyFrom(&'a str),
    /// This spec, given inline.
    Inline(&'a Map<String, Value>),
}

/// The target with every default resolved: what the operator acts on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResolvedTarget<'a> {
    /// Create a Kubegres cluster and restore into it.
    NewCluster {
        /// The cluster's name.
        name: &'a str,
        /// Where its spec comes from.
        spec: ClusterSpecSource<'a>,
        /// The database the restore connects to (`spec.databaseName`,
        /// default `postgres`).
        database: &'a str,
    },
    /// Create a database in an existing cluster and restore into it.
    Database(&'a DatabaseTarget),
    /// Restore into an existing PostgreSQL server.
    Postgres(&'a PostgresTarget),
}

impl ResolvedTarget<'_> {
    /// The kind of target.
    pub fn kind(&self) -> TargetKind {
        match self {
            ResolvedTarget::NewCluster { .. } => TargetKind::NewCluster,
            ResolvedTarget::Database(_) => TargetKind::Database,
            ResolvedTarget::Postgres(_) => TargetKind::Postgres,
        }
    }

    /// One line for `kubectl get` (status.target): `cluster/restored`,
    /// `cluster/main:orders`, `postgres://db.example:5432/app`. Never contains
    /// a secret.
    pub fn summary(&self) -> String {
        match self {
            ResolvedTarget::NewCluster { name, .. } => format!("cluster/{name}"),
            ResolvedTarget::Database(target) => format!("cluster/{}:{}", target.cluster_name, target.database),
            ResolvedTarget::Postgres(target) => {
                format!("postgres://{}:{}/{}", target.host, target.port, target.database)
            }
        }
    }
}
