//! `/api/v1`: runs (list, create, get, cancel, re-prioritise, tests, logs) and services, with
//! objects in Kubernetes shape so the same JSON or YAML works with `kubectl` in operator mode.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery};
use super::runs::{
    ServiceQueue, TestView, find_run, new_run, queue_view, store_run, test_views, with_queue_position,
    with_queue_positions,
};
use super::spec::{RUN_FIELDS, parse_spec};
use super::{ApiError, AppState, FieldError};
use crate::backend::Artifact;
use crate::crd::{Phase, Priority, PriorityError, TestRun, TestRunSpec};
use crate::store::{Cursor, ListFilter};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1", get(index))
        .route("/api/v1/", get(index))
        .route("/api/v1/openapi.json", get(super::openapi::openapi_json))
        .route("/api/v1/runs", get(runs_list).post(runs_create))
        .route(
            "/api/v1/runs/{id}",
            get(runs_get).delete(runs_cancel).patch(runs_patch),
        )
        .route("/api/v1/runs/{id}/tests", get(runs_tests))
        .route("/api/v1/runs/{id}/compare", get(runs_compare))
        .route("/api/v1/runs/{id}/attempts/{n}/log", get(attempt_log))
        .route("/api/v1/runs/{id}/attempts/{n}/junit", get(attempt_junit))
        .route(
            "/api/v1/runs/{id}/attempts/{n}/attachments/{name}",
            get(super::allure::attempt_attachment),
        )
        .route("/api/v1/services", get(services_list))
        .route("/api/v1/services/{name}", get(services_get))
        .route("/api/v1/services/{name}/queue", get(services_queue))
        .route("/api/v1/services/{name}/tests/{id}", get(services_test_history))
        .route(
            "/api/v1/services/{name}/rules/suggestions",
            get(services_rule_suggestions),
        )
}

/// What `GET /api/v1` answers: where the API's document and collections are.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiIndex {
    pub name: &'static str,
    pub api_version: &'static str,
    /// The OpenAPI document describing every endpoint.
    pub openapi: &'static str,
    /// Each collection's URL.
    pub links: BTreeMap<&'static str, &'static str>,
}

/// The API's index: a link to the OpenAPI document and to each collection.
#[utoipa::path(get, path = "/api/v1", tag = "runs", responses((status = 200, description = "The API's index", body = ApiIndex)))]
pub async fn index() -> Json<ApiIndex> {
    Json(ApiIndex {
        name: "Tomato API",
        api_version: "v1",
        openapi: "/api/v1/openapi.json",
        links: BTreeMap::from([
            ("openapi", "/api/v1/openapi.json"),
            ("runs", "/api/v1/runs"),
            ("services", "/api/v1/services"),
            ("schedules", "/api/v1/schedules"),
            ("regressions", "/api/v1/regressions"),
        ]),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this service.
    service: Option<String>,
    /// Only runs in this phase (comma-separated for several).
    phase: Option<String>,
    /// Only runs started by this schedule.
    schedule: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The next page: the `metadata.continue` of the previous answer (with the same filters).
    #[serde(rename = "continue")]
    #[param(rename = "continue")]
    continue_: Option<String>,
}

/// A list in Kubernetes shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ObjectList<T> {
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub kind: String,
    pub items: Vec<T>,
    pub metadata: ListMeta,
}

/// A list's metadata, as in the Kubernetes API.
#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct ListMeta {
    /// Present when more items follow: the token for the next page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_: Option<String>,
}

impl<T> ObjectList<T> {
    /// A whole list (no further page).
    pub fn of(kind: &str, items: Vec<T>) -> ObjectList<T> {
        ObjectList {
            api_version: "tomato.dev/v1alpha1",
            kind: kind.into(),
            items,
            metadata: ListMeta::default(),
        }
    }
}

/// List runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, description = "The runs, newest first", body = ref("#/components/schemas/TestRunList")),
        (status = 400, body = super::ErrorBody)))]
