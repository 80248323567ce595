//! The API: the old tool's four handles, the versioned REST API, its OpenAPI document and
//! metrics, with who may call what (`auth`) and one JSON error shape ([`ApiError`]).
//!
//! Handlers are thin: extract and check parameters, call the backend, map the result. Both
//! modes serve the same routes; only the [`Backend`] differs. [`crate::app`] assembles these
//! routes with the UI's into the server; the UI builds on this module, never the reverse.

mod allure;
mod auth;
mod de;
mod error;
mod extract;
mod legacy;
mod metrics;
pub mod mutes;
mod openapi;
mod regressions;
mod runs;
mod schedules;
mod spec;
mod stands;
mod uploads;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use allure::{AllureView, AttachmentView, StepView, attempt_extras};
pub use auth::{AuditLog, Auth, KubeAuth, Role, Tokens, audit_writes, authorize};
pub use error::{ApiError, ErrorBody, FieldError, json_errors};
/// The legacy handles' parameters (query string plus form or JSON body); public for the fuzzer.
pub use legacy::Params;
pub use regressions::NO_TMS;
pub use runs::{
    LegacyStatus, QueueEntry, QueueView, TestView, merged_tests, new_run, queue_view, test_views,
    with_queue_position,
};

use crate::backend::Backend;
use crate::packs::PacksConfig;

/// What handlers can reach: read-mostly, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<PacksConfig>,
    /// Who may read and write, and the audit log of writes ([`auth`]).
    pub auth: Auth,
    /// Base URL of the web UI for links in reports (`TOMATO_PUBLIC_URL`).
    pub public_url: String,
    /// Whether test management (Kiwi TCMS) is configured. Without it a regression can only
    /// fail, so none is accepted, and the regressions page says why.
    pub tms_configured: bool,
    /// Whether an issue tracker is configured (a mute that lifts itself on a closed ticket
    /// needs it to read the ticket).
    pub tracker_configured: bool,
}

/// Every route of the API: the old tool's handles, `/api/v1`, schedules, regressions and
/// `/metrics`. [`crate::app`] puts them behind [`authorize`] with the UI's pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(legacy::routes())
        .merge(v1::routes())
        .merge(schedules::routes())
        .merge(regressions::routes())
        .merge(mutes::routes())
        .merge(stands::routes())
        .route("/metrics", get(metrics::metrics))
}

/// The routes `tomato exec` uploads results to from a Job: they carry the run's own token,
/// not an API token, and larger bodies, so [`crate::app`] keeps them outside [`authorize`] and
/// the body limit of the rest.
pub fn upload_routes() -> Router<AppState> {
    uploads::routes()
}
