//! Kubernetes Events (`events.k8s.io/v1`) on restores.
//!
//! Not kube-runtime's `Recorder`: it keeps every Event it sent for six
//! minutes to merge repeats into series, which at 1,000 restores was a third
//! of the operator's memory. A restore's Events are few and distinct (one
//! per phase change), so each is simply created.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::decide::EventType;

/// The longest note the API server accepts.
const MAX_NOTE: usize = 1024;

/// Records Events as the operator (`reportingController`) and this replica
/// (`reportingInstance`).
#[derive(Clone, Debug)]
pub struct Events {
    controller: String,
    instance: String,
}

impl Events {
    /// Events reported by `instance` (the Pod name) of the operator.
    pub fn new(instance: Option<String>) -> Self {
        let controller = proto::OPERATOR_FIELD_MANAGER.to_string();
        Events { instance: instance.unwrap_or_else(|| controller.clone()), controller }
    }

    /// The Event about `regarding`.
    pub fn event(&self, regarding: &ObjectReference, type_: EventType, reason: &str, note: &str) -> Event {
        let now = Timestamp::now();
        Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.as_str().to_string()),
            reason: Some(reason.to_string()),
            note: Some(truncate(note, MAX_NOTE)),
            action: Some("Reconcile".to_string()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }

    /// Creates the Event. A failure is logged, not returned: the status says
    /// the same, and an Event is not worth failing a reconcile over.
    pub async fn publish(&self, client: &kube::Client, event: &Event) {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(client.clone(), namespace);
        if let Err(error) = api.create(&PostParams::default(), event).await {
            tracing::warn!(reason = event.reason.as_deref().unwrap_or_default(), "cannot record an Event: {error}");
        }
    }
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
