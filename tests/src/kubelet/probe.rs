//! Probes, as kubelet's prober runs them: tcpSocket (port number or named
//! port), httpGet (plain HTTP) and exec (the command run in the container's
//! namespaces through `pod-init`, with its user and environment).
//! Thresholds, periods and timeouts as in the Probe spec.
//!
//! A startup probe runs first; until it succeeds the container is not
//! `started` and neither readiness nor liveness is probed. Readiness sets
//! the container's `ready`. A liveness (or startup) probe that fails
//! `failureThreshold` times in a row ends [`watch`]: the container is then
//! killed and restarted as its restart policy says.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::plan::Plan;
use super::prepare::Prepared;
use super::process;
use super::runtime::{PodRuntime, Shared, Which, lock};

fn seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default).max(0)).unwrap_or(0))
}

/// Which probe failed, in kubelet's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    Liveness,
    Startup,
}

impl Failed {
    /// kubelet's message when it kills the container.
    pub fn message(self, container: &str) -> String {
        match self {
            Self::Liveness => format!("Container {container} failed liveness probe, will be restarted"),
            Self::Startup => format!("Container {container} failed startup probe, will be restarted"),
        }
    }
}

/// A running container, as the prober sees it.
#[derive(Clone)]
pub(crate) struct Target {
    pub shared: Arc<Shared>,
    pub rt: Arc<PodRuntime>,
    pub which: Which,
    pub container: Container,
    pub prepared: Arc<Prepared>,
    /// The container's main process (exec probes join its namespaces).
    pub pid: i32,
}

/// Runs the container's probes; returns only when a liveness or startup
/// probe failed for good (the container must be killed).
pub(crate) async fn watch(target: Target) -> Failed {
    if !matches!(target.which, Which::Main(_)) {
        return std::future::pending().await;
    }
    if let Some(startup) = target.container.startup_probe.clone() {
        if !until_success(&target, &startup).await {
            return Failed::Startup;
        }
        let ready = target.container.readiness_probe.is_none();
        target.rt.update(target.which, |record| {
            record.started = true;
            record.ready = ready;
        });
    }
    let readiness = target.container.readiness_probe.clone().map(|probe| {
        let target = target.clone();
        tokio::spawn(async move { readiness(&target, &probe).await })
    });
    let _abort = AbortOnDrop(readiness);
    match target.container.liveness_probe.clone() {
        Some(liveness) => {
            until_failure(&target, &liveness).await;
            Failed::Liveness
        }
        None => std::future::pending().await,
    }
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Probes until one success (startup probes have a success threshold of 1);
/// `false` after `failureThreshold` failures in a row.
async fn until_success(target: &Target, probe: &Probe) -> bool {
    let kind = "startup";
    let (period, timeout, failure_threshold) = timing(probe);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let mut failures = 0;
    loop {
        if check(target, probe, timeout, kind).await {
            return true;
        }
        failures += 1;
        if failures >= failure_threshold {
            return false;
        }
        tokio::time::sleep(period).await;
    }
}

/// Probes until `failureThreshold` failures in a row.
async fn until_failure(target: &Target, probe: &Probe) {
    let kind = "liveness";
    let (period, timeout, failure_threshold) = timing(probe);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let mut failures = 0;
    loop {
        if check(target, probe, timeout, kind).await {
            failures = 0;
        } else {
            failures += 1;
            if failures >= failure_threshold {
                return;
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// Probes forever, setting the container's `ready`.
async fn readiness(target: &Target, probe: &Probe) {
    let kind = "readiness";
    let (period, timeout, failure_threshold) = timing(probe);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let (mut successes, mut failures) = (0, 0);
    let mut ready = false;
    loop {
        let ok = check(target, probe, timeout, kind).await;
        if ok {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        let now_ready =
            if ok { ready || successes >= success_threshold } else { ready && failures < failure_threshold };
        if now_ready != ready {
            ready = now_ready;
            target.rt.update(target.which, |record| record.ready = ready);
        }
        tokio::time::sleep(period).await;
    }
}

/// (period, timeout, failureThreshold) with the Probe spec's defaults.
fn timing(probe: &Probe) -> (Duration, Duration, i32) {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    (period, timeout, probe.failure_threshold.unwrap_or(3).max(1))
}

async fn check(target: &Target, probe: &Probe, timeout: Duration, kind: &str) -> bool {
    let pod_ip = lock(&target.rt.state).ip_shown;
    let container = &target.container;
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(number) => u16::try_from(*number).ok(),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let host_of = |host: Option<&String>| -> IpAddr { host.and_then(|h| h.parse().ok()).unwrap_or(IpAddr::V4(pod_ip)) };
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(&tcp.port) else { return false };
        let address = SocketAddr::new(host_of(tcp.host.as_ref()), port);
        return matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await, Ok(Ok(_)));
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port_of(&http.port) else { return false };
        if http.scheme.as_deref().is_some_and(|scheme| scheme.eq_ignore_ascii_case("HTTPS")) {
            return false;
        }
        let address = SocketAddr::new(host_of(http.host.as_ref()), port);
        let path = http.path.clone().unwrap_or_else(|| "/".to_string());
        return tokio::time::timeout(timeout, http_get(address, &path)).await.unwrap_or(false);
    }
    if let Some(exec) = &probe.exec {
        return exec_probe(target, exec.command.clone().unwrap_or_default(), timeout, kind).await;
    }
    false
}

/// A GET answered with a 2xx or 3xx status.
async fn http_get(address: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else { return false };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: kube-probe/process-kubelet\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let Ok(read) = stream.read(&mut head).await else { return false };
    let line = String::from_utf8_lossy(&head[..read]);
    let code = line.split_whitespace().nth(1).and_then(|code| code.parse::<u16>().ok());
    code.is_some_and(|code| (200..400).contains(&code))
}

/// Runs `command` in the container's namespaces; success is exit code 0
/// within the timeout.
async fn exec_probe(target: &Target, command: Vec<String>, timeout: Duration, kind: &str) -> bool {
    let Some(program) = command.first().cloned() else { return false };
    let plan = Plan {
        program,
        argv: command,
        error_file: None,
        mounts: Vec::new(),
        rootfs: None,
        join: Some(target.pid),
        ..target.prepared.plan.clone()
    };
    let path = target.prepared.plan_path.with_file_name(format!("probe-{kind}.json"));
    if plan.write(&path).is_err() {
        return false;
    }
    let Ok((mut child, pgid)) = process::spawn_exec(&target.shared, &target.rt.uid, &target.prepared, &path) else {
        return false;
    };
    let outcome = tokio::time::timeout(timeout, child.wait()).await;
    process::reap_group(&target.shared, pgid);
    matches!(outcome, Ok(Ok(status)) if status.success())
}
