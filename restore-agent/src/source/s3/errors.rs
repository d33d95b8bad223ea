//! How S3 errors map onto [`SourceError`]: missing -> NotFound, denied ->
//! AccessDenied, a changed object -> Changed, network trouble -> Network
//! (retried), anything else -> S3 (retried for 5xx and throttling).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::source::SourceError;
use crate::source::error::chain;

/// Maps an SDK error: missing -> NotFound, denied -> AccessDenied, a changed
/// object -> Changed, network trouble -> Network (retried), else S3.
pub(super) fn sdk_error<E>(what: &str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default().to_string();
            let message = ctx.err().message().unwrap_or_default().to_string();
            service_error(what, status, code, message)
        }
        SdkError::DispatchFailure(d) if d.is_user() => {
            SourceError::Options(format!("cannot send the request for {what}: {}", chain(&e)))
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            SourceError::Network { what: what.to_string(), detail: chain(&e) }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            SourceError::Network { what: what.to_string(), detail: chain(&e) }
        }
        // Credentials, signing, or a connector error of no known kind: another try would not help.
        _ => SourceError::S3 { what: what.to_string(), status: None, code: "RequestFailed".into(), message: chain(&e) },
    }
}

pub(super) fn service_error(what: &str, status: u16, code: String, message: String) -> SourceError {
    let what = what.to_string();
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, _) => format!("HTTP {status}"),
        (false, true) => code.clone(),
        (false, false) => format!("{code}: {message}"),
    };
    match code.as_str() {
        "NoSuchKey" | "NoSuchBucket" | "NotFound" => SourceError::NotFound { what, detail },
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken"
        | "AllAccessDisabled"
        | "AccountProblem" => SourceError::AccessDenied { what, detail },
        "PreconditionFailed" => SourceError::Changed { what, detail: format!("its ETag changed ({detail})") },
        "InvalidRange" => SourceError::Changed { what, detail: format!("it is shorter than before ({detail})") },
        _ => match status {
            404 => SourceError::NotFound { what, detail },
            401 | 403 => SourceError::AccessDenied { what, detail },
            412 => SourceError::Changed { what, detail: format!("its ETag changed ({detail})") },
            _ => SourceError::S3 { what, status: Some(status), code, message },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_clear_categories() {
        let e = service_error("s3://b/k", 404, "NoSuchKey".into(), "The specified key does not exist.".into());
        assert_eq!(e.to_string(), "s3://b/k not found: NoSuchKey: The specified key does not exist.");
        assert_eq!(e.reason(), "SourceNotFound");
        assert!(!e.is_transient());
        assert_eq!(service_error("s3://b/k", 404, "NoSuchBucket".into(), String::new()).reason(), "SourceNotFound");
        assert_eq!(
            service_error("s3://b/k", 404, String::new(), String::new()).to_string(),
            "s3://b/k not found: HTTP 404"
        );
        let e = service_error("s3://b/k", 403, "AccessDenied".into(), "Access Denied".into());
        assert_eq!(e.reason(), "SourceAccessDenied");
        assert!(!e.is_transient());
        assert_eq!(
            service_error("s3://b/k", 403, "SignatureDoesNotMatch".into(), "x".into()).reason(),
            "SourceAccessDenied"
        );
        let e = service_error("s3://b/k", 503, "SlowDown".into(), String::new());
        assert!(e.is_transient());
        let e = service_error("s3://b/k", 500, "InternalError".into(), "oops".into());
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "S3 error for s3://b/k: InternalError (HTTP 500): oops");
        assert_eq!(
            service_error("s3://b/k", 412, "PreconditionFailed".into(), String::new()).reason(),
            "SourceChanged"
        );
        assert!(!service_error("s3://b/k", 400, "InvalidArgument".into(), String::new()).is_transient());
    }
}
