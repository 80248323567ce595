//! View models: what each page shows, built from runs, tests and packs_config by pure
//! functions (the current time is a parameter), so a page's content is unit-tested without a
//! server and the templates only lay it out.
//!
//! Strings here are plain text; the templates escape every one of them. The only markup a
//! view carries is SVG made by [`super::chart`], which escapes its own labels.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::chart;
use super::format;
use crate::api::{QueueEntry, TestView};
use crate::crd::created;
use crate::crd::{
    Attempt, AttemptState, ChannelReport, DeliveryState, Phase, Priority, SelectionKind, Summary, TestRun,
};
use crate::packs::{PacksConfig, Service};
pub use crate::report::model::category_of;
use crate::report::model::{self, AttemptFacts, MutedLine};
use crate::results::TestVerdict;

/// What the run-now form offers for one service.
#[derive(Serialize, Debug)]
pub struct RunForm {
    pub service: String,
    /// The regex a stand must match, as a hint.
    pub stand_pattern: String,
    /// Stands of recent runs, offered as suggestions.
    pub recent_stands: Vec<String>,
    pub presets: Vec<PresetOption>,
    pub packs: Vec<PackOption>,
    pub default_priority: Priority,
    pub priorities: Vec<Priority>,
}

#[derive(Serialize, Debug)]
pub struct PresetOption {
    pub name: String,
    /// Its packs, comma-separated.
    pub packs: String,
}

#[derive(Serialize, Debug)]
pub struct PackOption {
    pub name: String,
    pub description: String,
}

pub fn run_form(svc: &Service, recent: &[TestRun]) -> RunForm {
    let mut recent_stands: Vec<String> = Vec::new();
    for r in recent {
        let s = &r.spec.template.stand;
        if !recent_stands.contains(s) && recent_stands.len() < 10 {
            recent_stands.push(s.clone());
        }
    }
    RunForm {
        service: svc.name.clone(),
        stand_pattern: svc.stand_pattern_source(),
        recent_stands,
        presets: svc
            .presets
            .iter()
            .map(|(name, packs)| PresetOption {
                name: name.clone(),
                packs: packs.join(", "),
            })
            .collect(),
        packs: svc
            .packs
            .iter()
            .map(|(name, p)| PackOption {
                name: name.clone(),
                description: p.description.clone(),
            })
            .collect(),
        default_priority: Priority::DEFAULT,
        priorities: Priority::all().collect(),
    }
}

/// A phase with its CSS class (`running`, `failed`, ...).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PhaseView {
    pub name: &'static str,
    pub class: String,
    pub active: bool,
    pub terminal: bool,
}

pub fn phase(p: Phase) -> PhaseView {
    PhaseView {
        name: p.as_str(),
        class: p.as_str().to_ascii_lowercase(),
        active: p.is_active(),
        terminal: p.is_terminal(),
    }
}

/// What a run covers, in a few words: its category, its packs, or every pack.
pub fn selection_label(run: &TestRun) -> String {
    match model::Covers::of(run) {
        model::Covers::Packs(packs) => packs.join(", "),
        model::Covers::Category(c) => c.to_string(),
        model::Covers::Everything => "all packs".to_string(),
    }
}

/// The packs a run runs, comma-separated: those its first attempt selected, else those it
/// names, else its category's packs (`resolve`, from packs_config), else `all packs`.
pub fn packs_label(run: &TestRun, resolve: impl Fn(&TestRun) -> Vec<String>) -> String {
    let st = run.status.as_ref();
    let packs = st
        .and_then(|s| s.attempts.first())
        .map(|a| a.selection.packs.clone())
        .filter(|p| !p.is_empty())
        .or_else(|| Some(run.spec.template.packs.clone()).filter(|p| !p.is_empty()))
        .unwrap_or_else(|| resolve(run));
    if packs.is_empty() {
        "all packs".to_string()
    } else {
        packs.join(", ")
    }
}

/// How a page resolves a run's category into packs: from packs_config.
pub fn config_packs(config: &PacksConfig) -> impl Fn(&TestRun) -> Vec<String> + '_ {
    |run| {
        let t = &run.spec.template;
        config
            .service(&t.service)
            .and_then(|s| s.resolve_packs(t.category.as_deref(), &t.packs).ok())
            .unwrap_or_default()
    }
}

/// At most how many attempts a run can have.
pub fn max_attempts(config: &PacksConfig, run: &TestRun) -> u32 {
    let t = &run.spec.template;
    let retries = match config.service(&t.service) {
        Some(svc) => svc.retries_for(t),
        None => t.retries.unwrap_or(crate::packs::DEFAULT_RETRIES),
    };
    1 + u32::from(retries)
}

/// One run waiting or running on the dashboard.
#[derive(Serialize, Debug)]
pub struct ActiveRow {
    pub id: String,
    pub priority: Priority,
    pub stand: String,
    /// The packs it runs.
    pub packs: String,
    /// Its category, when it names one.
    pub category: Option<String>,
    pub nightly: bool,
    pub phase: PhaseView,
    /// 1-based place in the queue (queued runs).
    pub position: Option<u32>,
    /// What a queued run waits for.
    pub waiting_for: Option<String>,
    /// `attempt 2 of 4` (running runs).
    pub attempt: Option<String>,
    /// What the attempt does (`rerun of 2 failed tests`).
    pub doing: Option<String>,
    /// RFC 3339 instant the elapsed time counts from (started, or queued).
    pub since: String,
    pub elapsed: String,
}

/// A queue entry as the dashboard shows it; `run` adds the packs and the attempt detail.
pub fn active_row(
    e: &QueueEntry,
    run: Option<&TestRun>,
    max: Option<u32>,
    packs: &dyn Fn(&TestRun) -> Vec<String>,
    now: DateTime<Utc>,
) -> ActiveRow {
    let since = e.started.unwrap_or(e.created);
    let current = run
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.attempts.last());
    ActiveRow {
        id: e.run_id.clone(),
        priority: e.priority,
        stand: e.stand.clone(),
        packs: run.map_or_else(|| "all packs".into(), |r| packs_label(r, packs)),
        category: e.category.clone().filter(|c| !c.is_empty()),
        nightly: e.run_type == crate::crd::RunType::Nightly,
        phase: phase(e.phase),
        position: e.position,
        waiting_for: e.waiting_for.clone(),
        attempt: e.attempt.map(|n| match max {
            Some(m) => format!("attempt {n} of {m}"),
            None => format!("attempt {n}"),
        }),
        doing: current.map(attempt_label),
        since: format::rfc3339(since),
        elapsed: format::duration(format::seconds_between(since, now)),
    }
}

