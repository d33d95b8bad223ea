//! A Pod's worker: takes an IP and a directory, runs the init containers one
//! by one and then the containers together, and on deletion stops them
//! (SIGTERM, SIGKILL after the grace period), deletes the Pod with grace 0
//! and frees its IP and directory.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::container::{self, Exit, Restart};
use super::process;
use super::runtime::{PodRuntime, Shared, Stop, Which, lock};

/// The default terminationGracePeriodSeconds.
const DEFAULT_GRACE: i64 = 30;
/// How long SIGKILLed processes may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Starts the worker of a Pod newly bound to this node.
pub(crate) fn start(shared: &Arc<Shared>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        // Nothing runs for it here: let it go.
        let shared = shared.clone();
        tokio::spawn(async move { delete(&shared, &pod).await });
        return;
    }
    if matches!(phase.as_str(), "Succeeded" | "Failed") || shared.stopping() {
        return;
    }
    let Some(ip) = lock(&shared.ips).allocate() else {
        eprintln!("process-kubelet: no free pod IP in {}/24", shared.config.pod_cidr);
        return;
    };
    let dir = shared.config.dir.join("pods").join(&uid);
    let rt = Arc::new(PodRuntime::new(pod, dir, ip));
    lock(&shared.pods).insert(uid, rt.clone());
    tokio::spawn(worker(shared.clone(), rt));
}

async fn worker(shared: Arc<Shared>, rt: Arc<PodRuntime>) {
    let status_writer = tokio::spawn(super::status::writer(shared.clone(), rt.clone()));
    if let Err(error) = std::fs::create_dir_all(&rt.dir) {
        eprintln!("process-kubelet: cannot create {}: {error}", rt.dir.display());
    }
    super::hosts::write(&shared, &rt, &super::hosts::endpoints(&shared));
    rt.dirty.notify_one();

    let mut stop = rt.stop.subscribe();
    let mut lifecycle = Box::pin(lifecycle(shared.clone(), rt.clone()));
    let finished = tokio::select! {
        _ = &mut lifecycle => true,
        _ = stop.wait_for(|stop| *stop != Stop::Run) => false,
    };
    if finished {
        // Terminal: the IP goes back to the pool; the Pod stays until deleted.
        release_ip(&shared, &rt);
        rt.dirty.notify_one();
        let _ = stop.wait_for(|stop| *stop != Stop::Run).await;
    } else {
        let how = *stop.borrow();
        let grace = match how {
            Stop::Graceful => grace_period(&rt.pod()),
            Stop::Shutdown => super::STOP_GRACE,
            Stop::Now | Stop::Run => Duration::ZERO,
        };
        if grace > Duration::ZERO {
            process::terminate_pod(&shared, &rt.uid);
        }
        if tokio::time::timeout(grace, &mut lifecycle).await.is_err() {
            process::kill_pod(&shared, &rt.uid);
            let _ = tokio::time::timeout(KILL_WAIT, &mut lifecycle).await;
        }
        release_ip(&shared, &rt);
    }
    process::kill_pod(&shared, &rt.uid);

    let how = *stop.borrow();
    if how == Stop::Graceful {
        // Let the final container states reach the API first.
        rt.dirty.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        delete(&shared, &rt.pod()).await;
    }
    status_writer.abort();
    if let Some(cgroup) = process::pod_cgroup(&shared, &rt.uid) {
        process::remove_cgroup(&cgroup).await;
    }
    if how != Stop::Shutdown {
        let _ = std::fs::remove_dir_all(&rt.dir);
    }
    lock(&shared.finished).insert(rt.uid.clone());
    lock(&shared.pods).remove(&rt.uid);
    shared.hosts_changed.notify_one();
}

fn release_ip(shared: &Shared, rt: &PodRuntime) {
    if let Some(ip) = lock(&rt.state).ip.take() {
        lock(&shared.ips).release(ip);
    }
}

/// deletionGracePeriodSeconds, else the spec's terminationGracePeriodSeconds, else 30 s.
fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE);
    Duration::from_secs(u64::try_from(seconds.max(0)).unwrap_or(0))
}

/// Init containers one by one, then the containers together.
async fn lifecycle(shared: Arc<Shared>, rt: Arc<PodRuntime>) {
    let pod = rt.pod();
    let spec = pod.spec.clone().unwrap_or_default();
    let restart = Restart::of(spec.restart_policy.as_deref());
    let init_restart = if restart == Restart::Never { Restart::Never } else { Restart::OnFailure };
    for index in 0..spec.init_containers.as_ref().map_or(0, Vec::len) {
        match container::run(shared.clone(), rt.clone(), Which::Init(index), init_restart).await {
            Exit::Succeeded => {}
            Exit::Failed => {
                lock(&rt.state).init_failed = true;
                rt.dirty.notify_one();
                return;
            }
            Exit::Stopped => return,
        }
    }
    let runs =
        (0..spec.containers.len()).map(|index| container::run(shared.clone(), rt.clone(), Which::Main(index), restart));
    join_all(runs).await;
}

/// Deletes the Pod for good (grace 0, only this incarnation of it).
async fn delete(shared: &Shared, pod: &Pod) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
        Err(error) => eprintln!("process-kubelet: cannot delete the Pod {namespace}/{name}: {error}"),
    }
}
