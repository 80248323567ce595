//! Operations and views shared by the legacy and v1 handlers: creating a run from checked
//! input, the queue of a service, a run's status, its tests.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::classify::Classified;
use crate::crd::created;
use crate::crd::random_suffix;
use crate::crd::{Attempt, CategoryStat, Phase, Priority, ReportStatus, RunType, Summary, TestRun};
use crate::results::{CaseStatus, MergedTest, Signature};
pub use crate::runs::new_run;
use crate::store::{ListFilter, StoreError};

/// Stores a run; a generated name that collides is drawn again.
pub async fn store_run(
    state: &AppState,
    mut run: TestRun,
    generated_name: bool,
) -> Result<TestRun, ApiError> {
    for _ in 0..5 {
        match state.backend.create_run(run.clone()).await {
            Err(StoreError::AlreadyExists { .. }) if generated_name => {
                run.metadata.name = Some(format!("{}-{}", run.spec.template.service, random_suffix(8)));
            }
            other => return Ok(other?),
        }
    }
    Err(ApiError::conflict("could not find a free run name; try again"))
}

/// Fetches a run or answers 404 naming `parameter`.
pub async fn find_run(state: &AppState, name: &str, parameter: &str) -> Result<TestRun, ApiError> {
    state.backend.get_run(name).await?.ok_or_else(|| {
        ApiError::not_found(
            parameter,
            format!("run {q_name} not found", q_name = crate::text::quote(name)),
        )
    })
}

/// One run in a queue listing, in the legacy shape (`/api/runned`, snake_case); `/api/v1`
/// answers [`QueuedRun`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueEntry {
    pub run_id: String,
    #[schema(value_type = u8)]
    pub priority: Priority,
    pub stand: String,
    pub category: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub run_type: RunType,
    #[schema(value_type = String)]
    pub phase: Phase,
    pub created: DateTime<Utc>,
    /// 1-based position in the service's queue (queued runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The attempt in progress (running runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// What a queued run waits for (`waiting for stand qa1: ...`), as admission last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// The queue of one service: what runs now and what waits, in admission order. The legacy
/// shape (`/api/runned`, snake_case, kept byte for byte); `/api/v1` answers [`ServiceQueue`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub service: String,
    pub running: Vec<QueueEntry>,
    pub queued: Vec<QueueEntry>,
    pub running_count: usize,
    pub queued_count: usize,
}

/// A service's queue as `/api/v1` answers it: [`QueueView`] in camelCase.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceQueue {
    pub service: String,
    pub running: Vec<QueuedRun>,
    pub queued: Vec<QueuedRun>,
    pub running_count: usize,
    pub queued_count: usize,
}

/// One run in a `/api/v1` queue listing: [`QueueEntry`] in camelCase.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedRun {
    pub run_id: String,
    #[schema(value_type = u8)]
    pub priority: Priority,
    pub stand: String,
    pub category: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub run_type: RunType,
    #[schema(value_type = String)]
    pub phase: Phase,
    pub created: DateTime<Utc>,
    /// 1-based position in the service's queue (queued runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The attempt in progress (running runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// What a queued run waits for, as admission last said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

impl From<QueueEntry> for QueuedRun {
    fn from(e: QueueEntry) -> Self {
        QueuedRun {
            run_id: e.run_id,
            priority: e.priority,
            stand: e.stand,
            category: e.category,
            run_type: e.run_type,
            phase: e.phase,
            created: e.created,
            position: e.position,
            attempt: e.attempt,
            started: e.started,
            waiting_for: e.waiting_for,
        }
    }
}

impl From<QueueView> for ServiceQueue {
    fn from(q: QueueView) -> Self {
        ServiceQueue {
            service: q.service,
            running: q.running.into_iter().map(Into::into).collect(),
            queued: q.queued.into_iter().map(Into::into).collect(),
            running_count: q.running_count,
            queued_count: q.queued_count,
        }
    }
}