/// Counts of a run's tests with the shares for the stacked bar.
#[derive(Serialize, Debug)]
pub struct SummaryView {
    pub total: u32,
    pub passed: u32,
    pub failed: u32,
    pub broken: u32,
    pub flaky: u32,
    pub skipped: u32,
    /// Failing, but covered by a Mute (not in `failed` or `broken`).
    pub muted: u32,
    /// Passed (flaky included) of those that ran.
    pub pass_rate: String,
    /// The stacked bar, as SVG.
    pub bar: String,
}

/// Passed (flaky tests passed in the end) over the tests that ran (not skipped), as a
/// fraction; `None` when nothing ran.
pub fn pass_fraction(s: &Summary) -> Option<f64> {
    let ran = s.total.saturating_sub(s.skipped);
    (ran > 0).then(|| f64::from(s.passed + s.flaky) / f64::from(ran))
}

pub fn summary_view(s: &Summary) -> SummaryView {
    let ran = s.total.saturating_sub(s.skipped);
    SummaryView {
        total: s.total,
        passed: s.passed,
        failed: s.failed,
        broken: s.broken,
        flaky: s.flaky,
        skipped: s.skipped,
        muted: s.muted,
        pass_rate: format::percent(s.passed + s.flaky, ran),
        bar: chart::stacked_bar(&[
            ("passed", s.passed),
            ("flaky", s.flaky),
            ("failed", s.failed),
            ("broken", s.broken),
            ("muted", s.muted),
            ("skipped", s.skipped),
        ]),
    }
}

/// A run in a list (recent runs, a service's history).
#[derive(Serialize, Debug)]
pub struct RunRow {
    pub id: String,
    pub service: String,
    pub stand: String,
    /// The packs it ran.
    pub packs: String,
    /// Its category, when it names one.
    pub category: Option<String>,
    pub nightly: bool,
    pub phase: PhaseView,
    pub created: String,
    pub created_at: String,
    /// When it finished (unfinished runs have none).
    pub finished: Option<String>,
    pub finished_at: Option<String>,
    /// Running time (start to end, or to now while active).
    pub duration: Option<String>,
    pub summary: Option<SummaryView>,
}

/// Milliseconds a run ran: start to finish, or to `now` while unfinished.
pub fn run_millis(run: &TestRun, now: DateTime<Utc>) -> Option<i64> {
    let st = run.status.as_ref()?;
    let start = st.started_at?;
    Some(format::millis_between(start, st.finished_at.unwrap_or(now)))
}

pub fn run_row(run: &TestRun, packs: &dyn Fn(&TestRun) -> Vec<String>, now: DateTime<Utc>) -> RunRow {
    let st = run.status.clone().unwrap_or_default();
    let created = created(run);
    RunRow {
        id: run.metadata.name.clone().unwrap_or_default(),
        service: run.spec.template.service.clone(),
        stand: run.spec.template.stand.clone(),
        packs: packs_label(run, packs),
        category: category_of(run),
        nightly: run.spec.run_type == crate::crd::RunType::Nightly,
        phase: phase(st.phase),
        created: format::time(created),
        created_at: format::rfc3339(created),
        finished: st.finished_at.map(format::time),
        finished_at: st.finished_at.map(format::rfc3339),
        duration: run_millis(run, now).map(format::span_ms),
        summary: st.summary.as_ref().map(summary_view),
    }
}

/// The `n` runs that finished last, newest first, from finished runs in any order (a run
/// queued long ago may have finished just now).
pub fn recently_finished(runs: &[TestRun], n: usize) -> Vec<&TestRun> {
    let finished_at = |r: &TestRun| r.status.as_ref().and_then(|s| s.finished_at);
    let mut done: Vec<&TestRun> = runs
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_terminal()))
        .collect();
    done.sort_by(|a, b| {
        (finished_at(b), created(*b), &b.metadata.name).cmp(&(finished_at(a), created(*a), &a.metadata.name))
    });
    done.truncate(n);
    done
}

/// What an attempt ran, in words.
pub fn attempt_label(a: &Attempt) -> String {
    match a.selection.kind {
        SelectionKind::All if a.selection.packs.is_empty() => "every test".to_string(),
        SelectionKind::All => format!("every test of {}", a.selection.packs.join(", ")),
        SelectionKind::Failed => {
            let n = a.selection.count();
            let of = a
                .selection
                .of_attempt
                .map_or(String::new(), |k| format!(" of attempt {k}"));
            format!("rerun of {n} failed test{}{of}", if n == 1 { "" } else { "s" })
        }
    }
}

/// One attempt on the run page.
#[derive(Serialize, Debug)]
pub struct AttemptView {
    /// Position in `status.attempts`, from 1: what the log and JUnit URLs take.
    pub position: usize,
    /// Its number, state, summary, message and Aqua launches, as every surface tells them.
    #[serde(flatten)]
    pub facts: AttemptFacts,
    pub what: String,
    /// The re-run test ids (reruns only).
    pub tests: Vec<String>,
    pub state_class: String,
    pub running: bool,
    pub started: Option<String>,
    pub started_at: Option<String>,
    pub duration: Option<String>,
    pub exit_code: Option<i32>,
    pub launch: Option<String>,
    pub log_url: String,
    /// Only when the attempt's report was read (an attempt that could not launch has none).
    pub junit_url: Option<String>,
    /// The parts of a sharded attempt (empty when it ran unsplit).
    pub shards: Vec<ShardView>,
    /// What reading its Allure results said: files skipped, attachments refused.
    pub notes: Vec<String>,
}

/// One shard of an attempt on the run page: its state and how many of its tests reported.
#[derive(Serialize, Debug)]
pub struct ShardView {
    pub index: u32,
    pub state: crate::crd::ShardState,
    pub state_class: String,
    /// `12 tests`, `3 files`, `2 packs`.
    pub given: String,
    /// Results so far (a split by file or pack may report more than it was given).
    pub done: u32,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub broken: u32,
    /// Percent of its items reported, for the progress bar.
    pub percent: u32,
    pub message: Option<String>,
}

pub fn shard_view(s: &crate::crd::ShardStatus) -> ShardView {
    let done = s.passed + s.failed + s.skipped + s.broken;
    let unit = s.unit.as_deref().unwrap_or("tests");
    let unit = if s.tests == 1 {
        unit.trim_end_matches('s')
    } else {
        unit
    };
    let percent = match s.state {
        crate::crd::ShardState::Running if s.tests > 0 => (done * 100 / s.tests).min(99),
        crate::crd::ShardState::Running => 0,
        _ => 100,
    };
    ShardView {
        index: s.index,
        state: s.state,
        state_class: s.state.as_str().to_ascii_lowercase(),
        given: format!("{} {unit}", s.tests),
        done,
        passed: s.passed,
        failed: s.failed,
        skipped: s.skipped,
        broken: s.broken,
        percent,
        message: s.message.clone(),
    }
}

