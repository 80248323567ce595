//! The old tool's four handles, kept for its clients:
//! `GET /api/runned?project=`, `POST /api/run_now?...`, `POST /api/nightly?service=`,
//! `GET /api/status?run_id=`.
//!
//! Parameters come in the query string, as old clients send them; a form or JSON body is
//! accepted too (the query string wins when both give a parameter). Bad input is answered
//! 400 with `{"error", "parameter"}` and changes nothing.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::routing::{get, post};
use serde::Serialize;

use super::runs::{LegacyStatus, QueueView, find_run, new_run, queue_view, store_run};
use super::{ApiError, AppState};
use crate::crd::{Priority, RunTemplate, RunType};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/runned", get(runned))
        .route("/api/run_now", post(run_now))
        .route("/api/nightly", post(nightly))
        .route("/api/status", get(status))
}

/// Request parameters from the query string and, for writes, the body.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params: HashMap<String, String> = req
            .uri()
            .query()
            .map(serde_urlencoded::from_str::<Vec<(String, String)>>)
            .transpose()
            .map_err(|e| ApiError::bad_request("query", format!("the query string is malformed: {e}")))?
            .unwrap_or_default()
            .into_iter()
            .collect();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(body_error)?;
        let from_body: Vec<(String, String)> = if body.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else if content_type.starts_with("application/json")
            // Old clients post JSON with no or a wrong content type (Python's
            // `requests.post(url, data=json.dumps(...))`): an object is read as JSON unless the
            // client says it is a form. So is an array, which is then refused as not an object
            // rather than read as a form with one odd parameter.
            || (matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
                && !content_type.starts_with("application/x-www-form-urlencoded"))
        {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request("body", format!("the JSON body is malformed: {e}")))?;
            let serde_json::Value::Object(map) = v else {
                return Err(ApiError::bad_request(
                    "body",
                    "the JSON body must be an object of parameters",
                ));
            };
            map.into_iter().map(|(k, v)| (k, json_param(v))).collect()
        } else {
            serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad_request("body", format!("the form body is malformed: {e}")))?
        };
        for (k, v) in from_body {
            params.entry(k).or_insert(v);
        }
        Ok(Params(params))
    }
}

/// A body that cannot be read, by the rejection's type: over the size limit (sent without a
/// `Content-Length`, so the limit layer could not refuse it first) is the 413 the framework
/// answers for one that says its length, not a 400.
fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => ApiError::too_large(),
        e => ApiError::bad_request("body", format!("cannot read the body: {e}")),
    }
}

/// A JSON parameter as the string an old client would have put in the query.
fn json_param(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Array(items) => items.into_iter().map(json_param).collect::<Vec<_>>().join(","),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Params {
    /// A parameter, trimmed; empty counts as absent.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(name, format!("{name} is required")))
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The service named by `name`, or a 400 naming the parameter.
fn known_service(state: &AppState, params: &Params, name: &str) -> Result<String, ApiError> {
    let s = params.required(name)?;
    if state.config.service(s).is_none() {
        let known: Vec<String> = state.config.services().map(|s| s.name.clone()).collect();
        return Err(ApiError::bad_request(
            name,
            format!(
                "unknown service {q_s}; known: {}",
                known.join(", "),
                q_s = crate::text::quote(s)
            ),
        ));
    }
    Ok(s.to_string())
}

/// `GET /api/runned?project=S`: what runs now and what waits, in admission order.
#[utoipa::path(get, path = "/api/runned", tag = "legacy",
    params(("project" = String, Query, description = "Service name")),
    responses((status = 200, description = "The queue", body = QueueView), (status = 400, body = super::ErrorBody)))]
