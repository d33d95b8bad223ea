//! The apply step: the decision's status and actions, against the API
//! server. Creates are server-side applies under the operator's field
//! manager (Pods, which are immutable, are created and an existing one is
//! left alone); deletes treat "not found" as done. Every call is
//! idempotent, so a reconcile cut short is simply run again.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use proto::crd::{KIND, OPERATOR_FIELD_MANAGER};
use proto::{KubegresRestore, KubegresRestoreStatus};
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::decide::{Action, Decision, EventType, MANAGED_BY_RESTORE_LABEL, Observed, children_name};
use crate::error::{During as _, Error, is_already_exists, is_not_found};
use crate::kubegres;

/// Writes the status (when it changed), then performs the actions: in
/// order, except that the ServiceAccount and the Role are created together,
/// and the RoleBinding and the Events go last, together. The RoleBinding is
/// the slowest create (the API server checks that the operator holds every
/// permission it grants), and the agent needs it only once it runs, long
/// after its Pod is created; the Pod itself needs its ServiceAccount first.
pub async fn apply(ctx: &Context, observed: &Observed, decision: &Decision) -> Result<(), Error> {
    let restore = &observed.restore;
    let namespace = restore.namespace().unwrap_or_default();
    let name = restore.name_any();
    // The status first: a retry's attempt number must be recorded before
    // its Pod exists, or a reconcile cut short would recreate the old one.
    if decision.status_changed {
        write_status(ctx, &namespace, &name, &decision.status).await?;
    }
    let (last, first): (Vec<&Action>, Vec<&Action>) = decision
        .actions
        .iter()
        .partition(|action| matches!(action, Action::CreateRoleBinding(_) | Action::EmitEvent { .. }));
    let mut actions = first.into_iter().peekable();
    while let Some(action) = actions.next() {
        let together =
            matches!(action, Action::CreateServiceAccount(_)) && matches!(actions.peek(), Some(Action::CreateRole(_)));
        if together && let Some(role) = actions.next() {
            futures::try_join!(
                perform(ctx, observed, &namespace, &name, action),
                perform(ctx, observed, &namespace, &name, role)
            )?;
        } else {
            perform(ctx, observed, &namespace, &name, action).await?;
        }
    }
    futures::future::try_join_all(last.into_iter().map(|action| perform(ctx, observed, &namespace, &name, action)))
        .await?;
    Ok(())
}

/// Server-side-applies the operator's part of the status: everything but
/// `progress`, which the agent owns under its own field manager.
pub async fn write_status(
    ctx: &Context,
    namespace: &str,
    name: &str,
    status: &KubegresRestoreStatus,
) -> Result<(), Error> {
    let mut status = status.clone();
    status.progress = None;
    let patch = json!({
        "apiVersion": KubegresRestore::api_version(&()),
        "kind": KIND,
        "status": status,
    });
    let api: Api<KubegresRestore> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(name, &apply_params(), &Patch::Apply(&patch))
        .await
        .during(|| format!("write the status of KubegresRestore {namespace}/{name}"))?;
    Ok(())
}

