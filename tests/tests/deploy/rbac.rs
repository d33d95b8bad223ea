//! The operator's ServiceAccount may do exactly what deploy/rbac grants:
//! every verb on every resource the controller touches (and on resources it
//! must not touch) by SelfSubjectAccessReview, the full rule set by
//! SelfSubjectRulesReview, and a restore's lifecycle by real calls, which
//! also shows that the per-restore Role can be created without `escalate`
//! or `bind`.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use harness::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};
use harness::deploy::{
    FIELD_MANAGER, NAMESPACE, allowed, install_namespaced_operator_rbac, namespaced_operator_token, operator_client,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use operator::decide::{children_name, role, role_binding, service_account};
use proto::crd::{KubegresRestore, OPERATOR_FIELD_MANAGER};
use serde_json::{Value, json};

use crate::support::{admin, api_error, control_plane, namespace};

const GROUP: &str = "kubegres.reactive-tech.io";

/// Every verb a Role can name for a resource, plus the special ones.
const VERBS: [&str; 12] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "use",
];

/// What the controller needs, in every namespace (the ClusterRole): API
/// group, resource, verbs.
const CLUSTER_WIDE: &[(&str, &str, &[&str])] = &[
    (GROUP, "kubegresrestores", &["get", "list", "watch", "patch", "update"]),
    (GROUP, "kubegresrestores/status", &["get", "patch"]),
    (GROUP, "kubegresrestores/finalizers", &["update"]),
    (GROUP, "kubegres", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "pods", &["get", "list", "watch", "create", "delete"]),
    ("", "persistentvolumeclaims", &["list", "delete"]),
    ("", "services", &["get"]),
    ("discovery.k8s.io", "endpointslices", &["list"]),
    ("", "serviceaccounts", &["get", "create", "delete"]),
    ("rbac.authorization.k8s.io", "roles", &["get", "create", "delete"]),
    ("rbac.authorization.k8s.io", "rolebindings", &["get", "create", "delete"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// What the controller needs in its own namespace only (the Role).
const OWN_NAMESPACE: &[(&str, &str, &[&str])] =
    &[("coordination.k8s.io", "leases", &["get", "create", "update", "patch"])];

/// Resources the operator must not touch at all, checked with every verb.
const UNTOUCHED: &[(&str, &str)] = &[
    ("", "secrets"),
    ("", "configmaps"),
    ("", "events"),
    ("", "namespaces"),
    ("", "pods/exec"),
    ("", "pods/log"),
    ("", "pods/status"),
    ("", "serviceaccounts/token"),
    ("", "services/proxy"),
    ("", "endpoints"),
    (GROUP, "kubegres/status"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("apps", "deployments"),
    ("batch", "jobs"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
];

/// Where the verbs are checked: a namespace the operator knows nothing
/// about, every namespace at once, and its own.
const NAMESPACES: [Option<&str>; 3] = [Some("team-a"), None, Some(NAMESPACE)];

fn expected(group: &str, resource: &str, verb: &str, namespace: Option<&str>) -> bool {
    let grants = |table: &[(&str, &str, &[&str])]| {
        table.iter().any(|(g, r, verbs)| *g == group && *r == resource && verbs.contains(&verb))
    };
    grants(CLUSTER_WIDE) || (namespace == Some(NAMESPACE) && grants(OWN_NAMESPACE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_may_do_what_the_controller_needs_and_nothing_more() {
    let client = operator_client(control_plane()).await;
    let mut checks = Vec::new();
    let resources = CLUSTER_WIDE.iter().chain(OWN_NAMESPACE).map(|(g, r, _)| (*g, *r)).chain(UNTOUCHED.iter().copied());
    for (group, resource) in resources {
        for verb in VERBS {
            for namespace in NAMESPACES {
                checks.push((group, resource, verb, namespace));
            }
        }
    }
    let answers: Vec<_> = futures::stream::iter(checks)
        .map(|(group, resource, verb, namespace)| {
            let client = client.clone();
            async move {
                let answer = allowed(&client, verb, group, resource, namespace).await.unwrap();
                (group, resource, verb, namespace, answer)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(group, resource, verb, namespace, answer)| *answer != expected(group, resource, verb, *namespace))
        .map(|(group, resource, verb, namespace, answer)| {
            let verdict = if *answer { "ALLOWED but must not be" } else { "DENIED but the controller needs it" };
            let group = if group.is_empty() { "core" } else { group };
            format!("{verb} {group}/{resource} in {}: {verdict}", namespace.unwrap_or("every namespace"))
        })
        .collect();
    assert!(wrong.is_empty(), "deploy/rbac does not match what the controller needs:\n{}", wrong.join("\n"));
    // The table is not vacuous.
    assert!(answers.iter().filter(|answer| answer.4).count() > 60);
    for must_be_denied in [
        ("", "secrets", "get"),
        ("", "secrets", "list"),
        (GROUP, "kubegresrestores", "delete"),
        ("", "pods", "update"),
        ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ] {
        assert!(answers.iter().any(|(g, r, v, _, answer)| (*g, *r, *v) == must_be_denied && !answer));
    }
}

/// The resource rules of `client`'s identity in `namespace`, one
/// `(group, resource, verb, resourceNames)` per grant.
async fn rules(client: &kube::Client, namespace: &str) -> BTreeSet<(String, String, String, Vec<String>)> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(namespace.to_string()) },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SelfSubjectRulesReview");
    let status = answer.status.expect("the review's status");
    assert!(!status.incomplete, "the rules review is incomplete: {:?}", status.evaluation_error);
    let mut rules = BTreeSet::new();
    for rule in status.resource_rules {
        let names = rule.resource_names.clone().unwrap_or_default();
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    rules.insert((group.clone(), resource.clone(), verb.clone(), names.clone()));
                }
            }
        }
    }
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_rules_are_exactly_deploys_and_no_wildcards() {
    let cp = control_plane();
    let operator = operator_client(cp).await;
    // What every ServiceAccount may do without deploy/ (self reviews,
    // discovery, reading ClusterTrustBundles): the bootstrap policy grants it.
    let any_account = plain_service_account(cp).await;
    for namespace in ["team-a", NAMESPACE] {
        let everyone = rules(&any_account, namespace).await;
        let granted: BTreeSet<_> = rules(&operator, namespace).await.difference(&everyone).cloned().collect();
        let mut expected = BTreeSet::new();
        let own = if namespace == NAMESPACE { OWN_NAMESPACE } else { &[] };
        for (group, resource, verbs) in CLUSTER_WIDE.iter().chain(own) {
            for verb in *verbs {
                expected.insert((group.to_string(), resource.to_string(), verb.to_string(), Vec::new()));
            }
        }
        let extra: Vec<_> = granted.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(extra.is_empty() && missing.is_empty(), "in {namespace}: extra {extra:?}, missing {missing:?}");
    }
}

/// The namespace the namespace-scoped install is moved to here (as its
/// header tells users to do), next to the cluster-wide install.
const SINGLE_NAMESPACE: &str = "kgr-single";

/// A client of the namespace-scoped operator installed in
/// [`SINGLE_NAMESPACE`], once its bindings took effect.
async fn namespaced_operator(cp: &ControlPlane) -> kube::Client {
    let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.unwrap();
    let kinds = install_namespaced_operator_rbac(&admin, SINGLE_NAMESPACE).await;
    assert_eq!(
        kinds,
        ["Namespace", "CustomResourceDefinition", "ServiceAccount", "Role", "Role", "RoleBinding", "RoleBinding"]
    );
    let token = namespaced_operator_token(cp, SINGLE_NAMESPACE).await;
    let client = cp.client_with_token(&token).await.unwrap();
    harness::wait::until_ok("the namespace-scoped RoleBindings take effect", harness::deploy::SETTLE, || {
        let client = client.clone();
        async move {
            match allowed(&client, "watch", GROUP, "kubegresrestores", Some(SINGLE_NAMESPACE)).await {
                Ok(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_scoped_install_grants_the_same_rules_in_its_namespace_and_nothing_elsewhere() {
    let cp = control_plane();
    let operator = namespaced_operator(cp).await;
    let any_account = plain_service_account(cp).await;
    // In its namespace: what the cluster-wide install grants everywhere, and the Lease.
    let everyone = rules(&any_account, SINGLE_NAMESPACE).await;
    let granted: BTreeSet<_> = rules(&operator, SINGLE_NAMESPACE).await.difference(&everyone).cloned().collect();
    let mut expected = BTreeSet::new();
    for (group, resource, verbs) in CLUSTER_WIDE.iter().chain(OWN_NAMESPACE) {
        for verb in *verbs {
            expected.insert((group.to_string(), resource.to_string(), verb.to_string(), Vec::new()));
        }
    }
    let extra: Vec<_> = granted.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&granted).collect();
    assert!(extra.is_empty() && missing.is_empty(), "in {SINGLE_NAMESPACE}: extra {extra:?}, missing {missing:?}");
    // Elsewhere, and across namespaces: nothing.
    for namespace in ["team-a", NAMESPACE] {
        let everyone = rules(&any_account, namespace).await;
        let granted: BTreeSet<_> = rules(&operator, namespace).await.difference(&everyone).cloned().collect();
        assert!(granted.is_empty(), "in {namespace} the namespace-scoped operator may {granted:?}");
    }
    for (group, resource, verbs) in CLUSTER_WIDE {
        for verb in *verbs {
            let answer = allowed(&operator, verb, group, resource, None).await.unwrap();
            assert!(
                !answer,
                "{verb} {group}/{resource} in every namespace is allowed to the namespace-scoped operator"
            );
        }
    }
}

/// A client for a ServiceAccount of the operator's namespace that nothing in
/// deploy/ binds: its rules are what every ServiceAccount has.
async fn plain_service_account(cp: &ControlPlane) -> kube::Client {
    let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, NAMESPACE);
    let name = "deploy-test-unbound";
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}});
    accounts.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&account)).await.unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() }),
        ..Default::default()
    };
    let issued = accounts.create_token_request(name, &PostParams::default(), &request).await.unwrap();
    cp.client_with_token(&issued.status.and_then(|status| status.token).unwrap()).await.unwrap()
}

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn kubegres(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(GROUP, "v1", "Kubegres");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk_with_plural(&gvk, "kubegres"))
}

fn refused(result: Result<impl std::fmt::Debug, kube::Error>, what: &str) {
    match result {
        Err(error) => assert_eq!(api_error(&error).0, 403, "{what}: {error}"),
        Ok(object) => panic!("{what} was allowed: {object:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_a_restores_lifecycle_under_its_own_identity() {
    let admin = admin().await;
    let ns = namespace(&admin, "deploy-lifecycle").await;
    let operator = operator_client(control_plane()).await;
    let post = PostParams::default();
    let apply = PatchParams::apply(OPERATOR_FIELD_MANAGER);

    // A user creates a restore; the operator sees it in every namespace.
    let restore: KubegresRestore = object(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
        "metadata": {"name": "orders"},
        "spec": {"clusterName": "orders", "dataSource": {
            "file": {"pvcName": "backups", "mountPath": "/var/lib/backup", "snapshot": "latest"},
            "cluster": {"clusterName": "mypostgres"}}}
    }));
    let created = Api::<KubegresRestore>::namespaced(admin.clone(), &ns).create(&post, &restore).await.unwrap();
    let uid = created.metadata.uid.clone();
    let all: Api<KubegresRestore> = Api::all(operator.clone());
    assert!(
        all.list(&Default::default()).await.unwrap().items.iter().any(|r| r.metadata.name.as_deref() == Some("orders"))
    );
    let restores: Api<KubegresRestore> = Api::namespaced(operator.clone(), &ns);

    // Its finalizer and its status.
    let finalizer = json!({"metadata": {"finalizers": ["kubegres.reactive-tech.io/restore"]}});
    restores.patch("orders", &PatchParams::default(), &Patch::Merge(&finalizer)).await.unwrap();
    let status = json!({"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
        "status": {"phase": "CreatingTarget"}});
    restores.patch_status("orders", &apply, &Patch::Apply(&status)).await.unwrap();

    // The target cluster, owned by the restore.
    let owner = json!([{"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore", "name": "orders",
        "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    let cluster: DynamicObject = object(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres",
        "metadata": {"name": "orders", "ownerReferences": owner},
        "spec": {"replicas": 1, "image": "postgres:17"}
    }));
    let clusters = kubegres(&operator, &ns);
    clusters.patch("orders", &apply, &Patch::Apply(&cluster)).await.unwrap();
    let mut grown = cluster.clone();
    grown.data["spec"]["replicas"] = json!(3);
    clusters.patch("orders", &apply, &Patch::Apply(&grown)).await.unwrap();
    assert_eq!(clusters.get("orders").await.unwrap().data["spec"]["replicas"], 3);

    // The agent's identity: a ServiceAccount, and a Role allowing only its
    // restore's status, as the operator builds them. The operator holds
    // get/patch on status itself, so RBAC lets it grant them without
    // `escalate` or `bind`.
    let agent = &children_name("orders");
    Api::<ServiceAccount>::namespaced(operator.clone(), &ns)
        .create(&post, &service_account(&created))
        .await
        .unwrap_or_else(|error| panic!("the operator cannot create the agent's ServiceAccount: {error}"));
    Api::<Role>::namespaced(operator.clone(), &ns)
        .create(&post, &role(&created))
        .await
        .unwrap_or_else(|error| panic!("the operator cannot create the agent's Role: {error}"));
    Api::<RoleBinding>::namespaced(operator.clone(), &ns)
        .create(&post, &role_binding(&created))
        .await
        .unwrap_or_else(|error| panic!("the operator cannot bind the agent's Role: {error}"));
    // ... but not a Role granting more than it holds.
    let wider: Role = object(json!({"metadata": {"name": "wider"}, "rules": [{
        "apiGroups": [GROUP], "resources": ["kubegresrestores/status"], "verbs": ["update"]}]}));
    refused(Api::<Role>::namespaced(operator.clone(), &ns).create(&post, &wider).await, "escalating a Role");

    // The restore Pod, with credentials from a Secret it never reads.
    let pods: Api<Pod> = Api::namespaced(operator.clone(), &ns);
    pods.create(&post, &object(json!({"metadata": {"name": agent, "ownerReferences": owner}, "spec": {
        "serviceAccountName": agent, "restartPolicy": "Never",
        "containers": [{"name": "agent", "image": "ghcr.io/kubegres-restore/restore-agent:0.1.0",
            "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "orders-superuser", "key": "password"}}}]}]
    }})))
    .await
    .unwrap();
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 1);

    // An Event on the phase change, then its series.
    let events: Api<Event> = Api::namespaced(operator.clone(), &ns);
    let event: Event = object(json!({"metadata": {"name": "orders.restoring"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "kubegres-restore-operator",
        "reportingInstance": "kubegres-restore-operator-0", "action": "Restore", "reason": "Restoring",
        "type": "Normal", "note": "restoring into orders",
        "regarding": {"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
            "name": "orders", "namespace": ns, "uid": uid}}));
    events.create(&post, &event).await.unwrap();
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
    events.patch("orders.restoring", &PatchParams::default(), &Patch::Merge(&series)).await.unwrap();

    // Leader election, in its own namespace only.
    let lease: Lease = object(json!({"metadata": {"name": "deploy-test-lease"},
        "spec": {"holderIdentity": "kubegres-restore-operator-0", "leaseDurationSeconds": 15}}));
    let leases: Api<Lease> = Api::namespaced(operator.clone(), NAMESPACE);
    let mut held = leases.create(&post, &lease).await.unwrap();
    held.spec.as_mut().unwrap().holder_identity = Some("kubegres-restore-operator-1".into());
    leases.replace("deploy-test-lease", &post, &held).await.unwrap();
    refused(Api::<Lease>::namespaced(operator.clone(), &ns).create(&post, &lease).await, "a Lease elsewhere");

    // What it must never do.
    refused(Api::<Secret>::namespaced(operator.clone(), &ns).get("orders-superuser").await, "reading a Secret");
    refused(Api::<Secret>::namespaced(operator.clone(), &ns).list(&Default::default()).await, "listing Secrets");
    refused(restores.delete("orders", &DeleteParams::default()).await, "deleting a KubegresRestore");
    let mut changed = pods.get(agent).await.unwrap();
    changed.metadata.labels = Some([("changed".to_string(), "yes".to_string())].into());
    refused(pods.replace(agent, &post, &changed).await, "updating a Pod");
    let cluster_role: ClusterRole = object(json!({"metadata": {"name": "kubegres-restore-test"}, "rules": []}));
    refused(Api::<ClusterRole>::all(operator.clone()).create(&post, &cluster_role).await, "creating a ClusterRole");

    // Completion: everything the restore created is deleted explicitly.
    let delete = DeleteParams::default();
    pods.delete(agent, &delete).await.unwrap();
    Api::<RoleBinding>::namespaced(operator.clone(), &ns).delete(agent, &delete).await.unwrap();
    Api::<Role>::namespaced(operator.clone(), &ns).delete(agent, &delete).await.unwrap();
    Api::<ServiceAccount>::namespaced(operator.clone(), &ns).delete(agent, &delete).await.unwrap();
    clusters.delete("orders", &delete).await.unwrap();
    let done = json!({"metadata": {"finalizers": null}});
    restores.patch("orders", &PatchParams::default(), &Patch::Merge(&done)).await.unwrap();

    // The admin, not the operator, removes the restore.
    Api::<KubegresRestore>::namespaced(admin, &ns).delete("orders", &delete).await.unwrap();
}
