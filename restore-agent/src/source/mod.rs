//! Where a dump's bytes come from, and how they are streamed.
//!
//! A `--source` is a local path (or `file://` URL), an `s3://bucket/key`, or
//! an `http(s)://` URL ([`SourceLocation::parse`]). [`resolve`] turns it into
//! either a byte stream ([`Resolved::Stream`]) or, for a pg_dump
//! directory-format dump, a directory on local disk ([`Resolved::Directory`];
//! remote directory dumps are staged into a temporary directory, the only
//! case where bytes land on local disk).
//!
//! Remote streams are resumable ([`resume`]): a connection that drops or
//! stalls mid-body is reopened with a Range request from the byte where it
//! stopped, transient failures (5xx, 408, 429, connect errors, timeouts) are
//! retried with exponential backoff and jitter, and everything else fails at
//! once. Errors raised while reading are `std::io::Error`s wrapping
//! [`SourceIoError`].
//!
//! Nothing here ever logs or prints HTTP header values, S3 secrets or URL
//! query strings: every message names the source by its [`display`] form.
//!
//! `--pick latest` rules live in [`latest`].

mod error;
mod file;
mod http;
pub mod latest;
mod resume;
mod s3;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncRead;

pub use error::{SourceError, SourceIoError, is_source_error};

/// A byte stream from a source.
pub type SourceReader = Pin<Box<dyn AsyncRead + Send>>;

/// Where a dump lives, as given by `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLocation {
    /// A local file or directory (also from a `file://` URL).
    File(PathBuf),
    /// An object, or with [`Pick::Latest`] a prefix, in an S3 bucket. The key
    /// is taken verbatim (no percent-decoding) and may be empty.
    S3 { bucket: String, key: String },
    /// An `http` or `https` URL.
    Http(url::Url),
}

impl SourceLocation {
    /// Parses a `--source` value: a local path, `file://`, `s3://bucket/key`
    /// or `http(s)://` URL. Any other scheme is an [`SourceError::Invalid`].
    /// Error messages never repeat the value (it may carry credentials).
    pub fn parse(s: &str) -> Result<SourceLocation, SourceError> {
        if s.is_empty() {
            return Err(SourceError::Invalid("the source is empty".into()));
        }
        let Some((scheme, rest)) = split_scheme(s) else {
            return Ok(SourceLocation::File(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let url = url::Url::parse(s)
                    .map_err(|e| SourceError::Invalid(format!("the file:// URL cannot be parsed: {e}")))?;
                let path = url.to_file_path().map_err(|()| {
                    SourceError::Invalid(
                        "the file:// URL does not name a local absolute path (use file:///path or file://localhost/path)"
                            .into(),
                    )
                })?;
                Ok(SourceLocation::File(path))
            }
            "s3" => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(SourceError::Invalid("the s3:// URL names no bucket (use s3://bucket/key)".into()));
                }
                if bucket.contains(['@', '?', '#', ':']) || bucket.chars().any(char::is_whitespace) {
                    return Err(SourceError::Invalid(
                        "the s3:// URL has an invalid bucket name (use s3://bucket/key; credentials come from the AWS environment)"
                            .into(),
                    ));
                }
                Ok(SourceLocation::S3 { bucket: bucket.to_string(), key: key.to_string() })
            }
            "http" | "https" => {
                let url = url::Url::parse(s)
                    .map_err(|e| SourceError::Invalid(format!("the {scheme}:// URL cannot be parsed: {e}")))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(SourceError::Invalid(format!("the {scheme}:// URL names no host")));
                }
                Ok(SourceLocation::Http(url))
            }
            _ => Err(SourceError::Invalid(format!(
                "unsupported source scheme {scheme}:// (use a local path, file://, s3:// or http(s)://)"
            ))),
        }
    }

    /// What to show a person: the path, `s3://bucket/key`, or the URL
    /// without user name, password, query string or fragment.
    pub fn display(&self) -> String {
        match self {
            SourceLocation::File(p) => p.display().to_string(),
            SourceLocation::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            SourceLocation::Http(url) => redact_url(url),
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// `scheme` and the rest when `s` starts with `scheme://` (an RFC 3986 scheme).
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).then_some((scheme, rest))
}

