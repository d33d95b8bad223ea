//! Test harness for kubegres-restore: throwaway PostgreSQL clusters
//! ([`pg`]), database comparison ([`compare`]), fixtures ([`fixtures`]),
//! dumps in every format ([`dumps`]) and the agent binary ([`agent`]).

pub mod agent;
pub mod compare;
pub mod controlplane;
pub mod dumps;
pub mod fixtures;
pub mod http;
pub mod pg;
pub mod s3;
