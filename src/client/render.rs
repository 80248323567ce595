//! How the client shows things: the words for each follow [`Event`], a run's status and a
//! queue (pure functions over values, tested as text), and the two places they go — plain
//! lines when standard output is not a terminal (no escape sequences on a pipe or in a CI
//! log), and on a terminal the same record of what happened with live bars below it: a
//! spinner while queued, one bar per running attempt (with its test count when known up
//! front, a rerun's), each replaced by its line when the attempt ends.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;

use super::follow::Event;
use crate::crd::{AttemptState, CategoryStat, ShardState, Summary, TestRun};
use crate::ui::format;

/// Counts of a summary as a sentence: `4 passed, 1 failed, 1 flaky, 1 skipped of 7`.
pub fn counts(s: &Summary) -> String {
    let mut parts = vec![format!("{} passed", s.passed)];
    for (n, what) in [
        (s.failed, "failed"),
        (s.broken, "broken"),
        (s.flaky, "flaky"),
        (s.skipped, "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!("{} of {}", parts.join(", "), s.total)
}

/// `attempt 2`, or `attempt 2 (launch 3)` when a relaunch after an interruption made the
/// launch position (what `logs --attempt` takes) differ from the attempt number.
fn attempt_name(position: usize, number: u32) -> String {
    if usize::try_from(number).is_ok_and(|n| n == position) {
        format!("attempt {number}")
    } else {
        format!("attempt {number} (launch {position})")
    }
}

/// The failures by category, indented, with the first few tests of each.
pub fn category_lines(categories: &[CategoryStat]) -> Vec<String> {
    if categories.is_empty() {
        return Vec::new();
    }
    let mut out = vec!["failures by category:".to_string()];
    for c in categories {
        out.push(format!("  {} ({})", c.name, c.count));
        for t in &c.tests {
            let first_line = t.message.lines().next().unwrap_or("").trim();
            if first_line.is_empty() {
                out.push(format!("    {}", t.name));
            } else {
                out.push(format!("    {}: {first_line}", t.name));
            }
        }
        let shown = u32::try_from(c.tests.len()).unwrap_or(u32::MAX);
        if c.count > shown {
            out.push(format!("    … and {} more", c.count - shown));
        }
    }
    out
}

/// The lines an event prints. `id` is the run, `page` its page in the web UI.
pub fn event_lines(id: &str, page: &str, e: &Event) -> Vec<String> {
    match e {
        Event::Queued {
            position,
            waiting_for,
        } => {
            let at = position.map_or("queued".to_string(), |p| format!("queued at position {p}"));
            vec![match waiting_for {
                Some(w) => format!("{at}: {w}"),
                None => at,
            }]
        }
        Event::AttemptStarted {
            position,
            number,
            what,
            ..
        } => vec![format!("{} started: {what}", attempt_name(*position, *number))],
        Event::AttemptFinished { .. } => vec![attempt_end(e)],
        Event::ShardStarted {
            position,
            number,
            index,
            tests,
            unit,
        } => vec![format!(
            "{} shard {index} started: {tests} {}",
            attempt_name(*position, *number),
            if *tests == 1 {
                unit.trim_end_matches('s')
            } else {
                unit
            }
        )],
        Event::ShardFinished { .. } => vec![shard_end(e)],
        Event::Retrying => vec!["retrying the failed tests".to_string()],
        Event::Reporting => vec!["verdict known; sending the report".to_string()],
        Event::Finished {
            phase,
            message,
            summary,
            categories,
        } => {
            let mut out = vec![match summary {
                Some(s) => format!("run {id} {phase}: {}", counts(s)),
                None => format!("run {id} {phase}"),
            }];
            if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
                out.push(format!("  {m}"));
            }
            out.extend(category_lines(categories));
            out.push(format!("run page: {page}"));
            out
        }
    }
}

/// How a shard ended, in one line.
fn shard_end(e: &Event) -> String {
    let Event::ShardFinished {
        position,
        number,
        index,
        state,
        summary,
        message,
        ..
    } = e
    else {
        return String::new();
    };
    let what = match state {
        ShardState::Running | ShardState::Finished => "finished",
        ShardState::Crashed => "crashed",
        ShardState::TimedOut => "timed out",
        ShardState::LaunchFailed => "could not launch",
        ShardState::Cancelled => "stopped: the run was cancelled",
    };
    let mut line = format!("{} shard {index} {what}", attempt_name(*position, *number));
    if summary.total > 0 {
        line.push_str(&format!(": {}", counts(summary)));
    }
    if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(&format!(" — {m}"));
    }
    line
}

