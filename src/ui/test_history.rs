//! A test's page (`/services/{name}/tests/{id}`): its verdict over its last runs as a strip,
//! failure and flake rates overall and per stand, durations, its failure signatures with when
//! each was first and last seen, and links to the runs. Every test row of a run page links
//! here. The data is [`crate::history::timeline`]'s; this module only lays it out.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::format;
use super::render::{Layout, UiError, page};
use crate::api::AppState;
use crate::history::timeline::{Rates, Timeline};
use crate::results::TestVerdict;

#[derive(Deserialize)]
pub struct TestQuery {
    /// Only runs on this stand.
    stand: Option<String>,
    /// How many of the newest runs (default 50, at most 500).
    limit: Option<u32>,
}

#[derive(Serialize, Debug)]
pub struct TestPage {
    pub service: String,
    pub test: String,
    pub stand: Option<String>,
    pub limit: u32,
    pub limits: Vec<u32>,
    /// Oldest to newest, left to right.
    pub strip: Vec<Cell>,
    pub overall: RatesView,
    pub stands: Vec<RatesView>,
    pub median: Option<String>,
    pub slowest: Option<String>,
    pub signatures: Vec<SignatureRow>,
    /// Newest first.
    pub runs: Vec<RunLine>,
}

/// One run in the strip.
#[derive(Serialize, Debug)]
pub struct Cell {
    pub run: String,
    pub verdict: TestVerdict,
    pub title: String,
}

#[derive(Serialize, Debug)]
pub struct RatesView {
    /// The stand, or empty for all.
    pub stand: String,
    pub runs: u32,
    pub failed: u32,
    pub flaky: u32,
    pub failure_rate: String,
    pub flake_rate: String,
}

#[derive(Serialize, Debug)]
pub struct SignatureRow {
    pub short: String,
    pub full: String,
    pub runs: u32,
    pub first_run: String,
    pub first_seen: String,
    pub last_run: String,
    pub last_seen: String,
    pub message: String,
}

#[derive(Serialize, Debug)]
pub struct RunLine {
    pub run: String,
    pub stand: String,
    pub created: String,
    pub verdict: TestVerdict,
    pub attempts: u32,
    pub duration: Option<String>,
    pub message: String,
}

fn rates(stand: &str, r: &Rates) -> RatesView {
    RatesView {
        stand: stand.to_string(),
        runs: r.runs,
        failed: r.failed,
        flaky: r.flaky,
        failure_rate: format::percent(r.failed, r.runs),
        flake_rate: format::percent(r.flaky, r.runs),
    }
}

/// The page of `test` of `service` from its timeline.
pub fn test_page(service: &str, test: &str, stand: Option<String>, limit: u32, t: &Timeline) -> TestPage {
    TestPage {
        service: service.to_string(),
        test: test.to_string(),
        stand,
        limit,
        limits: vec![20, 50, 100, 200, 500],
        strip: t
            .runs
            .iter()
            .rev()
            .map(|o| Cell {
                run: o.run.clone(),
                verdict: o.verdict,
                title: format!(
                    "{}: {} on {} ({})",
                    o.run,
                    o.verdict.as_str(),
                    o.stand,
                    format::time(o.created)
                ),
            })
            .collect(),
        overall: rates("", &t.overall),
        stands: t.stands.iter().map(|(s, r)| rates(s, r)).collect(),
        median: t.median_ms.map(format::millis),
        slowest: t.max_ms.map(format::millis),
        signatures: t
            .signatures
            .iter()
            .map(|s| SignatureRow {
                short: s.signature.as_str().chars().take(8).collect(),
                full: s.signature.as_str().to_string(),
                runs: s.runs,
                first_run: s.first_run.clone(),
                first_seen: format::time(s.first_seen),
                last_run: s.last_run.clone(),
                last_seen: format::time(s.last_seen),
                message: s.message.clone(),
            })
            .collect(),
        runs: t
            .runs
            .iter()
            .map(|o| RunLine {
                run: o.run.clone(),
                stand: o.stand.clone(),
                created: format::time(o.created),
                verdict: o.verdict,
                attempts: o.attempts,
                duration: o.duration_ms.map(format::millis),
                message: o.message.clone(),
            })
            .collect(),
    }
}

pub async fn tests_show(
    State(state): State<AppState>,
    Path((service, test)): Path<(String, String)>,
    Query(q): Query<TestQuery>,
) -> Result<Response, UiError> {
    if state.config.service(&service).is_none() {
        return Err(UiError::not_found(format!(
            "There is no service {service:?} in packs_config."
        )));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let stand = q.stand.filter(|s| !s.is_empty());
    let timeline =
        crate::history::test_timeline(state.backend.as_ref(), &service, &test, stand.as_deref(), limit)
            .await?
            .ok_or_else(|| UiError::not_found(format!("{}.", crate::history::NO_HISTORY)))?;
    if timeline.runs.is_empty() {
        return Err(UiError::not_found(format!(
            "Service {service:?} has no results of test {test:?}{}.",
            stand
                .as_deref()
                .map(|s| format!(" on stand {s:?}"))
                .unwrap_or_default()
        )));
    }
    let view = test_page(&service, &test, stand, limit, &timeline);
    let layout = Layout::new(
        &state,
        format!("{test} · {service}"),
        format!("service:{service}"),
    );
    Ok(page("test.html", &layout, &view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::timeline::timeline;
    use crate::results::{CaseStatus, Signature};
    use crate::store::results::HistoryEntry;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_strip_runs_oldest_to_newest_and_rates_read_as_percentages() {
        let entry = |run: &str, day: u32, status: CaseStatus| HistoryEntry {
            run: run.into(),
            stand: "staging".into(),
            created: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(),
            attempt: 1,
            status,
            time_ms: Some(1500),
            message: String::new(),
            signature: (status == CaseStatus::Failed).then(|| Signature::of("boom", "")),
        };
        let t = timeline(
            &[
                entry("r3", 3, CaseStatus::Passed),
                entry("r2", 2, CaseStatus::Failed),
                entry("r1", 1, CaseStatus::Passed),
            ],
            50,
        );
        let p = test_page("demo", "t::a", None, 50, &t);
        let strip: Vec<(&str, &str)> = p
            .strip
            .iter()
            .map(|c| (c.run.as_str(), c.verdict.as_str()))
            .collect();
        assert_eq!(strip, [("r1", "passed"), ("r2", "failed"), ("r3", "passed")]);
        assert_eq!(p.runs[0].run, "r3", "the table is newest first");
        assert_eq!(p.stands[0].stand, "staging");
        assert_eq!(p.overall.failure_rate, format::percent(1, 3));
        assert_eq!(p.signatures.len(), 1);
        assert_eq!(p.signatures[0].short.len(), 8);
        assert_eq!(p.median.as_deref(), Some("1.5 s"));
    }
}
