//! A SIMULATED Kubegres controller, enough for the operator to behave as it
//! would with the real one (github.com/reactive-tech/kubegres).
//!
//! For every `Kubegres` object it keeps, level-triggered:
//! - the primary Pod `<name>-1-0`, with Kubegres's labels (`app`, `index`,
//!   `replicationRole: primary`), its image, port 5432 named `postgres`, the
//!   spec's env plus `PGDATA` and `POD_IP`, the spec's resources, and its
//!   data directory mounted at `spec.database.volumeMount`;
//! - the Service `<name>` selecting the primary, and `<name>-replica` when
//!   `spec.replicas > 1`;
//! - `status.enforcedReplicas`.
//!
//! What differs from the real Kubegres, on purpose:
//! - it creates the Pod directly, not through a StatefulSet (no
//!   controller-manager runs here), and recreates it when it disappears;
//! - replicas are not run: the `-replica` Service exists but selects no Pod;
//! - the data volume is the PVC `postgres-db-<name>-1-0`, created as the
//!   StatefulSet's claim template would and, as with Kubegres, kept when
//!   the cluster is deleted; the Pod waits while that PVC is being deleted;
//! - no failover, backups CronJob or `base-kubegres-config` ConfigMap;
//! - there is no garbage collector, so it deletes the Pod and Services of a
//!   deleted Kubegres itself (they carry owner references all the same).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, Pod, PodSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The label every child of a simulated Kubegres carries (besides Kubegres's
/// own), so the controller finds its children.
pub const SIMULATED_BY_LABEL: &str = "kubegres-restore.tests/simulated-by";

/// How often the whole state is reconciled even without a watch event.
const RESYNC: Duration = Duration::from_secs(2);

/// The default data mount of a Kubegres Pod.
const DEFAULT_VOLUME_MOUNT: &str = "/var/lib/postgresql/data";

/// The field manager of the simulated controller.
const FIELD_MANAGER: &str = "kubegres-simulated";

/// The simulated Kubegres controller, running until dropped or stopped.
pub struct KubegresSim {
    task: JoinHandle<()>,
}

impl KubegresSim {
    /// Starts the controller with `client` (the real Kubegres runs with its
    /// own ClusterRole; the local cluster gives it the admin's).
    pub fn start(client: kube::Client) -> KubegresSim {
        KubegresSim { task: tokio::spawn(run(client)) }
    }

    /// Stops the controller (the Pods it made are the kubelet's to stop).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for KubegresSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Kubegres resource.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubegres.reactive-tech.io", "v1", "Kubegres"), "kubegres")
}

async fn run(client: kube::Client) {
    let wake = std::sync::Arc::new(Notify::new());
    let kubegres: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource());
    let pods: Api<Pod> = Api::all(client.clone());
    let selector = watcher::Config::default().labels(SIMULATED_BY_LABEL);
    let kubegres_wake = wake.clone();
    let kubegres_events = watcher(kubegres, watcher::Config::default()).for_each(move |_| {
        kubegres_wake.notify_one();
        futures::future::ready(())
    });
    let pods_wake = wake.clone();
    let pod_events = watcher(pods, selector).for_each(move |_| {
        pods_wake.notify_one();
        futures::future::ready(())
    });
    let resync = async {
        loop {
            if let Err(error) = sync(&client).await {
                tracing::warn!("simulated Kubegres: {error}");
            }
            let _ = tokio::time::timeout(RESYNC, wake.notified()).await;
        }
    };
    // One task, so that aborting it stops the watches too.
    tokio::select! {
        _ = kubegres_events => {}
        _ = pod_events => {}
        _ = resync => {}
    }
}

/// One level-triggered pass over every Kubegres and every simulated child.
async fn sync(client: &kube::Client) -> Result<(), kube::Error> {
    let kubegres: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource());
    let clusters = kubegres.list(&ListParams::default()).await?.items;
    let live: BTreeSet<String> =
        clusters.iter().filter(|c| c.metadata.deletion_timestamp.is_none()).filter_map(|c| c.uid()).collect();
    for cluster in clusters.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        if let Err(error) = reconcile(client, cluster).await {
            tracing::warn!(
                "simulated Kubegres {}/{}: {error}",
                cluster.namespace().unwrap_or_default(),
                cluster.name_any()
            );
        }
    }
    // The garbage collector's part: children whose Kubegres is gone.
    let params = ListParams::default().labels(SIMULATED_BY_LABEL);
    for pod in Api::<Pod>::all(client.clone()).list(&params).await?.items {
        if orphaned(&pod.metadata, &live) && pod.metadata.deletion_timestamp.is_none() {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            ignore_not_found(api.delete(&pod.name_any(), &DeleteParams::default()).await)?;
        }
    }
    for service in Api::<Service>::all(client.clone()).list(&params).await?.items {
        if orphaned(&service.metadata, &live) {
            let api: Api<Service> = Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
            ignore_not_found(api.delete(&service.name_any(), &DeleteParams::default()).await)?;
        }
    }
    Ok(())
}

fn orphaned(meta: &ObjectMeta, live: &BTreeSet<String>) -> bool {
    !meta.owner_references.iter().flatten().any(|owner| owner.kind == "Kubegres" && live.contains(&owner.uid))
}

