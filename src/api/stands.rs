//! `/api/v1/stands`: the stands an outage holds ([`crate::outage`]), and resuming one by hand.

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Serialize;

use super::extract::ApiPath;
use super::{ApiError, AppState};
use crate::outage::Hold;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/stands", get(stands_list))
        .route("/api/v1/stands/{stand}/resume", post(stands_resume))
}

/// The held stands.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeldStands {
    pub items: Vec<Hold>,
}

/// List the stands an outage holds: runs on them wait until the stand's probe answers or
/// someone resumes it.
#[utoipa::path(get, path = "/api/v1/stands", tag = "stands",
    responses((status = 200, description = "The held stands", body = HeldStands)))]
pub async fn stands_list(State(state): State<AppState>) -> Result<Json<HeldStands>, ApiError> {
    Ok(Json(HeldStands {
        items: state.backend.stand_holds().await?,
    }))
}

/// What resuming did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Resumed {
    /// The stand, normalised (host and port).
    pub stand: String,
    /// How many records held it.
    pub resolved: usize,
}

/// Resume a held stand: its queued runs start. 404 when no outage holds it.
#[utoipa::path(post, path = "/api/v1/stands/{stand}/resume", tag = "stands",
    params(("stand" = String, Path, description = "The stand (host, or host:port)")),
    responses((status = 200, description = "Resumed", body = Resumed), (status = 404, body = super::ErrorBody)))]
pub async fn stands_resume(
    State(state): State<AppState>,
    ApiPath(stand): ApiPath<String>,
) -> Result<Json<Resumed>, ApiError> {
    let key = crate::queue::stand_key(&stand);
    let resolved = state
        .backend
        .resume_stand(&key, "resumed through the API")
        .await?;
    if resolved == 0 {
        return Err(ApiError::not_found(
            "stand",
            format!("no outage holds stand {}", crate::text::quote(&key)),
        ));
    }
    tracing::info!(stand = key, resolved, "stand resumed by hand");
    Ok(Json(Resumed { stand: key, resolved }))
}
