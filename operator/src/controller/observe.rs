//! The observe step: read what [`decide`](crate::decide::decide) needs from
//! the API server. The restore itself is read fresh (not from the watch
//! cache) so that the decision never acts on a status older than the
//! operator's own last write.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use proto::KubegresRestore;
use proto::crd::{ClusterSpecSource, ResolvedTarget};

use super::Context;
use crate::decide::{
    AGENT_CONTAINER, ATTEMPT_LABEL, Child, Children, DataVolume, Observed, PodPhase, RESTORE_LABEL, RESTORE_UID_LABEL,
    RestorePod, TargetCluster, children_name, owned_by, pod_name,
};
use crate::error::{During as _, Error};
use crate::kubegres;

/// Reads the world of the restore `namespace/name`; `None` when the restore
/// is gone.
pub async fn observe(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Observed>, Error> {
    let client = &ctx.client;
    let restores: Api<KubegresRestore> = Api::namespaced(client.clone(), namespace);
    let Some(restore) = restores.get_opt(name).await.during(|| format!("get KubegresRestore {namespace}/{name}"))?
    else {
        return Ok(None);
    };

    let (target_name, copy_from) = match restore.spec.target() {
        Ok(ResolvedTarget::NewCluster { name, spec, .. }) => (
            Some(name.to_string()),
            match spec {
                ClusterSpecSource::CopyFrom(from) => Some(from.to_string()),
                ClusterSpecSource::Inline(_) => None,
            },
        ),
        Ok(ResolvedTarget::Database(database)) => (Some(database.cluster_name.clone()), None),
        Ok(ResolvedTarget::Postgres(_)) | Err(_) => (None, None),
    };
    let kubegres: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kubegres::api_resource());
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);

    // The reads are independent: sent together, a reconcile waits for the
    // slowest instead of their sum.
    let target = async {
        match &target_name {
            Some(cluster) => observe_cluster(ctx, &kubegres, &pods, namespace, cluster, &restore).await,
            None => Ok(TargetCluster::default()),
        }
    };
    let copy_from_spec = async {
        match &copy_from {
            Some(from) => Ok(kubegres
                .get_opt(from)
                .await
                .during(|| format!("get Kubegres {namespace}/{from}"))?
                .and_then(|object| kubegres::spec(&object).cloned())),
            None => Ok(None),
        }
    };
    let selector = format!("{RESTORE_LABEL}={name}");
    let restore_pods = async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .during(|| format!("list the restore Pods of {namespace}/{name}"))?;
        Ok::<_, Error>(
            list.items
                .iter()
                .filter(|pod| owned_by(pod.metadata.owner_references.as_deref(), &restore))
                .map(restore_pod)
                .collect::<Vec<_>>(),
        )
    };
    // The current attempt's Pod name, held by an object that is not ours?
    let attempt = restore.status.as_ref().and_then(|status| status.attempts).unwrap_or(0).max(1);
    let current_pod = pod_name(name, attempt);
    let foreign_pod = async {
        let found =
            pods.get_metadata_opt(&current_pod).await.during(|| format!("get Pod {namespace}/{current_pod}"))?;
        Ok::<_, Error>(
            found
                .filter(|pod| !owned_by(pod.metadata.owner_references.as_deref(), &restore))
                .map(|_| current_pod.clone()),
        )
    };
    let child = children_name(name);
    let (target, copy_from_spec, restore_pods, foreign_pod, service_account, role, role_binding) = tokio::try_join!(
        target,
        copy_from_spec,
        restore_pods,
        foreign_pod,
        child_of::<ServiceAccount>(ctx, namespace, &child, &restore),
        child_of::<Role>(ctx, namespace, &child, &restore),
        child_of::<RoleBinding>(ctx, namespace, &child, &restore),
    )?;
    let children = Children { service_account, role, role_binding };

    Ok(Some(Observed {
        jitter_seed: jitter_seed(&restore),
        restore,
        now: Timestamp::now(),
        target,
        copy_from_spec,
        pods: restore_pods,
        foreign_pod,
        children,
        agent_image: ctx.config.agent_image.clone(),
        allowed_images: ctx.config.allowed_agent_images.clone(),
    }))
}

