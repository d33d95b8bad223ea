//! The Kubegres spec and status as Kubegres v1.19 reads and writes them, the
//! defaults it writes back into a spec, and its spec check (the refusals,
//! with Kubegres's own messages).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::base_config::BASE_CONFIG_MAP;

/// Kubegres's defaults.
pub const DEFAULT_PORT: i64 = 5432;
pub const DEFAULT_VOLUME_MOUNT: &str = "/var/lib/postgresql/data";
/// `PGDATA` is this folder under `spec.database.volumeMount`.
pub const DATABASE_FOLDER: &str = "pgdata";
pub const SUPERUSER_PASSWORD_ENV: &str = "POSTGRES_PASSWORD";
pub const REPLICATION_PASSWORD_ENV: &str = "POSTGRES_REPLICATION_PASSWORD";
/// The annotation that marks the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// `spec`, the fields Kubegres reads (others are kept as JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    pub replicas: Option<i64>,
    pub image: String,
    pub port: i64,
    pub custom_config: String,
    pub database: Database,
    pub failover: Failover,
    pub backup: Backup,
    pub env: Vec<Value>,
    pub scheduler: Value,
    pub resources: Value,
    pub volume: Value,
    pub security_context: Value,
    pub container_security_context: Value,
    pub probe: Value,
    pub service_account_name: String,
    pub image_pull_secrets: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Database {
    pub size: String,
    pub volume_mount: String,
    pub storage_class_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Failover {
    pub is_disabled: bool,
    pub promote_pod: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Backup {
    pub schedule: String,
    pub volume_mount: String,
    pub pvc_name: String,
}

impl Spec {
    pub fn replicas(&self) -> i64 {
        self.replicas.unwrap_or(0)
    }

    /// The spec env entry `name`, as Kubegres's `getEnvVar` finds it.
    pub fn env_var(&self, name: &str) -> Option<&Value> {
        self.env.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(name))
    }

    pub fn storage_class(&self) -> &str {
        self.database.storage_class_name.as_deref().unwrap_or_default()
    }

    /// Whether a backup is configured (Kubegres: a schedule is set).
    pub fn backup_configured(&self) -> bool {
        !self.backup.schedule.is_empty()
    }

    /// Whether `spec.customConfig` names a ConfigMap other than the base one.
    pub fn has_custom_config(&self) -> bool {
        !self.custom_config.is_empty() && self.custom_config != BASE_CONFIG_MAP
    }
}

/// A blocking operation in `status` (only one at a time per Kubegres).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Operation {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operation_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub step_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub time_out_epoc_in_seconds: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub has_timed_out: bool,
    pub stateful_set_operation: StatefulSetOperation,
    pub stateful_set_spec_update_operation: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetOperation {
    #[serde(skip_serializing_if = "is_zero")]
    pub instance_index: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `status`, as Kubegres writes it (Go's encoding: zero numbers and empty
/// strings left out, the operation objects always present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    #[serde(skip_serializing_if = "is_zero")]
    pub last_created_instance_index: i64,
    pub blocking_operation: Operation,
    pub previous_blocking_operation: Operation,
    #[serde(skip_serializing_if = "is_zero")]
    pub enforced_replicas: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl Operation {
    pub fn is_active(&self) -> bool {
        !self.operation_id.is_empty()
    }
}

/// The defaults Kubegres writes into an incomplete spec (a merge patch of
/// `spec`), or `None` when nothing is missing. `default_class` is the
/// cluster's default StorageClass; without one a spec lacking
/// `storageClassName` is refused with Kubegres's error.
pub fn defaults(spec: &Spec, name: &str, default_class: Option<&str>) -> Result<Option<Value>, String> {
    let mut patch = serde_json::Map::new();
    if spec.port <= 0 {
        patch.insert("port".into(), json!(DEFAULT_PORT));
    }
    let mut database = serde_json::Map::new();
    if spec.database.volume_mount.is_empty() {
        database.insert("volumeMount".into(), json!(DEFAULT_VOLUME_MOUNT));
    }
    if spec.custom_config.is_empty() {
        patch.insert("customConfig".into(), json!(BASE_CONFIG_MAP));
    }
    if spec.storage_class().is_empty() {
        let Some(class) = default_class else {
            return Err("Unable to retrieve the name of the default storage class in the Kubernetes cluster.".into());
        };
        database.insert("storageClassName".into(), json!(class));
    }
    if !database.is_empty() {
        patch.insert("database".into(), Value::Object(database));
    }
    if spec.scheduler.get("affinity").is_none_or(Value::is_null) {
        patch.insert(
            "scheduler".into(),
            json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [name]}]},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }]}}}),
        );
    }
    Ok((!patch.is_empty()).then(|| json!({ "spec": patch })))
}

