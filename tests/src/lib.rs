//! Test harness for kubegres-restore: throwaway PostgreSQL clusters
//! ([`pg`]), database comparison ([`compare`]), fixtures ([`fixtures`]),
//! dumps in every format ([`dumps`]), the agent binary ([`agent`]), a real
//! control plane ([`controlplane`]) and `deploy/` installed on it ([`deploy`]).

pub mod agent;
pub mod compare;
pub mod controlplane;
pub mod deploy;
pub mod dumps;
pub mod fixtures;
pub mod http;
pub mod pg;
pub mod s3;