pub async fn runs_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<ObjectList<TestRun>>, ApiError> {
    let mut phases = Vec::new();
    for p in q
        .phase
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        phases.push(
            p.parse::<Phase>()
                .map_err(|e| ApiError::bad_request("phase", e))?,
        );
    }
    check_service_filter(&state, q.service.as_deref())?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit", "must be 1–1000"));
    }
    let before = match q.continue_.as_deref() {
        None | Some("") => None,
        Some(token) => Some(Cursor::parse(token).ok_or_else(|| {
            ApiError::bad_request(
                "continue",
                "is not a token this server gave: pass back the metadata.continue of the previous page",
            )
        })?),
    };
    let filter = ListFilter {
        service: q.service,
        phases,
        label: q.schedule.map(|s| (crate::crd::LABEL_SCHEDULE.to_string(), s)),
        // One more than asked tells whether another page follows.
        newest: Some(limit + 1),
        before,
    };
    let mut items = state.backend.list_runs(&filter).await?;
    let more = items.len() > limit;
    items.truncate(limit);
    let mut list = ObjectList::of("TestRunList", with_queue_positions(&state, items).await?);
    if more {
        list.metadata.continue_ = list.items.last().map(|r| Cursor::after(r).token());
    }
    Ok(Json(list))
}

/// Reads a Kubernetes-shaped object of `kind` as a client sends it: a body that is not one,
/// or names another apiVersion or kind, is a 400 naming the field; labels are checked (see
/// [`check_labels`]).
pub fn parse_object(body: &[u8], kind: &str) -> Result<ObjectRequest, ApiError> {
    let body = super::spec::json_object(body)?;
    let req: ObjectRequest =
        serde_path_to_error::deserialize(serde_json::Value::Object(body)).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path == "?" {
                "body".to_string()
            } else {
                path
            };
            ApiError::bad_request(field, format!("the body is not a {kind}: {}", e.inner()))
        })?;
    if let Some(v) = req.api_version.as_deref().filter(|v| *v != "tomato.dev/v1alpha1") {
        return Err(ApiError::bad_request(
            "apiVersion",
            format!(
                "expected tomato.dev/v1alpha1, got {q_v}",
                q_v = crate::text::quote(v)
            ),
        ));
    }
    if let Some(k) = req.kind.as_deref().filter(|k| *k != kind) {
        return Err(ApiError::bad_request(
            "kind",
            format!("expected {kind}, got {q_k}", q_k = crate::text::quote(k)),
        ));
    }
    check_labels(&req.metadata.labels)?;
    Ok(req)
}

/// A client's labels: Kubernetes syntax (an optional DNS prefix and `/`, a name of at most 63
/// characters; values of at most 63), and none under `tomato.dev/`, which Tomato sets itself
/// and acts on (a run labelled with a schedule's name belongs to that schedule).
pub fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    for (key, value) in labels {
        let field = format!("metadata.labels.{key}");
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let prefix_ok = prefix.is_empty()
            || (prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                }));
        if !prefix_ok || !name_ok(name) {
            return Err(ApiError::bad_request(
                field,
                format!(
                    "{q_key} is not a label key ([prefix/]name: letters, digits, '-', '_', '.'; at most 63)",
                    q_key = crate::text::quote(key)
                ),
            ));
        }
        if prefix == "tomato.dev" || prefix.ends_with(".tomato.dev") {
            return Err(ApiError::bad_request(
                field,
                format!("{q_key} is set by Tomato itself", q_key = crate::text::quote(key)),
            ));
        }
        if !value.is_empty() && !name_ok(value) {
            return Err(ApiError::bad_request(
                field,
                format!(
                    "{q_value} is not a label value (letters, digits, '-', '_', '.'; at most 63)",
                    q_value = crate::text::quote(value)
                ),
            ));
        }
    }
    Ok(())
}