pub fn attempt_view(run_id: &str, position: usize, a: &Attempt, now: DateTime<Utc>) -> AttemptView {
    let facts = AttemptFacts::of(a);
    AttemptView {
        position,
        what: attempt_label(a),
        tests: a.selection.tests.clone(),
        state_class: facts.state.as_str().to_ascii_lowercase(),
        running: a.state == AttemptState::Running,
        started: a.started_at.map(format::time),
        started_at: a.started_at.map(format::rfc3339),
        duration: a
            .started_at
            .map(|s| format::span_ms(format::millis_between(s, a.finished_at.unwrap_or(now)))),
        exit_code: a.exit_code,
        launch: a.launch.clone(),
        log_url: format!("/api/v1/runs/{run_id}/attempts/{position}/log"),
        junit_url: a
            .summary
            .map(|_| format!("/api/v1/runs/{run_id}/attempts/{position}/junit")),
        shards: a.shards.iter().map(shard_view).collect(),
        notes: Vec::new(),
        facts,
    }
}

/// A mute in a service's list.
#[derive(Serialize, Debug)]
pub struct MuteRow {
    pub name: String,
    pub test: String,
    pub test_segment: String,
    pub signature: Option<String>,
    pub reason: String,
    pub ticket: Option<String>,
    pub lift: bool,
    pub ticket_status: Option<String>,
    pub expires: String,
    pub expires_rfc3339: String,
    /// `Active`, `Expired` or `Lifted`, as in force at `now` (an expiry the pass has not
    /// written yet shows already).
    pub state: &'static str,
    pub message: Option<String>,
}

pub fn mute_row(m: &crate::crd::Mute, now: chrono::DateTime<chrono::Utc>) -> MuteRow {
    let st = m.status.clone().unwrap_or_default();
    let state = match (crate::mute::in_force(m, now), st.state) {
        (true, _) => crate::crd::MuteState::Active,
        (false, crate::crd::MuteState::Lifted) => crate::crd::MuteState::Lifted,
        (false, _) => crate::crd::MuteState::Expired,
    };
    MuteRow {
        name: m.metadata.name.clone().unwrap_or_default(),
        test: m.spec.test.clone(),
        test_segment: crate::text::path_segment(&m.spec.test),
        signature: m.spec.signature.clone(),
        reason: m.spec.reason.clone(),
        ticket: m.spec.ticket.clone(),
        lift: m.spec.lift_when_ticket_closed,
        ticket_status: st.ticket_status.clone(),
        expires: m.spec.expires.format("%Y-%m-%d %H:%M UTC").to_string(),
        expires_rfc3339: m.spec.expires.to_rfc3339(),
        state: state.as_str(),
        message: st.message.clone(),
    }
}

/// One test in the results table.
#[derive(Serialize, Debug)]
pub struct TestRow {
    /// Anchor for links from the category list.
    pub anchor: String,
    pub id: String,
    /// The id as one URL path segment, for the link to the test's history page.
    pub id_segment: String,
    pub name: String,
    /// Suite and class, when they add something to the name.
    pub context: String,
    pub file: Option<String>,
    pub verdict: String,
    pub flaky: bool,
    pub category: Option<String>,
    pub signature: Option<SignatureMark>,
    /// `new`, `known`, `changed` or `fixed` against the service's history (`crate::history`).
    pub novelty: Option<String>,
    /// The Mute that covered the test (a muted failure, or a muted test that passed).
    pub muted: Option<MutedLine>,
    /// Whether the page offers to mute it: failed or broken, and not muted.
    pub mutable: bool,
    /// Status per attempt that ran it (`1: failed`, `2: passed`).
    pub history: Vec<HistoryMark>,
    pub duration: Option<String>,
    pub message: String,
    pub trace: String,
    /// The attempt whose result explains the verdict.
    pub explained_by: u32,
    /// Steps, parameters, labels and attachments from Allure results, when there are any.
    pub allure: Option<crate::api::AllureView>,
    /// The image shown at the top of a failed (broken, flaky) test: its first kept image
    /// attachment, the failure's screenshot as adapters attach it.
    pub screenshot: Option<crate::api::AttachmentView>,
}

#[derive(Serialize, Debug)]
pub struct HistoryMark {
    pub attempt: u32,
    pub status: String,
}

/// An anchor id for a test: stable, and only characters safe in an id and a URL fragment.
pub fn test_anchor(id: &str) -> String {
    // FNV-1a: a short stable hash; ids can be long and hold any character.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("t-{h:016x}")
}

/// Whether a JUnit classname only repeats the test's file: pytest writes `tests.test_cart`
/// for `tests/test_cart.py`.
pub fn classname_is_file(classname: &str, file: Option<&str>) -> bool {
    let Some(file) = file else {
        return false;
    };
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let dotted = stem.replace(['/', '\\'], ".");
    let dotted = dotted.trim_start_matches('.');
    !classname.is_empty()
        && (dotted == classname
            || dotted.ends_with(&format!(".{classname}"))
            || classname.ends_with(&format!(".{dotted}")))
}

pub fn test_row(t: &TestView) -> TestRow {
    let classname = Some(t.classname.as_str()).filter(|c| !classname_is_file(c, t.file.as_deref()));
    let context = [Some(t.suite.as_str()), classname]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty() && *s != t.name)
        .collect::<Vec<_>>()
        .join(" › ");
    TestRow {
        anchor: test_anchor(&t.id),
        id: t.id.clone(),
        id_segment: crate::text::path_segment(&t.id),
        name: t.name.clone(),
        context,
        file: t.file.clone(),
        verdict: t.verdict.as_str().to_string(),
        flaky: t.verdict == TestVerdict::Flaky,
        category: t.category.clone(),
        signature: signature_mark(t),
        novelty: t
            .novelty
            .as_ref()
            .and_then(|n| n["kind"].as_str())
            .map(str::to_string),
        muted: t.muted.as_ref().map(MutedLine::of),
        mutable: t.muted.is_none() && t.verdict.is_failing(),
        history: t
            .attempts
            .iter()
            .map(|a| HistoryMark {
                attempt: a.attempt,
                status: a.status.clone(),
            })
            .collect(),
        duration: t.duration_ms.map(format::millis),
        message: t.message.clone(),
        trace: t.trace.clone(),
        explained_by: t.explained_by,
        allure: t.allure.clone(),
        screenshot: t
            .allure
            .as_ref()
            .filter(|_| t.verdict.is_failing() || t.verdict == TestVerdict::Flaky)
            .and_then(|a| a.attachments.iter().find(|f| f.image && f.url.is_some()))
            .cloned(),
    }
}

