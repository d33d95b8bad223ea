//! The local cluster: the whole system on one machine.
//!
//! - the real control plane ([`crate::controlplane`]: etcd, kube-apiserver,
//!   kube-controller-manager and kube-scheduler);
//! - `deploy/`'s namespace, CRD and RBAC, and the Kubegres CRD;
//! - the operator binary as its own process, with the identity `deploy/`
//!   grants it (its ServiceAccount's token, never the admin's), restarted
//!   when it exits as its Deployment would be ([`operator`]);
//! - the process kubelet ([`crate::kubelet`], SIMULATED: Pods run as local
//!   processes), as `system:node:<node>`;
//! - the simulated Kubegres controller ([`crate::kubegres_sim`]);
//! - the default StorageClass and a SIMULATED local-path provisioner
//!   ([`storage`]): PVCs are bound to PersistentVolumes on the folders
//!   `DIR/volumes/<namespace>/<claim>`.
//!
//! `DIR/kubeconfig` (the admin's) is written last, once everything is up.

mod operator;
mod process;
pub mod storage;
pub mod world;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use operator::OperatorSupervisor;
pub use process::LocalClusterProcess;

use crate::controlplane::{ControlPlane, ControlPlaneError};
use crate::kubegres_sim::KubegresSim;
use crate::kubelet::{ImageMap, Kubelet, KubeletConfig, Program};

/// The Node the process kubelet registers.
pub const NODE_NAME: &str = "local";

/// The file `up` writes once everything is ready.
pub const KUBECONFIG: &str = "kubeconfig";

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the kubeconfig, PVC folders, Pod directories and logs go.
    pub dir: PathBuf,
    /// The `kubegres-restore-operator` binary.
    pub operator_bin: PathBuf,
    /// The `restore-agent` binary (what the restore-agent image runs).
    pub agent_bin: PathBuf,
    /// The `pod-init` binary (the process kubelet's container init).
    pub pod_init_bin: PathBuf,
}

impl Options {
    /// The binaries next to the running program (`target/<profile>/`).
    pub fn beside_current_exe(dir: PathBuf) -> Options {
        Options {
            dir,
            operator_bin: target_bin("kubegres-restore-operator"),
            agent_bin: target_bin("restore-agent"),
            pod_init_bin: target_bin("pod-init"),
        }
    }
}

/// Why the local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// A binary it runs is missing.
    #[error("{what} is missing at {}: build it first (`cargo build --workspace --bins`)", path.display())]
    MissingBinary {
        /// Which binary.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The control plane did not start.
    #[error("the control plane did not start: {0}")]
    ControlPlane(#[from] ControlPlaneError),
    /// The process kubelet did not start.
    #[error("the process kubelet did not start: {0}")]
    Kubelet(#[from] crate::kubelet::KubeletError),
    /// A file could not be written.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operator could not be started.
    #[error("the operator did not start: {0}")]
    Operator(String),
}

impl LocalClusterError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingBinary { .. } => "MissingBinary",
            Self::ControlPlane(error) => error.reason(),
            Self::Kubelet(error) => error.reason(),
            Self::Io { .. } => "Io",
            Self::Operator(_) => "OperatorFailed",
        }
    }
}

/// A running local cluster. Stop it with [`LocalCluster::stop`].
pub struct LocalCluster {
    // Stopped in this order by `stop`: the operator, the controllers, the
    // kubelet's processes, the control plane last.
    operator: OperatorSupervisor,
    sim: Option<KubegresSim>,
    provisioner: Option<storage::Provisioner>,
    kubelet: Option<Kubelet>,
    control_plane: ControlPlane,
    dir: PathBuf,
    pod_cidr: Ipv4Addr,
}

impl LocalCluster {
    /// Starts everything; writes `DIR/kubeconfig` last.
    pub async fn start(options: Options) -> Result<LocalCluster, LocalClusterError> {
        for (what, path) in [
            ("the operator binary", &options.operator_bin),
            ("the restore-agent binary", &options.agent_bin),
            ("the pod-init binary", &options.pod_init_bin),
        ] {
            if !path.is_file() {
                return Err(LocalClusterError::MissingBinary { what, path: path.clone() });
            }
        }
        let dir = std::path::absolute(&options.dir).map_err(|source| io("resolve the directory", source))?;
        for sub in ["volumes", "pods", "logs"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|source| io(format!("create {}", dir.join(sub).display()), source))?;
        }
        // Restore Pods run as 65532 and read PVC folders under DIR.
        set_mode(&dir, 0o755)?;
        set_mode(&dir.join("volumes"), 0o755)?;
        let _ = std::fs::remove_file(dir.join(KUBECONFIG));

        let control_plane = ControlPlane::try_start_cluster().await?;
        let admin = control_plane.client();
        crate::deploy::install_operator_rbac(&admin).await;
        crate::deploy::install_kubegres_crd(&admin).await;
        storage::install_storage_class(&admin).await;
        let nodes = storage::NodePaths::default();
        nodes.set(NODE_NAME, dir.join("volumes"));
        let provisioner = storage::Provisioner::start(admin.clone(), nodes);

