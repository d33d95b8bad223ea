//! The operator as its own process, restarted when it exits, as its
//! Deployment's Pod would be (with a CrashLoopBackOff-like delay).
//!
//! It runs with `DIR/operator/kubeconfig`, which holds the operator
//! ServiceAccount's token, and the environment `deploy/operator/deployment.yaml`
//! gives it (POD_NAME, POD_NAMESPACE, JSON logs); its log is
//! `DIR/logs/operator.log` (appended across restarts) and its current PID is in
//! `DIR/operator.pid`, so a test can kill it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The identity (POD_NAME) the operator runs under.
pub const OPERATOR_POD_NAME: &str = "kubegres-restore-operator-local";

/// The restart delay doubles from this up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long resets the delay.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a stopping operator may take after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs and restarts the operator.
pub struct OperatorSupervisor {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    http_addr: SocketAddr,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
}

impl OperatorSupervisor {
    /// Starts the operator; returns once its process runs.
    pub async fn start(bin: &Path, kubeconfig: &Path, dir: &Path) -> Result<OperatorSupervisor, String> {
        let http_addr = crate::http::free_loopback_addr().map_err(|e| format!("no free port: {e}"))?;
        let launch = Launch {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            log: dir.join("logs").join("operator.log"),
            pid_file: dir.join("operator.pid"),
            http_addr,
        };
        let first = launch.spawn()?;
        let pid = Arc::new(AtomicU32::new(first.id().unwrap_or_default()));
        let restarts = Arc::new(AtomicU32::new(0));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(launch, first, stopped, pid.clone(), restarts.clone()));
        Ok(OperatorSupervisor { stop, task: Some(task), http_addr, pid, restarts })
    }

    /// Where the operator serves /healthz, /readyz and /metrics.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The running operator's PID (0 between restarts).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// SIGTERM (the operator releases its Lease and exits), SIGKILL after a grace period.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OperatorSupervisor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort(); // the child is killed on drop
        }
    }
}

struct Launch {
    bin: PathBuf,
    kubeconfig: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
    http_addr: SocketAddr,
}

impl Launch {
    fn spawn(&self) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let child = Command::new(&self.bin)
            .env_clear()
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", OPERATOR_POD_NAME)
            .env("POD_NAMESPACE", crate::deploy::NAMESPACE)
            .env("OPERATOR_LOG_FORMAT", "json")
            .env("OPERATOR_LOG", "info")
            .args(["--http-addr", &self.http_addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| format!("cannot open {}: {e}", self.log.display()))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let pid = child.id().unwrap_or_default();
        std::fs::write(&self.pid_file, format!("{pid}\n"))
            .map_err(|e| format!("cannot write {}: {e}", self.pid_file.display()))?;
        Ok(child)
    }
}

async fn supervise(
    launch: Launch,
    mut child: Child,
    mut stopped: watch::Receiver<bool>,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stopped.wait_for(|stop| *stop) => None,
        };
        let Some(status) = exited else {
            terminate(&mut child).await;
            pid.store(0, Ordering::SeqCst);
            let _ = std::fs::remove_file(&launch.pid_file);
            return;
        };
        pid.store(0, Ordering::SeqCst);
        let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!("the operator exited ({status}); restarting it in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        match launch.spawn() {
            Ok(next) => {
                pid.store(next.id().unwrap_or_default(), Ordering::SeqCst);
                restarts.fetch_add(1, Ordering::SeqCst);
                child = next;
            }
            Err(error) => {
                tracing::error!("cannot restart the operator: {error}");
                return;
            }
        }
    }
}

async fn terminate(child: &mut Child) {
    if let Some(id) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(id), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
