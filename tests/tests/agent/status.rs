//! The agent reports into a KubegresRestore's status on a real kube-apiserver,
//! as it will in a restore Pod: with a ServiceAccount token whose Role allows
//! only get/patch of that one object's status. It server-side-applies
//! `status.progress` (and `status.failure`) under its own field manager, and
//! the same token cannot touch another restore's status.

use std::time::Duration;

use harness::agent::run_agent;
use harness::controlplane::ControlPlane;
use harness::dumps::{DumpKind, Dumps};
use harness::fixtures::load_small;
use harness::pg::PgCluster;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use operator::decide::{children_name, role, role_binding, service_account};
use proto::KubegresRestore;
use serde_json::{Value, json};

const NS: &str = "agent-status";

fn object<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn restores(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kubegres.reactive-tech.io", "v1", "KubegresRestore");
    Api::namespaced_with(client, NS, &ApiResource::from_gvk_with_plural(&gvk, "kubegresrestores"))
}

fn restore_object(name: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1",
        "kind": "KubegresRestore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "clusterName": name,
            "dataSource": {
                "file": {"pvcName": "backups", "snapshot": "latest"},
                "cluster": {"clusterName": "mypostgres"}
            }
        }
    }))
}

/// The restore's ServiceAccount, Role (get/patch on `name`'s status only)
/// and RoleBinding, as the operator builds them; the ServiceAccount's token.
async fn agent_token(cp: &ControlPlane, name: &str) -> String {
    let admin = cp.client();
    let post = PostParams::default();
    let restore = Api::<KubegresRestore>::namespaced(admin.clone(), NS).get(name).await.unwrap();
    let sa = children_name(name);
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS);
    sas.create(&post, &service_account(&restore)).await.unwrap();
    Api::<Role>::namespaced(admin.clone(), NS).create(&post, &role(&restore)).await.unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NS).create(&post, &role_binding(&restore)).await.unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() }),
        ..Default::default()
    };
    let issued = sas.create_token_request(&sa, &PostParams::default(), &request).await.unwrap();
    let token = issued.status.unwrap().token.unwrap();
    // RBAC serves new bindings from its informers: wait until this one took effect.
    let own = restores(cp.client_with_token(&token).await.unwrap());
    harness::wait::until_ok("the agent's Role to take effect", Duration::from_secs(20), || own.get_status(name)).await;
    token
}

fn managers_of_status(obj: &DynamicObject) -> Vec<String> {
    obj.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reports_into_its_own_restore_status_and_no_other() {
    let cp = ControlPlane::start().await;
    harness::deploy::install_restore_crd(&cp.client()).await;
    let admin = cp.client();
    harness::deploy::create_namespace(&admin, NS).await;
    let api = restores(admin.clone());
    for name in ["good", "corrupt", "other"] {
        api.create(&PostParams::default(), &restore_object(name)).await.unwrap();
    }
    // The operator's part of the status, under another field manager.
    api.patch_status(
        "good",
        &PatchParams::apply("kubegres-restore-operator"),
        &Patch::Apply(json!({"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
                             "status": {"phase": "Restoring", "attempts": 1}})),
    )
    .await
    .unwrap();

    let (source, target) = tokio::task::spawn_blocking(|| {
        let source = PgCluster::start();
        source.create_database("shop");
        load_small(&source, "shop");
        let target = PgCluster::start();
        target.create_database("shop");
        (source, target)
    })
    .await
    .unwrap();
    let dumps = Dumps::new_in(&source.scratch_dir());
    let dump = dumps.dump(&source, "shop", DumpKind::PlainGzip, "status");
    let size = std::fs::metadata(&dump).unwrap().len();
    let kubeconfig = dumps.path().join("kubeconfig");

    // A successful restore: progress lands in status beside the operator's fields.
    let token = agent_token(&cp, "good").await;
    std::fs::write(&kubeconfig, cp.kubeconfig_yaml_with_token(&token)).unwrap();
    let env = vec![
        ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
        ("PGPASSWORD".to_string(), target.password().to_string()),
    ];
    let url = target.url_without_password("shop");
    let args: Vec<String> = [
        "restore",
        "--source",
        dump.to_str().unwrap(),
        "--target",
        &url,
        "--progress",
        "none",
        "--kubegres-restore",
        &format!("{NS}/good"),
    ]
    .map(String::from)
    .to_vec();
    let (a, e) = (args.clone(), env.clone());
    let out = tokio::task::spawn_blocking(move || run_agent(&a, &e)).await.unwrap();
    out.assert_success();
    assert!(!out.stderr.contains("cannot write the KubegresRestore status"), "{}", out.describe());
    let good = api.get_status("good").await.unwrap();
    let status = &good.data["status"];
    assert_eq!(status["phase"], "Restoring", "the operator's fields are untouched: {status}");
    assert_eq!(status["attempts"], 1);
    assert_eq!(status["progress"]["bytesRead"], size);
    assert_eq!(status["progress"]["bytesTotal"], size);
    assert_eq!(status["progress"]["percent"], 100);
    assert_eq!(status["progress"]["rowsCopied"], 200 + 5000 + 2, "small.sql's rows");
    assert!(status.get("failure").is_none(), "{status}");
    let managers = managers_of_status(&good);
    assert!(managers.contains(&proto::AGENT_FIELD_MANAGER.to_string()), "{managers:?}");
    assert!(managers.contains(&"kubegres-restore-operator".to_string()), "{managers:?}");

    // A failing restore: the reason lands in status.failure, with no secret.
    let token = agent_token(&cp, "corrupt").await;
    std::fs::write(&kubeconfig, cp.kubeconfig_yaml_with_token(&token)).unwrap();
    let mut bytes = std::fs::read(&dump).unwrap();
    bytes.truncate(bytes.len() / 2);
    let cut = dumps.write("cut.sql.gz", &bytes);
    target.create_database("shop2");
    let url2 = target.url_without_password("shop2");
    let args: Vec<String> = [
        "restore",
        "--source",
        cut.to_str().unwrap(),
        "--target",
        &url2,
        "--progress",
        "none",
        "--kubegres-restore",
        &format!("{NS}/corrupt"),
    ]
    .map(String::from)
    .to_vec();
    let e = env.clone();
    let out = tokio::task::spawn_blocking(move || run_agent(&args, &e)).await.unwrap();
    out.assert_failure(3, &[&["truncated"]]);
    let corrupt = api.get_status("corrupt").await.unwrap();
    let failure = &corrupt.data["status"]["failure"];
    assert_eq!(failure["reason"], "TruncatedDump", "{failure}");
    assert_eq!(failure["exitCode"], 3);
    assert!(failure["message"].as_str().unwrap().contains("truncated"), "{failure}");
    assert!(!corrupt.data.to_string().contains(target.password()));

    // The same kind of token cannot write another restore's status: 403.
    let intruder = restores(cp.client_with_token(&token).await.unwrap());
    let denied = intruder
        .patch_status(
            "other",
            &PatchParams::apply(proto::AGENT_FIELD_MANAGER),
            &Patch::Apply(json!({"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore",
                                 "status": {"progress": {"bytesRead": 1}}})),
        )
        .await
        .unwrap_err();
    match denied {
        kube::Error::Api(s) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403, got {other}"),
    }
    assert!(api.get_status("other").await.unwrap().data.get("status").is_none_or(|s| s.get("progress").is_none()));
}
