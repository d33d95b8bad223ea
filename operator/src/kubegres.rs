//! The Kubegres resource, read and written as a dynamic object: its CRD
//! belongs to the Kubegres operator, and the restore only needs a few fields.

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

/// The Kubegres kind.
pub const KIND: &str = "Kubegres";
/// Its plural.
pub const PLURAL: &str = "kubegres";
/// Kubegres labels its Pods `app=<cluster>`.
pub const APP_LABEL: &str = "app";
/// ... and the primary `replicationRole=primary`.
pub const ROLE_LABEL: &str = "replicationRole";
/// The value of [`ROLE_LABEL`] on the primary.
pub const PRIMARY: &str = "primary";

/// The API resource of Kubegres (`kubegres.reactive-tech.io/v1`).
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(proto::crd::GROUP, proto::crd::VERSION, KIND), PLURAL)
}

/// Whether the Kubegres API is served (its CRD is installed): a missing
/// cluster and a missing API both answer 404 to a get.
pub async fn api_installed(client: &kube::Client) -> Result<bool, crate::error::Error> {
    let group_version = format!("{}/{}", proto::crd::GROUP, proto::crd::VERSION);
    match client.list_api_group_resources(&group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|resource| resource.name == PLURAL)),
        Err(error) if crate::error::is_not_found(&error) => Ok(false),
        Err(source) => Err(crate::error::Error::Kube { action: format!("discover the API {group_version}"), source }),
    }
}

/// The label selector of a cluster's primary Pod.
pub fn primary_selector(cluster: &str) -> String {
    format!("{APP_LABEL}={cluster},{ROLE_LABEL}={PRIMARY}")
}

/// A Kubegres object's `spec`.
pub fn spec(object: &DynamicObject) -> Option<&serde_json::Map<String, serde_json::Value>> {
    object.data.get("spec").and_then(serde_json::Value::as_object)
}

/// Whether a PVC is one of a Kubegres cluster's data volumes: Kubegres's
/// StatefulSets `<cluster>-<index>` claim `postgres-db` for their Pod
/// `<cluster>-<index>-0`.
pub fn is_data_volume(cluster: &str, claim: &str) -> bool {
    claim
        .strip_prefix("postgres-db-")
        .and_then(|rest| rest.strip_prefix(cluster))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix("-0"))
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_volumes_are_recognised_by_name() {
        assert!(is_data_volume("restored", "postgres-db-restored-1-0"));
        assert!(is_data_volume("restored", "postgres-db-restored-12-0"));
        assert!(!is_data_volume("restored", "postgres-db-restored-replica-1-0"));
        assert!(!is_data_volume("restored", "postgres-db-restored-x-0"));
        assert!(!is_data_volume("restored", "backups"));
        assert!(!is_data_volume("rest", "postgres-db-restored-1-0"));
    }
}