/// A failure's signature as the page shows it: a short prefix, the whole one, and the
/// normalised text it is the hash of (for a tooltip) when today's normalisation still gives
/// the stored signature (it would not after a version change).
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct SignatureMark {
    pub short: String,
    pub full: String,
    pub text: Option<String>,
}

/// Characters of a signature shown on the page.
const SIGNATURE_SHOWN: usize = 8;

pub fn signature_mark(t: &TestView) -> Option<SignatureMark> {
    let s = t.signature.as_ref()?;
    let text = crate::results::signature::normalise(&t.message, &t.trace);
    let matches = crate::results::Signature::of_normalised(&text) == *s;
    Some(SignatureMark {
        short: s.as_str().chars().take(SIGNATURE_SHOWN).collect(),
        full: s.to_string(),
        text: matches.then_some(text),
    })
}

/// The lead of a finished run's page: how its failures compare with the service's history,
/// and the failures that are new (never seen) or changed (seen before, never this way).
#[derive(Serialize, Debug)]
pub struct NoveltyView {
    /// `new`, `known`, `changed` and `fixed`.
    #[serde(flatten)]
    pub counts: crate::results::NoveltyCounts,
    /// New failures first, then changed ones.
    pub news: Vec<TestRow>,
}

/// The novelty lead from the tests' tags; `None` when no test carries one (no history kept,
/// no verdict yet, or nothing failed now or in the previous comparable run).
pub fn novelty_view(tests: &[TestView]) -> Option<NoveltyView> {
    let tagged: Vec<(&str, &TestView)> = tests
        .iter()
        .filter_map(|t| Some((t.novelty.as_ref()?["kind"].as_str()?, t)))
        .collect();
    if tagged.is_empty() {
        return None;
    }
    let n = model::novelty(&tagged);
    Some(NoveltyView {
        counts: n.counts,
        news: n.news.into_iter().map(|(_, t)| test_row(t)).collect(),
    })
}

/// Failures under one category.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct CategoryGroup {
    pub name: String,
    pub count: u32,
    pub tests: Vec<CategoryEntry>,
    /// Tests of the category not listed (status keeps only the first few).
    pub more: u32,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct CategoryEntry {
    pub name: String,
    pub message: String,
    /// Its failure signature, when recorded.
    pub signature: Option<SignatureMark>,
    /// Anchor of the test in the results table, when it is there.
    pub anchor: Option<String>,
}

/// Failed and broken tests grouped by their category (the classifier's, which every test view
/// carries; `Unclassified` when no rule matched), in the one order of
/// [`model::failure_groups`]: largest first, `Unclassified` last, equal groups in rule order
/// (`rule_order`: the run's `status.categories`). A muted failure does not fail the run: it
/// shows in the muted tile and its own row, as the email lists it apart, not among the
/// failures. Flaky tests have a section of their own.
pub fn failure_groups(tests: &[TestView], rule_order: &[crate::crd::CategoryStat]) -> Vec<CategoryGroup> {
    let failures = tests
        .iter()
        .filter(|t| model::is_run_failure(t.verdict, t.muted.as_ref()))
        .map(|t| (t, t.category.as_deref()));
    model::failure_groups(failures, rule_order)
        .into_iter()
        .map(|g| CategoryGroup {
            name: g.category,
            count: g.tests.len() as u32,
            more: 0,
            tests: g
                .tests
                .into_iter()
                .map(|t| CategoryEntry {
                    name: t.name.clone(),
                    message: t.message.clone(),
                    signature: signature_mark(t),
                    anchor: Some(test_anchor(&t.id)),
                })
                .collect(),
        })
        .collect()
}

/// A filter tab over the results table.
#[derive(Serialize, Debug)]
pub struct FilterTab {
    pub key: String,
    pub label: &'static str,
    pub count: usize,
    pub active: bool,
}

/// The verdicts a results table can be filtered by, failing ones first (as the table sorts).
pub const VERDICTS: [(&str, &str); 5] = [
    ("failed", "Failed"),
    ("broken", "Broken"),
    ("flaky", "Flaky"),
    ("passed", "Passed"),
    ("skipped", "Skipped"),
];

pub fn filter_tabs(tests: &[TestView], active: Option<&str>) -> Vec<FilterTab> {
    let mut tabs = vec![FilterTab {
        key: String::new(),
        label: "All",
        count: tests.len(),
        active: active.is_none(),
    }];
    for (key, label) in VERDICTS {
        tabs.push(FilterTab {
            key: key.to_string(),
            label,
            count: tests.iter().filter(|t| t.verdict.as_str() == key).count(),
            active: active == Some(key),
        });
    }
    tabs
}

/// One report channel on the run page.
#[derive(Serialize, Debug)]
pub struct ChannelView {
    pub channel: &'static str,
    pub state: &'static str,
    pub class: String,
    pub attempts: u32,
    pub at: Option<String>,
    /// `at` as RFC 3339, for the browser to show in its zone like every other time.
    pub at_rfc3339: Option<String>,
    pub reason: Option<String>,
}

/// A delivery's state as the pages show it, and its badge class. Pending after a failed
/// attempt is a retry (the reason says when the next one is).
pub fn delivery_label(c: &ChannelReport) -> (&'static str, &'static str) {
    match c.state {
        DeliveryState::Pending if c.attempts > 0 => ("Retrying", "pending"),
        DeliveryState::Pending => ("Pending", "pending"),
        DeliveryState::Sent => ("Sent", "sent"),
        DeliveryState::Failed => ("Failed", "failed"),
        DeliveryState::Skipped => ("Skipped", "skipped"),
    }
}

pub fn channel_views(report: Option<&crate::crd::ReportStatus>) -> Vec<ChannelView> {
    let Some(r) = report else {
        return Vec::new();
    };
    let channels: [(&'static str, &Option<ChannelReport>); 4] = [
        ("email", &r.email),
        ("tracker", &r.tracker),
        ("webhook", &r.webhook),
        ("tms", &r.tms),
    ];
    channels
        .into_iter()
        .filter_map(|(channel, c)| {
            let c = c.as_ref()?;
            let (state, class) = delivery_label(c);
            Some(ChannelView {
                channel,
                state,
                class: class.into(),
                attempts: c.attempts,
                at: c.at.map(format::time),
                at_rfc3339: c.at.map(format::rfc3339),
                reason: c.reason.clone(),
            })
        })
        .collect()
}

/// A test that was flaky in some of a service's recent runs.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct FlakyTest {
    pub name: String,
    /// Runs in which it was flaky.
    pub flaky_runs: u32,
    /// The newest run in which it was flaky.
    pub last_run: String,
}

