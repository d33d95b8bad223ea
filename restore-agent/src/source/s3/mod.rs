//! S3 sources through aws-sdk-s3, with an endpoint override for
//! S3-compatible servers.
//!
//! Credentials come from aws-config's default chain (the standard AWS
//! environment variables, profiles, web identity, ...) unless
//! [`S3Options::credentials`](super::S3Options::credentials) gives them. The
//! SDK's own retries and stalled-stream protection are off: the shared
//! resumable reader retries (with the configured attempts and backoff) and
//! resumes with `Range: bytes=N-` plus `If-Match` on the first ETag.
//!
//! - `s3://bucket/key` streams the object; if there is no such object but
//!   `key/toc.dat` exists, or the key ends with `/` and holds `toc.dat`, the
//!   directory-format dump is staged into a temporary directory.
//! - With `--pick latest` the key is a folder (a `/` is added when missing):
//!   its direct objects and its subfolders that are directory-format dumps
//!   are the candidates (see [`super::latest`]).

mod errors;

use std::sync::Mutex;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;

use self::errors::sdk_error;
use super::error::chain;
use super::latest::{self, Candidate};
use super::resume::{self, Policy, RangeBody, RangeOpen};
use super::{OpenedSource, Pick, Resolved, SourceError, SourceOptions};
use crate::archive::TOC_NAMES;

pub(super) async fn resolve(bucket: &str, key: &str, opts: &SourceOptions) -> Result<Resolved, SourceError> {
    let s3 = S3 { client: client(opts).await?, bucket: bucket.to_string(), policy: Policy::from_options(opts) };
    if opts.pick == Pick::Latest {
        let prefix = folder(key);
        if s3.toc_of(&prefix).await?.is_some() {
            return s3.stage_directory(&prefix).await;
        }
        return s3.pick_latest(&prefix).await;
    }
    if key.is_empty() || key.ends_with('/') {
        if s3.toc_of(key).await?.is_some() {
            return s3.stage_directory(key).await;
        }
        return Err(SourceError::NoDump {
            what: s3.url(key),
            detail: "it names a folder without toc.dat (not a directory-format dump); \
                     use --pick latest to take the newest dump in it"
                .into(),
        });
    }
    // A key that names a folder of a directory-format dump (one quick probe;
    // the NoSuchKey fallback below covers a probe that failed for another reason).
    if s3.probe_toc(&folder(key)).await {
        return s3.stage_directory(&folder(key)).await;
    }
    match s3.open(key).await {
        Ok(opened) => Ok(Resolved::Stream(opened)),
        Err(SourceError::NotFound { what, detail }) if detail.starts_with("NoSuchKey") => {
            let prefix = folder(key);
            if s3.toc_of(&prefix).await?.is_some() {
                s3.stage_directory(&prefix).await
            } else {
                Err(SourceError::NotFound { what, detail })
            }
        }
        Err(e) => Err(e),
    }
}

/// `key` as a folder prefix: empty, or ending with `/`.
fn folder(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") }
}

/// Builds the client: region, endpoint, path style, credentials; SDK retries off.
async fn client(opts: &SourceOptions) -> Result<aws_sdk_s3::Client, SourceError> {
    let s3 = &opts.s3;
    let region = match &s3.region {
        Some(r) => RegionProviderChain::first_try(Region::new(r.clone())),
        None => RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1")),
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(c) = &s3.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "kubegres-restore-options",
        ));
    }
    let sdk = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(opts.idle_timeout).build())
        .force_path_style(s3.path_style);
    if let Some(endpoint) = &s3.endpoint {
        let url = url::Url::parse(endpoint)
            .map_err(|e| SourceError::Options(format!("the S3 endpoint is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SourceError::Options(format!(
                "the S3 endpoint {} must be an http:// or https:// URL",
                super::redact_url(&url)
            )));
        }
        builder = builder.endpoint_url(endpoint.trim_end_matches('/'));
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}

/// A bucket and how to talk to it.
struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    policy: Policy,
}

/// An object of a listing.
struct Listed {
    key: String,
    size: u64,
    modified: Option<SystemTime>,
}

impl S3 {
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn opener(&self, key: &str) -> S3Opener {
        S3Opener {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            what: self.url(key),
            etag: Mutex::new(None),
        }
    }

    async fn open(&self, key: &str) -> Result<OpenedSource, SourceError> {
        let opener = self.opener(key);
        let display = opener.what.clone();
        let (reader, size) = resume::open_resumable(opener, display.clone(), self.policy).await?;
        Ok(OpenedSource { reader, size, display })
    }

    /// Whether `prefix` holds a `toc.dat`: one HEAD, no retries, any error means no.
    async fn probe_toc(&self, prefix: &str) -> bool {
        let key = format!("{prefix}toc.dat");
        let head = self.client.head_object().bucket(&self.bucket).key(&key).send();
        matches!(tokio::time::timeout(self.policy.idle_timeout, head).await, Ok(Ok(_)))
    }