async fn observe_cluster(
    ctx: &Context,
    kubegres: &Api<DynamicObject>,
    pods: &Api<Pod>,
    namespace: &str,
    cluster: &str,
    restore: &KubegresRestore,
) -> Result<TargetCluster, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let volumes = async {
        // By name, not by label: a claim of that name is what a new cluster's
        // StatefulSet would bind to, whatever labels it carries.
        let listed =
            claims.list_metadata(&ListParams::default()).await.during(|| format!("list the PVCs of {namespace}"))?;
        Ok::<_, Error>(
            listed
                .items
                .iter()
                .filter(|claim| kubegres::is_data_volume(cluster, &claim.name_any()))
                .map(|claim| data_volume(cluster, &claim.metadata))
                .collect::<Vec<_>>(),
        )
    };
    let object = async {
        match kubegres.get_opt(cluster).await {
            Ok(object) => Ok((object, false)),
            Err(error) if crate::error::is_not_found(&error) => Ok((None, true)),
            Err(error) => Err(error).during(|| format!("get Kubegres {namespace}/{cluster}")),
        }
    };
    let ((object, _), volumes) = tokio::try_join!(object, volumes)?;
    let Some(object) = object else {
        return Ok(TargetCluster {
            api_missing: !kubegres::api_installed(&ctx.client).await?,
            volumes,
            ..Default::default()
        });
    };
    let primaries = pods
        .list(&ListParams::default().labels(&kubegres::primary_selector(cluster)))
        .await
        .during(|| format!("list the primary Pod of Kubegres {namespace}/{cluster}"))?;
    // A primary older than the cluster object is the last incarnation's,
    // still Ready while it terminates (a retry recreates the cluster under
    // the same name): it must not start the next attempt.
    let current: Vec<&Pod> = primaries.items.iter().filter(|pod| !older_than(pod, &object)).collect();
    let primary_ready = current.iter().any(|pod| is_ready(pod));
    let ready_primaries: Vec<&Pod> = current.iter().copied().filter(|pod| is_ready(pod)).collect();
    let service_ready = primary_ready && service_ready(ctx, namespace, cluster, &ready_primaries).await?;
    let managed_by_us = !names_uid(restore).is_empty()
        && object.labels().get(RESTORE_UID_LABEL).map(String::as_str) == Some(names_uid(restore));
    Ok(TargetCluster {
        api_missing: false,
        exists: true,
        uid: object.metadata.uid.clone(),
        created: object.metadata.creation_timestamp.as_ref().map(|time| time.0),
        deleted: object.meta().deletion_timestamp.is_some(),
        managed_by_us,
        attempt: managed_by_us.then(|| object.labels().get(ATTEMPT_LABEL).and_then(|a| a.parse().ok())).flatten(),
        primary_ready,
        service_ready,
        waiting_for: waiting_for(cluster, &current, primary_ready),
        spec: kubegres::spec(&object).cloned(),
        volumes,
    })
}

fn names_uid(restore: &KubegresRestore) -> &str {
    restore.metadata.uid.as_deref().unwrap_or_default()
}

fn data_volume(cluster: &str, meta: &ObjectMeta) -> DataVolume {
    DataVolume {
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        created: meta.creation_timestamp.as_ref().map(|time| time.0),
        cluster_label: meta.labels.as_ref().and_then(|labels| labels.get(kubegres::APP_LABEL)).map(String::as_str)
            == Some(cluster),
        deleting: meta.deletion_timestamp.is_some(),
    }
}

/// Whether the primary Service `<cluster>` exists and routes to a ready
/// primary: one of its EndpointSlices has a ready endpoint, or (where no
/// EndpointSlice controller publishes one yet) its selector selects one of
/// the Ready primary Pods, which is what that controller would publish. The
/// agent's `--connect-wait` rides out the moment until DNS follows.
async fn service_ready(ctx: &Context, namespace: &str, cluster: &str, ready_primaries: &[&Pod]) -> Result<bool, Error> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(service) = services.get_opt(cluster).await.during(|| format!("get Service {namespace}/{cluster}"))? else {
        return Ok(false);
    };
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={cluster}")))
        .await
        .during(|| format!("list the EndpointSlices of Service {namespace}/{cluster}"))?;
    let published = listed
        .items
        .iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .any(|endpoint| endpoint.conditions.as_ref().and_then(|conditions| conditions.ready).unwrap_or(true));
    Ok(published || selects_any(&service, ready_primaries))
}

/// Whether the Service's (non-empty) selector matches one of the Pods.
fn selects_any(service: &Service, pods: &[&Pod]) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|spec| spec.selector.as_ref()).filter(|s| !s.is_empty()) else {
        return false;
    };
    pods.iter().any(|pod| selector.iter().all(|(key, value)| pod.labels().get(key) == Some(value)))
}

