//! `/api/v1/schedules`: NightlySchedules in Kubernetes shape (the same YAML works with
//! `kubectl` in operator mode), and starting a schedule's run by hand.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{ApiPath, ApiQuery};
use super::runs::store_run;
use super::spec::{SCHEDULE_FIELDS, parse_spec, patched_spec};
use super::v1::{ObjectList, parse_object};
use super::{ApiError, AppState, FieldError};
use crate::crd::{LABEL_SERVICE, NightlySchedule, NightlyScheduleSpec, TestRun};
use crate::runs::{check_object_name, manual_run_name, scheduled_run};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/schedules", get(schedules_list).post(schedules_create))
        .route(
            "/api/v1/schedules/{name}",
            get(schedules_get)
                .put(schedules_replace)
                .patch(schedules_patch)
                .delete(schedules_delete),
        )
        .route("/api/v1/schedules/{name}/trigger", post(schedules_trigger))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SchedulesQuery {
    /// Only schedules of this service.
    service: Option<String>,
}

/// Checks a schedule spec completely: its own fields, then its run template against
/// packs_config, naming every field at fault at once.
fn checked_spec(state: &AppState, spec: Value) -> Result<NightlyScheduleSpec, ApiError> {
    let spec: NightlyScheduleSpec = parse_spec(spec, SCHEDULE_FIELDS)?;
    let mut errors = Vec::new();
    if let Err(e) = crate::schedule::check_spec(&spec) {
        errors.push(FieldError {
            parameter: format!("spec.{}", e.field),
            error: e.message,
        });
    }
    if let Err(all) = state.config.check_run_all(&spec.template) {
        errors.extend(all.into_iter().map(|e| FieldError {
            parameter: format!("spec.{}", e.field),
            error: e.message,
        }));
    }
    match ApiError::fields(errors) {
        Some(e) => Err(e),
        None => Ok(spec),
    }
}

async fn find(state: &AppState, name: &str) -> Result<NightlySchedule, ApiError> {
    state.backend.get_schedule(name).await?.ok_or_else(|| {
        ApiError::not_found(
            "name",
            format!("schedule {q_name} not found", q_name = crate::text::quote(name)),
        )
    })
}

/// List schedules, by name.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(SchedulesQuery),
    responses((status = 200, description = "The schedules, by name", body = ref("#/components/schemas/NightlyScheduleList"))))]
pub async fn schedules_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SchedulesQuery>,
) -> Result<Json<ObjectList<NightlySchedule>>, ApiError> {
    super::v1::check_service_filter(&state, q.service.as_deref())?;
    let items = state.backend.list_schedules(q.service.as_deref()).await?;
    Ok(Json(ObjectList::of("NightlyScheduleList", items)))
}

/// Create a schedule. Invalid cron, unknown time zone, service or category, or a bad policy is a
/// 400 naming the field, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules",
    request_body(content = ref("#/components/schemas/NightlyScheduleRequest"), description = "A NightlySchedule: {\"metadata\": {\"name\"}, \"spec\": {...}}"),
    responses((status = 201, description = "The stored NightlySchedule", body = ref("#/components/schemas/NightlySchedule")), (status = 400, body = super::ErrorBody),
        (status = 409, description = "A schedule of that name exists", body = super::ErrorBody)))]
pub async fn schedules_create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = parse_object(&body, "NightlySchedule")?;
    let spec = checked_spec(
        &state,
        req.spec
            .ok_or_else(|| ApiError::bad_request("spec", "spec is required"))?,
    )?;
    let name = match (req.metadata.name, req.metadata.generate_name) {
        (Some(n), _) => n,
        (None, Some(prefix)) => format!("{prefix}{}", crate::crd::random_suffix(5)),
        (None, None) => format!(
            "{}-nightly-{}",
            spec.template.service,
            crate::crd::random_suffix(5)
        ),
    };
    check_object_name(&name).map_err(|e| ApiError::bad_request("metadata.name", e))?;
    let mut labels = req.metadata.labels;
    labels.insert(LABEL_SERVICE.to_string(), spec.template.service.clone());
    let mut schedule = NightlySchedule::new(&name, spec);
    schedule.metadata.labels = Some(labels);
    let stored = state.backend.create_schedule(schedule).await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// Get a schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path, description = "Schedule")),
    responses((status = 200, description = "The NightlySchedule", body = ref("#/components/schemas/NightlySchedule")), (status = 404, body = super::ErrorBody)))]
