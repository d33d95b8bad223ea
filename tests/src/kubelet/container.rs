//! One container's life: prepare (retried every 2 s while blocked), start
//! through `pod-init`, wait, record how it ended (exit code, reason,
//! termination message), and restart with a growing backoff as the restart
//! policy says.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use super::prepare::{Prepared, container_spec, prepare, start_error_file};
use super::probe;
use super::process;
use super::runtime::{ContainerState, PodRuntime, Shared, Stop, Terminated, Which, lock};

/// How often a blocked container (missing Secret...) is tried again.
const BLOCKED_RETRY: Duration = Duration::from_secs(2);
/// The first restart backoff, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A container that ran this long restarts with the first backoff again.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// What kubelet keeps of a termination message.
const MAX_MESSAGE_BYTES: usize = 4096;
/// FallbackToLogsOnError: the end of the log, at most this many lines and bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

pub(crate) use super::prepare::log_path;

/// When a container restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    pub fn of(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }
}

/// How a container's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Succeeded,
    Failed,
    Stopped,
}

/// Waits `duration`, or less when the Pod must stop. Returns whether it must stop.
async fn pause(rt: &PodRuntime, duration: Duration) -> bool {
    let mut stop = rt.stop.subscribe();
    let stopping = async {
        let _ = stop.wait_for(|stop| *stop != Stop::Run).await;
    };
    tokio::select! {
        () = stopping => true,
        () = tokio::time::sleep(duration) => rt.stop_requested() != Stop::Run,
    }
}

