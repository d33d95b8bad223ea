//! deploy/install.yaml: the resources that deploy/kustomization.yaml lists,
//! concatenated in order. kustomize is not a dependency: the kustomization
//! uses nothing but `resources:` (anything else is refused, since the bundle
//! would then differ from what `kubectl kustomize deploy/` builds).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{BUNDLE_COMMAND, DeployError, NAMESPACE, OPERATOR, deploy_dir, install_yaml_path};

/// The keys of a kustomization that the bundle reproduces.
const SUPPORTED_KEYS: [&str; 3] = ["apiVersion", "kind", "resources"];

/// deploy/kustomization.yaml.
#[derive(Debug, Clone, Deserialize)]
pub struct Kustomization {
    /// The files, relative to deploy/, in the order they are applied.
    pub resources: Vec<String>,
}

impl Kustomization {
    /// Reads deploy/kustomization.yaml and checks that it uses only
    /// `resources:`, each a YAML file inside deploy/.
    pub fn read() -> Result<Self, DeployError> {
        let path = deploy_dir().join("kustomization.yaml");
        let text = read(&path)?;
        let raw: Value = serde_saphyr::from_str(&text).map_err(|source| DeployError::Yaml { path, source })?;
        let Some(fields) = raw.as_object() else {
            return Err(DeployError::Kustomization("it is not a mapping".into()));
        };
        if let Some(key) = fields.keys().find(|key| !SUPPORTED_KEYS.contains(&key.as_str())) {
            return Err(DeployError::Kustomization(format!(
                "`{key}:` is not reproduced by the bundle generator (tests/src/deploy/bundle.rs); \
                 list only `resources:` or teach the generator"
            )));
        }
        let kustomization: Self = serde_json::from_value(raw)
            .map_err(|error| DeployError::Kustomization(format!("`resources:` is not a list of paths: {error}")))?;
        for resource in &kustomization.resources {
            let path = Path::new(resource);
            let inside = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            let yaml = path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml");
            if !inside || !yaml || !deploy_dir().join(path).is_file() {
                return Err(DeployError::Kustomization(format!(
                    "resource `{resource}` is not a YAML file inside deploy/ (directories, remote bases \
                     and globs are not reproduced)"
                )));
            }
        }
        Ok(kustomization)
    }

    /// The absolute paths of the resources, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.resources.iter().map(|resource| deploy_dir().join(resource)).collect()
    }
}

/// The install bundle: a header naming the command that generates it, then
/// every document of every resource of deploy/kustomization.yaml in order,
/// each headed by `# Source: <resource>`, separated by `---`.
///
/// # Panics
/// When deploy/ cannot be read or bundled; the message says why.
pub fn bundle() -> String {
    try_bundle().unwrap_or_else(|error| panic!("cannot generate deploy/install.yaml: {error}"))
}

