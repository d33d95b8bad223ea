//! The restore agent against real components: its sources (files, a real S3
//! server, real HTTP servers), every dump format and compression restored
//! into a real PostgreSQL, remote restores with progress, `inspect`,
//! `--create-database`, bad inputs, and its status reports on a real
//! kube-apiserver.
//!
//! - `sources`: `restore_agent::source::resolve` and reading to the end;
//! - `formats`: every format and compression, compared row by row;
//! - `remote`: the agent binary restoring from S3 and HTTP, with progress;
//! - `inspect`: `restore-agent inspect` on real dumps;
//! - `create_database`: `restore --create-database` and its marker;
//! - `bad_inputs`: one clear error and an untouched target per bad input;
//! - `status`: status reports through the status subresource.
//!
//! Each module shares its own clusters between its tests.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_inputs;
mod create_database;
mod formats;
mod inspect;
mod remote;
mod sources;
mod status;
