//! `/api/v1/regressions`: manual regression campaigns in Kubernetes shape (the same YAML works
//! with `kubectl` in operator mode). Creating one checks its spec against packs_config and
//! stores it; everything else — test management, the ticket, the emails — is the
//! reconciler's, whose progress shows in `status`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery};
use super::schedules::Deleted;
use super::spec::{REGRESSION_FIELDS, parse_spec, patched_spec};
use super::v1::{ObjectList, parse_object};
use super::{ApiError, AppState};
use crate::crd::{FINALIZER_REGRESSION, LABEL_SERVICE, Regression, RegressionSpec};
use crate::runs::check_object_name;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/regressions",
            get(regressions_list).post(regressions_create),
        )
        .route(
            "/api/v1/regressions/{name}",
            get(regressions_get)
                .patch(regressions_patch)
                .delete(regressions_delete),
        )
}

/// Why a regression is refused when no test management is configured.
pub const NO_TMS: &str = "test management is not configured on this server, so a regression could only fail: \
set TOMATO_TMS_URL, TOMATO_TMS_USER and TOMATO_TMS_PASSWORD (Kiwi TCMS) and restart Tomato";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegressionsQuery {
    /// Only regressions of this service.
    service: Option<String>,
}

/// A name from the service and the version: `demo-2-4-0-x7k2q`.
fn generated_name(spec: &RegressionSpec) -> String {
    let version: String = spec
        .version
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let base = format!("{}-{}", spec.service, version.trim_matches('-'));
    let base: String = base.chars().take(50).collect();
    format!(
        "{}-{}",
        base.trim_end_matches('-').replace("--", "-"),
        crate::crd::random_suffix(5)
    )
}

/// List regressions, newest first.
#[utoipa::path(get, path = "/api/v1/regressions", tag = "regressions", params(RegressionsQuery),
    responses((status = 200, description = "The regressions, newest first", body = ref("#/components/schemas/RegressionList"))))]
pub async fn regressions_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RegressionsQuery>,
) -> Result<Json<ObjectList<Regression>>, ApiError> {
    super::v1::check_service_filter(&state, q.service.as_deref())?;
    let items = state.backend.list_regressions(q.service.as_deref()).await?;
    Ok(Json(ObjectList::of("RegressionList", items)))
}

/// Create a regression. An unknown service, a stand the service does not have, no plan (and
/// no default `regression.plan`), no assessors, a past deadline or a malformed queue or issue
/// key is a 400 naming the field, and nothing is stored. Without test management configured
/// every regression is refused (409): it could only fail. (An unknown plan or assessor is
/// found out by the reconciler, which says so in the status.)
#[utoipa::path(post, path = "/api/v1/regressions", tag = "regressions",
    request_body(content = ref("#/components/schemas/RegressionRequest"), description = "A Regression: {\"metadata\": {\"name\"?}, \"spec\": {\"service\", \"version\", \"plan\"?, \"stand\", \"assessors\", \"deadline\"?, \"queue\"?, \"issueKey\"?, \"emails\"?}}"),
    responses((status = 201, description = "The stored Regression", body = ref("#/components/schemas/Regression")), (status = 400, body = super::ErrorBody),
        (status = 409, description = "Exists already, or no test management is configured", body = super::ErrorBody)))]
