//! kube-controller-manager and kube-scheduler, for a control plane that
//! behaves like a real cluster: each with its own client certificate
//! (`system:kube-controller-manager`, `system:kube-scheduler`, the users the
//! apiserver's bootstrap RBAC binds), no serving port (nothing scrapes them
//! and fixed ports would clash between clusters on one machine), leader
//! election on as in any cluster (their Leases in `kube-system` also tell
//! when they run).
//!
//! The controller-manager runs the controllers that a cluster's workloads
//! and storage rely on ([`CONTROLLERS`]), each under its own ServiceAccount
//! (`--use-service-account-credentials`), and publishes the cluster CA as
//! the `kube-root-ca.crt` ConfigMap of every namespace.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::Api;

use super::pki::Ca;
use super::process::{LoggedProcess, TAIL_LINES};
use super::servers::arg;
use super::{Binaries, ControlPlaneError, POLL_INTERVAL, READY_TIMEOUT, certificate_user, kubeconfig, write_private};

/// The user kube-controller-manager authenticates as.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The user kube-scheduler authenticates as.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";

/// The controllers kube-controller-manager runs (`--controllers`): the
/// workload controllers (StatefulSet, Job, CronJob, ReplicaSet, Deployment,
/// TTL after finished), the garbage collector, namespaces, ServiceAccounts
/// and their tokens, the root CA publisher, the PersistentVolume binder and
/// the PV/PVC protection controllers, the node lifecycle (taints, NotReady)
/// and taint eviction, the Pod garbage collector, ClusterRole aggregation.
/// Left out, as irrelevant here and costly on a small machine: resource
/// quotas, HPA, disruption budgets, DaemonSets, CSR signing and approval,
/// DRA, storage version migration; and the Endpoints and EndpointSlice
/// controllers: Pod IPs here are on loopback, which the API refuses in
/// endpoints (they would retry forever), and Services resolve through the
/// process kubelet's /etc/hosts, not through endpoints.
pub const CONTROLLERS: &[&str] = &[
    "statefulset-controller",
    "job-controller",
    "cronjob-controller",
    "replicaset-controller",
    "deployment-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-expander-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
];

/// Starts kube-controller-manager and kube-scheduler against the running
/// apiserver and waits until both hold their Lease and the namespace
/// `default` has its `default` ServiceAccount and `kube-root-ca.crt`.
pub(super) async fn start_controllers(
    binaries: &Binaries,
    dir: &Path,
    server_url: &str,
    ca: &Ca,
    admin: &kube::Client,
) -> Result<(LoggedProcess, LoggedProcess), ControlPlaneError> {
    let pki = dir.join("pki");
    let write_kubeconfig = |file: &str, user: &str| -> Result<std::path::PathBuf, ControlPlaneError> {
        let identity = ca.client(user, &[])?;
        let path = pki.join(file);
        write_private(&path, &kubeconfig(server_url, ca.cert_pem(), &certificate_user(&identity)))?;
        Ok(path)
    };
    let kcm_kubeconfig = write_kubeconfig("controller-manager.kubeconfig", CONTROLLER_MANAGER_USER)?;
    let scheduler_kubeconfig = write_kubeconfig("scheduler.kubeconfig", SCHEDULER_USER)?;

    let kcm_args: Vec<OsString> = vec![
        arg("--kubeconfig=", kcm_kubeconfig),
        "--secure-port=0".into(),
        "--use-service-account-credentials=true".into(),
        arg("--root-ca-file=", pki.join("ca.crt")),
        arg("--service-account-private-key-file=", pki.join("service-account.key")),
        format!("--controllers={}", CONTROLLERS.join(",")).into(),
        "--profiling=false".into(),
    ];
    let controller_manager = LoggedProcess::spawn(
        "kube-controller-manager",
        &binaries.kube_controller_manager,
        &kcm_args,
        dir,
        dir.join("kube-controller-manager.log"),
    )?;
    let scheduler_args: Vec<OsString> =
        vec![arg("--kubeconfig=", scheduler_kubeconfig), "--secure-port=0".into(), "--profiling=false".into()];
    let scheduler = LoggedProcess::spawn(
        "kube-scheduler",
        &binaries.kube_scheduler,
        &scheduler_args,
        dir,
        dir.join("kube-scheduler.log"),
    )?;
    let mut processes = (controller_manager, scheduler);
    wait_ready(admin, &mut processes).await?;
    Ok(processes)
}

/// Waits until both hold their Lease and the controller-manager populated
/// the namespace `default`.
async fn wait_ready(
    admin: &kube::Client,
    (controller_manager, scheduler): &mut (LoggedProcess, LoggedProcess),
) -> Result<(), ControlPlaneError> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-system");
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let logs = |a: &LoggedProcess, b: &LoggedProcess| format!("{}\n{}", a.log_tail(TAIL_LINES), b.log_tail(TAIL_LINES));
    let started = Instant::now();
    loop {
        let exited = [&mut *controller_manager, &mut *scheduler]
            .into_iter()
            .find_map(|process| process.exited().map(|status| (process.name(), status)));
        if let Some((name, status)) = exited {
            return Err(ControlPlaneError::Exited { name, status, logs: logs(controller_manager, scheduler) });
        }
        let last = match readiness(&leases, &accounts, &maps).await {
            Ok(()) => return Ok(()),
            Err(last) => last,
        };
        if started.elapsed() > READY_TIMEOUT {
            return Err(ControlPlaneError::NotReady {
                name: "kube-controller-manager and kube-scheduler",
                waited: READY_TIMEOUT,
                last,
                logs: logs(controller_manager, scheduler),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// What is still missing, if anything.
async fn readiness(leases: &Api<Lease>, accounts: &Api<ServiceAccount>, maps: &Api<ConfigMap>) -> Result<(), String> {
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let lease = leases.get_opt(name).await.map_err(|e| format!("cannot read the Lease {name}: {e}"))?;
        let held = lease.and_then(|lease| lease.spec?.holder_identity).is_some_and(|holder| !holder.is_empty());
        if !held {
            return Err(format!("{name} holds no Lease kube-system/{name} yet"));
        }
    }
    if accounts.get_opt("default").await.map_err(|e| e.to_string())?.is_none() {
        return Err("the ServiceAccount default/default does not exist yet".to_string());
    }
    if maps.get_opt("kube-root-ca.crt").await.map_err(|e| e.to_string())?.is_none() {
        return Err("the ConfigMap default/kube-root-ca.crt does not exist yet".to_string());
    }
    Ok(())
}