/// What the spec check sees besides the spec.
#[derive(Debug, Default)]
pub struct Facts {
    pub storage_class_deployed: bool,
    pub storage_class_expands: bool,
    pub custom_config_deployed: bool,
    pub backup_pvc_deployed: bool,
    /// The primary's Pod is Ready, with the primary StatefulSet's
    /// (volumeMount, storageClassName, size).
    pub primary: Option<(String, String, String)>,
}

/// The outcome of the spec check: the last fatal message (Kubegres reports
/// each as an Event and keeps the last), and the rollbacks it writes into
/// the spec (a merge patch) for fields that cannot change once Pods exist.
#[derive(Debug, Default)]
pub struct Check {
    pub fatal: Vec<String>,
    pub rollback: serde_json::Map<String, Value>,
}

fn undefined(field: &str) -> String {
    format!(
        "In the Resources Spec the value of '{field}' is undefined. Please set a value otherwise this operator cannot work correctly."
    )
}

fn cannot_change(field: &str, current: &str, new: &str, reason: &str) -> String {
    format!(
        "In the Resources Spec the value of '{field}' cannot be changed from '{current}' to '{new}' after Pods were created. \
         {reason} We roll-backed Kubegres spec to the currently working value '{current}'. If you know what you are doing, \
         you can manually update that spec in every StatefulSet of your PostgreSql cluster and then Kubegres will \
         automatically update itself."
    )
}

