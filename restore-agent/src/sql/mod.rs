//! Streaming splitter for psql scripts written by pg_dump and pg_dumpall.
//!
//! [`Splitter`] turns a plain-format dump into [`Event`]s (statements, COPY
//! blocks, `\connect`, object headers, the "dump complete" trailer) with the
//! lexing rules of psql, in bounded memory.

mod comment;
mod copy;
mod lexer;
mod meta;
mod splitter;
#[cfg(test)]
mod tests;

pub use splitter::{Event, SplitError, Splitter};