/// `url` without credentials, query string or fragment.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    // Both only fail for URLs that cannot have credentials at all.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Which object to take when the source names a folder or prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pick {
    /// The source names the dump itself.
    #[default]
    Exact,
    /// The newest dump under a folder or prefix (see [`latest`]).
    Latest,
}

/// How to reach S3.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server (`--s3-endpoint`); AWS when unset.
    pub endpoint: Option<String>,
    /// Region; when unset, the AWS default chain (AWS_REGION, profile), else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Explicit credentials; when unset, aws-config's default chain (the
    /// standard AWS environment variables, profiles, web identity, ...).
    pub credentials: Option<S3Credentials>,
}

/// A static S3 key pair. Its Debug output hides the secret and the token.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How to reach HTTP(S) servers.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// Extra request headers (e.g. Authorization), never logged.
    pub headers: Vec<(String, String)>,
    /// Extra CA certificate (PEM) to trust, on top of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpOptions").field("header_names", &names).field("ca_file", &self.ca_file).finish()
    }
}

/// Retries of transient failures (5xx, 408, 429, connect errors, timeouts,
/// dropped or stalled bodies): exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts in all, the first one included, before giving up. The count
    /// starts again whenever a resumed body delivers bytes.
    pub attempts: u32,
    /// The first delay; each next one doubles, plus a random jitter of up to itself.
    pub base_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions { attempts: 6, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(10) }
    }
}

/// Default for [`SourceOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything [`resolve`] needs besides the location.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub pick: Pick,
    pub s3: S3Options,
    pub http: HttpOptions,
    pub retry: RetryOptions,
    /// How long a connection, a response's headers or the next bytes of a
    /// body may keep us waiting before the attempt counts as failed (and is
    /// retried or resumed).
    pub idle_timeout: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            pick: Pick::default(),
            s3: S3Options::default(),
            http: HttpOptions::default(),
            retry: RetryOptions::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// An opened stream and what is known about it.
pub struct OpenedSource {
    pub reader: SourceReader,
    /// Size in bytes (file size, Content-Length, object size) when known.
    pub size: Option<u64>,
    /// What to show a person: path or URL without credentials or query string.
    pub display: String,
}

/// What a source resolves to.
pub enum Resolved {
    /// A single stream (a file, an object, a URL).
    Stream(OpenedSource),
    /// A directory-format dump on local disk (staged into `staging` when remote;
    /// the directory lives as long as `staging`). `size` is the sum of its files.
    Directory { path: PathBuf, display: String, size: Option<u64>, staging: Option<tempfile::TempDir> },
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Stream(s) => {
                f.debug_struct("Stream").field("display", &s.display).field("size", &s.size).finish_non_exhaustive()
            }
            Resolved::Directory { path, display, size, staging } => f
                .debug_struct("Directory")
                .field("path", path)
                .field("display", display)
                .field("size", size)
                .field("staged", &staging.is_some())
                .finish(),
        }
    }
}

