//! A restore never deletes, overwrites or adopts what it did not create:
//! retained volumes, clusters and objects of the same name, another
//! restore's cluster; and the bad specs that must end at once.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::crd::{CONDITION_TARGET_READY, CreatedCluster};
use proto::{Phase, RestoreProgress};
use serde_json::json;

use super::*;
use crate::decide::Requeue;

/// A volume `postgres-db-restored-1-0` created at `created`, with Kubegres's
/// label.
fn volume(uid: &str, created: i64) -> DataVolume {
    DataVolume {
        name: "postgres-db-restored-1-0".to_string(),
        uid: uid.to_string(),
        created: Some(at(created)),
        cluster_label: true,
        deleting: false,
    }
}

/// No action deletes or changes anything but what this restore owns.
fn touches_nothing_of_others(d: &Decision) {
    for action in &d.actions {
        assert!(
            !matches!(
                action,
                Action::Delete { kind: Kind::Kubegres | Kind::Volume, .. } | Action::HandOverKubegres { .. }
            ),
            "{action:?}"
        );
    }
}

#[test]
fn a_retained_data_volume_of_the_name_refuses_the_restore_and_nothing_is_deleted() {
    // Cluster `restored` was deleted; Kubegres kept its volume (a day ago).
    let mut o = observed(restore(default_spec()));
    o.now = at(86_400);
    o.target.volumes = vec![volume("users-volume", 0)];
    let (d, o) = step(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "VolumeInUse");
    assert!(failure.message.contains("postgres-db-restored-1-0"), "{}", failure.message);
    assert!(failure.message.contains("Nothing was created or deleted"), "{}", failure.message);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateKubegres { .. })));
    touches_nothing_of_others(&d);
    // Retried reconciles and the restore's deletion leave it too.
    assert_eq!(kinds(&decide(&o)), Vec::<&str>::new());
    let mut deleted = o.clone();
    deleted.restore.metadata.deletion_timestamp = Some(Time(at(86_500)));
    let d = decide(&deleted);
    assert_eq!(kinds(&d), ["RemoveFinalizer"]);
}

#[test]
fn a_volume_named_like_the_cluster_without_kubegres_labels_also_refuses() {
    let mut o = observed(restore(default_spec()));
    o.target.volumes = vec![DataVolume { cluster_label: false, ..volume("hand-made", 0) }];
    let d = decide(&o);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "VolumeInUse");
    touches_nothing_of_others(&d);
}

#[test]
fn only_volumes_created_since_the_restores_first_cluster_are_its_own() {
    let mut o = running();
    let first = o.restore.status.as_ref().unwrap().created_cluster.clone().unwrap();
    assert_eq!(first.first_created.0, t0());
    // One volume from before the restore's cluster existed (not ours, and
    // not possible after the pre-check, unless someone made it since with
    // an old timestamp: never trust a name), one of its own.
    o.target.volumes =
        vec![volume("old", -10), DataVolume { name: "postgres-db-restored-2-0".into(), ..volume("ours", 5) }];
    o.restore.metadata.deletion_timestamp = Some(Time(at(100)));
    let d = decide(&o);
    let deleted: Vec<&str> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { kind: Kind::Volume, uid, .. } => Some(uid.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["ours"]);
}

#[test]
fn a_cluster_of_the_name_that_is_not_ours_fails_with_name_in_use_and_is_left_alone() {
    let mut o = observed(restore(default_spec()));
    o.target = TargetCluster {
        exists: true,
        uid: Some("users-cluster".into()),
        primary_ready: true,
        service_ready: true,
        ..Default::default()
    };
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "NameInUse");
    assert!(failure.message.contains("db/restored"), "{}", failure.message);
    touches_nothing_of_others(&d);
}

