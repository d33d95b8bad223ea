//! The apply step: the decision's status and actions, against the API
//! server. Creates are creates (never applies that could take over an object
//! of the same name): one that finds the name taken does nothing, and the
//! next observe sees whose it is. Deletes are conditional on the uid the
//! observe step saw, and treat "not found" and "no longer that object" as
//! done. Every call is idempotent, so a reconcile cut short is simply run
//! again.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use proto::crd::{KIND, OPERATOR_FIELD_MANAGER};
use proto::{KubegresRestore, KubegresRestoreStatus};
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::decide::{
    ATTEMPT_LABEL, Action, Decision, EventType, Kind, MANAGED_BY_LABEL, MANAGED_BY_RESTORE_LABEL, Observed,
    RESTORE_UID_LABEL,
};
use crate::error::{During as _, Error, is_already_exists, is_conflict, is_not_found};
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
            let object: DynamicObject = serde_json::from_value(object.clone())
                .map_err(|source| Error::Serialize { what: "the Kubegres manifest", source })?;
            match kubegres.create(&create_params(), &object).await {
                Err(error) if is_already_exists(&error) => Ok(()),
                result => result.map(drop).during(|| format!("create Kubegres {namespace}/{cluster}")),
            }
        }
        Action::HandOverKubegres { name: cluster, uid, replicas, resources, backup } => {
            // A merge patch, not an apply: the cluster is the user's from now
            // on. The uid makes it fail on any other object of that name.
            let mut spec = json!({"replicas": replicas, "resources": resources});
            if let Some(backup) = backup {
                spec["backup"] = backup.clone();
            }
            let patch = json!({
                "metadata": {
                    "uid": uid,
                    "labels": {
                        MANAGED_BY_RESTORE_LABEL: null,
                        RESTORE_UID_LABEL: null,
                        ATTEMPT_LABEL: null,
                        MANAGED_BY_LABEL: null,
                    },
                },
                "spec": spec,
            });
            kubegres
                .patch(cluster, &merge_params(), &Patch::Merge(&patch))
                .await
                .during(|| format!("hand Kubegres {namespace}/{cluster} over with its desired spec"))?;
            Ok(())
        }
        Action::CreateServiceAccount(object) => create_object::<ServiceAccount>(ctx, namespace, object).await,
        Action::CreateRole(object) => create_object::<Role>(ctx, namespace, object).await,
        Action::CreateRoleBinding(object) => create_object::<RoleBinding>(ctx, namespace, object).await,
        Action::CreateRestorePod { name: pod_name, pod, .. } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            match pods.create(&create_params(), pod).await {
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
        Action::Delete { kind, name: object, uid } => {
            let what = || format!("delete {} {namespace}/{object}", kind.as_str());
            match kind {
                Kind::Kubegres => delete(&kubegres, object, uid).await.during(what),
                Kind::Volume => {
                    delete(&namespaced::<PersistentVolumeClaim>(ctx, namespace), object, uid).await.during(what)
                }
                Kind::Pod => delete(&namespaced::<Pod>(ctx, namespace), object, uid).await.during(what),
                Kind::ServiceAccount => {
                    delete(&namespaced::<ServiceAccount>(ctx, namespace), object, uid).await.during(what)
                }
                Kind::Role => delete(&namespaced::<Role>(ctx, namespace), object, uid).await.during(what),
                Kind::RoleBinding => delete(&namespaced::<RoleBinding>(ctx, namespace), object, uid).await.during(what),
            }
        }
        Action::ResetProgress => {
            let api: Api<KubegresRestore> = Api::namespaced(client.clone(), namespace);
            let patch = json!({"status": {"progress": null}});
            api.patch_status(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .during(|| format!("reset the progress of KubegresRestore {namespace}/{name}"))?;
            Ok(())
        }
        Action::EmitEvent { type_, reason, message } => {
            let event = ctx.events.event(&observed.restore.object_ref(&()), *type_, reason, message);
            ctx.events.publish(&ctx.client, &event).await;
            Ok(())
        }
    }
}

fn namespaced<K>(ctx: &Context, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(ctx.client.clone(), namespace)
}

/// Creates an object; one of that name already there is left alone (the
/// next observe tells whose it is).
async fn create_object<K>(ctx: &Context, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    match namespaced::<K>(ctx, namespace).create(&create_params(), object).await {
        Err(error) if is_already_exists(&error) => Ok(()),
        result => result.map(drop).during(|| format!("create {} {namespace}/{name}", K::kind(&()))),
    }
}

/// Deletes in the background, only the object with this uid: one that is
/// gone, or was replaced by another object of the same name (the
/// precondition fails with a conflict), is not ours to delete.
async fn delete<K>(api: &Api<K>, name: &str, uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(()),
        result => result.map(drop),
    }
}

fn create_params() -> PostParams {
    PostParams { field_manager: Some(OPERATOR_FIELD_MANAGER.to_string()), ..Default::default() }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(OPERATOR_FIELD_MANAGER).force()
}

fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(OPERATOR_FIELD_MANAGER.to_string()), ..Default::default() }
}
