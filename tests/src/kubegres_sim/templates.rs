//! The objects Kubegres v1.19 creates from its templates
//! (`internal/controller/spec/template/yaml/*` and
//! `ResourcesCreatorFromTemplate.go`), filled in from a Kubegres spec: the
//! primary and replica StatefulSets, the two Services and the backup CronJob.

use serde_json::{Value, json};

use super::base_config::{
    BACKUP_SCRIPT, BASE_CONFIG_MAP, COPY_PRIMARY_DATA, CREATE_REPLICATION_ROLE, PG_HBA_CONF, POSTGRES_CONF,
    PRIMARY_INIT_SCRIPT,
};
use super::spec::{DATABASE_FOLDER, REPLICATION_PASSWORD_ENV, SUPERUSER_PASSWORD_ENV, Spec};

/// The data volume (and claim template) name.
pub const DATABASE_VOLUME: &str = "postgres-db";
const BASE_CONFIG_VOLUME: &str = "base-config";
const CUSTOM_CONFIG_VOLUME: &str = "custom-config";
/// Kubegres's prefix of the backup CronJob's name.
pub const CRON_JOB_PREFIX: &str = "backup-";
/// The annotation Kubegres does not copy onto its children.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The Kubegres object a template is filled from.
pub struct Owner<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub annotations: &'a std::collections::BTreeMap<String, String>,
    pub spec: &'a Spec,
    /// The custom config ConfigMap's keys, when that ConfigMap is deployed.
    pub custom_keys: Option<Vec<String>>,
}

impl Owner<'_> {
    fn reference(&self) -> Value {
        json!([{
            "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres", "name": self.name, "uid": self.uid,
            "controller": true, "blockOwnerDeletion": true,
        }])
    }

    fn annotations(&self) -> Value {
        let kept: serde_json::Map<String, Value> = self
            .annotations
            .iter()
            .filter(|(key, _)| key.as_str() != LAST_APPLIED)
            .map(|(key, value)| (key.clone(), json!(value)))
            .collect();
        Value::Object(kept)
    }

    /// The volume a config key is mounted from: the custom config when it
    /// is deployed and has that key, else the base config.
    fn config_volume(&self, key: &str) -> &'static str {
        match &self.custom_keys {
            Some(keys) if keys.iter().any(|k| k == key) => CUSTOM_CONFIG_VOLUME,
            _ => BASE_CONFIG_VOLUME,
        }
    }

    /// The ConfigMap the backup script comes from.
    pub fn backup_config_map(&self) -> String {
        match self.config_volume(BACKUP_SCRIPT) {
            CUSTOM_CONFIG_VOLUME => self.spec.custom_config.clone(),
            _ => BASE_CONFIG_MAP.to_string(),
        }
    }

    /// The Service of the primary (`<name>`) or of the replicas (`<name>-replica`).
    pub fn service_name(&self, primary: bool) -> String {
        if primary { self.name.to_string() } else { format!("{}-replica", self.name) }
    }

    /// `valueFrom` of a spec env entry (what Kubegres copies, never `value`).
    fn value_from(&self, env: &str) -> Value {
        self.spec.env_var(env).and_then(|e| e.get("valueFrom")).cloned().unwrap_or(Value::Null)
    }
}

/// A Service of the primary or of the replicas: headless, port `spec.port`.
pub fn service(owner: &Owner, primary: bool) -> Value {
    let role = if primary { "primary" } else { "replica" };
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": owner.service_name(primary), "namespace": owner.namespace,
            "labels": {"app": owner.name, "replicationRole": role},
            "ownerReferences": owner.reference(),
        },
        "spec": {
            "clusterIP": "None",
            "ports": [{"protocol": "TCP", "port": owner.spec.port}],
            "selector": {"app": owner.name, "replicationRole": role},
        },
    })
}

fn pg_isready_probe(initial: i64, period: i64, timeout: i64, failures: i64) -> Value {
    json!({
        "exec": {"command": ["sh", "-c", "exec pg_isready -U postgres -h $POD_IP"]},
        "failureThreshold": failures, "initialDelaySeconds": initial, "periodSeconds": period,
        "successThreshold": 1, "timeoutSeconds": timeout,
    })
}

