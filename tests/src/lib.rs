//! Test harness for kubegres-restore: throwaway PostgreSQL clusters
//! ([`pg`]), database comparison ([`compare`]), fixtures ([`fixtures`]),
//! dumps in every format ([`dumps`]), the agent binary ([`agent`]), a real
//! control plane ([`controlplane`]), `deploy/` installed on it ([`deploy`]),
//! and the local cluster ([`localcluster`]): the control plane with the
//! operator, the process kubelet ([`kubelet`]) and a simulated Kubegres
//! ([`kubegres_sim`]).

// A test harness: a set-up that cannot be made panics with what went wrong,
// which is how a test reports it (the workspace warns on these outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod compare;
pub mod controlplane;
pub mod deploy;
pub mod dumps;
pub mod fixtures;
pub mod http;
pub mod kubegres_sim;
pub mod kubelet;
pub mod localcluster;
pub mod pg;
pub mod s3;
