//! One pass of the simulated Kubegres over one Kubegres, in Kubegres's
//! order: defaults, blocking operation, spec check, then the count
//! enforcers (base ConfigMap, primary, replicas, Services, backup CronJob),
//! and the status written last, whatever happened.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::observe::{Observed, observe};
use super::spec::{self, DEFAULT_CLASS_ANNOTATION, Facts, Operation, StatefulSetOperation, Status};
use super::templates::{self, Owner};
use super::{Ctx, FIELD_MANAGER, SimError, api, api_resource, base_config, data_volume};

// Kubegres's blocking operations (ids, steps, timeouts in seconds).
const BASE_CONFIG_OP: &str = "Base config count spec enforcement";
const BASE_CONFIG_STEP: &str = "Base config is deploying";
const PRIMARY_OP: &str = "Primary DB count spec enforcement";
const PRIMARY_STEP: &str = "Primary DB is deploying";
const REPLICA_OP: &str = "Replica DB count spec enforcement";
const REPLICA_DEPLOY_STEP: &str = "Replica DB is deploying";
const REPLICA_UNDEPLOY_STEP: &str = "Replica DB is undeploying";

fn timeout_of(step: &str) -> i64 {
    match step {
        BASE_CONFIG_STEP => 10,
        REPLICA_UNDEPLOY_STEP => 60,
        _ => 300,
    }
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

pub(super) async fn pass(ctx: &Ctx, cluster: &DynamicObject) -> Result<(), SimError> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let kubegres: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &api_resource());
    let spec: spec::Spec =
        serde_json::from_value(cluster.data.get("spec").cloned().unwrap_or_default()).map_err(SimError::Spec)?;

    // Defaults first, written back into the spec; the update brings the next pass.
    let classes = Api::<StorageClass>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api("list the StorageClasses"))?;
    let default_class = classes
        .items
        .iter()
        .find(|class| class.annotations().get(DEFAULT_CLASS_ANNOTATION).is_some_and(|v| v == "true"))
        .map(ResourceExt::name_any);
    match spec::defaults(&spec, &name, default_class.as_deref()) {
        Err(message) => {
            ctx.event(cluster, true, "DefaultStorageClassNameErr", &format!("{message} Namespace: {namespace}")).await;
            return Ok(());
        }
        Ok(Some(patch)) => {
            let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
            kubegres.patch(&name, &params, &Patch::Merge(&patch)).await.map_err(api("write the spec's defaults"))?;
            ctx.event(cluster, false, "DefaultSpecValue", "A default value was set for a field in Kubegres YAML spec.")
                .await;
            return Ok(());
        }
        Ok(None) => {}
    }

    let observed = observe(ctx, cluster).await?;
    let mut status = observed.status.clone();
    let left = load_active_operation(&mut status, &observed);
    let outcome =
        if left > 0 { Ok(()) } else { check_and_enforce(ctx, cluster, &kubegres, &observed, &mut status).await };
    if status != observed.status {
        let old = cluster.data.get("status").cloned().unwrap_or(Value::Null);
        let new = serde_json::to_value(&status).unwrap_or(Value::Null);
        let patch = json!({ "status": merge_patch(&old, &new) });
        kubegres
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api("write the status"))?;
    }
    outcome
}

/// A JSON merge patch from `old` to `new`: keys that disappear become null.
fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                patch.insert(key.clone(), merge_patch(old.get(key).unwrap_or(&Value::Null), value));
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Kubegres's `LoadActiveOperation`: the active operation is done when its
/// completion check passes, flagged when it timed out; returns the seconds
/// it may still run (at most 20), during which nothing else is done.
fn load_active_operation(status: &mut Status, observed: &Observed) -> i64 {
    let active = &mut status.blocking_operation;
    if !active.is_active() {
        return 0;
    }
    let remaining = active.time_out_epoc_in_seconds - now();
    if remaining <= 0 {
        active.has_timed_out = true;
    } else if completed(active, observed) {
        remove_active(status);
        return 0;
    }
    remaining.clamp(0, 20)
}

