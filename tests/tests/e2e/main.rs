//! End to end on the local cluster (`localcluster up`): the real control
//! plane, the operator as its own process with deploy/'s identity, restore
//! Pods run by the process kubelet (SIMULATED: processes, not containers),
//! Kubegres clusters by the simulated Kubegres controller (SIMULATED: a
//! reimplementation of Kubegres's published behaviour) through the real
//! kube-controller-manager and kube-scheduler, real
//! PostgreSQL everywhere, a real S3 server and real HTTP servers.
//!
//! One local cluster serves the whole binary; each test has its own
//! namespace. Under CI=true, as everywhere, a cluster that cannot start
//! fails the tests.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod kubegres;
mod safety;
mod sources;
mod support;