pub async fn regressions_create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !state.tms_configured {
        return Err(ApiError::conflict(NO_TMS));
    }
    let req = parse_object(&body, "Regression")?;
    let spec: RegressionSpec = parse_spec(
        req.spec
            .ok_or_else(|| ApiError::bad_request("spec", "spec is required"))?,
        REGRESSION_FIELDS,
    )?;
    // Every field at fault at once (the form shows them all), the first also as `error`.
    let mut errors: Vec<super::FieldError> = crate::regression::plan::spec_problems(&spec, &state.config)
        .into_iter()
        .map(|e| super::FieldError {
            parameter: format!("spec.{}", e.field),
            error: e.message,
        })
        .collect();
    if let Some(d) = spec.deadline.filter(|d| *d <= chrono::Utc::now()) {
        errors.push(super::FieldError {
            parameter: "spec.deadline".into(),
            error: format!("{} is in the past", d.to_rfc3339()),
        });
    }
    if let Some(e) = ApiError::fields(errors) {
        return Err(e);
    }
    let name = match (req.metadata.name, req.metadata.generate_name) {
        (Some(n), _) => n,
        (None, Some(prefix)) => format!("{prefix}{}", crate::crd::random_suffix(5)),
        (None, None) => generated_name(&spec),
    };
    check_object_name(&name).map_err(|e| ApiError::bad_request("metadata.name", e))?;
    let mut labels = req.metadata.labels;
    labels.insert(LABEL_SERVICE.to_string(), spec.service.clone());
    let mut regression = Regression::new(&name, spec);
    regression.metadata.labels = Some(labels);
    regression.metadata.finalizers = Some(vec![FINALIZER_REGRESSION.to_string()]);
    let stored = state.backend.create_regression(regression).await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

async fn find(state: &AppState, name: &str) -> Result<Regression, ApiError> {
    state.backend.get_regression(name).await?.ok_or_else(|| {
        ApiError::not_found(
            "name",
            format!("regression {q_name} not found", q_name = crate::text::quote(name)),
        )
    })
}

/// Get a regression, with its progress in `status`.
#[utoipa::path(get, path = "/api/v1/regressions/{name}", tag = "regressions", params(("name" = String, Path, description = "Regression")),
    responses((status = 200, description = "The Regression", body = ref("#/components/schemas/Regression")), (status = 404, body = super::ErrorBody)))]
pub async fn regressions_get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Regression>, ApiError> {
    Ok(Json(find(&state, &name).await?))
}

/// Change a regression (a JSON merge patch of `spec`). Only `deadline` — a release slips, an
/// `Overdue` regression with a later deadline is `InProgress` again — and `emails` can change;
/// any other field is a 400 naming it, as is a new deadline in the past. Emails already sent
/// to the assessors are not sent again.
#[utoipa::path(patch, path = "/api/v1/regressions/{name}", tag = "regressions", params(("name" = String, Path, description = "Regression")),
    request_body(content = ref("#/components/schemas/SpecPatch"), description = "{\"spec\": {\"deadline\": \"2026-12-01T18:00:00Z\"}}"),
    responses((status = 200, description = "The Regression", body = ref("#/components/schemas/Regression")), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn regressions_patch(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Regression>, ApiError> {
    let current = find(&state, &name).await?;
    let spec: RegressionSpec = parse_spec(patched_spec(&current.spec, &body)?, REGRESSION_FIELDS)?;
    let field_error =
        |e: crate::packs::InputError| ApiError::bad_request(format!("spec.{}", e.field), e.message);
    crate::regression::plan::check_change(&current.spec, &spec).map_err(field_error)?;
    // What may change is checked here; the rest was checked when it was created (packs_config
    // may have changed since, which is no reason to refuse a new deadline).
    for e in &spec.emails {
        crate::packs::check_email(e).map_err(|m| ApiError::bad_request("spec.emails", m))?;
    }
    if let Some(d) = spec
        .deadline
        .filter(|d| Some(*d) != current.spec.deadline && *d <= chrono::Utc::now())
    {
        return Err(ApiError::bad_request(
            "spec.deadline",
            format!("{} is in the past", d.to_rfc3339()),
        ));
    }
    Ok(Json(state.backend.replace_regression(&name, spec).await?))
}

/// Delete a regression: its test run in test management is stopped, then it goes.
#[utoipa::path(delete, path = "/api/v1/regressions/{name}", tag = "regressions", params(("name" = String, Path, description = "Regression")),
    responses((status = 202, description = "Deletion under way: its test run in test management is stopped first", body = Deleted), (status = 404, body = super::ErrorBody)))]
pub async fn regressions_delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    match state.backend.delete_regression(&name).await? {
        true => Ok((StatusCode::ACCEPTED, Json(Deleted { deleted: name })).into_response()),
        false => Err(ApiError::not_found(
            "name",
            format!(
                "regression {q_name} not found",
                q_name = crate::text::quote(&name)
            ),
        )),
    }
}
