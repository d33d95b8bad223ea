//! The target as the agent connects to it, and the new Kubegres cluster's
//! manifest.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};
use proto::KubegresRestore;
use proto::crd::{ClusterSpecSource, ResolvedTarget, SpecError, SslMode};
use serde_json::{Map, Value, json};

use super::names::{self, MANAGED_BY_RESTORE_LABEL, RESTORE_UID_LABEL};

/// How the agent reaches the target. Credentials are references only.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetConnection {
    /// `--target`: `postgres://[user@]host:port/db`, no password.
    pub url: String,
    /// `PGUSER`, when it comes from a Secret.
    pub user: Option<EnvVarSource>,
    /// `PGPASSWORD`.
    pub password: EnvVarSource,
    /// `PGSSLMODE`, for an existing server.
    pub ssl_mode: Option<SslMode>,
    /// `--allow-non-empty`.
    pub allow_non_empty: bool,
    /// `--create-database --create-database-marker <marker>`: the agent
    /// creates the database (a `database` target); the marker (the restore's
    /// uid) lets a retry drop what an earlier attempt created, and nothing else.
    pub create_database: Option<String>,
    /// `--keep-role`: the roles of a Kubegres target whose passwords are its
    /// Secret's (the superuser, the replication role), which a dump of
    /// another cluster must neither drop nor give its own passwords.
    pub keep_roles: Vec<String>,
}

/// The roles every Kubegres cluster has, with passwords from its Secret
/// (`POSTGRES_PASSWORD`, `POSTGRES_REPLICATION_PASSWORD`).
pub const KUBEGRES_ROLES: [&str; 2] = ["postgres", "replication"];

/// Why the operator cannot build the target or the agent's connection.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TargetError {
    /// The spec is one the CRD's rules reject.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The cluster to copy the spec from does not exist (yet).
    #[error("the Kubegres cluster {0} to copy the spec from was not found")]
    CopyFromNotFound(String),
    /// The cluster spec has no `POSTGRES_PASSWORD` from a Secret.
    #[error("the Kubegres spec of cluster {0} has no env POSTGRES_PASSWORD with valueFrom.secretKeyRef")]
    NoSuperUserPassword(String),
    /// The host of a `postgres` target is not a host name or address.
    #[error("spec.target.postgres.host {0:?} is not a host name or IP address")]
    InvalidHost(String),
    /// The cluster spec has no `replicas`.
    #[error("the Kubegres spec of cluster {0} has no spec.replicas")]
    NoReplicas(String),
}

impl TargetError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            TargetError::Spec(error) => error.reason(),
            TargetError::CopyFromNotFound(_) => "CopyFromClusterNotFound",
            TargetError::NoSuperUserPassword(_) => "NoSuperUserPassword",
            TargetError::NoReplicas(_) => "InvalidClusterSpec",
            TargetError::InvalidHost(_) => "InvalidTarget",
        }
    }

    /// Whether waiting can fix it (the copied cluster may appear).
    pub fn is_transient(&self) -> bool {
        matches!(self, TargetError::CopyFromNotFound(_))
    }
}

/// The desired Kubegres spec of a new cluster (before the restore's
/// overrides): inline, or copied from the observed cluster.
pub fn desired_cluster_spec(
    target: &ResolvedTarget<'_>,
    copy_from_spec: Option<&Map<String, Value>>,
) -> Result<Option<Map<String, Value>>, TargetError> {
    match target {
        ResolvedTarget::NewCluster { spec: ClusterSpecSource::Inline(spec), .. } => Ok(Some((*spec).clone())),
        ResolvedTarget::NewCluster { spec: ClusterSpecSource::CopyFrom(from), .. } => match copy_from_spec {
            Some(spec) => Ok(Some(spec.clone())),
            None => Err(TargetError::CopyFromNotFound(from.to_string())),
        },
        ResolvedTarget::Database(_) | ResolvedTarget::Postgres(_) => Ok(None),
    }
}

/// `spec.replicas` of a Kubegres spec.
pub fn desired_replicas(cluster: &str, spec: &Map<String, Value>) -> Result<i64, TargetError> {
    spec.get("replicas").and_then(Value::as_i64).ok_or_else(|| TargetError::NoReplicas(cluster.to_string()))
}