pub async fn runned(State(state): State<AppState>, params: Params) -> Result<Json<QueueView>, ApiError> {
    let service = known_service(&state, &params, "project")?;
    Ok(Json(queue_view(&state, &service).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunId {
    pub run_id: String,
}

/// `POST /api/run_now?stand=&service=&category=&emails=&testpalm=&issueKey=&priority=`: queue a run.
#[utoipa::path(post, path = "/api/run_now", tag = "legacy",
    params(
        ("stand" = String, Query, description = "Stand host or URL", min_length = 1),
        ("service" = String, Query, description = "Service name"),
        ("category" = Option<String>, Query, description = "Preset of packs"),
        ("packs" = Option<String>, Query, description = "Comma-separated packs (overrides category)"),
        ("emails" = Option<String>, Query, description = "Comma-separated report recipients"),
        ("testpalm" = Option<String>, Query, description = "Test-management version to link the run to"),
        ("issueKey" = Option<String>, Query, description = "Tracker ticket for the report"),
        ("priority" = Option<u8>, Query, description = "0-9, default 2; lower runs earlier", minimum = 0, maximum = 9),
    ),
    responses((status = 200, description = "The queued run's id", body = RunId), (status = 400, body = super::ErrorBody)))]
pub async fn run_now(State(state): State<AppState>, params: Params) -> Result<Json<RunId>, ApiError> {
    let service = params.required("service")?.to_string();
    let stand = params.required("stand")?.to_string();
    let priority = match params.get("priority") {
        None => Priority::DEFAULT,
        Some(p) => p.parse::<Priority>().map_err(|_| {
            ApiError::bad_request(
                "priority",
                format!(
                    "must be an integer {}, got {q_p}",
                    Priority::range(),
                    q_p = crate::text::quote(p)
                ),
            )
        })?,
    };
    let template = RunTemplate {
        service,
        stand,
        category: params.get("category").map(str::to_string),
        packs: params.list("packs"),
        priority,
        emails: params.list("emails"),
        issue_key: params.get("issueKey").map(str::to_string),
        version: params.get("testpalm").map(str::to_string),
        retries: None,
        shards: None,
        env: Vec::new(),
    };
    let run = new_run(
        &state.config,
        template,
        RunType::Regular,
        None,
        None,
        BTreeMap::new(),
    )
    .map_err(|e| ApiError::from(e).rename_parameter(legacy_name))?;
    let run = store_run(&state, run, true).await?;
    Ok(Json(RunId {
        run_id: run.metadata.name.unwrap_or_default(),
    }))
}

/// Spec field names as the legacy API calls them.
fn legacy_name(field: &str) -> &str {
    match field {
        "version" => "testpalm",
        other => other,
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunIds {
    pub run_ids: Vec<String>,
}

/// `POST /api/nightly?service=S`: queue a run for every non-suspended schedule of S now.
#[utoipa::path(post, path = "/api/nightly", tag = "legacy",
    params(("service" = String, Query, description = "Service name")),
    responses((status = 200, description = "The queued runs' ids", body = RunIds), (status = 400, body = super::ErrorBody)))]
pub async fn nightly(State(state): State<AppState>, params: Params) -> Result<Json<RunIds>, ApiError> {
    let service = known_service(&state, &params, "service")?;
    let mut run_ids = Vec::new();
    for schedule in state.backend.list_schedules(Some(&service)).await? {
        if schedule.spec.suspend {
            continue;
        }
        let run = super::schedules::trigger(&state, &schedule).await?;
        run_ids.push(run.metadata.name.unwrap_or_default());
    }
    Ok(Json(RunIds { run_ids }))
}

/// `GET /api/status?run_id=ID`: a run's phase, attempts, summary, categories and report.
#[utoipa::path(get, path = "/api/status", tag = "legacy",
    params(("run_id" = String, Query, description = "Run id", pattern = "\\S")),
    responses((status = 200, description = "The run's state", body = LegacyStatus), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn status(State(state): State<AppState>, params: Params) -> Result<Json<LegacyStatus>, ApiError> {
    let id = params.required("run_id")?;
    let run = find_run(&state, id, "run_id").await?;
    let run = super::runs::with_queue_position(&state, run).await?;
    Ok(Json(LegacyStatus::of(&run)))
}
