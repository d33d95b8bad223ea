//! The Pod status as kubelet writes it: phase (kubelet's getPhase), the
//! conditions (lastTransitionTime only on a change), pod and host IPs,
//! start time, and the container statuses. Written with a strategic merge
//! patch of the status subresource, only when it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::container::Restart;
use super::runtime::{ContainerRecord, ContainerState, PodRuntime, PodState, Shared, Terminated, lock};

/// Patches the status whenever it changes, until aborted.
pub(crate) async fn writer(shared: Arc<Shared>, rt: Arc<PodRuntime>) {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(shared.client.clone(), &rt.namespace);
    let mut last: Option<Value> = None;
    loop {
        rt.dirty.notified().await;
        // Gather changes that come together (a container and its probe).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let status = build(&rt);
        if last.as_ref() == Some(&status) {
            continue;
        }
        let patch = json!({ "status": status });
        match api.patch_status(&rt.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => last = Some(status),
            Err(kube::Error::Api(error)) if error.code == 404 => return,
            Err(error) => {
                eprintln!("process-kubelet: cannot write the status of Pod {}/{}: {error}", rt.namespace, rt.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
                rt.dirty.notify_one();
            }
        }
    }
}

/// The phase as kubelet's getPhase computes it.
pub(crate) fn phase(state: &PodState, restart: Restart) -> &'static str {
    if state.init_failed {
        return "Failed";
    }
    let initialized = state.init.iter().all(|c| matches!(&c.state, ContainerState::Terminated(t) if t.exit_code == 0));
    if !initialized {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for container in &state.main {
        match &container.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } if container.last.is_some() => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    match () {
        () if waiting > 0 => "Pending",
        () if running > 0 => "Running",
        () if stopped > 0 => {
            let restarting = state.main.iter().any(|c| matches!(c.state, ContainerState::Waiting { .. }));
            if restarting || restart == Restart::Always {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if restart == Restart::Never {
                "Failed"
            } else {
                "Running"
            }
        }
        () => "Pending",
    }
}

fn time(at: Timestamp) -> Time {
    Time(at)
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: Some(time(t.started_at)),
        finished_at: Some(time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(record: &ContainerRecord) -> ContainerStatus {
    let state = match &record.state {
        ContainerState::Waiting { reason, message } => K8sState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        ContainerState::Running { started_at } => K8sState {
            running: Some(ContainerStateRunning { started_at: Some(time(*started_at)) }),
            ..Default::default()
        },
        ContainerState::Terminated(t) => K8sState { terminated: Some(terminated(t)), ..Default::default() },
    };
    let running = matches!(record.state, ContainerState::Running { .. });
    ContainerStatus {
        name: record.name.clone(),
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        container_id: record.container_id.clone(),
        ready: record.ready,
        started: Some(record.started && running),
        restart_count: record.restart_count,
        state: Some(state),
        last_state: Some(
            record
                .last
                .as_ref()
                .map_or_else(Default::default, |t| K8sState { terminated: Some(terminated(t)), ..Default::default() }),
        ),
        ..Default::default()
    }
}

/// Sets a condition's status, keeping its lastTransitionTime unless it changed.
fn condition(
    state: &mut PodState,
    type_: &'static str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> Value {
    let now = Timestamp::now();
    let entry = state.transitions.entry(type_).or_insert((ok, now));
    if entry.0 != ok {
        *entry = (ok, now);
    }
    json!({
        "type": type_,
        "status": if ok { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": time(entry.1),
    })
}

/// The status to write, as JSON.
pub(crate) fn build(rt: &PodRuntime) -> Value {
    let pod = rt.pod();
    let restart = Restart::of(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()));
    let mut state = lock(&rt.state);
    let phase = phase(&state, restart);

    let not_done: Vec<String> = state
        .init
        .iter()
        .filter(|c| !matches!(&c.state, ContainerState::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.clone())
        .collect();
    let unready: Vec<String> = state.main.iter().filter(|c| !c.ready).map(|c| c.name.clone()).collect();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let initialized = not_done.is_empty() || (terminal && !state.init_failed);
    let sandbox_ready = state.ip.is_some();

    let mut conditions = vec![condition(&mut state, "PodReadyToStartContainers", sandbox_ready, None, None)];
    conditions.push(if initialized {
        condition(&mut state, "Initialized", true, None, None)
    } else {
        let message = format!("containers with incomplete status: [{}]", not_done.join(" "));
        condition(&mut state, "Initialized", false, Some("ContainersNotInitialized"), Some(message))
    });
    let (ready, reason, message) = if phase == "Succeeded" {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() && !terminal {
        (true, None, None)
    } else if !initialized {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", not_done.join(" "))),
        )
    } else {
        (false, Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
    };
    conditions.push(condition(&mut state, "ContainersReady", ready, reason, message.clone()));
    conditions.push(condition(&mut state, "Ready", ready, reason, message));

    let ip = state.ip_shown.to_string();
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{ "ip": "127.0.0.1" }],
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "startTime": time(state.start_time),
        "containerStatuses": state.main.iter().map(container_status).collect::<Vec<_>>(),
    });
    if !state.init.is_empty() {
        status["initContainerStatuses"] = json!(state.init.iter().map(container_status).collect::<Vec<_>>());
    }
    status
}