/// A `?service=` filter must name a service of packs_config (a typo would otherwise read as
/// "nothing there").
pub fn check_service_filter(state: &AppState, service: Option<&str>) -> Result<(), ApiError> {
    match service {
        Some(s) if state.config.service(s).is_none() => {
            let known: Vec<&str> = state.config.services().map(|s| s.name.as_str()).collect();
            Err(ApiError::bad_request(
                "service",
                format!(
                    "unknown service {q_s}; known: {}",
                    known.join(", "),
                    q_s = crate::text::quote(s)
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A TestRun as a client sends it: `metadata` (optional name, labels) and `spec`.
#[derive(Deserialize)]
pub struct ObjectRequest {
    #[serde(rename = "apiVersion", alias = "api_version")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: RequestMeta,
    pub spec: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub struct RequestMeta {
    pub name: Option<String>,
    #[serde(rename = "generateName", alias = "generate_name")]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Create a run from a TestRun-shaped body; it is queued at once.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs",
    request_body(content = ref("#/components/schemas/TestRunRequest"), description = "A TestRun: {\"metadata\": {\"name\"?, \"labels\"?}, \"spec\": {...}}"),
    responses((status = 201, description = "The stored TestRun", body = ref("#/components/schemas/TestRun")), (status = 400, body = super::ErrorBody),
        (status = 409, description = "A run of that name exists", body = super::ErrorBody)))]
pub async fn runs_create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = parse_object(&body, "TestRun")?;
    let spec = req
        .spec
        .ok_or_else(|| ApiError::bad_request("spec", "spec is required"))?;
    let spec: TestRunSpec = parse_spec(spec, RUN_FIELDS)?;
    // Every field at fault at once, as `spec.<field>`; then the name.
    let mut errors: Vec<FieldError> = match state.config.check_run_all(&spec.template) {
        Ok(_) => Vec::new(),
        Err(all) => all
            .into_iter()
            .map(|e| spec_field_error(e.field, e.message))
            .collect(),
    };
    if let Some(Err(e)) = spec.timeout.as_deref().map(crate::duration::parse) {
        errors.push(spec_field_error("timeout", e));
    }
    if let Some(Err(e)) = spec.retention.as_ref().map(crate::retention::check_override) {
        errors.push(spec_field_error(e.field, e.message));
    }
    if spec.cancel {
        errors.push(spec_field_error(
            "cancel",
            "a new run cannot start cancelled".into(),
        ));
    }
    if let Some(e) = ApiError::fields(errors) {
        return Err(e);
    }
    let generated = req.metadata.name.is_none();
    let name = match (req.metadata.name, req.metadata.generate_name) {
        (Some(n), _) => Some(n),
        (None, Some(prefix)) => Some(format!("{prefix}{}", crate::crd::random_suffix(5))),
        (None, None) => None,
    };
    let mut run = new_run(
        &state.config,
        spec.template,
        spec.run_type,
        spec.timeout,
        name,
        req.metadata.labels,
    )
    .map_err(|e| {
        let field = match e.field.starts_with("metadata.") {
            true => e.field.to_string(),
            false => format!("spec.{}", e.field),
        };
        ApiError::bad_request(field, e.message)
    })?;
    // Checked above; only runs created here carry their own retention (schedules and the
    // legacy API leave it to the service's).
    run.spec.retention = spec.retention;
    let run = store_run(&state, run, generated).await?;
    let run = with_queue_position(&state, run).await?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

fn spec_field_error(field: &str, error: String) -> FieldError {
    FieldError {
        parameter: format!("spec.{field}"),
        error,
    }
}

/// Get a run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run name")),
    responses((status = 200, description = "The TestRun", body = ref("#/components/schemas/TestRun")), (status = 404, body = super::ErrorBody)))]
pub async fn runs_get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TestRun>, ApiError> {
    Ok(Json(find_run(&state, &id, "id").await?))
}

/// Cancel a run: a queued run ends at once, a running one is stopped (its process group is
/// killed). The run stays in history as `Cancelled`. A run that already has its verdict
/// (reporting or finished) is a 409: cancelling would change nothing. Cancelling a cancelled
/// run again is accepted.
#[utoipa::path(delete, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run name")),
    responses((status = 202, description = "The TestRun with spec.cancel set", body = ref("#/components/schemas/TestRun")), (status = 404, body = super::ErrorBody),
        (status = 409, description = "The run already has its verdict", body = super::ErrorBody)))]
pub async fn runs_cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let run = find_run(&state, &id, "id").await?;
    check_cancellable(&run)?;
    let run = state.backend.cancel_run(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

fn check_cancellable(run: &TestRun) -> Result<(), ApiError> {
    let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if run.spec.cancel || phase.can_cancel() {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "run {} is {} and already has its verdict; there is nothing to cancel",
        run.metadata.name.as_deref().unwrap_or_default(),
        phase.as_str()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPatch {
    spec: PatchSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    /// A JSON number: `4.0` is the integer 4 to JSON Schema (and to the document), so it is
    /// read as one; a fraction is refused below.
    priority: Option<serde_json::Number>,
    cancel: Option<bool>,
}

/// Change a run's priority or cancel it (a JSON merge patch of `spec.priority` / `spec.cancel`).
#[utoipa::path(patch, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run name")),
    request_body(content = ref("#/components/schemas/RunPatch"), description = "{\"spec\": {\"priority\": 0}} or {\"spec\": {\"cancel\": true}}"),
    responses((status = 200, description = "The TestRun", body = ref("#/components/schemas/TestRun")), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "Only a queued run can change priority; a run with its verdict cannot be cancelled, a cancelled one not resumed", body = super::ErrorBody)))]
pub async fn runs_patch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<TestRun>, ApiError> {
    // Read as an object first: serde takes a struct from an array too (`[[1, true]]` would
    // set the priority and cancel the run).
    let body = super::spec::json_object(&body)?;
    let patch: RunPatch = serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
        ApiError::bad_request(
            "spec",
            format!("only spec.priority and spec.cancel can change: {e}"),
        )
    })?;
    let mut run = find_run(&state, &id, "id").await?;
    // Checked before anything changes. The patch is well formed; it is the run's state that
    // refuses it, hence 409 (it was a 400 before the document had to say which).
    if patch.spec.cancel == Some(false) && run.spec.cancel {
        return Err(ApiError {
            parameter: Some("spec.cancel".into()),
            ..ApiError::conflict("a cancelled run cannot be resumed")
        });
    }
    if patch.spec.cancel == Some(true) {
        check_cancellable(&run)?;
    }
    if let Some(p) = patch.spec.priority {
        let whole = p.as_i64().or_else(|| {
            p.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        });
        let p = whole
            .map_or_else(|| Err(PriorityError::new(&p)), Priority::try_from)
            .map_err(|e| ApiError::bad_request("spec.priority", e.to_string()))?;
        if run.status.as_ref().is_some_and(|s| s.phase != Phase::Queued) && p != run.spec.template.priority {
            return Err(ApiError::conflict("only a queued run can change priority"));
        }
        run = state.backend.set_priority(&id, p).await?;
    }
    if patch.spec.cancel == Some(true) {
        run = state.backend.cancel_run(&id).await?;
    }
    Ok(Json(with_queue_position(&state, run).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestsQuery {
    /// Only tests with this verdict (`failed`, `broken`, `flaky`, `passed`, `skipped`; comma-separated;
    /// empty entries are ignored).
    verdict: Option<String>,
}

/// The tests of a run with their verdicts, failing first.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tests", tag = "runs",
    params(("id" = String, Path, description = "Run name"), TestsQuery),
    responses((status = 200, description = "The tests, failing first", body = Vec<TestView>), (status = 404, body = super::ErrorBody)))]
pub async fn runs_tests(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TestsQuery>,
) -> Result<Json<Vec<TestView>>, ApiError> {
    const VERDICTS: &[&str] = &["failed", "broken", "flaky", "passed", "skipped"];
    // Empty entries count as absent, as for `phase` (`?verdict=` is no filter).
    let wanted: Vec<&str> = q
        .verdict
        .as_deref()
        .map(|v| v.split(',').map(str::trim).filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    if let Some(bad) = wanted.iter().find(|v| !VERDICTS.contains(v)) {
        return Err(ApiError::bad_request(
            "verdict",
            format!(
                "unknown verdict {q_bad}; known: {}",
                VERDICTS.join(", "),
                q_bad = crate::text::quote(bad)
            ),
        ));
    }
    let run = find_run(&state, &id, "id").await?;
    let tests = test_views(&state, &run).await?;
    Ok(Json(
        tests
            .into_iter()
            .filter(|t| wanted.is_empty() || wanted.contains(&t.verdict.as_str()))
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only the last N bytes (cut at a line start).
    #[param(minimum = 0)]
    tail: Option<i64>,
}

/// An attempt's log (stdout and stderr interleaved), as plain text. `n` is the position in
/// `status.attempts`, from 1.
#[utoipa::path(get, path = "/api/v1/runs/{id}/attempts/{n}/log", tag = "runs",
    params(("id" = String, Path, description = "Run name"), ("n" = usize, Path, description = "Attempt position, from 1"), LogQuery),
    responses((status = 200, description = "The log", content_type = "text/plain", body = String), (status = 404, body = super::ErrorBody),
        (status = 410, description = "The run's files expired by retention", body = super::ErrorBody)))]
pub async fn attempt_log(
    State(state): State<AppState>,
    ApiPath((id, n)): ApiPath<(String, usize)>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    // The document says `minimum: 0` (and int64): both ends are refused here, by name.
    let tail = q
        .tail
        .map(|t| {
            u64::try_from(t)
                .map_err(|_| ApiError::bad_request("tail", format!("must be at least 0, got {t}")))
        })
        .transpose()?;
    check_attempt(&state, &id, n).await?;
    let log = state
        .backend
        .attempt_artifact(&id, n, Artifact::Log { tail })
        .await?
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&log).into_owned();
    Ok((artifact_headers("text/plain; charset=utf-8"), text).into_response())
}

/// An attempt's JUnit XML as the framework wrote it.
#[utoipa::path(get, path = "/api/v1/runs/{id}/attempts/{n}/junit", tag = "runs",
    params(("id" = String, Path, description = "Run name"), ("n" = usize, Path, description = "Attempt position, from 1")),
    responses((status = 200, description = "The JUnit XML", content_type = "application/xml", body = String), (status = 404, body = super::ErrorBody),
        (status = 410, description = "The run's files expired by retention", body = super::ErrorBody)))]