/// What a cluster that is not ready is stuck on, in a few words.
fn waiting_for(cluster: &str, primaries: &[&Pod], primary_ready: bool) -> Option<String> {
    if primary_ready {
        return Some(format!("the primary is Ready; the Service {cluster} or its endpoint is not there yet"));
    }
    let Some(pod) = primaries.first() else {
        return Some(format!("no primary Pod (labels app={cluster}, replicationRole=primary) yet"));
    };
    let status = pod.status.as_ref();
    let phase = status.and_then(|status| status.phase.clone()).unwrap_or_else(|| "Pending".to_string());
    let mut out = format!("primary Pod {} is {phase}", pod.name_any());
    if let Some((reason, message)) = blocked(pod).or_else(|| waiting_state(pod)) {
        out.push_str(&format!(": {reason}"));
        if !message.is_empty() {
            out.push_str(&format!(" ({message})"));
        }
    }
    Some(out)
}

/// The first container waiting with a reason.
fn waiting_state(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten()).find_map(
        |container| {
            let waiting = container.state.as_ref()?.waiting.as_ref()?;
            Some((waiting.reason.clone()?, waiting.message.clone().unwrap_or_default()))
        },
    )
}

/// Classifies the restore's object of kind `K` named `name`.
async fn child_of<K>(ctx: &Context, namespace: &str, name: &str, restore: &KubegresRestore) -> Result<Child, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + std::fmt::Debug,
    K: serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api.get_metadata_opt(name).await.during(|| format!("get {} {namespace}/{name}", K::kind(&())))?;
    Ok(match found {
        None => Child::Missing,
        Some(object) if owned_by(object.metadata.owner_references.as_deref(), restore) => {
            Child::Ours(object.metadata.uid.unwrap_or_default())
        }
        Some(_) => Child::Foreign,
    })
}

/// Whether a Pod was created before the cluster object (creation times have
/// a resolution of one second; a cluster's primary is never Ready within
/// the second its cluster object was created, initdb alone takes longer).
fn older_than(pod: &Pod, cluster: &DynamicObject) -> bool {
    match (&pod.metadata.creation_timestamp, &cluster.metadata.creation_timestamp) {
        (Some(pod), Some(cluster)) => pod.0 < cluster.0,
        _ => false,
    }
}

/// A Pod that is Ready and not being deleted.
fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .iter()
            .flat_map(|status| status.conditions.iter().flatten())
            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
}

/// What the decide step needs of a restore Pod.
pub fn restore_pod(pod: &Pod) -> RestorePod {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|status| status.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Pending,
    };
    let terminated = status
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|container| container.name == AGENT_CONTAINER))
        .and_then(|container| container.state.as_ref())
        .and_then(|state| state.terminated.as_ref());
    RestorePod {
        name: pod.name_any(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        attempt: pod.labels().get(ATTEMPT_LABEL).and_then(|attempt| attempt.parse().ok()),
        phase,
        exit_code: terminated.map(|terminated| terminated.exit_code),
        reason: terminated.and_then(|terminated| terminated.reason.clone()),
        message: terminated.and_then(|terminated| terminated.message.clone()),
        finished_at: terminated.and_then(|terminated| terminated.finished_at.as_ref()).map(|time| time.0),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        blocked: blocked(pod),
    }
}

/// Why a Pending Pod cannot start, as kube-scheduler (PodScheduled False)
/// or kubelet (the agent container waiting for a reason that needs a person:
/// a missing Secret, an image that cannot be pulled) said it.
fn blocked(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref().is_some_and(|phase| phase != "Pending") {
        return None;
    }
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|condition| condition.type_ == "PodScheduled" && condition.status == "False");
    if let Some(condition) = unschedulable {
        let reason = condition.reason.clone().unwrap_or_else(|| "Unschedulable".to_string());
        return Some((reason, condition.message.clone().unwrap_or_default()));
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find(|container| container.name == AGENT_CONTAINER)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?;
    let reason = waiting.reason.as_deref()?;
    BLOCKING_WAIT_REASONS.contains(&reason).then(|| (reason.to_string(), waiting.message.clone().unwrap_or_default()))
}

/// kubelet's waiting reasons that do not clear by themselves.
const BLOCKING_WAIT_REASONS: [&str; 6] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// A number stable for the restore (its uid), to spread retries apart.
fn jitter_seed(restore: &KubegresRestore) -> u64 {
    let mut hasher = DefaultHasher::new();
    restore.metadata.uid.hash(&mut hasher);
    hasher.finish()
}
