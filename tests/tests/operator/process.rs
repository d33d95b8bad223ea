//! The operator as its own process (the `kubegres-restore-operator`
//! binary) on a real kube-apiserver, as the ServiceAccount deploy/ grants:
//! `/healthz`, `/readyz` and `/metrics`; two replicas elect one leader
//! through a Lease; SIGTERM stops the leader cleanly (exit 0) and releases
//! the lease, so the standby leads at once and acts on restores; and the
//! namespace-scoped install (deploy/install-namespaced.yaml) runs restores
//! of its namespace under its Roles alone, and never sees another's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};
use harness::wait::{until, until_ok};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use proto::KubegresRestore;
use serde_json::json;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);
const LEASE: &str = "kubegres-restore-operator";
const LEASE_NAMESPACE: &str = "kubegres-restore-system";

fn operator_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("a target dir").join("kubegres-restore-operator");
    assert!(
        bin.exists(),
        "the operator binary is missing at {}: run `cargo build -p kubegres-restore-operator` first",
        bin.display()
    );
    bin
}

struct Replica {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Replica {
    fn start(kubeconfig: &std::path::Path, dir: &std::path::Path, identity: &str) -> Replica {
        Replica::start_in(kubeconfig, dir, identity, LEASE_NAMESPACE, "op-process")
    }

