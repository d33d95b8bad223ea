//! `localcluster up` as a child process, for end-to-end tests: started in a
//! fresh directory, ready once `DIR/kubeconfig` exists, stopped with SIGTERM
//! on drop. It also stops when the test process dies (its stdin closes).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{KUBECONFIG, target_bin};

/// How long `localcluster up` may take (a cold control-plane build is done
/// by `make setup` before the tests, so this is only the start).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long it may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `localcluster up`.
pub struct LocalClusterProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl std::fmt::Debug for LocalClusterProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClusterProcess").field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

impl LocalClusterProcess {
    /// Starts `localcluster up --dir <temp dir>` and waits until it is ready.
    ///
    /// # Panics
    /// When it exits or is not ready in time (with its log), so a test that
    /// needs the cluster fails rather than skips.
    pub fn start() -> LocalClusterProcess {
        // `localcluster` removes the directory itself (the handle may live in
        // a `static`, which is never dropped).
        let dir = tempfile::Builder::new()
            .prefix("kubegres-localcluster-")
            .disable_cleanup(true)
            .tempdir()
            .expect("a temporary directory");
        let log = std::env::temp_dir()
            .join(format!("{}.log", dir.path().file_name().and_then(|n| n.to_str()).unwrap_or("localcluster")));
        let bin = target_bin("localcluster");
        assert!(bin.is_file(), "{} is missing: run `cargo build -p kubegres-restore-tests --bins`", bin.display());
        let child = Command::new(&bin)
            .args(["up", "--stop-on-stdin-eof", "--remove-dir-on-stop", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).expect("the log file"))
            .stderr(std::fs::File::options().append(true).open(&log).expect("the log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut cluster = LocalClusterProcess { child: Some(child), dir, log };
        let deadline = Instant::now() + START_TIMEOUT;
        while !cluster.kubeconfig_path().is_file() {
            if let Some(status) = cluster.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("localcluster up exited with {status} before it was ready:\n{}", cluster.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "localcluster up was not ready after {START_TIMEOUT:?}:\n{}",
                cluster.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }

    /// The cluster's directory (`DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DIR/kubeconfig` (the admin's).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join(KUBECONFIG)
    }

    /// A client with the admin's kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let yaml = std::fs::read_to_string(self.kubeconfig_path()).expect("the kubeconfig");
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("a valid kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client config");
        kube::Client::try_from(config).expect("a client")
    }

    /// A client with the admin kubeconfig's server and CA but this bearer
    /// token (e.g. a token a Pod holds).
    pub async fn client_with_token(&self, token: &str) -> kube::Client {
        let yaml = std::fs::read_to_string(self.kubeconfig_path()).expect("the kubeconfig");
        let mut kubeconfig = Kubeconfig::from_yaml(&yaml).expect("a valid kubeconfig");
        for user in &mut kubeconfig.auth_infos {
            user.auth_info =
                Some(kube::config::AuthInfo { token: Some(token.to_string().into()), ..Default::default() });
        }
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client config");
        kube::Client::try_from(config).expect("a client")
    }

    /// The PVC folder `DIR/volumes/<namespace>/<claim>` (created, readable by Pods).
    pub fn pvc_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        super::pvc_dir(self.dir.path(), namespace, claim)
    }

    /// The operator's current PID (from `DIR/operator.pid`).
    pub fn operator_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("operator.pid")).ok()?.trim().parse().ok()
    }

    /// The operator's log so far.
    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join("operator.log")).unwrap_or_default()
    }

    /// The last lines of `localcluster up`'s own output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Stops it with SIGTERM and waits; returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalClusterProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("localcluster: output at the time of the failure:\n{}", self.log_tail());
            eprintln!("operator log (tail):\n{}", tail(&self.operator_log(), 40));
        }
        self.stop();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