async fn reconcile(client: &kube::Client, cluster: &DynamicObject) -> Result<(), kube::Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let spec = cluster.data.get("spec").cloned().unwrap_or(Value::Null);
    let replicas = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
    let owner = owner_reference(cluster);

    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let primary = service(&name, &namespace, &name, "primary", &owner);
    services.patch(&name, &apply, &Patch::Apply(&primary)).await?;
    let replica_name = format!("{name}-replica");
    if replicas > 1 {
        let replica = service(&replica_name, &namespace, &name, "replica", &owner);
        services.patch(&replica_name, &apply, &Patch::Apply(&replica)).await?;
    } else {
        ignore_not_found(services.delete(&replica_name, &DeleteParams::default()).await)?;
    }

    // The StatefulSet's claim: created when missing, and a Pod only once it
    // is not being deleted (a recreated cluster must not start on it).
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let claim_name = data_volume(&name);
    match claims.get_opt(&claim_name).await? {
        Some(claim) if claim.metadata.deletion_timestamp.is_some() => return Ok(()),
        Some(_) => {}
        None => match claims.create(&PostParams::default(), &data_claim(&name, &namespace, &spec)).await {
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Ok(_) => {}
            Err(error) => return Err(error),
        },
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod_name = format!("{name}-1-0");
    let current = pods.get_opt(&pod_name).await?;
    if current.is_none() {
        match pods.create(&PostParams::default(), &primary_pod(&name, &namespace, &spec, &owner)).await {
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Ok(_) => {}
            Err(error) => return Err(error),
        }
    }

    let kubegres: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &api_resource());
    if cluster.data.pointer("/status/enforcedReplicas").and_then(Value::as_i64) != Some(replicas) {
        let status = json!({"status": {"enforcedReplicas": replicas, "lastCreatedInstanceIndex": 1}});
        kubegres.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    }
    Ok(())
}

fn owner_reference(cluster: &DynamicObject) -> OwnerReference {
    OwnerReference {
        api_version: "kubegres.reactive-tech.io/v1".to_string(),
        kind: "Kubegres".to_string(),
        name: cluster.name_any(),
        uid: cluster.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn labels(cluster: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), cluster.to_string()),
        ("replicationRole".to_string(), role.to_string()),
        (SIMULATED_BY_LABEL.to_string(), "kubegres".to_string()),
    ])
}

fn service(name: &str, namespace: &str, cluster: &str, role: &str, owner: &OwnerReference) -> Service {
    let mut selector = labels(cluster, role);
    selector.remove(SIMULATED_BY_LABEL);
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels(cluster, role)),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("postgres".to_string()),
                port: 5432,
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn primary_pod(cluster: &str, namespace: &str, spec: &Value, owner: &OwnerReference) -> Pod {
    let image = spec.get("image").and_then(Value::as_str).unwrap_or("postgres:16").to_string();
    let mount = spec.pointer("/database/volumeMount").and_then(Value::as_str).unwrap_or(DEFAULT_VOLUME_MOUNT);
    let mut env: Vec<EnvVar> =
        spec.get("env").cloned().and_then(|env| serde_json::from_value(env).ok()).unwrap_or_default();
    env.push(EnvVar { name: "PGDATA".to_string(), value: Some(format!("{mount}/pgdata")), ..Default::default() });
    env.push(EnvVar {
        name: "POD_IP".to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".to_string(), api_version: None }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let resources: Option<ResourceRequirements> =
        spec.get("resources").cloned().and_then(|resources| serde_json::from_value(resources).ok());
    let mut labels = labels(cluster, "primary");
    labels.insert("index".to_string(), "1".to_string());
    labels.insert("statefulset.kubernetes.io/pod-name".to_string(), format!("{cluster}-1-0"));
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{cluster}-1-0")),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: format!("{cluster}-1"),
                image: Some(image),
                ports: Some(vec![ContainerPort {
                    name: Some("postgres".to_string()),
                    container_port: 5432,
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                }]),
                env: Some(env),
                resources,
                volume_mounts: Some(vec![VolumeMount {
                    name: "postgres-db".to_string(),
                    mount_path: mount.to_string(),
                    ..Default::default()
                }]),
                // Kubegres's own readiness probe.
                readiness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(vec![
                            "sh".to_string(),
                            "-c".to_string(),
                            "exec pg_isready -U postgres -h $POD_IP -p 5432".to_string(),
                        ]),
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "postgres-db".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: data_volume(cluster),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(10),
            ..Default::default()
        }),
        status: None,
    }
}

/// The data volume of a cluster's first instance, as Kubegres's StatefulSet
/// `<name>-1` claims it.
pub fn data_volume(cluster: &str) -> String {
    format!("postgres-db-{cluster}-1-0")
}

fn data_claim(cluster: &str, namespace: &str, spec: &Value) -> PersistentVolumeClaim {
    let size = spec.pointer("/database/size").and_then(Value::as_str).unwrap_or("1Gi");
    let mut labels = labels(cluster, "primary");
    labels.remove("replicationRole");
    labels.insert("index".to_string(), "1".to_string());
    serde_json::from_value(json!({
        "metadata": {"name": data_volume(cluster), "namespace": namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }))
    .expect("a valid PersistentVolumeClaim")
}

fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}