fn mount(volume: &str, path: &str, sub_path: &str) -> Value {
    json!({"name": volume, "mountPath": path, "subPath": sub_path})
}

/// The StatefulSet `<name>-<index>` of the primary or of a replica.
pub fn stateful_set(owner: &Owner, index: i64, primary: bool) -> Value {
    let spec = owner.spec;
    let name = format!("{}-{index}", owner.name);
    let role = if primary { "primary" } else { "replica" };
    let index_label = index.to_string();
    let volume_mount = spec.database.volume_mount.as_str();
    let pgdata = format!("{volume_mount}/{DATABASE_FOLDER}");

    let mut mounts = vec![json!({"name": DATABASE_VOLUME, "mountPath": volume_mount})];
    if primary {
        mounts.push(mount(
            BASE_CONFIG_VOLUME,
            &format!("/docker-entrypoint-initdb.d/{CREATE_REPLICATION_ROLE}"),
            CREATE_REPLICATION_ROLE,
        ));
    }
    mounts.push(mount(owner.config_volume(POSTGRES_CONF), "/etc/postgres.conf", POSTGRES_CONF));
    if primary {
        mounts.push(mount(
            owner.config_volume(PRIMARY_INIT_SCRIPT),
            &format!("/docker-entrypoint-initdb.d/{PRIMARY_INIT_SCRIPT}"),
            PRIMARY_INIT_SCRIPT,
        ));
    }
    mounts.push(mount(owner.config_volume(PG_HBA_CONF), "/etc/pg_hba.conf", PG_HBA_CONF));
    if let Some(extra) = spec.volume.get("volumeMounts").and_then(Value::as_array) {
        mounts.extend(extra.iter().cloned());
    }

    let mut env = vec![
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}),
        json!({"name": "PGDATA", "value": pgdata}),
    ];
    env.extend(spec.env.iter().cloned());

    let probe = |key: &str, default: Value| spec.probe.get(key).filter(|p| !p.is_null()).cloned().unwrap_or(default);
    let mut container = json!({
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-c", "config_file=/etc/postgres.conf", "-c", "hba_file=/etc/pg_hba.conf"],
        "ports": [{"containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "livenessProbe": probe("livenessProbe", pg_isready_probe(60, 20, 15, 10)),
        "readinessProbe": probe("readinessProbe", pg_isready_probe(5, 10, 3, 3)),
        "volumeMounts": mounts,
    });
    if has_content(&spec.resources) {
        container["resources"] = spec.resources.clone();
    }
    if has_content(&spec.container_security_context) {
        container["securityContext"] = spec.container_security_context.clone();
    }

    let mut volumes = vec![json!({
        "name": BASE_CONFIG_VOLUME, "configMap": {"name": BASE_CONFIG_MAP, "defaultMode": 0o777},
    })];
    if let Some(extra) = spec.volume.get("volumes").and_then(Value::as_array) {
        volumes.extend(extra.iter().cloned());
    }
    if owner.custom_keys.is_some() {
        volumes.push(json!({
            "name": CUSTOM_CONFIG_VOLUME, "configMap": {"name": spec.custom_config, "defaultMode": 0o777},
        }));
    }

    let mut pod_spec = json!({
        "terminationGracePeriodSeconds": 10,
        "volumes": volumes,
        "containers": [container],
    });
    if !primary {
        let mut init = json!({
            "name": "setup-replica-data-directory",
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            "env": [
                {"name": "PRIMARY_HOST_NAME", "value": owner.service_name(true)},
                {"name": "PGPASSWORD", "valueFrom": owner.value_from(REPLICATION_PASSWORD_ENV)},
                {"name": "PGDATA", "value": pgdata},
            ],
            "command": ["sh", "-c", format!("/tmp/{COPY_PRIMARY_DATA}")],
            "volumeMounts": [
                {"name": DATABASE_VOLUME, "mountPath": volume_mount},
                mount(BASE_CONFIG_VOLUME, &format!("/tmp/{COPY_PRIMARY_DATA}"), COPY_PRIMARY_DATA),
            ],
        });
        if has_content(&spec.container_security_context) {
            init["securityContext"] = spec.container_security_context.clone();
        }
        pod_spec["initContainers"] = json!([init]);
    }
    if let Some(affinity) = spec.scheduler.get("affinity").filter(|a| has_content(a)) {
        pod_spec["affinity"] = affinity.clone();
    }
    if let Some(tolerations) = spec.scheduler.get("tolerations").filter(|t| has_content(t)) {
        pod_spec["tolerations"] = tolerations.clone();
    }
    if has_content(&spec.security_context) {
        pod_spec["securityContext"] = spec.security_context.clone();
    }
    if !spec.service_account_name.is_empty() {
        pod_spec["serviceAccountName"] = json!(spec.service_account_name);
    }
    if has_content(&spec.image_pull_secrets) {
        pod_spec["imagePullSecrets"] = spec.image_pull_secrets.clone();
    }

    let mut claims = vec![json!({
        "metadata": {"name": DATABASE_VOLUME},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": spec.database.storage_class_name,
            "resources": {"requests": {"storage": spec.database.size}},
        },
    })];
    if let Some(extra) = spec.volume.get("volumeClaimTemplates").and_then(Value::as_array) {
        claims.extend(extra.iter().map(|t| json!({"metadata": {"name": t["name"]}, "spec": t["spec"]})));
    }

    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {
            "name": name, "namespace": owner.namespace,
            "labels": {"app": owner.name, "index": index_label, "replicationRole": role},
            "annotations": owner.annotations(),
            "ownerReferences": owner.reference(),
        },
        "spec": {
            "serviceName": owner.service_name(primary),
            "replicas": 1,
            "selector": {"matchLabels": {"app": owner.name, "index": index_label}},
            "volumeClaimTemplates": claims,
            "template": {
                "metadata": {
                    "labels": {"app": owner.name, "index": index_label, "replicationRole": role},
                    "annotations": owner.annotations(),
                },
                "spec": pod_spec,
            },
        },
    })
}

