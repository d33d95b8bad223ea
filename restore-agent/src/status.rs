//! Progress into a KubegresRestore's status. Inside a restore Pod the agent
//! server-side-applies `status.progress` (and, when it fails,
//! `status.failure`) under its own field manager; the operator owns the phase
//! and the conditions. The Pod's ServiceAccount may only get and patch that
//! one object's status, so this is all the agent can touch.
//!
//! Reporting never fails a restore: an API error is logged (rarely) and the
//! next update tries again.

use std::time::Duration;

use futures::future::BoxFuture;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use proto::{AGENT_FIELD_MANAGER, RestoreProgress};
use serde_json::json;

use crate::progress::{Outcome, ProgressSink};

use proto::crd::{GROUP, KIND, PLURAL, VERSION};

/// `NAMESPACE/NAME` of the KubegresRestore to report into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRef {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for ResourceRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |p: &str| {
            !p.is_empty()
                && p.len() <= 253
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        match s.split_once('/') {
            Some((ns, name)) if valid(ns) && valid(name) => {
                Ok(ResourceRef { namespace: ns.to_string(), name: name.to_string() })
            }
            _ => Err("expected NAMESPACE/NAME of a KubegresRestore (lowercase DNS names)".to_string()),
        }
    }
}

/// The status cannot be reported (the restore goes on without it).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach the Kubernetes API to report status: {0}")]
    Connect(#[source] kube::Error),
}

/// Applies progress to the status subresource.
pub struct StatusSink {
    api: Api<DynamicObject>,
    name: String,
    params: PatchParams,
    interval: Duration,
    errors: u64,
}

impl StatusSink {
    /// Connects with the in-cluster configuration (or KUBECONFIG outside a Pod).
    pub async fn connect(resource: &ResourceRef, interval: Duration) -> Result<StatusSink, StatusError> {
        let client = kube::Client::try_default().await.map_err(StatusError::Connect)?;
        let gvk = GroupVersionKind::gvk(GROUP, VERSION, KIND);
        let ar = ApiResource::from_gvk_with_plural(&gvk, PLURAL);
        Ok(StatusSink {
            api: Api::namespaced_with(client, &resource.namespace, &ar),
            name: resource.name.clone(),
            // The agent owns exactly the fields it sends; forcing takes them
            // over should an older agent of the same restore have left them.
            params: PatchParams::apply(AGENT_FIELD_MANAGER).force(),
            interval: interval.max(Duration::from_secs(1)),
            errors: 0,
        })
    }

    async fn apply(&mut self, status: serde_json::Value) {
        let patch = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            "status": status,
        });
        match self.api.patch_status(&self.name, &self.params, &Patch::Apply(&patch)).await {
            Ok(_) => self.errors = 0,
            Err(e) => {
                self.errors += 1;
                // The first error, then one in twenty: an unreachable API must not flood the log.
                if self.errors == 1 || self.errors.is_multiple_of(20) {
                    tracing::warn!(errors = self.errors, "cannot write the KubegresRestore status: {e}");
                }
            }
        }
    }
}

impl ProgressSink for StatusSink {
    fn update<'a>(&'a mut self, progress: &'a RestoreProgress) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.apply(json!({ "progress": progress })).await })
    }

    fn finish<'a>(&'a mut self, progress: &'a RestoreProgress, outcome: &'a Outcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let status = match outcome {
                Outcome::Completed(_) => json!({ "progress": progress }),
                Outcome::Failed(failure) => json!({ "progress": progress, "failure": failure }),
            };
            self.apply(status).await
        })
    }

    fn min_interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_refs_parse() {
        assert_eq!(
            "shop/restore-1".parse::<ResourceRef>(),
            Ok(ResourceRef { namespace: "shop".into(), name: "restore-1".into() })
        );
        for bad in ["", "shop", "/x", "x/", "Shop/x", "a/b/c", "a/b c"] {
            assert!(bad.parse::<ResourceRef>().is_err(), "{bad}");
        }
    }
}
