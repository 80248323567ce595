//! The pure decisions of a regression: checking its spec, sharing the cases among the
//! assessors, counting progress, and what the next step is. No I/O: both drivers and the
//! tests call these directly.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{
    AssessorProgress, Assignment, Counts, DeliveryState, Progress, RegressionPhase, RegressionSpec,
    RegressionStatus,
};
use crate::integrations::tms::{Execution, Outcome, PlanRef};
use crate::packs::{InputError, PacksConfig};

/// What to do next for a regression, read from its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Find the plan, cases and assessors; ensure version, build, run and assignments.
    Prepare,
    /// Find or create the ticket (and the release version in the tracker).
    Ticket,
    /// Email each assessor their cases.
    Notify,
    /// Read the executions and update progress.
    Follow,
    /// Comment the summary on the ticket and email the report.
    Report,
    /// Nothing more to do.
    Done,
}

/// The next step of a regression with this status.
pub fn next_step(st: &RegressionStatus) -> Step {
    let final_or_absent =
        |c: &Option<crate::crd::ChannelReport>| c.as_ref().is_some_and(|c| c.state.is_final());
    if st.phase.is_terminal() {
        return Step::Done;
    }
    if st.tms.as_ref().and_then(|t| t.run_id).is_none() || st.assignments.is_empty() {
        return Step::Prepare;
    }
    if !st.conditions.iter().any(|c| c.type_ == TICKET_CONDITION) {
        return Step::Ticket;
    }
    if !final_or_absent(&st.assessor_emails) {
        return Step::Notify;
    }
    if st.phase == RegressionPhase::Reporting {
        return Step::Report;
    }
    Step::Follow
}

/// The condition recording whether the ticket is settled (found, created, or not wanted).
pub const TICKET_CONDITION: &str = "TicketReady";

/// The plan a regression names, or its service's default.
pub fn plan_ref(spec: &RegressionSpec, config: &PacksConfig) -> Result<PlanRef, InputError> {
    let from_spec = spec.plan.as_ref().map(|p| match p {
        IntOrString::Int(i) => u64::try_from(*i)
            .map(PlanRef::Id)
            .map_err(|_| InputError::new("plan", format!("{i} is not a plan id"))),
        IntOrString::String(s) if s.trim().is_empty() => Err(InputError::new("plan", "is empty")),
        IntOrString::String(s) => Ok(PlanRef::Name(s.trim().to_string())),
    });
    match from_spec {
        Some(r) => r,
        None => config
            .service(&spec.service)
            .and_then(|s| s.regression_plan.clone())
            .ok_or_else(|| {
                InputError::new(
                    "plan",
                    format!(
                        "is required: service {} has no default regression plan (regression.plan in packs_config)",
                        spec.service
                    ),
                )
            }),
    }
}

/// Checks a change of a regression's spec: only `deadline` (a release slips) and `emails`
/// (who gets the final report) may change once it exists. Everything else was handed out
/// already — the test run, the assessors' shares, the ticket — and changing it would leave
/// them describing another regression; start a new one instead.
pub fn check_change(old: &RegressionSpec, new: &RegressionSpec) -> Result<(), InputError> {
    let fixed = [
        ("service", old.service != new.service),
        ("version", old.version != new.version),
        ("plan", old.plan != new.plan),
        ("stand", old.stand != new.stand),
        ("assessors", old.assessors != new.assessors),
        ("queue", old.queue != new.queue),
        ("issueKey", old.issue_key != new.issue_key),
    ];
    match fixed.into_iter().find(|(_, changed)| *changed) {
        None => Ok(()),
        Some((field, _)) => Err(InputError::new(
            field,
            "cannot change once the regression exists (only deadline and emails can); delete it and start another",
        )),
    }
}

/// Most assessors one regression is shared among (the CRD's `maxItems`).
pub const MAX_ASSESSORS: usize = 100;

/// Checks a regression spec against packs_config; names the field at fault (the first of
/// [`spec_problems`]).
pub fn check_spec(spec: &RegressionSpec, config: &PacksConfig) -> Result<PlanRef, InputError> {
    match spec_problems(spec, config).into_iter().next() {
        Some(e) => Err(e),
        None => plan_ref(spec, config),
    }
}

