//! tower-test scenarios that pin the operator's exact API calls, in order:
//! method, path, query (field manager, force, never a dry run) and the key
//! parts of each body. The API server is a script (see `api_calls/server.rs`);
//! a call that never comes fails within seconds, naming it, and a call the
//! script does not expect fails the scenario.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod server;

use std::sync::Arc;
use std::time::Duration;

use fixtures::*;
use http::{Method, StatusCode};
use kube::runtime::controller::Action;
use operator::controller::{error_backoff, error_policy};
use operator::decide::FINALIZER;
use proto::KubegresRestore;
use serde_json::{Value, json};
use server::{Call, Scenario, requeue_of};

/// The observe step of a restore that has nothing yet: the restore, its
/// Pods (none), the first attempt's Pod name (free), then its
/// ServiceAccount, Role and RoleBinding (404s).
async fn observe_new_restore(scenario: &mut Scenario) {
    let call = scenario.expect(Method::GET, RESTORE).await;
    call.assert_query(&[]);
    call.ok(&new_restore());

    let call = scenario.expect(Method::GET, PODS).await;
    call.assert_query(&[("labelSelector", POD_SELECTOR)]);
    call.ok(&pod_list(&[]));

    let call = scenario.expect(Method::GET, POD_1).await;
    call.assert_metadata_get();
    call.not_found();

    for path in [SERVICE_ACCOUNT, ROLE, ROLE_BINDING] {
        let call = scenario.expect(Method::GET, path).await;
        call.assert_metadata_get();
        call.not_found();
    }
}

/// The writes of a first reconcile before the Pod: status, finalizer, the
/// Started and Restoring Events, ServiceAccount, Role, RoleBinding.
async fn first_writes_before_the_pod(scenario: &mut Scenario) {
    // The status first (the attempt number is recorded before its Pod).
    let call = scenario.expect(Method::PATCH, RESTORE_STATUS).await;
    call.assert_apply();
    assert_eq!(keys(&call.body), ["apiVersion", "kind", "status"], "the status apply owns only the status");
    assert_eq!(call.body["apiVersion"], "kubegres.reactive-tech.io/v1");
    assert_eq!(call.body["kind"], "KubegresRestore");
    let status = &call.body["status"];
    assert_eq!(status["phase"], "Restoring");
    assert_eq!(status["attempts"], 1);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["isCompleted"], false);
    assert_eq!(status["source"], "https://dumps.example/app.sql.gz");
    assert_eq!(status["target"], "postgres://db.example:5432/app");
    assert!(status["startTime"].is_string(), "{status}");
    assert!(status.get("progress").is_none(), "the operator never writes the agent's progress: {status}");
    assert!(status.get("failure").is_none(), "{status}");
    let conditions = status["conditions"].as_array().expect("conditions");
    let progressing = conditions.iter().find(|c| c["type"] == "Progressing").expect("a Progressing condition");
    assert_eq!((&progressing["status"], &progressing["reason"]), (&json!("True"), &json!("Restoring")));
    assert_eq!(progressing["observedGeneration"], 1);
    let mut written = new_restore();
    written["status"] = status.clone();
    call.ok(&written);

    // The finalizer: an apply that owns only the finalizer entry.
    let call = scenario.expect(Method::PATCH, RESTORE).await;
    call.assert_apply();
    assert_eq!(
        call.body,
        json!({
            "apiVersion": "kubegres.reactive-tech.io/v1",
            "kind": "KubegresRestore",
            "metadata": {"name": NAME, "finalizers": [FINALIZER]},
        })
    );
    let mut written = new_restore();
    written["metadata"]["finalizers"] = json!([FINALIZER]);
    call.ok(&written);

    // The ServiceAccount and the Role, sent together (answered in turn):
    // creates, never applies that could take over an object of that name.
    let call = scenario.expect(Method::POST, SERVICE_ACCOUNTS).await;
    call.assert_create();
    assert_child_object(&call, "v1", "ServiceAccount");
    call.echo();

    let call = scenario.expect(Method::POST, ROLES).await;
    call.assert_create();
    assert_child_object(&call, "rbac.authorization.k8s.io/v1", "Role");
    assert_eq!(
        call.body["rules"],
        json!([{
            "apiGroups": ["kubegres.reactive-tech.io"],
            "resources": ["kubegresrestores/status"],
            "resourceNames": [NAME],
            "verbs": ["get", "patch"],
        }]),
        "the agent may read and patch this one restore's status, nothing else"
    );
    call.echo();
}