#[test]
fn two_restores_racing_for_one_name_one_wins_and_the_loser_touches_nothing() {
    // Both saw no cluster and asked to create it; the API server let only
    // the first create through. The loser then sees the winner's cluster.
    let loser = observed(restore(default_spec()));
    let d = decide(&loser);
    assert!(kinds(&d).contains(&"CreateKubegres"), "{:?}", kinds(&d));
    let mut loser = apply(&loser, &d);
    loser.target = TargetCluster {
        exists: true,
        uid: Some("winner-cluster".into()),
        created: Some(t0()),
        managed_by_us: false,
        volumes: vec![volume("winners-volume", 0)],
        ..Default::default()
    };
    let (d, loser) = step(&loser);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "NameInUse");
    assert_eq!(d.status.created_cluster, None);
    touches_nothing_of_others(&d);
    // Deleting the losing restore deletes nothing of the winner's.
    let mut deleted = loser;
    deleted.restore.metadata.deletion_timestamp = Some(Time(at(10)));
    let d = decide(&deleted);
    touches_nothing_of_others(&d);
}

#[test]
fn a_cluster_replaced_by_someone_elses_mid_restore_is_not_deleted_on_retry() {
    let mut o = running();
    o.target.managed_by_us = false;
    o.target.uid = Some("someone-elses".into());
    o.target.attempt = None;
    let d = decide(&o);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "NameInUse");
    touches_nothing_of_others(&d);
}

#[test]
fn an_earlier_attempts_cluster_is_never_reused() {
    // The retry asked to delete attempt 1's cluster, but it is still there
    // (the delete did not go through): attempt 2 must not start in it.
    let mut o = running();
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
    let mut o = Observed { restore: o.restore.clone(), ..o };
    o.restore.status = Some(d.status.clone());
    let d = decide(&o);
    let deletes: Vec<_> =
        d.actions.iter().filter(|a| matches!(a, Action::Delete { kind: Kind::Kubegres, .. })).collect();
    assert_eq!(
        deletes,
        [&Action::Delete { kind: Kind::Kubegres, name: "restored".into(), uid: "kubegres-uid-1".into() }]
    );
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateKubegres { .. } | Action::CreateRestorePod { .. })));
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
}

/// Someone else's object holds one of the restore's names.
fn taken(o: &mut Observed, which: usize) {
    match which {
        0 => o.children.service_account = Child::Foreign,
        1 => o.children.role = Child::Foreign,
        2 => o.children.role_binding = Child::Foreign,
        _ => o.foreign_pod = Some("orders-restore-1".into()),
    }
}

#[test]
fn objects_of_the_restores_names_that_are_not_its_own_fail_with_name_in_use() {
    for (what, set) in [
        ("ServiceAccount db/orders-restore", 0),
        ("Role db/orders-restore", 1),
        ("RoleBinding db/orders-restore", 2),
        ("Pod db/orders-restore-1", 3),
    ] {
        let (_, mut o) = step(&observed(restore(default_spec())));
        make_ready(&mut o);
        taken(&mut o, set);
        let d = decide(&o);
        let failure = d.status.failure.as_ref().unwrap_or_else(|| panic!("{what}: {:?}", d.actions));
        assert_eq!(failure.reason, "NameInUse", "{what}");
        assert!(failure.message.contains(what), "{what}: {}", failure.message);
        assert!(
            !d.actions.iter().any(|a| matches!(a, Action::Delete { .. } | Action::CreateRestorePod { .. })),
            "{what}: {:?}",
            d.actions
        );

        // Taken before the restore started: it ends there, having made
        // nothing (no cluster to delete again, no Started then NameInUse).
        let mut o = observed(restore(default_spec()));
        taken(&mut o, set);
        let d = decide(&o);
        assert_eq!(d.status.failure.as_ref().map(|f| f.reason.as_str()), Some("NameInUse"), "{what}");
        assert_eq!(events(&d), ["NameInUse"], "{what}");
        assert!(!kinds(&d).iter().any(|kind| kind.starts_with("Create")), "{what}: {:?}", kinds(&d));
    }
}

#[test]
fn a_copied_spec_loses_its_backup_schedule_until_the_hand_over() {
    let mut spec = cluster_spec();
    spec["backup"] = json!({"schedule": "*/5 * * * *", "pvcName": "backups", "volumeMount": "/var/lib/backup"});
    let mut restore_spec = default_spec();
    restore_spec["dataSource"]["cluster"]["clusterSpec"] = spec.clone();
    let o = observed(restore(restore_spec.clone()));
    let (d, _) = step(&o);
    let Some(Action::CreateKubegres { object, .. }) = changes(&d).first().copied() else { panic!("{:?}", d.actions) };
    assert!(object["spec"].get("backup").is_none(), "{object}");
    assert_eq!(object["spec"]["replicas"], 1);

    let mut o = running_with(restore_spec);
    o.pods[0].phase = PodPhase::Succeeded;
    let d = decide(&o);
    let handed = d.actions.iter().find_map(|a| match a {
        Action::HandOverKubegres { backup, .. } => Some(backup.clone()),
        _ => None,
    });
    assert_eq!(handed, Some(Some(spec["backup"].clone())));
}

