//! The observe step: read what [`decide`](crate::decide::decide) needs from
//! the API server. The restore itself is read fresh (not from the watch
//! cache) so that the decision never acts on a status older than the
//! operator's own last write.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use proto::KubegresRestore;
use proto::crd::{ClusterSpecSource, ResolvedTarget};

use super::Context;
use crate::decide::{
    AGENT_CONTAINER, ATTEMPT_LABEL, Children, MANAGED_BY_RESTORE_LABEL, Observed, PodPhase, RESTORE_LABEL, RestorePod,
    TargetCluster, children_name,
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
            Some(cluster) => observe_cluster(&kubegres, &pods, namespace, cluster, name).await,
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
        Ok::<_, Error>(list.items.iter().map(restore_pod).collect::<Vec<_>>())
    };
    let child = children_name(name);
    let (target, copy_from_spec, restore_pods, service_account, role, role_binding) = tokio::try_join!(
        target,
        copy_from_spec,
        restore_pods,
        exists::<ServiceAccount>(ctx, namespace, &child),
        exists::<Role>(ctx, namespace, &child),
        exists::<RoleBinding>(ctx, namespace, &child),
    )?;
    let children = Children { service_account, role, role_binding };

    Ok(Some(Observed {
        jitter_seed: jitter_seed(&restore),
        restore,
        now: Timestamp::now(),
        target,
        copy_from_spec,
        pods: restore_pods,
        children,
        agent_image: ctx.config.agent_image.clone(),
    }))
}

async fn observe_cluster(
    kubegres: &Api<DynamicObject>,
    pods: &Api<Pod>,
    namespace: &str,
    cluster: &str,
    restore: &str,
) -> Result<TargetCluster, Error> {
    let Some(object) = kubegres.get_opt(cluster).await.during(|| format!("get Kubegres {namespace}/{cluster}"))? else {
        return Ok(TargetCluster::default());
    };
    let primaries = pods
        .list(&ListParams::default().labels(&kubegres::primary_selector(cluster)))
        .await
        .during(|| format!("list the primary Pod of Kubegres {namespace}/{cluster}"))?;
    Ok(TargetCluster {
        exists: true,
        deleted: object.meta().deletion_timestamp.is_some(),
        managed_by_us: object.labels().get(MANAGED_BY_RESTORE_LABEL).map(String::as_str) == Some(restore),
        // A primary older than the cluster object is the last incarnation's,
        // still Ready while it terminates (a retry recreates the cluster under
        // the same name): it must not start the next attempt.
        primary_ready: primaries.items.iter().any(|pod| is_ready(pod) && !older_than(pod, &object)),
        spec: kubegres::spec(&object).cloned(),
    })
}

async fn exists<K>(ctx: &Context, namespace: &str, name: &str) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + std::fmt::Debug,
    K: serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api.get_metadata_opt(name).await.during(|| format!("get {} {namespace}/{name}", K::kind(&())))?;
    Ok(found.is_some())
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
