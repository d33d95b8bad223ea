//! A scripted API server (the `ApiServerVerifier` of kube-rs's controller-rs):
//! a [`kube::Client`] over a tower-test mock, a reconcile running against it,
//! and [`Scenario::expect`] to take its calls one by one, in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use operator::controller::{Config, Context, reconcile};
use proto::KubegresRestore;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

/// How long a call (or the end of a reconcile) may take to come.
const WAIT: Duration = Duration::from_secs(5);

type Outcome = Result<Action, operator::Error>;

/// A reconcile against a scripted API server.
pub struct Scenario {
    handle: Handle<Request<Body>, Response<Body>>,
    /// The context every reconcile of this scenario shares (one Recorder,
    /// one failure count per restore).
    pub ctx: Arc<Context>,
    running: Option<JoinHandle<Outcome>>,
}

impl Scenario {
    /// A fresh API server and an operator context on it.
    pub fn new() -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let ctx = Arc::new(Context::new(client, Config::default(), Arc::new(operator::metrics::Metrics::new())));
        Scenario { handle, ctx, running: None }
    }

    /// Starts a reconcile of `restore` (only its namespace and name matter:
    /// the operator reads the restore fresh).
    pub fn reconcile(&mut self, restore: &Value) {
        assert!(self.running.is_none(), "a reconcile is already running");
        let restore: KubegresRestore = serde_json::from_value(restore.clone()).expect("a valid KubegresRestore");
        self.running = Some(tokio::spawn(reconcile(Arc::new(restore), self.ctx.clone())));
    }

    /// The next call of the running reconcile, which must be `method path`
    /// (the path without its query). Fails fast, naming the expected call,
    /// when the reconcile ends first or nothing comes in time.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let running = self.running.as_mut().expect("no reconcile is running");
        let request = tokio::select! {
            biased;
            request = self.handle.next_request() => request,
            outcome = running => {
                panic!("expected {method} {path}, but the reconcile ended first with {outcome:?}")
            }
            () = tokio::time::sleep(WAIT) => {
                panic!("expected {method} {path}, but no call came within {WAIT:?}")
            }
        };
        let (request, send) = request.unwrap_or_else(|| panic!("expected {method} {path}, but the client is gone"));
        let call = Call::read(request, send).await;
        assert_eq!((&call.method, call.path.as_str()), (&method, path), "expected {method} {path}, got {call}");
        assert!(!call.query.contains_key("dryRun"), "{method} {path} is a dry run: {:?}", call.query);
        call
    }

    /// Waits for the reconcile to end, failing on any further call.
    pub async fn finish(&mut self) -> Outcome {
        let running = self.running.as_mut().expect("no reconcile is running");
        let outcome = tokio::select! {
            biased;
            request = self.handle.next_request() => match request {
                Some((request, send)) => {
                    let call = Call::read(request, send).await;
                    panic!("unexpected call: {call}");
                }
                None => panic!("the client is gone before the reconcile ended"),
            },
            outcome = running => outcome,
            () = tokio::time::sleep(WAIT) => panic!("the reconcile did not end within {WAIT:?}"),
        };
        self.running = None;
        outcome.expect("the reconcile panicked")
    }
}

/// One call of the operator: what it asked, and the way to answer it.
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query parameters.
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl std::fmt::Display for Call {
    /// `METHOD path?query body`, for failure messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, " {:?}", self.query)?;
        }
        if !self.body.is_null() {
            write!(f, " {}", self.body)?;
        }
        Ok(())
    }
}

impl Call {
    async fn read(request: Request<Body>, send: SendResponse<Response<Body>>) -> Call {
        let (parts, body) = request.into_parts();
        let header = |name: http::header::HeaderName| {
            parts.headers.get(name).map(|value| value.to_str().expect("an ASCII header").to_string())
        };
        let bytes = body.collect_bytes().await.expect("a readable request body");
        Call {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            query: url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
            content_type: header(http::header::CONTENT_TYPE),
            accept: header(http::header::ACCEPT),
            body: if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") },
            send,
        }
    }

