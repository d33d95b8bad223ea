//! Test harness for kubegres-restore: throwaway PostgreSQL clusters
//! ([`pg`]), database comparison ([`compare`]), fixtures ([`fixtures`]),
//! dumps in every format ([`dumps`]), the agent binary ([`agent`]), a real
//! control plane ([`controlplane`]), `deploy/` installed on it ([`deploy`]),
//! and the local cluster ([`localcluster`]): the control plane with the
//! operator, the process kubelet ([`kubelet`]) and a simulated Kubegres
//! ([`kubegres_sim`]); free ports ([`net`]) and waiting on a condition
//! ([`wait`]).

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
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
pub mod net;
pub mod pg;
pub mod s3;
pub mod wait;
