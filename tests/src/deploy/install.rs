//! `deploy/` on a real control plane: server-side apply of its documents,
//! the operator's namespace, CRD and RBAC installed for real, a client that
//! authenticates as the operator's ServiceAccount, and a stand-in Kubegres
//! CRD.

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Scope;
use serde_json::Value;

use super::{DeployError, FIELD_MANAGER, NAMESPACE, OPERATOR, SETTLE, kubegres_crd_path, read_documents};
use crate::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};

/// The stand-in Kubegres CRD's name (tests/fixtures/kubegres-crd.yaml).
pub const KUBEGRES_CRD_NAME: &str = "kubegres.kubegres.reactive-tech.io";

/// The kinds of deploy/ that [`install_operator_rbac`] applies; the
/// operator's Deployment and Service are left out (nothing runs it here).
const INSTALLED_KINDS: [&str; 7] = [
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// How long the operator's tokens are valid.
const TOKEN_SECONDS: i64 = 3600;

/// How many times an apply is retried when a concurrent writer of the same
/// object made it conflict.
const CONFLICT_ATTEMPTS: usize = 10;

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Server-side-applies one object (a document of `deploy/`, parsed) with
/// `params`, finding its resource through discovery. With
/// `params.dry_run`, nothing is stored.
pub async fn apply(client: &kube::Client, object: &Value, params: &PatchParams) -> Result<DynamicObject, DeployError> {
    let (api_version, kind, name) =
        match (object["apiVersion"].as_str(), object["kind"].as_str(), object["metadata"]["name"].as_str()) {
            (Some(api_version), Some(kind), Some(name)) => (api_version, kind, name),
            _ => {
                return Err(DeployError::Object {
                    what: "the object to apply".into(),
                    problem: "no apiVersion, kind or name",
                });
            }
        };
    let namespace = object["metadata"]["namespace"].as_str();
    let action = match namespace {
        Some(namespace) => format!("apply {kind} {namespace}/{name}"),
        None => format!("apply {kind} {name}"),
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, &gvk).await.map_err(|source| DeployError::api(&action, source))?;
    let api: Api<DynamicObject> = match (capabilities.scope, namespace) {
        (Scope::Namespaced, Some(namespace)) => Api::namespaced_with(client.clone(), namespace, &resource),
        (Scope::Namespaced, None) => {
            return Err(DeployError::Object { what: format!("{kind} {name}"), problem: "no metadata.namespace" });
        }
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, params, &Patch::Apply(object)).await.map_err(|source| DeployError::api(action, source))
}

/// Applies deploy/'s Namespace, KubegresRestore CRD, ServiceAccount,
/// ClusterRole, Role and their bindings for real (server-side apply, field
/// manager [`FIELD_MANAGER`], strict field validation), and waits until the
/// CRD is Established and served. The operator's Deployment is not applied.
///
/// Idempotent, and safe to call from many tests at once on one control plane.
///
/// # Panics
/// When the apiserver refuses a document or the CRD is not served in time.
pub async fn install_operator_rbac(admin: &kube::Client) {
    if let Err(error) = try_install_operator_rbac(admin).await {
        panic!("cannot install the operator's namespace, CRD and RBAC from deploy/: {error}");
    }
}

async fn try_install_operator_rbac(admin: &kube::Client) -> Result<(), DeployError> {
    for (_, document) in super::resource_documents()? {
        let kind = document["kind"].as_str().unwrap_or_default();
        if !INSTALLED_KINDS.contains(&kind) {
            continue;
        }
        apply_for_real(admin, &document).await?;
        if kind == "CustomResourceDefinition" {
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            wait_for_crd(admin, name).await?;
        }
    }
    Ok(())
}

/// Applies the stand-in Kubegres CRD (tests/fixtures/kubegres-crd.yaml: group
/// kubegres.reactive-tech.io, kind Kubegres, any spec and status) and waits
/// until it is Established and served. Idempotent.
///
/// # Panics
/// When the apiserver refuses it or it is not served in time.
pub async fn install_kubegres_crd(admin: &kube::Client) {
    let result = async {
        for document in read_documents(&kubegres_crd_path())? {
            apply_for_real(admin, &document).await?;
        }
        wait_for_crd(admin, KUBEGRES_CRD_NAME).await
    };
    if let Err(error) = result.await {
        panic!("cannot install the stand-in Kubegres CRD: {error}");
    }
}

/// Creates (or keeps) a namespace, e.g. a test's own.
///
/// # Panics
/// When the apiserver refuses it.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if let Err(error) = api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&namespace)).await {
        panic!("cannot create the namespace {name}: {error}");
    }
}