#[test]
fn an_agent_image_the_operator_does_not_allow_fails_at_once() {
    let mut spec = default_spec();
    spec["agent"] = json!({"image": "evil.example/steal-secrets:1"});
    let mut o = observed(restore(spec.clone()));
    o.allowed_images = vec!["registry.example/restore-agent:*".into()];
    let d = decide(&o);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "AgentImageNotAllowed");
    assert!(failure.message.contains("evil.example/steal-secrets:1"), "{}", failure.message);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateKubegres { .. } | Action::CreateRestorePod { .. })));
    // Allowed by a prefix entry, or as the operator's own image.
    spec["agent"] = json!({"image": "registry.example/restore-agent:2.0"});
    let mut o = observed(restore(spec.clone()));
    o.allowed_images = vec!["registry.example/restore-agent:*".into()];
    assert_eq!(decide(&o).status.failure, None);
    spec["agent"] = json!({"image": DEFAULT_AGENT_IMAGE});
    assert_eq!(decide(&observed(restore(spec))).status.failure, None);
}

#[test]
fn the_agent_starts_only_once_the_service_has_a_ready_endpoint() {
    let (_, mut o) = step(&observed(restore(default_spec())));
    let (_, mut o2) = step(&o);
    o2.target.primary_ready = true;
    o2.target.waiting_for = Some("the primary is Ready; the Service restored or its endpoint is not there yet".into());
    let d = decide(&o2);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "WaitingForService"));
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateRestorePod { .. })));
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(2)));
    o = o2;
    o.target.service_ready = true;
    let d = decide(&o);
    assert!(d.actions.iter().any(|a| matches!(a, Action::CreateRestorePod { .. })));
}

#[test]
fn a_target_that_never_becomes_ready_fails_after_the_timeout_with_its_state() {
    let mut spec = default_spec();
    spec["targetReadyTimeoutSeconds"] = json!(60);
    let (_, mut o) = step(&observed(restore(spec)));
    o.target.waiting_for = Some("primary Pod restored-1-0 is Pending: ErrImagePull (no such image)".into());
    o.now = at(59);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::WaitingForTarget);
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(1)));
    o.now = at(60);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "TargetNotReady");
    assert!(failure.message.contains("ErrImagePull (no such image)"), "{}", failure.message);
    assert!(failure.message.contains("60 s"), "{}", failure.message);
}

#[test]
fn a_missing_kubegres_api_says_so() {
    let mut o = observed(restore(default_spec()));
    o.target.api_missing = true;
    let d = decide(&o);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "KubegresNotInstalled");
    assert!(d.status.failure.as_ref().unwrap().message.contains("kubegres.reactive-tech.io/v1"));
}

#[test]
fn a_retry_restores_the_backup_the_first_attempt_chose_and_starts_with_fresh_progress() {
    let mut o = running();
    o.status_mut().progress = Some(RestoreProgress {
        source: Some("/var/lib/backup/mypostgres-backup-02_12_2026_03_00_00.gz".into()),
        bytes_read: 1000,
        ..Default::default()
    });
    failed_attempt(&mut o, 4, "connection reset");
    o.now = at(10_000);
    let (d, o) = step(&o);
    assert_eq!(d.status.pinned_source.as_deref(), Some("/var/lib/backup/mypostgres-backup-02_12_2026_03_00_00.gz"));
    let (_, mut o) = step(&o);
    make_ready(&mut o);
    let d = decide(&o);
    assert!(kinds(&d).contains(&"ResetProgress"), "{:?}", kinds(&d));
    let args = created_pod_args(&d).join(" ");
    assert!(args.contains("--source /var/lib/backup/mypostgres-backup-02_12_2026_03_00_00.gz --target"), "{args}");
    assert!(!args.contains("--pick"), "{args}");
}