    /// The modification time of the toc under `prefix` (a folder), if it is a directory-format dump.
    async fn toc_of(&self, prefix: &str) -> Result<Option<Option<SystemTime>>, SourceError> {
        for name in TOC_NAMES {
            let key = format!("{prefix}{name}");
            let what = self.url(&key);
            let head = resume::with_retries(self.policy, &what, || async {
                self.client.head_object().bucket(&self.bucket).key(&key).send().await.map_err(|e| sdk_error(&what, e))
            })
            .await;
            match head {
                Ok(out) => {
                    return Ok(Some(out.last_modified().and_then(|t| SystemTime::try_from(*t).ok())));
                }
                // Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key.
                Err(SourceError::NotFound { detail, .. }) if !detail.starts_with("NoSuchBucket") => {
                    continue;
                }
                Err(SourceError::AccessDenied { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Objects and subfolders directly under `prefix` (or every object under it when `recursive`).
    async fn list(&self, prefix: &str, recursive: bool) -> Result<(Vec<Listed>, Vec<String>), SourceError> {
        let what = self.url(prefix);
        let mut objects = Vec::new();
        let mut folders = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = resume::with_retries(self.policy, &what, || async {
                let mut req = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix);
                if !recursive {
                    req = req.delimiter("/");
                }
                if let Some(t) = &token {
                    req = req.continuation_token(t);
                }
                req.send().await.map_err(|e| sdk_error(&what, e))
            })
            .await?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                objects.push(Listed {
                    key: key.to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    modified: o.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                });
            }
            folders.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_string)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok((objects, folders))
    }

    /// The newest dump directly under `prefix` (see [`latest`]).
    async fn pick_latest(&self, prefix: &str) -> Result<Resolved, SourceError> {
        let (objects, folders) = self.list(prefix, false).await?;
        let mut candidates = Vec::new();
        let mut keys = Vec::new();
        for o in objects {
            let name = &o.key[prefix.len()..];
            // The folder's own marker object and other zero-byte "folders".
            if name.is_empty() || name.ends_with('/') || latest::is_hidden(name) {
                continue;
            }
            candidates.push(Candidate { name: name.to_string(), modified: o.modified });
            keys.push((o.key, false));
        }
        for f in folders {
            let name = f[prefix.len()..].trim_end_matches('/');
            if name.is_empty() || latest::is_hidden(name) {
                continue;
            }
            if let Some(modified) = self.toc_of(&f).await? {
                candidates.push(Candidate { name: name.to_string(), modified });
                keys.push((f, true));
            }
        }
        let Some(i) = latest::pick_latest(&candidates) else {
            return Err(SourceError::NoDump {
                what: self.url(prefix),
                detail: "the prefix holds no objects (hidden names and folders without toc.dat are ignored)".into(),
            });
        };
        let (key, is_dir) = keys.swap_remove(i);
        tracing::info!(prefix = %self.url(prefix), picked = %self.url(&key), "picked the latest dump");
        if is_dir { self.stage_directory(&key).await } else { self.open(&key).await.map(Resolved::Stream) }
    }

    /// Downloads the files of the directory-format dump under `prefix` into a temporary directory.
    async fn stage_directory(&self, prefix: &str) -> Result<Resolved, SourceError> {
        let display = self.url(prefix);
        let staging = tempfile::Builder::new()
            .prefix("kubegres-restore-")
            .tempdir()
            .map_err(|e| SourceError::Staging { what: display.clone(), source: e })?;
        let dir = staging.path().to_path_buf();
        tracing::info!(source = %self.url(prefix), staging = %dir.display(), "staging a directory-format dump");
        let (objects, _) = self.list(prefix, false).await?;
        let mut size = 0;
        for o in objects {
            let name = &o.key[prefix.len()..];
            if name.is_empty() || name.contains('/') || latest::is_hidden(name) {
                continue;
            }
            let opener = self.opener(&o.key);
            let what = opener.what.clone();
            let written = resume::download(opener, what.clone(), self.policy, &dir.join(name)).await?;
            if written != o.size {
                return Err(SourceError::Changed {
                    what,
                    detail: format!("the listing said {} bytes and the download gave {written}", o.size),
                });
            }
            size += written;
        }
        Ok(Resolved::Directory { path: dir, display, size: Some(size), staging: Some(staging) })
    }
}

/// Opens one object from an offset.
struct S3Opener {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    what: String,
    /// The first answer's ETag, required (If-Match) on resumes.
    etag: Mutex<Option<String>>,
}

impl RangeOpen for S3Opener {
    async fn open(&self, offset: u64) -> Result<RangeBody, SourceError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(&self.key);
        if offset > 0 {
            req = req.range(format!("bytes={offset}-"));
            if let Some(etag) = self.etag.lock().ok().and_then(|e| e.clone()) {
                req = req.if_match(etag);
            }
        }
        let out = req.send().await.map_err(|e| sdk_error(&self.what, e))?;
        let total = if offset == 0 {
            if let Ok(mut e) = self.etag.lock() {
                *e = out.e_tag().map(str::to_string);
            }
            out.content_length().and_then(|l| u64::try_from(l).ok())
        } else {
            resume::check_range(&self.what, offset, out.content_range())?
        };
        let what = self.what.clone();
        let body = futures::stream::unfold(Some(out.body), move |bs: Option<ByteStream>| {
            let what = what.clone();
            async move {
                let mut bs = bs?;
                match bs.next().await {
                    Some(Ok(chunk)) => Some((Ok(chunk), Some(bs))),
                    Some(Err(e)) => Some((Err(SourceError::Network { what, detail: chain(&e) }), None)),
                    None => None,
                }
            }
        })
        .boxed();
        Ok(RangeBody { body, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders() {
        assert_eq!(folder(""), "");
        assert_eq!(folder("a"), "a/");
        assert_eq!(folder("a/b/"), "a/b/");
    }
}
