//! The one error type of every handler: a status code and `{"error", "parameter"}`, plus
//! `errors` — every field error at once — when a body was checked field by field.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::packs::InputError;
use crate::store::StoreError;

/// An error answered to an API client. Internal details are logged, not sent.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request parameter (or field) at fault, when one is.
    pub parameter: Option<String>,
    /// Every field at fault when a body was checked as a whole (the first is also
    /// `message`/`parameter`, so clients that read one error keep working); empty otherwise.
    pub errors: Vec<FieldError>,
}

/// One field's error in a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field at fault (`spec.stand`).
    pub parameter: String,
    /// What is wrong with it.
    pub error: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person.
    pub error: String,
    /// The parameter or field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Every field error of a request checked as a whole, the first one repeating
    /// `error`/`parameter` (absent when there is only a single, non-field error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn bad_request(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter.into()),
            errors: Vec::new(),
        }
    }

    pub fn not_found(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            parameter: Some(parameter.into()),
            errors: Vec::new(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            parameter: None,
            errors: Vec::new(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            parameter: Some("Authorization".into()),
            errors: Vec::new(),
        }
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        error!(error = %err, "{context}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{context}; see the server log"),
            parameter: None,
            errors: Vec::new(),
        }
    }

    /// A 400 listing every field at fault, the first also as `error`/`parameter`. `None` when
    /// `errors` is empty (nothing is wrong).
    pub fn fields(errors: Vec<FieldError>) -> Option<Self> {
        let first = errors.first()?.clone();
        Some(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: first.error,
            parameter: Some(first.parameter),
            errors,
        })
    }

    /// This error as entries of a field list (one entry, or its own list).
    pub fn into_fields(self) -> Vec<FieldError> {
        if !self.errors.is_empty() {
            return self.errors;
        }
        vec![FieldError {
            parameter: self.parameter.unwrap_or_else(|| "body".into()),
            error: self.message,
        }]
    }

    /// Renames the parameter (e.g. `version` → `testpalm` in the legacy API).
    pub fn rename_parameter(mut self, f: impl Fn(&str) -> &str) -> Self {
        self.parameter = self.parameter.map(|p| f(&p).to_string());
        self
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::bad_request(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, name } => {
                ApiError::not_found("name", format!("{kind} {name:?} not found"))
            }
            StoreError::AlreadyExists { kind, name } => {
                ApiError::conflict(format!("{kind} {name:?} already exists"))
            }
            StoreError::Invalid(m) => ApiError::bad_request("body", m),
            // Logged once per episode by the store, not per request; nothing was changed.
            StoreError::Unwritable(m) => ApiError {
                status: StatusCode::INSUFFICIENT_STORAGE,
                message: m,
                parameter: None,
                errors: Vec::new(),
            },
            other => ApiError::internal("the store failed", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                parameter: self.parameter,
                errors: self.errors,
            }),
        )
            .into_response();
        if unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Middleware: an error the framework answers itself on `/api/` — a query string or path
/// segment of the wrong type, a body over the size limit, an unknown route or method — is
/// answered as JSON `{"error", "parameter"}` too, like every handler's error, instead of
/// axum's plain text.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let text = match axum::body::to_bytes(res.into_body(), 64 << 10).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (parameter, message) = framework_error(status, &text);
    ApiError {
        status,
        message,
        parameter,
        errors: Vec::new(),
    }
    .into_response()
}

/// The parameter a framework error is about, and the message to send.
fn framework_error(status: StatusCode, text: &str) -> (Option<String>, String) {
    const QUERY: &str = "Failed to deserialize query string: ";
    let about = |p: &str| Some(p.to_string());
    if let Some(rest) = text.strip_prefix(QUERY) {
        let field = rest.split_once(": ").map(|(f, _)| f).filter(|f| !f.contains(' '));
        return (
            field.map(str::to_string).or_else(|| about("query")),
            text.to_string(),
        );
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => (about("body"), "the request body is too large".into()),
        StatusCode::NOT_FOUND if text.is_empty() => (about("path"), "no such endpoint".into()),
        StatusCode::METHOD_NOT_ALLOWED => (about("method"), "this endpoint does not take that method".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (about("Content-Type"), text.to_string()),
        _ if text.starts_with("Invalid URL") || text.starts_with("Cannot parse") => {
            (about("path"), text.to_string())
        }
        _ if text.is_empty() => (None, status.canonical_reason().unwrap_or("error").to_string()),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => (about("body"), text.to_string()),
        _ => (None, text.to_string()),
    }
}