/// Like [`bundle`], returning the error instead of panicking.
pub fn try_bundle() -> Result<String, DeployError> {
    let kustomization = Kustomization::read()?;
    let mut out = format!(
        "# Generated from deploy/kustomization.yaml by `{BUNDLE_COMMAND}`\n\
         # (cargo run -q -p kubegres-restore-tests --bin bundle). Do not edit:\n\
         # change the files it lists and run `{BUNDLE_COMMAND}` again.\n\
         #\n\
         # Install: kubectl apply --server-side -f deploy/install.yaml\n"
    );
    for (resource, path) in kustomization.resources.iter().zip(kustomization.paths()) {
        let text = read(&path)?;
        let documents = split_documents(&text);
        if documents.is_empty() {
            return Err(DeployError::Object { what: resource.clone(), problem: "the file has no document" });
        }
        for (index, document) in documents.iter().enumerate() {
            let what = format!("document {} of deploy/{resource}", index + 1);
            let value: Value =
                serde_saphyr::from_str(document).map_err(|source| DeployError::Yaml { path: path.clone(), source })?;
            check_object(&value, &what)?;
            out.push_str("---\n# Source: ");
            out.push_str(resource);
            out.push('\n');
            out.push_str(document);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The environment variable that makes the operator watch one namespace.
pub const WATCH_NAMESPACE_ENV: &str = "OPERATOR_WATCH_NAMESPACE";

/// The namespace-scoped install bundle (deploy/install-namespaced.yaml): the
/// documents of [`bundle`] with the operator's ClusterRole and
/// ClusterRoleBinding turned into a Role and RoleBinding of its own
/// namespace, and the operator watching only that namespace
/// ([`namespace_scoped`]). The CRD stays: it is cluster-scoped by nature.
///
/// # Panics
/// When deploy/ cannot be read or bundled; the message says why.
pub fn namespaced_bundle() -> String {
    try_namespaced_bundle().unwrap_or_else(|error| panic!("cannot generate deploy/install-namespaced.yaml: {error}"))
}

/// Like [`namespaced_bundle`], returning the error instead of panicking.
pub fn try_namespaced_bundle() -> Result<String, DeployError> {
    let mut out = format!(
        "# Generated from deploy/kustomization.yaml by `{BUNDLE_COMMAND}`\n\
         # (cargo run -q -p kubegres-restore-tests --bin bundle -- --namespaced). Do not edit:\n\
         # change the files it lists and run `{BUNDLE_COMMAND}` again.\n\
         #\n\
         # The namespace-scoped install, for a cluster where restores happen in one\n\
         # namespace only: deploy/install.yaml with the operator's ClusterRole and\n\
         # ClusterRoleBinding made a Role and a RoleBinding of {NAMESPACE}, and the\n\
         # operator watching only that namespace ({WATCH_NAMESPACE_ENV}). Create the\n\
         # KubegresRestores and their Kubegres clusters in {NAMESPACE}; to use\n\
         # another namespace, replace {NAMESPACE} throughout. The CRD is\n\
         # cluster-scoped: applying this file still needs a cluster admin once.\n\
         #\n\
         # Install: kubectl apply --server-side -f deploy/install-namespaced.yaml\n"
    );
    for (resource, document) in resource_documents()? {
        let document = namespace_scoped(document);
        let yaml = serde_saphyr::to_string(&document)
            .map_err(|error| DeployError::Kustomization(format!("cannot write {resource} back as YAML: {error}")))?;
        out.push_str("---\n# Source: ");
        out.push_str(&resource);
        out.push('\n');
        out.push_str(yaml.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// One document of deploy/ as the namespace-scoped install has it: the
/// operator's ClusterRole becomes a Role of [`NAMESPACE`] with the same
/// rules, its ClusterRoleBinding a RoleBinding of that Role, and its
/// Deployment sets [`WATCH_NAMESPACE_ENV`] to its own namespace. Every other
/// document is unchanged.
pub fn namespace_scoped(mut document: Value) -> Value {
    let kind = document["kind"].as_str().unwrap_or_default().to_string();
    if document["metadata"]["name"].as_str() != Some(OPERATOR) {
        return document;
    }
    match kind.as_str() {
        "ClusterRole" => {
            document["kind"] = "Role".into();
            document["metadata"]["namespace"] = NAMESPACE.into();
        }
        "ClusterRoleBinding" => {
            document["kind"] = "RoleBinding".into();
            document["metadata"]["namespace"] = NAMESPACE.into();
            document["roleRef"]["kind"] = "Role".into();
        }
        "Deployment" => {
            let watch = serde_json::json!({
                "name": WATCH_NAMESPACE_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}
            });
            if let Some(containers) = document["spec"]["template"]["spec"]["containers"].as_array_mut() {
                for container in containers.iter_mut().filter(|container| container["name"] == "operator") {
                    match container["env"].as_array_mut() {
                        Some(env) => env.push(watch.clone()),
                        None => container["env"] = Value::Array(vec![watch.clone()]),
                    }
                }
            }
        }
        _ => {}
    }
    document
}

/// Every document of deploy/install.yaml, parsed.
pub fn bundle_documents() -> Result<Vec<Value>, DeployError> {
    read_documents(&install_yaml_path())
}

/// Every document of every resource of deploy/kustomization.yaml, in order,
/// with the resource it comes from.
pub fn resource_documents() -> Result<Vec<(String, Value)>, DeployError> {
    let kustomization = Kustomization::read()?;
    let mut all = Vec::new();
    for (resource, path) in kustomization.resources.iter().zip(kustomization.paths()) {
        all.extend(read_documents(&path)?.into_iter().map(|document| (resource.clone(), document)));
    }
    Ok(all)
}

/// The documents of a YAML file (empty and comment-only documents skipped),
/// each checked to be a Kubernetes object.
pub fn read_documents(path: &Path) -> Result<Vec<Value>, DeployError> {
    let text = read(path)?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|source| DeployError::Yaml { path: path.to_path_buf(), source })?;
    for (index, document) in documents.iter().enumerate() {
        check_object(document, &format!("document {} of {}", index + 1, path.display()))?;
    }
    Ok(documents)
}

/// Splits YAML text at its `---` lines into documents, drops the ones that
/// hold only comments or blank lines (a file's header before its first
/// `---`), and trims blank lines around each.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(std::mem::take(&mut current));
        } else {
            current.push(line);
        }
    }
    documents.push(current);
    documents
        .into_iter()
        .filter(|lines| {
            lines.iter().any(|line| {
                let line = line.trim_start();
                !line.is_empty() && !line.starts_with('#')
            })
        })
        .map(|lines| lines.join("\n").trim_matches('\n').trim_end().to_string())
        .collect()
}

fn check_object(value: &Value, what: &str) -> Result<(), DeployError> {
    let problem = if !value.is_object() {
        Some("it is not a mapping")
    } else if !value["apiVersion"].is_string() {
        Some("no apiVersion")
    } else if !value["kind"].is_string() {
        Some("no kind")
    } else if !value["metadata"]["name"].is_string() {
        Some("no metadata.name")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(DeployError::Object { what: what.to_string(), problem }),
        None => Ok(()),
    }
}

fn read(path: &Path) -> Result<String, DeployError> {
    std::fs::read_to_string(path).map_err(|source| DeployError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_at_separator_lines_and_headers_dropped() {
        let text = "# header\n# more\n---\n# about a\napiVersion: v1\nkind: A\n\n---   \n\nkind: B\n---\n\n";
        assert_eq!(split_documents(text), ["# about a\napiVersion: v1\nkind: A", "kind: B"]);
        // A `---` inside a value is not a separator.
        assert_eq!(split_documents("a: |\n  ---\n  x\n"), ["a: |\n  ---\n  x"]);
    }

    #[test]
    fn objects_need_api_version_kind_and_name() {
        let ok = serde_json::json!({"apiVersion": "v1", "kind": "A", "metadata": {"name": "a"}});
        assert!(check_object(&ok, "ok").is_ok());
        let error = check_object(&serde_json::json!({"apiVersion": "v1", "kind": "A"}), "doc 1").unwrap_err();
        assert_eq!(error.to_string(), "doc 1 is not a Kubernetes object: no metadata.name");
        assert_eq!(error.reason(), "InvalidObject");
    }

    #[test]
    fn the_namespaced_bundle_grants_the_same_rules_in_one_namespace_only() {
        let documents = resource_documents().unwrap();
        let cluster_role = documents.iter().find(|(_, doc)| doc["kind"] == "ClusterRole").unwrap().1.clone();
        let role = namespace_scoped(cluster_role.clone());
        assert_eq!((role["kind"].as_str(), role["metadata"]["namespace"].as_str()), (Some("Role"), Some(NAMESPACE)));
        assert_eq!(role["rules"], cluster_role["rules"]);
        let binding = documents.iter().find(|(_, doc)| doc["kind"] == "ClusterRoleBinding").unwrap().1.clone();
        let binding = namespace_scoped(binding);
        assert_eq!(
            (binding["kind"].as_str(), binding["roleRef"]["kind"].as_str()),
            (Some("RoleBinding"), Some("Role"))
        );
        let deployment = documents.iter().find(|(_, doc)| doc["kind"] == "Deployment").unwrap().1.clone();
        let env = namespace_scoped(deployment)["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        let watch = env.as_array().unwrap().iter().find(|var| var["name"] == WATCH_NAMESPACE_ENV).unwrap();
        assert_eq!(watch["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
        // Nothing else changes.
        let namespace = documents.iter().find(|(_, doc)| doc["kind"] == "Namespace").unwrap().1.clone();
        assert_eq!(namespace_scoped(namespace.clone()), namespace);
    }

    #[test]
    fn the_bundle_starts_with_the_command_that_generates_it() {
        let bundle = try_bundle().unwrap();
        assert!(bundle.starts_with("# Generated from deploy/kustomization.yaml by `make bundle`\n"), "{bundle}");
        assert!(bundle.contains("---\n# Source: namespace.yaml\n"));
    }
}
