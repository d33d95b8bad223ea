//! The kubegres-restore operator: reconciles KubegresRestore resources by
//! creating the target, running the restore agent in a Pod, and reporting.
//!
//! - [`decide`]: the pure decide step (observed state in, actions out);
//! - [`controller`]: the kube-runtime controller around it (observe, apply);
//! - [`metrics`], [`health`]: Prometheus metrics and `/healthz`, `/readyz`;
//! - [`leader`]: leader election through a Lease.

pub mod controller;
pub mod decide;
mod error;
pub mod health;
pub mod kubegres;
pub mod leader;
pub mod metrics;

pub use error::Error;
