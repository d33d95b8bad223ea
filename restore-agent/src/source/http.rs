//! HTTP(S) sources through reqwest (rustls).
//!
//! The first request is a plain GET; a resume sends `Range: bytes=N-` (and
//! `If-Range` with the first answer's strong ETag or Last-Modified) and
//! accepts only a 206 whose Content-Range starts at N. Header values given in
//! [`HttpOptions`](super::HttpOptions) are marked sensitive and never logged;
//! messages name the URL without credentials or query string.
//!
//! A URL whose path ends with `/` or `/toc.dat` names a directory-format
//! dump: toc.dat and then the files it lists are staged into a temporary
//! directory (each with the original URL's query string, so a token in it
//! keeps working).

use std::path::Path;
use std::sync::Mutex;

use futures::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::error::chain;
use super::resume::{self, Policy, RangeBody, RangeOpen};
use super::{OpenedSource, Pick, Resolved, SourceError, SourceOptions, redact_url};

pub(super) async fn resolve(url: &Url, opts: &SourceOptions) -> Result<Resolved, SourceError> {
    if opts.pick == Pick::Latest {
        return Err(SourceError::Unsupported(
            "--pick latest needs a local folder or an S3 prefix: an HTTP URL cannot be listed".into(),
        ));
    }
    let client = Client::new(opts)?;
    let policy = Policy::from_options(opts);
    let path = url.path();
    if path.ends_with('/') || path.ends_with("/toc.dat") {
        return stage_directory(&client, url, policy).await;
    }
    let display = redact_url(url);
    let opener = client.opener(url.clone());
    let (reader, size) = resume::open_resumable(opener, display.clone(), policy).await?;
    Ok(Resolved::Stream(OpenedSource { reader, size, display }))
}

/// A reqwest client with the user's headers.
#[derive(Clone)]
struct Client {
    client: reqwest::Client,
    headers: HeaderMap,
}

impl Client {
    fn new(opts: &SourceOptions) -> Result<Client, SourceError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &opts.http.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| SourceError::Options(format!("{name:?} is not a valid HTTP header name")))?;
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| SourceError::Options(format!("the value given for HTTP header {name} is not valid")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("kubegres-restore-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.idle_timeout);
        if let Some(ca) = &opts.http.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| SourceError::Options(format!("cannot read the CA file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SourceError::Options(format!(
                    "the CA file {} holds no usable PEM certificate: {}",
                    ca.display(),
                    chain(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(SourceError::Options(format!("the CA file {} holds no PEM certificate", ca.display())));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| SourceError::Options(format!("cannot set up the HTTP client: {}", chain(&e.without_url()))))?;
        Ok(Client { client, headers })
    }

    fn opener(&self, url: Url) -> HttpOpener {
        HttpOpener { client: self.clone(), what: redact_url(&url), url, validator: Mutex::new(None) }
    }
}

/// Opens one URL from an offset.
struct HttpOpener {
    client: Client,
    url: Url,
    what: String,
    /// The first answer's strong ETag or Last-Modified, sent as If-Range on resumes.
    validator: Mutex<Option<HeaderValue>>,
}

impl RangeOpen for HttpOpener {
    async fn open(&self, offset: u64) -> Result<RangeBody, SourceError> {
        let mut req = self.client.client.get(self.url.clone()).headers(self.client.headers.clone());
        let validator = if offset > 0 { self.validator.lock().ok().and_then(|v| v.clone()) } else { None };
        if offset > 0 {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
            if let Some(v) = &validator {
                req = req.header(header::IF_RANGE, v.clone());
            }
        }
        let resp = req.send().await.map_err(|e| request_error(&self.what, e))?;
        let status = resp.status().as_u16();
        let total = match status {
            200 if offset == 0 => {
                if let Ok(mut v) = self.validator.lock() {
                    *v = validator_of(resp.headers());
                }
                resp.content_length()
            }
            200 => {
                let detail = if validator.is_some() {
                    "the server sent the whole object again instead of the rest: it changed since the first request"
                } else {
                    "the server ignored the Range request (HTTP 200 instead of 206 Partial Content)"
                };
                let what = self.what.clone();
                return Err(if validator.is_some() {
                    SourceError::Changed { what, detail: detail.into() }
                } else {
                    SourceError::RangeNotHonoured { what, detail: detail.into() }
                });
            }
            206 if offset > 0 => {
                let content_range = resp.headers().get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok());
                resume::check_range(&self.what, offset, content_range)?
            }
            416 if offset > 0 => {
                return Err(SourceError::Changed {
                    what: self.what.clone(),
                    detail: format!("the server says byte {offset} is past the end (HTTP 416)"),
                });
            }
            _ => {
                return Err(SourceError::Http { status, url: self.what.clone() });
            }
        };
        let what = self.what.clone();
        let body = resp.bytes_stream().map(move |r| r.map_err(|e| body_error(&what, e))).boxed();
        Ok(RangeBody { body, total })
    }
}

/// A strong ETag, or else Last-Modified: what If-Range may carry.
fn validator_of(headers: &HeaderMap) -> Option<HeaderValue> {
    if let Some(etag) = headers.get(header::ETAG).filter(|e| !e.as_bytes().starts_with(b"W/")) {
        return Some(etag.clone());
    }
    headers.get(header::LAST_MODIFIED).cloned()
}

/// Whether a TLS error (rustls) is among the causes of `e`.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        let io_inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if io_inner.is_some_and(|inner| inner.is::<rustls::Error>()) {
            return true;
        }
        cur = err.source();
    }
    false
}