#[test]
fn a_reported_source_outside_the_volume_is_never_pinned() {
    let mut o = running();
    o.status_mut().progress =
        Some(RestoreProgress { source: Some("/var/lib/backup/../../etc/passwd".into()), ..Default::default() });
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    assert_eq!(decide(&o).status.pinned_source, None);
}

#[test]
fn latest_picks_among_the_copied_clusters_backups() {
    let spec = json!({
        "clusterName": "restored",
        "dataSource": {"file": {"pvcName": "backups"}, "cluster": {"clusterName": "mypostgres"}}
    });
    let mut o = observed(restore(spec));
    o.copy_from_spec = cluster_spec().as_object().cloned();
    let (_, mut o) = step(&o);
    make_ready(&mut o);
    let d = decide(&o);
    let args = created_pod_args(&d).join(" ");
    assert!(args.contains("--pick latest --backups-of mypostgres"), "{args}");
}

#[test]
fn a_killed_agent_is_reported_as_killed_with_its_last_progress() {
    let mut o = running();
    o.status_mut().progress = Some(RestoreProgress {
        bytes_read: 12 * 1_048_576,
        bytes_total: Some(40 * 1_048_576),
        percent: Some(30),
        rows_copied: 1234,
        current_object: Some("TABLE DATA public.film".into()),
        ..Default::default()
    });
    o.status_mut().attempts = Some(1);
    o.restore.spec.backoff_limit = 0;
    failed_attempt(&mut o, 137, "{\"level\":\"INFO\",\"fields\":{\"message\":\"resto");
    let d = decide(&o);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "AgentKilled");
    assert_eq!(
        failure.message,
        "the restore agent was killed by signal 9 (SIGKILL); it had read 12.0 MiB of 40.0 MiB (30%), 1234 rows, at \
         TABLE DATA public.film"
    );
    o.pods[0].reason = Some("OOMKilled".into());
    let d = decide(&o);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "OOMKilled");
}

#[test]
fn an_existing_server_with_allow_non_empty_is_never_restored_into_twice() {
    let spec = json!({
        "dataSource": {"http": {"url": "https://dumps.example/db.sql.gz"}},
        "target": {"postgres": {"host": "pg.example", "database": "app", "credentialsSecret": {"name": "pg"}, "allowNonEmpty": true}}
    });
    let (_, mut o) = step(&observed(restore(spec)));
    o.pods[0].phase = PodPhase::Running;
    let (_, mut o) = step(&o);
    failed_attempt(&mut o, 4, "connection reset");
    o.now = at(10_000);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert!(d.status.failure.as_ref().unwrap().message.contains("not retried"), "{:?}", d.status.failure);
}

#[test]
fn database_names_never_reach_the_url_unescaped_and_the_kubegres_port_is_used() {
    let spec = json!({
        "dataSource": {"s3": {"bucket": "b", "key": "k"}},
        "target": {"database": {"clusterName": "main", "database": "o?host=evil.example#x%/y"}}
    });
    let mut o = observed(restore(spec));
    let mut cluster_spec = cluster_spec();
    cluster_spec["port"] = json!(6543);
    o.target = TargetCluster {
        exists: true,
        primary_ready: true,
        service_ready: true,
        spec: cluster_spec.as_object().cloned(),
        ..Default::default()
    };
    let d = decide(&o);
    let args = created_pod_args(&d);
    let target = &args[args.iter().position(|a| a == "--target").unwrap() + 1];
    assert_eq!(target, "postgres://postgres@main.db.svc:6543/o%3Fhost%3Devil.example%23x%25%2Fy");
}

#[test]
fn the_recorded_cluster_keeps_its_first_creation_time_across_retries() {
    let mut o = running();
    o.status_mut().created_cluster = Some(CreatedCluster {
        name: "restored".into(),
        uid: "kubegres-uid-1".into(),
        first_created: Time(at(-100)),
        volumes: Vec::new(),
    });
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let (_, o) = step(&o);
    let (_, mut o) = step(&o);
    make_ready(&mut o);
    let (d, _) = step(&o);
    let created = d.status.created_cluster.unwrap();
    assert_eq!((created.uid.as_str(), created.first_created.0), ("kubegres-uid-2", at(-100)));
}
