//! The restore Pod, built from the spec: the agent's flags, credentials from
//! Secrets through `secretKeyRef` (never a literal value), a hardened
//! security context.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, Pod, PodSecurityContext, PodSpec, SeccompProfile, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proto::KubegresRestore;
use proto::crd::SslMode;

use super::names::{self, ATTEMPT_LABEL};
use super::target::TargetConnection;

mod source;

/// The agent image when neither `spec.agent.image` nor the operator's
/// `--agent-image` is set.
pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/kubegres-restore/restore-agent:0.1.0";
/// The agent container's name.
pub const AGENT_CONTAINER: &str = "restore-agent";
/// Where an HTTPS source's CA Secret is mounted.
pub const CA_MOUNT_PATH: &str = "/etc/restore-agent/ca";
/// The environment variable the agent reads extra HTTP headers from.
pub const HTTP_HEADERS_ENV: &str = "RESTORE_AGENT_HTTP_HEADERS";
/// Where the agent writes its failure report (the container's default
/// `terminationMessagePath`), which the operator reads back from the status.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

const TMP_VOLUME: &str = "tmp";

/// The restore Pod of `attempt` (1 for the first). `restore` must have a
/// name, a namespace and (for the owner reference) a uid; the spec must
/// have a valid source (checked by the caller).
pub fn restore_pod(restore: &KubegresRestore, attempt: i32, target: &TargetConnection, default_image: &str) -> Pod {
    let spec = &restore.spec;
    let agent = spec.agent.clone().unwrap_or_default();
    let mut parts = PodParts::new();
    source::add_source(&spec.data_source, &mut parts);
    add_target(target, &mut parts);
    add_knobs(restore, target, &mut parts);

    // The user's variables first; the operator's own win on a name clash.
    let mut env: Vec<EnvVar> =
        spec.env.iter().filter(|user| !parts.env.iter().any(|ours| ours.name == user.name)).cloned().collect();
    env.extend(parts.env);
    let container = Container {
        name: AGENT_CONTAINER.to_string(),
        image: Some(agent.image.clone().unwrap_or_else(|| default_image.to_string())),
        image_pull_policy: agent.image_pull_policy.map(|policy| policy.as_str().to_string()),
        args: Some(parts.args),
        env: Some(env),
        resources: agent.resources.clone(),
        volume_mounts: Some(parts.mounts),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(restricted_container()),
        ..Default::default()
    };

    let mut labels = names::child_labels(restore);
    labels.insert(ATTEMPT_LABEL.to_string(), attempt.to_string());
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
            volumes: Some(parts.volumes),
            ..Default::default()
        }),
        status: None,
    }
}

/// What the parts of the spec add to the agent container and its Pod.
struct PodParts {
    args: Vec<String>,
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

impl PodParts {
    /// The `restore` subcommand and a writable `/tmp` (the root file system is read-only).
    fn new() -> Self {
        PodParts {
            args: vec!["restore".to_string()],
            env: Vec::new(),
            volumes: vec![Volume {
                name: TMP_VOLUME.to_string(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }],
            mounts: vec![VolumeMount {
                name: TMP_VOLUME.to_string(),
                mount_path: "/tmp".to_string(),
                ..Default::default()
            }],
        }
    }

    fn flag(&mut self, name: &str, value: impl Into<String>) {
        self.args.push(name.to_string());
        self.args.push(value.into());
    }

    /// A read-only volume mounted at `path`.
    fn mount(&mut self, volume: Volume, path: &str) {
        self.mounts.push(VolumeMount {
            name: volume.name.clone(),
            mount_path: path.to_string(),
            read_only: Some(true),
            ..Default::default()
        });
        self.volumes.push(volume);
    }
}

/// Where to restore, as whom: the URL on the command line, the credentials
/// only through `secretKeyRef`.
fn add_target(target: &TargetConnection, parts: &mut PodParts) {
    parts.flag("--target", target.url.clone());
    if let Some(user) = &target.user {
        parts.env.push(EnvVar { name: "PGUSER".to_string(), value_from: Some(user.clone()), ..Default::default() });
    }
    parts.env.push(EnvVar {
        name: "PGPASSWORD".to_string(),
        value_from: Some(target.password.clone()),
        ..Default::default()
    });
    if let Some(ssl_mode) = target.ssl_mode.filter(|mode| *mode != SslMode::Prefer) {
        parts.env.push(EnvVar {
            name: "PGSSLMODE".to_string(),
            value: Some(ssl_mode.as_str().to_string()),
            ..Default::default()
        });
    }
}

/// The restore's knobs, what the agent may do to the target, and how it
/// reports back to the operator.
fn add_knobs(restore: &KubegresRestore, target: &TargetConnection, parts: &mut PodParts) {
    let spec = &restore.spec;
    parts.flag("--format", spec.format.as_arg());
    parts.flag("--compression", spec.compression.as_arg());
    parts.flag("--engine", spec.engine.as_arg());
    parts.flag("--jobs", spec.jobs.to_string());
    parts.flag("--on-error", spec.on_error.as_arg());
    if let Some(sha256) = &spec.sha256 {
        parts.flag("--sha256", sha256.trim());
    }
    if target.allow_non_empty {
        parts.args.push("--allow-non-empty".to_string());
    }
    if let Some(marker) = &target.create_database {
        parts.args.push("--create-database".to_string());
        parts.flag("--create-database-marker", marker.clone());
    }
    parts.flag("--progress", "log");
    parts.flag("--termination-log", TERMINATION_LOG);
    parts.flag("--log-format", "json");
    parts.flag("--kubegres-restore", format!("{}/{}", names::namespace(restore), names::name(restore)));
}

/// The container security context of the restricted Pod Security Standard.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
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
