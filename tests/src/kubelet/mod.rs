//! A process kubelet: registers a Node on the local control plane and runs
//! the Pods bound to it as local processes, the way kubelet prepares a
//! container, with processes instead of containers.
//!
//! - It registers its Node with the machine's capacity, Ready, and renews
//!   its Lease in `kube-node-lease` as kubelet does; kube-scheduler binds
//!   Pods to it and the node lifecycle controller lifts its not-ready taint,
//!   so it needs the full control plane (`ControlPlane::start_cluster`).
//! - Images map to local programs ([`ImageMap`], [`Program`]).
//! - Each container is a process started through `pod-init`
//!   (tests/src/bin/pod_init.rs, the stand-in for runc's init): a private
//!   mount namespace and a root filesystem of its own (the host's
//!   directories as read-through overlays, fresh `/tmp`, `/run`, `/dev`;
//!   [`plan::RootFs`]), the Pod's volumes bind-mounted, the container's
//!   user, its environment only (never the host's). Nothing it writes or
//!   mounts reaches the host outside the kubelet's folder.
//! - Each Pod gets its own loopback IP from [`KubeletConfig::pod_cidr`]
//!   and an `/etc/hosts` that resolves Services to the Ready Pods they select
//!   (the simulated cluster DNS). There is no network namespace: programs
//!   that would bind `*` must bind `$PROCESS_KUBELET_POD_IP`.
//! - ServiceAccount tokens come from the TokenRequest API, bound to the Pod,
//!   for the projected volume that ServiceAccount admission adds: the
//!   kubelet mounts what the Pod spec says and nothing else, and in-cluster
//!   config works.
//! - Status is written as kubelet writes it (phase, conditions, container
//!   statuses with exit codes and termination messages).
//!
//! - Readiness, liveness and startup probes run (tcpSocket, httpGet over
//!   HTTP, exec in the container's namespaces); a failed liveness probe
//!   restarts the container as kubelet does.
//!
//! Not done (simulated or left out): image pulls (an image is a local
//! program; its tag is not honoured and the container's log says which
//! version really runs), network namespaces, token refresh, updates of
//! Secret/ConfigMap volumes after a container starts, Service links env
//! vars, resource limits, seccomp and capabilities, sidecar init containers,
//! lifecycle hooks.

mod container;
mod env;
mod hosts;
mod images;
mod node;
pub mod plan;
mod pod;
mod prepare;
mod probe;
mod process;
mod runtime;
mod status;
mod volumes;
mod watch;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use images::{DEFAULT_PATH, ImageMap, Program, repository_name};
use runtime::{IpPool, Shared, Stop, lock};

/// How long [`Kubelet::stop`] gives processes after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The environment variable holding the Pod's IP (the address to bind).
pub const POD_IP_ENV: &str = "PROCESS_KUBELET_POD_IP";
/// The environment variable holding the Pod's uid (finds stray processes).
pub const POD_UID_ENV: &str = "PROCESS_KUBELET_POD_UID";

/// The processes whose environment says they belong to the Pod with this
/// uid (`PROCESS_KUBELET_POD_UID`): what is left of a Pod.
pub fn processes_of_pod(uid: &str) -> Vec<i32> {
    process::pods_processes(&std::collections::HashSet::from([uid.to_string()]))
}

/// Whether this machine has a writable cgroup v2 hierarchy, which the
/// kubelet then uses to find and kill every process of a container.
pub fn cgroups_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        process::cgroup_root("probe").is_some_and(|dir| {
            let _ = std::fs::remove_dir(&dir);
            true
        })
    })
}

/// How the kubelet is set up.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The Node's name.
    pub node_name: String,
    /// `DIR/volumes/<namespace>/<claim>` are the PVCs, `DIR/pods/<uid>` the Pods' files.
    pub dir: PathBuf,
    /// Which program each image runs.
    pub images: ImageMap,
    /// The network address of a /24 inside 127.0.0.0/8; Pods get `.2` to `.254`.
    pub pod_cidr: Ipv4Addr,
    /// KUBERNETES_SERVICE_HOST, and what `kubernetes.default.svc` resolves to.
    pub apiserver_host: String,
    /// KUBERNETES_SERVICE_PORT.
    pub apiserver_port: u16,
    /// The CA certificate mounted as `ca.crt` next to the token.
    pub ca_pem: String,
    /// The `pod-init` binary ([`pod_init_bin`]).
    pub pod_init: PathBuf,
}

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The configuration cannot work.
    #[error("invalid kubelet configuration: {0}")]
    InvalidConfig(String),
    /// A file or directory operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An API call failed.
    #[error("cannot {what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl KubeletError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidConfig(_) => "InvalidConfig",
            Self::Io { .. } => "Io",
            Self::Api { .. } => "Api",
        }
    }
}

/// The `pod-init` binary next to the running test or binary
/// (`target/<profile>/pod-init`), or `$KGR_POD_INIT_BIN`.
pub fn pod_init_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KGR_POD_INIT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    // A test runs from target/<profile>/deps, a binary from target/<profile>.
    let profile_dir =
        if dir.file_name().is_some_and(|name| name == "deps") { dir.parent().unwrap_or(dir) } else { dir };
    profile_dir.join("pod-init")
}

