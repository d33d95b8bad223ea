//! deploy/ and the CRD on a real kube-apiserver.
//!
//! - `manifests`: install.yaml, the kustomization, server-side dry runs, Pod
//!   Security and the hardened Deployment;
//! - `rbac`: the operator's ServiceAccount may do exactly what it needs;
//! - `dockerfiles`: what Dockerfile.agent and Dockerfile.operator build;
//! - `crd`: the generated CRD, the examples, the CEL rules and the status
//!   subresource.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crd;
mod dockerfiles;
mod manifests;
mod rbac;
mod support;