pub async fn queue_view(state: &AppState, service: &str) -> Result<QueueView, ApiError> {
    let phases = [Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting];
    let filter = ListFilter {
        service: Some(service.to_string()),
        phases: phases.to_vec(),
        ..Default::default()
    };
    let mut runs = state.backend.list_runs(&filter).await?;
    runs.sort_by(|a, b| {
        let key = |r: &TestRun| {
            (
                r.spec.template.priority,
                created(r),
                r.metadata.name.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut running = Vec::new();
    let mut queued = Vec::new();
    for r in &runs {
        let st = r.status.clone().unwrap_or_default();
        let mut e = QueueEntry {
            run_id: r.metadata.name.clone().unwrap_or_default(),
            priority: r.spec.template.priority,
            stand: r.spec.template.stand.clone(),
            category: r.spec.template.category.clone(),
            run_type: r.spec.run_type,
            phase: st.phase,
            created: created(r),
            position: None,
            attempt: st.attempts.last().map(|a| a.number),
            started: st.started_at,
            waiting_for: None,
        };
        if st.phase == Phase::Queued {
            e.attempt = None;
            e.waiting_for = st.message.clone();
            e.position = Some(queued.len() as u32 + 1);
            queued.push(e);
        } else {
            running.push(e);
        }
    }
    Ok(QueueView {
        service: service.to_string(),
        running_count: running.len(),
        queued_count: queued.len(),
        running,
        queued,
    })
}

/// A queued run as it stands in its queue now: `status.queuePosition` from the queue as it is.
/// Standalone mode does not store the place (it moves at every admission ahead; see the
/// driver), and a write's answer must not carry the one from before the write.
pub async fn with_queue_position(state: &AppState, run: TestRun) -> Result<TestRun, ApiError> {
    Ok(with_queue_positions(state, vec![run]).await?.remove(0))
}

/// [`with_queue_position`] of many runs, reading each service's queue once.
pub async fn with_queue_positions(
    state: &AppState,
    mut runs: Vec<TestRun>,
) -> Result<Vec<TestRun>, ApiError> {
    let mut queues: HashMap<String, QueueView> = HashMap::new();
    for run in &mut runs {
        let Some(status) = run.status.as_mut().filter(|s| s.phase == Phase::Queued) else {
            continue;
        };
        let service = &run.spec.template.service;
        let name = run.metadata.name.as_deref().unwrap_or_default();
        if !queues.contains_key(service) {
            queues.insert(service.clone(), queue_view(state, service).await?);
        }
        status.queue_position = queues[service]
            .queued
            .iter()
            .find(|e| e.run_id == name)
            .and_then(|e| e.position);
    }
    Ok(runs)
}

/// `GET /api/status`: a run's state in the legacy shape (snake_case at the top level; the
/// nested attempt, summary, category and report objects are the resource's own).
#[derive(Serialize, utoipa::ToSchema)]
pub struct LegacyStatus {
    pub run_id: String,
    pub service: String,
    pub stand: String,
    pub category: Option<String>,
    pub packs: Vec<String>,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub run_type: RunType,
    #[schema(value_type = u8)]
    pub priority: Priority,
    #[schema(value_type = String)]
    pub phase: Phase,
    pub message: Option<String>,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub queue_position: Option<u32>,
    pub emails: Vec<String>,
    #[serde(rename = "issueKey")]
    pub issue_key: Option<String>,
    pub testpalm: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub attempts: Vec<Attempt>,
    #[schema(value_type = Object)]
    pub summary: Summary,
    #[schema(value_type = Vec<Object>)]
    pub categories: Vec<CategoryStat>,
    #[schema(value_type = Object)]
    pub report: ReportStatus,
}

impl LegacyStatus {
    pub fn of(run: &TestRun) -> Self {
        let st = run.status.clone().unwrap_or_default();
        let t = &run.spec.template;
        LegacyStatus {
            run_id: run.metadata.name.clone().unwrap_or_default(),
            service: t.service.clone(),
            stand: t.stand.clone(),
            category: t.category.clone(),
            packs: st
                .attempts
                .first()
                .map(|a| a.selection.packs.clone())
                .unwrap_or_else(|| t.packs.clone()),
            run_type: run.spec.run_type,
            priority: t.priority,
            phase: st.phase,
            message: st.message,
            created: created(run),
            started: st.started_at,
            finished: st.finished_at,
            queue_position: st.queue_position,
            emails: t.emails.clone(),
            issue_key: t.issue_key.clone(),
            testpalm: t.version.clone(),
            attempts: st.attempts,
            summary: st.summary.unwrap_or_default(),
            categories: st.categories,
            report: st.report.unwrap_or_default(),
        }
    }
}

/// One test of a run with its verdict over all attempts.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestView {
    pub id: String,
    pub name: String,
    pub classname: String,
    pub suite: String,
    pub file: Option<String>,
    /// `passed`, `flaky`, `failed`, `broken` or `skipped`.
    #[schema(value_type = String)]
    pub verdict: crate::results::TestVerdict,
    /// Failure category (failed, broken and flaky tests).
    pub category: Option<String>,
    /// Failure signature (failed, broken and flaky tests; a flaky test's is its failing
    /// attempt's): 16 hex digits of a hash of the message and the test's own trace frame with
    /// numbers, ids, times, hosts and temp paths masked, so the same failure in two runs has the
    /// same one. Absent for runs recorded before signatures were.
    #[schema(value_type = Option<String>, example = "3f9a0c1d2e4b5a67", pattern = "^[0-9a-f]{16}$")]
    pub signature: Option<Signature>,
    /// Status on each attempt that ran it.
    pub attempts: Vec<TestAttempt>,
    /// The attempt whose result explains the verdict (a flaky test's failing attempt).
    pub explained_by: u32,
    pub message: String,
    pub trace: String,
    pub duration_ms: Option<u64>,
    /// Steps (nested, with status and duration), parameters, labels and attachment links
    /// (`steps`, `parameters`, `labels`, `attachments`), when the attempt that explains the
    /// verdict wrote Allure results for the test; absent otherwise.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub allure: Option<super::allure::AllureView>,
    /// What this test's outcome is against the service's history, once the run has its
    /// verdict (see `crate::history`): for a failed or broken test `{"kind": "new"}`,
    /// `{"kind": "known", "sinceRun", "since", "times", "stands"}` or `{"kind": "changed",
    /// "previous", "lastRun", "last"}`; `{"kind": "fixed"}` for a test that failed in the
    /// previous comparable run (same service, stand and packs) and passes now. Null otherwise,
    /// and where no history is kept (operator mode without a results database).
    #[schema(value_type = Option<Object>)]
    pub novelty: Option<serde_json::Value>,
    /// The Mute that covered this test when the run's last attempt ended
    /// (`{"mute", "reason", "ticket"?, "passed"?}`): a muted failure does not fail the run;
    /// `passed: true` marks a muted test that passed (the mute may no longer be needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub muted: Option<crate::crd::MutedTest>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestAttempt {
    pub attempt: u32,
    pub status: String,
}

impl TestView {
    pub fn of(t: &MergedTest, classified: Option<Classified>) -> Self {
        let (category, signature) = classified.map_or((None, None), |c| (Some(c.category), c.signature));
        let status = |s: CaseStatus| match s {
            CaseStatus::Passed => "passed",
            CaseStatus::Failed => "failed",
            CaseStatus::Errored => "error",
            CaseStatus::Skipped => "skipped",
        };
        TestView {
            id: t.id.clone(),
            name: t.case.name.clone(),
            classname: t.case.classname.clone(),
            suite: t.case.suites.join(" > "),
            file: t.case.file.clone(),
            verdict: t.verdict,
            category,
            signature,
            attempts: t
                .history
                .iter()
                .map(|(a, s)| TestAttempt {
                    attempt: *a,
                    status: status(*s).to_string(),
                })
                .collect(),
            explained_by: t.attempt,
            message: t.case.message.clone(),
            trace: t.case.trace.clone(),
            duration_ms: t.case.time_ms,
            allure: None,
            novelty: None,
            muted: None,
        }
    }
}

/// The merged tests of a run, failing first (failed, broken, flaky, passed, skipped).
pub async fn merged_tests(state: &AppState, run: &TestRun) -> Result<Vec<MergedTest>, ApiError> {
    let name = run.metadata.name.clone().unwrap_or_default();
    let results = state.backend.results(&name).await?;
    let mut status = run.status.clone().unwrap_or_default();
    // A run from a listing leaves out rerun lists kept in a results database (operator mode,
    // `storedTests`); the run served alone has them, and the merge needs them.
    if status
        .attempts
        .iter()
        .any(|a| a.selection.tests.is_empty() && a.selection.stored_tests.is_some())
        && let Some(full) = state.backend.get_run(&name).await?
    {
        status = full.status.unwrap_or_default();
    }
    let mut merged = crate::core::merge_run(&status, results);
    merged.sort_by_key(|t| t.verdict);
    Ok(merged)
}

/// The tests of a run as API clients see them: merged, failing first, each failed, broken or
/// flaky test with the failure category the run recorded (never reclassified: see
/// [`crate::classify`]).
pub async fn test_views(state: &AppState, run: &TestRun) -> Result<Vec<TestView>, ApiError> {
    let tests = merged_tests(state, run).await?;
    let name = run.metadata.name.clone().unwrap_or_default();
    let stats = run
        .status
        .as_ref()
        .map(|s| s.categories.as_slice())
        .unwrap_or_default();
    let categories = crate::classify::recorded(state.backend.categories(&name).await?, stats);
    // Each launch's Allure record, read once: a test's extras are its explaining attempt's
    // (the last launch with that number: an interrupted launch is followed by its relaunch).
    let attempts = run
        .status
        .as_ref()
        .map(|s| s.attempts.as_slice())
        .unwrap_or_default();
    let mut records: std::collections::HashMap<usize, Option<crate::results::allure::AttemptExtras>> =
        std::collections::HashMap::new();
    let tags = match run.status.as_ref().and_then(|s| s.verdict) {
        Some(_) => crate::history::tags(state.backend.as_ref(), run, &tests).await?,
        None => None,
    };
    let muted: std::collections::HashMap<&str, &crate::crd::MutedTest> = run
        .status
        .as_ref()
        .map(|s| s.muted.iter().map(|m| (m.test.as_str(), m)).collect())
        .unwrap_or_default();
    let mut views = Vec::with_capacity(tests.len());
    for t in &tests {
        let mut view = TestView::of(t, categories.get(&t.id).cloned());
        view.novelty = tags.as_ref().and_then(|tags| tags.of(&t.id));
        view.muted = muted.get(t.id.as_str()).map(|m| (*m).clone());
        if let Some(seq) = attempts
            .iter()
            .rposition(|a| a.number == t.attempt)
            .map(|i| i + 1)
        {
            if let std::collections::hash_map::Entry::Vacant(e) = records.entry(seq) {
                e.insert(super::allure::attempt_extras(state, &name, seq).await);
            }
            view.allure = records
                .get(&seq)
                .and_then(Option::as_ref)
                .and_then(|r| r.tests.get(&t.id))
                .map(|e| super::allure::AllureView::of(&name, seq, e));
        }
        views.push(view);
    }
    Ok(views)
}
