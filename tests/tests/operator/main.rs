//! The operator on a real kube-apiserver, under the ServiceAccount identity
//! that deploy/ grants.
//!
//! - `controller`: the controller in-process, the tests playing kubelet and
//!   Kubegres;
//! - `pod_args`: the restore Pod's args parse with the agent's own CLI;
//! - `process`: the operator binary: health, metrics, leader election and
//!   SIGTERM.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod controller;
mod pod_args;
mod process;
mod support;
