//! The local control plane is a real Kubernetes API: it reports the pinned
//! version, authenticates the admin by certificate and ServiceAccounts by
//! TokenRequest tokens, authorizes with RBAC, serves CRDs, answers
//! server-side dry-run, and accepts Pods without a `default` ServiceAccount.

use std::time::{Duration, Instant};

use harness::controlplane::{ControlPlane, kube_version};
use harness::wait::{until, until_ok};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

const NS: &str = "controlplane-selftest";

/// How long RBAC and CRD changes may take to be served.
const SETTLE: Duration = Duration::from_secs(20);

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("test object matches its type")
}

/// The HTTP status of a kube API error.
fn status_of(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_serves_the_kubernetes_api() {
    let started = Instant::now();
    let cp = ControlPlane::start().await;
    eprintln!("control plane ready at {} in {:?}", cp.server_url(), started.elapsed());
    let admin = cp.client();

    // The version the build script pinned, reported by the server itself.
    let version = admin.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, kube_version());
    let minor = kube_version().split('.').nth(1).unwrap();
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", minor));

    // The admin kubeconfig on disk works as a client config and names the admin.
    let dir = tempfile::tempdir().unwrap();
    cp.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
    let from_file = Kubeconfig::read_from(dir.path().join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(from_file, &Default::default()).await.unwrap();
    let file_client = kube::Client::try_from(config).unwrap();
    let me: SelfSubjectReview = Api::all(file_client)
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        )
        .await
        .unwrap();
    let me = me.status.unwrap().user_info.unwrap();
    assert_eq!(me.username.as_deref(), Some(harness::controlplane::ADMIN_USER));
    assert!(me.groups.unwrap().iter().any(|group| group == "system:masters"));

    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &object(json!({"metadata": {"name": NS}})))
        .await
        .unwrap();

    service_account_tokens_and_rbac(&cp).await;
    custom_resources(&cp).await;
    server_side_dry_run(&cp).await;
    pods_need_no_default_service_account(&cp).await;
    eprintln!("self-test done in {:?}", started.elapsed());
}

/// A ServiceAccount token from the TokenRequest API authenticates; RBAC
/// forbids what no Role grants and allows what a RoleBinding grants.
async fn service_account_tokens_and_rbac(cp: &ControlPlane) {
    let admin = cp.client();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS);
    sas.create(&PostParams::default(), &object(json!({"metadata": {"name": "reader"}}))).await.unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() }),
        ..Default::default()
    };
    let issued = sas.create_token_request("reader", &PostParams::default(), &request).await.unwrap();
    let token = issued.status.unwrap().token.expect("TokenRequest returns a token");
    assert!(token.split('.').count() == 3, "a service-account token is a JWT");
    let reader = cp.client_with_token(&token).await.unwrap();

    let me: SelfSubjectReview = Api::all(reader.clone())
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        )
        .await
        .unwrap();
    assert_eq!(
        me.status.unwrap().user_info.unwrap().username.as_deref(),
        Some(format!("system:serviceaccount:{NS}:reader").as_str())
    );

    // Nothing grants it Secrets: 403, naming the identity.
    let secrets: Api<Secret> = Api::namespaced(reader.clone(), NS);
    let denied = secrets.list(&Default::default()).await.unwrap_err();
    assert_eq!(status_of(&denied), Some(403), "{denied}");
    assert!(denied.to_string().contains(&format!("system:serviceaccount:{NS}:reader")), "{denied}");
    // A garbage token is not a ServiceAccount: 401.
    let stranger = cp.client_with_token("not-a-token").await.unwrap();
    let unauthorized = Api::<ConfigMap>::namespaced(stranger, NS).list(&Default::default()).await.unwrap_err();
    assert_eq!(status_of(&unauthorized), Some(401), "{unauthorized}");

    // A Role and RoleBinding grant it ConfigMaps (RBAC serves new bindings
    // from its informers, so allow a moment), and still not Secrets.
    Api::<Role>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
            })),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "configmap-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NS}]
            })),
        )
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(reader.clone(), NS);
    until_ok("the RoleBinding to take effect", SETTLE, || async {
        match configmaps.list(&Default::default()).await {
            Err(error) if status_of(&error) == Some(403) => Err(error),
            Err(error) => panic!("listing ConfigMaps as the reader: {error}\n{}", cp.logs()),
            Ok(_) => Ok(()),
        }
    })
    .await;
    let still_denied = secrets.list(&Default::default()).await.unwrap_err();
    assert_eq!(status_of(&still_denied), Some(403), "{still_denied}");

    // A user with a client certificate and no groups is authenticated but
    // may do nothing cluster-wide.
    let nobody = cp.client_for_user("nobody", &[]).await.unwrap();
    let error = Api::<Namespace>::all(nobody).list(&Default::default()).await.unwrap_err();
    assert_eq!(status_of(&error), Some(403), "{error}");
    assert!(error.to_string().contains("\"nobody\""), "{error}");
}

