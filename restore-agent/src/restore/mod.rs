//! `restore-agent restore`: checks the command line, opens the dump
//! ([`crate::dump`]: source, counting and hashing, decompression, format),
//! decides the [`plan`] (pure: engine, target database, transaction,
//! `--create-database`, emptiness check) and hands it to the one
//! [`execute`]or. The verdict on the stream as a whole (checksum, trailer)
//! is given to the engine before it commits, never after.

mod execute;
mod plan;

use std::sync::Arc;

use crate::cli::RestoreArgs;
use crate::dump::{self, Opened, ReadOptions};
use crate::error::Error;
use crate::format;
use crate::integrity::ByteCounter;
use crate::postgres::TargetConfig;
use crate::progress::{Outcome, ProgressSink, Reporter, Summary, Tracker};
use crate::source::SourceLocation;
use plan::Detected;

/// Runs a whole restore and reports its outcome to the sinks, failures
/// before the source is even open included.
pub async fn run(args: &RestoreArgs, sinks: Vec<Box<dyn ProgressSink>>) -> Result<Summary, Error> {
    let counter = Arc::new(ByteCounter::default());
    let tracker = Tracker::new(counter.clone(), None);
    let reporter = Reporter::start(tracker.clone(), sinks);
    let result = run_tracked(args, counter, tracker).await;
    reporter.finish(outcome(&result)).await;
    result
}

async fn run_tracked(args: &RestoreArgs, counter: Arc<ByteCounter>, tracker: Arc<Tracker>) -> Result<Summary, Error> {
    let target = TargetConfig::from_url_and_env(args.target.as_deref(), &|k| std::env::var(k).ok())?;
    let location = SourceLocation::parse(&args.source.source)?;
    let source_options = args.source.options()?;
    plan::check_args(args, &target)?;
    let read = ReadOptions { compression: args.compression, format: args.format, hash: args.sha256.is_some() };
    let opened = dump::open(&location, &source_options, read, counter, tracker.clone()).await?;
    let detected = match &opened {
        Opened::Stream(stream) => {
            tracing::info!(source = stream.display.as_str(), size = ?stream.size, "reading");
            Detected::Stream {
                format: stream.format,
                compression: stream.compression,
                multi_database: format::is_multi_database(stream.format, &stream.head),
            }
        }
        Opened::Directory(dir) => {
            tracing::info!(source = dir.display.as_str(), "reading a directory-format dump");
            Detected::Directory
        }
    };
    let plan = plan::plan(args, detected, target)?;
    execute::execute(&plan, opened, &tracker).await
}

fn outcome(result: &Result<Summary, Error>) -> Outcome {
    match result {
        Ok(s) => Outcome::Completed(s.clone()),
        Err(e) => Outcome::Failed(e.to_failure()),
    }
}