/// Every problem of a regression spec, at most one per field, in the spec's field order:
/// what a form shows all at once.
pub fn spec_problems(spec: &RegressionSpec, config: &PacksConfig) -> Vec<InputError> {
    let mut problems = Vec::new();
    match config.service(&spec.service) {
        None => {
            let known: Vec<&str> = config.services().map(|s| s.name.as_str()).collect();
            problems.push(InputError::new(
                "service",
                format!(
                    "unknown service {}; known: {}",
                    crate::text::quote(&spec.service),
                    known.join(", ")
                ),
            ));
        }
        Some(svc) => {
            if let Err(e) = svc.check_stand(&spec.stand) {
                problems.push(e);
            }
        }
    }
    if spec.version.trim().is_empty() || spec.version.len() > 255 {
        problems.push(InputError::new("version", "must be 1–255 characters"));
    } else if let Err(m) = crate::text::check_text(&spec.version) {
        problems.push(InputError::new("version", m));
    }
    if let Err(e) = check_assessors(&spec.assessors) {
        problems.push(e);
    }
    if let Some(q) = &spec.queue {
        let ok = q.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && q.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            problems.push(InputError::new(
                "queue",
                format!("{} is not a project key or queue like QA", crate::text::quote(q)),
            ));
        }
    }
    if let Some(Err(e)) = spec.issue_key.as_deref().map(crate::packs::check_issue_key) {
        problems.push(e);
    }
    if let Some(m) = spec
        .emails
        .iter()
        .find_map(|e| crate::packs::check_email(e).err())
    {
        problems.push(InputError::new("emails", m));
    }
    if problems.is_empty()
        && let Err(e) = plan_ref(spec, config)
    {
        problems.push(e);
    }
    problems
}

fn check_assessors(assessors: &[String]) -> Result<(), InputError> {
    if assessors.is_empty() {
        return Err(InputError::new("assessors", "name at least one assessor"));
    }
    if assessors.len() > MAX_ASSESSORS {
        return Err(InputError::new(
            "assessors",
            format!("at most {MAX_ASSESSORS} assessors"),
        ));
    }
    for (i, a) in assessors.iter().enumerate() {
        crate::text::check_name(a).map_err(|m| InputError::new("assessors", m))?;
        if a.trim().is_empty() || a.len() > 150 || a.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                "assessors",
                format!("{} is not a user name", crate::text::quote(a)),
            ));
        }
        if assessors[..i].contains(a) {
            return Err(InputError::new(
                "assessors",
                format!("{} is listed twice", crate::text::quote(a)),
            ));
        }
    }
    Ok(())
}

