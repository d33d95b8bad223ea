//! The `KubegresRestore` custom resource (group `kubegres.reactive-tech.io`,
//! version `v1`): its spec, status and phases, the CEL rules of its CRD, and
//! pure helpers the operator needs (the resolved source and target, the phase
//! transitions, conditions).
//!
//! `deploy/crds/kubegres-restore.yaml` is generated from [`crd()`] by
//! `make crds`; a test fails when the two drift apart.

pub mod cel;
mod phase;
mod source;
mod spec;
mod status;
mod target;

#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use phase::{Phase, PhaseEvent};
pub use source::{
    CaSecret, ClusterSource, DataSource, FileSource, HeadersSecret, HttpSource, S3CredentialsSecret, S3Source,
    Snapshot, SourceKind, public_url,
};
pub use spec::{
    AgentSpec, CompressionChoice, EngineChoice, FormatChoice, KubegresRestore, KubegresRestoreSpec, OnError, PullPolicy,
};
pub use status::{
    CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_SPEC_CHANGED, CONDITION_TARGET_READY,
    KubegresRestoreStatus, find_condition, set_condition,
};
pub use target::{
    ClusterSpecSource, DatabaseTarget, NewClusterTarget, PostgresCredentialsSecret, PostgresTarget, ResolvedTarget,
    RestoreTarget, SslMode, TargetKind,
};

/// The API group, shared with Kubegres itself.
pub const GROUP: &str = "kubegres.reactive-tech.io";
/// The API version.
pub const VERSION: &str = "v1";
/// The kind.
pub const KIND: &str = "KubegresRestore";
/// The CRD's name: `<plural>.<group>`.
pub const CRD_NAME: &str = "kubegresrestores.kubegres.reactive-tech.io";
/// The resource's plural name (the first label of [`CRD_NAME`]).
pub const PLURAL: &str = "kubegresrestores";

/// Field manager the operator uses for its server-side-apply patches
/// (status phase and conditions, and the objects it creates).
pub const OPERATOR_FIELD_MANAGER: &str = "kubegres-restore-operator";

/// The CustomResourceDefinition of [`KubegresRestore`], as `make crds`
/// writes it to `deploy/crds/kubegres-restore.yaml`: kube's derived CRD with
/// its descriptions tidied for `kubectl explain` (see [`tidy_descriptions`]).
/// Use this rather than `KubegresRestore::crd()`.
#[allow(
    clippy::expect_used,
    reason = "a CRD is plain data with string keys, which serde_json always serialises, and tidying only \
              rewrites or drops optional description strings, so it always reads back (tests::schema checks both)"
)]
pub fn crd() -> CustomResourceDefinition {
    let mut value = serde_json::to_value(KubegresRestore::crd()).expect("a CRD serialises to JSON");
    tidy_descriptions(&mut value, None);
    serde_json::from_value(value).expect("tidying descriptions keeps the CRD well-formed")
}

/// Joins the hard-wrapped lines of doc comments into paragraphs (a newline
/// stays before a list item and between paragraphs), and drops the
/// descriptions of map values (`additionalProperties`), which `kubectl
/// explain` never shows (the long Quantity text, four times over).
fn tidy_descriptions(value: &mut serde_json::Value, key: Option<&str>) {
    match value {
        serde_json::Value::Object(map) => {
            if key == Some("additionalProperties") {
                map.remove("description");
            }
            for (name, child) in map.iter_mut() {
                match child {
                    // Under `properties`, "description" would be a field's name
                    // and its value an object: only strings are descriptions.
                    serde_json::Value::String(text) if name == "description" => *text = unwrap_lines(text),
                    _ => tidy_descriptions(child, Some(name)),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| tidy_descriptions(item, None)),
        _ => {}
    }
}

/// Replaces each newline inside a paragraph by a space, except before a list
/// item (`- `, `* `).
fn unwrap_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(next) = lines.peek() else { break };
        let keep = line.trim().is_empty()
            || next.trim().is_empty()
            || next.trim_start().starts_with("- ")
            || next.trim_start().starts_with("* ");
        out.push(if keep { '\n' } else { ' ' });
    }
    out
}

/// A spec that the CRD's rules should have rejected (an object stored before
/// the rules existed, or written around them). The messages are the CEL
/// rules' messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// None of `dataSource.file`, `s3`, `http` is set.
    NoSource,
    /// More than one of them is set.
    SeveralSources,
    /// `spec.target` sets none, or more than one, of its fields.
    TargetNotOne,
    /// A new cluster without a name.
    NoClusterName,
    /// `target.newCluster.name` and `clusterName` differ.
    ClusterNameMismatch,
    /// A new cluster without a spec.
    NoClusterSpec,
    /// `dataSource.cluster` sets none or both of `clusterName`, `clusterSpec`.
    ClusterSourceNotOne,
    /// `target.newCluster` sets both `copyFrom` and `clusterSpec`.
    NewClusterSpecNotOne,
    /// Both `dataSource.cluster` and `target.newCluster` give a spec.
    TwoClusterSpecs,
    /// `clusterName` or `dataSource.cluster` with a database or postgres target.
    NewClusterFieldsWithOtherTarget,
}

impl SpecError {
    /// A short CamelCase category for conditions, events and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            SpecError::NoSource | SpecError::SeveralSources => "InvalidSource",
            SpecError::TargetNotOne
            | SpecError::NoClusterName
            | SpecError::ClusterNameMismatch
            | SpecError::NewClusterFieldsWithOtherTarget => "InvalidTarget",
            SpecError::NoClusterSpec
            | SpecError::ClusterSourceNotOne
            | SpecError::NewClusterSpecNotOne
            | SpecError::TwoClusterSpecs => "InvalidClusterSpec",
        }
    }

    /// The message of the CEL rule that rejects the same spec.
    pub fn message(self) -> &'static str {
        match self {
            SpecError::NoSource | SpecError::SeveralSources => cel::DATA_SOURCE[0].message,
            SpecError::TargetNotOne => cel::TARGET[0].message,
            SpecError::NoClusterName => cel::SPEC[0].message,
            SpecError::NoClusterSpec => cel::SPEC[1].message,
            SpecError::NewClusterFieldsWithOtherTarget => cel::SPEC[2].message,
            SpecError::ClusterNameMismatch => cel::SPEC[3].message,
            SpecError::TwoClusterSpecs => cel::SPEC[4].message,
            SpecError::ClusterSourceNotOne => cel::CLUSTER_SOURCE[0].message,
            SpecError::NewClusterSpecNotOne => cel::NEW_CLUSTER[0].message,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod names {
    #[test]
    fn the_plural_and_group_make_the_crd_name() {
        use kube::Resource;
        assert_eq!(format!("{}.{}", super::PLURAL, super::GROUP), super::CRD_NAME);
        assert_eq!(super::KubegresRestore::plural(&()), super::PLURAL);
    }
}