fn request_error(what: &str, e: reqwest::Error) -> SourceError {
    let e = e.without_url();
    let detail = chain(&e);
    if is_tls(&e) {
        SourceError::Tls { what: what.to_string(), detail }
    } else if e.is_builder() {
        SourceError::Invalid(format!("{what}: {detail}"))
    } else if e.is_redirect() {
        SourceError::Unsupported(format!("{what}: {detail}"))
    } else {
        SourceError::Network { what: what.to_string(), detail }
    }
}

fn body_error(what: &str, e: reqwest::Error) -> SourceError {
    let e = e.without_url();
    SourceError::Network { what: what.to_string(), detail: chain(&e) }
}

/// Stages a directory-format dump: toc.dat, then the data and large-object files it names.
async fn stage_directory(client: &Client, url: &Url, policy: Policy) -> Result<Resolved, SourceError> {
    let mut dir_url = url.clone();
    if !dir_url.path().ends_with('/') {
        // ".../dump/toc.dat" -> ".../dump/"
        let parent = dir_url.path().trim_end_matches("toc.dat").to_string();
        dir_url.set_path(&parent);
    }
    let display = redact_url(&dir_url);
    let staging = tempfile::Builder::new()
        .prefix("kubegres-restore-")
        .tempdir()
        .map_err(|e| SourceError::Staging { what: display.clone(), source: e })?;
    let dir = staging.path().to_path_buf();
    tracing::info!(source = %redact_url(&dir_url), staging = %dir.display(), "staging a directory-format dump");

    let mut size = fetch_file(client, &dir_url, "toc.dat", &dir, policy).await?;
    let toc = tokio::fs::read(dir.join("toc.dat"))
        .await
        .map_err(|e| SourceError::Staging { what: format!("{display}toc.dat"), source: e })?;
    let unreadable = |e: crate::archive::ArchiveError| SourceError::NoDump {
        what: display.clone(),
        detail: format!("its toc.dat cannot be read: {e}"),
    };
    let layout = crate::archive::directory_layout(&toc).map_err(unreadable)?;
    for name in &layout.data_files {
        size += fetch_file(client, &dir_url, name, &dir, policy).await?;
    }
    for blobs_toc in &layout.blob_tocs {
        size += fetch_file(client, &dir_url, blobs_toc, &dir, policy).await?;
        let listed = tokio::fs::read(dir.join(blobs_toc))
            .await
            .map_err(|e| SourceError::Staging { what: format!("{display}{blobs_toc}"), source: e })?;
        for name in crate::archive::large_object_files(&listed, &layout.header).map_err(unreadable)? {
            size += fetch_file(client, &dir_url, &name, &dir, policy).await?;
        }
    }
    Ok(Resolved::Directory { path: dir, display, size: Some(size), staging: Some(staging) })
}

/// Downloads `name` (a plain file name, checked by the archive reader) next to `dir_url`.
async fn fetch_file(
    client: &Client,
    dir_url: &Url,
    name: &str,
    dir: &Path,
    policy: Policy,
) -> Result<u64, SourceError> {
    let mut file_url = dir_url
        .join(name)
        .map_err(|e| SourceError::Invalid(format!("cannot name {name} under {}: {e}", redact_url(dir_url))))?;
    file_url.set_query(dir_url.query());
    let opener = client.opener(file_url);
    let what = opener.what.clone();
    resume::download(opener, what, policy, &dir.join(name)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_never_show() {
        let opts = SourceOptions {
            http: super::super::HttpOptions {
                headers: vec![("Bad Name".into(), "Bearer hunter2".into())],
                ca_file: None,
            },
            ..Default::default()
        };
        let e = Client::new(&opts).err().unwrap();
        assert_eq!(e.to_string(), "invalid source option: \"Bad Name\" is not a valid HTTP header name");
        let opts = SourceOptions {
            http: super::super::HttpOptions {
                headers: vec![("Authorization".into(), "Bearer hunter2\r\nX-Injected: 1".into())],
                ca_file: None,
            },
            ..Default::default()
        };
        let e = Client::new(&opts).err().unwrap();
        assert_eq!(e.to_string(), "invalid source option: the value given for HTTP header authorization is not valid");
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }

    #[test]
    fn validators() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("W/\"weak\""));
        h.insert(header::LAST_MODIFIED, HeaderValue::from_static("Tue, 15 Nov 1994 12:45:26 GMT"));
        assert_eq!(validator_of(&h).unwrap(), "Tue, 15 Nov 1994 12:45:26 GMT");
        h.insert(header::ETAG, HeaderValue::from_static("\"strong\""));
        assert_eq!(validator_of(&h).unwrap(), "\"strong\"");
    }

    #[tokio::test]
    async fn a_missing_ca_file_is_an_option_error() {
        let opts = SourceOptions {
            http: super::super::HttpOptions { headers: vec![], ca_file: Some("/nonexistent/ca.pem".into()) },
            ..Default::default()
        };
        let e = Client::new(&opts).err().unwrap();
        assert_eq!(e.reason(), "InvalidSourceOptions");
        assert!(e.to_string().starts_with("invalid source option: cannot read the CA file /nonexistent/ca.pem"), "{e}");
    }
}
