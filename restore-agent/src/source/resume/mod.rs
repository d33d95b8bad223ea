//! A resumable reader shared by the HTTP and S3 sources.
//!
//! A [`RangeOpen`] opens the object from a byte offset (offset 0: the whole
//! object; otherwise a Range request whose answer the opener checks). The
//! reader built by [`open_resumable`] streams the body; when the connection
//! drops, the body ends before the announced size, or no byte arrives for the
//! idle timeout, it reopens from the byte where it stopped. Transient
//! failures wait with exponential backoff and jitter (backon) between
//! attempts; the attempt count starts again once bytes flow. Errors reach the
//! caller as `io::Error`s wrapping [`super::SourceIoError`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_util::io::StreamReader;

use super::{SourceError, SourceOptions, SourceReader};

/// A body: chunks of bytes, or the error that ended it.
pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, SourceError>> + Send>>;

/// A response body opened at some offset.
pub(crate) struct RangeBody {
    /// The bytes from the requested offset on.
    pub body: ChunkStream,
    /// The size of the whole object, when the server said.
    pub total: Option<u64>,
}

/// Opens an object from a byte offset.
pub(crate) trait RangeOpen: Send + Sync + 'static {
    /// Offset 0 fetches the whole object. A later offset must yield exactly
    /// the bytes from that offset on (the opener checks the 206 status and
    /// Content-Range, and that the object did not change), else it fails with
    /// [`SourceError::RangeNotHonoured`] or [`SourceError::Changed`].
    fn open(&self, offset: u64) -> impl Future<Output = Result<RangeBody, SourceError>> + Send;
}

/// Retry and timeout settings, from [`SourceOptions`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub idle_timeout: Duration,
}

impl Policy {
    pub fn from_options(opts: &SourceOptions) -> Policy {
        Policy {
            attempts: opts.retry.attempts.max(1),
            base_delay: opts.retry.base_delay,
            max_delay: opts.retry.max_delay.max(opts.retry.base_delay),
            idle_timeout: opts.idle_timeout,
        }
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .build()
    }
}

/// Counts attempts and hands out backoff delays.
struct Retrier {
    policy: Policy,
    backoff: ExponentialBackoff,
    attempts: u32,
}

impl Retrier {
    fn new(policy: Policy) -> Retrier {
        Retrier { policy, backoff: policy.backoff(), attempts: 1 }
    }

    /// Bytes flowed: the next failure starts a fresh count.
    fn progressed(&mut self) {
        if self.attempts > 1 {
            *self = Retrier::new(self.policy);
        }
    }

    /// After failure `e` of `what`: waits and returns `Ok` when another
    /// attempt is allowed, or the error to report.
    async fn after_failure(&mut self, what: &str, e: SourceError) -> Result<(), SourceError> {
        if !e.is_transient() {
            return Err(e);
        }
        match self.backoff.next() {
            Some(delay) => {
                tracing::warn!(
                    source = what,
                    attempt = self.attempts,
                    of = self.policy.attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %e,
                    "source attempt failed; retrying"
                );
                tokio::time::sleep(delay).await;
                self.attempts += 1;
                Ok(())
            }
            None if self.attempts > 1 => Err(SourceError::GaveUp { attempts: self.attempts, last: Box::new(e) }),
            None => Err(e),
        }
    }
}

/// Opens at `offset`, retrying transient failures, each attempt bounded by the idle timeout.
async fn open_with_retries<O: RangeOpen>(
    opener: &O,
    offset: u64,
    what: &str,
    retrier: &mut Retrier,
) -> Result<RangeBody, SourceError> {
    loop {
        let idle = retrier.policy.idle_timeout;
        let res = match tokio::time::timeout(idle, opener.open(offset)).await {
            Ok(res) => res,
            Err(_) => {
                Err(SourceError::Timeout { what: what.to_string(), stage: "waiting for the response", after: idle })
            }
        };
        match res {
            Ok(body) => return Ok(body),
            Err(e) => retrier.after_failure(what, e).await?,
        }
    }
}

/// Runs a request (a listing, a HEAD) with the same retries and timeout as opening a stream.
pub(crate) async fn with_retries<T, F, Fut>(policy: Policy, what: &str, mut request: F) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    let mut retrier = Retrier::new(policy);
    loop {
        let idle = policy.idle_timeout;
        let res = match tokio::time::timeout(idle, request()).await {
            Ok(res) => res,
            Err(_) => {
                Err(SourceError::Timeout { what: what.to_string(), stage: "waiting for the response", after: idle })
            }
        };
        match res {
            Ok(v) => return Ok(v),
            Err(e) => retrier.after_failure(what, e).await?,
        }
    }
}

