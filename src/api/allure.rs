//! What the API shows of a test's Allure extras (steps, parameters, labels, attachment links)
//! and the attachment files themselves, served with a safe content type.
//!
//! The extras of a test come from the attempt that explains its verdict (a flaky test's
//! failing attempt, so its failure screenshot), read from that attempt's record
//! ([`crate::results::attachments`]). A file is served only when the record keeps it, by its
//! checked `source` name: the name a test gave it never becomes a path.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::ApiPath;
use super::{ApiError, AppState};
use crate::results::allure::{self, AttemptExtras, Extras, Labels, Parameter};
use crate::results::attachments::attachment_url;

/// A test's Allure extras in the tests API (camelCase; absent for a test without them).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllureView {
    /// Its title, when the code gave it one that is not its name (`@allure.title`).
    pub title: Option<String>,
    /// Its steps, nested, each with status and duration (failed set-up and tear-down
    /// fixtures first, named `set up: …` / `tear down: …`).
    pub steps: Vec<StepView>,
    #[schema(value_type = Vec<Object>)]
    pub parameters: Vec<Parameter>,
    /// suite, feature, story, severity and owner, where the test has them.
    #[schema(value_type = Object)]
    pub labels: Labels,
    /// Every file it attached (its own, then its steps'), images first.
    pub attachments: Vec<AttachmentView>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub name: String,
    /// `passed`, `failed`, `broken`, `skipped` or `unknown`.
    pub status: String,
    pub duration_ms: Option<u64>,
    pub message: String,
    #[schema(no_recursion)]
    pub steps: Vec<StepView>,
    pub attachments: Vec<AttachmentView>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentView {
    pub name: String,
    /// The content type it is served with.
    pub content_type: String,
    pub image: bool,
    pub size: Option<u64>,
    /// Where it is served (relative to the server); absent when it was refused.
    pub url: Option<String>,
    /// Why it is not kept (over a limit, an unsafe name, missing).
    pub refused: Option<String>,
    /// The step that attached it (absent: the test itself).
    pub step: Option<String>,
}

impl AllureView {
    /// The view of `extras` of the `seq`-th launch of run `run`.
    pub fn of(run: &str, seq: usize, extras: &Extras) -> Self {
        let file = |a: &allure::Attachment| AttachmentView {
            name: a.name.clone(),
            content_type: allure::served_type(&a.content_type, &a.source).to_string(),
            image: allure::is_image(a),
            size: a.size,
            url: a.refused.is_none().then(|| attachment_url(run, seq, &a.source)),
            refused: a.refused.clone(),
            step: None,
        };
        fn step(s: &allure::Step, files: &[AttachmentView]) -> StepView {
            StepView {
                name: s.name.clone(),
                status: s.status.clone(),
                duration_ms: s.duration_ms,
                message: s.message.clone(),
                steps: s.steps.iter().map(|c| step(c, files)).collect(),
                attachments: s
                    .attachments
                    .iter()
                    .filter_map(|&i| files.get(i).cloned())
                    .collect(),
            }
        }
        let files: Vec<AttachmentView> = extras.attachments.iter().map(file).collect();
        let mut attachments = files.clone();
        fn mark(s: &allure::Step, all: &mut [AttachmentView]) {
            for &i in &s.attachments {
                if let Some(a) = all.get_mut(i) {
                    a.step.get_or_insert_with(|| s.name.clone());
                }
            }
            s.steps.iter().for_each(|c| mark(c, all));
        }
        extras.steps.iter().for_each(|s| mark(s, &mut attachments));
        // Stable: images first (the failure's screenshot leads), each group in attach order.
        attachments.sort_by_key(|a| !(a.image && a.url.is_some()));
        AllureView {
            title: extras.title.clone(),
            steps: extras.steps.iter().map(|s| step(s, &files)).collect(),
            parameters: extras.parameters.clone(),
            labels: extras.labels.clone(),
            attachments,
        }
    }
}

/// The Allure record of the `seq`-th launch of `run`, where the mode keeps it.
pub async fn attempt_extras(state: &AppState, run: &str, seq: usize) -> Option<AttemptExtras> {
    state.backend.allure_extras(run, seq).await.ok().flatten()
}

/// A file a test attached, with a content type a browser never runs: PNG, JPEG, GIF and WebP
/// images inline; anything else as plain text or bytes, as a download.
#[utoipa::path(get, path = "/api/v1/runs/{id}/attempts/{n}/attachments/{name}", tag = "runs",
    params(("id" = String, Path, description = "Run name"), ("n" = usize, Path, description = "Attempt position, from 1"),
        ("name" = String, Path, description = "The attachment's file name, as its link gives it")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = super::ErrorBody),
        (status = 410, description = "The run's files expired by retention", body = super::ErrorBody)))]
pub async fn attempt_attachment(
    State(state): State<AppState>,
    ApiPath((id, n, name)): ApiPath<(String, usize, String)>,
) -> Result<Response, ApiError> {
    let missing = || {
        ApiError::not_found(
            "name",
            format!("attempt {n} of {id} keeps no attachment {name:?}"),
        )
    };
    if !allure::safe_source(&name) {
        return Err(missing());
    }
    super::v1::check_attempt(&state, &id, n).await?;
    let (bytes, kept) = state
        .backend
        .attachment(&id, n, &name)
        .await?
        .ok_or_else(missing)?;
    let content_type = allure::served_type(&kept.content_type, &kept.source);
    let disposition = if content_type.starts_with("image/") {
        "inline".to_string()
    } else {
        // The name is the checked source: letters, digits, `-`, `_`, `.` only.
        format!("attachment; filename=\"{}\"", kept.source)
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}
