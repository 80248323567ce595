//! The one error type of every handler: a status code and `{"error", "parameter"}`, plus
//! `errors` — every field error at once — when a body was checked field by field.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::packs::InputError;
use crate::store::StoreError;

/// The message of a 413, whoever answers it.
const TOO_LARGE: &str = "the request body is too large";

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

    /// 410: the thing existed and was removed on purpose (a run's files expired by retention).
    pub fn gone(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::GONE,
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

    /// 413: the body is over the size limit.
    pub fn too_large() -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: TOO_LARGE.into(),
            parameter: Some("body".into()),
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
            StoreError::NotFound { kind, name } => ApiError::not_found(
                "name",
                format!("{kind} {q_name} not found", q_name = crate::text::quote(&name)),
            ),
            StoreError::AlreadyExists { kind, name } => ApiError::conflict(format!(
                "{kind} {q_name} already exists",
                q_name = crate::text::quote(&name)
            )),
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

/// Middleware: an error the framework answers itself on `/api/` — an unknown route or method,
/// a body over the size limit, a multipart body it cannot read — is answered as JSON
/// `{"error", "parameter"}` too, like every handler's error, instead of axum's plain text.
/// Query strings and path segments are read by [`super::extract`], whose errors are typed
/// already; here only the status says what went wrong (axum's text is never parsed).
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
    let allow = res.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(res.into_body(), 64 << 10).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (parameter, message) = framework_error(status, text);
    let mut res = ApiError {
        status,
        message,
        parameter: parameter.map(str::to_string),
        errors: Vec::new(),
    }
    .into_response();
    // A 405 keeps the methods the route takes.
    if let Some(allow) = allow {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// The parameter a framework error is about, by its status, and the message to send.
fn framework_error(status: StatusCode, text: String) -> (Option<&'static str>, String) {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => (Some("body"), TOO_LARGE.into()),
        StatusCode::NOT_FOUND => (Some("path"), "no such endpoint".into()),
        StatusCode::METHOD_NOT_ALLOWED => (Some("method"), "this endpoint does not take that method".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (Some("Content-Type"), text),
        StatusCode::URI_TOO_LONG | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            (Some("query"), "the URL is too long".into())
        }
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => (Some("body"), text),
        _ if text.is_empty() => (None, status.canonical_reason().unwrap_or("error").to_string()),
        _ => (None, text),
    }
}
