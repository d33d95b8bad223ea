//! What one pass of the simulated Kubegres reads, as Kubegres's
//! `ResourcesStates` does: its StatefulSets and Services (found by owner,
//! by the Kubegres's name), its Pods (by label `app`), the ConfigMaps, the
//! StorageClass, the backup PVC and CronJob.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};

use super::base_config::{BASE_CONFIG_MAP, OVERRIDABLE};
use super::spec::{Spec, Status};
use super::templates::CRON_JOB_PREFIX;
use super::{Ctx, SimError, api};

/// One instance: a StatefulSet `<name>-<index>` and its Pod.
#[derive(Debug, Clone)]
pub struct Instance {
    pub index: i64,
    pub primary: bool,
    /// `status.readyReplicas > 0` (Kubegres's "StatefulSet is ready").
    pub ready: bool,
    /// The Pod's first container is Ready and not stuck.
    pub pod_ready: bool,
    pub set: StatefulSet,
}

#[derive(Debug)]
pub struct Observed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub annotations: BTreeMap<String, String>,
    pub spec: Spec,
    pub status: Status,
    pub base_config: bool,
    /// The keys the custom config overrides, when `spec.customConfig` names a deployed ConfigMap.
    pub custom_keys: Option<Vec<String>>,
    pub storage_class: Option<StorageClass>,
    pub backup_pvc: bool,
    pub instances: Vec<Instance>,
    pub primary_service: bool,
    pub replica_service: bool,
    pub cron_job: Option<CronJob>,
}

impl Observed {
    pub fn primary(&self) -> Option<&Instance> {
        self.instances.iter().find(|i| i.primary)
    }

    pub fn primary_ready(&self) -> bool {
        self.primary().is_some_and(|p| p.ready)
    }

    /// Replicas by instance index.
    pub fn replicas(&self) -> Vec<&Instance> {
        let mut replicas: Vec<&Instance> = self.instances.iter().filter(|i| !i.primary).collect();
        replicas.sort_by_key(|i| i.index);
        replicas
    }

    pub fn replica(&self, index: i64) -> Option<&Instance> {
        self.instances.iter().find(|i| !i.primary && i.index == index)
    }
}

/// Whether `kubegres` (by name, as Kubegres's owner index) controls this object.
fn controlled_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, kubegres: &str) -> bool {
    meta.owner_references.iter().flatten().any(|owner| {
        owner.controller == Some(true)
            && owner.kind == "Kubegres"
            && owner.api_version == "kubegres.reactive-tech.io/v1"
            && owner.name == kubegres
    })
}

fn pod_ready(pod: &Pod) -> bool {
    let Some(first) = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()) else {
        return false;
    };
    let stuck = first
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .is_some_and(|reason| reason == "CrashLoopBackOff" || reason == "Error");
    first.ready && !stuck
}

pub async fn observe(ctx: &Ctx, cluster: &DynamicObject) -> Result<Observed, SimError> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let spec: Spec =
        serde_json::from_value(cluster.data.get("spec").cloned().unwrap_or_default()).map_err(SimError::Spec)?;
    let status: Status =
        serde_json::from_value(cluster.data.get("status").cloned().unwrap_or_default()).unwrap_or_default();
    let client = &ctx.client;

    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let base_config = maps.get_opt(BASE_CONFIG_MAP).await.map_err(api("read the base ConfigMap"))?.is_some();
    let custom_keys = if spec.has_custom_config() {
        let custom = maps.get_opt(&spec.custom_config).await.map_err(api("read the custom ConfigMap"))?;
        custom.map(|map| {
            let data = map.data.unwrap_or_default();
            OVERRIDABLE
                .iter()
                .filter(|key| data.get(**key).is_some_and(|v| !v.is_empty()))
                .map(|k| k.to_string())
                .collect()
        })
    } else {
        None
    };
    let storage_class = match spec.storage_class() {
        "" => None,
        class => Api::<StorageClass>::all(client.clone()).get_opt(class).await.map_err(api("read the StorageClass"))?,
    };
    let backup_pvc = if spec.backup.pvc_name.is_empty() {
        false
    } else {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
        claims.get_opt(&spec.backup.pvc_name).await.map_err(api("read the backup PVC"))?.is_some()
    };

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let owned: Vec<StatefulSet> = sets
        .list(&ListParams::default())
        .await
        .map_err(api("list the StatefulSets"))?
        .items
        .into_iter()
        .filter(|set| controlled_by(&set.metadata, &name))
        .collect();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .map_err(api("list the Pods"))?
        .items;
    let instances = owned
        .into_iter()
        .filter_map(|set| {
            let labels = set.spec.template.metadata.as_ref()?.labels.clone().unwrap_or_default();
            let index: i64 = labels.get("index")?.parse().ok()?;
            let primary = labels.get("replicationRole").is_some_and(|r| r == "primary");
            let ready = set.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) > 0;
            let pod_ready = pods
                .iter()
                .filter(|pod| pod.labels().get("index").and_then(|i| i.parse::<i64>().ok()) == Some(index))
                .any(pod_ready);
            Some(Instance { index, primary, ready, pod_ready, set })
        })
        .collect();

    let services: Vec<Service> = Api::<Service>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(api("list the Services"))?
        .items
        .into_iter()
        .filter(|service| controlled_by(&service.metadata, &name))
        .collect();
    let primary_service = services.iter().any(|s| s.labels().get("replicationRole").is_some_and(|r| r == "primary"));
    let replica_service = services.iter().any(|s| s.labels().get("replicationRole").is_none_or(|r| r != "primary"));

    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &namespace);
    let cron_job =
        cron_jobs.get_opt(&format!("{CRON_JOB_PREFIX}{name}")).await.map_err(api("read the backup CronJob"))?;

    Ok(Observed {
        uid: cluster.uid().unwrap_or_default(),
        annotations: cluster.annotations().clone(),
        name,
        namespace,
        spec,
        status,
        base_config,
        custom_keys,
        storage_class,
        backup_pvc,
        instances,
        primary_service,
        replica_service,
        cron_job,
    })
}