pub async fn schedules_get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<NightlySchedule>, ApiError> {
    Ok(Json(find(&state, &name).await?))
}

/// Replace a schedule's spec (its status and history stay).
#[utoipa::path(put, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path, description = "Schedule")),
    request_body(content = ref("#/components/schemas/NightlyScheduleRequest"), description = "A NightlySchedule"),
    responses((status = 200, description = "The NightlySchedule", body = ref("#/components/schemas/NightlySchedule")), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn schedules_replace(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<NightlySchedule>, ApiError> {
    let req = parse_object(&body, "NightlySchedule")?;
    if let Some(n) = req.metadata.name.as_deref().filter(|n| *n != name) {
        return Err(ApiError::bad_request(
            "metadata.name",
            format!(
                "{q_n} does not match the URL's {q_name}",
                q_n = crate::text::quote(n),
                q_name = crate::text::quote(&name)
            ),
        ));
    }
    let spec = checked_spec(
        &state,
        req.spec
            .ok_or_else(|| ApiError::bad_request("spec", "spec is required"))?,
    )?;
    find(&state, &name).await?;
    Ok(Json(state.backend.replace_schedule(&name, spec).await?))
}

/// Change some fields of a schedule's spec (a JSON merge patch of `spec`, e.g.
/// `{"spec": {"suspend": true}}`).
#[utoipa::path(patch, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path, description = "Schedule")),
    request_body(content = ref("#/components/schemas/SpecPatch"), description = "{\"spec\": {\"suspend\": true}}"),
    responses((status = 200, description = "The NightlySchedule", body = ref("#/components/schemas/NightlySchedule")), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn schedules_patch(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<NightlySchedule>, ApiError> {
    let current = find(&state, &name).await?;
    let spec = patched_spec(&current.spec, &body)?;
    let spec = checked_spec(&state, spec)?;
    Ok(Json(state.backend.replace_schedule(&name, spec).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: String,
}

/// Delete a schedule: it starts nothing more and its unfinished runs are cancelled (standalone
/// mode keeps its finished runs as history).
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path, description = "Schedule")),
    responses((status = 200, description = "Deleted", body = Deleted), (status = 404, body = super::ErrorBody)))]
pub async fn schedules_delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    if !state.backend.delete_schedule(&name).await? {
        return Err(ApiError::not_found(
            "name",
            format!("schedule {q_name} not found", q_name = crate::text::quote(&name)),
        ));
    }
    Ok(Json(Deleted { deleted: name }))
}

/// The run a trigger started, as stored.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Triggered {
    pub run_id: String,
    /// The TestRun.
    #[schema(value_type = Object)]
    pub run: TestRun,
}

/// Start a run of the schedule now (even if suspended; `/api/nightly` skips suspended ones).
#[utoipa::path(post, path = "/api/v1/schedules/{name}/trigger", tag = "schedules", params(("name" = String, Path, description = "Schedule")),
    responses((status = 200, description = "The run it started", body = Triggered), (status = 404, body = super::ErrorBody)))]
pub async fn schedules_trigger(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Triggered>, ApiError> {
    let schedule = find(&state, &name).await?;
    let run = trigger(&state, &schedule).await?;
    Ok(Json(Triggered {
        run_id: run.metadata.name.clone().unwrap_or_default(),
        run,
    }))
}

/// Queues one run of `schedule` now.
pub async fn trigger(state: &AppState, schedule: &NightlySchedule) -> Result<TestRun, ApiError> {
    let name = schedule.metadata.name.clone().unwrap_or_default();
    let run = scheduled_run(&state.config, schedule, manual_run_name(&name)).map_err(|e| {
        ApiError::bad_request(
            format!("spec.{}", e.field),
            format!("schedule {name}: {}", e.message),
        )
    })?;
    store_run(state, run, true).await
}