/// A running process kubelet. [`Kubelet::stop`] ends every process it
/// started; dropping it without `stop` SIGKILLs them (best effort).
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stopped: bool,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node_name", &self.shared.config.node_name)
            .field("dir", &self.shared.config.dir)
            .finish_non_exhaustive()
    }
}

impl Kubelet {
    /// Registers the Node and starts running the Pods bound to it.
    ///
    /// `client` acts as the kubelet: `system:node:<name>` in group
    /// `system:nodes`, so the Node authorizer and NodeRestriction limit it
    /// as a real kubelet (the admin client works too).
    pub async fn start(client: kube::Client, config: KubeletConfig) -> Result<Self, KubeletError> {
        validate(&config)?;
        let mut config = config;
        let store = image_store(&config.node_name);
        config.images = config.images.install(&store).map_err(|source| KubeletError::Io {
            what: format!("install the images into {}", store.display()),
            source,
        })?;
        for sub in ["pods", "volumes"] {
            let path = config.dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|source| KubeletError::Io { what: format!("create {}", path.display()), source })?;
        }
        let shared = Arc::new(Shared {
            client,
            pods: Mutex::default(),
            finished: Mutex::default(),
            api_pods: Mutex::default(),
            services: Mutex::default(),
            ips: Mutex::new(IpPool::new(config.pod_cidr)),
            processes: Mutex::default(),
            hosts_changed: tokio::sync::Notify::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            cgroup: process::cgroup_root(&config.node_name),
            store,
            config,
        });
        node::register(&shared).await?;
        let tasks = vec![
            tokio::spawn(watch::pods(shared.clone())),
            tokio::spawn(watch::services(shared.clone())),
            tokio::spawn(node::heartbeat(shared.clone())),
            tokio::spawn(hosts::run(shared.clone())),
        ];
        Ok(Self { shared, tasks, stopped: false })
    }

    /// Stops every process this kubelet started (SIGTERM, SIGKILL after
    /// [`STOP_GRACE`]) and waits for them. The Pods stay in the API.
    pub async fn stop(mut self) {
        self.stopped = true;
        self.shared.stopping.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        let runtimes: Vec<_> = lock(&self.shared.pods).values().cloned().collect();
        for runtime in runtimes {
            runtime.stop.send_replace(Stop::Shutdown);
        }
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(10);
        while !lock(&self.shared.pods).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process::kill_all(&self.shared);
        if let Some(root) = &self.shared.cgroup {
            process::remove_cgroup(root).await;
        }
        let _ = std::fs::remove_dir_all(&self.shared.store);
    }

    /// The processes of a Pod this kubelet runs: in its cgroup (when cgroup
    /// v2 is available) or carrying its uid in their environment.
    pub fn pod_processes(&self, pod_uid: &str) -> Vec<i32> {
        let mut pids = processes_of_pod(pod_uid);
        if let Some(cgroup) = process::pod_cgroup(&self.shared, pod_uid) {
            pids.extend(process::cgroup_processes(&cgroup));
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The log file of a container (stdout and stderr) of a Pod this
    /// kubelet runs, while the Pod exists.
    pub fn pod_log_path(&self, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
        let pods = lock(&self.shared.pods);
        let runtime = pods.values().find(|rt| rt.namespace == namespace && rt.name == pod)?;
        Some(container::log_path(&runtime.dir, container))
    }

    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.config.node_name
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.shared.stopping.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        process::kill_all(&self.shared);
        if let Some(root) = &self.shared.cgroup {
            process::remove_cgroup_blocking(root);
        }
        let _ = std::fs::remove_dir_all(&self.shared.store);
    }
}

/// Where this kubelet installs its images: outside /tmp and the checkout,
/// which a Pod's mounts may hide, and unique to this kubelet.
fn image_store(node_name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    PathBuf::from(IMAGE_STORE).join(format!("{node_name}.{}.{n}", std::process::id()))
}

/// The parent of every kubelet's image store.
pub const IMAGE_STORE: &str = "/var/lib/process-kubelet/images";

fn validate(config: &KubeletConfig) -> Result<(), KubeletError> {
    let [a, _, _, d] = config.pod_cidr.octets();
    if a != 127 || d != 0 {
        return Err(KubeletError::InvalidConfig(format!(
            "pod_cidr {} is not the network address of a /24 inside 127.0.0.0/8 (e.g. 127.23.45.0)",
            config.pod_cidr
        )));
    }
    if config.node_name.is_empty() {
        return Err(KubeletError::InvalidConfig("node_name is empty".to_string()));
    }
    if !config.pod_init.is_file() {
        return Err(KubeletError::InvalidConfig(format!(
            "the pod-init binary {} does not exist: build it with `cargo build -p kubegres-restore-tests --bin pod-init`",
            config.pod_init.display()
        )));
    }
    Ok(())
}