/// Counts how often each test was flaky, given each run's flaky tests (newest run first);
/// the most flaky first, at most `limit`.
pub fn most_flaky(runs: &[(String, Vec<String>)], limit: usize) -> Vec<FlakyTest> {
    let mut by_test: BTreeMap<&str, FlakyTest> = BTreeMap::new();
    for (run, tests) in runs {
        for name in tests {
            by_test
                .entry(name.as_str())
                .or_insert_with(|| FlakyTest {
                    name: name.clone(),
                    flaky_runs: 0,
                    last_run: run.clone(),
                })
                .flaky_runs += 1;
        }
    }
    let mut out: Vec<FlakyTest> = by_test.into_values().collect();
    out.sort_by(|a, b| b.flaky_runs.cmp(&a.flaky_runs).then_with(|| a.name.cmp(&b.name)));
    out.truncate(limit);
    out
}

/// The pass-rate and duration trend points of runs (given newest first; drawn oldest first).
pub fn trend_points(runs: &[TestRun], now: DateTime<Utc>) -> (Vec<chart::Point>, Vec<chart::Point>) {
    let mut pass = Vec::new();
    let mut duration = Vec::new();
    let labels = time_labels(&runs.iter().rev().map(created).collect::<Vec<_>>());
    for (run, label) in runs.iter().rev().zip(labels) {
        let id = run.metadata.name.clone().unwrap_or_default();
        let st = run.status.clone().unwrap_or_default();
        let class = match st.phase {
            Phase::Succeeded => "ok",
            Phase::Failed | Phase::Error => "bad",
            _ => "other",
        };
        let fraction = st.summary.as_ref().and_then(pass_fraction);
        pass.push(chart::Point {
            label: label.clone(),
            value: fraction.map(|f| f * 100.0),
            title: match fraction {
                Some(f) => format!("{id} ({}): {} passed", st.phase, format::rate(f)),
                None => format!("{id} ({}): no results", st.phase),
            },
            href: Some(format!("/runs/{id}")),
            class,
        });
        let ms = if st.phase.is_terminal() {
            run_millis(run, now)
        } else {
            None
        };
        duration.push(chart::Point {
            label,
            value: ms.map(|ms| ms as f64 / 1000.0),
            title: match ms {
                Some(ms) => format!("{id} ({}): {}", st.phase, format::span_ms(ms)),
                None => format!("{id} ({}): not finished", st.phase),
            },
            href: Some(format!("/runs/{id}")),
            class,
        });
    }
    (pass, duration)
}

/// X labels for instants (oldest first) that tell them apart: the time of day when all fall
/// on one day (to the second when two share a minute), the date and time when they span days.
/// Instants are in UTC, as everywhere on the pages' server-drawn parts.
pub fn time_labels(times: &[DateTime<Utc>]) -> Vec<String> {
    let days: std::collections::BTreeSet<_> = times.iter().map(|t| t.date_naive()).collect();
    let minutes: std::collections::BTreeSet<_> =
        times.iter().map(|t| t.format("%H:%M").to_string()).collect();
    let format = if days.len() > 1 {
        "%b %-d %H:%M"
    } else if minutes.len() < times.len() {
        "%H:%M:%S"
    } else {
        "%H:%M"
    };
    times.iter().map(|t| t.format(format).to_string()).collect()
}

/// A stand a run found down, as its page shows it.
#[derive(Serialize, Debug)]
pub struct StandDownView {
    pub stand: String,
    pub reason: String,
    /// `probe on <date>` or `<who> on <date>` once the stand is back; `None` while it is held.
    pub resolved: Option<String>,
}

/// The live log panel: which attempt's log it shows and whether it keeps following it.
#[derive(Serialize, Debug)]
pub struct LogView {
    pub url: String,
    pub number: u32,
    pub position: usize,
    /// The attempt is still running: the page polls the tail.
    pub follow: bool,
}

/// At most this many rows in a results table (failing tests come first, so they are there).
pub const MAX_TEST_ROWS: usize = 2000;

/// Everything the run page shows.
#[derive(Serialize, Debug)]
pub struct RunPage {
    pub id: String,
    pub service: String,
    pub stand: String,
    pub what: String,
    pub packs: Vec<String>,
    pub priority: Priority,
    pub priorities: Vec<Priority>,
    pub nightly: bool,
    pub schedule: Option<String>,
    pub phase: PhaseView,
    pub message: Option<String>,
    pub queued: bool,
    /// Not finished and not already asked to stop.
    pub cancellable: bool,
    pub cancel_requested: bool,
    pub queue_position: Option<u32>,
    pub created: String,
    pub created_at: String,
    pub started: Option<String>,
    pub started_at: Option<String>,
    pub finished: Option<String>,
    pub finished_at: Option<String>,
    /// Running time so far (or in all), and the instant to keep counting from while active.
    pub elapsed: Option<String>,
    pub since: Option<String>,
    pub emails: Vec<String>,
    pub issue_key: Option<String>,
    pub version: Option<String>,
    pub max_attempts: u32,
    pub attempts: Vec<AttemptView>,
    pub log: Option<LogView>,
    /// "expired by retention on <date>" when retention removed the run's files (then there is
    /// no log to show and no file to link).
    pub files_expired: Option<String>,
    pub summary: Option<SummaryView>,
    /// What is new against the service's history (absent where none is kept, or before the
    /// verdict).
    pub novelty: Option<NoveltyView>,
    /// The outage this run found (`status.standDown`): its stand is held until resolved.
    pub stand_down: Option<StandDownView>,
    pub categories: Vec<CategoryGroup>,
    pub flaky: Vec<TestRow>,
    pub filters: Vec<FilterTab>,
    pub filter: Option<String>,
    pub tests: Vec<TestRow>,
    /// Rows left out of the table (beyond [`MAX_TEST_ROWS`]).
    pub hidden_tests: usize,
    pub report: Vec<ChannelView>,
}

