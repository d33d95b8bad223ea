//! What a user of the local cluster does with a client: namespaces,
//! Secrets, PVCs, Kubegres clusters, KubegresRestores, and waiting on them.
//! Shared by the demo and the end-to-end tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use proto::KubegresRestore;
use serde_json::{Value, json};

use crate::pg::PgCluster;

/// The field manager of the demo and the tests.
pub const FIELD_MANAGER: &str = "kubegres-restore-e2e";

/// How often waits poll.
const POLL: Duration = Duration::from_millis(250);

pub use crate::deploy::create_namespace;

/// Creates an Opaque Secret with these string values.
pub async fn create_secret(client: &kube::Client, namespace: &str, name: &str, values: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let data: BTreeMap<String, String> = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&secret))
        .await
        .unwrap_or_else(|e| panic!("cannot create the Secret {namespace}/{name}: {e}"));
}

/// Creates a PVC (the process kubelet mounts `DIR/volumes/<namespace>/<name>`).
pub async fn create_pvc(client: &kube::Client, namespace: &str, name: &str) {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&pvc))
        .await
        .unwrap_or_else(|e| panic!("cannot create the PVC {namespace}/{name}: {e}"));
}

/// A Kubegres cluster as Kubegres's documentation writes one: its superuser
/// and replication passwords from the Secret `<name>-secret`
/// (`superUserPassword`, `replicationUserPassword`), which this creates with
/// `password`, and a backup PVC when `backup_pvc` is given.
pub async fn create_kubegres(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    replicas: i64,
    password: &str,
    backup_pvc: Option<&str>,
) {
    let secret = format!("{name}-secret");
    create_secret(
        client,
        namespace,
        &secret,
        &[("superUserPassword", password), ("replicationUserPassword", password)],
    )
    .await;
    let mut spec = json!({
        "replicas": replicas,
        "image": "postgres:16.1",
        "database": {"size": "200Mi"},
        // Small requests: the simulated node has the machine's 2 CPUs, and the
        // e2e tests run several clusters at once.
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        "env": [
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "superUserPassword"}}},
            {"name": "POSTGRES_REPLICATION_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": secret, "key": "replicationUserPassword"}}},
        ],
    });
    if let Some(pvc) = backup_pvc {
        spec["backup"] = json!({"schedule": "0 */1 * * *", "pvcName": pvc, "volumeMount": "/var/lib/backup"});
    }
    let kubegres = json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    });
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &crate::kubegres_sim::api_resource());
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&kubegres))
        .await
        .unwrap_or_else(|e| panic!("cannot create the Kubegres {namespace}/{name}: {e}"));
}

/// The Kubegres object, if it exists.
pub async fn get_kubegres(client: &kube::Client, namespace: &str, name: &str) -> Option<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &crate::kubegres_sim::api_resource());
    api.get_opt(name).await.unwrap_or_else(|e| panic!("cannot get the Kubegres {namespace}/{name}: {e}"))
}

/// Waits until the primary Pod of a Kubegres cluster is Ready; returns its IP.
pub async fn wait_for_primary(client: &kube::Client, namespace: &str, cluster: &str, timeout: Duration) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app={cluster},replicationRole=primary");
    let what = format!("the primary of Kubegres {namespace}/{cluster} to be Ready");
    crate::wait::until_ok(&what, timeout, || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
        match list.iter().find(|pod| is_ready(pod)).and_then(|pod| pod.status.as_ref()?.pod_ip.clone()) {
            Some(ip) => Ok(ip),
            None => Err(format!("{:?}", list.iter().map(|p| (p.name_any(), p.status.clone())).collect::<Vec<_>>())),
        }
    })
    .await
}

