//! Proposed categories rules (`/services/{name}/rules`): a service's unclassified failures,
//! clustered by signature, each cluster with the rule that would classify it (JSON to paste
//! into the service's categories, with a copy button) and its back-test. The proposals are
//! [`crate::history::rules`]'s; this module only lays them out.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::render::{Layout, UiError, page};
use crate::api::AppState;

#[derive(Deserialize)]
pub struct RulesQuery {
    /// Days of failures looked at (default 30, 1 to 90).
    days: Option<u32>,
    /// Fewest failures a cluster needs (default 3).
    min: Option<u32>,
}

#[derive(Serialize, Debug)]
pub struct RulesPage {
    pub service: String,
    pub days: u32,
    pub min: u32,
    pub suggestions: Vec<SuggestionView>,
}

#[derive(Serialize, Debug)]
pub struct SuggestionView {
    pub signature: String,
    pub failures: usize,
    pub runs: usize,
    pub tests: Vec<TestLink>,
    pub example: String,
    /// The rule as pretty JSON, ready to paste.
    pub rule: String,
    pub matched: usize,
    pub checked: usize,
    pub unclassified: usize,
    /// "Category (n)", one per category it collides with.
    pub collisions: Vec<String>,
}

/// A test of a cluster, with its id as a path segment (for its history page).
#[derive(Serialize, Debug)]
pub struct TestLink {
    pub id: String,
    pub segment: String,
}

pub async fn rules_suggest(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Query(q): Query<RulesQuery>,
) -> Result<Response, UiError> {
    if state.config.service(&service).is_none() {
        return Err(UiError::not_found(format!(
            "There is no service {service:?} in packs_config."
        )));
    }
    let days = q.days.unwrap_or(30).clamp(1, 90);
    let min = q.min.unwrap_or(3).clamp(1, 1000);
    let suggestions = crate::history::rule_suggestions(
        state.backend.as_ref(),
        &service,
        days,
        min as usize,
        chrono::Utc::now(),
    )
    .await?
    .ok_or_else(|| UiError::not_found(format!("{}.", crate::history::NO_HISTORY)))?;
    let view = RulesPage {
        service: service.clone(),
        days,
        min,
        suggestions: suggestions
            .into_iter()
            .map(|s| SuggestionView {
                rule: serde_json::to_string_pretty(&s.rule).unwrap_or_default(),
                signature: s.signature,
                failures: s.failures,
                runs: s.runs,
                tests: s
                    .tests
                    .into_iter()
                    .map(|id| TestLink {
                        segment: crate::text::path_segment(&id),
                        id,
                    })
                    .collect(),
                example: s.example,
                matched: s.backtest.matched,
                checked: s.backtest.checked,
                unclassified: s.backtest.unclassified,
                collisions: s
                    .backtest
                    .collisions
                    .iter()
                    .map(|(c, n)| format!("{c} ({n})"))
                    .collect(),
            })
            .collect(),
    };
    let layout = Layout::new(
        &state,
        format!("Suggested rules for {service}"),
        format!("service:{service}"),
    );
    Ok(page("rules.html", &layout, &view))
}
