//! The process kubelet (harness::kubelet) on a real kube-apiserver: Pods
//! are scheduled, run as local processes in private mount namespaces, get
//! their env, volumes, /etc/hosts and ServiceAccount token, report status as
//! kubelet does, and stop when deleted or when the kubelet stops.
//!
//! - `running`: a restore-agent Pod, env, exit codes and termination messages;
//! - `volumes`: volumes, /etc/hosts, the private mount namespace, the token;
//! - `lifecycle`: PostgreSQL Pods, blocked Pods, deletion and stop;
//! - `features`: the container root, probes, StatefulSet and Job Pods, images.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod running;

mod volumes;

mod lifecycle;

mod features;
