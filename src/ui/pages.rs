//! Page handlers: fetch what a page shows, build its view, render it. Thin, as the API's
//! handlers are; the content is decided in [`super::view`].

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::render::{Layout, UiError, page};
use super::view::{self, ActiveRow, RunForm, RunRow};
use crate::api::{AppState, TestView, merged_tests, queue_view};
use crate::crd::{Phase, TestRun};
use crate::store::{ListFilter, StoreError};

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> UiError {
        crate::api::ApiError::from(e).into()
    }
}

/// A service's section of the dashboard.
#[derive(Serialize)]
struct ServiceQueue {
    name: String,
    description: String,
    concurrency: u32,
    running: Vec<ActiveRow>,
    queued: Vec<ActiveRow>,
    /// Queued runs beyond those listed.
    more_queued: usize,
    form: RunForm,
}

#[derive(Serialize)]
struct Dashboard {
    services: Vec<ServiceQueue>,
    recent: Vec<RunRow>,
}

/// Queued runs listed per service; a longer queue is summarised.
const QUEUE_ROWS: usize = 50;
/// Runs listed as recently finished, and how many of the newest finished runs (by creation)
/// they are chosen from by finish time.
const RECENT_ROWS: usize = 10;
const RECENT_LOOKBACK: usize = 200;
/// Runs a service's recent stands are taken from.
const RECENT_FOR_FORM: usize = 30;

/// `GET /`: per service, what runs and what waits; recent results; the run-now forms.
pub async fn dashboard_show(State(state): State<AppState>) -> Result<Response, UiError> {
    let now = Utc::now();
    let packs = view::config_packs(&state.config);
    let mut services = Vec::new();
    for svc in state.config.services() {
        let queue = queue_view(&state, &svc.name).await?;
        let active = state
            .backend
            .list_runs(&ListFilter {
                service: Some(svc.name.clone()),
                phases: vec![Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting],
                ..Default::default()
            })
            .await?;
        let find = |id: &str| active.iter().find(|r| r.metadata.name.as_deref() == Some(id));
        let row = |e: &crate::api::QueueEntry| {
            let run = find(&e.run_id);
            let max = run.map(|r| view::max_attempts(&state.config, r));
            view::active_row(e, run, max, &packs, now)
        };
        let recent = state
            .backend
            .list_runs(&ListFilter {
                service: Some(svc.name.clone()),
                newest: Some(RECENT_FOR_FORM),
                ..Default::default()
            })
            .await?;
        services.push(ServiceQueue {
            name: svc.name.clone(),
            description: svc.description.clone(),
            concurrency: svc.concurrency,
            running: queue.running.iter().map(row).collect(),
            queued: queue.queued.iter().take(QUEUE_ROWS).map(row).collect(),
            more_queued: queue.queued.len().saturating_sub(QUEUE_ROWS),
            form: view::run_form(svc, &recent),
        });
    }
    let finished = state
        .backend
        .list_runs(&ListFilter {
            phases: Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect(),
            // By creation; a run queued long ago may have finished last, so look further.
            newest: Some(RECENT_LOOKBACK),
            ..Default::default()
        })
        .await?;
    let view = Dashboard {
        services,
        recent: view::recently_finished(&finished, RECENT_ROWS)
            .into_iter()
            .map(|r| view::run_row(r, &packs, now))
            .collect(),
    };
    let layout = Layout::new(&state, "Queue", "queue").watching("TestRun", 150);
    Ok(page("dashboard.html", &layout, &view))
}

#[derive(Deserialize)]
pub struct RunQuery {
    /// Show only tests with this verdict.
    verdict: Option<String>,
}

/// `GET /runs/{id}`: a run's phase, attempts, log, results, failures and report.
pub async fn runs_show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Result<Response, UiError> {
    let filter = q.verdict.filter(|v| !v.is_empty());
    if let Some(v) = &filter
        && !view::VERDICTS.iter().any(|(key, _)| key == v)
    {
        return Err(UiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: format!(
                "There is no verdict {v:?}: filter by failed, broken, flaky, passed or skipped."
            ),
        });
    }
    let run = find_run(&state, &id).await?;
    let run = crate::api::with_queue_position(&state, run).await?;
    let tests: Vec<TestView> = crate::api::test_views(&state, &run).await?;
    let max = view::max_attempts(&state.config, &run);
    let mut view = view::run_page(&run, &tests, max, filter.as_deref(), Utc::now());
    for a in &mut view.attempts {
        if let Some(record) = crate::api::attempt_extras(&state, &id, a.position).await {
            a.notes = record.notes;
        }
    }
    // A queued run's place moves whenever a run ahead of it starts, which changes other runs,
    // not this one: its page follows every run while it waits.
    let watch = if run.status.as_ref().is_some_and(|s| s.phase == Phase::Queued) {
        "TestRun".to_string()
    } else {
        format!("TestRun/{id}")
    };
    let layout =
        Layout::new(&state, format!("Run {id}"), format!("service:{}", view.service)).watching(watch, 150);
    Ok(page("run.html", &layout, &view))
}

pub(super) async fn find_run(state: &AppState, id: &str) -> Result<TestRun, UiError> {
    state
        .backend
        .get_run(id)
        .await?
        .ok_or_else(|| UiError::not_found(format!("There is no run {id:?}. It may have been deleted.")))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// How many of the newest runs (default 30, at most 200).
    limit: Option<usize>,
    /// Only runs of these packs (as the Packs column writes them), so that the trends compare
    /// like with like: an `api`-only run is no dip in a trend of full runs.
    packs: Option<String>,
}