/// After the Pod, together: the decision's Events in its order, and the
/// RoleBinding (the slowest create; the agent needs it only once it runs).
async fn last_writes_after_the_pod(scenario: &mut Scenario) {
    expect_event(scenario, "Normal", "Started").await;
    expect_event(scenario, "Normal", "Restoring").await;
    let call = scenario.expect(Method::POST, ROLE_BINDINGS).await;
    call.assert_create();
    assert_child_object(&call, "rbac.authorization.k8s.io/v1", "RoleBinding");
    assert_eq!(call.body["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CHILD}));
    assert_eq!(call.body["subjects"], json!([{"kind": "ServiceAccount", "name": CHILD, "namespace": NAMESPACE}]));
    call.echo();
}

/// An Event on the restore, recorded by the operator (events.k8s.io/v1).
async fn expect_event(scenario: &mut Scenario, type_: &str, reason: &str) {
    let call = scenario.expect(Method::POST, EVENTS).await;
    call.assert_query(&[]);
    let event = &call.body;
    assert_eq!((&event["type"], &event["reason"]), (&json!(type_), &json!(reason)), "{event}");
    assert_eq!(event["apiVersion"], "events.k8s.io/v1");
    assert_eq!(event["action"], "Reconcile");
    assert_eq!(event["reportingController"], proto::OPERATOR_FIELD_MANAGER);
    let regarding = &event["regarding"];
    assert_eq!(
        (&regarding["kind"], &regarding["namespace"], &regarding["name"], &regarding["uid"]),
        (&json!("KubegresRestore"), &json!(NAMESPACE), &json!(NAME), &json!(UID)),
        "{event}"
    );
    call.echo();
}

/// The ServiceAccount, Role and RoleBinding: `<restore>-restore`, labelled,
/// owned by the restore.
fn assert_child_object(call: &Call, api_version: &str, kind: &str) {
    assert_eq!((&call.body["apiVersion"], &call.body["kind"]), (&json!(api_version), &json!(kind)));
    let metadata = &call.body["metadata"];
    assert_eq!((&metadata["name"], &metadata["namespace"]), (&json!(CHILD), &json!(NAMESPACE)));
    assert_eq!(metadata["labels"], child_labels());
    assert_eq!(metadata["ownerReferences"], owner_reference());
}

/// The restore Pod of attempt 1, created under the operator's field manager.
async fn expect_pod_create(scenario: &mut Scenario) -> Call {
    let call = scenario.expect(Method::POST, PODS).await;
    call.assert_query(&[("fieldManager", proto::OPERATOR_FIELD_MANAGER)]);
    let pod = &call.body;
    let metadata = &pod["metadata"];
    assert_eq!(metadata["name"], "orders-restore-1");
    assert_eq!(metadata["labels"]["kubegres.reactive-tech.io/restore-attempt"], "1");
    assert_eq!(metadata["labels"]["kubegres.reactive-tech.io/restore"], NAME);
    assert_eq!(metadata["ownerReferences"], owner_reference());
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], CHILD);
    assert_eq!(spec["restartPolicy"], "Never");
    let container = &spec["containers"][0];
    let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    assert_eq!(args[0], "restore");
    assert!(args.windows(2).any(|pair| pair == ["--source", "https://dumps.example/app.sql.gz"]), "{args:?}");
    assert!(args.windows(2).any(|pair| pair == ["--target", "postgres://db.example:5432/app"]), "{args:?}");
    assert!(args.windows(2).any(|pair| pair == ["--kubegres-restore", "db/orders"]), "{args:?}");
    let env = container["env"].as_array().expect("env");
    let password = env.iter().find(|var| var["name"] == "PGPASSWORD").expect("PGPASSWORD");
    assert!(password.get("value").is_none(), "the password is never a literal: {password}");
    assert_eq!(password["valueFrom"]["secretKeyRef"]["name"], "pg");
    call
}