pub async fn attempt_junit(
    State(state): State<AppState>,
    ApiPath((id, n)): ApiPath<(String, usize)>,
) -> Result<Response, ApiError> {
    let no_report = || ApiError::not_found("n", format!("attempt {n} of {id} wrote no junit.xml"));
    check_attempt(&state, &id, n).await?;
    let bytes = state
        .backend
        .attempt_artifact(&id, n, Artifact::Junit)
        .await?
        .ok_or_else(no_report)?;
    Ok((artifact_headers("application/xml"), bytes).into_response())
}

/// A 404 unless run `id` exists and has an `n`-th launch (`status.attempts`, from 1); a 410
/// when retention removed the run's files (its verdicts stay), saying when.
pub(super) async fn check_attempt(state: &AppState, id: &str, n: usize) -> Result<(), ApiError> {
    let run = find_run(state, id, "id").await?;
    let count = run.status.as_ref().map_or(0, |s| s.attempts.len());
    if n == 0 || n > count {
        return Err(ApiError::not_found(
            "n",
            format!("run {id} has {count} attempt(s); there is no attempt {n}"),
        ));
    }
    if let Some(at) = crate::retention::files_expired_at(&run) {
        return Err(ApiError::gone("id", files_expired_message(id, &at)));
    }
    Ok(())
}

