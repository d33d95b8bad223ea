//! Shared by the end-to-end tests: one `localcluster up` per test binary
//! (each test in its own namespace), source databases and their backups,
//! and the checks every restore gets.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use harness::dumps::kubegres_file_name;
use harness::localcluster::LocalClusterProcess;
use harness::localcluster::world;
use harness::pg::PgCluster;
use harness::wait::until_ok;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use proto::KubegresRestore;

/// How long a restore may take end to end on 2 busy cores.
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

/// The rows of the generated table of [`big_source`]: enough for a restore
/// that lasts several seconds, so that progress is sampled and faults land
/// mid-restore.
const BIG_ROWS: u64 = 3_000_000;

/// The local cluster of this test binary, started on first use; it stops
/// when the test process exits (its stdin closes).
pub fn cluster() -> &'static LocalClusterProcess {
    static CLUSTER: OnceLock<LocalClusterProcess> = OnceLock::new();
    CLUSTER.get_or_init(LocalClusterProcess::start)
}

/// A fresh namespace for one test.
pub async fn namespace(client: &kube::Client, test: &str) -> String {
    use rand::Rng as _;
    let suffix: u32 = rand::rng().random_range(0..0xffff);
    let name = format!("e2e-{test}-{suffix:04x}");
    world::create_namespace(client, &name).await;
    name
}

/// A source cluster with Pagila in `pagila`.
pub fn pagila_source() -> PgCluster {
    let source = PgCluster::start();
    harness::fixtures::load_pagila(&source, "pagila");
    source
}

/// A source cluster with a table of [`BIG_ROWS`] generated rows in `big`, and
/// its Kubegres backup (`pg_dumpall -c | gzip`); made once per test binary.
pub fn big_source() -> &'static (PgCluster, PathBuf) {
    static BIG: OnceLock<(PgCluster, PathBuf)> = OnceLock::new();
    BIG.get_or_init(|| {
        let source = PgCluster::start();
        source.create_database("big");
        source.psql(
            "big",
            &format!(
                "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text NOT NULL);
                 INSERT INTO events SELECT i, timestamptz '2026-01-01' + i * interval '1 second', md5(i::text) || md5((i * 7)::text)
                   FROM generate_series(1, {BIG_ROWS}) AS i;
                 CREATE INDEX events_at ON events (at);"
            ),
        );
        let file = source.scratch_dir().join(kubegres_file_name("big", SystemTime::now()));
        kubegres_backup_to(&source, &file);
        (source, file)
    })
}

/// `pg_dumpall -c | gzip > file`, as Kubegres's backup CronJob does.
pub fn kubegres_backup_to(source: &PgCluster, file: &std::path::Path) {
    let out = std::fs::File::create(file).expect("the backup file");
    let mut dumpall =
        source.command("pg_dumpall").arg("-c").stdout(std::process::Stdio::piped()).spawn().expect("pg_dumpall");
    let stdout = dumpall.stdout.take().expect("piped stdout");
    let gzip = std::process::Command::new("gzip").stdin(stdout).stdout(out).status().expect("gzip");
    let status = dumpall.wait().expect("pg_dumpall");
    assert!(status.success() && gzip.success(), "pg_dumpall -c | gzip failed: {status}, {gzip}");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod the backup");
}

/// A restore into a new Kubegres cluster `cluster` (3 replicas in its spec,
/// resources set) from a file on `pvc`; `extra` is more `spec:` YAML.
pub fn new_cluster_restore(name: &str, cluster: &str, pvc: &str, snapshot: &str, extra: &str) -> String {
    let cluster_spec = "        database:
          size: 1Gi
        resources:
          requests:
            memory: 512Mi
";
    new_cluster_restore_with(name, cluster, pvc, snapshot, "", cluster_spec, extra)
}

/// A restore into a new Kubegres cluster `cluster` (3 replicas, passwords
/// from the Secret `<cluster>-secret`) from `snapshot` on `pvc`, with more
/// YAML under `file:` (`file_extra`), `clusterSpec:` (`cluster_spec`) and
/// `spec:` (`extra`), each indented for its place.
pub fn new_cluster_restore_with(
    name: &str,
    cluster: &str,
    pvc: &str,
    snapshot: &str,
    file_extra: &str,
    cluster_spec: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: {name}
spec:
  dataSource:
    file:
      pvcName: {pvc}
      mountPath: /var/lib/backup
      snapshot: {snapshot}
{file_extra}  target:
    newCluster:
      name: {cluster}
      clusterSpec:
        replicas: 3
        image: postgres:16.1
{cluster_spec}        env:
          - name: POSTGRES_PASSWORD
            valueFrom:
              secretKeyRef:
                name: {cluster}-secret
                key: superUserPassword
          - name: POSTGRES_REPLICATION_PASSWORD
            valueFrom:
              secretKeyRef:
                name: {cluster}-secret
                key: replicationUserPassword
{extra}"
    )
}

