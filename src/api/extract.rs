//! The query-string and path extractors of the API: axum's `Query` and `Path`, with their
//! rejections mapped by type into an [`ApiError`] naming the parameter, instead of axum's
//! plain text (which the error layer would otherwise have to re-parse).

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use super::de::{DeError, Query};
use crate::text::quote;

/// The query string as `T`. A value of the wrong type, out of its type's range or missing
/// is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_path_to_error::deserialize(query_de(query))
            .map(ApiQuery)
            .map_err(|e| query_error(&e))
    }
}

fn query_de(query: &str) -> Query<'_> {
    Query(serde_urlencoded::Deserializer::new(form_urlencoded::parse(
        query.as_bytes(),
    )))
}

fn query_error(e: &serde_path_to_error::Error<DeError>) -> ApiError {
    let path = e.path().to_string();
    let parameter = match e.inner() {
        // serde reports a missing field at the enclosing object, the struct itself.
        DeError::Missing(field) => field.to_string(),
        DeError::Other(_) if path == "." || path == "?" => "query".into(),
        DeError::Other(_) => path,
    };
    ApiError::bad_request(parameter, format!("the query string is not valid: {}", e.inner()))
}

/// The path parameters as `T`. A segment of the wrong type (`/runs/x/attempts/one/log`) is a
/// 400 naming the parameter and quoting a bounded prefix of the value.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.kind() {
                ErrorKind::ParseErrorAtKey {
                    key,
                    value,
                    expected_type,
                } => ApiError::bad_request(
                    key.as_str(),
                    format!("{} is not {}", quote(value), type_name(expected_type)),
                ),
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::bad_request(key.as_str(), "is not valid UTF-8")
                }
                // A tuple of parameters says where, not which: the route's names say which.
                ErrorKind::ParseErrorAtIndex {
                    index,
                    value,
                    expected_type,
                } => {
                    let name = axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .ok()
                        .and_then(|raw| raw.iter().nth(*index).map(|(k, _)| k.to_string()))
                        .unwrap_or_else(|| "path".into());
                    ApiError::bad_request(
                        name,
                        format!("{} is not {}", quote(value), type_name(expected_type)),
                    )
                }
                ErrorKind::ParseError { value, expected_type } => ApiError::bad_request(
                    "path",
                    format!("{} is not {}", quote(value), type_name(expected_type)),
                ),
                _ => ApiError::bad_request("path", e.body_text()),
            }),
            // The route has no parameters: a bug of this crate, not of the request.
            Err(other) => Err(ApiError::internal("the route's parameters", other)),
        }
    }
}

/// A Rust type as a client reads it.
fn type_name(t: &str) -> &'static str {
    match t {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a non-negative integer",
        "isize" | "i64" | "i32" | "i16" | "i8" => "an integer",
        _ => "valid here",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<usize>,
        tail: Option<i64>,
    }

    fn parse(q: &str) -> Result<Q, ApiError> {
        serde_path_to_error::deserialize(query_de(q)).map_err(|e| query_error(&e))
    }

    #[test]
    fn a_query_value_of_the_wrong_type_or_range_names_its_parameter() {
        assert!(parse("limit=5&tail=10").is_ok());
        assert_eq!(parse("limit=x").unwrap_err().parameter.as_deref(), Some("limit"));
        assert_eq!(parse("limit=-1").unwrap_err().parameter.as_deref(), Some("limit"));
        let e = parse("tail=9223372036854775808").unwrap_err();
        assert_eq!(e.parameter.as_deref(), Some("tail"), "{}", e.message);
    }
}
