//! Faults, end to end: a corrupt dump, the agent or the operator killed
//! mid-restore, a restore or its Pod deleted mid-restore, an agent reaching for another
//! restore, and a missing Secret or PVC.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use harness::compare;
use harness::dumps::kubegres_file_name;
use harness::localcluster::world;
use harness::s3::S3Server;
use harness::wait::{until, until_ok};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::KubegresRestore;
use serde_json::json;

use super::support::*;

/// Copies the big backup onto a PVC `backups` in `ns` and creates the
/// target's Secret; returns the backup's file name.
async fn big_backup_on_a_pvc(client: &kube::Client, ns: &str, cluster_name: &str) -> String {
    let (source, backup) = big_source();
    world::create_pvc(client, ns, "backups").await;
    let name = backup.file_name().and_then(|n| n.to_str()).expect("a file name").to_string();
    std::fs::copy(backup, cluster().pvc_dir(ns, "backups").join(&name)).expect("copy the backup");
    world::create_secret(
        client,
        ns,
        &format!("{cluster_name}-secret"),
        &[("superUserPassword", source.password()), ("replicationUserPassword", "replication-pw")],
    )
    .await;
    name
}

/// Waits until the restore's agent reported bytes: it is mid-restore.
async fn wait_mid_restore(client: &kube::Client, ns: &str, name: &str) -> KubegresRestore {
    world::wait_restore(
        client,
        ns,
        name,
        RESTORE_TIMEOUT,
        |_| {},
        |r| {
            world::finished(r)
                || r.status
                    .as_ref()
                    .and_then(|s| s.progress.as_ref())
                    .is_some_and(|p| p.bytes_read > 0 && p.rows_copied > 0)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_dump_fails_with_the_reason_and_no_retry_storm() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "corrupt").await;
    let tracker = PodTracker::start(&client, &ns);
    world::create_pvc(&client, &ns, "backups").await;
    // A real Kubegres backup cut short, as a backup CronJob killed mid-write leaves it.
    let source = pagila_source();
    let file = cluster.pvc_dir(&ns, "backups").join(kubegres_file_name("mypostgres", SystemTime::now()));
    kubegres_backup_to(&source, &file);
    let bytes = std::fs::read(&file).expect("the backup");
    std::fs::write(&file, &bytes[..bytes.len() * 2 / 3]).expect("write the truncated backup");
    world::create_secret(
        &client,
        &ns,
        "restored-secret",
        &[("superUserPassword", source.password()), ("replicationUserPassword", "replication-pw")],
    )
    .await;
    world::create_restore(
        &client,
        &ns,
        &new_cluster_restore("corrupt", "restored", "backups", "latest", "  backoffLimit: 3\n"),
    )
    .await;

    let restore = wait_finished(&client, &ns, "corrupt").await;
    assert_eq!(world::phase(&restore), "Failed", "{}", status_of(&restore));
    let status = restore.status.clone().expect("a status");
    let failure = status.failure.clone().expect("the failure in status");
    assert_eq!(failure.reason, "TruncatedDump", "{}", status_of(&restore));
    assert_eq!(failure.exit_code, Some(3), "the agent's exit code for a bad source");
    assert!(
        ["truncated", "unexpected end", "incomplete"].iter().any(|w| failure.message.to_lowercase().contains(w)),
        "the failure does not say the dump is cut short: {failure:?}"
    );
    let (state, reason, _) = condition(&restore, "Failed").expect("a Failed condition");
    assert_eq!((state.as_str(), reason.as_str()), ("True", "TruncatedDump"));
    // A corrupt dump is not retried: one attempt, one Pod, also a while later.
    assert_eq!(status.attempts, Some(1), "{}", status_of(&restore));
    let watch_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < watch_until {
        let pods = restore_pods(&client, &ns, "corrupt").await;
        assert!(pods.iter().all(|p| p.name_any() == "corrupt-restore-1"), "a retry Pod appeared: {:?}", names(&pods));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seen = tracker.uids();
    assert_eq!(seen.len(), 2, "expected the cluster's primary and one restore Pod, saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_restore_is_retried_into_a_fresh_cluster() {
    let client = cluster().client().await;
    let ns = namespace(&client, "killagent").await;
    let tracker = PodTracker::start(&client, &ns);
    let file = big_backup_on_a_pvc(&client, &ns, "restored").await;
    world::create_restore(
        &client,
        &ns,
        &new_cluster_restore("killed", "restored", "backups", &file, "  backoffLimit: 2\n"),
    )
    .await;
    let mid = wait_mid_restore(&client, &ns, "killed").await;
    assert!(!world::finished(&mid), "the restore finished before the agent could be killed");
    let first_primary = world::primary(&client, &ns, "restored", big_source().0.password()).await;
    let pods = restore_pods(&client, &ns, "killed").await;
    let agent = pods.iter().find(|p| p.name_any() == "killed-restore-1").expect("attempt 1's Pod");
    let uid = BTreeSet::from([agent.uid().expect("a uid")]);
    let processes = processes_of(&uid);
    assert!(!processes.is_empty(), "no process found for the agent Pod {uid:?}");
    for (pid, _) in &processes {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }

    let restore = wait_succeeded(&client, &ns, "killed").await;
    assert_eq!(restore.status.as_ref().and_then(|s| s.attempts), Some(2), "{}", status_of(&restore));
    let restored = world::primary(&client, &ns, "restored", big_source().0.password()).await;
    assert_ne!(restored.host(), first_primary.host(), "attempt 2 ran in the same cluster's Pod");
    compare::assert_same_database(&big_source().0, "big", &restored, "big");
    // What the first attempt's failure said: how the agent died and how far
    // it got, not the tail of its JSON log cut mid-line.
    let notes = event_notes(&client, &ns, "killed", "AttemptFailed").await;
    let said =
        notes.iter().find(|n| n.starts_with("restore attempt 1 failed (AgentKilled)")).expect("attempt 1's failure");
    assert!(said.contains("the restore agent was killed by signal 9 (SIGKILL); it had read "), "{said}");
    assert!(said.contains(" rows") && !said.contains('{'), "{said}");
    assert_only_the_database_is_left(&client, &ns, &tracker).await;
}

/// A restore Pod deleted mid-attempt (a drain, an eviction, a person) is a
/// failed attempt: the next one goes into a fresh cluster, never on top of
/// what the first one half wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_pod_deleted_mid_restore_is_retried_into_a_fresh_cluster() {
    let client = cluster().client().await;
    let ns = namespace(&client, "podgone").await;
    let file = big_backup_on_a_pvc(&client, &ns, "restored").await;
    world::create_restore(
        &client,
        &ns,
        &new_cluster_restore("evicted", "restored", "backups", &file, "  backoffLimit: 2\n"),
    )
    .await;
    let mid = wait_mid_restore(&client, &ns, "evicted").await;
    assert!(!world::finished(&mid), "the restore finished before its Pod could be deleted");
    let first_primary = world::primary(&client, &ns, "restored", big_source().0.password()).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.delete("evicted-restore-1", &DeleteParams::default()).await.expect("delete the restore Pod");

    let restore = wait_succeeded(&client, &ns, "evicted").await;
    assert_eq!(restore.status.as_ref().and_then(|s| s.attempts), Some(2), "{}", status_of(&restore));
    let restored = world::primary(&client, &ns, "restored", big_source().0.password()).await;
    assert_ne!(restored.host(), first_primary.host(), "attempt 2 ran in the half-restored cluster");
    compare::assert_same_database(&big_source().0, "big", &restored, "big");
    let notes = event_notes(&client, &ns, "evicted", "AttemptFailed").await;
    let said = "restore attempt 1 failed (PodDeleted): the restore Pod evicted-restore-1 of attempt 1 was deleted \
                before it finished; retrying";
    assert!(notes.iter().any(|n| n == said), "{notes:?}");
    // The restore ended with a CHECKPOINT: a replica's base backup need not
    // wait for a spread one. (Hundreds of MiB of WAL came before it.)
    let since = wal_since_last_checkpoint(&restored);
    assert!(since < 32 << 20, "{since} bytes of WAL since the last checkpoint of the restored primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_killed_mid_restore_is_restarted_and_the_restore_completes() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "killop").await;
    let file = big_backup_on_a_pvc(&client, &ns, "restored").await;
    world::create_restore(&client, &ns, &new_cluster_restore("survives", "restored", "backups", &file, "")).await;
    let mid = wait_mid_restore(&client, &ns, "survives").await;
    assert!(!world::finished(&mid), "the restore finished before the operator could be killed");
    let pid = cluster.operator_pid().expect("the operator's PID");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the operator");
    until("the operator restarted", Duration::from_secs(60), || async {
        cluster.operator_pid().is_some_and(|now| now != pid).then_some(())
    })
    .await;

    let restore = wait_succeeded(&client, &ns, "survives").await;
    assert_eq!(restore.status.as_ref().and_then(|s| s.attempts), Some(1), "{}", status_of(&restore));
    let restored = world::primary(&client, &ns, "restored", big_source().0.password()).await;
    compare::assert_same_database(&big_source().0, "big", &restored, "big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_deleted_mid_restore_leaves_nothing_behind() {
    let client = cluster().client().await;
    let ns = namespace(&client, "deleted").await;
    let tracker = PodTracker::start(&client, &ns);
    let file = big_backup_on_a_pvc(&client, &ns, "restored").await;
    world::create_restore(&client, &ns, &new_cluster_restore("doomed", "restored", "backups", &file, "")).await;
    let mid = wait_mid_restore(&client, &ns, "doomed").await;
    assert!(!world::finished(&mid), "the restore finished before it could be deleted");
    let restores: Api<KubegresRestore> = Api::namespaced(client.clone(), &ns);
    restores.delete("doomed", &DeleteParams::default()).await.expect("delete the restore");

    until_ok("the restore, its cluster and all it made gone", Duration::from_secs(90), || async {
        let restore_gone = restores.get_opt("doomed").await.expect("get").is_none();
        let cluster_gone = world::get_kubegres(&client, &ns, "restored").await.is_none();
        let leftovers = world::leftovers(&client, &ns).await;
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
        let pods_left = pods.list(&Default::default()).await.expect("list Pods").items;
        let processes = processes_of(&tracker.uids());
        // The cluster's data volume goes too (Kubegres would keep it); the user's backups stay.
        let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let claims_left: Vec<String> =
            claims.list(&Default::default()).await.expect("list PVCs").items.iter().map(|c| c.name_any()).collect();
        let data_folder = cluster().dir().join("volumes").join(&ns).join("postgres-db-restored-1-0");
        if restore_gone
            && cluster_gone
            && leftovers.is_empty()
            && pods_left.is_empty()
            && processes.is_empty()
            && claims_left == ["backups"]
            && !data_folder.exists()
        {
            return Ok(());
        }
        Err(format!(
            "left behind: restore {restore_gone}, cluster {cluster_gone}, {leftovers:?}, Pods {:?}, processes \
             {processes:?}, PVCs {claims_left:?}, data folder {}",
            names(&pods_left),
            data_folder.exists()
        ))
    })
    .await;
    assert!(tracker.uids().len() >= 2, "the tracker did not see the primary and the agent: {:?}", tracker.uids());
}

/// The token the agent holds (read through its process's root, so it is
/// the very token the kubelet mounted) lets it patch its own restore's status
/// and nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_patch_another_restores_status_and_a_missing_pvc_is_a_clear_condition() {
    let client = cluster().client().await;
    let ns = namespace(&client, "rbac").await;
    let file = big_backup_on_a_pvc(&client, &ns, "mine").await;
    world::create_restore(&client, &ns, &new_cluster_restore("mine", "mine", "backups", &file, "")).await;
    world::create_secret(
        &client,
        &ns,
        "theirs-secret",
        &[("superUserPassword", "x"), ("replicationUserPassword", "replication-pw")],
    )
    .await;
    world::create_restore(&client, &ns, &new_cluster_restore("theirs", "theirs", "no-such-pvc", "latest", "")).await;

    // The other restore waits with a clear condition.
    let theirs = world::wait_restore(
        &client,
        &ns,
        "theirs",
        RESTORE_TIMEOUT,
        |_| {},
        |r| condition(r, "Progressing").is_some_and(|(_, reason, _)| reason == "Unschedulable"),
    )
    .await;
    let (state, _, message) = condition(&theirs, "Progressing").expect("Progressing");
    assert_eq!(state, "False");
    assert!(message.contains("persistentvolumeclaim \"no-such-pvc\" not found"), "{message}");
    assert_eq!(world::phase(&theirs), "Restoring", "{}", status_of(&theirs));

    let mid = wait_mid_restore(&client, &ns, "mine").await;
    assert!(!world::finished(&mid), "the restore finished before its token could be used");
    let pods = restore_pods(&client, &ns, "mine").await;
    let agent = pods.iter().find(|p| p.name_any() == "mine-restore-1").expect("attempt 1's Pod");
    let (pid, _) = processes_of(&BTreeSet::from([agent.uid().expect("a uid")]))[0].clone();
    // /var/run is a symlink to /run, and an absolute symlink under
    // /proc/PID/root resolves in our mount namespace: name the real path.
    let token = std::fs::read_to_string(format!("/proc/{pid}/root/run/secrets/kubernetes.io/serviceaccount/token"))
        .expect("the agent's mounted token");
    let as_agent = cluster().client_with_token(token.trim()).await;
    let api: Api<KubegresRestore> = Api::namespaced(as_agent, &ns);
    let patch = json!({"status": {"progress": {"bytesRead": 1}}});
    let params = PatchParams::default();
    match api.patch_status("theirs", &params, &Patch::Merge(&patch)).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the agent patched another restore's status: {other:?}"),
    }
    // The same token may patch its own restore (so the 403 above is RBAC's verdict).
    api.patch_status("mine", &params, &Patch::Merge(&json!({"status": {}})))
        .await
        .expect("the agent patches its own restore's status");
}

/// A missing credentials Secret holds the restore with a clear condition;
/// creating it lets the restore run to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_a_clear_condition_until_it_is_created() {
    let client = cluster().client().await;
    let ns = namespace(&client, "secret").await;
    let password = "db-superuser-pw";
    world::create_kubegres(&client, &ns, "db", 1, password, None).await;
    let db = world::primary(&client, &ns, "db", password).await;
    let source = pagila_source();
    let s3 = S3Server::start();
    s3.create_bucket("dumps");
    let dump = source.scratch_dir().join("pagila.sql");
    source.pg_dump_to("pagila", &["-Fp"], &dump);
    s3.put("dumps", "pagila.sql", &std::fs::read(&dump).expect("the dump"));
    let yaml = format!(
        "apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: waits
spec:
  dataSource:
    s3:
      bucket: dumps
      key: pagila.sql
      endpoint: {}
      region: us-east-1
      pathStyle: true
      credentialsSecret:
        name: late-creds
  target:
    database:
      clusterName: db
      database: pagila
",
        s3.endpoint()
    );
    world::create_restore(&client, &ns, &yaml).await;
    let waiting = world::wait_restore(
        &client,
        &ns,
        "waits",
        RESTORE_TIMEOUT,
        |_| {},
        |r| condition(r, "Progressing").is_some_and(|(_, reason, _)| reason == "CreateContainerConfigError"),
    )
    .await;
    let (_, _, message) = condition(&waiting, "Progressing").expect("Progressing");
    assert!(message.contains("secret \"late-creds\" not found"), "{message}");

    world::create_secret(
        &client,
        &ns,
        "late-creds",
        &[("AWS_ACCESS_KEY_ID", s3.access_key()), ("AWS_SECRET_ACCESS_KEY", s3.secret_key())],
    )
    .await;
    wait_succeeded(&client, &ns, "waits").await;
    compare::assert_same_database(&source, "pagila", &db, "pagila");
}

fn names(pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}
