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

/// The label selector of a cluster's primary Pod.
pub fn primary_selector(cluster: &str) -> String {
    format!("{APP_LABEL}={cluster},{ROLE_LABEL}={PRIMARY}")
}

/// A Kubegres object's `spec`.
pub fn spec(object: &DynamicObject) -> Option<&serde_json::Map<String, serde_json::Value>> {
    object.data.get("spec").and_then(serde_json::Value::as_object)
}
