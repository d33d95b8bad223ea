//! The target as the agent connects to it, and the new Kubegres cluster's
//! manifest.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};
use proto::KubegresRestore;
use proto::crd::{ClusterSpecSource, ResolvedTarget, SpecError, SslMode};
use serde_json::{Map, Value, json};

use super::names::{self, MANAGED_BY_RESTORE_LABEL};

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
}

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
/// replica, the restore-time resources and custom config, and the managed
/// label.
pub fn kubegres_manifest(restore: &KubegresRestore, cluster: &str, desired: &Map<String, Value>) -> Value {
    let mut spec = desired.clone();
    spec.insert("replicas".to_string(), json!(1));
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
                names::MANAGED_BY_LABEL: names::MANAGED_BY_VALUE,
            },
        },
        "spec": spec,
    })
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
            url: format!("postgres://postgres@{cluster}.{}.svc:5432/{database}", names::namespace(restore)),
            user: None,
            password,
            ssl_mode: None,
            allow_non_empty: false,
            create_database: None,
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
            Ok(TargetConnection {
                url: format!("postgres://{}:{}/{}", postgres.host, postgres.port, postgres.database),
                user: Some(super::pod::secret_ref(&secret.name, &secret.username_key)),
                password: super::pod::secret_ref(&secret.name, &secret.password_key),
                ssl_mode: Some(postgres.ssl_mode),
                allow_non_empty: postgres.allow_non_empty,
                create_database: None,
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