/// How an attempt ended, in one line.
fn attempt_end(e: &Event) -> String {
    let Event::AttemptFinished {
        position,
        number,
        state,
        summary,
        exit_code,
        message,
        seconds,
    } = e
    else {
        return String::new();
    };
    let name = attempt_name(*position, *number);
    let took = seconds.map_or(String::new(), |s| format!(" in {}", format::duration(s)));
    let mut line = match state {
        AttemptState::Running | AttemptState::Finished => format!("{name} finished{took}"),
        AttemptState::TimedOut => format!("{name} timed out{took}"),
        AttemptState::LaunchFailed => format!("{name} could not launch"),
        AttemptState::Interrupted => format!("{name} was interrupted; it is launched again"),
        AttemptState::Cancelled => format!("{name} stopped: the run was cancelled"),
        AttemptState::SelectionFailed => {
            format!("{name} did not run what it selected{took}; those tests keep their last result")
        }
    };
    if let Some(s) = summary {
        line.push_str(&format!(": {}", counts(s)));
    }
    if let Some(c) = exit_code {
        line.push_str(&format!(" (exit code {c})"));
    }
    if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(&format!(" — {m}"));
    }
    line
}

/// `tomato status` in text: what the run is, where it is, its attempts and results.
pub fn status_text(run: &TestRun, page: &str) -> String {
    let id = run.metadata.name.clone().unwrap_or_default();
    let st = run.status.clone().unwrap_or_default();
    let t = &run.spec.template;
    let mut out = vec![format!("run {id}: {}", st.phase)];
    if run.spec.cancel && !st.phase.is_terminal() {
        out[0].push_str(" (cancel requested)");
    }
    out.push(format!(
        "  {} on {}: {}, priority {}",
        t.service,
        t.stand,
        crate::ui::view::selection_label(run),
        t.priority
    ));
    if let Some(p) = st
        .queue_position
        .filter(|_| st.phase == crate::crd::Phase::Queued)
    {
        out.push(format!("  queue position {p}"));
    }
    if let Some(started) = st.started_at {
        let mut line = format!("  started {}", format::time(started));
        if let Some(f) = st.finished_at {
            line.push_str(&format!(
                ", finished {} ({})",
                format::time(f),
                format::duration(format::seconds_between(started, f))
            ));
        }
        out.push(line);
    }
    if let Some(m) = st.message.as_deref().filter(|m| !m.is_empty()) {
        out.push(format!("  {m}"));
    }
    if !st.attempts.is_empty() {
        out.push("attempts:".to_string());
        for (i, a) in st.attempts.iter().enumerate() {
            let mut line = format!(
                "  {}: {}, {:?}",
                attempt_name(i + 1, a.number),
                crate::ui::view::attempt_label(a),
                a.state
            );
            if let Some(s) = &a.summary {
                line.push_str(&format!(", {}", counts(s)));
            }
            if let (Some(s), Some(f)) = (a.started_at, a.finished_at) {
                line.push_str(&format!(
                    " in {}",
                    format::duration(format::seconds_between(s, f))
                ));
            }
            out.push(line);
            for sh in &a.shards {
                let done = sh.passed + sh.failed + sh.skipped + sh.broken;
                let mut line = format!(
                    "    shard {}: {}, {} {}, {done} reported ({} passed, {} failed, {} broken)",
                    sh.index,
                    sh.state.as_str(),
                    sh.tests,
                    sh.unit.as_deref().unwrap_or("tests"),
                    sh.passed,
                    sh.failed,
                    sh.broken
                );
                if let Some(m) = sh.message.as_deref() {
                    line.push_str(&format!(" — {m}"));
                }
                out.push(line);
            }
        }
    }
    if let Some(s) = &st.summary {
        out.push(format!("summary: {}", counts(s)));
    }
    out.extend(category_lines(&st.categories));
    out.push(format!("run page: {page}"));
    out.join("\n")
}

