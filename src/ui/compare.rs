//! Two runs side by side (`/runs/{id}/compare?with=`): one click from a run page ("compare
//! with the previous run"). The comparison is [`crate::history::compare`]'s.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::pages::find_run;
use super::render::{Layout, UiError, page};
use crate::api::AppState;
use crate::history::compare::{Comparison, DEFAULT_SLOWER_BY};

#[derive(Deserialize)]
pub struct CompareQuery {
    /// The run to compare with (default: the previous comparable one).
    with: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct ComparePage {
    pub run: String,
    pub with: String,
    pub service: String,
    pub slower_by: String,
    /// Differences in all (the page says "no difference" when 0).
    pub differences: usize,
    pub c: Comparison,
}

pub async fn runs_compare(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Result<Response, UiError> {
    let run = find_run(&state, &id).await?;
    let before = match q.with.filter(|w| !w.is_empty()) {
        Some(w) => Some(find_run(&state, &w).await?),
        None => None,
    };
    let (before, c) = crate::history::compare_runs(state.backend.as_ref(), &run, before, DEFAULT_SLOWER_BY)
        .await?
        .ok_or_else(|| {
            UiError::not_found(format!(
                "Run {id} has no previous comparable run (same service, stand, packs and category, ended with a verdict)."
            ))
        })?;
    let differences = c.newly_failing.len()
        + c.newly_passing.len()
        + c.still_failing.iter().filter(|s| !s.same_signature).count()
        + c.flaky_in_one.len()
        + c.added.len()
        + c.removed.len()
        + c.slower.len();
    let view = ComparePage {
        with: before.metadata.name.clone().unwrap_or_default(),
        service: run.spec.template.service.clone(),
        slower_by: format!("{:.0} %", DEFAULT_SLOWER_BY * 100.0),
        run: id.clone(),
        differences,
        c,
    };
    let layout = Layout::new(
        &state,
        format!("Run {id} compared"),
        format!("service:{}", view.service),
    );
    Ok(page("compare.html", &layout, &view))
}
