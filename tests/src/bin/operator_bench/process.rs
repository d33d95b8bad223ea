//! The operator as a child process: started with a kubeconfig, asked over
//! HTTP whether it is ready, measured through /proc, stopped with SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::BenchError;

/// How long the operator may take to lead with synced caches.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the operator may take to exit after SIGTERM (the Deployment's
/// terminationGracePeriodSeconds).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of the operator's log a failure shows.
const TAIL_LINES: usize = 40;

/// The operator's memory, from `/proc/<pid>/status`, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss: u64,
    /// VmHWM: the peak of VmRSS so far.
    pub hwm: u64,
    /// RssAnon: heap and stacks.
    pub anon: u64,
    /// RssFile: pages of the binary and of mapped files.
    pub file: u64,
}

impl Memory {
    /// Parses the `Vm*`/`Rss*` lines of `/proc/<pid>/status` (values in kB).
    pub fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        Some(Memory { rss: field("VmRSS")?, hwm: field("VmHWM")?, anon: field("RssAnon")?, file: field("RssFile")? })
    }

    /// VmRSS in MB (10^6 bytes).
    pub fn rss_mb(&self) -> f64 {
        mb(self.rss)
    }
}

/// Bytes in MB (10^6 bytes), the unit of the floors.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// How the operator ended after SIGTERM.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// Its exit code (`None`: killed by a signal, or killed after the timeout).
    pub code: Option<i32>,
    /// From SIGTERM to its exit.
    pub took: Duration,
    /// Whether it had to be killed because it did not exit in time.
    pub killed: bool,
}

/// The operator binary, running.
pub struct OperatorProcess {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
    started_in: Duration,
}

impl OperatorProcess {
    /// Starts `binary` with `kubeconfig` as the operator's ServiceAccount
    /// would run it (all namespaces, leader election on, JSON logs at info)
    /// and waits until `/readyz` says it leads with synced caches. Its log
    /// goes to `log`; `concurrency` is passed as `--concurrency` when given.
    pub async fn start(
        binary: &Path,
        kubeconfig: &Path,
        log: &Path,
        concurrency: Option<u16>,
    ) -> Result<OperatorProcess, BenchError> {
        let addr = harness::http::free_loopback_addr()
            .map_err(|source| BenchError::io("find a free port for the operator", source))?;
        let log = log.to_path_buf();
        let out = std::fs::File::create(&log).map_err(|source| BenchError::io("create the operator's log", source))?;
        let err = out.try_clone().map_err(|source| BenchError::io("open the operator's log", source))?;
        // The operator's log filter; `OPERATOR_BENCH_LOG` overrides it for a diagnosis.
        let filter = std::env::var("OPERATOR_BENCH_LOG").unwrap_or_else(|_| "info".to_string());
        let started = Instant::now();
        let mut command = Command::new(binary);
        if let Some(concurrency) = concurrency {
            command.args(["--concurrency", &concurrency.to_string()]);
        }
        let child = command
            .args(["--http-addr", &addr.to_string()])
            .args(["--leader-election", "true", "--lease-namespace", harness::deploy::NAMESPACE])
            .args(["--identity", "operator-bench", "--log-format", "json", "--log", &filter])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("OPERATOR_WATCH_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("OPERATOR_LOG")
            .env_remove("OPERATOR_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchError::io(format!("start {}", binary.display()), source))?;
        let pid = child.id().ok_or_else(|| BenchError::Operator("the operator exited at once".into()))?;
        let mut process = OperatorProcess { child, pid, addr, log, started_in: Duration::ZERO };

        let mut last = String::from("no answer");
        while started.elapsed() < READY_TIMEOUT {
            process.check_running()?;
            match harness::http::get(addr, "/readyz").await {
                Ok((200, body)) if body.starts_with("ready: leader") => {
                    process.started_in = started.elapsed();
                    return Ok(process);
                }
                Ok((status, body)) => last = format!("{status} {}", body.trim()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Operator(format!(
            "the operator did not lead with synced caches within {READY_TIMEOUT:?} (last /readyz: {last})\n{}",
            process.log_tail()
        )))
    }

    /// From the start of the process to `/readyz` saying it leads.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Its memory now.
    pub fn memory(&mut self) -> Result<Memory, BenchError> {
        self.check_running()?;
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).map_err(|source| BenchError::io(format!("read {path}"), source))?;
        Memory::parse(&status)
            .ok_or_else(|| BenchError::Operator(format!("{path} has no VmRSS, VmHWM, RssAnon or RssFile")))
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> Result<String, BenchError> {
        match harness::http::get(self.addr, "/metrics").await {
            Ok((200, body)) => Ok(body),
            Ok((status, _)) => Err(BenchError::Operator(format!("/metrics answered {status}"))),
            Err(source) => Err(BenchError::io("read /metrics", source)),
        }
    }

    /// Fails, with the tail of its log, when the operator has exited.
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                Err(BenchError::Operator(format!("the operator exited with {status}\n{}", self.log_tail())))
            }
            Err(source) => Err(BenchError::io("wait for the operator", source)),
        }
    }

    /// Sends SIGTERM and waits for the exit (kills it after
    /// [`SHUTDOWN_TIMEOUT`]).
    pub async fn terminate(mut self) -> Result<Shutdown, BenchError> {
        self.check_running()?;
        let sent = Instant::now();
        // `kill` instead of a libc call: the workspace forbids unsafe code.
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|source| BenchError::io("run kill -TERM", source))?;
        if !kill.success() {
            return Err(BenchError::Operator(format!("kill -TERM {} failed: {kill}", self.pid)));
        }
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.map_err(|source| BenchError::io("wait for the operator", source))?;
                Ok(Shutdown { code: status.code(), took: sent.elapsed(), killed: false })
            }
            Err(_) => {
                let _ = self.child.kill().await;
                eprintln!("operator-bench: the operator did not exit within {SHUTDOWN_TIMEOUT:?}\n{}", self.log_tail());
                Ok(Shutdown { code: None, took: sent.elapsed(), killed: true })
            }
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        format!("----- operator log (last {TAIL_LINES} lines) -----\n{tail}")
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_is_parsed() {
        let status = "Name:\tkubegres-restor\nVmHWM:\t   15360 kB\nVmRSS:\t   12288 kB\n\
                      RssAnon:\t    8192 kB\nRssFile:\t    4096 kB\nRssShmem:\t       0 kB\n";
        let memory = Memory::parse(status).unwrap();
        assert_eq!((memory.rss, memory.hwm), (12288 * 1024, 15360 * 1024));
        assert_eq!((memory.anon, memory.file), (8192 * 1024, 4096 * 1024));
        assert!((memory.rss_mb() - 12.582912).abs() < 1e-9);
        assert!(Memory::parse("VmRSS:\t1 kB\n").is_none());
    }
}
