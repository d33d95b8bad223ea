//! The kubelet's stand-in for kube-scheduler (there is none on the local
//! control plane): Pods without a node whose schedulerName is
//! `default-scheduler` are bound to this node through `pods/binding` when
//! their nodeSelector matches the Node's labels and every PVC they mount
//! exists; otherwise they get PodScheduled=False, reason Unschedulable, with
//! kube-scheduler's message, and are retried on every Pod event and every
//! few seconds. Node affinity, taints and resources are not considered.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use super::node::labels;
use super::runtime::Shared;
use std::sync::Arc;

/// How often unschedulable Pods are tried again without any event.
const RETRY: Duration = Duration::from_secs(2);

const PREEMPTION: &str = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

pub(crate) async fn run(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.scheduler.clone());
    let params = ListParams::default().fields("spec.nodeName=");
    let watch = tokio::spawn(super::watch::unscheduled(shared.clone()));
    let _abort_watch = AbortOnDrop(watch);
    loop {
        match pods.list(&params).await {
            Ok(list) => {
                for pod in list.items {
                    if let Err(error) = schedule(&shared, pod).await {
                        eprintln!("process-kubelet scheduler: {error}");
                    }
                }
            }
            Err(error) => eprintln!("process-kubelet scheduler: cannot list unscheduled Pods: {error}"),
        }
        let _ = tokio::time::timeout(RETRY, shared.schedule.notified()).await;
    }
}

/// Binds `pod` to this node, or says why it cannot.
async fn schedule(shared: &Shared, pod: Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
    let scheduler_name = spec.scheduler_name.as_deref().unwrap_or("default-scheduler");
    if scheduler_name != "default-scheduler" || pod.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    if spec.node_name.as_deref().is_some_and(|node| !node.is_empty()) {
        return Ok(());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(shared.scheduler.clone(), &namespace);

    if let Some(reason) = unschedulable(shared, &namespace, &pod).await? {
        let message = format!("0/1 nodes are available: {reason} {PREEMPTION}");
        let current = pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .and_then(|conditions| conditions.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message.as_str())) {
            return Ok(());
        }
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
        // Only if the Pod did not change meanwhile (bound by another scheduler...).
        let patch = json!({ "metadata": { "resourceVersion": pod.resource_version() }, "status": { "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": now,
        }]}});
        return match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
            Err(error) => Err(format!("cannot mark the Pod {namespace}/{name} unschedulable: {error}")),
        };
    }

    let binding = Binding {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(shared.config.node_name.clone()),
            ..Default::default()
        },
    };
    match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => Ok(()),
        // Bound or deleted in the meantime.
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
        Err(error) => Err(format!("cannot bind the Pod {namespace}/{name}: {error}")),
    }
}

/// Why the Pod cannot run on this node, in kube-scheduler's words, if it cannot.
async fn unschedulable(shared: &Shared, namespace: &str, pod: &Pod) -> Result<Option<String>, String> {
    let spec = pod.spec.as_ref().cloned().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(shared.scheduler.clone(), namespace);
    for volume in spec.volumes.iter().flatten() {
        let Some(claim) = &volume.persistent_volume_claim else { continue };
        match claims.get_opt(&claim.claim_name).await {
            Ok(Some(pvc)) if pvc.metadata.deletion_timestamp.is_some() => {
                return Ok(Some(format!("persistentvolumeclaim \"{}\" is being deleted.", claim.claim_name)));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Some(format!("persistentvolumeclaim \"{}\" not found.", claim.claim_name))),
            Err(error) => {
                return Err(format!("cannot read the PersistentVolumeClaim {namespace}/{}: {error}", claim.claim_name));
            }
        }
    }
    let node_labels = labels(&shared.config.node_name);
    let matches = spec.node_selector.iter().flatten().all(|(key, value)| node_labels.get(key) == Some(value));
    if !matches {
        return Ok(Some("1 node(s) didn't match Pod's node affinity/selector.".to_string()));
    }
    Ok(None)
}

/// Aborts a task when dropped (the scheduler's watch ends with the scheduler).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
