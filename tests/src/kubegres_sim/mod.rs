//! A SIMULATED Kubegres controller: a reimplementation, for the local
//! cluster, of what Kubegres v1.19 (github.com/reactive-tech/kubegres)
//! publishes in its source, templates and documentation
//! (see /work/shared/design/kubegres-facts.md). Its objects are handed to
//! the real kube-controller-manager, so StatefulSets, PVCs, Jobs and the
//! garbage collector are the real ones.
//!
//! For every `Kubegres`, level-triggered, in Kubegres's order:
//! - the defaults written back into the spec (`port`, `database.volumeMount`,
//!   `customConfig: base-kubegres-config`, the default StorageClass,
//!   `scheduler.affinity`), refused with Event `DefaultStorageClassNameErr`
//!   when there is no default StorageClass ([`spec::defaults`]);
//! - Kubegres's blocking operations in `status.blockingOperation` (one at a
//!   time, with its timeouts: nothing else is done while one runs);
//! - the spec check and its refusals (Event `SpecCheckErr`, and rollbacks
//!   of `database.size`, `volumeMount`, `storageClassName`) ([`spec::check`]);
//! - the ConfigMap `base-kubegres-config` per namespace ([`base_config`]);
//! - one StatefulSet per instance, `<name>-<index>` (index from 1, counted
//!   in `status.lastCreatedInstanceIndex`, never reused), with the claim
//!   template `postgres-db` ([`templates`]): the primary first, runs initdb
//!   and the init scripts; replicas once it is Ready, each cloning it with
//!   `pg_basebackup -R` and streaming from it; scaling down deletes the
//!   highest index; a replica that stops being Ready is replaced;
//! - the Services `<name>` (once the primary is Ready) and `<name>-replica`
//!   (once a replica is Ready), found by owner: a Service of that name that
//!   it did not create fails every later pass;
//! - the backup CronJob `backup-<name>` when `spec.backup.schedule` is set,
//!   recreated when its schedule, mount, PVC or script ConfigMap change;
//! - `status.enforcedReplicas` and `status.lastCreatedInstanceIndex`.
//!
//! Not reproduced: failover and `spec.failover.promotePod` (a lost primary
//! stays lost), the updates of existing StatefulSets when the spec's image,
//! port, resources, probes, affinity, volumes or security contexts change,
//! the recreation of stuck Pods, and the real CRD's validation (the
//! stand-in CRD accepts any spec).

mod base_config;
mod enforce;
mod observe;
mod spec;
mod templates;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use base_config::BASE_CONFIG_MAP;
pub use templates::CRON_JOB_PREFIX;

/// How often the whole state is reconciled even without a watch event.
const RESYNC: Duration = Duration::from_secs(2);

/// The field manager of the simulated controller.
const FIELD_MANAGER: &str = "kubegres-simulated";

/// What a pass can fail on.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the Kubegres spec cannot be read: {0}")]
    Spec(#[source] serde_json::Error),
    #[error("the {what} built from the template is not valid: {source}")]
    Template {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// `map_err` for an API call: names what was attempted.
fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Api { what, source }
}

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

    /// Stops the controller (what it created stays, as when Kubegres stops).
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

/// The data volume of instance `index` of a cluster, as the StatefulSet
/// `<name>-<index>` claims it.
pub fn data_volume(cluster: &str, index: i64) -> String {
    format!("{}-{cluster}-{index}-0", templates::DATABASE_VOLUME)
}

/// What every pass shares: the client and the Events already reported.
pub(crate) struct Ctx {
    client: kube::Client,
    /// The last message per (Kubegres uid, reason), so that a condition
    /// that lasts is reported once, not on every pass.
    reported: Mutex<HashMap<(String, String), String>>,
}

impl Ctx {
    /// An Event on the Kubegres, as Kubegres's `InfoEvent`/`ErrorEvent` records it.
    async fn event(&self, cluster: &DynamicObject, warning: bool, reason: &str, message: &str) {
        let key = (cluster.uid().unwrap_or_default(), reason.to_string());
        {
            let mut reported = self.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if reported.get(&key).is_some_and(|last| last == message) {
                return;
            }
            reported.insert(key, message.to_string());
        }
        let namespace = cluster.namespace().unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now();
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", cluster.name_any()), "namespace": namespace},
            "involvedObject": {
                "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres",
                "name": cluster.name_any(), "namespace": namespace, "uid": cluster.uid(),
            },
            "reason": reason, "message": message, "type": if warning { "Warning" } else { "Normal" },
            "source": {"component": "Kubegres"}, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
        });
        let posted = match serde_json::from_value::<k8s_openapi::api::core::v1::Event>(event) {
            Ok(event) => {
                let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), &namespace);
                api.create(&PostParams::default(), &event).await.map(drop).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = posted {
            tracing::warn!("simulated Kubegres: cannot record the Event {reason}: {error}");
        }
        tracing::info!("simulated Kubegres {namespace}/{}: {reason}: {message}", cluster.name_any());
    }
}

async fn run(client: kube::Client) {
    let wake = Arc::new(Notify::new());
    let ctx = Ctx { client: client.clone(), reported: Mutex::default() };
    let kubegres: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource());
    let watch_kubegres = {
        let wake = wake.clone();
        watcher(kubegres, watcher::Config::default()).for_each(move |_| {
            wake.notify_one();
            futures::future::ready(())
        })
    };
    let watch_sets = {
        let wake = wake.clone();
        watcher(Api::<StatefulSet>::all(client.clone()), watcher::Config::default()).for_each(move |_| {
            wake.notify_one();
            futures::future::ready(())
        })
    };
    let watch_services = {
        let wake = wake.clone();
        watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).for_each(move |_| {
            wake.notify_one();
            futures::future::ready(())
        })
    };
    let passes = async {
        loop {
            if let Err(error) = sync(&ctx).await {
                tracing::warn!("simulated Kubegres: {error}");
            }
            let _ = tokio::time::timeout(RESYNC, wake.notified()).await;
        }
    };
    // One task, so that aborting it stops the watches too.
    tokio::select! {
        _ = watch_kubegres => {}
        _ = watch_sets => {}
        _ = watch_services => {}
        _ = passes => {}
    }
}

/// One pass over every Kubegres that is not being deleted (the garbage
/// collector removes the children of a deleted one; its PVCs stay).
async fn sync(ctx: &Ctx) -> Result<(), SimError> {
    let kubegres: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &api_resource());
    let clusters = kubegres.list(&ListParams::default()).await.map_err(api("list the Kubegres"))?.items;
    for cluster in clusters.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        if let Err(error) = enforce::pass(ctx, cluster).await {
            tracing::warn!(
                "simulated Kubegres {}/{}: {error}",
                cluster.namespace().unwrap_or_default(),
                cluster.name_any()
            );
        }
    }
    Ok(())
}
