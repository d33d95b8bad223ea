//! A real Kubernetes control plane for tests: etcd and kube-apiserver, built
//! from their published Go modules by `tests/controlplane/build.sh`, started
//! on loopback with random ports, generated certificates, service-account
//! signing keys (so the TokenRequest API works), RBAC authorization and an
//! admin identity (`O=system:masters`).
//!
//! [`ControlPlane::start`] runs only those two, for the tests that need an
//! API server and nothing else (CRDs, RBAC): Pods are not scheduled, nothing
//! garbage-collects, and no `default` ServiceAccount or token is created for
//! a namespace (the ServiceAccount admission plugin is off).
//!
//! [`ControlPlane::start_cluster`] adds kube-controller-manager (the
//! controllers in [`CONTROLLERS`]) and kube-scheduler at the same version,
//! and keeps the ServiceAccount admission plugin on (NodeRestriction too):
//! a cluster's control plane, waiting only for a kubelet.
//!
//! ```no_run
//! # async fn demo() {
//! let cp = harness::controlplane::ControlPlane::start().await;
//! let version = cp.client().apiserver_version().await.unwrap();
//! assert_eq!(version.git_version, harness::controlplane::kube_version());
//! # }
//! ```

mod binaries;
mod controllers;
mod pki;
mod process;
mod servers;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use binaries::{Binaries, build_script, etcd_version, kube_version};
pub use controllers::{CONTROLLER_MANAGER_USER, CONTROLLERS, SCHEDULER_USER};
pub use pki::{ADMIN_GROUP, ADMIN_USER, CertifiedKey};

use controllers::start_controllers;
use pki::Ca;
use process::{LoggedProcess, TAIL_LINES};
use servers::{start_apiserver, start_etcd};

/// How long etcd and then kube-apiserver may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How many times a server is started with fresh random ports when the ports
/// it was given were taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// The Service IP range (`--service-cluster-ip-range`).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// The IP of the `kubernetes` Service in [`SERVICE_CLUSTER_IP_RANGE`].
const KUBERNETES_SERVICE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));

/// The issuer of service-account tokens (and their default audience).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Why the control plane could not start or a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// tests/controlplane/build.sh failed.
    #[error("building the control plane failed: {message}\n----- build log (tail) -----\n{log}")]
    Build {
        /// What went wrong.
        message: String,
        /// The tail of the build log.
        log: String,
    },
    /// A file or directory operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A server binary could not be executed.
    #[error("cannot start {name} ({}): {source}", program.display())]
    Spawn {
        /// Which server (`etcd`, `kube-apiserver`...).
        name: &'static str,
        /// The binary.
        program: PathBuf,
        /// The error from exec.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not generate a key or certificate.
    #[error("cannot generate the control plane's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A server exited before it was ready.
    #[error("{name} exited with {status} before it was ready\n{logs}")]
    Exited {
        /// Which server.
        name: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// The tails of the logs.
        logs: String,
    },
    /// A server did not become ready in time.
    #[error("{name} was not ready after {waited:?} (last check: {last})\n{logs}")]
    NotReady {
        /// Which server(s).
        name: &'static str,
        /// How long it was given.
        waited: Duration,
        /// The outcome of the last readiness check.
        last: String,
        /// The tails of the logs.
        logs: String,
    },
    /// A kube client for the control plane could not be built.
    #[error("cannot build a client for the control plane: {0}")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ControlPlaneError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Build { .. } => "BuildFailed",
            Self::Io { .. } => "Io",
            Self::Spawn { .. } => "SpawnFailed",
            Self::Certificate(_) => "Certificate",
            Self::Exited { .. } => "ProcessExited",
            Self::NotReady { .. } => "NotReady",
            Self::Client(_) => "Client",
        }
    }

    fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }

    fn client(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Client(Box::new(error))
    }
}