/// The Kubegres manifest the restore creates: the desired spec with one
/// replica, the restore-time resources and custom config, no backup schedule
/// (a CronJob of the half-restored cluster would write its backups beside the
/// source's: the schedule comes with the hand-over), and the restore's labels.
pub fn kubegres_manifest(
    restore: &KubegresRestore,
    cluster: &str,
    attempt: i32,
    desired: &Map<String, Value>,
) -> Value {
    let mut spec = desired.clone();
    spec.insert("replicas".to_string(), json!(1));
    spec.remove("backup");
    if let Some(resources) = &restore.spec.resources {
        spec.insert("resources".to_string(), serde_json::to_value(resources).unwrap_or(Value::Null));
    }
    if let Some(config) = &restore.spec.custom_config
        && !spec.contains_key("customConfig")
    {
        spec.insert("customConfig".to_string(), json!(config));
    }
    json!({
        "apiVersion": format!("{}/{}", proto::crd::GROUP, proto::crd::VERSION),
        "kind": "Kubegres",
        "metadata": {
            "name": cluster,
            "namespace": names::namespace(restore),
            "labels": {
                MANAGED_BY_RESTORE_LABEL: names::name(restore),
                RESTORE_UID_LABEL: names::uid(restore),
                names::ATTEMPT_LABEL: attempt.to_string(),
                names::MANAGED_BY_LABEL: names::MANAGED_BY_VALUE,
            },
        },
        "spec": spec,
    })
}

/// The port of a Kubegres cluster's Services (`spec.port`, default 5432).
fn kubegres_port(spec: Option<&Map<String, Value>>) -> i64 {
    spec.and_then(|spec| spec.get("port"))
        .and_then(Value::as_i64)
        .filter(|port| (1..=65535).contains(port))
        .unwrap_or(5432)
}

/// A database name as a URL path segment: every byte but the unreserved
/// ones percent-encoded, so that `?`, `#`, `%`, `/` or `@` in a name stay
/// part of the name (the agent decodes the path) and never become a query
/// string or another host.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether a host name or address can stand in a URL as it is.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
}

/// How the agent connects to the target. For a Kubegres cluster (a new one,
/// whose spec is `desired`, or an existing one for a `database` target, whose
/// spec is `existing`), the superuser `postgres` through the Service
/// `<cluster>` with the password reference of the spec's `POSTGRES_PASSWORD`.
pub fn connection(
    restore: &KubegresRestore,
    target: &ResolvedTarget<'_>,
    desired: Option<&Map<String, Value>>,
    existing: Option<&Map<String, Value>>,
) -> Result<TargetConnection, TargetError> {
    let superuser = |cluster: &str, database: &str, spec: Option<&Map<String, Value>>| {
        let password =
            spec.and_then(superuser_password).ok_or_else(|| TargetError::NoSuperUserPassword(cluster.to_string()))?;
        Ok(TargetConnection {
            url: format!(
                "postgres://postgres@{cluster}.{}.svc:{}/{}",
                names::namespace(restore),
                kubegres_port(spec),
                encode_path_segment(database)
            ),
            user: None,
            password,
            ssl_mode: None,
            allow_non_empty: false,
            create_database: None,
            keep_roles: KUBEGRES_ROLES.iter().map(|r| r.to_string()).collect(),
        })
    };
    match target {
        ResolvedTarget::NewCluster { name, database, .. } => superuser(name, database, desired),
        ResolvedTarget::Database(target) => {
            let mut connection = superuser(&target.cluster_name, &target.database, existing)?;
            connection.create_database = Some(restore.metadata.uid.clone().unwrap_or_default());
            Ok(connection)
        }
        ResolvedTarget::Postgres(postgres) => {
            let secret = &postgres.credentials_secret;
            if !is_plain_host(&postgres.host) {
                return Err(TargetError::InvalidHost(postgres.host.clone()));
            }
            Ok(TargetConnection {
                url: format!(
                    "postgres://{}:{}/{}",
                    postgres.host,
                    postgres.port,
                    encode_path_segment(&postgres.database)
                ),
                user: Some(super::pod::secret_ref(&secret.name, &secret.username_key)),
                password: super::pod::secret_ref(&secret.name, &secret.password_key),
                ssl_mode: Some(postgres.ssl_mode),
                allow_non_empty: postgres.allow_non_empty,
                create_database: None,
                keep_roles: Vec::new(),
            })
        }
    }
}

/// The `valueFrom` of `POSTGRES_PASSWORD` in a Kubegres spec's `env`, when it
/// is a Secret reference (a literal value is never copied).
fn superuser_password(spec: &Map<String, Value>) -> Option<EnvVarSource> {
    let env: Vec<EnvVar> = serde_json::from_value(spec.get("env")?.clone()).ok()?;
    env.into_iter()
        .find(|var| var.name == "POSTGRES_PASSWORD")
        .and_then(|var| var.value_from)
        .filter(|source| source.secret_key_ref.is_some())
}
