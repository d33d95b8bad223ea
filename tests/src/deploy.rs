//! `deploy/` as code: the install bundle generated from
//! `deploy/kustomization.yaml` ([`bundle`]), and the operator's install and
//! identity on a real control plane, for the tests that run the controller as
//! `deploy/` grants it ([`install_operator_rbac`], [`operator_client`]).
//!
//! ```no_run
//! # async fn demo() {
//! use harness::controlplane::ControlPlane;
//! use harness::deploy::{install_kubegres_crd, install_operator_rbac, operator_client};
//!
//! let cp = ControlPlane::start().await;
//! install_operator_rbac(&cp.client()).await;
//! install_kubegres_crd(&cp.client()).await;
//! let operator = operator_client(&cp).await;
//! // `operator` may do exactly what deploy/rbac grants, nothing more.
//! # let _ = operator;
//! # }
//! ```

mod bundle;
mod install;
mod shared;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bundle::{Kustomization, bundle, bundle_documents, read_documents, resource_documents, try_bundle};
pub use install::{
    KUBEGRES_CRD_NAME, allowed, apply, create_namespace, install_kubegres_crd, install_operator_rbac,
    install_restore_crd, operator_client, operator_token, wait_for_crd,
};
pub use shared::{admin, control_plane};

/// The operator's namespace (deploy/namespace.yaml).
pub const NAMESPACE: &str = "kubegres-restore-system";

/// The operator's ServiceAccount, ClusterRole and Deployment (deploy/rbac,
/// deploy/operator).
pub const OPERATOR: &str = "kubegres-restore-operator";

/// The field manager the tests install `deploy/` with.
pub const FIELD_MANAGER: &str = "kubegres-restore-tests";

/// The command that writes deploy/install.yaml.
pub const BUNDLE_COMMAND: &str = "make bundle";

/// How long the apiserver may take to establish a CRD or to put a new
/// RoleBinding into effect.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Why `deploy/` could not be read, bundled or installed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{} is not valid YAML: {source}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_saphyr::Error,
    },
    /// deploy/kustomization.yaml uses something the bundle generator does
    /// not reproduce, so the bundle would differ from `kubectl kustomize`.
    #[error("deploy/kustomization.yaml: {0}")]
    Kustomization(String),
    /// A document is not a Kubernetes object (no apiVersion, kind or name).
    #[error("{what} is not a Kubernetes object: {problem}")]
    Object {
        /// Which document.
        what: String,
        /// What is missing.
        problem: &'static str,
    },
    /// The apiserver refused a request.
    #[error("cannot {action}: {source}")]
    Api {
        /// What was asked, e.g. `apply Role kubegres-restore-system/x`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Something did not happen in time.
    #[error("{what} within {waited:?}")]
    Timeout {
        /// What did not happen, e.g. `the CRD x was not Established`.
        what: String,
        /// How long it was given.
        waited: Duration,
    },
}

impl DeployError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "Io",
            Self::Yaml { .. } => "InvalidYaml",
            Self::Kustomization(_) => "UnsupportedKustomization",
            Self::Object { .. } => "InvalidObject",
            Self::Api { .. } => "ApiError",
            Self::Timeout { .. } => "Timeout",
        }
    }

    fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api { action: action.into(), source }
    }
}

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// deploy/install.yaml, the generated bundle.
pub fn install_yaml_path() -> PathBuf {
    deploy_dir().join("install.yaml")
}

/// The stand-in Kubegres CRD, tests/fixtures/kubegres-crd.yaml.
pub fn kubegres_crd_path() -> PathBuf {
    crate::fixtures::fixtures_dir().join("kubegres-crd.yaml")
}

/// The repository (the workspace root).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons_and_messages() {
        let error = DeployError::Kustomization("`namespace:` is not reproduced".into());
        assert_eq!(error.reason(), "UnsupportedKustomization");
        assert_eq!(error.to_string(), "deploy/kustomization.yaml: `namespace:` is not reproduced");
        let error = DeployError::Timeout { what: "the CRD x was not Established".into(), waited: SETTLE };
        assert_eq!(error.reason(), "Timeout");
        assert_eq!(error.to_string(), "the CRD x was not Established within 30s");
    }

    #[test]
    fn paths_point_into_the_repository() {
        assert!(deploy_dir().join("kustomization.yaml").is_file());
        assert!(kubegres_crd_path().is_file());
    }
}