/// What a client reads for a run whose files retention removed at `at`.
pub fn files_expired_message(id: &str, at: &str) -> String {
    format!(
        "the files of run {id} (logs, JUnit, attachments) {}; its verdicts are kept",
        crate::retention::files_expired_note(at)
    )
}

/// Headers of an attempt's files, which hold whatever the tests wrote: a browser opening one
/// (the run page links them) must not run it as a page of this origin — an XHTML `<script>`
/// inside a JUnit file would otherwise execute with the UI's stored token in reach.
fn artifact_headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 3] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ]
}

/// The last `tail` bytes of a text, from a line boundary (all of it without `tail`).
/// A service as API clients see it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub name: String,
    pub description: String,
    /// Stands must match this regex (whole string).
    pub stand_pattern: String,
    pub concurrency: u32,
    pub stand_concurrency: u32,
    pub retries: u8,
    pub packs: Vec<String>,
    /// Presets (`category`) and their packs.
    pub presets: BTreeMap<String, Vec<String>>,
}

fn service_view(s: &crate::packs::Service) -> ServiceView {
    ServiceView {
        name: s.name.clone(),
        description: s.description.clone(),
        stand_pattern: s.stand_pattern_source(),
        concurrency: s.concurrency,
        stand_concurrency: s.stand_concurrency,
        retries: s.retries,
        packs: s.packs.keys().cloned().collect(),
        presets: s.presets.clone(),
    }
}