        let node = control_plane.client_for_user(&format!("system:node:{NODE_NAME}"), &["system:nodes"]).await?;
        let pod_cidr = pick_pod_cidr();
        let (host, port) = host_and_port(control_plane.server_url());
        let images = ImageMap::new()
            .with("restore-agent", Program::restore_agent(options.agent_bin.clone()))
            .with("postgres", Program::postgres());
        let kubelet = Kubelet::start(
            node,
            KubeletConfig {
                node_name: NODE_NAME.to_string(),
                dir: dir.clone(),
                images,
                pod_cidr,
                apiserver_host: host,
                apiserver_port: port,
                ca_pem: control_plane.ca_pem().to_string(),
                pod_init: options.pod_init_bin.clone(),
            },
        )
        .await?;
        let sim = KubegresSim::start(admin.clone());

        let token = crate::deploy::operator_token(&control_plane).await;
        let operator_kubeconfig = dir.join("operator").join(KUBECONFIG);
        write_private(&operator_kubeconfig, &control_plane.kubeconfig_yaml_with_token(&token))?;
        let operator = OperatorSupervisor::start(&options.operator_bin, &operator_kubeconfig, &dir)
            .await
            .map_err(LocalClusterError::Operator)?;

        control_plane.write_kubeconfig(dir.join(KUBECONFIG)).map_err(|source| io("write the kubeconfig", source))?;
        Ok(LocalCluster {
            operator,
            sim: Some(sim),
            provisioner: Some(provisioner),
            kubelet: Some(kubelet),
            control_plane,
            dir,
            pod_cidr,
        })
    }

    /// The admin kubeconfig (`DIR/kubeconfig`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join(KUBECONFIG)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Pod IP range (a /24 on loopback).
    pub fn pod_cidr(&self) -> Ipv4Addr {
        self.pod_cidr
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The operator's supervisor.
    pub fn operator(&self) -> &OperatorSupervisor {
        &self.operator
    }

    /// What `up` prints once ready.
    pub fn usage(&self) -> String {
        let dir = self.dir.display();
        format!(
            "The local cluster is up.
  kubeconfig:   export KUBECONFIG={dir}/{KUBECONFIG}
  PVC folders:  {dir}/volumes/<namespace>/<claim>   (StorageClass standard, bound once a Pod uses the claim)
  Pod logs:     {dir}/pods/<pod uid>/<container>.log
  operator log: {dir}/logs/operator.log   (metrics and health: http://{addr}/metrics)
  control plane logs: {cp_logs}
  Pod IPs:      {cidr}/24 on loopback
Stop it with Ctrl-C or SIGTERM.",
            addr = self.operator.http_addr(),
            cp_logs =
                self.control_plane.log_paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            cidr = self.pod_cidr,
        )
    }

    /// Stops every process it started: the operator (SIGTERM, so it releases
    /// its Lease), the controllers, every Pod's processes, then the control plane.
    pub async fn stop(mut self) {
        self.operator.stop().await;
        if let Some(sim) = self.sim.take() {
            sim.stop();
        }
        if let Some(provisioner) = self.provisioner.take() {
            provisioner.stop();
        }
        if let Some(kubelet) = self.kubelet.take() {
            kubelet.stop().await;
        }
        let _ = std::fs::remove_file(self.dir.join(KUBECONFIG));
        // The Pods are gone with the cluster, and so are their emptyDirs;
        // PVC folders stay.
        let _ = std::fs::remove_dir_all(self.dir.join("pods"));
        drop(self.control_plane);
    }
}

/// The PVC folder `DIR/volumes/<namespace>/<claim>`, created (readable by
/// the Pods, which run as other users) so that files can be put on the PVC
/// before a Pod mounts it: the simulated provisioner keeps what it finds
/// there when it binds the claim.
///
/// # Panics
/// When the folder cannot be created.
pub fn pvc_dir(dir: &Path, namespace: &str, claim: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("volumes").join(namespace).join(claim);
    std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    for folder in [dir.join("volumes").join(namespace), path.clone()] {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", folder.display()));
    }
    path
}

/// A binary of this workspace next to the running program: `target/<profile>/NAME`
/// (a test runs from `target/<profile>/deps/`).
pub fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A random /24 inside 127.0.0.0/8 (never 127.0.0.0/24), so that several
/// local clusters on one machine do not share Pod IPs.
fn pick_pod_cidr() -> Ipv4Addr {
    use rand::Rng as _;
    let mut rng = rand::rng();
    Ipv4Addr::new(127, rng.random_range(1..=254), rng.random_range(0..=255), 0)
}

fn host_and_port(server_url: &str) -> (String, u16) {
    let rest = server_url.trim_start_matches("https://");
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "443"));
    (host.to_string(), port.trim_end_matches('/').parse().unwrap_or(443))
}

fn io(what: impl Into<String>, source: std::io::Error) -> LocalClusterError {
    LocalClusterError::Io { what: what.into(), source }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LocalClusterError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|source| io(format!("set the mode of {}", path.display()), source))
}

fn write_private(path: &Path, contents: &str) -> Result<(), LocalClusterError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(contents.as_bytes())
    };
    write().map_err(|source| io(format!("write {}", path.display()), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_split_into_host_and_port() {
        assert_eq!(host_and_port("https://127.0.0.1:41234"), ("127.0.0.1".to_string(), 41234));
    }

    #[test]
    fn pod_cidrs_stay_on_loopback_outside_127_0_0() {
        for _ in 0..100 {
            let cidr = pick_pod_cidr().octets();
            assert_eq!(cidr[0], 127);
            assert_ne!(cidr[1], 0);
            assert_eq!(cidr[3], 0);
        }
    }
}
