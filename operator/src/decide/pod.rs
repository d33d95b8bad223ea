//! The restore Pod, built from the spec: the agent's flags, credentials from
//! Secrets through `secretKeyRef` (never a literal value), a hardened
//! security context.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, KeyToPath, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proto::KubegresRestore;
use proto::crd::{SourceKind, SslMode};

use super::names::{self, ATTEMPT_LABEL};
use super::target::TargetConnection;

/// The agent image when neither `spec.agent.image` nor the operator's
/// `--agent-image` is set.
pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/kubegres-restore/restore-agent:0.1.0";
/// The agent container's name.
pub const AGENT_CONTAINER: &str = "restore-agent";
/// Where an HTTPS source's CA Secret is mounted.
pub const CA_MOUNT_PATH: &str = "/etc/restore-agent/ca";
/// The environment variable the agent reads extra HTTP headers from.
/// Where the agent writes its failure report (the container's default
/// `terminationMessagePath`), which the operator reads back from the status.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const HTTP_HEADERS_ENV: &str = "RESTORE_AGENT_HTTP_HEADERS";

const SOURCE_VOLUME: &str = "source";
const CA_VOLUME: &str = "http-ca";
const TMP_VOLUME: &str = "tmp";

/// The restore Pod of `attempt` (1 for the first). `restore` must have a
/// name, a namespace and (for the owner reference) a uid; the spec must
/// have a valid source (checked by the caller).
pub fn restore_pod(restore: &KubegresRestore, attempt: i32, target: &TargetConnection, default_image: &str) -> Pod {
    let spec = &restore.spec;
    let agent = spec.agent.clone().unwrap_or_default();
    let mut labels = names::child_labels(restore);
    labels.insert(ATTEMPT_LABEL.to_string(), attempt.to_string());

    let mut args = vec!["restore".to_string()];
    let mut env: Vec<EnvVar> = Vec::new();
    let mut volumes =
        vec![Volume { name: TMP_VOLUME.to_string(), empty_dir: Some(Default::default()), ..Default::default() }];
    let mut mounts =
        vec![VolumeMount { name: TMP_VOLUME.to_string(), mount_path: "/tmp".to_string(), ..Default::default() }];

    match spec.source_kind() {
        Ok(SourceKind::File) => {
            let file = spec.data_source.file.as_ref().expect("source_kind said file");
            args.extend(["--source".to_string(), file.agent_path()]);
            if file.snapshot() == proto::crd::Snapshot::Latest {
                args.extend(["--pick".to_string(), "latest".to_string()]);
            }
            volumes.push(Volume {
                name: SOURCE_VOLUME.to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: file.pvc_name.clone(),
                    read_only: Some(true),
                }),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: SOURCE_VOLUME.to_string(),
                mount_path: file.mount_path.clone(),
                read_only: Some(true),
                ..Default::default()
            });
        }
        Ok(SourceKind::S3) => {
            let s3 = spec.data_source.s3.as_ref().expect("source_kind said s3");
            match (&s3.key, &s3.prefix) {
                (Some(key), _) => args.extend(["--source".to_string(), format!("s3://{}/{key}", s3.bucket)]),
                (None, prefix) => {
                    let prefix = prefix.as_deref().unwrap_or_default();
                    args.extend(["--source".to_string(), format!("s3://{}/{prefix}", s3.bucket)]);
                    args.extend(["--pick".to_string(), "latest".to_string()]);
                }
            }
            if let Some(endpoint) = &s3.endpoint {
                args.extend(["--s3-endpoint".to_string(), endpoint.clone()]);
            }
            if let Some(region) = &s3.region {
                args.extend(["--s3-region".to_string(), region.clone()]);
            }
            if s3.path_style {
                args.push("--s3-path-style".to_string());
            }
            if let Some(secret) = &s3.credentials_secret {
                env.push(secret_env("AWS_ACCESS_KEY_ID", &secret.name, &secret.access_key_id_key));
                env.push(secret_env("AWS_SECRET_ACCESS_KEY", &secret.name, &secret.secret_access_key_key));
                if let Some(key) = &secret.session_token_key {
                    env.push(secret_env("AWS_SESSION_TOKEN", &secret.name, key));
                }
            }
        }
        Ok(SourceKind::Http) | Err(_) => {
            // The caller validated the source; an invalid one never gets here.
            if let Some(http) = &spec.data_source.http {
                args.extend(["--source".to_string(), http.url.clone()]);
                if let Some(headers) = &http.headers_secret {
                    env.push(secret_env(HTTP_HEADERS_ENV, &headers.name, &headers.key));
                }
                if let Some(ca) = &http.ca_secret {
                    volumes.push(Volume {
                        name: CA_VOLUME.to_string(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(ca.name.clone()),
                            items: Some(vec![KeyToPath {
                                key: ca.key.clone(),
                                path: "ca.crt".to_string(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    mounts.push(VolumeMount {
                        name: CA_VOLUME.to_string(),
                        mount_path: CA_MOUNT_PATH.to_string(),
                        read_only: Some(true),
                        ..Default::default()
                    });
                    args.extend(["--http-ca-file".to_string(), format!("{CA_MOUNT_PATH}/ca.crt")]);
                }
            }
        }
    }

    args.extend(["--target".to_string(), target.url.clone()]);
    if let Some(user) = &target.user {
        env.push(EnvVar { name: "PGUSER".to_string(), value_from: Some(user.clone()), ..Default::default() });
    }
    env.push(EnvVar {
        name: "PGPASSWORD".to_string(),
        value_from: Some(target.password.clone()),
        ..Default::default()
    });
    if let Some(ssl_mode) = target.ssl_mode.filter(|mode| *mode != SslMode::Prefer) {
        env.push(EnvVar {
            name: "PGSSLMODE".to_string(),
            value: Some(ssl_mode.as_str().to_string()),
            ..Default::default()
        });
    }
    args.extend(["--format".to_string(), spec.format.as_arg().to_string()]);
    args.extend(["--compression".to_string(), spec.compression.as_arg().to_string()]);
    args.extend(["--engine".to_string(), spec.engine.as_arg().to_string()]);
    args.extend(["--jobs".to_string(), spec.jobs.to_string()]);
    args.extend(["--on-error".to_string(), spec.on_error.as_arg().to_string()]);
    if let Some(sha256) = &spec.sha256 {
        args.extend(["--sha256".to_string(), sha256.trim().to_string()]);
    }
    if target.allow_non_empty {
        args.push("--allow-non-empty".to_string());
    }
    if let Some(marker) = &target.create_database {
        args.extend(["--create-database".to_string(), "--create-database-marker".to_string(), marker.clone()]);
    }
    args.extend(["--progress".to_string(), "log".to_string()]);
    args.extend(["--termination-log".to_string(), TERMINATION_LOG.to_string()]);
    args.extend(["--log-format".to_string(), "json".to_string()]);
    args.extend(["--kubegres-restore".to_string(), format!("{}/{}", names::namespace(restore), names::name(restore))]);

    // The user's variables first; the operator's own win on a name clash.
    let mut all_env: Vec<EnvVar> =
        spec.env.iter().filter(|user| !env.iter().any(|ours| ours.name == user.name)).cloned().collect();
    all_env.extend(env);

    let container = Container {
        name: AGENT_CONTAINER.to_string(),
        image: Some(agent.image.clone().unwrap_or_else(|| default_image.to_string())),
        image_pull_policy: agent.image_pull_policy.map(|policy| policy.as_str().to_string()),
        args: Some(args),
        env: Some(all_env),
        resources: agent.resources.clone(),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    };

    Pod {
        metadata: ObjectMeta {
            name: Some(names::pod_name(names::name(restore), attempt)),
            namespace: Some(names::namespace(restore).to_string()),
            labels: Some(labels),
            owner_references: Some(vec![names::owner_reference(restore)]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_string()),
            service_account_name: Some(names::children_name(names::name(restore))),
            automount_service_account_token: Some(true),
            enable_service_links: Some(false),
            node_selector: (!agent.node_selector.is_empty()).then(|| agent.node_selector.clone()),
            tolerations: (!agent.tolerations.is_empty()).then(|| agent.tolerations.clone()),
            image_pull_secrets: (!agent.image_pull_secrets.is_empty()).then(|| agent.image_pull_secrets.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(runtime_default()),
                ..Default::default()
            }),
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }
}

/// An environment variable read from a Secret key.
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar { name: name.to_string(), value_from: Some(secret_ref(secret, key)), ..Default::default() }
}

/// A `valueFrom.secretKeyRef`.
pub fn secret_ref(secret: &str, key: &str) -> EnvVarSource {
    EnvVarSource {
        secret_key_ref: Some(SecretKeySelector { name: secret.to_string(), key: key.to_string(), optional: None }),
        ..Default::default()
    }
}
