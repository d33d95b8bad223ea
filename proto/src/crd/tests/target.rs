//! The resolved source and target, and the spec errors that mirror the CEL
//! rules.

use serde_json::json;

use super::*;
use crate::crd::*;

/// A spec from a JSON literal.
fn spec(value: serde_json::Value) -> KubegresRestoreSpec {
    serde_json::from_value(value).unwrap()
}

const FILE: &str = "file";

fn file() -> serde_json::Value {
    json!({"pvcName": "backups"})
}

#[test]
fn the_fork_form_resolves_to_a_new_cluster_copied_from_another() {
    let r = restore(FORK_RESTORE);
    assert_eq!(r.spec.source_kind(), Ok(SourceKind::File));
    let target = r.spec.target().unwrap();
    assert_eq!(
        target,
        ResolvedTarget::NewCluster {
            name: "mypostgres-restored",
            spec: ClusterSpecSource::CopyFrom("mypostgres"),
            database: "postgres"
        }
    );
    assert_eq!(target.kind(), TargetKind::NewCluster);
    assert!(target.kind().creates_target());
    assert_eq!(target.summary(), "cluster/mypostgres-restored");
}

#[test]
fn an_inline_spec_resolves_and_the_database_defaults_to_postgres() {
    let r = restore(FORK_INLINE_SPEC);
    let ResolvedTarget::NewCluster { name, spec: ClusterSpecSource::Inline(spec), database } = r.spec.target().unwrap()
    else {
        panic!("an inline new cluster");
    };
    assert_eq!((name, database), ("restored", "postgres"));
    assert_eq!(spec["image"], "postgres:17");
}

#[test]
fn the_explicit_new_cluster_form_is_the_default_spelled_out() {
    let explicit = spec(json!({
        "dataSource": {FILE: file()},
        "target": {"newCluster": {"name": "restored", "copyFrom": "main"}}
    }));
    let default = spec(json!({
        "clusterName": "restored",
        "dataSource": {FILE: file(), "cluster": {"clusterName": "main"}}
    }));
    assert_eq!(explicit.target().unwrap(), default.target().unwrap());
    // Mixed: the name from the fork's field, the spec from newCluster.
    let mixed = spec(json!({
        "clusterName": "restored",
        "dataSource": {FILE: file()},
        "target": {"newCluster": {"copyFrom": "main"}}
    }));
    assert_eq!(mixed.target().unwrap(), default.target().unwrap());
}

#[test]
fn database_and_postgres_targets_resolve_as_given() {
    let r = restore(S3_INTO_DATABASE);
    assert_eq!(r.spec.source_kind(), Ok(SourceKind::S3));
    let ResolvedTarget::Database(database) = r.spec.target().unwrap() else { panic!("database target") };
    assert_eq!((database.cluster_name.as_str(), database.database.as_str()), ("main", "orders"));
    assert!(TargetKind::Database.creates_target());

    let r = restore(HTTP_INTO_POSTGRES);
    assert_eq!(r.spec.source_kind(), Ok(SourceKind::Http));
    let target = r.spec.target().unwrap();
    assert_eq!(target.kind(), TargetKind::Postgres);
    assert!(!target.kind().creates_target());
}

#[test]
fn invalid_specs_give_the_cel_rules_sentences() {
    let cases = [
        (json!({"clusterName": "c", "dataSource": {"cluster": {"clusterName": "m"}}}), SpecError::NoSource),
        (
            json!({"clusterName": "c", "dataSource": {FILE: file(), "http": {"url": "https://h/d"},
                "cluster": {"clusterName": "m"}}}),
            SpecError::SeveralSources,
        ),
        (json!({"dataSource": {FILE: file(), "cluster": {"clusterName": "m"}}}), SpecError::NoClusterName),
        (json!({"clusterName": "c", "dataSource": {FILE: file()}}), SpecError::NoClusterSpec),
        (json!({"clusterName": "c", "dataSource": {FILE: file(), "cluster": {}}}), SpecError::ClusterSourceNotOne),
        (
            json!({"clusterName": "c", "dataSource": {FILE: file(),
                "cluster": {"clusterName": "m", "clusterSpec": {}}}}),
            SpecError::ClusterSourceNotOne,
        ),
        (json!({"dataSource": {FILE: file()}, "target": {}}), SpecError::TargetNotOne),
        (
            json!({"dataSource": {FILE: file()}, "target": {
                "database": {"clusterName": "m", "database": "d"},
                "newCluster": {"name": "n", "copyFrom": "m"}}}),
            SpecError::TargetNotOne,
        ),
        (
            json!({"clusterName": "a", "dataSource": {FILE: file()},
                "target": {"newCluster": {"name": "b", "copyFrom": "m"}}}),
            SpecError::ClusterNameMismatch,
        ),
        (
            json!({"dataSource": {FILE: file()},
                "target": {"newCluster": {"name": "b", "copyFrom": "m", "clusterSpec": {}}}}),
            SpecError::NewClusterSpecNotOne,
        ),
        (
            json!({"dataSource": {FILE: file(), "cluster": {"clusterName": "m"}},
                "target": {"newCluster": {"name": "b", "copyFrom": "m"}}}),
            SpecError::TwoClusterSpecs,
        ),
        (
            json!({"clusterName": "c", "dataSource": {FILE: file()},
                "target": {"database": {"clusterName": "m", "database": "d"}}}),
            SpecError::NewClusterFieldsWithOtherTarget,
        ),
    ];
    for (value, want) in cases {
        let spec = spec(value.clone());
        let got = spec.source_kind().and_then(|_| spec.target().map(|_| ()));
        assert_eq!(got, Err(want), "{value}");
        assert!(!want.reason().is_empty());
    }
    assert_eq!(SpecError::NoSource.to_string(), "spec.dataSource must set exactly one of file, s3 or http");
    assert_eq!(
        SpecError::TargetNotOne.to_string(),
        "spec.target must set exactly one of newCluster, database or postgres"
    );
    assert_eq!(SpecError::SeveralSources.reason(), "InvalidSource");
}

#[test]
fn each_spec_error_says_what_its_cel_rule_says() {
    let cases = [
        (SpecError::NoSource, "exactly one of file, s3 or http"),
        (SpecError::SeveralSources, "exactly one of file, s3 or http"),
        (SpecError::TargetNotOne, "exactly one of newCluster, database or postgres"),
        (SpecError::NoClusterName, "needs its name in spec.clusterName"),
        (SpecError::ClusterNameMismatch, "must be equal when both are set"),
        (SpecError::NoClusterSpec, "needs its Kubegres spec"),
        (SpecError::ClusterSourceNotOne, "exactly one of clusterName or clusterSpec"),
        (SpecError::NewClusterSpecNotOne, "copyFrom or clusterSpec, not both"),
        (SpecError::TwoClusterSpecs, "set only one of them"),
        (SpecError::NewClusterFieldsWithOtherTarget, "cannot be used with spec.target.database"),
    ];
    for (error, words) in cases {
        assert!(error.message().contains(words), "{error:?}: {}", error.message());
        let in_crd =
            cel::PLACEMENT.iter().flat_map(|(_, rules)| rules.iter()).any(|rule| rule.message == error.message());
        assert!(in_crd, "{error:?} has no CEL rule");
    }
}

#[test]
fn summaries_are_none_when_the_spec_is_invalid() {
    let spec = spec(json!({"dataSource": {}}));
    assert_eq!(spec.source_summary(), None);
    assert_eq!(spec.target_summary(), None);
}
