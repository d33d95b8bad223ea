//! Why a source cannot be read.
//!
//! Every variant names the source by its display form (no credentials, no
//! query string) and holds only text that is safe to show: never a header
//! value, an S3 secret, or a library error whose text may include a URL.

use std::io;
use std::time::Duration;

/// A failure to find, open or read a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `--source` value (or a combination of options) makes no sense.
    #[error("invalid source: {0}")]
    Invalid(String),
    /// A source option cannot be used (bad header name, unreadable CA file, bad endpoint).
    #[error("invalid source option: {0}")]
    Options(String),
    /// The file, object, bucket or URL does not exist.
    #[error("{what} not found: {detail}")]
    NotFound { what: String, detail: String },
    /// Permission denied (file mode, S3 AccessDenied, bad credentials).
    #[error("access to {what} denied: {detail}")]
    AccessDenied { what: String, detail: String },
    /// An HTTP server answered with an error status.
    #[error("HTTP {status}{} from {url}", reason_phrase(*status))]
    Http { status: u16, url: String },
    /// An S3 error not covered by a more specific variant.
    #[error("S3 error for {what}: {code}{}{}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    S3 { what: String, status: Option<u16>, code: String, message: String },
    /// The connection failed or broke.
    #[error("network error reading {what}: {detail}")]
    Network { what: String, detail: String },
    /// TLS failed (untrusted certificate, handshake error): not retried.
    #[error("TLS error reaching {what}: {detail}")]
    Tls { what: String, detail: String },
    /// Nothing arrived for the idle timeout (connect, response headers, or body).
    #[error("{what}: {stage} timed out after {}", fmt_duration(*.after))]
    Timeout { what: String, stage: &'static str, after: Duration },
    /// A resume asked for a range and the server did not honour it.
    #[error("{what}: cannot resume: {detail}")]
    RangeNotHonoured { what: String, detail: String },
    /// The object changed between two requests (size or ETag), so resuming would mix two versions.
    #[error("{what} changed while it was being read: {detail}")]
    Changed { what: String, detail: String },
    /// A local I/O error.
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A remote directory dump cannot be written to local disk.
    #[error("cannot stage {what} on local disk: {source}")]
    Staging {
        what: String,
        #[source]
        source: io::Error,
    },
    /// No dump where one was expected (empty folder or prefix, a directory without toc.dat).
    #[error("no dump found in {what}: {detail}")]
    NoDump { what: String, detail: String },
    /// Something this source kind does not support.
    #[error("{0}")]
    Unsupported(String),
    /// Transient failures went on past the retry budget.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<SourceError>,
    },
}

impl SourceError {
    /// A short CamelCase category for status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Invalid(_) => "InvalidSource",
            SourceError::Options(_) => "InvalidSourceOptions",
            SourceError::NotFound { .. } => "SourceNotFound",
            SourceError::AccessDenied { .. } => "SourceAccessDenied",
            SourceError::Http { status: 404 | 410, .. } => "SourceNotFound",
            SourceError::Http { status: 401 | 403, .. } => "SourceAccessDenied",
            SourceError::Http { status, .. } if *status >= 500 => "SourceServerError",
            SourceError::Http { .. } => "SourceHttpError",
            SourceError::S3 { .. } => "SourceS3Error",
            SourceError::Network { .. } => "SourceNetworkError",
            SourceError::Tls { .. } => "SourceTlsError",
            SourceError::Timeout { .. } => "SourceTimeout",
            SourceError::RangeNotHonoured { .. } => "SourceRangeNotHonoured",
            SourceError::Changed { .. } => "SourceChanged",
            SourceError::Read { .. } => "SourceReadError",
            SourceError::Staging { .. } => "SourceStagingError",
            SourceError::NoDump { .. } => "NoDumpFound",
            SourceError::Unsupported(_) => "UnsupportedSource",
            SourceError::GaveUp { last, .. } => last.reason(),
        }
    }

    /// Whether another attempt may succeed: server errors, throttling,
    /// request timeouts, network errors and stalls.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Network { .. } | SourceError::Timeout { .. } => true,
            SourceError::Http { status, .. } => transient_status(*status),
            SourceError::S3 { status, code, .. } => {
                status.is_some_and(transient_status)
                    || matches!(
                        code.as_str(),
                        "InternalError"
                            | "ServiceUnavailable"
                            | "SlowDown"
                            | "RequestTimeout"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                    )
            }
            _ => false,
        }
    }

    /// The error as an `io::Error` for the stream: wrapped in
    /// [`SourceIoError`] so later stages tell it from a decoding error.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match &self {
            SourceError::Timeout { .. } => io::ErrorKind::TimedOut,
            SourceError::NotFound { .. } => io::ErrorKind::NotFound,
            SourceError::AccessDenied { .. } => io::ErrorKind::PermissionDenied,
            SourceError::Read { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, SourceIoError(self))
    }

    /// The source error inside an `io::Error` from a source stream, or a
    /// [`SourceError::Read`] for any other I/O error.
    pub(crate) fn from_stream_io(what: &str, e: io::Error) -> SourceError {
        match SourceIoError::take(e) {
            Ok(s) => s,
            Err(e) => SourceError::Read { what: what.to_string(), source: e },
        }
    }

    /// Maps a local I/O error about `what`.
    pub(crate) fn from_io(what: &str, e: io::Error) -> SourceError {
        match e.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound { what: what.to_string(), detail: e.to_string() },
            io::ErrorKind::PermissionDenied => {
                SourceError::AccessDenied { what: what.to_string(), detail: e.to_string() }
            }
            _ => SourceError::Read { what: what.to_string(), source: e },
        }
    }
}