/// One choice of the history's packs filter.
#[derive(Serialize)]
struct PacksChoice {
    packs: String,
    runs: usize,
    selected: bool,
}

#[derive(Serialize)]
struct History {
    name: String,
    description: String,
    limit: usize,
    limits: Vec<usize>,
    /// The packs filter: its choices (the packs of the shown runs) and the one applied.
    packs_choices: Vec<PacksChoice>,
    packs: Option<String>,
    runs: Vec<RunRow>,
    finished: usize,
    succeeded: usize,
    failed: usize,
    average_duration: Option<String>,
    average_pass_rate: Option<String>,
    pass_chart: String,
    duration_chart: String,
    flaky_chart: Option<String>,
    flaky: Vec<view::FlakyTest>,
    /// Runs the flaky counts are out of (those that produced results).
    with_results: usize,
    form: RunForm,
    /// The service's mutes, in force or not.
    mutes: Vec<view::MuteRow>,
}

/// `GET /services/{name}`: the last runs, pass-rate and duration trends, the most flaky tests.
pub async fn services_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, UiError> {
    let svc = state
        .config
        .service(&name)
        .ok_or_else(|| UiError::not_found(format!("There is no service {name:?} in packs_config.")))?
        .clone();
    let limit = q.limit.unwrap_or(30).clamp(1, 200);
    let now = Utc::now();
    let packs_of = view::config_packs(&state.config);
    let wanted = q.packs.filter(|p| !p.is_empty());
    let all = state
        .backend
        .list_runs(&ListFilter {
            service: Some(name.clone()),
            // A filter is applied here, so look further back for `limit` runs of it.
            newest: Some(if wanted.is_some() { 1000 } else { limit }),
            ..Default::default()
        })
        .await?;
    let mut packs_choices: Vec<PacksChoice> = Vec::new();
    for r in &all {
        let p = view::packs_label(r, &packs_of);
        match packs_choices.iter_mut().find(|c| c.packs == p) {
            Some(c) => c.runs += 1,
            None => packs_choices.push(PacksChoice {
                selected: wanted.as_deref() == Some(p.as_str()),
                packs: p,
                runs: 1,
            }),
        }
    }
    let runs: Vec<TestRun> = all
        .into_iter()
        .filter(|r| {
            wanted
                .as_ref()
                .is_none_or(|w| view::packs_label(r, &packs_of) == *w)
        })
        .take(limit)
        .collect();
    let finished: Vec<&TestRun> = runs
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_terminal()))
        .collect();
    let with_summary: Vec<&crate::crd::Summary> = finished
        .iter()
        .filter_map(|r| r.status.as_ref().and_then(|s| s.summary.as_ref()))
        .collect();
    // Only runs that had flaky tests need their tests read.
    let mut flaky_by_run = Vec::new();
    for r in &finished {
        if r.status
            .as_ref()
            .and_then(|s| s.summary)
            .is_some_and(|s| s.flaky > 0)
        {
            let tests = merged_tests(&state, r).await?;
            flaky_by_run.push((
                r.metadata.name.clone().unwrap_or_default(),
                tests
                    .iter()
                    .filter(|t| t.verdict == crate::results::TestVerdict::Flaky)
                    .map(|t| t.id.clone())
                    .collect(),
            ));
        }
    }
    let flaky = view::most_flaky(&flaky_by_run, 10);
    let with_results = with_summary.len();
    let (pass, duration) = view::trend_points(&runs, now);
    let durations: Vec<i64> = finished.iter().filter_map(|r| view::run_millis(r, now)).collect();
    let rates: Vec<f64> = with_summary
        .iter()
        .filter_map(|s| view::pass_fraction(s))
        .collect();
    let view = History {
        description: svc.description.clone(),
        limit,
        limits: vec![10, 30, 100, 200],
        packs_choices,
        packs: wanted,
        runs: runs.iter().map(|r| view::run_row(r, &packs_of, now)).collect(),
        finished: finished.len(),
        succeeded: finished
            .iter()
            .filter(|r| r.status.as_ref().is_some_and(|s| s.phase == Phase::Succeeded))
            .count(),
        failed: finished
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| matches!(s.phase, Phase::Failed | Phase::Error))
            })
            .count(),
        average_duration: (!durations.is_empty())
            .then(|| super::format::span_ms(durations.iter().sum::<i64>() / durations.len() as i64)),
        average_pass_rate: (!rates.is_empty())
            .then(|| super::format::rate(rates.iter().sum::<f64>() / rates.len() as f64)),
        pass_chart: super::chart::line_chart("Pass rate per run", &pass, super::chart::Axis::Percent),
        duration_chart: super::chart::bar_chart("Duration per run", &duration, super::chart::Axis::Duration),
        flaky_chart: (!flaky.is_empty()).then(|| {
            super::chart::row_chart(
                "Most flaky tests",
                &flaky
                    .iter()
                    .map(|f| super::chart::Row {
                        label: f.name.clone(),
                        value: f.flaky_runs,
                        note: format!("{} of {with_results} runs", f.flaky_runs),
                    })
                    .collect::<Vec<_>>(),
                u32::try_from(with_results).unwrap_or(u32::MAX),
            )
        }),
        flaky,
        with_results,
        form: view::run_form(&svc, &runs),
        mutes: state
            .backend
            .list_mutes(Some(&name))
            .await?
            .iter()
            .map(|m| view::mute_row(m, now))
            .collect(),
        name,
    };
    let layout = Layout::new(
        &state,
        format!("{} history", view.name),
        format!("service:{}", view.name),
    )
    .watching("TestRun", 1500);
    Ok(page("service.html", &layout, &view))
}