/// Every service in packs_config.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", responses((status = 200, description = "The services", body = Vec<ServiceView>)))]
pub async fn services_list(State(state): State<AppState>) -> Json<Vec<ServiceView>> {
    Json(state.config.services().map(|s| service_view(s)).collect())
}

/// The service `name` of packs_config, or a 404 naming the path parameter `name`.
fn find_service<'a>(state: &'a AppState, name: &str) -> Result<&'a crate::packs::Service, ApiError> {
    state.config.service(name).map(|s| &**s).ok_or_else(|| {
        ApiError::not_found(
            "name",
            format!("unknown service {q_name}", q_name = crate::text::quote(name)),
        )
    })
}

/// One service.
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "services", params(("name" = String, Path, description = "Service")),
    responses((status = 200, description = "The service", body = ServiceView), (status = 404, body = super::ErrorBody)))]
pub async fn services_get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let s = find_service(&state, &name)?;
    Ok(Json(service_view(s)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct CompareQuery {
    /// The run to compare with (default: the previous comparable run, same service, stand,
    /// packs and category, that ended with a verdict; standalone mode).
    with: Option<String>,
    /// How much slower, in percent, a passing test must be to be listed (default 50; and at
    /// least 100 ms slower).
    #[param(minimum = 1, maximum = 10000)]
    slower_by: Option<u32>,
}

/// Two runs compared, as `/api/v1/runs/{id}/compare` answers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonView {
    pub run: String,
    pub with: String,
    #[serde(flatten)]
    pub comparison: crate::history::compare::Comparison,
}

/// Compare a run with an earlier one: newly failing and newly passing tests, those still
/// failing (the same way or not), those flaky in one run only, tests added and removed, and
/// passing tests that got slower.
#[utoipa::path(get, path = "/api/v1/runs/{id}/compare", tag = "runs",
    params(("id" = String, Path, description = "Run name"), CompareQuery),
    responses((status = 200, description = "The comparison", body = ComparisonView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn runs_compare(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> Result<Json<ComparisonView>, ApiError> {
    let slower_by = q.slower_by.unwrap_or(50);
    if !(1..=10_000).contains(&slower_by) {
        return Err(ApiError::bad_request(
            "slowerBy",
            format!("must be 1–10000 (percent), got {slower_by}"),
        ));
    }
    let run = find_run(&state, &id, "id").await?;
    let before = match q.with.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(find_run(&state, w, "with").await?),
        None => None,
    };
    let (before, comparison) =
        crate::history::compare_runs(state.backend.as_ref(), &run, before, f64::from(slower_by) / 100.0)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    "with",
                    format!(
                        "run {q_id} has no previous comparable run (same service, stand, packs and category, ended with a verdict): name one with ?with=",
                        q_id = crate::text::quote(&id)
                    ),
                )
            })?;
    Ok(Json(ComparisonView {
        run: id,
        with: before.metadata.name.unwrap_or_default(),
        comparison,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestHistoryQuery {
    /// Only runs on this stand.
    stand: Option<String>,
    /// How many of the test's newest runs (default 50, 1 to 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A test's history in a service, as `/api/v1/services/{name}/tests/{id}` answers it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestHistoryView {
    pub service: String,
    pub test: String,
    pub stand: Option<String>,
    #[serde(flatten)]
    pub timeline: crate::history::timeline::Timeline,
}

/// One test's history: its verdict in each of its last runs (newest first), failure and flake
/// rates overall and per stand, durations, and its failure signatures with when each was first
/// and last seen. Where history is kept: standalone mode, operator mode with a results
/// database (else 404 saying so).
#[utoipa::path(get, path = "/api/v1/services/{name}/tests/{id}", tag = "services",
    params(("name" = String, Path, description = "Service"), ("id" = String, Path, description = "Test id, as `/api/v1/runs/{id}/tests` gives it (URL-encoded)"), TestHistoryQuery),
    responses((status = 200, description = "The test's history", body = TestHistoryView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn services_test_history(
    State(state): State<AppState>,
    ApiPath((name, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TestHistoryQuery>,
) -> Result<Json<TestHistoryView>, ApiError> {
    find_service(&state, &name)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be 1–500, got {limit}"),
        ));
    }
    let stand = q.stand.filter(|s| !s.is_empty());
    let timeline = crate::history::test_timeline(state.backend.as_ref(), &name, &id, stand.as_deref(), limit)
        .await?
        .ok_or_else(|| ApiError::not_found("id", crate::history::NO_HISTORY))?;
    if timeline.runs.is_empty() {
        return Err(ApiError::not_found(
            "id",
            format!(
                "service {q_name} has no results of test {q_id}{on}",
                q_name = crate::text::quote(&name),
                q_id = crate::text::quote(&id),
                on = stand
                    .as_deref()
                    .map(|s| format!(" on stand {}", crate::text::quote(s)))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(Json(TestHistoryView {
        service: name,
        test: id,
        stand,
        timeline,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestionsQuery {
    /// The window of failures looked at, in days back from now (default 30, 1 to 90).
    #[param(minimum = 1, maximum = 90)]
    days: Option<u32>,
    /// The fewest unclassified failures a cluster needs for a rule (default 3, 1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    min: Option<u32>,
}

/// The rules proposed for a service, as `/api/v1/services/{name}/rules/suggestions` answers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionsView {
    pub service: String,
    pub days: u32,
    pub min: u32,
    /// Biggest cluster first.
    pub suggestions: Vec<crate::history::rules::Suggestion>,
}

/// Categories rules proposed for the service's unclassified failures: clustered by failure
/// signature over the last `days`, one `messageRegex` rule per cluster of at least `min`,
/// each back-tested on the window's failures (what it would match, how many unclassified,
/// and which categories it collides with). Where history is kept (else 404 saying so).
#[utoipa::path(get, path = "/api/v1/services/{name}/rules/suggestions", tag = "services",
    params(("name" = String, Path, description = "Service"), SuggestionsQuery),
    responses((status = 200, description = "The proposed rules", body = SuggestionsView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn services_rule_suggestions(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<SuggestionsQuery>,
) -> Result<Json<SuggestionsView>, ApiError> {
    find_service(&state, &name)?;
    let days = q.days.unwrap_or(30);
    if !(1..=90).contains(&days) {
        return Err(ApiError::bad_request("days", format!("must be 1–90, got {days}")));
    }
    let min = q.min.unwrap_or(3);
    if !(1..=1000).contains(&min) {
        return Err(ApiError::bad_request("min", format!("must be 1–1000, got {min}")));
    }
    let suggestions = crate::history::rule_suggestions(
        state.backend.as_ref(),
        &name,
        days,
        min as usize,
        chrono::Utc::now(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("name", crate::history::NO_HISTORY))?;
    Ok(Json(SuggestionsView {
        service: name,
        days,
        min,
        suggestions,
    }))
}

/// A service's queue: what runs now and what waits, in admission order.
#[utoipa::path(get, path = "/api/v1/services/{name}/queue", tag = "services", params(("name" = String, Path, description = "Service")),
    responses((status = 200, description = "The queue", body = ServiceQueue), (status = 404, body = super::ErrorBody)))]
pub async fn services_queue(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ServiceQueue>, ApiError> {
    find_service(&state, &name)?;
    Ok(Json(queue_view(&state, &name).await?.into()))
}