/// A [`SourceError`] travelling as an `io::Error` through the readers above
/// the source (counting, hashing, decompression), marked so that they pass it
/// through unchanged and the pipeline can tell it from a decoding error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceIoError(pub SourceError);

impl SourceIoError {
    /// The source error inside `e`, or `e` itself when it carries none.
    pub fn take(e: io::Error) -> Result<SourceError, io::Error> {
        if !is_source_error(&e) {
            return Err(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<SourceIoError>()) {
            Some(Ok(s)) => Ok(s.0),
            // is_source_error said it is one.
            _ => Err(io::Error::from(kind)),
        }
    }
}

/// Whether `e` carries a [`SourceIoError`].
pub fn is_source_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SourceIoError>())
}

fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

fn reason_phrase(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(r) => format!(" {r}"),
        None => String::new(),
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// The text of an error and its sources, joined with ": ". Only for errors
/// whose text is known to be free of secrets (no URL: see the callers).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_reasons() {
        let e = SourceError::Http { status: 404, url: "https://h/x.gz".into() };
        assert_eq!(e.to_string(), "HTTP 404 Not Found from https://h/x.gz");
        assert_eq!(e.reason(), "SourceNotFound");
        assert!(!e.is_transient());
        let e = SourceError::Http { status: 403, url: "https://h/x.gz".into() };
        assert_eq!(e.reason(), "SourceAccessDenied");
        for s in [500, 502, 503, 408, 429] {
            assert!(SourceError::Http { status: s, url: String::new() }.is_transient(), "{s}");
        }
        let e = SourceError::S3 {
            what: "s3://b/k".into(),
            status: Some(503),
            code: "SlowDown".into(),
            message: "Please reduce your request rate.".into(),
        };
        assert_eq!(e.to_string(), "S3 error for s3://b/k: SlowDown (HTTP 503): Please reduce your request rate.");
        assert!(e.is_transient());
        let e = SourceError::Timeout {
            what: "http://h/x".into(),
            stage: "reading the body",
            after: Duration::from_millis(300),
        };
        assert_eq!(e.to_string(), "http://h/x: reading the body timed out after 300ms");
        let g = SourceError::GaveUp { attempts: 6, last: Box::new(e) };
        assert_eq!(g.to_string(), "http://h/x: reading the body timed out after 300ms (gave up after 6 attempts)");
        assert_eq!(g.reason(), "SourceTimeout");
        assert!(!g.is_transient());
    }

    #[test]
    fn io_wrapping_is_recognised() {
        let io = SourceError::Http { status: 500, url: "u".into() }.into_io();
        assert!(is_source_error(&io));
        let inner = io.into_inner().unwrap().downcast::<SourceIoError>().unwrap();
        assert_eq!(inner.0.reason(), "SourceServerError");
    }
}
