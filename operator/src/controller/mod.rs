//! The controller: a kube-runtime [`Controller`] on KubegresRestore that
//! owns the restore Pods and watches the Kubegres clusters it manages and
//! their primaries. Each reconcile is observe -> decide -> apply.

mod apply;
mod events;
mod observe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action as ControllerAction, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use proto::KubegresRestore;
use proto::crd::ResolvedTarget;
use tokio::sync::watch;
use tracing::Instrument;

pub use apply::{apply, write_status};
pub use events::Events;
pub use observe::{observe, restore_pod};

use crate::decide::{MANAGED_BY_LABEL, MANAGED_BY_RESTORE_LABEL, MANAGED_BY_VALUE, Requeue, decide};
use crate::error::Error;
use crate::health::{Health, Readiness};
use crate::kubegres;
use crate::metrics::Metrics;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch one namespace only; `None`: all.
    pub namespace: Option<String>,
    /// The agent image for restores without `spec.agent.image`.
    pub agent_image: String,
    /// The other images `spec.agent.image` may name (exact, or a prefix
    /// ending in `*`).
    pub allowed_agent_images: Vec<String>,
    /// This replica's name, on the Events it records.
    pub instance: Option<String>,
    /// How many restores are reconciled at once.
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            agent_image: crate::decide::DEFAULT_AGENT_IMAGE.to_string(),
            allowed_agent_images: Vec::new(),
            instance: None,
            concurrency: 16,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client (the operator's identity).
    pub client: Client,
    /// The configuration.
    pub config: Config,
    /// Records Events on restores.
    pub events: Events,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failed reconciles per restore, for the backoff.
    failures: Mutex<HashMap<ObjectRef<KubegresRestore>, u32>>,
}

impl Context {
    /// A context for `client`.
    pub fn new(client: Client, config: Config, metrics: Arc<Metrics>) -> Self {
        Context { events: Events::new(config.instance.clone()), client, config, metrics, failures: Mutex::default() }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<KubegresRestore>, u32>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs the controller until `shutdown` resolves; sets `health` to Ready once
/// the KubegresRestore cache has synced.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (restores, pods, clusters) = match &config.namespace {
        Some(namespace) => (
            Api::<KubegresRestore>::namespaced(client.clone(), namespace),
            Api::<Pod>::namespaced(client.clone(), namespace),
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &kubegres::api_resource()),
        ),
        None => (
            Api::<KubegresRestore>::all(client.clone()),
            Api::<Pod>::all(client.clone()),
            Api::<DynamicObject>::all_with(client.clone(), &kubegres::api_resource()),
        ),
    };
    let concurrency = config.concurrency;
    let ctx = Arc::new(Context::new(client, config, metrics));

    health.set(Readiness::Syncing);
    // The restores' watch, with the reflector the controller reads from; its
    // first InitDone means the cache has synced (the reflector applies an
    // event before passing it on), which is when the operator is ready.
    let (store, writer) = reflector::store::<KubegresRestore>();
    let synced = health.clone();
    // The cache only triggers reconciles and maps primaries to restores
    // (each reconcile reads the restore afresh): managedFields and the
    // last-applied annotation are most of an object's size and are dropped.
    let restore_watch = watcher::watcher(restores, watcher::Config::default().any_semantic()).modify(|restore| {
        restore.metadata.managed_fields = None;
        if let Some(annotations) = restore.metadata.annotations.as_mut() {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    });
    let restore_events = reflector(writer, restore_watch)
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) && synced.get() == Readiness::Syncing {
                tracing::info!("the KubegresRestore cache is synced");
                synced.set(Readiness::Ready);
            }
        })
        .applied_objects()
        // Status-only updates (the agent's progress every few seconds, the
        // operator's own status writes) do not reconcile: a change of the
        // spec (generation, also bumped when deletion starts), finalizers,
        // labels or annotations does.
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(predicates::labels)
                .combine(predicates::annotations),
            PredicateConfig::default(),
        )
        .default_backoff();
    let controller = Controller::for_stream(restore_events, store.clone());

    let restore_pods = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let managed_clusters = watcher::Config::default().labels(MANAGED_BY_RESTORE_LABEL);
    let primaries = watcher::Config::default().labels(&format!("{}={}", kubegres::ROLE_LABEL, kubegres::PRIMARY));
    let primary_store = store.clone();
    // Shutdown: graceful (in-flight reconciles finish) once the cache has
    // synced. Before that, kube-runtime holds its runner until a first sync
    // that will not come, so the controller is dropped instead.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let unsynced_stop = {
        let (stop, health) = (stop.clone(), health.clone());
        async move {
            stopped(stop).await;
            if health.get() == Readiness::Ready {
                std::future::pending::<()>().await;
            }
        }
    };
    let running = controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .owns(pods.clone(), restore_pods)
        .watches_with(clusters, kubegres::api_resource(), managed_clusters, |cluster| {
            let namespace = cluster.namespace()?;
            let restore = cluster.labels().get(MANAGED_BY_RESTORE_LABEL)?;
            Some(ObjectRef::new(restore).within(&namespace))
        })
        .watches(pods, primaries, move |pod| restores_of_primary(&primary_store, &pod))
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {} // logged by error_policy
                Err(error) => tracing::warn!("controller: {error}"),
            }
        });
    tokio::select! {
        () = running => {}
        () = unsynced_stop => tracing::info!("stopped before the KubegresRestore cache synced"),
    }
    health.set(Readiness::Starting);
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The restores whose target cluster this primary Pod serves.
fn restores_of_primary(store: &Store<KubegresRestore>, pod: &Pod) -> Vec<ObjectRef<KubegresRestore>> {
    let (Some(namespace), Some(cluster)) = (pod.namespace(), pod.labels().get(kubegres::APP_LABEL)) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|restore| restore.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|restore| target_cluster(restore).as_deref() == Some(cluster.as_str()))
        .map(|restore| ObjectRef::from_obj(restore.as_ref()))
        .collect()
}

