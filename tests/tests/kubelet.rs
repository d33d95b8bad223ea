//! The process kubelet (harness::kubelet) on a real kube-apiserver: Pods
//! are scheduled, run as local processes in private mount namespaces, get
//! their env, volumes, /etc/hosts and ServiceAccount token, report status as
//! kubelet does, and stop when deleted or when the kubelet stops.
//!
//! - `running`: a restore-agent Pod, env, exit codes and termination messages;
//! - `volumes`: volumes, /etc/hosts, the private mount namespace, the token;
//! - `lifecycle`: PostgreSQL Pods, blocked Pods, deletion and stop;
//! - `features`: the container root, probes, StatefulSet and Job Pods, images.

// Test code: its helpers panic on what a test cannot go on without (the
// workspace warns on unwrap/expect outside tests; clippy.toml allows them
// only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "kubelet/support.rs"]
mod support;

#[path = "kubelet/running.rs"]
mod running;

#[path = "kubelet/volumes.rs"]
mod volumes;

#[path = "kubelet/lifecycle.rs"]
mod lifecycle;

#[path = "kubelet/features.rs"]
mod features;