/// Opens the source: a stream, or a directory-format dump (staged when remote).
/// With [`Pick::Latest`] a local directory or an S3 prefix is first narrowed
/// to its newest dump.
pub async fn resolve(loc: &SourceLocation, opts: &SourceOptions) -> Result<Resolved, SourceError> {
    match loc {
        SourceLocation::File(path) => file::resolve(path, opts).await,
        SourceLocation::S3 { bucket, key } => s3::resolve(bucket, key, opts).await,
        SourceLocation::Http(url) => http::resolve(url, opts).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_file_urls() {
        assert_eq!(SourceLocation::parse("/backups/x.gz").unwrap(), SourceLocation::File("/backups/x.gz".into()));
        assert_eq!(SourceLocation::parse("rel/dir").unwrap(), SourceLocation::File("rel/dir".into()));
        assert_eq!(SourceLocation::parse("a:b").unwrap(), SourceLocation::File("a:b".into()));
        assert_eq!(
            SourceLocation::parse("file:///var/lib/backup/my%20db.gz").unwrap(),
            SourceLocation::File("/var/lib/backup/my db.gz".into())
        );
        assert_eq!(SourceLocation::parse("FILE://localhost/tmp/x").unwrap(), SourceLocation::File("/tmp/x".into()));
        let e = SourceLocation::parse("file://otherhost/tmp/x").unwrap_err();
        assert_eq!(e.reason(), "InvalidSource");
        assert_eq!(SourceLocation::parse("").unwrap_err().reason(), "InvalidSource");
    }

    #[test]
    fn parses_s3_verbatim() {
        assert_eq!(
            SourceLocation::parse("s3://bkt/dir/my file+1.gz").unwrap(),
            SourceLocation::S3 { bucket: "bkt".into(), key: "dir/my file+1.gz".into() }
        );
        assert_eq!(
            SourceLocation::parse("s3://bkt").unwrap(),
            SourceLocation::S3 { bucket: "bkt".into(), key: "".into() }
        );
        assert_eq!(
            SourceLocation::parse("S3://bkt/").unwrap(),
            SourceLocation::S3 { bucket: "bkt".into(), key: "".into() }
        );
        assert_eq!(SourceLocation::parse("s3:///key").unwrap_err().reason(), "InvalidSource");
        let e = SourceLocation::parse("s3://AKIA:secret@bkt/key").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn parses_http_and_refuses_other_schemes() {
        let loc = SourceLocation::parse("https://example.com/d/x.gz?X-Amz-Signature=abc").unwrap();
        assert!(matches!(loc, SourceLocation::Http(ref u) if u.path() == "/d/x.gz"));
        let e = SourceLocation::parse("ftp://user:pw@host/x.gz").unwrap_err();
        assert_eq!(e.reason(), "InvalidSource");
        assert_eq!(
            e.to_string(),
            "invalid source: unsupported source scheme ftp:// (use a local path, file://, s3:// or http(s)://)"
        );
        assert!(!format!("{e:?}").contains("pw"));
        let e = SourceLocation::parse("http://[::1/x").unwrap_err();
        assert_eq!(e.reason(), "InvalidSource");
    }

    #[test]
    fn display_hides_credentials_and_query() {
        let loc =
            SourceLocation::parse("https://user:pa55@example.com:8443/d/x.gz?X-Amz-Signature=abc&t=1#frag").unwrap();
        assert_eq!(loc.display(), "https://example.com:8443/d/x.gz");
        assert_eq!(loc.to_string(), "https://example.com:8443/d/x.gz");
        let loc = SourceLocation::parse("s3://b/k/x.gz").unwrap();
        assert_eq!(loc.display(), "s3://b/k/x.gz");
        assert_eq!(SourceLocation::parse("/a/b").unwrap().display(), "/a/b");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let opts = SourceOptions {
            s3: S3Options {
                credentials: Some(S3Credentials {
                    access_key_id: "AKIDEXAMPLE".into(),
                    secret_access_key: "s3cr3t-key".into(),
                    session_token: Some("t0ken".into()),
                }),
                ..Default::default()
            },
            http: HttpOptions { headers: vec![("Authorization".into(), "Bearer hunter2".into())], ca_file: None },
            ..Default::default()
        };
        let dbg = format!("{opts:?}");
        assert!(dbg.contains("Authorization"), "{dbg}");
        for secret in ["s3cr3t-key", "t0ken", "hunter2"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn defaults() {
        let o = SourceOptions::default();
        assert_eq!(o.idle_timeout, Duration::from_secs(60));
        assert_eq!(o.retry.attempts, 6);
        assert_eq!(o.retry.base_delay, Duration::from_millis(200));
        assert_eq!(o.retry.max_delay, Duration::from_secs(10));
        assert_eq!(o.pick, Pick::Exact);
    }
}
