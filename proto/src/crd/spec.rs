//! `KubegresRestoreSpec`, the resource's root, with the agent's knobs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, LocalObjectReference, ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpecError;
use super::cel;
use super::source::{ClusterSource, DataSource, SourceKind};
use super::status::KubegresRestoreStatus;
use super::target::{ClusterSpecSource, ResolvedTarget, RestoreTarget};

/// A restore of a PostgreSQL dump into a new Kubegres cluster (the default),
/// a new database of an existing cluster, or an existing empty PostgreSQL.
///
/// The fields `clusterName`, `databaseName`, `dataSource.file`,
/// `dataSource.cluster`, `customConfig`, `resources` and `env` are those of
/// the original Kubegres fork, so restores written for it work unchanged.
// clippy reads the repeated `type_ = "string"` of the printer columns as
// duplicated attributes; they are arguments of separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubegres.reactive-tech.io",
    version = "v1",
    kind = "KubegresRestore",
    plural = "kubegresrestores",
    singular = "kubegresrestore",
    shortname = "kgrestore",
    shortname = "kgr",
    namespaced,
    status = "KubegresRestoreStatus",
    derive = "PartialEq",
    doc = "Restores a PostgreSQL dump (a Kubegres backup on a PVC, an S3 object or an HTTP URL) into a new \
           Kubegres cluster, a new database of an existing cluster, or an existing empty PostgreSQL.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the restore is: Pending, CreatingTarget, WaitingForTarget, Restoring, Finalizing, \
                       Succeeded or Failed."
    ),
    printcolumn(
        name = "Progress",
        type_ = "integer",
        json_path = ".status.progress.percent",
        description = "Percent of the source read, when its size is known."
    ),
    printcolumn(name = "Source", type_ = "string", json_path = ".status.source", description = "What is restored."),
    printcolumn(name = "Target", type_ = "string", json_path = ".status.target", description = "Where it goes."),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::SPEC))]
pub struct KubegresRestoreSpec {
    /// Name of the new Kubegres cluster that the default flow creates (as in
    /// the Kubegres fork). Not used with `target.database` or `target.postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = cel::CLUSTER_NAME))]
    pub cluster_name: Option<String>,
    /// The database of the new cluster that the restore connects to; for
    /// pg_dumpall dumps (Kubegres backups) the one the script starts in.
    /// Default: `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Where the dump comes from, and how to build the new cluster.
    pub data_source: DataSource,
    /// Where the restore writes. Default: a new Kubegres cluster named
    /// `clusterName`, built from `dataSource.cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RestoreTarget>,
    /// Name of a ConfigMap used as the new cluster's Kubegres `customConfig`
    /// when its spec sets none (as in the Kubegres fork).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<String>,
    /// Resources of the new cluster's PostgreSQL container while the restore
    /// runs (as in the Kubegres fork); the cluster gets its own spec's
    /// resources back once the restore succeeded. Default: the cluster spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables for the restore agent's container (as in
    /// the Kubegres fork). Variables the operator sets itself win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The dump's format: `auto` detects it from the first bytes.
    #[serde(default)]
    pub format: FormatChoice,
    /// How the stored bytes are compressed: `auto` detects it from the magic
    /// bytes.
    #[serde(default)]
    pub compression: CompressionChoice,
    /// What applies the dump: `native` (the agent's own SQL client) for plain
    /// SQL and pg_dumpall scripts, `pg-tools` (pg_restore, psql); `auto` picks
    /// per format.
    #[serde(default)]
    pub engine: EngineChoice,
    /// Parallel jobs for pg_restore (directory-format dumps), 1 to 64.
    #[serde(default = "default_jobs")]
    #[schemars(extend("x-kubernetes-validations" = cel::JOBS))]
    pub jobs: i32,
    /// Expected SHA-256 of the stored (compressed) bytes, in hex. A mismatch
    /// fails the restore; a single-database restore is then rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), extend("x-kubernetes-validations" = cel::SHA256))]
    pub sha256: Option<String>,
    /// What to do when an SQL statement fails: `stop` at the first error, or
    /// `continue`, count the errors and fail at the end.
    #[serde(default)]
    pub on_error: OnError,
    /// How many times a failed attempt is retried (each into a fresh target),
    /// with exponential backoff, before the restore is Failed. 0 to 20.
    #[serde(default = "default_backoff_limit")]
    #[schemars(extend("x-kubernetes-validations" = cel::BACKOFF_LIMIT))]
    pub backoff_limit: i32,
    /// Seconds the whole restore may take, retries included, before it is
    /// Failed. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = cel::ACTIVE_DEADLINE))]
    pub active_deadline_seconds: Option<i64>,
    /// The restore agent's Pod: image, scheduling and resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
}

fn default_jobs() -> i32 {
    1
}

fn default_backoff_limit() -> i32 {
    KubegresRestoreSpec::DEFAULT_BACKOFF_LIMIT
}

/// The restore agent's Pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The restore agent's image. Default: the one the operator is configured
    /// with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The agent container's resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the agent's Pod must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the agent's Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// When the kubelet pulls the agent's image. Default: Kubernetes's (`Always`
/// for a `:latest` image, else `IfNotPresent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// On every Pod start.
    Always,
    /// Only when the node does not have it.
    IfNotPresent,
    /// Never; the image must be on the node.
    Never,
}

impl PullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// `--format`: the dump's format, or detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FormatChoice {
    /// Detect from the first bytes (or a directory's `toc.dat`).
    #[default]
    Auto,
    /// A plain SQL script, including pg_dumpall's.
    Plain,
    /// A pg_dump -Fc archive.
    Custom,
    /// A pg_dump -Fd directory.
    Directory,
    /// A pg_dump -Ft archive.
    Tar,
}