/// One run in a queue as `/api/v1/services/{name}/queue` answers it (either key spelling).
#[derive(Deserialize, Debug)]
pub struct QueueItem {
    #[serde(alias = "runId")]
    pub run_id: String,
    pub priority: u8,
    pub stand: String,
    #[serde(default)]
    pub category: Option<String>,
    pub phase: String,
    #[serde(default)]
    pub position: Option<u32>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default, alias = "waitingFor")]
    pub waiting_for: Option<String>,
}

/// A service's queue as the API answers it.
#[derive(Deserialize, Debug)]
pub struct QueueList {
    pub service: String,
    #[serde(default)]
    pub running: Vec<QueueItem>,
    #[serde(default)]
    pub queued: Vec<QueueItem>,
}

/// `tomato rules suggest` in text: each proposed rule as the JSON to paste into the service's
/// categories, with its cluster and back-test. Reads the API's answer loosely: a field this
/// client does not know is left out, not an error.
pub fn suggestions_text(answer: &serde_json::Value) -> String {
    let service = answer["service"].as_str().unwrap_or("?");
    let days = answer["days"].as_u64().unwrap_or(0);
    let list = answer["suggestions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return format!(
            "{service}: no unclassified failures shared by enough runs in the last {days} days; nothing to suggest"
        );
    }
    let mut out = vec![format!(
        "{service}: {} rule(s) proposed from the last {days} days' unclassified failures",
        list.len()
    )];
    for s in &list {
        let b = &s["backtest"];
        let collisions: Vec<String> = b["collisions"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} ({v})")).collect())
            .unwrap_or_default();
        out.push(String::new());
        out.push(format!(
            "signature {}: {} failures in {} runs ({})",
            s["signature"].as_str().unwrap_or("?"),
            s["failures"],
            s["runs"],
            s["tests"]
                .as_array()
                .map(|t| t.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ));
        out.push(format!("  e.g. {}", s["example"].as_str().unwrap_or_default()));
        out.push(format!(
            "  back-test: matches {} of {} failures, {} unclassified; collides with {}",
            b["matched"],
            b["checked"],
            b["unclassified"],
            if collisions.is_empty() {
                "no category".to_string()
            } else {
                collisions.join(", ")
            }
        ));
        let rule = serde_json::to_string_pretty(&s["rule"]).unwrap_or_default();
        out.extend(rule.lines().map(|l| format!("  {l}")));
    }
    out.join("\n")
}

/// `tomato queue` in text: per service, what runs and what waits, in admission order.
pub fn queue_text(q: &QueueList) -> String {
    let mut out = vec![format!(
        "{}: {} running, {} queued",
        q.service,
        q.running.len(),
        q.queued.len()
    )];
    for r in &q.running {
        let attempt = r.attempt.map_or(String::new(), |a| format!(", attempt {a}"));
        out.push(format!(
            "  {:<8} {}  priority {}  {}  {}{attempt}",
            r.phase,
            r.run_id,
            r.priority,
            r.stand,
            r.category.as_deref().unwrap_or("all packs")
        ));
    }
    for r in &q.queued {
        let waiting = r
            .waiting_for
            .as_deref()
            .filter(|w| !w.is_empty())
            .map_or(String::new(), |w| format!(" — {w}"));
        out.push(format!(
            "  #{:<7} {}  priority {}  {}  {}{waiting}",
            r.position.unwrap_or_default(),
            r.run_id,
            r.priority,
            r.stand,
            r.category.as_deref().unwrap_or("all packs")
        ));
    }
    out.join("\n")
}