#[tokio::test]
async fn a_new_restore_is_started_with_these_calls_in_this_order() {
    let mut scenario = Scenario::new();
    scenario.reconcile(&new_restore());
    observe_new_restore(&mut scenario).await;
    first_writes_before_the_pod(&mut scenario).await;
    expect_pod_create(&mut scenario).await.echo();
    last_writes_after_the_pod(&mut scenario).await;

    let action = scenario.finish().await.expect("the reconcile succeeds");
    assert_eq!(action, Action::requeue(Duration::from_secs(1)), "a reconcile that acted looks again soon");
}

#[tokio::test]
async fn an_unchanged_restore_is_only_read_and_never_written() {
    let mut scenario = Scenario::new();
    let restore = restoring_restore();
    scenario.reconcile(&restore);

    scenario.expect(Method::GET, RESTORE).await.ok(&restore);
    let call = scenario.expect(Method::GET, PODS).await;
    call.assert_query(&[("labelSelector", POD_SELECTOR)]);
    call.ok(&pod_list(&[restore_pod(1, "Running")]));
    scenario.expect(Method::GET, POD_1).await.ok(&metadata("orders-restore-1"));
    for path in [SERVICE_ACCOUNT, ROLE, ROLE_BINDING] {
        let call = scenario.expect(Method::GET, path).await;
        call.assert_metadata_get();
        call.ok(&metadata(CHILD));
    }

    // No status PATCH, no apply, no Event: `finish` fails on any call.
    let action = scenario.finish().await.expect("the reconcile succeeds");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_deleted_restore_loses_its_children_then_its_finalizer() {
    let mut scenario = Scenario::new();

    // First reconcile: leftovers are deleted; the finalizer stays.
    let restore = deleting(restoring_restore());
    scenario.reconcile(&restore);
    scenario.expect(Method::GET, RESTORE).await.ok(&restore);
    let mut going = restore_pod(2, "Running");
    going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
    scenario.expect(Method::GET, PODS).await.ok(&pod_list(&[restore_pod(1, "Failed"), going]));
    scenario.expect(Method::GET, POD_1).await.ok(&metadata("orders-restore-1"));
    for path in [SERVICE_ACCOUNT, ROLE, ROLE_BINDING] {
        scenario.expect(Method::GET, path).await.ok(&metadata(CHILD));
    }
    // The Pod already being deleted is left alone; a 404 (the Role went
    // meanwhile) counts as deleted.
    for (path, uid, answer) in [
        (POD_1.to_string(), "uid-orders-restore-1", "deleted"),
        (ROLE_BINDING.to_string(), "uid-orders-restore", "deleted"),
        (ROLE.to_string(), "uid-orders-restore", "not found"),
        (SERVICE_ACCOUNT.to_string(), "uid-orders-restore", "deleted"),
    ] {
        let call = scenario.expect(Method::DELETE, &path).await;
        call.assert_query(&[]);
        assert_eq!(call.body["propagationPolicy"], "Background", "{path}: {}", call.body);
        // Only the object observed: never another one of the same name.
        assert_eq!(call.body["preconditions"]["uid"], uid, "{path}: {}", call.body);
        match answer {
            "deleted" => call.deleted(),
            _ => call.not_found(),
        }
    }
    let action = scenario.finish().await.expect("a 404 on a delete is not an error");
    let wait = requeue_of(&action).expect("a requeue to look again once the children are gone");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60), "{action:?}");

    // Second reconcile: nothing left, so the finalizer goes (an apply that
    // gives up the operator's entry), and nothing else.
    scenario.reconcile(&restore);
    scenario.expect(Method::GET, RESTORE).await.ok(&restore);
    scenario.expect(Method::GET, PODS).await.ok(&pod_list(&[]));
    scenario.expect(Method::GET, POD_1).await.not_found();
    for path in [SERVICE_ACCOUNT, ROLE, ROLE_BINDING] {
        scenario.expect(Method::GET, path).await.not_found();
    }
    let call = scenario.expect(Method::PATCH, RESTORE).await;
    call.assert_apply();
    assert_eq!(
        call.body,
        json!({
            "apiVersion": "kubegres.reactive-tech.io/v1",
            "kind": "KubegresRestore",
            "metadata": {"name": NAME, "finalizers": []},
        })
    );
    let mut released = restore.clone();
    released["metadata"]["finalizers"] = json!([]);
    call.ok(&released);
    let action = scenario.finish().await.expect("the reconcile succeeds");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_forbidden_pod_create_fails_the_reconcile_and_backs_off() {
    let mut scenario = Scenario::new();
    scenario.reconcile(&new_restore());
    observe_new_restore(&mut scenario).await;
    first_writes_before_the_pod(&mut scenario).await;
    expect_pod_create(&mut scenario).await.fail(StatusCode::FORBIDDEN, "Forbidden");
    // The user sees why on the restore, not only in the operator's logs.
    expect_event(&mut scenario, "Warning", "PodCreateFailed").await;

    let error = scenario.finish().await.expect_err("a 403 fails the reconcile");
    assert_eq!(error.category(), "Forbidden");
    assert!(error.to_string().starts_with("cannot create the restore Pod db/orders-restore-1: "), "{error}");

    // The error policy: a requeue, with exponential backoff and jitter per
    // restore (the jitter scales each wait by 0.5 to 1).
    let restore: Arc<KubegresRestore> = Arc::new(serde_json::from_value(new_restore()).unwrap());
    let bounds = |failures| error_backoff(failures, 0.0)..=error_backoff(failures, 1.0);
    let first = error_policy(restore.clone(), &error, scenario.ctx.clone());
    assert!(format!("{first:?}").contains("requeue_after: Some("), "{first:?}");
    let first = requeue_of(&first).expect("a requeue");
    assert!(bounds(1).contains(&first), "{first:?} not in {:?}", bounds(1));
    let second = requeue_of(&error_policy(restore.clone(), &error, scenario.ctx.clone())).expect("a requeue");
    assert!(bounds(2).contains(&second), "{second:?} not in {:?}", bounds(2));
    assert!(second >= first, "the second wait {second:?} is shorter than the first {first:?}");
    let metrics = scenario.ctx.metrics.encode();
    assert!(
        metrics.lines().any(|line| line.contains("reconcile_errors")
            && line.contains("category=\"Forbidden\"")
            && line.ends_with(" 2")),
        "{metrics}"
    );

    // A reconcile that succeeds resets the backoff of this restore.
    scenario.reconcile(&new_restore());
    scenario.expect(Method::GET, RESTORE).await.not_found();
    scenario.finish().await.expect("the reconcile succeeds");
    let after_success = requeue_of(&error_policy(restore, &error, scenario.ctx.clone())).expect("a requeue");
    assert!(bounds(1).contains(&after_success), "{after_success:?} not in {:?}", bounds(1));
}