/// Opens `opener` from its start (retrying transient failures) and returns
/// the resumable reader and the object's size when known.
pub(crate) async fn open_resumable<O: RangeOpen>(
    opener: O,
    what: String,
    policy: Policy,
) -> Result<(SourceReader, Option<u64>), SourceError> {
    let mut retrier = Retrier::new(policy);
    let first = open_with_retries(&opener, 0, &what, &mut retrier).await?;
    let total = first.total;
    let state = State { opener, what, retrier, offset: 0, total, body: Some(first.body), done: false };
    let stream = futures::stream::unfold(state, next_chunk);
    Ok((Box::pin(StreamReader::new(stream)), total))
}

struct State<O> {
    opener: O,
    what: String,
    retrier: Retrier,
    offset: u64,
    total: Option<u64>,
    body: Option<ChunkStream>,
    done: bool,
}

impl<O> State<O> {
    fn fail(mut self, e: SourceError) -> Option<(io::Result<Bytes>, State<O>)> {
        self.done = true;
        self.body = None;
        Some((Err(e.into_io()), self))
    }
}

async fn next_chunk<O: RangeOpen>(mut st: State<O>) -> Option<(io::Result<Bytes>, State<O>)> {
    loop {
        if st.done {
            return None;
        }
        let Some(body) = st.body.as_mut() else {
            tracing::info!(source = %st.what, offset = st.offset, "resuming the source with a Range request");
            match open_with_retries(&st.opener, st.offset, &st.what, &mut st.retrier).await {
                Ok(resumed) => {
                    if let (Some(before), Some(now)) = (st.total, resumed.total.filter(|now| Some(*now) != st.total)) {
                        let detail = format!("its size was {before} bytes and is now {now}");
                        let e = SourceError::Changed { what: st.what.clone(), detail };
                        return st.fail(e);
                    }
                    st.total = st.total.or(resumed.total);
                    st.body = Some(resumed.body);
                    continue;
                }
                Err(e) => return st.fail(e),
            }
        };
        let idle = st.retrier.policy.idle_timeout;
        let failure = match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                if chunk.is_empty() {
                    continue;
                }
                st.offset += chunk.len() as u64;
                if let Some(total) = st.total.filter(|total| st.offset > *total) {
                    let detail = format!("the server sent more than the {total} bytes it announced");
                    let e = SourceError::Changed { what: st.what.clone(), detail };
                    return st.fail(e);
                }
                st.retrier.progressed();
                return Some((Ok(chunk), st));
            }
            Ok(None) => match st.total {
                Some(total) if st.offset < total => SourceError::Network {
                    what: st.what.clone(),
                    detail: format!("the body ended after {} of {total} bytes", st.offset),
                },
                _ => {
                    st.done = true;
                    return None;
                }
            },
            Ok(Some(Err(e))) => e,
            Err(_) => SourceError::Timeout { what: st.what.clone(), stage: "reading the body", after: idle },
        };
        st.body = None;
        if let Err(e) = st.retrier.after_failure(&st.what, failure).await {
            return st.fail(e);
        }
    }
}

/// Downloads a whole object to `dest` (resuming like a stream), for staging
/// directory-format dumps. Returns the number of bytes written.
pub(crate) async fn download<O: RangeOpen>(
    opener: O,
    what: String,
    policy: Policy,
    dest: &std::path::Path,
) -> Result<u64, SourceError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut reader, _) = open_resumable(opener, what.clone(), policy).await?;
    let staging = |e: io::Error| SourceError::Staging { what: what.clone(), source: e };
    let mut file = tokio::fs::File::create(dest).await.map_err(staging)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| SourceError::from_stream_io(&what, e))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).await.map_err(staging)?;
        written += n as u64;
    }
    file.flush().await.map_err(staging)?;
    Ok(written)
}

/// The start and total of a `Content-Range: bytes START-END/TOTAL` header
/// (TOTAL may be `*`).
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// Checks a ranged answer's `Content-Range` against the requested offset.
pub(crate) fn check_range(what: &str, offset: u64, content_range: Option<&str>) -> Result<Option<u64>, SourceError> {
    let Some(value) = content_range else {
        return Err(SourceError::RangeNotHonoured {
            what: what.to_string(),
            detail: format!("asked for bytes {offset}- and the partial answer has no Content-Range"),
        });
    };
    match parse_content_range(value) {
        Some((start, total)) if start == offset => Ok(total),
        Some((start, _)) => Err(SourceError::RangeNotHonoured {
            what: what.to_string(),
            detail: format!("asked for bytes {offset}- and got bytes from {start} on"),
        }),
        None => Err(SourceError::RangeNotHonoured {
            what: what.to_string(),
            detail: format!("asked for bytes {offset}- and got an unreadable Content-Range {value:?}"),
        }),
    }
}

#[cfg(test)]
mod tests;