    /// Starts a replica whose Pod runs in `own_namespace` (its Lease's) and
    /// that watches `watched`, both set as deploy/'s Deployment sets them.
    fn start_in(
        kubeconfig: &std::path::Path,
        dir: &std::path::Path,
        identity: &str,
        own_namespace: &str,
        watched: &str,
    ) -> Replica {
        let addr = harness::http::free_loopback_addr().expect("a free port");
        let log = dir.join(format!("{identity}.log"));
        let child = Command::new(operator_bin())
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", own_namespace)
            .env("OPERATOR_WATCH_NAMESPACE", watched)
            .args(["--http-addr", &addr.to_string(), "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("the operator starts");
        Replica { child, addr, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        harness::http::get(self.addr, path).await.ok()
    }

    /// Waits until `/readyz` answers 200 with a body containing `what`.
    async fn wait_ready(&self, what: &str) {
        let expected = format!("/readyz to say {what:?}");
        until_ok(&expected, WAIT, || async {
            match self.get("/readyz").await {
                Some((200, body)) if body.contains(what) => Ok(()),
                answer => Err(format!("it answered {answer:?}\n{}", self.logs())),
            }
        })
        .await
    }

    /// SIGTERM, and the exit code.
    async fn terminate(mut self) -> (i32, Duration) {
        let pid = self.child.id().expect("running");
        let started = Instant::now();
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(WAIT, self.child.wait()).await.expect("the operator exits").unwrap();
        (exit.code().unwrap_or(-1), started.elapsed())
    }
}

async fn holder(admin: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), LEASE_NAMESPACE);
    leases.get_opt(LEASE).await.unwrap()?.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_hand_over_on_sigterm() {
    let cp = ControlPlane::start().await;
    let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.unwrap();
    harness::deploy::install_operator_rbac(&admin).await;
    harness::deploy::install_kubegres_crd(&admin).await;
    harness::deploy::create_namespace(&admin, "op-process").await;
    // Make sure the bindings took effect before the processes start.
    drop(harness::deploy::operator_client(&cp).await);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let token = harness::deploy::operator_token(&cp).await;
    std::fs::write(&kubeconfig, cp.kubeconfig_yaml_with_token(&token)).unwrap();

    let first = Replica::start(&kubeconfig, dir.path(), "replica-a");
    first.wait_ready("leader").await;
    assert_eq!(first.get("/healthz").await, Some((200, "ok".to_string())));
    let second = Replica::start(&kubeconfig, dir.path(), "replica-b");
    second.wait_ready("standby").await;
    assert_eq!(holder(&admin).await.as_deref(), Some("replica-a"));

    // The leader acts on a restore; the standby does not (only one Pod, one
    // set of Events).
    let restores: Api<KubegresRestore> = Api::namespaced(admin.clone(), "op-process");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "op-process");
    restores.create(&PostParams::default(), &http_restore("one")).await.unwrap();
    wait_for_pod(&pods, "one-restore-1").await;
    // The metrics are updated when the reconcile ends, just after the Pod.
    let metrics = until_ok("a Restoring restore in /metrics", WAIT, || async {
        let (_, metrics) = first.get("/metrics").await.unwrap();
        if metrics.contains("kubegres_restore_restores{phase=\"Restoring\"} 1") { Ok(metrics) } else { Err(metrics) }
    })
    .await;
    assert!(metrics.contains("kubegres_restore_reconciles_total"), "{metrics}");

    // SIGTERM: a clean exit that releases the lease (no holder right after),
    // and the standby takes over within about one lease duration (15 s; it
    // looks at the lease once per period).
    let handed_over = Instant::now();
    let first_logs = first.logs();
    let (code, took) = first.terminate().await;
    assert_eq!(code, 0, "the leader's exit code after SIGTERM\n{first_logs}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let after_exit = holder(&admin).await;
    assert!(after_exit.as_deref() != Some("replica-a"), "the lease is still held by the stopped replica");
    second.wait_ready("leader").await;
    assert!(handed_over.elapsed() < Duration::from_secs(25), "hand-over took {:?}", handed_over.elapsed());
    assert_eq!(holder(&admin).await.as_deref(), Some("replica-b"));
    restores.create(&PostParams::default(), &http_restore("two")).await.unwrap();
    wait_for_pod(&pods, "two-restore-1").await;

    let second_logs = second.logs();
    for line in first_logs.lines().chain(second_logs.lines()) {
        assert!(!line.contains(&token), "a log line holds the ServiceAccount token");
    }
    let (code, _) = second.terminate().await;
    assert_eq!(code, 0, "{second_logs}");
}

/// A restore of an HTTP dump into a PostgreSQL server: the operator creates
/// its Pod at once (no cluster to wait for).
fn http_restore(name: &str) -> KubegresRestore {
    serde_json::from_value(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
        "metadata": {"name": name},
        "spec": {
            "dataSource": {"http": {"url": "https://dumps.example/app.sql.gz"}},
            "target": {"postgres": {"host": "db.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_scoped_install_runs_restores_of_its_namespace_and_sees_no_other() {
    let cp = ControlPlane::start().await;
    let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.unwrap();
    let own = "op-single";
    harness::deploy::install_namespaced_operator_rbac(&admin, own).await;
    harness::deploy::install_kubegres_crd(&admin).await;
    harness::deploy::create_namespace(&admin, "op-elsewhere").await;
    let token = harness::deploy::namespaced_operator_token(&cp, own).await;
    let operator = cp.client_with_token(&token).await.unwrap();
    until_ok("the namespace-scoped RoleBindings take effect", WAIT, || async {
        match harness::deploy::allowed(&operator, "watch", "kubegres.reactive-tech.io", "kubegresrestores", Some(own))
            .await
        {
            Ok(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig_yaml_with_token(&token)).unwrap();

    // A restore elsewhere first, then one in its namespace.
    let elsewhere: Api<KubegresRestore> = Api::namespaced(admin.clone(), "op-elsewhere");
    elsewhere.create(&PostParams::default(), &http_restore("elsewhere")).await.unwrap();
    let replica = Replica::start_in(&kubeconfig, dir.path(), "single-a", own, own);
    replica.wait_ready("leader").await;
    let restores: Api<KubegresRestore> = Api::namespaced(admin.clone(), own);
    restores.create(&PostParams::default(), &http_restore("one")).await.unwrap();
    wait_for_pod(&Api::namespaced(admin.clone(), own), "one-restore-1").await;
    let status = until_ok("restore one to report Restoring", WAIT, || async {
        let restore = restores.get("one").await.unwrap();
        let phase = restore.status.as_ref().and_then(|status| status.phase);
        if phase == Some(proto::Phase::Restoring) { Ok(restore) } else { Err(format!("{phase:?}")) }
    })
    .await;
    assert!(status.metadata.finalizers.unwrap_or_default().iter().any(|f| f == operator::decide::FINALIZER));

    // The restore of the other namespace was never touched, and nothing was forbidden.
    let untouched = elsewhere.get("elsewhere").await.unwrap();
    assert_eq!(untouched.status, None);
    assert_eq!(untouched.metadata.finalizers, None);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "op-elsewhere");
    assert!(pods.list(&Default::default()).await.unwrap().items.is_empty());
    let logs = replica.logs();
    assert!(!logs.to_lowercase().contains("forbidden"), "{logs}");
    let (code, _) = replica.terminate().await;
    assert_eq!(code, 0, "{logs}");
}

async fn wait_for_pod(pods: &Api<Pod>, name: &str) {
    until(&format!("Pod {name}"), WAIT, || async { pods.get_opt(name).await.unwrap().map(drop) }).await;
}
