//! The restore `db/orders` in the states the scenarios need, the paths the
//! operator calls, and the API server's answers.

use k8s_openapi::jiff::Timestamp;
use operator::decide::{Children, DEFAULT_AGENT_IMAGE, FINALIZER, Observed, TargetCluster, decide};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "db";
pub const NAME: &str = "orders";
pub const UID: &str = "uid-1";
/// The ServiceAccount, Role and RoleBinding of the restore.
pub const CHILD: &str = "orders-restore";

pub const RESTORE: &str = "/apis/kubegres.reactive-tech.io/v1/namespaces/db/kubegresrestores/orders";
pub const RESTORE_STATUS: &str = "/apis/kubegres.reactive-tech.io/v1/namespaces/db/kubegresrestores/orders/status";
pub const PODS: &str = "/api/v1/namespaces/db/pods";
/// The first attempt's restore Pod.
pub const POD_1: &str = "/api/v1/namespaces/db/pods/orders-restore-1";
pub const SERVICE_ACCOUNTS: &str = "/api/v1/namespaces/db/serviceaccounts";
pub const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/db/roles";
pub const ROLE_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/db/rolebindings";
pub const SERVICE_ACCOUNT: &str = "/api/v1/namespaces/db/serviceaccounts/orders-restore";
pub const ROLE: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/db/roles/orders-restore";
pub const ROLE_BINDING: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/db/rolebindings/orders-restore";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/db/events";

/// The label selector of the restore's Pods.
pub const POD_SELECTOR: &str = "kubegres.reactive-tech.io/restore=orders";

/// An HTTP source into an existing PostgreSQL server.
pub fn spec() -> Value {
    json!({
        "dataSource": {"http": {"url": "https://dumps.example/app.sql.gz"}},
        "target": {"postgres": {"host": "db.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
    })
}

/// A restore just created: no status, no finalizer.
pub fn new_restore() -> Value {
    json!({
        "apiVersion": "kubegres.reactive-tech.io/v1",
        "kind": "KubegresRestore",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": UID, "generation": 1, "resourceVersion": "100"},
        "spec": spec(),
    })
}

/// The restore as the operator left it after its first reconcile (status
/// Restoring, attempt 1, finalizer), with the agent's progress on top.
pub fn restoring_restore() -> Value {
    let mut restore = new_restore();
    restore["metadata"]["finalizers"] = json!([FINALIZER]);
    restore["status"] = first_status();
    restore["status"]["progress"] = json!({"bytesRead": 1_048_576, "bytesUncompressed": 4_194_304, "rowsCopied": 1200});
    // The operator saw attempt 1's Pod (restore_pod(1, ...)) on a reconcile.
    restore["status"]["attemptPodUid"] = json!("uid-orders-restore-1");
    restore
}

/// `restore` with a deletion timestamp (its finalizer holds it).
pub fn deleting(mut restore: Value) -> Value {
    restore["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
    restore
}

/// The status the operator writes on the first reconcile, computed by the
/// decide step itself (the apply step writes exactly this, minus
/// `progress`), as of a minute ago.
fn first_status() -> Value {
    let observed = Observed {
        restore: serde_json::from_value(new_restore()).expect("a valid KubegresRestore"),
        now: Timestamp::from_second(Timestamp::now().as_second() - 60).expect("a time"),
        jitter_seed: 0,
        target: TargetCluster::default(),
        copy_from_spec: None,
        pods: Vec::new(),
        foreign_pod: None,
        children: Children::default(),
        agent_image: DEFAULT_AGENT_IMAGE.to_string(),
        allowed_images: Vec::new(),
    };
    let decision = decide(&observed);
    assert_eq!(decision.status.phase(), proto::Phase::Restoring, "the fixture's first decision");
    serde_json::to_value(&decision.status).expect("JSON")
}

/// A restore Pod of `attempt` in `phase`.
pub fn restore_pod(attempt: u32, phase: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{NAME}-restore-{attempt}"),
            "namespace": NAMESPACE,
            "uid": format!("uid-{NAME}-restore-{attempt}"),
            "labels": {
                "app.kubernetes.io/managed-by": proto::OPERATOR_FIELD_MANAGER,
                "kubegres.reactive-tech.io/restore": NAME,
                "kubegres.reactive-tech.io/restore-uid": UID,
                "kubegres.reactive-tech.io/restore-attempt": attempt.to_string(),
            },
            "ownerReferences": owner_reference(),
        },
        "status": {"phase": phase},
    })
}

/// A PodList of `pods`.
pub fn pod_list(pods: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "200"}, "items": pods})
}

/// The answer to a metadata GET of an object the restore owns.
pub fn metadata(name: &str) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"), "ownerReferences": owner_reference()},
    })
}

/// The answer to a metadata GET of an object of that name the restore does
/// not own (a user's).
pub fn foreign_metadata(name: &str) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("users-{name}")},
    })
}

/// The owner reference every child of the restore carries.
pub fn owner_reference() -> Value {
    json!([{
        "apiVersion": "kubegres.reactive-tech.io/v1",
        "kind": "KubegresRestore",
        "name": NAME,
        "uid": UID,
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// The labels every child of the restore carries.
pub fn child_labels() -> Value {
    json!({
        "app.kubernetes.io/managed-by": proto::OPERATOR_FIELD_MANAGER,
        "kubegres.reactive-tech.io/restore": NAME,
        "kubegres.reactive-tech.io/restore-uid": UID,
    })
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}
