//! What can go wrong in a reconcile, by category (the metric label).

/// A reconcile that could not finish. Every variant is transient from the
/// controller's point of view: invalid specs never get here (the decide step
/// turns them into a Failed status), so the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("cannot {action}: {source}")]
    Kube {
        /// What the operator was doing, as a verb phrase ("create the restore Pod orders-restore-1").
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be turned into JSON (never expected).
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// The object.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A short CamelCase category for logs and the `reconcile_errors_total`
    /// metric (never an object name).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source: kube::Error::Api(status), .. } => match status.code {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                422 => "Invalid",
                429 => "Throttled",
                500..=599 => "ServerError",
                _ => "ApiError",
            },
            Error::Kube { .. } => "Transport",
            Error::Serialize { .. } => "Serialize",
        }
    }
}

/// Adds the action to a client error.
pub(crate) trait During<T> {
    /// Wraps the error with `action` ("get the Pods of db/orders").
    fn during(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> During<T> for Result<T, kube::Error> {
    fn during(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube { action: action(), source })
    }
}

/// Whether a client error is a 404.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether a client error is a 409 AlreadyExists.
pub(crate) fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_already_exists())
}