fn completed(operation: &Operation, observed: &Observed) -> bool {
    let index = operation.stateful_set_operation.instance_index;
    match operation.step_id.as_str() {
        BASE_CONFIG_STEP => observed.base_config,
        PRIMARY_STEP => observed.primary_ready(),
        REPLICA_DEPLOY_STEP => observed.replica(index).is_some_and(|r| r.ready),
        REPLICA_UNDEPLOY_STEP => observed.replica(index).is_none(),
        _ => false,
    }
}

fn remove_active(status: &mut Status) {
    let mut previous = std::mem::take(&mut status.blocking_operation);
    previous.has_timed_out = false;
    status.previous_blocking_operation = previous;
}

fn activate(status: &mut Status, observed: &Observed, operation: &str, step: &str, index: Option<i64>) {
    status.blocking_operation = Operation {
        operation_id: operation.into(),
        step_id: step.into(),
        time_out_epoc_in_seconds: now() + timeout_of(step),
        has_timed_out: false,
        stateful_set_operation: index
            .map(|index| StatefulSetOperation { instance_index: index, name: format!("{}-{index}", observed.name) })
            .unwrap_or_default(),
        stateful_set_spec_update_operation: json!({}),
    };
}

fn timed_out(status: &Status, operation: &str) -> bool {
    status.blocking_operation.operation_id == operation && status.blocking_operation.has_timed_out
}

fn other_active(status: &Status, operation: &str) -> bool {
    status.blocking_operation.is_active() && status.blocking_operation.operation_id != operation
}

async fn check_and_enforce(
    ctx: &Ctx,
    cluster: &DynamicObject,
    kubegres: &Api<DynamicObject>,
    observed: &Observed,
    status: &mut Status,
) -> Result<(), SimError> {
    let spec = &observed.spec;
    let class = observed.storage_class.as_ref();
    let primary = observed.primary().filter(|p| p.pod_ready).and_then(|p| {
        let set = &p.set.spec;
        let mount = set.template.spec.as_ref()?.containers.first()?.volume_mounts.as_ref()?.first()?.mount_path.clone();
        let claim = set.volume_claim_templates.as_ref()?.first()?.spec.clone()?;
        let size = claim.resources?.requests?.get("storage")?.0.clone();
        Some((mount, claim.storage_class_name.unwrap_or_default(), size))
    });
    let facts = Facts {
        storage_class_deployed: class.is_some(),
        storage_class_expands: class.and_then(|c| c.allow_volume_expansion).unwrap_or(false),
        custom_config_deployed: observed.custom_keys.is_some(),
        backup_pvc_deployed: observed.backup_pvc,
        primary,
    };
    let check = spec::check(spec, &facts);
    if !check.rollback.is_empty() {
        let patch = json!({ "spec": check.rollback });
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        kubegres.patch(&observed.name, &params, &Patch::Merge(&patch)).await.map_err(api("roll the spec back"))?;
    }
    if let Some(last) = check.fatal.last() {
        for message in &check.fatal {
            tracing::warn!("simulated Kubegres {}/{}: SpecCheckErr: {message}", observed.namespace, observed.name);
        }
        ctx.event(cluster, true, "SpecCheckErr", last).await;
        return Ok(());
    }

    let owner = Owner {
        name: &observed.name,
        namespace: &observed.namespace,
        uid: &observed.uid,
        annotations: &observed.annotations,
        spec,
        custom_keys: observed.custom_keys.clone(),
    };
    base_config_map(ctx, observed, status).await?;
    primary_instance(ctx, observed, status, &owner).await?;
    replica_instances(ctx, observed, status, &owner).await?;
    services(ctx, cluster, observed, &owner).await?;
    backup_cron_job(ctx, cluster, observed, &owner).await
}