/// A running control plane: etcd and kube-apiserver, and with
/// [`ControlPlane::start_cluster`] kube-controller-manager and kube-scheduler.
/// Dropping it kills every process and removes their data, certificates
/// and logs; when dropped during a panic it prints the tails of the logs first.
pub struct ControlPlane {
    // Drop order: the processes first (clients of the apiserver before it,
    // etcd last), the directory they use last.
    controllers: Option<(LoggedProcess, LoggedProcess)>,
    apiserver: LoggedProcess,
    etcd: LoggedProcess,
    server_url: String,
    etcd_url: String,
    ca: Ca,
    admin: CertifiedKey,
    client: kube::Client,
    binaries: Binaries,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("etcd_url", &self.etcd_url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers ok.
    /// Builds the binaries first if they are not in the cache.
    ///
    /// # Panics
    /// When anything fails; the message includes the tails of the logs.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(control_plane) => control_plane,
            Err(error) => panic!("the local control plane did not start: {error}"),
        }
    }

    /// Like [`ControlPlane::start`], returning the error instead of panicking.
    pub async fn try_start() -> Result<Self, ControlPlaneError> {
        Self::try_start_with(false).await
    }

    /// Starts etcd, kube-apiserver (ServiceAccount and NodeRestriction
    /// admission on), kube-controller-manager and kube-scheduler, and waits
    /// until the controller-manager and the scheduler run (their Leases) and
    /// the namespace `default` has its ServiceAccount and `kube-root-ca.crt`.
    ///
    /// # Panics
    /// When anything fails; the message includes the tails of the logs.
    pub async fn start_cluster() -> Self {
        match Self::try_start_cluster().await {
            Ok(control_plane) => control_plane,
            Err(error) => panic!("the local control plane did not start: {error}"),
        }
    }

    /// Like [`ControlPlane::start_cluster`], returning the error instead of panicking.
    pub async fn try_start_cluster() -> Result<Self, ControlPlaneError> {
        Self::try_start_with(true).await
    }

    async fn try_start_with(with_controllers: bool) -> Result<Self, ControlPlaneError> {
        let dir = tempfile::Builder::new()
            .prefix("kubegres-controlplane-")
            .tempdir()
            .map_err(|source| ControlPlaneError::io("create the control plane's directory", source))?;
        let binaries = Binaries::ensure(&dir.path().join("build.log")).await?;

        let ca = Ca::generate()?;
        let serving = ca.serving(KUBERNETES_SERVICE_IP)?;
        let admin = ca.client(ADMIN_USER, &[ADMIN_GROUP])?;
        let pki = dir.path().join("pki");
        write_private(&pki.join("ca.crt"), ca.cert_pem())?;
        write_private(&pki.join("apiserver.crt"), &serving.cert_pem)?;
        write_private(&pki.join("apiserver.key"), &serving.key_pem)?;
        let service_account = pki::service_account_key()?;
        write_private(&pki.join("service-account.key"), &service_account.private_pem)?;
        write_private(&pki.join("service-account.pub"), &service_account.public_pem)?;

        let (mut etcd, etcd_url) = start_etcd(&binaries, dir.path()).await?;
        let (apiserver, server_url, client) =
            start_apiserver(&binaries, with_controllers, dir.path(), &mut etcd, &etcd_url, &ca, &admin).await?;
        let controllers = if with_controllers {
            Some(start_controllers(&binaries, dir.path(), &server_url, &ca, &client).await?)
        } else {
            None
        };
        Ok(Self { controllers, apiserver, etcd, server_url, etcd_url, ca, admin, client, binaries, dir })
    }

    /// Whether kube-controller-manager and kube-scheduler run
    /// ([`ControlPlane::start_cluster`]).
    pub fn has_controllers(&self) -> bool {
        self.controllers.is_some()
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// etcd's client URL, `http://127.0.0.1:<port>` (plain HTTP on loopback).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The CA certificate (PEM) that signed the apiserver's serving
    /// certificate and that the apiserver trusts for client certificates.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The binaries this control plane runs.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// A kube client authenticated as the admin (`system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig (YAML) for the admin identity.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_with_user(&certificate_user(&self.admin))
    }

    /// A kubeconfig (YAML) that authenticates with a bearer `token`, e.g. a
    /// ServiceAccount token from the TokenRequest API.
    pub fn kubeconfig_yaml_with_token(&self, token: &str) -> String {
        self.kubeconfig_with_user(&format!("token: {token}"))
    }

    /// Writes [`ControlPlane::kubeconfig_yaml`] to `path` (mode 0600).
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        write_file_private(path.as_ref(), &self.kubeconfig_yaml())
    }

    /// A kube client that authenticates with a bearer `token`.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, ControlPlaneError> {
        client_from_kubeconfig(&self.kubeconfig_yaml_with_token(token)).await
    }

    /// A kube client with a fresh client certificate for `user` in `groups`
    /// (no group grants anything unless it is `system:masters` or RBAC binds it).
    pub async fn client_for_user(&self, user: &str, groups: &[&str]) -> Result<kube::Client, ControlPlaneError> {
        let identity = self.ca.client(user, groups)?;
        client_from_kubeconfig(&self.kubeconfig_with_user(&certificate_user(&identity))).await
    }

    /// The last lines of every server's log, for a failing test to print.
    pub fn logs(&self) -> String {
        self.processes().iter().map(|process| process.log_tail(TAIL_LINES)).collect::<Vec<_>>().join("\n")
    }

    /// The full log files (they are removed with the control plane).
    pub fn log_paths(&self) -> Vec<&Path> {
        self.processes().iter().map(|process| process.log_path()).collect()
    }

    fn processes(&self) -> Vec<&LoggedProcess> {
        let mut all = vec![&self.etcd, &self.apiserver];
        if let Some((controller_manager, scheduler)) = &self.controllers {
            all.extend([controller_manager, scheduler]);
        }
        all
    }

    fn kubeconfig_with_user(&self, user: &str) -> String {
        kubeconfig(&self.server_url, self.ca.cert_pem(), user)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("controlplane: logs at the time of the failure:\n{}", self.logs());
        }
    }
}

