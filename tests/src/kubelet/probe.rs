//! Readiness probes: tcpSocket (port number or named port), httpGet (plain
//! HTTP) and exec (the command run in the container through `pod-init`,
//! with the container's mounts, user and environment). Thresholds, periods
//! and timeouts as in the Probe spec. Liveness and startup probes are not run.

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

/// Probes until aborted (when the container exits), setting the container's `ready`.
pub(crate) async fn readiness(
    shared: Arc<Shared>,
    rt: Arc<PodRuntime>,
    which: Which,
    probe: Probe,
    container: Container,
    prepared: Arc<Prepared>,
) {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let (mut successes, mut failures) = (0, 0);
    let mut ready = false;
    loop {
        let ok = check(&shared, &rt, &probe, &container, &prepared, timeout).await;
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
            rt.update(which, |record| record.ready = ready);
        }
        tokio::time::sleep(period).await;
    }
}

async fn check(
    shared: &Shared,
    rt: &PodRuntime,
    probe: &Probe,
    container: &Container,
    prepared: &Prepared,
    timeout: Duration,
) -> bool {
    let pod_ip = lock(&rt.state).ip_shown;
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
        return exec_probe(shared, rt, prepared, exec.command.clone().unwrap_or_default(), timeout).await;
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

/// Runs `command` in the container; success is exit code 0 within the timeout.
async fn exec_probe(
    shared: &Shared,
    rt: &PodRuntime,
    prepared: &Prepared,
    command: Vec<String>,
    timeout: Duration,
) -> bool {
    let Some(program) = command.first().cloned() else { return false };
    let plan = Plan { program, argv: command, error_file: None, ..prepared.plan.clone() };
    let path = prepared.plan_path.with_file_name("probe-plan.json");
    if plan.write(&path).is_err() {
        return false;
    }
    let Ok((mut child, pgid)) = process::spawn_exec(shared, &rt.uid, prepared, &path) else { return false };
    let outcome = tokio::time::timeout(timeout, child.wait()).await;
    process::reap_group(shared, pgid);
    matches!(outcome, Ok(Ok(status)) if status.success())
}
