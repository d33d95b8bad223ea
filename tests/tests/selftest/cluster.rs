//! The full local control plane (`ControlPlane::start_cluster`): the real
//! kube-controller-manager and kube-scheduler run next to the apiserver, so
//! namespaces get their `default` ServiceAccount and `kube-root-ca.crt`,
//! Pods get the token volume that ServiceAccount admission gives them, the
//! garbage collector cascades owner references, the Job controller makes
//! Pods and the scheduler says why it cannot place them.

use std::time::{Duration, Instant};

use harness::controlplane::{CONTROLLERS, ControlPlane};
use harness::wait::until;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// How long the controllers and the scheduler may take to act.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_and_the_scheduler_run_as_in_a_cluster() {
    let started = Instant::now();
    let cp = ControlPlane::start_cluster().await;
    eprintln!("the full control plane was ready in {:?}", started.elapsed());
    assert!(cp.has_controllers());
    assert!(CONTROLLERS.contains(&"garbage-collector-controller"));
    let client = cp.client();
    harness::deploy::create_namespace(&client, "cluster-test").await;

    // The serviceaccount and root-ca publisher controllers populate a new namespace.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "cluster-test");
    until("the default ServiceAccount", WAIT, || async { accounts.get_opt("default").await.unwrap() }).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "cluster-test");
    let root_ca = until("kube-root-ca.crt", WAIT, || async { maps.get_opt("kube-root-ca.crt").await.unwrap() }).await;
    assert_eq!(root_ca.data.unwrap()["ca.crt"], cp.ca_pem());

    // ServiceAccount admission gives a Pod exactly the projected token volume.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "cluster-test");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volumes = spec.volumes.unwrap_or_default();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert!(volumes[0].name.starts_with("kube-api-access-"), "{volumes:?}");
    let sources = volumes[0].projected.as_ref().unwrap().sources.clone().unwrap();
    assert!(sources.iter().any(|s| s.service_account_token.is_some()));
    assert!(sources.iter().any(|s| s.config_map.as_ref().is_some_and(|c| c.name == "kube-root-ca.crt")));
    // A Pod that opts out gets nothing.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "opted-out"},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert!(created.spec.unwrap().volumes.unwrap_or_default().is_empty());
    // A ServiceAccount that does not exist is refused at admission.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nobody"},
        "spec": {"serviceAccountName": "nobody", "containers": [{"name": "main", "image": "busybox"}]},
    }))
    .unwrap();
    match pods.create(&PostParams::default(), &pod).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("serviceaccount \"nobody\" not found"), "{}", status.message);
        }
        other => panic!("a Pod with a missing ServiceAccount was admitted: {other:?}"),
    }

    // No Node: kube-scheduler says so in PodScheduled.
    let unscheduled = until("PodScheduled=False", WAIT, || async {
        let pod = pods.get("plain").await.unwrap();
        pod.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(unscheduled.reason.as_deref(), Some("Unschedulable"));
    assert!(unscheduled.message.unwrap_or_default().starts_with("no nodes available to schedule pods"));

    // The Job controller makes a Pod; deleting the Job in the background
    // leaves it to the garbage collector, which removes the Pod.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "cluster-test");
    let job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}},
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let selector = ListParams::default().labels("job-name=once");
    until("the Job's Pod", WAIT, || async { pods.list(&selector).await.unwrap().items.into_iter().next() }).await;
    jobs.delete("once", &DeleteParams::background()).await.unwrap();
    until("the Job's Pod garbage-collected", WAIT, || async {
        let left = pods.list(&selector).await.unwrap().items;
        left.iter().all(|p| p.metadata.deletion_timestamp.is_some()).then_some(())
    })
    .await;

    // Owner references cascade for any kind.
    let owner = maps
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap())
        .await
        .unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap(),
    }]}}))
    .unwrap();
    maps.create(&PostParams::default(), &dependent).await.unwrap();
    maps.delete("owner", &DeleteParams::default()).await.unwrap();
    until("the dependent ConfigMap collected", WAIT, || async {
        maps.get_opt("dependent").await.unwrap().is_none().then_some(())
    })
    .await;
}
