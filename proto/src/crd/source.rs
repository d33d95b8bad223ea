//! `spec.dataSource`: where the dump comes from (a file on a PVC, an S3
//! object, an HTTP URL) and, for the default flow, the spec of the new
//! Kubegres cluster (`cluster`), as in the original Kubegres fork.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cel;

/// Where the dump comes from: exactly one of `file`, `s3` or `http`. `cluster`
/// tells how to build the new Kubegres cluster of the default flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::DATA_SOURCE))]
pub struct DataSource {
    /// A backup file on a PersistentVolumeClaim, such as the ones Kubegres's
    /// backup CronJob writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
    /// An object in S3 or an S3-compatible store (MinIO, Ceph, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
    /// A dump served over HTTP or HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// The Kubegres spec of the new cluster that the default flow creates:
    /// copied from an existing cluster (`clusterName`) or given inline
    /// (`clusterSpec`). Not a dump source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSource>,
}

/// A backup file on a PersistentVolumeClaim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// Name of the PersistentVolumeClaim that holds the backups (for Kubegres
    /// backups, the cluster's `spec.backup.pvcName`), in the restore's
    /// namespace.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = cel::PVC_NAME))]
    pub pvc_name: String,
    /// Where the restore Pod mounts the claim. Default: `/var/lib/backup`.
    #[serde(default = "default_mount_path")]
    #[schemars(length(max = 4096), extend("x-kubernetes-validations" = cel::MOUNT_PATH))]
    pub mount_path: String,
    /// `latest` for the newest backup on the volume (Kubegres backups
    /// `<name>-backup-DD_MM_YYYY_HH_MM_SS.gz` by the timestamp in their name,
    /// other files by modification time), or the backup file's path relative
    /// to the volume. Default: `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), extend("x-kubernetes-validations" = cel::SNAPSHOT))]
    pub snapshot: Option<String>,
    /// With `snapshot: latest`: the Kubegres cluster whose backups
    /// (`<clusterName>-backup-*`) to choose from. Default:
    /// `dataSource.cluster.clusterName`. When neither is set and the volume
    /// holds the backups of several clusters, the restore fails rather than
    /// guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), extend("x-kubernetes-validations" = cel::BACKUPS_OF))]
    pub cluster_name: Option<String>,
}

fn default_mount_path() -> String {
    FileSource::DEFAULT_MOUNT_PATH.to_string()
}

/// Which backup a file source names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshot<'a> {
    /// The newest backup on the volume.
    Latest,
    /// This file, relative to the volume's root.
    File(&'a str),
}

impl FileSource {
    /// Where the claim is mounted when `mountPath` is not given.
    pub const DEFAULT_MOUNT_PATH: &'static str = "/var/lib/backup";
    /// The `snapshot` value that picks the newest backup.
    pub const LATEST: &'static str = "latest";

    /// Which backup to restore; an unset `snapshot` means the newest.
    pub fn snapshot(&self) -> Snapshot<'_> {
        match self.snapshot.as_deref().map(str::trim) {
            None | Some(Self::LATEST) => Snapshot::Latest,
            Some(file) => Snapshot::File(file),
        }
    }

    /// The path the agent reads inside the restore Pod: the backup file, or
    /// for `latest` the folder to search.
    pub fn agent_path(&self) -> String {
        let root = self.mount_path.trim_end_matches('/');
        match self.snapshot() {
            Snapshot::Latest => if root.is_empty() { "/" } else { root }.to_string(),
            Snapshot::File(file) => format!("{root}/{}", file.trim_start_matches('/')),
        }
    }
}

/// An object in S3 or an S3-compatible store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::S3))]
pub struct S3Source {
    /// The bucket.
    #[schemars(length(max = 255), extend("x-kubernetes-validations" = cel::S3_BUCKET))]
    pub bucket: String,
    /// The object's key: restore exactly this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = cel::S3_KEY))]
    pub key: Option<String>,
    /// A key prefix: restore the newest backup under it (Kubegres backup names
    /// by their timestamp, other objects by last modification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL of an S3-compatible server, e.g. `https://minio.example:9000`.
    /// Default: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), extend("x-kubernetes-validations" = cel::S3_ENDPOINT))]
    pub endpoint: Option<String>,
    /// The region. Default: from the agent's AWS environment, else `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Address the bucket by path (`endpoint/bucket/key`) instead of by virtual
    /// host; most S3-compatible servers need it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_style: bool,
    /// A Secret with the access key. Without it the agent uses the standard AWS
    /// credential chain (for example a web identity on the Pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<S3CredentialsSecret>,
}

