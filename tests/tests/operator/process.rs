//! The operator as its own process (the `kubegres-restore-operator`
//! binary) on a real kube-apiserver, as the ServiceAccount deploy/ grants:
//! `/healthz`, `/readyz` and `/metrics`; two replicas elect one leader
//! through a Lease; SIGTERM stops the leader cleanly (exit 0) and releases
//! the lease, so the standby leads at once and acts on restores.

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
        let addr = harness::http::free_loopback_addr().expect("a free port");
        let log = dir.join(format!("{identity}.log"));
        let child = Command::new(operator_bin())
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", LEASE_NAMESPACE)
            .args(["--http-addr", &addr.to_string(), "--log-format", "json", "--namespace", "op-process"])
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
    let restore = |name: &str| -> KubegresRestore {
        serde_json::from_value(json!({
            "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
            "metadata": {"name": name},
            "spec": {
                "dataSource": {"http": {"url": "https://dumps.example/app.sql.gz"}},
                "target": {"postgres": {"host": "db.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
            }
        }))
        .unwrap()
    };
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "op-process");
    restores.create(&PostParams::default(), &restore("one")).await.unwrap();
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
    restores.create(&PostParams::default(), &restore("two")).await.unwrap();
    wait_for_pod(&pods, "two-restore-1").await;

    let second_logs = second.logs();
    for line in first_logs.lines().chain(second_logs.lines()) {
        assert!(!line.contains(&token), "a log line holds the ServiceAccount token");
    }
    let (code, _) = second.terminate().await;
    assert_eq!(code, 0, "{second_logs}");
}

async fn wait_for_pod(pods: &Api<Pod>, name: &str) {
    until(&format!("Pod {name}"), WAIT, || async { pods.get_opt(name).await.unwrap().map(drop) }).await;
}