/// `--compression`: how the stored bytes are compressed, or detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum CompressionChoice {
    /// Detect from the magic bytes.
    #[default]
    Auto,
    /// Not compressed.
    None,
    /// gzip (Kubegres backups).
    Gzip,
    /// Zstandard.
    Zstd,
    /// LZ4 frames.
    Lz4,
}

/// `--engine`: what applies the dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum EngineChoice {
    /// `native` for plain SQL and pg_dumpall scripts, `pg-tools` for archives.
    #[default]
    Auto,
    /// The agent's own SQL client and psql-script splitter.
    Native,
    /// pg_restore for archives, psql for plain SQL.
    PgTools,
}

/// `--on-error`: what to do when an SQL statement fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop at the first unexpected error (rolled back when in one transaction).
    #[default]
    Stop,
    /// Go on like psql, count the errors, and fail at the end.
    Continue,
}

/// The agent's command-line value of each knob (`--format auto`, ...).
macro_rules! cli_values {
    ($($ty:ident { $($variant:ident => $value:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The value the restore agent's command line takes.
            pub fn as_arg(self) -> &'static str {
                match self {
                    $($ty::$variant => $value),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_arg())
            }
        }
    )+};
}

cli_values! {
    FormatChoice { Auto => "auto", Plain => "plain", Custom => "custom", Directory => "directory", Tar => "tar" }
    CompressionChoice { Auto => "auto", None => "none", Gzip => "gzip", Zstd => "zstd", Lz4 => "lz4" }
    EngineChoice { Auto => "auto", Native => "native", PgTools => "pg-tools" }
    OnError { Stop => "stop", Continue => "continue" }
}

impl KubegresRestoreSpec {
    /// Retries when `backoffLimit` is not given.
    pub const DEFAULT_BACKOFF_LIMIT: i32 = 3;
    /// The database a new cluster's restore connects to by default.
    pub const DEFAULT_DATABASE: &'static str = "postgres";

    /// The dump source: exactly one of `dataSource.file`, `s3` and `http`.
    /// The CRD's rules reject anything else; this is the same check for
    /// objects that predate them.
    pub fn source_kind(&self) -> Result<SourceKind, SpecError> {
        match self.data_source.kinds().as_slice() {
            [kind] => Ok(*kind),
            [] => Err(SpecError::NoSource),
            _ => Err(SpecError::SeveralSources),
        }
    }

    /// The target with its defaults resolved: without `spec.target`, a new
    /// cluster named `clusterName` built from `dataSource.cluster`.
    pub fn target(&self) -> Result<ResolvedTarget<'_>, SpecError> {
        let target = self.target.as_ref();
        let new_cluster = match target {
            None => None,
            Some(RestoreTarget { new_cluster, database, postgres }) => match (new_cluster, database, postgres) {
                (Some(new_cluster), None, None) => Some(new_cluster),
                (None, Some(database), None) => {
                    self.no_new_cluster_fields()?;
                    return Ok(ResolvedTarget::Database(database));
                }
                (None, None, Some(postgres)) => {
                    self.no_new_cluster_fields()?;
                    return Ok(ResolvedTarget::Postgres(postgres));
                }
                _ => return Err(SpecError::TargetNotOne),
            },
        };
        let explicit_name = new_cluster.and_then(|c| c.name.as_deref());
        let name = match (explicit_name, self.cluster_name.as_deref()) {
            (Some(a), Some(b)) if a != b => return Err(SpecError::ClusterNameMismatch),
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => return Err(SpecError::NoClusterName),
        };
        let explicit_spec = match new_cluster {
            Some(c) => match (c.copy_from.as_deref(), c.cluster_spec.as_ref()) {
                (Some(_), Some(_)) => return Err(SpecError::NewClusterSpecNotOne),
                (Some(from), None) => Some(ClusterSpecSource::CopyFrom(from)),
                (None, Some(spec)) => Some(ClusterSpecSource::Inline(spec)),
                (None, None) => None,
            },
            None => None,
        };
        let fork_spec = match &self.data_source.cluster {
            None => None,
            Some(ClusterSource { cluster_name: Some(from), cluster_spec: None }) => {
                Some(ClusterSpecSource::CopyFrom(from.as_str()))
            }
            Some(ClusterSource { cluster_name: None, cluster_spec: Some(spec) }) => {
                Some(ClusterSpecSource::Inline(spec))
            }
            Some(_) => return Err(SpecError::ClusterSourceNotOne),
        };
        let spec = match (explicit_spec, fork_spec) {
            (Some(_), Some(_)) => return Err(SpecError::TwoClusterSpecs),
            (Some(spec), None) | (None, Some(spec)) => spec,
            (None, None) => return Err(SpecError::NoClusterSpec),
        };
        let database = self.database_name.as_deref().unwrap_or(Self::DEFAULT_DATABASE);
        Ok(ResolvedTarget::NewCluster { name, spec, database })
    }

    fn no_new_cluster_fields(&self) -> Result<(), SpecError> {
        if self.cluster_name.is_some() || self.data_source.cluster.is_some() {
            Err(SpecError::NewClusterFieldsWithOtherTarget)
        } else {
            Ok(())
        }
    }

    /// `status.source` for `kubectl get`; never contains a secret.
    pub fn source_summary(&self) -> Option<String> {
        self.data_source.summary()
    }

    /// `status.target` for `kubectl get`; never contains a secret.
    pub fn target_summary(&self) -> Option<String> {
        self.target().ok().map(|target| target.summary())
    }
}