/// A CRD becomes Established and serves its objects, with schema validation.
async fn custom_resources(cp: &ControlPlane) {
    let admin = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    crds.create(
        &PostParams::default(),
        &object(json!({
            "metadata": {"name": "widgets.selftest.kubegres-restore.io"},
            "spec": {
                "group": "selftest.kubegres-restore.io",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}}
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        }
                    }}
                }]
            }
        })),
    )
    .await
    .unwrap();
    until("the CRD to be Established", SETTLE, || async {
        let crd = crds.get("widgets.selftest.kubegres-restore.io").await.unwrap();
        crd.status
            .and_then(|status| status.conditions)
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"))
            .then_some(())
    })
    .await;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("selftest.kubegres-restore.io", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &resource);
    let widget: DynamicObject = object(json!({
        "apiVersion": "selftest.kubegres-restore.io/v1", "kind": "Widget",
        "metadata": {"name": "one"}, "spec": {"size": 3}
    }));
    // The discovery endpoint may lag Established by a moment.
    until_ok("the Widget resource to be served", SETTLE, || async {
        match widgets.create(&PostParams::default(), &widget).await {
            Err(error) if status_of(&error) == Some(404) => Err(error),
            Err(error) => panic!("cannot create a Widget: {error}"),
            Ok(_) => Ok(()),
        }
    })
    .await;
    let fetched = widgets.get("one").await.unwrap();
    assert_eq!(fetched.data["spec"]["size"], 3);

    let invalid: DynamicObject = object(json!({
        "apiVersion": "selftest.kubegres-restore.io/v1", "kind": "Widget",
        "metadata": {"name": "zero"}, "spec": {"size": 0}
    }));
    let rejected = widgets.create(&PostParams::default(), &invalid).await.unwrap_err();
    assert_eq!(status_of(&rejected), Some(422), "{rejected}");
    assert!(rejected.to_string().contains("spec.size"), "{rejected}");
}

/// Server-side apply with dryRun answers with the object as it would be
/// stored, and stores nothing.
async fn server_side_dry_run(cp: &ControlPlane) {
    let configmaps: Api<ConfigMap> = Api::namespaced(cp.client(), NS);
    let desired = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dry"}, "data": {"key": "value"}
    });
    let answer = configmaps
        .patch("dry", &PatchParams::apply("controlplane-selftest").dry_run(), &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(answer.data.unwrap()["key"], "value");
    let managers: Vec<String> =
        answer.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|entry| entry.manager).collect();
    assert_eq!(managers, ["controlplane-selftest"]);
    let missing = configmaps.get("dry").await.unwrap_err();
    assert_eq!(status_of(&missing), Some(404), "dry-run stored the object: {missing}");

    // A dry-run that fails validation is rejected like a real write.
    let bad = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Not_A_Name"}, "data": {"key": "value"}
    });
    let rejected = configmaps
        .patch("Not_A_Name", &PatchParams::apply("controlplane-selftest").dry_run(), &Patch::Apply(&bad))
        .await
        .unwrap_err();
    assert_eq!(status_of(&rejected), Some(422), "{rejected}");
}

/// With the ServiceAccount admission plugin off, a Pod is accepted although
/// no controller created the `default` ServiceAccount; it stays Pending
/// because nothing schedules or runs it.
async fn pods_need_no_default_service_account(cp: &ControlPlane) {
    let pods: Api<Pod> = Api::namespaced(cp.client(), NS);
    let pod = pods
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "idle"},
                "spec": {"containers": [{"name": "main", "image": "example.invalid/idle:1"}]}
            })),
        )
        .await
        .unwrap();
    assert_eq!(pod.spec.unwrap().node_name, None);
    let sa = Api::<ServiceAccount>::namespaced(cp.client(), NS).get("default").await.unwrap_err();
    assert_eq!(status_of(&sa), Some(404), "{sa}");
}
