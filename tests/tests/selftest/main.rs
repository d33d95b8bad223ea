//! The harness proves itself: the real PostgreSQL tools and the comparison
//! (`pg`), the local control plane as a real Kubernetes API
//! (`controlplane`), and the full control plane with the real
//! kube-controller-manager and kube-scheduler (`cluster`).

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod controlplane;
mod pg;