/// Shares the executions among the assessors: ordered by case (then execution), dealt in
/// turn in the spec's order of assessors. The same executions and assessors always give the
/// same assignment, so running reconcile again changes nothing; the shares differ by at most
/// one.
pub fn assign(executions: &[Execution], assessors: &[String]) -> Vec<Assignment> {
    let mut ordered: Vec<&Execution> = executions.iter().collect();
    ordered.sort_by_key(|e| (e.case_id, e.id));
    let mut out: Vec<Assignment> = assessors
        .iter()
        .map(|a| Assignment {
            assessor: a.clone(),
            executions: Vec::new(),
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    let n = out.len();
    for (i, e) in ordered.into_iter().enumerate() {
        out[i % n].executions.push(e.id);
    }
    out
}

fn count(counts: &mut Counts, outcome: Outcome) {
    counts.total += 1;
    match outcome {
        Outcome::Idle => counts.idle += 1,
        Outcome::Passed => counts.passed += 1,
        Outcome::Failed => counts.failed += 1,
        Outcome::Blocked => counts.blocked += 1,
    }
}

/// Progress overall and per assessor (by the assignment Tomato made, whoever marks the case).
pub fn progress(executions: &[Execution], assignments: &[Assignment], now: DateTime<Utc>) -> Progress {
    let mut total = Counts::default();
    let mut per: Vec<AssessorProgress> = assignments
        .iter()
        .map(|a| AssessorProgress {
            assessor: a.assessor.clone(),
            counts: Counts::default(),
        })
        .collect();
    for e in executions {
        count(&mut total, e.outcome);
        if let Some(i) = assignments.iter().position(|a| a.executions.contains(&e.id)) {
            count(&mut per[i].counts, e.outcome);
        }
    }
    Progress {
        counts: total,
        assessors: per,
        checked_at: Some(now),
    }
}

/// Where a regression in progress stands: `Reporting` once every case has a verdict, else
/// `Overdue` past the deadline, else `InProgress`.
pub fn phase_of(p: &Progress, deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) -> RegressionPhase {
    if p.counts.total > 0 && p.counts.idle == 0 {
        RegressionPhase::Reporting
    } else if deadline.is_some_and(|d| now > d) {
        RegressionPhase::Overdue
    } else {
        RegressionPhase::InProgress
    }
}

/// `alice has 2 open cases, bob has 1`: who still has cases without a verdict.
pub fn open_cases(p: &Progress) -> String {
    let open: Vec<String> = p
        .assessors
        .iter()
        .filter(|a| a.counts.idle > 0)
        .map(|a| {
            format!(
                "{} has {} open case{}",
                a.assessor,
                a.counts.idle,
                if a.counts.idle == 1 { "" } else { "s" }
            )
        })
        .collect();
    open.join(", ")
}

/// The status line while following: counts, and who is late when overdue.
pub fn progress_message(p: &Progress, phase: RegressionPhase) -> String {
    let c = p.counts;
    let done = c.total - c.idle;
    let base = format!(
        "{done} of {} cases have a verdict: {} passed, {} failed, {} blocked",
        c.total, c.passed, c.failed, c.blocked
    );
    match phase {
        RegressionPhase::Overdue => format!("past the deadline; {}. {base}", open_cases(p)),
        _ => base,
    }
}

/// Whether every notification of the end went out (or was given up or skipped).
pub fn reported(st: &RegressionStatus) -> bool {
    [&st.summary_comment, &st.report_email]
        .iter()
        .all(|c| c.as_ref().is_some_and(|c| c.state != DeliveryState::Pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: u64, case: u64, outcome: Outcome) -> Execution {
        Execution {
            id,
            case_id: case,
            case_summary: format!("case {case}"),
            assignee: None,
            status: String::new(),
            outcome,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn six_cases_are_shared_evenly_between_two_assessors_in_case_order() {
        let execs: Vec<Execution> = [(16, 6), (11, 1), (12, 2), (13, 3), (14, 4), (15, 5)]
            .into_iter()
            .map(|(e, c)| exec(e, c, Outcome::Idle))
            .collect();
        let a = assign(&execs, &names(&["alice", "bob"]));
        assert_eq!(a[0].assessor, "alice");
        assert_eq!(a[0].executions, vec![11, 13, 15]);
        assert_eq!(a[1].executions, vec![12, 14, 16]);
    }

    #[test]
    fn assigning_again_changes_nothing_and_shares_differ_by_at_most_one() {
        let execs: Vec<Execution> = (1..=7).map(|i| exec(100 + i, i, Outcome::Idle)).collect();
        let who = names(&["a", "b", "c"]);
        let first = assign(&execs, &who);
        let mut shuffled = execs.clone();
        shuffled.reverse();
        assert_eq!(assign(&shuffled, &who), first, "input order does not matter");
        let sizes: Vec<usize> = first.iter().map(|a| a.executions.len()).collect();
        assert_eq!(sizes, vec![3, 2, 2]);
    }

    #[test]
    fn progress_counts_each_outcome_overall_and_per_assessor() {
        let execs = vec![
            exec(1, 1, Outcome::Passed),
            exec(2, 2, Outcome::Failed),
            exec(3, 3, Outcome::Blocked),
            exec(4, 4, Outcome::Idle),
        ];
        let a = assign(&execs, &names(&["alice", "bob"]));
        let p = progress(&execs, &a, Utc::now());
        assert_eq!(
            p.counts,
            Counts {
                total: 4,
                idle: 1,
                passed: 1,
                failed: 1,
                blocked: 1
            }
        );
        assert_eq!(p.assessors[0].counts.passed + p.assessors[0].counts.blocked, 2);
        assert_eq!(p.assessors[1].counts.idle, 1);
        assert_eq!(open_cases(&p), "bob has 1 open case");
    }

    #[test]
    fn a_regression_reports_once_every_case_has_a_verdict_and_is_overdue_past_its_deadline() {
        let now = Utc::now();
        let mut execs = vec![exec(1, 1, Outcome::Passed), exec(2, 2, Outcome::Idle)];
        let a = assign(&execs, &names(&["alice"]));
        let p = progress(&execs, &a, now);
        assert_eq!(phase_of(&p, None, now), RegressionPhase::InProgress);
        let past = now - chrono::Duration::minutes(1);
        assert_eq!(phase_of(&p, Some(past), now), RegressionPhase::Overdue);
        assert!(
            progress_message(&p, RegressionPhase::Overdue)
                .starts_with("past the deadline; alice has 1 open case.")
        );
        execs[1].outcome = Outcome::Blocked;
        let p = progress(&execs, &a, now);
        assert_eq!(phase_of(&p, Some(past), now), RegressionPhase::Reporting);
    }

    #[test]
    fn the_steps_follow_the_status() {
        let mut st = RegressionStatus::default();
        assert_eq!(next_step(&st), Step::Prepare);
        st.tms = Some(crate::crd::TmsRecord {
            run_id: Some(1),
            ..Default::default()
        });
        st.assignments = vec![Assignment::default()];
        assert_eq!(next_step(&st), Step::Ticket);
        crate::crd::Condition::set(
            &mut st.conditions,
            TICKET_CONDITION,
            crate::crd::ConditionStatus::True,
            "Created",
            "",
            Utc::now(),
        );
        assert_eq!(next_step(&st), Step::Notify);
        st.assessor_emails = Some(crate::integrations::delivery::skipped("no smtp", Utc::now()));
        assert_eq!(next_step(&st), Step::Follow);
        st.phase = RegressionPhase::Reporting;
        assert_eq!(next_step(&st), Step::Report);
        st.phase = RegressionPhase::Completed;
        assert_eq!(next_step(&st), Step::Done);
    }

    #[test]
    fn every_problem_of_a_regression_spec_is_named_at_once_one_per_field() {
        let config = crate::packs::PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .unwrap();
        let spec: RegressionSpec = serde_json::from_value(serde_json::json!({
            "service": "demo", "version": " ", "stand": "prod.example.com",
            "assessors": [], "queue": "qa", "emails": ["not an address", "also bad"],
        }))
        .unwrap();
        let fields: Vec<&str> = spec_problems(&spec, &config).iter().map(|e| e.field).collect();
        assert_eq!(fields, ["stand", "version", "assessors", "queue", "emails"]);
        // The reconciler's check names the first of them.
        assert_eq!(check_spec(&spec, &config).unwrap_err().field, "stand");
    }

    #[test]
    fn only_the_deadline_and_the_emails_of_a_regression_can_change() {
        let old: RegressionSpec = serde_json::from_value(serde_json::json!({
            "service": "demo", "version": "2.0", "stand": "localhost",
            "assessors": ["alice", "bob"], "queue": "QA",
        }))
        .unwrap();
        let mut new = old.clone();
        new.deadline = Some(Utc::now());
        new.emails = vec!["lead@example.com".into()];
        assert_eq!(check_change(&old, &new), Ok(()));
        let mut swapped = new.clone();
        swapped.assessors.reverse();
        assert_eq!(check_change(&old, &swapped).unwrap_err().field, "assessors");
        let mut planned = new.clone();
        planned.plan = Some(IntOrString::Int(3));
        assert_eq!(check_change(&old, &planned).unwrap_err().field, "plan");
        let mut ticketed = new;
        ticketed.queue = None;
        ticketed.issue_key = Some("QA-1".into());
        assert_eq!(check_change(&old, &ticketed).unwrap_err().field, "queue");
    }
}
