//! `POST /api/v1/runs/{id}/attempts/{n}/results`: where `tomato exec`, inside an attempt's
//! Job, delivers the attempt's JUnit report(s) and log (operator mode).
//!
//! The body is `multipart/form-data` (`curl -F` speaks it too): `exitCode` or `signal`, one
//! `junit` part per report (gzip'd when its content type is `application/gzip` or its file
//! name ends in `.gz`), and `log`. The caller authenticates with the run's own upload token
//! (`Authorization: Bearer`), not with an API token: this route sits outside the API-token
//! check and has its own, larger body limit. A shard of a sharded attempt (one index of its
//! Indexed Job) adds `?shard=<index>`: each shard's results are stored apart, once each, and
//! merged into the attempt's when the Job has ended.
//!
//! `GET /api/v1/runs/{id}/attempts/{n}/launch`: where `tomato exec --fetch` reads what it
//! runs (argv and the variables carrying its tests), with the same token, when the launch is
//! too large for its Job object and the results database keeps it instead.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery};
use super::{ApiError, AppState};
use crate::backend::UploadError;
use crate::results::upload::{AttemptResults, Source, gzip};

/// Largest upload accepted (JUnit is gzip'd by `tomato exec`; the log is a capped tail).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/runs/{id}/attempts/{n}/results",
            post(attempt_results_upload),
        )
        .route("/api/v1/runs/{id}/attempts/{n}/launch", get(attempt_launch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Received {
    /// JUnit reports received.
    pub reports: usize,
    /// Bytes of log received.
    pub log_bytes: usize,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The run's namespace (operator mode; default the operator's own). Jobs send it: with
    /// `--all-namespaces` runs live in other namespaces.
    namespace: Option<String>,
    /// The completion index of the shard whose results these are (a sharded attempt's Indexed
    /// Job: each index uploads its own, once).
    shard: Option<u32>,
}

/// Receive an attempt's results from `tomato exec` (operator mode; authenticated by the run's upload token).
#[utoipa::path(post, path = "/api/v1/runs/{id}/attempts/{n}/results", tag = "runs",
    params(("id" = String, Path, description = "Run name"), ("n" = usize, Path, description = "Attempt position, from 1"), UploadQuery),
    request_body(content_type = "multipart/form-data", description = "exitCode or signal, junit (repeated), log, allure (repeated: the files of the Allure results, by file name), allureNote (repeated)"),
    responses((status = 201, description = "Received", body = Received), (status = 400, body = super::ErrorBody),
        (status = 401, description = "No upload token, or not this run's", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, description = "The attempt is not waiting for results", body = super::ErrorBody)))]
