//! Real HTTP servers for source tests (axum on 127.0.0.1, a random port).
//!
//! A server serves byte payloads at given paths, with Range support
//! (`bytes=N-` and `bytes=N-M` answered with 206 and Content-Range), a strong
//! ETag and an exact Content-Length, and misbehaves as told by
//! [`Behaviour`]s. Every request is logged ([`HttpServer::requests`]) so that
//! tests can check what the client really sent, e.g. that a resume asked for
//! `Range: bytes=N-`.
//!
//! ```text
//! let server = HttpServer::builder().file("/dump.gz", bytes).with(Behaviour::DropOnceAt(4096)).start().await;
//! let url = server.url("/dump.gz");
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// How the server misbehaves. Several can be combined; "first request"
/// means the first request the server receives, whatever its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// On the first request, send the headers (with the full Content-Length)
    /// and the body up to `offset`, then close the connection.
    DropOnceAt(u64),
    /// On the first request, send the body up to `offset`, then send nothing
    /// more (the connection stays open).
    StallOnceAt(u64),
    /// Answer the first `n` requests with `status` (no body payload), then normally.
    FailFirst(u32, u16),
    /// Answer every request with this status (e.g. 404, 403).
    Status(u16),
    /// Answer 401 unless the request carries this header with this value.
    RequireHeader(String, String),
    /// Answer every request with 200 and the whole payload, Range or not.
    IgnoreRange,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The path (without the query string).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `If-Range` header, if any.
    pub if_range: Option<String>,
    /// The status the server answered with.
    pub status: u16,
}

/// Builds an [`HttpServer`].
#[derive(Debug, Default)]
pub struct HttpServerBuilder {
    files: BTreeMap<String, Bytes>,
    behaviours: Vec<Behaviour>,
}

impl HttpServerBuilder {
    /// Serves `body` at `path` (which starts with `/`).
    pub fn file(mut self, path: &str, body: impl Into<Bytes>) -> Self {
        assert!(path.starts_with('/'), "paths start with /: {path}");
        self.files.insert(path.to_string(), body.into());
        self
    }

    /// Adds a misbehaviour.
    pub fn with(mut self, b: Behaviour) -> Self {
        self.behaviours.push(b);
        self
    }

    /// Binds 127.0.0.1 on a random port and serves until the server is dropped.
    pub async fn start(self) -> HttpServer {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an HTTP test server on 127.0.0.1");
        let addr = listener.local_addr().expect("the test server's address");
        let state = Arc::new(Shared { files: self.files, behaviours: self.behaviours, log: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("HTTP test server stopped: {e}");
            }
        });
        HttpServer { addr, state, task }
    }
}

/// A running HTTP test server; stops when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// A builder with no files and no misbehaviour.
    pub fn builder() -> HttpServerBuilder {
        HttpServerBuilder::default()
    }

    /// A well-behaved server with `body` at `/dump`.
    pub async fn serving(body: impl Into<Bytes>) -> HttpServer {
        HttpServer::builder().file("/dump", body).start().await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// The Range headers of every request so far (`None` for a plain GET).
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.requests().into_iter().map(|r| r.range).collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    files: BTreeMap<String, Bytes>,
    behaviours: Vec<Behaviour>,
    log: Mutex<Vec<LoggedRequest>>,
}

/// How long the server waits after the last bytes before dropping the
/// connection, so that those bytes reach the client first.
const FLUSH_PAUSE: Duration = Duration::from_millis(100);

async fn handle(State(state): State<Arc<Shared>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut entry = LoggedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        range: text(header::RANGE),
        if_range: text(header::IF_RANGE),
        status: 0,
    };
    let number = {
        let log = state.log.lock().unwrap();
        log.len()
    };
    let response = respond(&state, req.method(), &entry.path, &headers, number);
    entry.status = response.status().as_u16();
    state.log.lock().unwrap().push(entry);
    response
}

fn status_only(status: u16) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status code");
    let mut r = Response::new(Body::from(format!("{status}\n")));
    *r.status_mut() = status;
    r
}

/// The answer to request number `number` (0 for the first).
fn respond(state: &Shared, method: &Method, path: &str, headers: &HeaderMap, number: usize) -> Response {
    let first = number == 0;
    let mut ignore_range = false;
    let mut cut: Option<(u64, bool)> = None; // (offset, drop: true / stall: false)
    for b in &state.behaviours {
        match b {
            Behaviour::Status(s) => return status_only(*s),
            Behaviour::FailFirst(n, s) if (number as u64) < u64::from(*n) => {
                return status_only(*s);
            }
            Behaviour::FailFirst(..) => {}
            Behaviour::RequireHeader(name, value) => {
                let ok = headers.get(name.as_str()).is_some_and(|v| v.as_bytes() == value.as_bytes());
                if !ok {
                    return status_only(401);
                }
            }
            Behaviour::IgnoreRange => ignore_range = true,
            Behaviour::DropOnceAt(at) if first => cut = Some((*at, true)),
            Behaviour::StallOnceAt(at) if first => cut = Some((*at, false)),
            Behaviour::DropOnceAt(_) | Behaviour::StallOnceAt(_) => {}
        }
    }
    if method != Method::GET && method != Method::HEAD {
        return status_only(405);
    }
    let Some(data) = state.files.get(path) else {
        return status_only(404);
    };
    let len = data.len() as u64;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(data)[..8]));

    let range = if ignore_range { None } else { headers.get(header::RANGE).and_then(|v| v.to_str().ok()) };
    let (status, start, end) = match range.map(parse_range) {
        None => (StatusCode::OK, 0, len),
        Some(Some((start, end))) if start < len => {
            // If-Range with another validator: the whole object, as RFC 9110 says.
            let if_range = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok());
            if if_range.is_some_and(|v| v != etag) {
                (StatusCode::OK, 0, len)
            } else {
                (StatusCode::PARTIAL_CONTENT, start, end.map_or(len, |e| (e + 1).min(len)))
            }
        }
        Some(Some(_)) => {
            let mut r = status_only(416);
            r.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{len}")).unwrap());
            return r;
        }
        Some(None) => return status_only(400),
    };

    let part = data.slice(start as usize..end as usize);
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match cut {
            Some((at, drop)) => {
                let keep = (at.saturating_sub(start) as usize).min(part.len());
                let head = futures::stream::iter([Ok::<Bytes, std::io::Error>(part.slice(..keep))]);
                if drop {
                    let fail = futures::stream::once(async {
                        tokio::time::sleep(FLUSH_PAUSE).await;
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "test server drops the connection",
                        ))
                    });
                    Body::from_stream(head.chain(fail))
                } else {
                    Body::from_stream(head.chain(futures::stream::pending()))
                }
            }
            None => Body::from(part.clone()),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{len}", end - 1);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).unwrap());
    }
    r
}

/// `bytes=N-` or `bytes=N-M` (one range only).
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() { None } else { Some(b.trim().parse().ok()?) };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some((start, end))
}

/// A loopback address whose port was free a moment ago (for a server the
/// caller starts as another process; it retries if the port was taken).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    crate::net::free_port().map(|port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
}

/// A plain HTTP/1.0 GET on loopback, e.g. an operator's `/readyz`: the
/// status code and the body. Gives up after 5 s.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("GET {path} timed out")))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status =
        head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("GET {path}: no status line"))
        })?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=10-19"), Some((10, Some(19))));
        assert_eq!(parse_range("bytes=19-10"), None);
        assert_eq!(parse_range("items=1-"), None);
    }
}