/// The Secret that holds S3 credentials, in the restore's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecret {
    /// Name of the Secret.
    pub name: String,
    /// Key of the access key id in the Secret. Default: `AWS_ACCESS_KEY_ID`.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret. Default: `AWS_SECRET_ACCESS_KEY`.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
    /// Key of a session token in the Secret, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_key: Option<String>,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_string()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_string()
}

/// A dump served over HTTP or HTTPS. Interrupted downloads resume with range
/// requests when the server supports them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// The URL, `http://` or `https://`. Put tokens in `headersSecret`, not
    /// in the URL: the URL shows in status and events (without any user
    /// info or query string).
    #[schemars(length(max = 8192), extend("x-kubernetes-validations" = cel::HTTP_URL))]
    pub url: String,
    /// A Secret key holding extra request headers, one `Name: value` per line
    /// (for example `Authorization: Bearer ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret: Option<HeadersSecret>,
    /// A Secret key holding PEM CA certificates to trust for HTTPS, beside the
    /// system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<CaSecret>,
}

/// Shows the URL as [`public_url`] does: a token someone put in the query
/// string or the user info stays out of logs.
impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &public_url(&self.url))
            .field("headers_secret", &self.headers_secret)
            .field("ca_secret", &self.ca_secret)
            .finish()
    }
}

/// A Secret key with HTTP request headers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadersSecret {
    /// Name of the Secret, in the restore's namespace.
    pub name: String,
    /// Key in the Secret. Default: `headers`.
    #[serde(default = "default_headers_key")]
    pub key: String,
}

fn default_headers_key() -> String {
    "headers".to_string()
}

/// A Secret key with PEM CA certificates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecret {
    /// Name of the Secret, in the restore's namespace.
    pub name: String,
    /// Key in the Secret. Default: `ca.crt`.
    #[serde(default = "default_ca_key")]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

/// How to build the new Kubegres cluster: exactly one of `clusterName` and
/// `clusterSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = cel::CLUSTER_SOURCE))]
pub struct ClusterSource {
    /// Copy the spec of this existing Kubegres cluster (same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// The new cluster's Kubegres spec (`spec` of a Kubegres resource), kept as
    /// given; Kubegres validates it when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "cel::preserved_object")]
    pub cluster_spec: Option<Map<String, Value>>,
}

/// The kind of a dump source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `spec.dataSource.file`.
    File,
    /// `spec.dataSource.s3`.
    S3,
    /// `spec.dataSource.http`.
    Http,
}

impl SourceKind {
    /// The field name: `file`, `s3` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::S3 => "s3",
            SourceKind::Http => "http",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DataSource {
    /// The dump sources that are set, in field order.
    pub fn kinds(&self) -> Vec<SourceKind> {
        [
            self.file.as_ref().map(|_| SourceKind::File),
            self.s3.as_ref().map(|_| SourceKind::S3),
            self.http.as_ref().map(|_| SourceKind::Http),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// One line for `kubectl get` (status.source): `pvc/backups:latest`,
    /// `s3://bucket/key`, `s3://bucket/prefix/*` (newest), or the URL without
    /// user info, query or fragment. Never contains a secret.
    pub fn summary(&self) -> Option<String> {
        if let Some(file) = &self.file {
            let snapshot = match file.snapshot() {
                Snapshot::Latest => FileSource::LATEST,
                Snapshot::File(name) => name,
            };
            return Some(format!("pvc/{}:{snapshot}", file.pvc_name));
        }
        if let Some(s3) = &self.s3 {
            return Some(match (&s3.key, &s3.prefix) {
                (Some(key), _) => format!("s3://{}/{key}", s3.bucket),
                (None, Some(prefix)) => format!("s3://{}/{prefix}*", s3.bucket),
                (None, None) => format!("s3://{}", s3.bucket),
            });
        }
        self.http.as_ref().map(|http| public_url(&http.url))
    }
}

/// A URL as it may be shown: without user info, query string or fragment,
/// which is where credentials and tokens hide.
pub fn public_url(url: &str) -> String {
    let url = url.trim();
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

fn is_false(value: &bool) -> bool {
    !*value
}
