//! Shared set-up of the operator's tests: one control plane per test binary
//! with the CRDs and the RBAC of deploy/ installed (harness::deploy's), an operator running
//! in-process under the ServiceAccount identity deploy/ grants, and helpers
//! that play the parts nobody runs here (no kubelet, no Kubegres operator):
//! they set Pod statuses and create the primary Pod themselves.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use operator::controller::{self, Config};
use operator::health::Health;
use operator::metrics::Metrics;
use proto::KubegresRestore;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a test waits for the operator to get somewhere.
pub const WAIT: Duration = Duration::from_secs(30);

pub use harness::deploy::{admin, control_plane};

/// A test's world: its namespace, an admin client, and the operator.
pub struct World {
    pub admin: kube::Client,
    pub ns: String,
    pub operator: Operator,
}

/// An operator running in-process, watching one namespace.
pub struct Operator {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Operator {
    /// Starts the controller as the operator's ServiceAccount.
    pub async fn start(ns: &str) -> Operator {
        let client = harness::deploy::operator_client(control_plane()).await;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let (stop, mut stopped) = watch::channel(false);
        let config = Config {
            namespace: Some(ns.to_string()),
            agent_image: "registry.test/restore-agent:test".to_string(),
            instance: Some(format!("test-{ns}")),
            concurrency: 4,
        };
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let task = tokio::spawn(controller::run(client, config, metrics.clone(), health.clone(), shutdown));
        Operator { metrics, health, stop, task }
    }

    /// Stops it and waits until it has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT, self.task).await.expect("the controller stops").expect("the controller task");
    }

    /// `kubegres_restore_reconciles_total`.
    pub fn reconciles(&self) -> u64 {
        metric(&self.metrics.encode(), "kubegres_restore_reconciles_total")
    }
}

/// A metric's value in the text format (0 when absent).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

impl World {
    /// A fresh namespace and an operator watching it.
    pub async fn new(ns: &str) -> World {
        let admin = admin().await;
        harness::deploy::create_namespace(&admin, ns).await;
        let operator = Operator::start(ns).await;
        World { admin, ns: ns.to_string(), operator }
    }

    pub fn restores(&self) -> Api<KubegresRestore> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn kubegres(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), &self.ns, &operator::kubegres::api_resource())
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    /// Creates a KubegresRestore from YAML-like JSON.
    pub async fn create_restore(&self, name: &str, spec: Value) -> KubegresRestore {
        let restore: KubegresRestore = serde_json::from_value(json!({
            "apiVersion": "kubegres.reactive-tech.io/v1",
            "kind": "KubegresRestore",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }))
        .unwrap();
        self.restores().create(&PostParams::default(), &restore).await.unwrap_or_else(|e| panic!("create {name}: {e}"))
    }

    /// Waits until `check` returns `Some` for the restore.
    pub async fn wait_restore<T>(&self, name: &str, what: &str, check: impl Fn(&KubegresRestore) -> Option<T>) -> T {
        let restores = self.restores();
        wait(what, || async {
            let restore = restores.get_opt(name).await.unwrap()?;
            check(&restore)
        })
        .await
    }

    /// Waits for the restore's phase.
    pub async fn wait_phase(&self, name: &str, phase: proto::Phase) -> KubegresRestore {
        self.wait_restore(name, &format!("{name} to reach {phase}"), |restore| {
            (restore.status.as_ref().map(|status| status.phase()) == Some(phase)).then(|| restore.clone())
        })
        .await
    }

    /// Waits until the Pod exists and returns it.
    pub async fn wait_pod(&self, name: &str) -> Pod {
        let pods = self.pods();
        wait(&format!("Pod {name} to exist"), || async {
            pods.get_opt(name).await.unwrap().filter(|pod| pod.metadata.deletion_timestamp.is_none())
        })
        .await
    }

    /// Waits until the object is gone.
    pub async fn wait_gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        wait(&format!("{name} to be deleted"), || async { api.get_opt(name).await.unwrap().is_none().then_some(()) })
            .await
    }

    /// Plays the kubelet: the restore Pod's agent container ran and exited.
    pub async fn finish_pod(&self, name: &str, exit_code: i32, message: &str) {
        let phase = if exit_code == 0 { "Succeeded" } else { "Failed" };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "phase": phase,
            "containerStatuses": [{
                "name": operator::decide::AGENT_CONTAINER,
                "ready": false,
                "restartCount": 0,
                "image": "registry.test/restore-agent:test",
                "imageID": "",
                "state": {"terminated": {
                    "exitCode": exit_code,
                    "reason": if exit_code == 0 { "Completed" } else { "Error" },
                    "message": message,
                    "startedAt": now,
                    "finishedAt": now,
                }},
            }],
        }});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|error| panic!("set the status of Pod {name}: {error}"));
    }

    /// Plays the kubelet: the Pod runs.
    pub async fn run_pod(&self, name: &str) {
        let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        self.pods().patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }

    /// Plays the Kubegres operator: the cluster's primary Pod, Ready.
    pub async fn start_primary(&self, cluster: &str) {
        let name = format!("{cluster}-1-0");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": cluster, "replicationRole": "primary"}},
            "spec": {"containers": [{"name": "postgres", "image": "postgres:17"}]},
        }))
        .unwrap();
        self.pods().create(&PostParams::default(), &pod).await.unwrap();
        self.run_pod(&name).await;
    }

    /// The reasons of the Events recorded on the restore, oldest first.
    pub async fn event_reasons(&self, restore: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.admin.clone(), &self.ns);
        let mut list = events.list(&ListParams::default()).await.unwrap().items;
        list.retain(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(restore));
        list.sort_by_key(|event| event.event_time.as_ref().map(|time| time.0));
        list.into_iter().map(|event| (event.type_.unwrap_or_default(), event.reason.unwrap_or_default())).collect()
    }
}

impl World {
    /// Waits until the restore has Events of these (type, reason) — they are
    /// recorded just after the status that the tests wait for.
    pub async fn wait_events(&self, restore: &str, expected: &[(&str, &str)]) {
        let what = format!("Events {expected:?} on {restore}");
        wait(&what, || async {
            let events = self.event_reasons(restore).await;
            expected.iter().all(|(type_, reason)| events.iter().any(|(t, r)| t == type_ && r == reason)).then_some(())
        })
        .await
    }
}

/// The condition of a type: (status, reason, message).
pub use harness::localcluster::world::condition;

/// Checks `check` until it returns `Some`, for at most [`WAIT`].
pub async fn wait<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    harness::wait::until(what, WAIT, check).await
}