/// The primary of a Kubegres cluster, as a [`PgCluster`] the harness can
/// query and compare (at its Pod IP, port 5432).
pub async fn primary(client: &kube::Client, namespace: &str, cluster: &str, password: &str) -> PgCluster {
    let ip = wait_for_primary(client, namespace, cluster, Duration::from_secs(120)).await;
    PgCluster::connect_to(&ip, 5432, password)
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Creates a KubegresRestore from YAML (one document) in `namespace`.
pub async fn create_restore(client: &kube::Client, namespace: &str, yaml: &str) -> KubegresRestore {
    let mut value: Value =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not a KubegresRestore: {e}\n{yaml}"));
    value["metadata"]["namespace"] = json!(namespace);
    let restore: KubegresRestore =
        serde_json::from_value(value).unwrap_or_else(|e| panic!("not a KubegresRestore: {e}\n{yaml}"));
    let api: Api<KubegresRestore> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &restore)
        .await
        .unwrap_or_else(|e| panic!("cannot create the KubegresRestore {namespace}/{}: {e}", restore.name_any()))
}

/// Polls a KubegresRestore until `done` says so, calling `each` on every
/// version seen (for progress); panics with the last status on timeout.
pub async fn wait_restore(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    mut each: impl FnMut(&KubegresRestore),
    done: impl Fn(&KubegresRestore) -> bool,
) -> KubegresRestore {
    let api: Api<KubegresRestore> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut last_version = None;
    loop {
        let restore =
            api.get(name).await.unwrap_or_else(|e| panic!("cannot get KubegresRestore {namespace}/{name}: {e}"));
        if restore.meta().resource_version != last_version {
            last_version = restore.meta().resource_version.clone();
            each(&restore);
        }
        if done(&restore) {
            return restore;
        }
        assert!(
            Instant::now() < deadline,
            "KubegresRestore {namespace}/{name} did not get there within {timeout:?}; status: {}",
            serde_json::to_string_pretty(&restore.status).unwrap_or_default()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The phase as a string (`Pending` when there is no status yet).
pub fn phase(restore: &KubegresRestore) -> String {
    restore.status.as_ref().map(|s| format!("{:?}", s.phase())).unwrap_or_else(|| "Pending".to_string())
}

/// The condition `type_` of a restore as (status, reason, message).
pub fn condition(restore: &KubegresRestore, type_: &str) -> Option<(String, String, String)> {
    restore
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whether the restore reached a final phase.
pub fn finished(restore: &KubegresRestore) -> bool {
    matches!(phase(restore).as_str(), "Succeeded" | "Failed")
}

/// What a restore may leave behind in a namespace that only the test uses:
/// every Pod that Kubegres did not make (through its StatefulSets and its
/// backup CronJob's Jobs), and every
/// ServiceAccount (but `default`), Role and RoleBinding (nothing else creates them there).
pub async fn leftovers(client: &kube::Client, namespace: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods
        .list_metadata(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("cannot list the Pods in {namespace}: {e}"));
    let mut found: Vec<String> =
        listed.items.iter().filter(|pod| !kubegres_made(pod)).map(|pod| format!("Pod {}", pod.name_any())).collect();
    for (kind, listed) in [
        ("ServiceAccount", names::<ServiceAccount>(client, namespace).await),
        ("Role", names::<Role>(client, namespace).await),
        ("RoleBinding", names::<RoleBinding>(client, namespace).await),
    ] {
        // The ServiceAccount controller makes `default` in every namespace.
        let listed = listed.into_iter().filter(|(name, _)| !(kind == "ServiceAccount" && name == "default"));
        found.extend(listed.map(|(name, _)| format!("{kind} {name}")));
    }
    found
}

/// A Pod of a StatefulSet or a Job: what Kubegres's objects make.
fn kubegres_made(pod: &kube::core::PartialObjectMeta<Pod>) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && matches!(owner.kind.as_str(), "StatefulSet" | "Job"))
}

/// The names and labels of every object of a kind in a namespace.
async fn names<K>(client: &kube::Client, namespace: &str) -> Vec<(String, BTreeMap<String, String>)>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let listed = api
        .list_metadata(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("cannot list the {} in {namespace}: {e}", K::plural(&())));
    listed.items.into_iter().map(|object| (object.name_any(), object.labels().clone())).collect()
}

/// Starts a backup now, as `kubectl create job --from=cronjob/backup-<cluster>`
/// does: a Job `job` from the Kubegres backup CronJob's job template, owned
/// by the CronJob. Returns the Job's name.
///
/// # Panics
/// When the CronJob does not exist or the Job cannot be created.
pub async fn start_backup_job(client: &kube::Client, namespace: &str, cluster: &str, job: &str) -> String {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let cron_name = format!("{}{cluster}", crate::kubegres_sim::CRON_JOB_PREFIX);
    let cron = cron_jobs
        .get(&cron_name)
        .await
        .unwrap_or_else(|e| panic!("the Kubegres backup CronJob {namespace}/{cron_name} is not there: {e}"));
    let template = cron.spec.job_template.clone();
    let job_object = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": job, "namespace": namespace,
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default(),
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": cron_name,
                "uid": cron.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.spec,
    });
    let job_object: Job = serde_json::from_value(job_object).unwrap_or_else(|e| panic!("not a Job: {e}"));
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &job_object)
        .await
        .unwrap_or_else(|e| panic!("cannot create the backup Job {namespace}/{job}: {e}"));
    job.to_string()
}