/// Prints a line to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Where follow events go.
pub enum Progress {
    /// One line per event, nothing else: for pipes, files and CI logs.
    Plain,
    /// The same lines, with a spinner while queued and a bar per attempt.
    Terminal(Bars),
}

impl Progress {
    /// Bars when standard output is a terminal that can draw them, plain lines otherwise.
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if std::io::stdout().is_terminal() && !dumb {
            Progress::Terminal(Bars::default())
        } else {
            Progress::Plain
        }
    }

    pub fn event(&mut self, id: &str, page: &str, e: &Event) {
        match self {
            Progress::Plain => event_lines(id, page, e).iter().for_each(|l| print_line(l)),
            Progress::Terminal(bars) => bars.event(id, page, e),
        }
    }

    /// A line between the bars (or alone).
    pub fn line(&self, line: &str) {
        match self {
            Progress::Plain => print_line(line),
            Progress::Terminal(bars) => bars.multi.suspend(|| print_line(line)),
        }
    }

    /// Removes whatever is still drawn (following was stopped).
    pub fn clear(&mut self) {
        if let Progress::Terminal(bars) = self {
            bars.clear();
        }
    }
}

/// The progress bars on a terminal.
pub struct Bars {
    multi: MultiProgress,
    queue: Option<ProgressBar>,
    attempts: BTreeMap<usize, ProgressBar>,
    /// One bar per running shard, by launch position and shard index.
    shards: BTreeMap<(usize, u32), ProgressBar>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            queue: None,
            attempts: BTreeMap::new(),
            shards: BTreeMap::new(),
        }
    }
}

const TICK: Duration = Duration::from_millis(120);