/// Applies the generated KubegresRestore CRD (deploy/crds/kubegres-restore.yaml)
/// alone, without the operator's RBAC, and waits until it is Established
/// and served. Idempotent.
///
/// # Panics
/// When the apiserver refuses it (the message names the CRD and the cause)
/// or it is not served in time.
pub async fn install_restore_crd(admin: &kube::Client) {
    let result = async {
        for document in read_documents(&super::deploy_dir().join("crds").join("kubegres-restore.yaml"))? {
            apply_for_real(admin, &document).await?;
        }
        wait_for_crd(admin, proto::crd::CRD_NAME).await
    };
    if let Err(error) = result.await {
        panic!("cannot install the KubegresRestore CRD: {error}");
    }
}

/// Waits until the CRD `name` is Established and its resource answers a list.
pub async fn wait_for_crd(admin: &kube::Client, name: &str) -> Result<(), DeployError> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let deadline = Instant::now() + SETTLE;
    let crd = loop {
        let crd = crds.get(name).await.map_err(|source| DeployError::api(format!("get the CRD {name}"), source))?;
        let established = crd
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            break crd;
        }
        if Instant::now() > deadline {
            return Err(DeployError::Timeout { what: format!("the CRD {name} was not Established"), waited: SETTLE });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    // Established comes a moment before the handler serves the resource.
    let version = crd.spec.versions.iter().find(|v| v.storage).map(|v| v.name.clone()).unwrap_or_default();
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, &crd.spec.names.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
    let api: Api<DynamicObject> = Api::all_with(admin.clone(), &resource);
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 && Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(source) => return Err(DeployError::api(format!("list {}", crd.spec.names.plural), source)),
        }
    }
}

/// A token of the operator's ServiceAccount (TokenRequest API, valid for an
/// hour), e.g. for a kubeconfig: `cp.kubeconfig_yaml_with_token(&token)`.
/// Call [`install_operator_rbac`] first. The token is a secret: never log it.
///
/// # Panics
/// When the ServiceAccount does not exist or the token is not issued.
pub async fn operator_token(cp: &ControlPlane) -> String {
    service_account_token(cp, NAMESPACE, "install_operator_rbac").await
}

/// A token of the namespace-scoped operator's ServiceAccount in `namespace`.
/// Call [`install_namespaced_operator_rbac`] first. A secret: never log it.
///
/// # Panics
/// When the ServiceAccount does not exist or the token is not issued.
pub async fn namespaced_operator_token(cp: &ControlPlane, namespace: &str) -> String {
    service_account_token(cp, namespace, "install_namespaced_operator_rbac").await
}