/// Kubegres's `SpecChecker.CheckSpec`.
pub fn check(spec: &Spec, facts: &Facts) -> Check {
    let mut out = Check::default();
    const INCONSISTENT: &str = "Otherwise, the cluster of PostgreSql servers risk of being inconsistent.";
    if let Some((mount, class, size)) = &facts.primary {
        let mut database = serde_json::Map::new();
        if &spec.database.volume_mount != mount {
            out.fatal.push(cannot_change(
                "spec.database.volumeMount",
                mount,
                &spec.database.volume_mount,
                INCONSISTENT,
            ));
            database.insert("volumeMount".into(), json!(mount));
        }
        if spec.storage_class() != class {
            out.fatal.push(cannot_change("spec.database.storageClassName", class, spec.storage_class(), INCONSISTENT));
            database.insert("storageClassName".into(), json!(class));
        }
        if &spec.database.size != size {
            let reason = if facts.storage_class_expands {
                "The database size cannot be modified after the creation of the Postgres cluster. We are rolling back that value to its previous value."
            } else {
                "The StorageClass does not allow volume expansion. The option AllowVolumeExpansion is set to false."
            };
            out.fatal.push(cannot_change("spec.database.size", size, &spec.database.size, reason));
            database.insert("size".into(), json!(size));
        }
        if !database.is_empty() {
            out.rollback.insert("database".into(), Value::Object(database));
            return out;
        }
    }
    if !facts.storage_class_deployed {
        out.fatal.push(
            "In the Resources Spec the value of 'spec.database.storageClassName' has a StorageClass name which is not deployed. \
             Please deploy this StorageClass, otherwise this operator cannot work correctly."
                .into(),
        );
    }
    if spec.database.size.is_empty() {
        out.fatal.push(undefined("spec.database.size"));
    }
    if spec.has_custom_config() && !facts.custom_config_deployed {
        out.fatal.push(
            "In the Resources Spec the value of 'spec.customConfig' has a configMap name which is not deployed. \
             Please deploy this configMap otherwise this operator cannot work correctly."
                .into(),
        );
    }
    if spec.env_var(SUPERUSER_PASSWORD_ENV).is_none() {
        out.fatal.push(undefined("spec.env.POSTGRES_PASSWORD"));
    }
    if spec.env_var(REPLICATION_PASSWORD_ENV).is_none() {
        out.fatal.push(undefined("spec.env.POSTGRES_REPLICATION_PASSWORD"));
    }
    if spec.replicas() <= 0 {
        out.fatal.push(undefined("spec.replicas"));
    }
    if spec.image.is_empty() {
        out.fatal.push(undefined("spec.image"));
    }
    if spec.backup_configured() {
        if spec.backup.volume_mount.is_empty() {
            out.fatal.push(undefined("spec.Backup.VolumeMount"));
        }
        if spec.backup.pvc_name.is_empty() {
            out.fatal.push(undefined("spec.Backup.PvcName"));
        } else if !facts.backup_pvc_deployed {
            out.fatal.push(
                "In the Resources Spec the value of 'spec.Backup.PvcName' has a PersistentVolumeClaim name which is not deployed. \
                 Please deploy this PersistentVolumeClaim, otherwise this operator cannot work correctly."
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: Value) -> Spec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_fill_what_is_missing_and_need_a_default_class() {
        let bare = spec(json!({"replicas": 1, "image": "postgres:16.1", "database": {"size": "1Gi"}}));
        let patch = defaults(&bare, "db", Some("standard")).unwrap().unwrap();
        assert_eq!(patch["spec"]["port"], json!(5432));
        assert_eq!(patch["spec"]["customConfig"], json!("base-kubegres-config"));
        assert_eq!(
            patch["spec"]["database"],
            json!({"volumeMount": DEFAULT_VOLUME_MOUNT, "storageClassName": "standard"})
        );
        assert_eq!(
            patch["spec"]["scheduler"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                [0]["podAffinityTerm"]["labelSelector"]["matchExpressions"][0]["values"],
            json!(["db"])
        );
        let error = defaults(&bare, "db", None).unwrap_err();
        assert!(error.contains("default storage class"), "{error}");
    }

    #[test]
    fn the_check_refuses_missing_passwords_and_rolls_back_the_size() {
        let incomplete = spec(json!({"replicas": 0, "image": "", "database": {"size": ""}}));
        let facts = Facts { storage_class_deployed: true, ..Facts::default() };
        let check = check(&incomplete, &facts);
        for field in ["spec.database.size", "spec.env.POSTGRES_PASSWORD", "spec.replicas", "spec.image"] {
            assert!(check.fatal.iter().any(|m| m.contains(&format!("'{field}' is undefined"))), "{:?}", check.fatal);
        }

        let resized = spec(json!({"replicas": 1, "image": "postgres", "database": {
            "size": "2Gi", "volumeMount": DEFAULT_VOLUME_MOUNT, "storageClassName": "standard"}}));
        let facts = Facts {
            storage_class_deployed: true,
            primary: Some((DEFAULT_VOLUME_MOUNT.into(), "standard".into(), "1Gi".into())),
            ..Facts::default()
        };
        let check = super::check(&resized, &facts);
        assert_eq!(check.rollback["database"], json!({"size": "1Gi"}));
        assert!(
            check.fatal[0].contains("'spec.database.size' cannot be changed from '1Gi' to '2Gi'"),
            "{:?}",
            check.fatal
        );
    }
}
