//! The kubegres-restore agent: streams a PostgreSQL dump from a file, S3 or
//! HTTP through decompression into PostgreSQL, reporting progress.
//!
//! Pipeline: [`source`] (bytes, resumable) -> [`integrity`] (counts and hashes
//! the stored bytes) -> [`decompress`] -> [`format`] detection -> an engine:
//! [`engine::native`] (tokio-postgres fed by the [`sql`] splitter) or
//! [`engine::pg_tools`] (pg_restore / psql). [`progress`] observes it all.

pub mod archive;
pub mod cli;
pub mod decompress;
pub mod engine;
pub mod error;
pub mod format;
pub mod inspect;
pub mod integrity;
pub mod progress;
pub mod restore;
pub mod source;
pub mod sql;
pub mod status;
pub mod target;

pub use error::Error;