/// Installs the namespace-scoped operator of deploy/install-namespaced.yaml
/// into `namespace`, as its header tells users to (every [`NAMESPACE`]
/// replaced): the namespace, the KubegresRestore CRD, the ServiceAccount,
/// its Roles and RoleBindings. Returns the kinds applied, in order.
///
/// # Panics
/// When the apiserver refuses a document or the CRD is not served in time.
pub async fn install_namespaced_operator_rbac(admin: &kube::Client, namespace: &str) -> Vec<String> {
    let result = async {
        let mut kinds = Vec::new();
        for document in read_documents(&super::namespaced_install_yaml_path())? {
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            if !INSTALLED_KINDS.contains(&kind.as_str()) {
                continue;
            }
            let text = document.to_string().replace(NAMESPACE, namespace);
            let moved: Value = serde_json::from_str(&text).map_err(|error| DeployError::Object {
                what: format!("{kind} moved to {namespace}: {error}"),
                problem: "not JSON after the move",
            })?;
            apply_for_real(admin, &moved).await?;
            if kind == "CustomResourceDefinition" {
                wait_for_crd(admin, moved["metadata"]["name"].as_str().unwrap_or_default()).await?;
            }
            kinds.push(kind);
        }
        Ok::<_, DeployError>(kinds)
    };
    result
        .await
        .unwrap_or_else(|error| panic!("cannot install deploy/install-namespaced.yaml into {namespace}: {error}"))
}

async fn service_account_token(cp: &ControlPlane, namespace: &str, install: &str) -> String {
    let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.expect("an admin client for the control plane");
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(TOKEN_SECONDS), ..Default::default() }),
        ..Default::default()
    };
    let issued = match accounts.create_token_request(OPERATOR, &PostParams::default(), &request).await {
        Ok(issued) => issued,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            panic!("the ServiceAccount {namespace}/{OPERATOR} does not exist: call harness::deploy::{install} first")
        }
        Err(error) => panic!("cannot get a token for the ServiceAccount {namespace}/{OPERATOR}: {error}"),
    };
    issued
        .status
        .and_then(|status| status.token)
        .unwrap_or_else(|| panic!("the TokenRequest for {OPERATOR} has no token"))
}

/// A client authenticated as the operator's ServiceAccount
/// (`system:serviceaccount:kubegres-restore-system:kubegres-restore-operator`),
/// returned once its ClusterRoleBinding and RoleBinding have taken effect.
/// Call [`install_operator_rbac`] first.
///
/// # Panics
/// When the ServiceAccount does not exist or its bindings do not take
/// effect in time.
pub async fn operator_client(cp: &ControlPlane) -> kube::Client {
    let token = operator_token(cp).await;
    let client = cp
        .client_with_token(&token)
        .await
        .unwrap_or_else(|error| panic!("cannot build a client for the operator's ServiceAccount: {error}"));
    // RBAC serves new bindings from its informers: wait until both took effect.
    let deadline = Instant::now() + SETTLE;
    loop {
        let cluster = allowed(&client, "list", "kubegres.reactive-tech.io", "kubegresrestores", None).await;
        let lease = allowed(&client, "update", "coordination.k8s.io", "leases", Some(NAMESPACE)).await;
        match (cluster, lease) {
            (Ok(true), Ok(true)) => return client,
            (Err(error), _) | (_, Err(error)) => {
                panic!("the operator's ServiceAccount cannot ask what it may do: {error}")
            }
            _ if Instant::now() > deadline => {
                panic!("the operator's ClusterRoleBinding and RoleBinding did not take effect within {SETTLE:?}")
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Whether `client`'s identity may `verb` the `resource` (`pods`, or with a
/// subresource `kubegresrestores/status`) of API `group` (`""` for core) in
/// `namespace` (`None`: in every namespace), by a SelfSubjectAccessReview.
pub async fn allowed(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<bool, DeployError> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                subresource,
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| DeployError::api(format!("review whether to {verb} {resource}"), source))?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

/// [`apply`] for real with the tests' field manager, retried when a
/// concurrent apply of the same object conflicts.
async fn apply_for_real(admin: &kube::Client, document: &Value) -> Result<(), DeployError> {
    let params = PatchParams::apply(FIELD_MANAGER).validation_strict();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match apply(admin, document, &params).await {
            Ok(_) => return Ok(()),
            Err(DeployError::Api { source: kube::Error::Api(status), .. })
                if status.code == 409 && attempt < CONFLICT_ATTEMPTS =>
            {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(error) => return Err(error),
        }
    }
}