impl Bars {
    fn event(&mut self, id: &str, page: &str, e: &Event) {
        match e {
            Event::Queued { .. } => {
                let text = event_lines(id, page, e).join(" ");
                let bar = self.queue.get_or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(style("{spinner} {msg} {elapsed}"));
                    b.enable_steady_tick(TICK);
                    b
                });
                bar.set_message(text);
            }
            Event::AttemptStarted {
                position,
                number,
                what,
                tests,
            } => {
                if let Some(q) = self.queue.take() {
                    q.finish_and_clear();
                }
                let bar = match tests {
                    Some(n) => {
                        let b = ProgressBar::new(u64::from(*n));
                        b.set_style(style(
                            "{spinner} {prefix}: {msg} [{bar:30}] {pos}/{len} tests {elapsed}",
                        ));
                        b
                    }
                    None => {
                        let b = ProgressBar::new_spinner();
                        b.set_style(style("{spinner} {prefix}: {msg} {elapsed}"));
                        b
                    }
                };
                bar.set_prefix(attempt_name(*position, *number));
                bar.set_message(what.clone());
                let bar = self.multi.add(bar);
                bar.enable_steady_tick(TICK);
                self.attempts.insert(*position, bar);
            }
            Event::AttemptFinished { position, .. } => {
                // The bar was the attempt's live state; its line is the record.
                if let Some(bar) = self.attempts.remove(position) {
                    bar.finish_and_clear();
                }
                let line = attempt_end(e);
                self.multi.suspend(|| print_line(&line));
            }
            Event::ShardStarted {
                position,
                number,
                index,
                ..
            } => {
                let b = ProgressBar::new_spinner();
                b.set_style(style("  {spinner} {prefix}: {msg} {elapsed}"));
                b.set_prefix(format!("{} shard {index}", attempt_name(*position, *number)));
                let msg = event_lines(id, page, e).join(" ");
                b.set_message(msg.split_once(": ").map_or(msg.clone(), |(_, m)| m.to_string()));
                let b = self.multi.add(b);
                b.enable_steady_tick(TICK);
                self.shards.insert((*position, *index), b);
            }
            Event::ShardFinished { position, index, .. } => {
                if let Some(bar) = self.shards.remove(&(*position, *index)) {
                    bar.finish_and_clear();
                }
                let line = shard_end(e);
                self.multi.suspend(|| print_line(&line));
            }
            Event::Retrying | Event::Reporting | Event::Finished { .. } => {
                if matches!(e, Event::Finished { .. }) {
                    self.clear();
                }
                for l in event_lines(id, page, e) {
                    self.multi.suspend(|| print_line(&l));
                }
            }
        }
    }

    fn clear(&mut self) {
        if let Some(q) = self.queue.take() {
            q.finish_and_clear();
        }
        for (_, b) in std::mem::take(&mut self.attempts) {
            b.abandon();
        }
        for (_, b) in std::mem::take(&mut self.shards) {
            b.abandon();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates above are valid")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CategoryTest, Phase, RunTemplate};

    #[test]
    fn counts_leave_out_what_did_not_happen() {
        let s = Summary {
            total: 7,
            passed: 4,
            failed: 1,
            flaky: 1,
            skipped: 1,
            broken: 0,
            muted: 0,
        };
        assert_eq!(counts(&s), "4 passed, 1 failed, 1 flaky, 1 skipped of 7");
        assert_eq!(
            counts(&Summary {
                total: 1,
                passed: 1,
                ..Default::default()
            }),
            "1 passed of 1"
        );
    }

    #[test]
    fn the_verdict_lists_failures_by_category_and_ends_with_the_run_page() {
        let e = Event::Finished {
            phase: Phase::Failed,
            message: None,
            summary: Some(Summary {
                total: 3,
                passed: 1,
                failed: 2,
                ..Default::default()
            }),
            categories: vec![CategoryStat {
                name: "Infrastructure".into(),
                count: 3,
                tests: vec![CategoryTest {
                    name: "api > calls".into(),
                    message: "ECONNREFUSED\nat ...".into(),
                }],
            }],
        };
        let lines = event_lines("demo-1", "http://t/runs/demo-1", &e);
        assert_eq!(
            lines,
            [
                "run demo-1 Failed: 1 passed, 2 failed of 3",
                "failures by category:",
                "  Infrastructure (3)",
                "    api > calls: ECONNREFUSED",
                "    … and 2 more",
                "run page: http://t/runs/demo-1",
            ]
        );
    }

    #[test]
    fn an_attempt_that_could_not_launch_says_why() {
        let e = Event::AttemptFinished {
            position: 1,
            number: 1,
            state: AttemptState::LaunchFailed,
            summary: None,
            exit_code: None,
            message: Some("command not found: x".into()),
            seconds: Some(0),
        };
        assert_eq!(
            event_lines("r", "p", &e),
            ["attempt 1 could not launch — command not found: x"]
        );
    }

    #[test]
    fn a_relaunched_attempt_names_its_launch_position_too() {
        let e = Event::AttemptStarted {
            position: 2,
            number: 1,
            what: "every test".into(),
            tests: None,
        };
        assert_eq!(
            event_lines("r", "p", &e),
            ["attempt 1 (launch 2) started: every test"]
        );
    }

    #[test]
    fn status_text_says_what_where_and_the_page() {
        let run = TestRun::test("demo-1", RunTemplate::test("demo").category("smoke"));
        let text = status_text(&run, "http://t/runs/demo-1");
        assert_eq!(
            text,
            "run demo-1: Queued\n  demo on localhost: smoke, priority 2\nrun page: http://t/runs/demo-1"
        );
    }

    #[test]
    fn a_queue_reads_in_either_key_spelling() {
        let snake = r#"{"service":"demo","running":[{"run_id":"demo-a","priority":2,"stand":"localhost","phase":"Running","attempt":1}],
            "queued":[{"run_id":"demo-b","priority":1,"stand":"localhost","category":"smoke","phase":"Queued","position":1,"waiting_for":"waiting for a slot"}]}"#;
        let camel = snake
            .replace("run_id", "runId")
            .replace("waiting_for", "waitingFor");
        for json in [snake.to_string(), camel] {
            let q: QueueList = serde_json::from_str(&json).unwrap();
            assert_eq!(
                queue_text(&q),
                "demo: 1 running, 1 queued\n  Running  demo-a  priority 2  localhost  all packs, attempt 1\n  #1       demo-b  priority 1  localhost  smoke — waiting for a slot"
            );
        }
    }
}