/// Records the uid of every Pod that appears in a namespace, to check later
/// that none of their processes outlived them.
pub struct PodTracker {
    uids: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodTracker {
    pub fn start(client: &kube::Client, namespace: &str) -> PodTracker {
        let uids = Arc::new(Mutex::new(BTreeSet::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let seen = uids.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    seen.lock().unwrap().extend(list.items.iter().filter_map(|p| p.uid()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        PodTracker { uids, task }
    }

    pub fn uids(&self) -> BTreeSet<String> {
        self.uids.lock().unwrap().clone()
    }
}

impl Drop for PodTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PIDs of live processes started for these Pods (found by the
/// `PROCESS_KUBELET_POD_UID` the process kubelet puts in their environment).
pub fn processes_of(uids: &BTreeSet<String>) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        for var in environ.split(|&b| b == 0) {
            if let Some(uid) = var.strip_prefix(b"PROCESS_KUBELET_POD_UID=")
                && let Ok(uid) = std::str::from_utf8(uid)
                && uids.contains(uid)
            {
                found.push((pid, uid.to_string()));
            }
        }
    }
    found
}

/// The Pod UIDs of a restore's attempts seen so far.
pub async fn restore_pods(client: &kube::Client, namespace: &str, restore: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels(&format!("kubegres.reactive-tech.io/restore={restore}")))
        .await
        .expect("list the restore's Pods")
        .items
}

/// After a successful restore: nothing of the restore is left in the
/// namespace, and no process of any Pod the namespace ever had outlived it.
pub async fn assert_only_the_database_is_left(client: &kube::Client, namespace: &str, tracker: &PodTracker) {
    until_ok(&format!("nothing of the restore left in {namespace}"), Duration::from_secs(60), || async {
        let leftovers = world::leftovers(client, namespace).await;
        if leftovers.is_empty() { Ok(()) } else { Err(format!("left behind: {leftovers:?}")) }
    })
    .await;
    let live: BTreeSet<String> = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list Pods")
        .items
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    let gone: BTreeSet<String> = tracker.uids().difference(&live).cloned().collect();
    assert!(!gone.is_empty() || tracker.uids().is_empty(), "the tracker saw no restore Pod come and go");
    let strays = processes_of(&gone);
    assert!(strays.is_empty(), "processes outlived their Pods: {strays:?}");
}

/// Waits until the restore is Succeeded or Failed.
pub async fn wait_finished(client: &kube::Client, namespace: &str, name: &str) -> KubegresRestore {
    world::wait_restore(client, namespace, name, RESTORE_TIMEOUT, |_| {}, world::finished).await
}

/// Waits until the restore is finished and asserts that it Succeeded.
pub async fn wait_succeeded(client: &kube::Client, namespace: &str, name: &str) -> KubegresRestore {
    let restore = wait_finished(client, namespace, name).await;
    assert_eq!(world::phase(&restore), "Succeeded", "{}", status_of(&restore));
    restore
}

/// The notes of the Events of `reason` recorded on the restore `name`,
/// waiting until there is at least one.
pub async fn event_notes(client: &kube::Client, namespace: &str, name: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    until_ok(&format!("a {reason} Event on {name}"), Duration::from_secs(30), || async {
        let notes: Vec<String> = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note)
            .collect();
        if notes.is_empty() { Err("none yet".to_string()) } else { Ok(notes) }
    })
    .await
}

/// The WAL a restored primary wrote since its last checkpoint's redo point:
/// small when the restore ended with a CHECKPOINT, however much it wrote.
pub fn wal_since_last_checkpoint(primary: &PgCluster) -> i64 {
    primary
        .query_one(
            "postgres",
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn)::bigint FROM pg_control_checkpoint()",
        )
        .parse()
        .expect("a WAL distance")
}

/// The restore's status, for assertion messages.
pub fn status_of(restore: &KubegresRestore) -> String {
    serde_json::to_string_pretty(&restore.status).unwrap_or_default()
}

pub use harness::localcluster::world::condition;
