//! The one error type of every handler: a status code and `{"error", "parameter"}`.

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
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person.
    pub error: String,
    /// The parameter or field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ApiError {
    pub fn bad_request(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter.into()),
        }
    }

    pub fn not_found(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            parameter: Some(parameter.into()),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            parameter: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            parameter: Some("Authorization".into()),
        }
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        error!(error = %err, "{context}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{context}; see the server log"),
            parameter: None,
        }
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