/// Waits until a Job succeeded; `Err` with its status when it failed or
/// did not finish within `timeout`.
pub async fn wait_job(client: &kube::Client, namespace: &str, name: &str, timeout: Duration) -> Result<(), String> {
    use k8s_openapi::api::batch::v1::Job;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let job = jobs.get(name).await.map_err(|e| format!("cannot read the Job {namespace}/{name}: {e}"))?;
        let status = job.status.clone().unwrap_or_default();
        let condition =
            |type_: &str| status.conditions.iter().flatten().any(|c| c.type_ == type_ && c.status == "True");
        if condition("Complete") {
            return Ok(());
        }
        if condition("Failed") || Instant::now() >= deadline {
            return Err(format!(
                "the Job {namespace}/{name} did not succeed within {timeout:?}: {}",
                serde_json::to_string(&status).unwrap_or_default()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a Kubegres cluster has `spec.replicas - 1` Ready replicas and
/// each has replayed the primary's WAL up to now, so that a backup from the
/// replica Service (as Kubegres's CronJob takes it) holds what the primary
/// has. Returns the replicas' IPs.
///
/// # Panics
/// When that does not happen within `timeout`.
pub async fn wait_for_replicas(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
    password: &str,
    timeout: Duration,
) -> Vec<String> {
    let primary = primary(client, namespace, cluster, password).await;
    let spec_replicas = get_kubegres(client, namespace, cluster)
        .await
        .and_then(|k| k.data.pointer("/spec/replicas").and_then(Value::as_i64))
        .unwrap_or(1);
    let wanted = usize::try_from(spec_replicas - 1).unwrap_or(0);
    let lsn = primary.query("postgres", "SELECT pg_current_wal_lsn()").remove(0).remove(0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app={cluster},replicationRole=replica");
    let deadline = Instant::now() + timeout;
    loop {
        let listed = pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
        let ips: Vec<String> =
            listed.iter().filter(|pod| is_ready(pod)).filter_map(|pod| pod.status.as_ref()?.pod_ip.clone()).collect();
        let caught_up = ips.len() == wanted
            && ips.iter().all(|ip| {
                let replica = PgCluster::connect_to(ip, 5432, password);
                let sql = format!("SELECT 'caught up' WHERE pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
                let out = replica.try_psql("postgres", &sql);
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("caught up")
            });
        if caught_up {
            return ips;
        }
        assert!(
            Instant::now() < deadline,
            "Kubegres {namespace}/{cluster}: {wanted} replicas did not catch up with the primary within {timeout:?} \
             ({} Ready)",
            ips.len()
        );
        tokio::time::sleep(POLL).await;
    }
}
