//! The source's part of the restore Pod: `--source` and its flags, the
//! source PVC or CA Secret as read-only volumes, S3 keys and HTTP headers
//! through `secretKeyRef`.

use k8s_openapi::api::core::v1::{KeyToPath, PersistentVolumeClaimVolumeSource, SecretVolumeSource, Volume};
use proto::crd::{DataSource, FileSource, HttpSource, S3Source, Snapshot};

use super::{CA_MOUNT_PATH, HTTP_HEADERS_ENV, PodParts, secret_env};

const SOURCE_VOLUME: &str = "source";
const CA_VOLUME: &str = "http-ca";

/// Adds the one source of `data_source` (the caller validated that there is
/// exactly one).
pub(super) fn add_source(data_source: &DataSource, parts: &mut PodParts) {
    if let Some(file) = &data_source.file {
        add_file(file, parts);
    } else if let Some(s3) = &data_source.s3 {
        add_s3(s3, parts);
    } else if let Some(http) = &data_source.http {
        add_http(http, parts);
    }
}

fn add_file(file: &FileSource, parts: &mut PodParts) {
    parts.flag("--source", file.agent_path());
    if file.snapshot() == Snapshot::Latest {
        parts.flag("--pick", "latest");
    }
    let volume = Volume {
        name: SOURCE_VOLUME.to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: file.pvc_name.clone(),
            read_only: Some(true),
        }),
        ..Default::default()
    };
    parts.mount(volume, &file.mount_path);
}

fn add_s3(s3: &S3Source, parts: &mut PodParts) {
    match (&s3.key, &s3.prefix) {
        (Some(key), _) => parts.flag("--source", format!("s3://{}/{key}", s3.bucket)),
        (None, prefix) => {
            parts.flag("--source", format!("s3://{}/{}", s3.bucket, prefix.as_deref().unwrap_or_default()));
            parts.flag("--pick", "latest");
        }
    }
    if let Some(endpoint) = &s3.endpoint {
        parts.flag("--s3-endpoint", endpoint.clone());
    }
    if let Some(region) = &s3.region {
        parts.flag("--s3-region", region.clone());
    }
    if s3.path_style {
        parts.args.push("--s3-path-style".to_string());
    }
    if let Some(secret) = &s3.credentials_secret {
        parts.env.push(secret_env("AWS_ACCESS_KEY_ID", &secret.name, &secret.access_key_id_key));
        parts.env.push(secret_env("AWS_SECRET_ACCESS_KEY", &secret.name, &secret.secret_access_key_key));
        if let Some(key) = &secret.session_token_key {
            parts.env.push(secret_env("AWS_SESSION_TOKEN", &secret.name, key));
        }
    }
}

fn add_http(http: &HttpSource, parts: &mut PodParts) {
    parts.flag("--source", http.url.clone());
    if let Some(headers) = &http.headers_secret {
        parts.env.push(secret_env(HTTP_HEADERS_ENV, &headers.name, &headers.key));
    }
    if let Some(ca) = &http.ca_secret {
        let volume = Volume {
            name: CA_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(ca.name.clone()),
                items: Some(vec![KeyToPath { key: ca.key.clone(), path: "ca.crt".to_string(), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        parts.mount(volume, CA_MOUNT_PATH);
        parts.flag("--http-ca-file", format!("{CA_MOUNT_PATH}/ca.crt"));
    }
}