    /// Asserts the query is exactly `expected`.
    pub fn assert_query(&self, expected: &[(&str, &str)]) {
        let expected: BTreeMap<String, String> =
            expected.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        assert_eq!(self.query, expected, "the query of {} {}", self.method, self.path);
    }

    /// Asserts a server-side apply under the operator's field manager, with
    /// force (and no dry run).
    pub fn assert_apply(&self) {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{} {} is not a server-side apply",
            self.method,
            self.path
        );
        self.assert_query(&[("fieldManager", proto::OPERATOR_FIELD_MANAGER), ("force", "true")]);
    }

    /// Asserts a create (POST) under the operator's field manager.
    pub fn assert_create(&self) {
        assert_eq!(self.method, http::Method::POST, "{} is not a create", self.path);
        self.assert_query(&[("fieldManager", proto::OPERATOR_FIELD_MANAGER)]);
    }

    /// Asserts a metadata-only GET (`PartialObjectMetadata`).
    pub fn assert_metadata_get(&self) {
        let accept = self.accept.as_deref().unwrap_or_default();
        assert!(accept.contains("as=PartialObjectMetadata"), "{} is not a metadata GET: Accept {accept}", self.path);
        self.assert_query(&[]);
    }

    /// Answers with `status` and a JSON body.
    pub fn respond(self, status: StatusCode, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("JSON")))
            .expect("a response");
        self.send.send_response(response);
    }

    /// Answers 200 with `body`.
    pub fn ok(self, body: &Value) {
        self.respond(StatusCode::OK, body);
    }

    /// Answers 201 with the request's own body, as a create or apply
    /// would.
    pub fn echo(self) {
        let body = self.body.clone();
        self.respond(StatusCode::CREATED, &body);
    }

    /// Answers with a failure `Status` of this code and reason.
    pub fn fail(self, code: StatusCode, reason: &str) {
        let message = format!("{} {}: {reason}", self.method, self.path);
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        });
        self.respond(code, &status);
    }

    /// Answers 404 NotFound.
    pub fn not_found(self) {
        self.fail(StatusCode::NOT_FOUND, "NotFound");
    }

    /// Answers a DELETE with a success `Status`.
    pub fn deleted(self) {
        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
        self.ok(&status);
    }
}

/// The requeue of an action, read from its Debug text (`Action` has no
/// getter): `None` for `await_change`.
pub fn requeue_of(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    if text.contains("requeue_after: None") {
        return None;
    }
    let start = text.find("Some(").unwrap_or_else(|| panic!("not a requeue: {text}")) + "Some(".len();
    let end = start + text[start..].find(')').unwrap_or_else(|| panic!("not a requeue: {text}"));
    Some(parse_duration(&text[start..end]))
}

/// Parses a `Duration`'s Debug text ("312.5ms", "1.25s", "800µs", "7ns")
/// exactly.
fn parse_duration(text: &str) -> Duration {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or_else(|| panic!("no unit: {text}"));
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "µs" => 1_000,
        "ns" => 1,
        _ => panic!("unknown unit in {text}"),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let mut nanos = whole.parse::<u128>().expect("a number") * unit_nanos;
    let mut scale = unit_nanos;
    for digit in fraction.chars() {
        scale /= 10;
        nanos += u128::from(digit.to_digit(10).expect("a digit")) * scale;
    }
    Duration::from_nanos(u64::try_from(nanos).expect("a sane duration"))
}

#[test]
fn durations_are_read_from_their_debug_text() {
    for duration in [
        Duration::from_millis(250),
        Duration::from_nanos(312_345_678),
        Duration::from_secs(300),
        Duration::from_nanos(1_234_567_891),
        Duration::from_micros(800),
        Duration::from_nanos(7),
    ] {
        assert_eq!(requeue_of(&Action::requeue(duration)), Some(duration), "{duration:?}");
    }
    assert_eq!(requeue_of(&Action::await_change()), None);
}