#[tokio::test]
async fn a_name_held_by_a_users_object_fails_the_restore_and_that_object_is_never_written() {
    let mut scenario = Scenario::new();
    scenario.reconcile(&new_restore());
    scenario.expect(Method::GET, RESTORE).await.ok(&new_restore());
    scenario.expect(Method::GET, PODS).await.ok(&pod_list(&[]));
    scenario.expect(Method::GET, POD_1).await.not_found();
    // The ServiceAccount's name is a user's: no owner reference of this restore.
    scenario.expect(Method::GET, SERVICE_ACCOUNT).await.ok(&foreign_metadata(CHILD));
    for path in [ROLE, ROLE_BINDING] {
        scenario.expect(Method::GET, path).await.not_found();
    }
    let call = scenario.expect(Method::PATCH, RESTORE_STATUS).await;
    call.assert_apply();
    let status = call.body["status"].clone();
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["failure"]["reason"], "NameInUse", "{status}");
    let message = status["failure"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("ServiceAccount") && message.contains(CHILD), "{message}");
    let mut written = new_restore();
    written["status"] = status;
    call.ok(&written);
    // Its own finalizer (on the restore itself, which it may write).
    let call = scenario.expect(Method::PATCH, RESTORE).await;
    call.assert_apply();
    assert_eq!(call.body["metadata"]["finalizers"], json!([FINALIZER]));
    call.ok(&written);
    // One Event: it found the name held before it started, so it never said
    // Started or Restoring (nor made anything).
    expect_event(&mut scenario, "Warning", "NameInUse").await;
    // Nothing else: no create, apply or delete of anything (the scenario
    // fails on any call it does not expect).
    scenario.finish().await.expect("the reconcile succeeds");
}

#[tokio::test]
async fn a_restore_that_is_gone_is_left_alone() {
    let mut scenario = Scenario::new();
    scenario.reconcile(&new_restore());
    scenario.expect(Method::GET, RESTORE).await.not_found();
    let action = scenario.finish().await.expect("a restore that is gone is not an error");
    assert_eq!(action, Action::await_change());
}