/// A kubeconfig with one cluster, one user (`user` is its YAML body, indented
/// for the `user:` mapping) and a current context.
fn kubeconfig(server_url: &str, ca_pem: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubegres-restore-test
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: kubegres-restore-test
  user:
    {user}
contexts:
- name: kubegres-restore-test
  context:
    cluster: kubegres-restore-test
    user: kubegres-restore-test
current-context: kubegres-restore-test
",
        ca = BASE64.encode(ca_pem)
    )
}

/// The `user:` body of a kubeconfig for a client certificate.
fn certificate_user(identity: &CertifiedKey) -> String {
    format!(
        "client-certificate-data: {}\n    client-key-data: {}",
        BASE64.encode(&identity.cert_pem),
        BASE64.encode(&identity.key_pem)
    )
}

async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, ControlPlaneError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(ControlPlaneError::client)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(ControlPlaneError::client)?;
    kube::Client::try_from(config).map_err(ControlPlaneError::client)
}

/// Writes a file readable only by its owner, creating its directory.
fn write_private(path: &Path, contents: &str) -> Result<(), ControlPlaneError> {
    write_file_private(path, contents).map_err(|source| ControlPlaneError::io("write a certificate or key", source))
}

fn write_file_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses() {
        let yaml = kubeconfig("https://127.0.0.1:6443", "CA", "token: abc");
        let parsed = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("kubegres-restore-test"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert!(parsed.auth_infos[0].auth_info.as_ref().unwrap().token.is_some());
    }

    #[test]
    fn error_reasons() {
        let error = ControlPlaneError::io("test", std::io::Error::other("boom"));
        assert_eq!(error.reason(), "Io");
        assert_eq!(error.to_string(), "cannot test: boom");
    }
}
