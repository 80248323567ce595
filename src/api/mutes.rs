//! `/api/v1/mutes`: known failures muted with a reason, a ticket and an expiry (issue 17
//! item 5), as Mute objects in Kubernetes shape (the same YAML works with `kubectl` in
//! operator mode). A mute counts from the next attempt that ends; see [`crate::mute`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery};
use super::schedules::Deleted;
use super::spec::{Kind, parse_spec};
use super::v1::{ObjectList, parse_object};
use super::{ApiError, AppState, FieldError};
use crate::crd::{LABEL_SERVICE, Mute, MuteSpec};
use crate::runs::check_object_name;

/// Fields of a Mute spec.
pub const MUTE_FIELDS: &[(&str, Kind)] = &[
    ("service", Kind::Str),
    ("test", Kind::Str),
    ("signature", Kind::Str),
    ("reason", Kind::Str),
    ("ticket", Kind::Str),
    ("expires", Kind::Str),
    ("liftWhenTicketClosed", Kind::Bool),
    ("author", Kind::Str),
];

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/mutes", get(mutes_list).post(mutes_create))
        .route("/api/v1/mutes/{name}", get(mutes_get).delete(mutes_delete))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MutesQuery {
    /// Only mutes of this service.
    service: Option<String>,
}

/// List mutes (in force or not: `status.state` says), by name.
#[utoipa::path(get, path = "/api/v1/mutes", tag = "mutes", params(MutesQuery),
    responses((status = 200, description = "The mutes, by name", body = ref("#/components/schemas/MuteList"))))]
pub async fn mutes_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<MutesQuery>,
) -> Result<Json<ObjectList<Mute>>, ApiError> {
    super::v1::check_service_filter(&state, q.service.as_deref())?;
    let items = state.backend.list_mutes(q.service.as_deref()).await?;
    Ok(Json(ObjectList::of("MuteList", items)))
}

/// Checks a mute spec completely, naming every field at fault at once.
pub fn checked_spec(state: &AppState, spec: serde_json::Value) -> Result<MuteSpec, ApiError> {
    let spec: MuteSpec = parse_spec(spec, MUTE_FIELDS)?;
    let mut errors = Vec::new();
    if state.config.service(&spec.service).is_none() {
        let known: Vec<&str> = state.config.services().map(|s| s.name.as_str()).collect();
        errors.push(FieldError {
            parameter: "spec.service".into(),
            error: format!(
                "unknown service {}; known: {}",
                crate::text::quote(&spec.service),
                known.join(", ")
            ),
        });
    }
    errors.extend(
        crate::mute::check_spec(&spec, chrono::Utc::now())
            .into_iter()
            .map(|(field, error)| FieldError {
                parameter: format!("spec.{field}"),
                error,
            }),
    );
    if spec.lift_when_ticket_closed && spec.ticket.is_some() && !state.tracker_configured {
        errors.push(FieldError {
            parameter: "spec.liftWhenTicketClosed".into(),
            error: "no tracker is configured on this server (TOMATO_TRACKER_URL), so the ticket could not be read"
                .into(),
        });
    }
    match ApiError::fields(errors) {
        Some(e) => Err(e),
        None => Ok(spec),
    }
}

/// Stores a checked mute: its name (given, from `generateName`, or `<service>-mute-xxxxx`:
/// generated names are tried again on a clash) and the service label.
pub async fn store_mute(
    state: &AppState,
    name: Option<String>,
    generate_name: Option<String>,
    mut labels: std::collections::BTreeMap<String, String>,
    spec: MuteSpec,
) -> Result<Mute, ApiError> {
    labels.insert(LABEL_SERVICE.to_string(), spec.service.clone());
    // A service name may hold `_` and be 63 characters long; an object name may not.
    let base: String = spec
        .service
        .replace('_', "-")
        .chars()
        .take(45)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    let generated = name.is_none();
    let mut tries = 0;
    loop {
        let name = match (&name, &generate_name) {
            (Some(n), _) => n.clone(),
            (None, Some(prefix)) => format!("{prefix}{}", crate::crd::random_suffix(5)),
            (None, None) => format!("{base}-mute-{}", crate::crd::random_suffix(5)),
        };
        check_object_name(&name).map_err(|e| ApiError::bad_request("metadata.name", e))?;
        let mut mute = Mute::new(&name, spec.clone());
        mute.metadata.labels = Some(labels.clone());
        match state.backend.create_mute(mute).await {
            Err(crate::store::StoreError::AlreadyExists { .. }) if generated && tries < 3 => tries += 1,
            res => return Ok(res?),
        }
    }
}

/// Mute a test's failures (or one signature of them). An unknown service, an empty test id or
/// reason, a malformed signature or ticket, an expiry in the past or more than 366 days away,
/// or `liftWhenTicketClosed` without a ticket (or without a tracker) is a 400 naming the
/// field, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/mutes", tag = "mutes",
    request_body(content = ref("#/components/schemas/MuteRequest"), description = "A Mute: {\"metadata\": {\"name\"?}, \"spec\": {\"service\", \"test\", \"signature\"?, \"reason\", \"ticket\"?, \"expires\", \"liftWhenTicketClosed\"?}}"),
    responses((status = 201, description = "The stored Mute", body = ref("#/components/schemas/Mute")), (status = 400, body = super::ErrorBody),
        (status = 409, description = "A mute of that name exists", body = super::ErrorBody)))]
pub async fn mutes_create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = parse_object(&body, "Mute")?;
    let spec = checked_spec(
        &state,
        req.spec
            .ok_or_else(|| ApiError::bad_request("spec", "spec is required"))?,
    )?;
    let stored = store_mute(
        &state,
        req.metadata.name,
        req.metadata.generate_name,
        req.metadata.labels,
        spec,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// Get a mute.
#[utoipa::path(get, path = "/api/v1/mutes/{name}", tag = "mutes", params(("name" = String, Path, description = "Mute")),
    responses((status = 200, description = "The Mute", body = ref("#/components/schemas/Mute")), (status = 404, body = super::ErrorBody)))]
pub async fn mutes_get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Mute>, ApiError> {
    check_lookup_name(&name)?;
    state
        .backend
        .get_mute(&name)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

/// Delete a mute (unmute): the test's failures count again from the next attempt that ends.
#[utoipa::path(delete, path = "/api/v1/mutes/{name}", tag = "mutes", params(("name" = String, Path, description = "Mute")),
    responses((status = 200, description = "Deleted", body = Deleted), (status = 404, body = super::ErrorBody)))]
pub async fn mutes_delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    check_lookup_name(&name)?;
    if !state.backend.delete_mute(&name).await? {
        return Err(not_found(&name));
    }
    Ok(Json(Deleted { deleted: name }))
}

/// A name to look up: any name Kubernetes allows for a custom resource (a DNS subdomain, at
/// most 253 characters: a Mute made with kubectl may have a longer name than the API makes).
/// Any other name cannot exist: it is answered 404 without asking the backend (so no decoded
/// `/` reaches a Kubernetes API path).
fn check_lookup_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok { Ok(()) } else { Err(not_found(name)) }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found("name", format!("mute {} not found", crate::text::quote(name)))
}
