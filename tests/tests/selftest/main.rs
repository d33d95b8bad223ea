//! The harness proves itself: the real PostgreSQL tools and the comparison
//! (`pg`), and the local control plane as a real Kubernetes API
//! (`controlplane`).

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod controlplane;
mod pg;