pub async fn attempt_results_upload(
    State(state): State<AppState>,
    ApiPath((id, n)): ApiPath<(String, usize)>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Received>), ApiError> {
    let token = run_token(&headers)?;

    let mut results = AttemptResults {
        source: Source::Upload,
        exit_code: None,
        signal: None,
        junit_gz: Vec::new(),
        log: Vec::new(),
        message: None,
        owed: Vec::new(),
        allure_gz: Vec::new(),
        allure_notes: Vec::new(),
    };
    let bad = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::bad_request(field, format!("cannot read {field}: {e}"))
    };
    while let Some(field) = form.next_field().await.map_err(|e| bad("body", &e))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "exitCode" | "signal" => {
                let text = field.text().await.map_err(|e| bad(&name, &e))?;
                let value: i32 = text.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        &name,
                        format!("{q_text} is not an integer", q_text = crate::text::quote(&text)),
                    )
                })?;
                if name == "exitCode" {
                    results.exit_code = Some(value);
                } else {
                    results.signal = Some(value);
                }
            }
            "junit" => {
                let gzipped = field.content_type() == Some("application/gzip")
                    || field.file_name().is_some_and(|f| f.ends_with(".gz"));
                let bytes = field.bytes().await.map_err(|e| bad("junit", &e))?;
                results
                    .junit_gz
                    .push(if gzipped { bytes.to_vec() } else { gzip(&bytes) });
            }
            "log" => results.log = field.bytes().await.map_err(|e| bad("log", &e))?.to_vec(),
            // One file of the attempt's Allure results (`{allure}`), named by its file name,
            // which must be a plain one: it becomes a stored key and an attachment's link.
            "allure" => {
                let file = field.file_name().unwrap_or_default().to_string();
                let (file, gzipped) = match file.strip_suffix(".gz") {
                    Some(f) => (f.to_string(), true),
                    None => (file, field.content_type() == Some("application/gzip")),
                };
                if !crate::results::allure::safe_source(&file) {
                    return Err(ApiError::bad_request(
                        "allure",
                        format!(
                            "file name {q} is not a plain file name (letters, digits, -, _ and . only)",
                            q = crate::text::quote(&file)
                        ),
                    ));
                }
                let bytes = field.bytes().await.map_err(|e| bad("allure", &e))?;
                results
                    .allure_gz
                    .push((file, if gzipped { bytes.to_vec() } else { gzip(&bytes) }));
            }
            "allureNote" => results
                .allure_notes
                .push(field.text().await.map_err(|e| bad("allureNote", &e))?),
            other => {
                return Err(ApiError::bad_request(
                    other,
                    format!(
                        "unknown part {q_other}; known: exitCode, signal, junit, log, allure, allureNote",
                        q_other = crate::text::quote(other)
                    ),
                ));
            }
        }
    }
    if let Some(ns) = &q.namespace {
        crate::runs::check_object_name(ns).map_err(|e| ApiError::bad_request("namespace", e))?;
    }
    let received = Received {
        reports: results.junit_gz.len(),
        log_bytes: results.log.len(),
    };
    match state
        .backend
        .receive_results(q.namespace.as_deref(), &id, n, q.shard, &token, results)
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(received))),
        Err(e) => Err(upload_error(e, "body", "storing uploaded results failed")),
    }
}

/// The run's upload token from `Authorization: Bearer`.
fn run_token(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("send the run's upload token: Authorization: Bearer <token>"))?
        .to_string())
}

/// The answer to a refused upload or launch read; `invalid` names the field a 400 is about.
fn upload_error(e: UploadError, invalid: &str, failed: &str) -> ApiError {
    match e {
        UploadError::NotSupported => ApiError::not_found("id", e.to_string()),
        UploadError::Unauthorized => ApiError::unauthorized(e.to_string()),
        UploadError::NotFound(m) => ApiError::not_found("id", m),
        UploadError::Conflict(m) => ApiError::conflict(m),
        UploadError::Invalid(m) => ApiError::bad_request(invalid, m),
        UploadError::Store(m) => ApiError::internal(failed, m),
    }
}

/// What an attempt's pod runs, for `tomato exec --fetch` (operator mode with a results database; authenticated by the run's upload token).
#[utoipa::path(get, path = "/api/v1/runs/{id}/attempts/{n}/launch", tag = "runs",
    params(("id" = String, Path, description = "Run name"), ("n" = usize, Path, description = "Attempt position, from 1"), UploadQuery),
    responses((status = 200, description = "The argv and the variables carrying the tests of the launch (or of one shard)", body = crate::launch::job::ShardLaunch),
        (status = 400, description = "A sharded launch asked without ?shard", body = super::ErrorBody),
        (status = 401, description = "No upload token, or not this run's", body = super::ErrorBody),
        (status = 404, description = "No such run, launch or shard, or a launch its Job carries itself", body = super::ErrorBody)))]
pub async fn attempt_launch(
    State(state): State<AppState>,
    ApiPath((id, n)): ApiPath<(String, usize)>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
) -> Result<Json<crate::launch::job::ShardLaunch>, ApiError> {
    let token = run_token(&headers)?;
    if let Some(ns) = &q.namespace {
        crate::runs::check_object_name(ns).map_err(|e| ApiError::bad_request("namespace", e))?;
    }
    state
        .backend
        .launch_of(q.namespace.as_deref(), &id, n, q.shard, &token)
        .await
        .map(Json)
        .map_err(|e| upload_error(e, "shard", "reading the launch failed"))
}