/// The backup CronJob `backup-<name>`. Its source host is chosen once, at
/// creation (the replica Service when `spec.replicas > 1`): Kubegres does
/// not recreate the CronJob when only the replica count changes.
pub fn backup_cron_job(owner: &Owner) -> Value {
    let spec = owner.spec;
    let source = owner.service_name(spec.replicas() == 1);
    let mut env = vec![
        json!({"name": "PGPASSWORD", "valueFrom": owner.value_from(SUPERUSER_PASSWORD_ENV)}),
        json!({"name": "KUBEGRES_RESOURCE_NAME", "value": owner.name}),
        json!({"name": "BACKUP_DESTINATION_FOLDER", "value": spec.backup.volume_mount}),
        json!({"name": "BACKUP_SOURCE_DB_HOST_NAME", "value": source}),
    ];
    env.extend(spec.env.iter().cloned());
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {
            "name": format!("{CRON_JOB_PREFIX}{}", owner.name), "namespace": owner.namespace,
            "ownerReferences": owner.reference(),
        },
        "spec": {
            "schedule": spec.backup.schedule,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"template": {
                "metadata": {"annotations": owner.annotations()},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "volumes": [
                        {"name": "backup-volume", "persistentVolumeClaim": {"claimName": spec.backup.pvc_name}},
                        {"name": "postgres-config", "configMap": {"name": owner.backup_config_map(), "defaultMode": 0o777}},
                    ],
                    "containers": [{
                        "name": "backup-postgres",
                        "image": spec.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["sh", "-c", format!("/tmp/{BACKUP_SCRIPT}")],
                        "volumeMounts": [
                            {"name": "backup-volume", "mountPath": spec.backup.volume_mount},
                            mount("postgres-config", &format!("/tmp/{BACKUP_SCRIPT}"), BACKUP_SCRIPT),
                        ],
                        "env": env,
                    }],
                },
            }}},
        },
    })
}

/// Whether a JSON value holds something (not null, not an empty object or list).
fn has_content(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        Value::Array(list) => !list.is_empty(),
        _ => true,
    }
}
