//! The operator on a real kube-apiserver, under the ServiceAccount identity
//! that deploy/ grants.
//!
//! - `controller`: the controller in-process, the tests playing kubelet and
//!   Kubegres;
//! - `process`: the operator binary: health, metrics, leader election and
//!   SIGTERM.

mod controller;
mod process;
mod support;