async fn create<K>(api_: &Api<K>, object: Value, what: &'static str) -> Result<(), SimError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).map_err(|source| SimError::Template { what, source })?;
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    api_.create(&params, &object).await.map(drop).map_err(api(format!("create the {what}")))
}

async fn base_config_map(ctx: &Ctx, observed: &Observed, status: &mut Status) -> Result<(), SimError> {
    if other_active(status, BASE_CONFIG_OP) {
        return Ok(());
    }
    if timed_out(status, BASE_CONFIG_OP) {
        if !observed.base_config {
            return Ok(());
        }
        remove_active(status);
    }
    if observed.base_config {
        return Ok(());
    }
    activate(status, observed, BASE_CONFIG_OP, BASE_CONFIG_STEP, None);
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &observed.namespace);
    let created = create(&maps, base_config::config_map(&observed.namespace), "base ConfigMap").await;
    if created.is_err() {
        status.blocking_operation = Operation::default();
    }
    created
}

async fn primary_instance(
    ctx: &Ctx,
    observed: &Observed,
    status: &mut Status,
    owner: &Owner<'_>,
) -> Result<(), SimError> {
    let spec = &observed.spec;
    let replicas_deployed = observed.replicas().len() as i64;
    if status.enforced_replicas == 0 && spec.replicas() >= 1 && spec.replicas() == observed.instances.len() as i64 {
        status.enforced_replicas = spec.replicas();
    }
    if other_active(status, PRIMARY_OP) {
        return Ok(());
    }
    if observed.primary_ready() && timed_out(status, PRIMARY_OP) {
        remove_active(status);
    }
    let deploy = observed.primary().is_none()
        && replicas_deployed == 0
        && (spec.replicas() == 1 || status.enforced_replicas == 0);
    if observed.primary().is_none() && replicas_deployed > 0 {
        // Kubegres would promote a replica here: not reproduced.
        tracing::warn!(
            "simulated Kubegres {}/{}: the primary is gone and failover is not simulated",
            observed.namespace,
            observed.name
        );
    }
    if !deploy || timed_out(status, PRIMARY_OP) {
        return Ok(());
    }
    // With one instance, a primary whose StatefulSet was deleted comes back
    // on its last data volume.
    let last = status.last_created_instance_index;
    let mut index = 0;
    if spec.replicas() <= 1 && last != 0 {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &observed.namespace);
        if claims.get_opt(&data_volume(&observed.name, last)).await.map_err(api("read the data volume"))?.is_some() {
            index = last;
        }
    }
    if index == 0 {
        index = last + 1;
    }
    activate(status, observed, PRIMARY_OP, PRIMARY_STEP, Some(index));
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &observed.namespace);
    if let Err(error) = create(&sets, templates::stateful_set(owner, index, true), "primary StatefulSet").await {
        status.blocking_operation = Operation::default();
        return Err(error);
    }
    status.enforced_replicas += 1;
    if status.last_created_instance_index == 0 {
        status.last_created_instance_index = 1;
    }
    Ok(())
}

