//! The kubegres-restore agent: streams a PostgreSQL dump from a file, S3 or
//! HTTP through decompression into PostgreSQL, reporting progress.
//!
//! Pipeline: [`dump`] opens the dump ([`source`] bytes, resumable, counted
//! and hashed by [`integrity`], then [`decompress`] and [`format`]
//! detection); [`restore`] plans the restore and runs it with an engine:
//! [`engine::native`] (tokio-postgres fed by the [`sql`] splitter) or
//! [`engine::pg_tools`] (pg_restore / psql) into the target ([`postgres`]).
//! [`inspect`] tells what a dump holds; [`progress`] observes it all.
//!
//! The modules below `restore` and `inspect` own their errors; [`Error`] is
//! where they become exit codes and reasons.

pub mod archive;
pub mod cli;
pub(crate) mod decompress;
pub(crate) mod dump;
pub(crate) mod engine;
mod error;
pub(crate) mod format;
pub mod inspect;
pub(crate) mod integrity;
pub(crate) mod postgres;
pub mod progress;
pub mod restore;
pub mod source;
pub(crate) mod sql;
pub mod status;

pub use error::Error;
