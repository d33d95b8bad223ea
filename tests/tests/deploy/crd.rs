//! The KubegresRestore CRD on a real kube-apiserver: the generated file in
//! deploy/crds is current, is accepted and becomes Established; the examples
//! in deploy/examples are accepted; the CEL rules reject bad specs with
//! their readable sentences; the agent and the operator write status through
//! the status subresource with their own field managers; `kubectl get`
//! shows the printer columns.
//!
//! The tests share one control plane (started on first use, with the CRD
//! from deploy/ installed) and each works in its own namespace.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use proto::crd::{
    CONDITION_PROGRESSING, CRD_NAME, KubegresRestore, KubegresRestoreStatus, OPERATOR_FIELD_MANAGER, Phase,
};
use proto::{AGENT_FIELD_MANAGER, RestoreProgress};
use serde_json::{Value, json};

mod specs;

use crate::support::*;

// ---------------------------------------------------------------------------
// The CRD itself

#[test]
fn deploy_crd_is_generated_from_proto() {
    let on_disk = read_yaml(&crd_path());
    let generated = serde_json::to_value(proto::crd::crd()).unwrap();
    assert!(
        on_disk == generated,
        "deploy/crds/kubegres-restore.yaml differs from the CRD generated from proto/src/crd: run `make crds`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crd_is_established_with_names_and_printer_columns() {
    let client = admin().await;
    let crd = Api::<CustomResourceDefinition>::all(client.clone()).get(CRD_NAME).await.unwrap();
    let status = crd.status.clone().unwrap();
    let conditions = status.conditions.unwrap();
    for type_ in ["NamesAccepted", "Established"] {
        let condition = conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_}"));
        assert_eq!(condition.status, "True", "{type_}: {:?}", condition.message);
    }
    assert_eq!(status.accepted_names.unwrap().short_names.unwrap(), ["kgrestore", "kgr"]);
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<&str> =
        version.additional_printer_columns.iter().flatten().map(|column| column.name.as_str()).collect();
    assert_eq!(columns, ["Phase", "Progress", "Source", "Target", "Age"]);

    // Discovery tells kubectl the short names and the status subresource.
    let discovery: Value =
        client.request(http::Request::get(format!("/apis/{API_VERSION}")).body(Vec::new()).unwrap()).await.unwrap();
    let resources = discovery["resources"].as_array().unwrap();
    let main = resources.iter().find(|r| r["name"] == "kubegresrestores").expect("kubegresrestores discovered");
    assert_eq!(main["shortNames"], json!(["kgrestore", "kgr"]));
    assert_eq!(main["namespaced"], true);
    assert!(resources.iter().any(|r| r["name"] == "kubegresrestores/status"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_phase_progress_source_and_target() {
    let client = admin().await;
    let ns = namespace(&client, "crd-printer-columns").await;
    let restores: Api<KubegresRestore> = Api::namespaced(client.clone(), &ns);
    let restore: KubegresRestore = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "KubegresRestore",
        "metadata": {"name": "shown"}, "spec": fork_spec()
    }))
    .unwrap();
    restores.create(&PostParams::default(), &restore).await.unwrap();
    let mut status = KubegresRestoreStatus {
        progress: Some(RestoreProgress {
            bytes_read: 420,
            bytes_total: Some(1000),
            percent: Some(42),
            ..Default::default()
        }),
        source: restore.spec.source_summary(),
        target: restore.spec.target_summary(),
        ..Default::default()
    };
    status.set_phase(Phase::Restoring);
    let patch = json!({"apiVersion": API_VERSION, "kind": "KubegresRestore", "status": status});
    restores.patch_status("shown", &PatchParams::apply(OPERATOR_FIELD_MANAGER), &Patch::Apply(&patch)).await.unwrap();

    // What `kubectl get kgr` asks for: the list as a Table.
    let request = http::Request::get(format!("/apis/{API_VERSION}/namespaces/{ns}/kubegresrestores"))
        .header(http::header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: Value = client.request(request).await.unwrap();
    assert_eq!(table["kind"], "Table", "{table}");
    let columns: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Name", "Phase", "Progress", "Source", "Target", "Age"]);
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(
        &cells[..5],
        &[json!("shown"), json!("Restoring"), json!(42), json!("pvc/backups:latest"), json!("cluster/restored")]
    );
}

// ---------------------------------------------------------------------------
// What the apiserver accepts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted() {
    let client = admin().await;
    let ns = namespace(&client, "crd-examples").await;
    let api = dynamic(&client, &ns);
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo_root().join("deploy/examples"))
        .expect("deploy/examples exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "expected the examples in deploy/examples, found {examples:?}");
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    for path in &examples {
        let value = read_yaml(path);
        // The example matches the Rust types the operator will read it with.
        let typed: KubegresRestore = serde_json::from_value(value.clone())
            .unwrap_or_else(|error| panic!("{} does not match the types: {error}", path.display()));
        typed.spec.source_kind().unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        typed.spec.target().unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let object: DynamicObject = serde_json::from_value(value).unwrap();
        let name = object.metadata.name.clone().unwrap();
        let stored = api
            .create(&dry_run, &object)
            .await
            .unwrap_or_else(|error| panic!("{} was rejected: {error}", path.display()));
        // The apiserver applied the schema's defaults.
        assert_eq!(stored.data["spec"]["backoffLimit"], 3, "{}", path.display());
        assert_eq!(stored.data["spec"]["onError"], "stop", "{}", path.display());
        let missing = api.get(&name).await.unwrap_err();
        assert_eq!(api_error(&missing).0, 404, "a dry run stored {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_restore_is_stored_unchanged_with_defaults_filled_in() {
    let client = admin().await;
    let ns = namespace(&client, "crd-fork").await;
    let spec = json!({
        "clusterName": "mypostgres-restored",
        "databaseName": "postgres",
        "customConfig": "mypostgres-restore-config",
        "dataSource": {
            "file": {"pvcName": "mypostgres-backup-pvc", "mountPath": "/var/lib/backup",
                     "snapshot": "mypostgres-backup-24_02_2023_13_00_01.gz"},
            "cluster": {"clusterSpec": {"image": "postgres:17", "replicas": 3,
                                        "database": {"size": "8Gi"}, "futureField": {"kept": true}}}
        },
        "resources": {"requests": {"cpu": 1, "memory": "200Mi"}},
        "env": [{"name": "PGCONNECT_TIMEOUT", "value": "10"}]
    });
    let api = dynamic(&client, &ns);
    api.create(&PostParams::default(), &object("fork", spec.clone())).await.unwrap();
    let stored = api.get("fork").await.unwrap();
    for (field, value) in spec.as_object().unwrap() {
        assert_eq!(&stored.data["spec"][field], value, "spec.{field} changed");
    }
    let typed: Api<KubegresRestore> = Api::namespaced(client, &ns);
    let restore = typed.get("fork").await.unwrap();
    assert_eq!(restore.spec.backoff_limit, 3);
    assert_eq!(restore.spec.jobs, 1);
    assert_eq!(restore.metadata.generation, Some(1));
    assert_eq!(restore.spec.target_summary().as_deref(), Some("cluster/mypostgres-restored"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundary_values_are_accepted() {
    let client = admin().await;
    let ns = namespace(&client, "crd-boundaries").await;
    let api = dynamic(&client, &ns);
    let cases = specs::boundary_specs();
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let mut refused = Vec::new();
    for (name, spec) in cases {
        if let Err(error) = api.create(&dry_run, &object(name, spec)).await {
            refused.push(format!("{name}: {}", api_error(&error).1));
        }
    }
    assert!(refused.is_empty(), "valid specs were refused:\n{}", refused.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_rejected_with_readable_sentences() {
    let client = admin().await;
    let ns = namespace(&client, "crd-bad-specs").await;
    let api = dynamic(&client, &ns);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let cases = specs::bad_specs();
    assert!(cases.len() >= 8);
    let mut wrong = Vec::new();
    for case in &cases {
        let error = match api.create(&dry_run, &object(case.name, case.spec.clone())).await {
            Ok(_) => {
                wrong.push(format!("{}: accepted", case.name));
                continue;
            }
            Err(error) => error,
        };
        let kube::Error::Api(status) = &error else { panic!("{}: {error}", case.name) };
        let causes: Vec<(String, String)> = status
            .details
            .iter()
            .flat_map(|details| &details.causes)
            // When the OpenAPI schema already fails (an unknown enum value), the
            // apiserver adds that it skipped the CEL rules: not a complaint.
            .filter(|cause| !cause.message.contains("some validation rules were not checked"))
            .map(|cause| (cause.field.clone(), cause.message.clone()))
            .collect();
        // Exactly one complaint, about the intended field, in the intended words.
        let as_intended = status.code == 422
            && status.message.contains(case.says)
            && matches!(causes.as_slice(), [(field, message)] if field == case.field && message.contains(case.says));
        if !as_intended {
            wrong.push(format!("{}: {} {:?} causes {causes:?}", case.name, status.code, status.message));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} bad specs were not refused as intended:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Status: two field managers through the status subresource

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_operator_write_status_without_conflict() {
    let client = admin().await;
    let ns = namespace(&client, "crd-status").await;
    let api = dynamic(&client, &ns);
    api.create(&PostParams::default(), &object("status", fork_spec())).await.unwrap();
    let restores: Api<KubegresRestore> = Api::namespaced(client.clone(), &ns);
    let apply = |status: &KubegresRestoreStatus| json!({"apiVersion": API_VERSION, "kind": "KubegresRestore", "status": status});
    let agent = PatchParams::apply(AGENT_FIELD_MANAGER);
    let operator = PatchParams::apply(OPERATOR_FIELD_MANAGER);
    let progress = |bytes_read: u64, percent: u8| KubegresRestoreStatus {
        progress: Some(RestoreProgress {
            bytes_read,
            bytes_total: Some(1000),
            percent: Some(percent),
            rows_copied: bytes_read / 10,
            current_object: Some("TABLE DATA public.film".into()),
            throughput: Some("1.0 MiB/s".into()),
            eta: Some("10s".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let operator_status = |phase: Phase| {
        let mut status = KubegresRestoreStatus {
            observed_generation: Some(1),
            attempts: Some(1),
            start_time: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
            conditions: vec![Condition {
                type_: CONDITION_PROGRESSING.into(),
                status: "True".into(),
                reason: phase.as_str().into(),
                message: phase.stage().into(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::from_second(1_700_000_000).unwrap()),
            }],
            ..Default::default()
        };
        status.set_phase(phase);
        status
    };

    // Interleaved, as they happen: neither manager's apply conflicts with
    // the other's, and neither removes what the other owns.
    restores.patch_status("status", &operator, &Patch::Apply(apply(&operator_status(Phase::Restoring)))).await.unwrap();
    restores.patch_status("status", &agent, &Patch::Apply(apply(&progress(100, 10)))).await.unwrap();
    restores.patch_status("status", &operator, &Patch::Apply(apply(&operator_status(Phase::Restoring)))).await.unwrap();
    restores.patch_status("status", &agent, &Patch::Apply(apply(&progress(420, 42)))).await.unwrap();
    let after = restores
        .patch_status("status", &operator, &Patch::Apply(apply(&operator_status(Phase::Finalizing))))
        .await
        .unwrap();

    let status = after.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Finalizing));
    assert_eq!(status.stage.as_deref(), Some(Phase::Finalizing.stage()));
    assert_eq!(status.is_completed, Some(false));
    assert_eq!(status.attempts, Some(1));
    assert_eq!(status.conditions.len(), 1);
    let progress_now = status.progress.unwrap();
    assert_eq!((progress_now.bytes_read, progress_now.percent), (420, Some(42)));
    assert_eq!(progress_now.current_object.as_deref(), Some("TABLE DATA public.film"));
    // Status writes do not change the spec's generation.
    assert_eq!(after.metadata.generation, Some(1));

    // Each manager owns its own fields of status.
    let managed = after.metadata.managed_fields.clone().unwrap();
    let owned = |manager: &str| -> Value {
        let entry = managed
            .iter()
            .find(|entry| entry.manager.as_deref() == Some(manager) && entry.subresource.as_deref() == Some("status"))
            .unwrap_or_else(|| panic!("{manager} manages no status fields: {managed:?}"));
        entry.fields_v1.as_ref().unwrap().0.clone()
    };
    let agent_fields = owned(AGENT_FIELD_MANAGER);
    let operator_fields = owned(OPERATOR_FIELD_MANAGER);
    assert_eq!(agent_fields["f:status"].as_object().unwrap().keys().collect::<Vec<_>>(), ["f:progress"]);
    let operator_owns = operator_fields["f:status"].as_object().unwrap();
    assert!(operator_owns.contains_key("f:phase") && operator_owns.contains_key("f:conditions"));
    assert!(!operator_owns.contains_key("f:progress"));

    // Overlapping writes do conflict: the agent cannot take over the phase.
    let mut takeover = progress(430, 43);
    takeover.phase = Some(Phase::Failed);
    let conflict = restores.patch_status("status", &agent, &Patch::Apply(apply(&takeover))).await.unwrap_err();
    let (code, message) = api_error(&conflict);
    assert_eq!(code, 409, "{message}");
    assert!(message.contains(".status.phase"), "{message}");
}