async fn replica_instances(
    ctx: &Ctx,
    observed: &Observed,
    status: &mut Status,
    owner: &Owner<'_>,
) -> Result<(), SimError> {
    let spec = &observed.spec;
    if other_active(status, REPLICA_OP) {
        return Ok(());
    }
    if timed_out(status, REPLICA_OP) {
        let index = status.blocking_operation.stateful_set_operation.instance_index;
        if !observed.replica(index).is_none_or(|r| r.ready) {
            return Ok(());
        }
        remove_active(status);
    }
    if !observed.primary_ready() || status.blocking_operation.operation_id == REPLICA_OP {
        return Ok(());
    }
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &observed.namespace);
    let replicas = observed.replicas();
    let expected = if spec.replicas() <= 1 { 0 } else { spec.replicas() - 1 };
    let missing = expected - replicas.len() as i64;
    if missing > 0 {
        let more_in_spec = spec.replicas() > status.enforced_replicas;
        if spec.failover.is_disabled && spec.failover.promote_pod.is_empty() && !more_in_spec {
            return Ok(());
        }
        let index = status.last_created_instance_index + 1;
        activate(status, observed, REPLICA_OP, REPLICA_DEPLOY_STEP, Some(index));
        if let Err(error) = create(&sets, templates::stateful_set(owner, index, false), "replica StatefulSet").await {
            status.blocking_operation = Operation::default();
            return Err(error);
        }
        status.enforced_replicas += 1;
        status.last_created_instance_index = index;
        return Ok(());
    }
    // Too many replicas: the highest index goes; the right count but one
    // not Ready: that one goes (and a new index replaces it).
    let undeploy = if missing < 0 { replicas.last() } else { replicas.iter().find(|r| !r.ready) };
    let Some(replica) = undeploy else { return Ok(()) };
    activate(status, observed, REPLICA_OP, REPLICA_UNDEPLOY_STEP, Some(replica.index));
    if let Err(error) = sets.delete(&replica.set.name_any(), &DeleteParams::default()).await {
        status.blocking_operation = Operation::default();
        return Err(api("delete a replica StatefulSet")(error));
    }
    status.enforced_replicas -= 1;
    Ok(())
}

async fn services(ctx: &Ctx, cluster: &DynamicObject, observed: &Observed, owner: &Owner<'_>) -> Result<(), SimError> {
    let api_: Api<Service> = Api::namespaced(ctx.client.clone(), &observed.namespace);
    let ready_replica = observed.replicas().iter().any(|r| r.ready);
    for (primary, needed) in [
        (true, !observed.primary_service && observed.primary_ready()),
        (false, !observed.replica_service && ready_replica),
    ] {
        if !needed {
            continue;
        }
        let role = if primary { "Primary" } else { "Replica" };
        if let Err(error) = create(&api_, templates::service(owner, primary), "Service").await {
            ctx.event(cluster, true, "ServiceDeploymentErr", &format!("Unable to deploy {role} Service. {error}"))
                .await;
            return Err(error);
        }
        ctx.event(cluster, false, "ServiceDeployment", &format!("Deployed {role} Service.")).await;
    }
    Ok(())
}

async fn backup_cron_job(
    ctx: &Ctx,
    cluster: &DynamicObject,
    observed: &Observed,
    owner: &Owner<'_>,
) -> Result<(), SimError> {
    let spec = &observed.spec;
    let api_: Api<CronJob> = Api::namespaced(ctx.client.clone(), &observed.namespace);
    if let Some(current) = &observed.cron_job {
        let template = current.spec.job_template.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let volumes = template.and_then(|t| t.volumes.clone()).unwrap_or_default();
        let mount = template
            .and_then(|t| t.containers.first())
            .and_then(|c| c.volume_mounts.as_ref())
            .and_then(|m| m.first())
            .map(|m| m.mount_path.clone());
        let unchanged = current.spec.schedule == spec.backup.schedule
            && mount.as_deref() == Some(spec.backup.volume_mount.as_str())
            && volumes.first().and_then(|v| v.persistent_volume_claim.as_ref()).map(|c| c.claim_name.as_str())
                == Some(spec.backup.pvc_name.as_str())
            && volumes.get(1).and_then(|v| v.config_map.as_ref()).map(|c| c.name.as_str())
                == Some(owner.backup_config_map().as_str());
        if unchanged {
            return Ok(());
        }
        api_.delete(&current.name_any(), &DeleteParams::default()).await.map_err(api("delete the backup CronJob"))?;
        ctx.event(cluster, false, "BackUpCronJobDeletion", "Deleted BackUp CronJob.").await;
    }
    if !spec.backup_configured() {
        return Ok(());
    }
    create(&api_, templates::backup_cron_job(owner), "backup CronJob").await?;
    ctx.event(cluster, false, "BackUpCronJobDeployment", "Deployed BackUp CronJob.").await;
    Ok(())
}