/// The Kubegres cluster a restore writes into, if any.
fn target_cluster(restore: &KubegresRestore) -> Option<String> {
    match restore.spec.target().ok()? {
        ResolvedTarget::NewCluster { name, .. } => Some(name.to_string()),
        ResolvedTarget::Database(database) => Some(database.cluster_name.clone()),
        ResolvedTarget::Postgres(_) => None,
    }
}

/// One reconcile of one restore.
pub async fn reconcile(restore: Arc<KubegresRestore>, ctx: Arc<Context>) -> Result<ControllerAction, Error> {
    let namespace = restore.namespace().unwrap_or_default();
    let name = restore.name_any();
    let span = tracing::info_span!("reconcile", namespace = %namespace, name = %name);
    async move {
        let started = Instant::now();
        let action = reconcile_one(&ctx, &namespace, &name).await?;
        ctx.failures().remove(&ObjectRef::from_obj(restore.as_ref()));
        ctx.metrics.reconciled(started.elapsed());
        Ok(action)
    }
    .instrument(span)
    .await
}

async fn reconcile_one(ctx: &Context, namespace: &str, name: &str) -> Result<ControllerAction, Error> {
    let Some(observed) = observe(ctx, namespace, name).await? else {
        ctx.metrics.phase(namespace, name, None);
        return Ok(ControllerAction::await_change());
    };
    let decision = decide(&observed);
    let before = observed.restore.status.as_ref().map(|status| status.phase()).unwrap_or_default();
    apply(ctx, &observed, &decision).await?;

    let after = decision.status.phase();
    if before != after {
        tracing::info!(from = %before, to = %after, attempts = ?decision.status.attempts, "phase changed");
        if after.is_terminal() {
            let status = &decision.status;
            let duration = match (&status.start_time, &status.completion_time) {
                (Some(start), Some(end)) => {
                    Duration::from_millis(u64::try_from(end.0.as_millisecond() - start.0.as_millisecond()).unwrap_or(0))
                }
                _ => Duration::ZERO,
            };
            let bytes = status.progress.as_ref().map_or(0, |progress| progress.bytes_read);
            ctx.metrics.completed(after == proto::Phase::Succeeded, duration, bytes);
        }
    }
    let removed = decision.actions.iter().any(|action| matches!(action, crate::decide::Action::RemoveFinalizer));
    ctx.metrics.phase(namespace, name, (!removed).then_some(after));
    // A decision that acted looks again soon: what it did may not come back
    // as a watch event (status writes are filtered out, a label removal
    // leaves the watch's selector).
    let acted = decision.status_changed
        || decision.actions.iter().any(|action| !matches!(action, crate::decide::Action::EmitEvent { .. }));
    let requeue = match (decision.requeue, acted && !removed) {
        (requeue, false) => requeue,
        (requeue, true) => requeue.min(Requeue::After(ACTED_REQUEUE)),
    };
    Ok(match requeue {
        Requeue::None => ControllerAction::await_change(),
        Requeue::After(after) => ControllerAction::requeue(after),
    })
}

/// How soon a reconcile that acted looks again.
const ACTED_REQUEUE: Duration = Duration::from_secs(1);

/// The first retry of a failed reconcile waits about this long.
pub const ERROR_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// ... and no retry waits longer than this.
pub const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A failed reconcile (always a transient error: invalid specs end as a
/// Failed status, not here) is retried with exponential backoff and jitter,
/// per restore.
pub fn error_policy(restore: Arc<KubegresRestore>, error: &Error, ctx: Arc<Context>) -> ControllerAction {
    let failures = {
        let mut all = ctx.failures();
        let count = all.entry(ObjectRef::from_obj(restore.as_ref())).or_insert(0);
        *count += 1;
        *count
    };
    let wait = error_backoff(failures, rand::random::<f64>());
    let category = error.category();
    ctx.metrics.reconcile_failed(category);
    tracing::warn!(
        namespace = %restore.namespace().unwrap_or_default(),
        name = %restore.name_any(),
        category,
        failures,
        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "reconcile failed: {error}"
    );
    ControllerAction::requeue(wait)
}

/// The wait after `failures` consecutive failures: doubling from
/// [`ERROR_BACKOFF_BASE`] up to [`ERROR_BACKOFF_MAX`], then scaled by a
/// jitter factor between 0.5 and 1 (`random` in [0, 1)).
pub fn error_backoff(failures: u32, random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let wait = ERROR_BACKOFF_BASE.saturating_mul(1 << exponent).min(ERROR_BACKOFF_MAX);
    wait.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_backoff_doubles_is_capped_and_jittered() {
        assert_eq!(error_backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(error_backoff(1, 0.0), Duration::from_millis(250));
        assert_eq!(error_backoff(2, 1.0), Duration::from_secs(1));
        assert_eq!(error_backoff(4, 1.0), Duration::from_secs(4));
        assert_eq!(error_backoff(30, 1.0), ERROR_BACKOFF_MAX);
        assert_eq!(error_backoff(u32::MAX, 0.0), ERROR_BACKOFF_MAX / 2);
        for failures in 1..40 {
            assert!(error_backoff(failures + 1, 1.0) >= error_backoff(failures, 1.0));
        }
    }
}