pub fn run_page(
    run: &TestRun,
    tests: &[TestView],
    max_attempts: u32,
    filter: Option<&str>,
    now: DateTime<Utc>,
) -> RunPage {
    let id = run.metadata.name.clone().unwrap_or_default();
    let st = run.status.clone().unwrap_or_default();
    let t = &run.spec.template;
    let created = created(run);
    let shown: Vec<&TestView> = tests
        .iter()
        .filter(|tv| filter.is_none_or(|f| tv.verdict.as_str() == f))
        .collect();
    let files_expired =
        crate::retention::files_expired_at(run).map(|at| crate::retention::files_expired_note(&at));
    let log = st
        .attempts
        .iter()
        .enumerate()
        .next_back()
        .filter(|_| files_expired.is_none())
        .map(|(i, a)| LogView {
            url: format!("/api/v1/runs/{id}/attempts/{}/log", i + 1),
            number: a.number,
            position: i + 1,
            follow: a.state == AttemptState::Running,
        });
    RunPage {
        service: t.service.clone(),
        stand: t.stand.clone(),
        what: selection_label(run),
        packs: model::run_packs(run),
        priority: t.priority,
        priorities: Priority::all().collect(),
        nightly: run.spec.run_type == crate::crd::RunType::Nightly,
        schedule: run
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::crd::LABEL_SCHEDULE).cloned()),
        phase: phase(st.phase),
        message: st.message.clone(),
        queued: st.phase == Phase::Queued,
        cancellable: st.phase.can_cancel() && !run.spec.cancel,
        cancel_requested: run.spec.cancel && !st.phase.is_terminal(),
        queue_position: st.queue_position.filter(|_| st.phase == Phase::Queued),
        created: format::time(created),
        created_at: format::rfc3339(created),
        started: st.started_at.map(format::time),
        started_at: st.started_at.map(format::rfc3339),
        finished: st.finished_at.map(format::time),
        finished_at: st.finished_at.map(format::rfc3339),
        elapsed: run_millis(run, now).map(format::span_ms),
        since: st
            .started_at
            .filter(|_| st.finished_at.is_none())
            .map(format::rfc3339),
        emails: t.emails.clone(),
        issue_key: t.issue_key.clone(),
        version: t.version.clone(),
        max_attempts,
        attempts: st
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| attempt_view(&id, i + 1, a, now))
            .collect(),
        log,
        files_expired,
        summary: st.summary.as_ref().map(summary_view),
        novelty: novelty_view(tests),
        stand_down: st.stand_down.as_ref().map(|d| StandDownView {
            stand: d.stand.clone(),
            reason: d.reason.clone(),
            resolved: d.resolved_at.map(|at| {
                format!(
                    "{} on {}",
                    d.resolved_by.as_deref().unwrap_or("resolved"),
                    at.format("%Y-%m-%d %H:%M UTC")
                )
            }),
        }),
        categories: failure_groups(tests, &st.categories),
        flaky: tests
            .iter()
            .filter(|tv| tv.verdict == TestVerdict::Flaky)
            .map(test_row)
            .collect(),
        filters: filter_tabs(tests, filter),
        filter: filter.map(str::to_string),
        hidden_tests: shown.len().saturating_sub(MAX_TEST_ROWS),
        tests: shown.into_iter().take(MAX_TEST_ROWS).map(test_row).collect(),
        report: channel_views(st.report.as_ref()),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TestView;
    use crate::crd::{RunTemplate, Selection, TestRunStatus};
    use crate::report::model::UNCLASSIFIED;

    fn run(name: &str) -> TestRun {
        TestRun::test(name, RunTemplate::test("demo").category("smoke"))
    }

    fn test(name: &str, verdict: &str) -> TestView {
        TestView {
            id: name.into(),
            name: name.into(),
            classname: String::new(),
            suite: String::new(),
            file: None,
            verdict: serde_json::from_value(serde_json::json!(verdict)).expect("a verdict name"),
            category: None,
            signature: None,
            attempts: vec![],
            explained_by: 1,
            message: format!("{name} broke"),
            trace: String::new(),
            duration_ms: None,
            allure: None,
            novelty: None,
            muted: None,
        }
    }

    #[test]
    fn the_novelty_lead_counts_every_tag_and_lists_new_failures_before_changed_ones() {
        let tagged = |name: &str, verdict: &str, kind: Option<&str>| TestView {
            novelty: kind.map(|k| serde_json::json!({"kind": k})),
            ..test(name, verdict)
        };
        assert!(
            novelty_view(&[test("a", "failed"), test("b", "passed")]).is_none(),
            "no history, no lead"
        );
        let tests = [
            tagged("changed-1", "broken", Some("changed")),
            tagged("known-1", "failed", Some("known")),
            tagged("new-1", "failed", Some("new")),
            tagged("fixed-1", "passed", Some("fixed")),
            tagged("new-2", "failed", Some("new")),
            tagged("plain", "passed", None),
        ];
        let v = novelty_view(&tests).unwrap();
        assert_eq!(
            (v.counts.new, v.counts.known, v.counts.changed, v.counts.fixed),
            (2, 1, 1, 1)
        );
        let news: Vec<(&str, Option<&str>)> = v
            .news
            .iter()
            .map(|t| (t.name.as_str(), t.novelty.as_deref()))
            .collect();
        assert_eq!(
            news,
            [
                ("new-1", Some("new")),
                ("new-2", Some("new")),
                ("changed-1", Some("changed"))
            ]
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_failure_shows_a_short_signature_with_its_text_while_the_definition_still_gives_it() {
        let mut t = test("t", "failed");
        t.message = "expected: <200> but was: <500>".into();
        assert_eq!(signature_mark(&t), None, "none recorded, none shown");
        t.signature = Some(crate::results::Signature::of(&t.message, &t.trace));
        let mark = signature_mark(&t).unwrap();
        assert_eq!(mark.short.len(), 8);
        assert!(mark.full.starts_with(&mark.short));
        assert_eq!(mark.text.as_deref(), Some("expected: <<n>> but was: <<n>>"));
        // Recorded under another definition: the text would not be what it is the hash of.
        t.signature = Some(crate::results::Signature::of("something else", ""));
        assert_eq!(signature_mark(&t).unwrap().text, None);
    }

    #[test]
    fn a_run_is_described_by_its_packs_else_its_category_else_everything() {
        let mut r = run("demo-1");
        assert_eq!(selection_label(&r), "smoke");
        r.spec.template.packs = vec!["basic".into(), "api".into()];
        assert_eq!(selection_label(&r), "basic, api");
        r.spec.template.packs.clear();
        r.spec.template.category = None;
        assert_eq!(selection_label(&r), "all packs");
    }

    #[test]
    fn attempts_say_what_they_ran() {
        let first = Attempt {
            started_at: Some(at("2024-05-01T10:00:00Z")),
            finished_at: Some(at("2024-05-01T10:01:05Z")),
            exit_code: Some(1),
            ..Attempt::test(1, Selection::all(vec!["basic".into()]))
        };
        assert_eq!(attempt_label(&first), "every test of basic");
        let rerun = Attempt {
            number: 2,
            selection: Selection::failed(vec!["basic".into()], 1, vec!["a".into(), "b".into()]),
            ..first.clone()
        };
        assert_eq!(attempt_label(&rerun), "rerun of 2 failed tests of attempt 1");
        let v = attempt_view("demo-1", 2, &rerun, at("2024-05-01T11:00:00Z"));
        assert_eq!(v.duration.as_deref(), Some("1m 05s"));
        assert_eq!(v.log_url, "/api/v1/runs/demo-1/attempts/2/log");
        assert_eq!(v.tests, vec!["a", "b"]);
    }

    #[test]
    fn pass_rate_counts_flaky_as_passed_and_ignores_skipped() {
        let s = Summary {
            total: 6,
            passed: 3,
            failed: 1,
            flaky: 1,
            skipped: 1,
            broken: 0,
            muted: 0,
        };
        assert_eq!(pass_fraction(&s), Some(0.8));
        assert_eq!(summary_view(&s).pass_rate, "80%");
        let nothing_ran = Summary {
            total: 2,
            skipped: 2,
            ..Default::default()
        };
        assert_eq!(pass_fraction(&nothing_ran), None);
    }

    #[test]
    fn failures_without_a_classification_are_grouped_as_unclassified() {
        let tests = vec![
            test("a", "failed"),
            test("b", "flaky"),
            test("c", "broken"),
            test("d", "passed"),
        ];
        let groups = failure_groups(&tests, &[]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].name, UNCLASSIFIED);
        assert_eq!(groups[0].count, 2);
        let names: Vec<&str> = groups[0].tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["a", "c"],
            "flaky tests are listed apart, not as failures"
        );
        assert_eq!(groups[0].tests[0].message, "a broke");
    }

    #[test]
    fn failures_are_grouped_by_their_category_largest_first_and_linked() {
        let mut tests = vec![
            test("a", "failed"),
            test("c", "broken"),
            test("d", "failed"),
            test("f", "flaky"),
        ];
        tests[0].category = Some("Product defects".into());
        tests[1].category = Some("Infrastructure".into());
        tests[2].category = Some("Infrastructure".into());
        tests[3].category = Some("Timeouts".into());
        let groups = failure_groups(&tests, &[]);
        let names: Vec<(&str, u32)> = groups.iter().map(|g| (g.name.as_str(), g.count)).collect();
        assert_eq!(names, vec![("Infrastructure", 2), ("Product defects", 1)]);
        assert_eq!(groups[0].tests[0].anchor, Some(test_anchor("c")));

        // A muted failure is no failure of the run: it is left out of the groups.
        tests[0].muted = Some(crate::crd::MutedTest {
            test: "a".into(),
            mute: "m".into(),
            reason: "known".into(),
            ticket: None,
            passed: false,
        });
        let names: Vec<(String, u32)> = failure_groups(&tests, &[])
            .into_iter()
            .map(|g| (g.name, g.count))
            .collect();
        assert_eq!(names, vec![("Infrastructure".to_string(), 2)]);
    }

    #[test]
    fn anchors_are_stable_and_safe_whatever_the_test_name() {
        let a = test_anchor(r#"<script>"x" & y</script>"#);
        assert_eq!(a, test_anchor(r#"<script>"x" & y</script>"#));
        assert!(
            a.starts_with("t-") && a[2..].chars().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
        assert_ne!(a, test_anchor("other"));
    }

    #[test]
    fn the_most_flaky_tests_come_first_with_their_newest_flaky_run() {
        let runs = vec![
            ("r3".to_string(), vec!["x".to_string()]),
            ("r2".to_string(), vec!["x".to_string(), "y".to_string()]),
            ("r1".to_string(), vec![]),
        ];
        let top = most_flaky(&runs, 10);
        assert_eq!(
            top,
            vec![
                FlakyTest {
                    name: "x".into(),
                    flaky_runs: 2,
                    last_run: "r3".into()
                },
                FlakyTest {
                    name: "y".into(),
                    flaky_runs: 1,
                    last_run: "r2".into()
                },
            ]
        );
        assert_eq!(most_flaky(&runs, 1).len(), 1);
    }

    #[test]
    fn report_channels_show_in_a_fixed_order_with_their_reasons() {
        use crate::crd::{ChannelReport, DeliveryState, ReportStatus};
        let channel = |state, reason: Option<&str>| {
            Some(ChannelReport {
                state,
                attempts: 2,
                at: Some(at("2024-05-01T10:00:00Z")),
                reason: reason.map(str::to_string),
                next_at: None,
                sent_to: Vec::new(),
            })
        };
        let report = ReportStatus {
            email: channel(DeliveryState::Sent, None),
            tracker: channel(DeliveryState::Failed, Some("tracker answered 503")),
            webhook: None,
            tms: channel(DeliveryState::Skipped, Some("no version")),
        };
        let views = channel_views(Some(&report));
        let states: Vec<(&str, &str)> = views.iter().map(|c| (c.channel, c.state)).collect();
        assert_eq!(
            states,
            vec![("email", "Sent"), ("tracker", "Failed"), ("tms", "Skipped")]
        );
        assert_eq!(views[1].reason.as_deref(), Some("tracker answered 503"));
        assert_eq!(views[1].class, "failed");
        assert_eq!(views[0].at.as_deref(), Some("2024-05-01 10:00:00 UTC"));
        assert!(channel_views(None).is_empty());

        // Pending after failed attempts is a retry; before any attempt, just pending.
        let mut waiting = ReportStatus {
            email: channel(DeliveryState::Pending, Some("attempt 2 of 6 failed: SMTP down")),
            webhook: channel(DeliveryState::Pending, None),
            ..Default::default()
        };
        waiting.webhook.as_mut().unwrap().attempts = 0;
        let views = channel_views(Some(&waiting));
        let states: Vec<(&str, &str, &str)> = views
            .iter()
            .map(|c| (c.channel, c.state, c.class.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("email", "Retrying", "pending"),
                ("webhook", "Pending", "pending")
            ]
        );
    }

    #[test]
    fn a_run_whose_files_expired_says_so_instead_of_showing_its_log() {
        let mut r = run("demo-1");
        r.status = Some(TestRunStatus {
            phase: Phase::Failed,
            attempts: vec![Attempt {
                exit_code: Some(1),
                ..Attempt::test(1, Selection::all(vec!["basic".into()]))
            }],
            ..TestRunStatus::default()
        });
        let now = at("2024-05-01T10:02:00Z");
        assert!(run_page(&r, &[], 4, None, now).log.is_some());
        assert!(run_page(&r, &[], 4, None, now).files_expired.is_none());
        r.metadata.annotations.get_or_insert_default().insert(
            crate::retention::ANNOTATION_FILES_EXPIRED.into(),
            "2024-06-01T03:04:05Z".into(),
        );
        let page = run_page(&r, &[], 4, None, now);
        assert!(page.log.is_none());
        assert_eq!(
            page.files_expired.as_deref(),
            Some("expired by retention on 2024-06-01 03:04 UTC")
        );
    }

    #[test]
    fn the_run_page_follows_the_running_attempts_log_and_filters_tests() {
        let mut r = run("demo-1");
        let first = Attempt {
            started_at: Some(at("2024-05-01T10:00:00Z")),
            finished_at: Some(at("2024-05-01T10:01:00Z")),
            exit_code: Some(1),
            ..Attempt::test(1, Selection::all(vec!["basic".into()]))
        };
        let second = Attempt {
            number: 2,
            selection: Selection::failed(vec!["basic".into()], 1, vec!["a".into()]),
            state: AttemptState::Running,
            finished_at: None,
            ..first.clone()
        };
        r.status = Some(TestRunStatus {
            phase: Phase::Running,
            started_at: Some(at("2024-05-01T10:00:00Z")),
            attempts: vec![first, second],
            ..Default::default()
        });
        let tests = vec![test("a", "failed"), test("b", "flaky"), test("c", "passed")];
        let page = run_page(&r, &tests, 4, Some("flaky"), at("2024-05-01T10:02:00Z"));
        let log = page.log.as_ref().unwrap();
        assert_eq!((log.position, log.follow), (2, true));
        assert_eq!(log.url, "/api/v1/runs/demo-1/attempts/2/log");
        assert_eq!(page.tests.len(), 1);
        assert_eq!(page.tests[0].name, "b");
        assert!(page.tests[0].flaky);
        assert_eq!(page.flaky.len(), 1, "the flaky list ignores the filter");
        assert_eq!(page.categories[0].tests[0].name, "a");
        assert_eq!(page.elapsed.as_deref(), Some("2m 00s"));
        assert_eq!(
            page.since.as_deref(),
            Some("2024-05-01T10:00:00Z"),
            "the clock keeps running"
        );
        assert!(page.cancellable && !page.queued);
        let counts: Vec<(String, usize)> = page.filters.iter().map(|f| (f.key.clone(), f.count)).collect();
        assert_eq!(counts[0], (String::new(), 3));
        assert!(page.filters.iter().any(|f| f.key == "flaky" && f.active));
    }

    #[test]
    fn trends_run_oldest_to_newest_and_skip_runs_without_results() {
        let now = at("2024-05-02T00:00:00Z");
        let mut done = run("demo-new");
        done.status = Some(TestRunStatus {
            phase: Phase::Failed,
            started_at: Some(at("2024-05-01T10:00:00Z")),
            finished_at: Some(at("2024-05-01T10:02:00Z")),
            summary: Some(Summary {
                total: 4,
                passed: 3,
                failed: 1,
                ..Default::default()
            }),
            ..Default::default()
        });
        let queued = run("demo-old");
        let (pass, duration) = trend_points(&[done, queued], now);
        assert_eq!(pass.len(), 2);
        assert_eq!(pass[0].value, None, "the older run had no results");
        assert_eq!(pass[1].value, Some(75.0));
        assert_eq!(pass[1].class, "bad");
        assert_eq!(duration[1].value, Some(120.0));
        assert_eq!(pass[1].href.as_deref(), Some("/runs/demo-new"));
        assert_eq!(
            pass[1].label, "00:00:00",
            "runs of one minute (both at the epoch here) are labelled to the second"
        );
    }

    fn finished(name: &str, created_at: &str, finished_at: &str) -> TestRun {
        let mut r = run(name);
        r.metadata.annotations =
            Some([(crate::crd::ANNOTATION_CREATED.to_string(), created_at.to_string())].into());
        r.status = Some(TestRunStatus {
            phase: Phase::Succeeded,
            started_at: Some(at(created_at)),
            finished_at: Some(at(finished_at)),
            ..Default::default()
        });
        r
    }

    #[test]
    fn recently_finished_runs_are_ordered_by_when_they_finished() {
        let runs = vec![
            finished("new-quick", "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"),
            finished("old-slow", "2024-05-01T09:00:00Z", "2024-05-01T11:00:00Z"),
            run("still-queued"),
            finished("oldest", "2024-05-01T08:00:00Z", "2024-05-01T08:30:00Z"),
        ];
        let names: Vec<&str> = recently_finished(&runs, 10)
            .iter()
            .map(|r| r.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["old-slow", "new-quick", "oldest"]);
        assert_eq!(recently_finished(&runs, 1).len(), 1);
    }

    #[test]
    fn the_packs_column_shows_packs_and_the_category_apart() {
        let mut r = finished("demo-1", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.350Z");
        let resolve = |_: &TestRun| vec!["basic".to_string(), "api".to_string()];
        let row = run_row(&r, &resolve, at("2024-05-02T00:00:00Z"));
        assert_eq!(row.packs, "basic, api", "the category's packs, not its name");
        assert_eq!(row.category.as_deref(), Some("smoke"));
        assert_eq!(row.duration.as_deref(), Some("350 ms"), "not 0s");
        r.status.as_mut().unwrap().attempts = vec![Attempt {
            exit_code: Some(0),
            ..Attempt::test(1, Selection::all(vec!["basic".into()]))
        }];
        assert_eq!(run_row(&r, &resolve, at("2024-05-02T00:00:00Z")).packs, "basic");
    }

    #[test]
    fn a_classname_that_only_repeats_the_file_is_left_out() {
        assert!(classname_is_file("tests.test_cart", Some("tests/test_cart.py")));
        assert!(classname_is_file("test_cart", Some("tests/test_cart.py")));
        assert!(!classname_is_file(
            "tests.test_cart.TestCheckout",
            Some("tests/test_cart.py")
        ));
        assert!(!classname_is_file("tests.test_cart", None));
        let mut t = test("applies the discount", "failed");
        t.suite = "pytest".into();
        t.classname = "tests.test_cart".into();
        t.file = Some("tests/test_cart.py".into());
        assert_eq!(test_row(&t).context, "pytest");
        t.classname = "tests.test_cart.TestCheckout".into();
        assert_eq!(test_row(&t).context, "pytest › tests.test_cart.TestCheckout");
    }

    #[test]
    fn time_labels_carry_the_date_when_runs_span_days_and_seconds_when_minutes_repeat() {
        let days = [at("2024-05-01T23:50:00Z"), at("2024-05-02T01:54:00Z")];
        assert_eq!(time_labels(&days), ["May 1 23:50", "May 2 01:54"]);
        let one_day = [at("2024-05-01T01:54:00Z"), at("2024-05-01T02:10:00Z")];
        assert_eq!(time_labels(&one_day), ["01:54", "02:10"]);
        let one_minute = [at("2024-05-01T01:54:03Z"), at("2024-05-01T01:54:41Z")];
        assert_eq!(time_labels(&one_minute), ["01:54:03", "01:54:41"]);
    }

    #[test]
    fn a_pass_rate_of_two_thirds_reads_66_7_percent() {
        let s = Summary {
            total: 3,
            passed: 2,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(summary_view(&s).pass_rate, "66.7%");
    }
}
