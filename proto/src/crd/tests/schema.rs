//! The generated CRD: names, subresources, printer columns, and where each
//! CEL rule lands.

use serde_json::Value;

use crate::crd::*;

/// The CRD's openAPIV3Schema as JSON.
fn schema() -> Value {
    let crd = serde_json::to_value(crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The schema node at a dotted path of properties ("" is the root).
fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').filter(|name| !name.is_empty()).fold(schema, |node, name| {
        node.get("properties")
            .and_then(|properties| properties.get(name))
            .unwrap_or_else(|| panic!("no property {name} on the way to {path}"))
    })
}

#[test]
fn the_crd_is_named_and_shaped_as_kubegres_expects() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, KIND);
    assert_eq!(crd.spec.names.plural, "kubegresrestores");
    let short = crd.spec.names.short_names.clone().unwrap();
    assert_eq!(short, ["kgrestore", "kgr"]);
    assert!(!short.iter().any(|name| name == "kubegres"), "must not shadow Kubegres's own names");
    let [version] = crd.spec.versions.as_slice() else { panic!("one version") };
    assert_eq!(version.name, VERSION);
    assert!(version.served && version.storage);
    assert!(version.subresources.as_ref().unwrap().status.is_some(), "status subresource");
}

#[test]
fn printer_columns_show_phase_progress_source_target_age() {
    let crd = crd();
    let columns = crd.spec.versions[0].additional_printer_columns.clone().unwrap();
    let got: Vec<(&str, &str, &str)> =
        columns.iter().map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str())).collect();
    assert_eq!(
        got,
        [
            ("Phase", "string", ".status.phase"),
            ("Progress", "integer", ".status.progress.percent"),
            ("Source", "string", ".status.source"),
            ("Target", "string", ".status.target"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
    // Every column's path exists in the schema.
    let schema = schema();
    for path in [".status.phase", ".status.progress.percent", ".status.source", ".status.target"] {
        node(&schema, &path[1..]);
    }
}

#[test]
fn every_cel_rule_sits_where_its_message_says() {
    let schema = schema();
    for (path, rules) in cel::PLACEMENT {
        let got: Vec<(&str, &str)> = node(&schema, path)["x-kubernetes-validations"]
            .as_array()
            .unwrap_or_else(|| panic!("no rules on {path}"))
            .iter()
            .map(|rule| (rule["rule"].as_str().unwrap(), rule["message"].as_str().unwrap()))
            .collect();
        let want: Vec<(&str, &str)> = rules.iter().map(|rule| (rule.rule, rule.message)).collect();
        assert_eq!(got, want, "rules on {path}");
        for rule in *rules {
            // A field's rule names its field; rules on spec speak of the spec.
            let subject = if *path == "spec" { "spec." } else { path };
            assert!(rule.message.contains(subject), "{path}: {:?} does not name {subject}", rule.message);
            assert!(!rule.message.ends_with('.') && !rule.message.contains('\n'), "{:?}", rule.message);
        }
    }
}

#[test]
fn no_other_node_carries_rules() {
    fn walk(node: &Value, path: String, found: &mut Vec<String>) {
        if node.get("x-kubernetes-validations").is_some() {
            found.push(path.clone());
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                walk(child, child_path, found);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, format!("{path}[]"), found);
        }
    }
    let mut found = Vec::new();
    walk(&schema(), String::new(), &mut found);
    found.sort();
    let mut want: Vec<String> = cel::PLACEMENT.iter().map(|(path, _)| path.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn every_field_is_described_and_descriptions_are_unwrapped() {
    fn walk(node: &Value, path: &str) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = format!("{path}.{name}");
                let description = child["description"].as_str();
                assert!(description.is_some_and(|d| !d.trim().is_empty()), "{child_path} has no description");
                walk(child, &child_path);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"));
        }
    }
    let schema = schema();
    walk(&schema, "");
    // Our own doc comments are hard-wrapped at 100 columns: no single
    // newline may survive inside a paragraph.
    let jobs = node(&schema, "spec.backoffLimit")["description"].as_str().unwrap();
    assert!(!jobs.contains('\n'), "{jobs:?}");
    let spec = node(&schema, "spec")["description"].as_str().unwrap();
    assert_eq!(spec.matches('\n').count(), 2, "two paragraphs: {spec:?}");
}

#[test]
fn fields_are_camel_case_and_cluster_specs_are_preserved() {
    let schema = schema();
    for path in ["spec.dataSource.cluster.clusterSpec", "spec.target.newCluster.clusterSpec"] {
        let node = node(&schema, path);
        assert_eq!(node["x-kubernetes-preserve-unknown-fields"], true, "{path}");
        assert_eq!(node["type"], "object", "{path}");
    }
    let conditions = node(&schema, "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
    let spec = node(&schema, "spec")["properties"].as_object().unwrap();
    for name in spec.keys() {
        assert!(!name.contains('_') && name.chars().next().unwrap().is_ascii_lowercase(), "{name}");
    }
    assert_eq!(node(&schema, "spec")["required"], serde_json::json!(["dataSource"]));
    assert_eq!(node(&schema, "spec.backoffLimit")["default"], 3);
    assert_eq!(node(&schema, "spec.jobs")["default"], 1);
    assert_eq!(node(&schema, "spec.dataSource.file.mountPath")["default"], "/var/lib/backup");
}

/// Every unbounded string, list and map under `node`, by path.
fn unbounded(node: &Value, path: &str, found: &mut Vec<String>) {
    if node["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    let bounded = match node["type"].as_str() {
        Some("string") => node.get("maxLength").is_some() || node.get("enum").is_some(),
        Some("array") => node.get("maxItems").is_some(),
        Some("object") if node.get("additionalProperties").is_some() => node.get("maxProperties").is_some(),
        _ => true,
    };
    if !bounded {
        found.push(path.to_string());
    }
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        unbounded(child, &format!("{path}.{name}"), found);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|child| child.is_object()) {
            unbounded(child, &format!("{path}[{key}]"), found);
        }
    }
}

#[test]
fn every_string_list_and_map_of_the_spec_is_bounded() {
    let schema = schema();
    let spec = node(&schema, "spec");
    let mut found = Vec::new();
    unbounded(spec, "spec", &mut found);
    assert!(found.is_empty(), "unbounded in the CRD: {found:?}");
    // The bounds are the generous defaults where a field sets none, and the
    // field's own where it does.
    assert_eq!(node(&schema, "spec.env")["maxItems"], MAX_SPEC_ITEMS);
    assert_eq!(node(&schema, "spec.env")["items"]["properties"]["value"]["maxLength"], MAX_SPEC_STRING);
    assert_eq!(node(&schema, "spec.clusterName")["maxLength"], 253);
    // The Kubegres spec is kept as the user wrote it.
    let copied = node(&schema, "spec.dataSource.cluster.clusterSpec");
    assert_eq!(copied["x-kubernetes-preserve-unknown-fields"], true);
    assert!(copied.get("maxProperties").is_none());
}