async fn perform(
    ctx: &Context,
    observed: &Observed,
    namespace: &str,
    name: &str,
    action: &Action,
) -> Result<(), Error> {
    let client = &ctx.client;
    let kubegres: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kubegres::api_resource());
    match action {
        Action::AddFinalizer | Action::RemoveFinalizer => {
            let finalizers: Vec<&str> =
                if matches!(action, Action::AddFinalizer) { vec![crate::decide::FINALIZER] } else { vec![] };
            // metadata.finalizers is a set: the apply owns only our entry.
            let patch = json!({
                "apiVersion": KubegresRestore::api_version(&()),
                "kind": KIND,
                "metadata": {"name": name, "finalizers": finalizers},
            });
            let api: Api<KubegresRestore> = Api::namespaced(client.clone(), namespace);
            match api.patch(name, &apply_params(), &Patch::Apply(&patch)).await {
                Err(error) if is_not_found(&error) && matches!(action, Action::RemoveFinalizer) => Ok(()),
                result => {
                    result.map(drop).during(|| format!("update the finalizer of KubegresRestore {namespace}/{name}"))
                }
            }
        }
        Action::CreateKubegres { name: cluster, object } => {
            kubegres
                .patch(cluster, &apply_params(), &Patch::Apply(object))
                .await
                .during(|| format!("create Kubegres {namespace}/{cluster}"))?;
            Ok(())
        }
        Action::DeleteKubegres { name: cluster } => {
            delete(&kubegres, cluster).await.during(|| format!("delete Kubegres {namespace}/{cluster}"))
        }
        Action::DeleteClusterVolumes { name: cluster } => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
            let listed = claims
                .list_metadata(&ListParams::default().labels(&format!("{}={cluster}", kubegres::APP_LABEL)))
                .await
                .during(|| format!("list the volumes of Kubegres {namespace}/{cluster}"))?;
            for claim in listed.items.iter().filter(|claim| kubegres::is_data_volume(cluster, &claim.name_any())) {
                if claim.metadata.deletion_timestamp.is_none() {
                    let name = claim.name_any();
                    delete(&claims, &name)
                        .await
                        .during(|| format!("delete the volume {namespace}/{name} of Kubegres {cluster}"))?;
                }
            }
            Ok(())
        }
        Action::ScaleKubegresToDesired { name: cluster, replicas, resources } => {
            // A merge patch, not an apply: the cluster is the user's from now
            // on, and an apply would keep the operator owning its whole spec.
            let patch = json!({"spec": {"replicas": replicas, "resources": resources}});
            kubegres
                .patch(cluster, &merge_params(), &Patch::Merge(&patch))
                .await
                .during(|| format!("scale Kubegres {namespace}/{cluster} to its desired spec"))?;
            Ok(())
        }
        Action::RemoveManagedLabel { name: cluster } => {
            let patch = json!({"metadata": {"labels": {MANAGED_BY_RESTORE_LABEL: null}}});
            kubegres
                .patch(cluster, &merge_params(), &Patch::Merge(&patch))
                .await
                .during(|| format!("remove the restore's label from Kubegres {namespace}/{cluster}"))?;
            Ok(())
        }
        Action::CreateServiceAccount(object) => apply_object::<ServiceAccount>(ctx, namespace, object).await,
        Action::CreateRole(object) => apply_object::<Role>(ctx, namespace, object).await,
        Action::CreateRoleBinding(object) => apply_object::<RoleBinding>(ctx, namespace, object).await,
        Action::CreateRestorePod { name: pod_name, pod, .. } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let params = PostParams { field_manager: Some(OPERATOR_FIELD_MANAGER.to_string()), ..Default::default() };
            match pods.create(&params, pod).await {
                Ok(_) => Ok(()),
                Err(error) if is_already_exists(&error) => Ok(()),
                Err(error) => {
                    // Say why on the restore too (admission, quota, a
                    // missing ServiceAccount): otherwise only the logs would.
                    let message = format!("cannot create the restore Pod {pod_name}: {error}");
                    let event =
                        Action::EmitEvent { type_: EventType::Warning, reason: "PodCreateFailed".to_string(), message };
                    Box::pin(perform(ctx, observed, namespace, name, &event)).await?;
                    Err(error).during(|| format!("create the restore Pod {namespace}/{pod_name}"))
                }
            }
        }
        Action::DeletePod { name: pod_name } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            delete(&pods, pod_name).await.during(|| format!("delete the restore Pod {namespace}/{pod_name}"))
        }
        Action::DeleteChildren => delete_children(ctx, observed, namespace, name).await,
        Action::EmitEvent { type_, reason, message } => {
            let event = ctx.events.event(&observed.restore.object_ref(&()), *type_, reason, message);
            ctx.events.publish(&ctx.client, &event).await;
            Ok(())
        }
    }
}

/// Deletes the restore Pods, the ServiceAccount, the Role and the
/// RoleBinding; owner references would do it too, but only where a garbage
/// collector runs, and not at once.
async fn delete_children(ctx: &Context, observed: &Observed, namespace: &str, name: &str) -> Result<(), Error> {
    let client = &ctx.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for pod in observed.pods.iter().filter(|pod| !pod.deleting) {
        delete(&pods, &pod.name).await.during(|| format!("delete the restore Pod {namespace}/{}", pod.name))?;
    }
    let child = children_name(name);
    let what = |kind: &str| format!("delete {kind} {namespace}/{child}");
    if observed.children.role_binding {
        let api: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
        delete(&api, &child).await.during(|| what("RoleBinding"))?;
    }
    if observed.children.role {
        let api: Api<Role> = Api::namespaced(client.clone(), namespace);
        delete(&api, &child).await.during(|| what("Role"))?;
    }
    if observed.children.service_account {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        delete(&api, &child).await.during(|| what("ServiceAccount"))?;
    }
    Ok(())
}

async fn apply_object<K>(ctx: &Context, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .during(|| format!("apply {} {namespace}/{name}", K::kind(&())))?;
    Ok(())
}

/// Deletes in the background; a missing object is already deleted.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.delete(name, &DeleteParams::background()).await {
        Err(error) if is_not_found(&error) => Ok(()),
        result => result.map(drop),
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(OPERATOR_FIELD_MANAGER).force()
}

fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(OPERATOR_FIELD_MANAGER.to_string()), ..Default::default() }
}