/// Runs the container until it is done for good (per `restart`) or the Pod stops.
pub(crate) async fn run(shared: Arc<Shared>, rt: Arc<PodRuntime>, which: Which, restart: Restart) -> Exit {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if rt.stop_requested() != Stop::Run || shared.stopping() {
            return Exit::Stopped;
        }
        let pod = rt.pod();
        let Some(container) = container_spec(&pod, which) else { return Exit::Failed };
        let Some(pod_ip) = lock(&rt.state).ip else { return Exit::Stopped };
        let prepared = match prepare(&shared, &rt, &pod, &container, pod_ip).await {
            Ok(prepared) => prepared,
            Err(blocked) => {
                rt.update(which, |record| {
                    record.state =
                        ContainerState::Waiting { reason: blocked.reason.to_string(), message: Some(blocked.message) };
                });
                if pause(&rt, BLOCKED_RETRY).await {
                    return Exit::Stopped;
                }
                continue;
            }
        };
        if rt.stop_requested() != Stop::Run || shared.stopping() {
            return Exit::Stopped;
        }

        note(&prepared);
        let log_offset = std::fs::metadata(&prepared.log_path).map(|m| m.len()).unwrap_or(0);
        let started_at = Timestamp::now();
        let started = Instant::now();
        let (code, signal, pgid) = match process::spawn(&shared, &rt.uid, &prepared) {
            Ok((mut child, pgid)) => {
                let container_id = format!("process://{pgid}");
                let is_main = matches!(which, Which::Main(_));
                let started_now = !is_main || container.startup_probe.is_none();
                rt.update(which, |record| {
                    record.state = ContainerState::Running { started_at };
                    record.container_id = Some(container_id);
                    record.image_id = prepared.image_id.clone();
                    record.started = started_now;
                    record.ready = is_main && started_now && container.readiness_probe.is_none();
                });
                let probes = probe::watch(probe::Target {
                    shared: shared.clone(),
                    rt: rt.clone(),
                    which,
                    container: container.clone(),
                    prepared: Arc::new(prepared.clone()),
                    pid: pgid,
                });
                let status = tokio::select! {
                    status = child.wait() => status,
                    failed = probes => {
                        // As kubelet: kill the container (SIGTERM, SIGKILL after
                        // the grace period), then restart it per its policy.
                        eprintln!("process-kubelet: {} ({})", failed.message(&container.name), rt.describe());
                        let grace = kill_grace(&rt.pod(), &container, failed);
                        process::signal_main(pgid, nix::sys::signal::Signal::SIGTERM);
                        match tokio::time::timeout(grace, child.wait()).await {
                            Ok(status) => status,
                            Err(_) => {
                                process::reap_container(&shared, pgid, prepared.plan.cgroup.as_deref());
                                child.wait().await
                            }
                        }
                    }
                };
                process::reap_container(&shared, pgid, prepared.plan.cgroup.as_deref());
                match status {
                    Ok(status) => (status.code(), status.signal(), pgid),
                    Err(_) => (None, Some(9), pgid),
                }
            }
            Err(error) => {
                let _ =
                    std::fs::write(start_error_file(&rt, &container.name), format!("cannot start pod-init: {error}"));
                (Some(super::plan::START_ERROR_EXIT_CODE), None, 0)
            }
        };
        let ran = started.elapsed();
        let exit_code = code.unwrap_or_else(|| 128 + signal.unwrap_or(9));
        let start_error =
            std::fs::read_to_string(start_error_file(&rt, &container.name)).ok().filter(|e| !e.is_empty());
        let (reason, message) = match &start_error {
            Some(error) => ("StartError", Some(error.clone())),
            None => (
                if exit_code == 0 { "Completed" } else { "Error" },
                termination_message(&prepared, exit_code, log_offset),
            ),
        };
        let terminated = Terminated {
            exit_code,
            signal,
            reason: reason.to_string(),
            message,
            started_at,
            finished_at: Timestamp::now(),
            container_id: (pgid > 0).then(|| format!("process://{pgid}")),
        };
        let stopping = rt.stop_requested() != Stop::Run || shared.stopping();
        let again = !stopping
            && match restart {
                Restart::Always => true,
                Restart::OnFailure => exit_code != 0,
                Restart::Never => false,
            };
        if !again {
            rt.update(which, |record| {
                record.state = ContainerState::Terminated(terminated);
                record.ready = matches!(which, Which::Init(_)) && exit_code == 0;
            });
            return match (stopping, exit_code) {
                (true, _) => Exit::Stopped,
                (false, 0) => Exit::Succeeded,
                (false, _) => Exit::Failed,
            };
        }
        if ran >= BACKOFF_RESET {
            backoff = FIRST_BACKOFF;
        }
        let message = format!(
            "back-off {}s restarting failed container={} pod={}",
            backoff.as_secs(),
            container.name,
            rt.describe()
        );
        rt.update(which, |record| {
            record.last = Some(terminated);
            record.state = ContainerState::Waiting { reason: "CrashLoopBackOff".to_string(), message: Some(message) };
            record.ready = false;
            record.restart_count += 1;
        });
        if pause(&rt, backoff).await {
            return Exit::Stopped;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The grace period of a container killed for a failed probe: the probe's
/// terminationGracePeriodSeconds, else the Pod's, else 30 s.
fn kill_grace(
    pod: &k8s_openapi::api::core::v1::Pod,
    container: &k8s_openapi::api::core::v1::Container,
    failed: probe::Failed,
) -> Duration {
    let probe = match failed {
        probe::Failed::Liveness => container.liveness_probe.as_ref(),
        probe::Failed::Startup => container.startup_probe.as_ref(),
    };
    let seconds = probe
        .and_then(|p| p.termination_grace_period_seconds)
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds.max(0)).unwrap_or(0))
}

/// Starts the container's log with what runs instead of its image.
fn note(prepared: &Prepared) {
    use std::io::Write as _;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&prepared.log_path)
        .and_then(|mut log| writeln!(log, "{}", prepared.start_note));
    if let Err(error) = appended {
        eprintln!("process-kubelet: cannot write {}: {error}", prepared.log_path.display());
    }
}

/// The termination message: the file (at most 4096 bytes); with
/// FallbackToLogsOnError, an empty file and a failure, the end of this run's log.
fn termination_message(prepared: &Prepared, exit_code: i32, log_offset: u64) -> Option<String> {
    let from_file = read_prefix(&prepared.termination_file, MAX_MESSAGE_BYTES);
    if !from_file.is_empty() {
        return Some(from_file);
    }
    if prepared.fallback_to_logs && exit_code != 0 {
        let tail = log_tail(&prepared.log_path, log_offset);
        return (!tail.is_empty()).then_some(tail);
    }
    None
}

fn read_prefix(path: &Path, max: usize) -> String {
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(max as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last [`FALLBACK_LINES`] lines, at most [`FALLBACK_BYTES`] bytes, of the log written since `offset`.
fn log_tail(path: &PathBuf, offset: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = offset.max(len.saturating_sub(FALLBACK_BYTES as u64));
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(FALLBACK_LINES)..].join("\n")
}
