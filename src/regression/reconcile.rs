//! One reconcile step of a regression: read the status, do the next step against test
//! management, the tracker or email, and return the new status and when to look again.
//!
//! Shaped as a kube-runtime reconciler (`controller-rs`): a free async function over the
//! object and a [`Context`] of clients behind traits, returning what to store and a requeue
//! delay. Each call does one [`Step`], so the driver stores what it made before the next
//! one — a crash loses at most one step, which the next call repeats without duplicating
//! anything (every `ensure_*` finds before it creates; a ticket is found by its label; each
//! assessor's email is recorded in `sentTo` as it goes).
//!
//! Failures: bad input (unknown plan or assessor, a plan without confirmed cases, a refused
//! ticket) ends the regression `Failed` with a condition naming the reason; an outside system
//! out of reach is retried with the report settings' backoff, and while preparing, given up
//! after as many attempts (`Failed`, `TmsUnreachable`). Whatever was created before a failure
//! stays listed in `status.created` and `status.tms`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;

use super::notify::{self, About, CaseLine};
use super::plan::{
    Step, TICKET_CONDITION, assign, check_spec, next_step, phase_of, progress, progress_message, reported,
};
use crate::crd::{
    ChannelReport, Condition, ConditionStatus, DeliveryState, Regression, RegressionPhase, RegressionStatus,
    RetryState, TicketRecord, TmsRecord,
};
use crate::integrations::delivery::{self, Delivery, DeliveryError, RetryPolicy};
use crate::integrations::email::Mailer;
use crate::integrations::tms::{ExecutionChange, NewPlan, NewRun, PlanType, TestManagement, TmsError};
use crate::integrations::tracker::{IssueTracker, NewIssue};
use crate::packs::PacksConfig;

/// Email: the transport and the sender.
#[derive(Clone)]
pub struct Mail {
    pub mailer: Arc<dyn Mailer>,
    pub from: Mailbox,
}

/// What reconciling needs; every client is optional because each is configured separately.
#[derive(Clone)]
pub struct Context {
    pub tms: Option<Arc<dyn TestManagement>>,
    pub tracker: Option<Arc<dyn IssueTracker>>,
    pub mail: Option<Mail>,
    pub config: Arc<PacksConfig>,
    /// Where people reach Tomato (links to the regression's page).
    pub public_url: String,
    /// How often progress is read while the assessors work.
    pub poll: Duration,
    /// Backoff of calls to outside systems.
    pub retry: RetryPolicy,
}

impl Context {
    /// The clients regressions use: the reporter's test-management client, and the tracker and
    /// email from the report settings, each when configured.
    pub fn from_settings(
        settings: &crate::integrations::settings::ReportSettings,
        tms: Option<Arc<dyn crate::integrations::tms::TestManagement>>,
        config: Arc<PacksConfig>,
        public_url: String,
    ) -> Result<Context, String> {
        use crate::regression::reconcile::Mail;
        let redactor = settings.redactor.clone();
        let tracker = match &settings.tracker {
            Some(t) => Some(Arc::new(crate::integrations::tracker::HttpTracker::new(
                t.clone(),
                redactor.clone(),
            )?)
                as Arc<dyn crate::integrations::tracker::IssueTracker>),
            None => None,
        };
        let mail = match &settings.smtp {
            Some(s) => Some(Mail {
                mailer: Arc::new(crate::integrations::email::SmtpMailer::new(s, redactor.clone())?),
                from: s.from.clone(),
            }),
            None => None,
        };
        Ok(Context {
            tms,
            tracker,
            mail,
            config,
            public_url,
            poll: settings
                .tms
                .as_ref()
                .map_or(crate::integrations::settings::DEFAULT_TMS_POLL, |t| t.poll),
            retry: settings.retry.clone(),
        })
    }
}

/// What one step of [`reconcile`] returns.
/// What a reconcile step decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: RegressionStatus,
    /// When to reconcile again (`Duration::ZERO`: at once); `None` when nothing more will happen.
    pub requeue: Option<Duration>,
}

/// Why a step did not complete.
#[derive(Debug)]
enum Failure {
    /// Bad input or a refusal: the regression fails with this reason.
    Bad { reason: &'static str, message: String },
    /// Out of reach: try again later.
    Transient { reason: &'static str, message: String },
}

impl From<TmsError> for Failure {
    fn from(e: TmsError) -> Failure {
        match e {
            TmsError::Unreachable(m) => Failure::Transient {
                reason: "TmsUnreachable",
                message: m,
            },
            TmsError::Refused(m) => Failure::Bad {
                reason: "TmsRefused",
                message: m,
            },
        }
    }
}

fn tracker_failure(e: DeliveryError) -> Failure {
    match e {
        DeliveryError::Transient(m) => Failure::Transient {
            reason: "TrackerUnreachable",
            message: m,
        },
        DeliveryError::Permanent(m) => Failure::Bad {
            reason: "TrackerRefused",
            message: m,
        },
    }
}

fn bad(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure::Bad {
        reason,
        message: message.into(),
    }
}

fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (t - now).to_std().unwrap_or(Duration::ZERO)
}

/// Does the next step of `reg` (see the module doc).
pub async fn reconcile(reg: &Regression, ctx: &Context, now: DateTime<Utc>) -> Outcome {
    let mut st = reg.status.clone().unwrap_or_default();
    if let Some(at) = st.retry.as_ref().and_then(|r| r.next_at).filter(|t| *t > now) {
        return Outcome {
            status: st,
            requeue: Some(until(at, now)),
        };
    }
    st.observed_generation = reg.metadata.generation;
    if st.phase == RegressionPhase::Pending {
        st.phase = RegressionPhase::Preparing;
        st.started_at = Some(now);
        st.message = Some("preparing the test run".into());
    }
    let step = next_step(&st);
    let result = match step {
        Step::Done => {
            return Outcome {
                status: st,
                requeue: None,
            };
        }
        Step::Prepare => prepare(reg, ctx, &mut st, now).await,
        Step::Ticket => ticket(reg, ctx, &mut st, now).await,
        Step::Notify => notify_assessors(reg, ctx, &mut st, now).await,
        Step::Follow => follow(reg, ctx, &mut st, now).await,
        Step::Report => report(reg, ctx, &mut st, now).await,
    };
    let requeue = match result {
        Ok(requeue) => {
            st.retry = None;
            requeue
        }
        Err(Failure::Bad { reason, message }) => {
            fail(&mut st, reason, message, now);
            None
        }
        Err(Failure::Transient { reason, message }) => {
            let failures = st.retry.as_ref().map_or(0, |r| r.failures) + 1;
            let gives_up = matches!(step, Step::Prepare | Step::Ticket) && failures >= ctx.retry.attempts;
            if gives_up {
                fail(
                    &mut st,
                    reason,
                    format!(
                        "gave up after {failures} attempt{}: {message}",
                        if failures == 1 { "" } else { "s" }
                    ),
                    now,
                );
                None
            } else {
                let wait = ctx.retry.delay(failures, rand::random());
                let next_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                st.retry = Some(RetryState {
                    failures,
                    next_at: Some(next_at),
                    reason: Some(message.clone()),
                });
                Condition::set(
                    &mut st.conditions,
                    "Reachable",
                    ConditionStatus::False,
                    reason,
                    format!(
                        "attempt {failures} failed: {message}; next in {}",
                        crate::duration::human(wait)
                    ),
                    now,
                );
                Some(wait)
            }
        }
    };
    let was_unreachable = st
        .conditions
        .iter()
        .any(|c| c.type_ == "Reachable" && c.status == ConditionStatus::False);
    if st.retry.is_none() && was_unreachable {
        Condition::set(
            &mut st.conditions,
            "Reachable",
            ConditionStatus::True,
            "Reached",
            "",
            now,
        );
    }
    Outcome { status: st, requeue }
}

fn fail(st: &mut RegressionStatus, reason: &'static str, message: String, now: DateTime<Utc>) {
    let created = if st.created.is_empty() {
        String::new()
    } else {
        format!(" (already created: {})", st.created.join("; "))
    };
    st.phase = RegressionPhase::Failed;
    st.message = Some(format!("{message}{created}"));
    st.completed_at = Some(now);
    st.retry = None;
    Condition::set(
        &mut st.conditions,
        "Ready",
        ConditionStatus::False,
        reason,
        message,
        now,
    );
}

fn note_created(st: &mut RegressionStatus, made: bool, what: String) {
    if made && !st.created.contains(&what) {
        st.created.push(what);
    }
}

fn tms(ctx: &Context) -> Result<&dyn TestManagement, Failure> {
    ctx.tms.as_deref().ok_or_else(|| {
        bad(
            "TmsNotConfigured",
            "test management is not configured: set TOMATO_TMS_URL, TOMATO_TMS_USER and TOMATO_TMS_PASSWORD",
        )
    })
}

fn record(st: &mut RegressionStatus) -> &mut TmsRecord {
    st.tms.get_or_insert_default()
}

async fn prepare(
    reg: &Regression,
    ctx: &Context,
    st: &mut RegressionStatus,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, Failure> {
    let spec = &reg.spec;
    let name = reg.metadata.name.clone().unwrap_or_default();
    let tms = tms(ctx)?;
    let plan_ref = check_spec(spec, &ctx.config)
        .map_err(|e| bad("InvalidSpec", format!("spec.{}: {}", e.field, e.message)))?;
    let plan = tms.find_plan(&plan_ref).await?.ok_or_else(|| {
        bad(
            "UnknownPlan",
            format!("plan {plan_ref} is not in {}", tms.describe()),
        )
    })?;
    {
        let r = record(st);
        r.plan_id = plan.id;
        r.plan_name = plan.name.clone();
        r.product = plan.product.clone();
    }
    let users = tms.find_users(&spec.assessors).await?;
    let missing: Vec<&str> = spec
        .assessors
        .iter()
        .filter(|a| !users.iter().any(|u| &u.username == *a))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            "UnknownAssessor",
            format!(
                "unknown assessor{} {}: no such user in {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                tms.describe()
            ),
        ));
    }
    let cases = tms.plan_cases(plan.id).await?;
    let confirmed: Vec<u64> = cases.iter().filter(|c| c.confirmed).map(|c| c.id).collect();
    if confirmed.is_empty() {
        return Err(bad(
            "EmptyPlan",
            format!(
                "plan {:?} has no confirmed case ({} case{} in all); only CONFIRMED cases can join a test run",
                plan.name,
                cases.len(),
                if cases.len() == 1 { "" } else { "s" }
            ),
        ));
    }

    let version = tms.ensure_version(plan.product_id, &spec.version).await?;
    note_created(
        st,
        version.created,
        format!("version {} of {} (id {})", spec.version, plan.product, version.id),
    );
    record(st).version_id = Some(version.id);
    let build = tms.ensure_build(version.id, &spec.version).await?;
    note_created(
        st,
        build.created,
        format!("build {} (id {})", spec.version, build.id),
    );
    record(st).build_id = Some(build.id);
    // A run's build must be of its plan's version: a plan of another version gets a child
    // plan for the release, holding the same cases.
    let run_plan = if plan.version_id == version.id {
        plan.id
    } else {
        let plan_name = crate::integrations::tms::automated::fit(&format!("{} {}", plan.name, spec.version));
        let child = tms
            .ensure_plan(&NewPlan {
                name: plan_name.clone(),
                product_id: plan.product_id,
                version_id: version.id,
                plan_type: PlanType::Id(plan.type_id),
                parent: Some(plan.id),
                text: format!(
                    "{} for {}, made by Tomato for regression {name}.",
                    plan.name, spec.version
                ),
            })
            .await?;
        note_created(st, child.created, format!("plan {plan_name} (id {})", child.id));
        tms.link_cases(child.id, &confirmed).await?;
        child.id
    };
    record(st).run_plan_id = Some(run_plan);
    let about_link = format!("{}/regressions/{name}", ctx.public_url.trim_end_matches('/'));
    let run = tms
        .ensure_run(&NewRun {
            summary: crate::integrations::tms::automated::fit(&format!(
                "Regression of {} {} ({name})",
                spec.service, spec.version
            )),
            plan_id: run_plan,
            build_id: build.id,
            notes: format!("Tomato regression {name} on {}: {about_link}", spec.stand),
        })
        .await?;
    note_created(st, run.created, format!("test run {}", run.id));
    {
        let r = record(st);
        r.run_id = Some(run.id);
        r.run_url = Some(tms.run_url(run.id));
    }
    let executions = tms.add_cases(run.id, &confirmed).await?;
    let executions: Vec<_> = executions
        .into_iter()
        .filter(|e| confirmed.contains(&e.case_id))
        .collect();
    let assignments = assign(&executions, &spec.assessors);
    for a in &assignments {
        let user = users.iter().find(|u| u.username == a.assessor).map(|u| u.id);
        for e in executions.iter().filter(|e| a.executions.contains(&e.id)) {
            if e.assignee.as_deref() != Some(a.assessor.as_str()) {
                tms.update_execution(
                    e.id,
                    &ExecutionChange {
                        status: None,
                        assignee: user,
                    },
                )
                .await?;
            }
        }
    }
    st.progress = Some(progress(&executions, &assignments, now));
    st.assignments = assignments;
    let shares: Vec<String> = st
        .assignments
        .iter()
        .map(|a| format!("{} to {}", a.executions.len(), a.assessor))
        .collect();
    let message = format!(
        "test run {} with {} cases: {}",
        run.id,
        executions.len(),
        shares.join(", ")
    );
    Condition::set(
        &mut st.conditions,
        "Ready",
        ConditionStatus::True,
        "Prepared",
        message.clone(),
        now,
    );
    st.message = Some(message);
    Ok(Some(Duration::ZERO))
}

async fn ticket(
    reg: &Regression,
    ctx: &Context,
    st: &mut RegressionStatus,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, Failure> {
    let spec = &reg.spec;
    let settle = |st: &mut RegressionStatus, status: ConditionStatus, reason: &str, message: String| {
        Condition::set(&mut st.conditions, TICKET_CONDITION, status, reason, message, now);
    };
    match (&spec.issue_key, &spec.queue, &ctx.tracker) {
        (None, None, _) => settle(
            st,
            ConditionStatus::False,
            "NotRequested",
            "the regression names no issueKey or queue, so it has no ticket".into(),
        ),
        (_, _, None) => settle(
            st,
            ConditionStatus::False,
            "TrackerNotConfigured",
            "no tracker is configured (set TOMATO_TRACKER)".into(),
        ),
        (Some(key), _, Some(tracker)) => {
            st.ticket = Some(TicketRecord {
                key: key.clone(),
                url: Some(tracker.issue_url(key)),
                created: false,
                version: None,
            });
            settle(st, ConditionStatus::True, "Given", format!("ticket {key}"));
        }
        (None, Some(queue), Some(tracker)) => {
            let version = tracker
                .ensure_version(queue, &spec.version)
                .await
                .map_err(tracker_failure)?;
            let label = format!(
                "tomato-{}",
                reg.metadata
                    .uid
                    .clone()
                    .unwrap_or_else(|| reg.metadata.name.clone().unwrap_or_default())
            );
            let about = About::new(reg, &ctx.public_url);
            let (key, created) = match tracker.find_issue(queue, &label).await.map_err(tracker_failure)? {
                Some(key) => (key, false),
                None => {
                    let shares: Vec<(String, usize)> = st
                        .assignments
                        .iter()
                        .map(|a| (a.assessor.clone(), a.executions.len()))
                        .collect();
                    let issue = NewIssue {
                        project: queue.clone(),
                        summary: notify::ticket_summary(&about),
                        description: notify::ticket_description(tracker.kind(), &about, &shares),
                        label,
                        version: Some(version),
                    };
                    (tracker.create_issue(&issue).await.map_err(tracker_failure)?, true)
                }
            };
            note_created(st, created, format!("ticket {key}"));
            st.ticket = Some(TicketRecord {
                url: Some(tracker.issue_url(&key)),
                key: key.clone(),
                created: true,
                version: Some(spec.version.clone()),
            });
            settle(
                st,
                ConditionStatus::True,
                "Created",
                format!("ticket {key} in {queue}"),
            );
        }
    }
    Ok(Some(Duration::ZERO))
}

/// The address of each user, by name (empty when test management has none).
async fn addresses(tms: &dyn TestManagement, names: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let users = tms.find_users(names).await?;
    Ok(names
        .iter()
        .map(|n| {
            let email = users
                .iter()
                .find(|u| &u.username == n)
                .map(|u| u.email.clone())
                .unwrap_or_default();
            (n.clone(), email)
        })
        .collect())
}

/// Records a delivery attempt on a channel and says when to look again.
fn settle_channel(
    ch: &mut ChannelReport,
    d: Delivery,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Option<Duration> {
    delivery::record(ch, d, &ctx.retry, now, rand::random());
    match (ch.state, ch.next_at) {
        (DeliveryState::Pending, Some(at)) => Some(until(at, now)),
        _ => Some(Duration::ZERO),
    }
}

async fn notify_assessors(
    reg: &Regression,
    ctx: &Context,
    st: &mut RegressionStatus,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, Failure> {
    let Some(mail) = &ctx.mail else {
        st.assessor_emails = Some(delivery::skipped(
            "email is not configured (set TOMATO_SMTP_URL and TOMATO_SMTP_FROM)",
            now,
        ));
        return Ok(Some(Duration::ZERO));
    };
    let ch = st
        .assessor_emails
        .get_or_insert_with(|| delivery::pending(now))
        .clone();
    if !delivery::is_due(&ch, now) {
        return Ok(ch.next_at.map(|t| until(t, now)));
    }
    let tms = tms(ctx)?;
    let run = st.tms.as_ref().and_then(|t| t.run_id).unwrap_or_default();
    let executions = tms.executions(run).await?;
    let people = addresses(tms, &reg.spec.assessors).await?;
    let about = About::new(reg, &ctx.public_url);
    let mut sent = Vec::new();
    let mut errors: Vec<DeliveryError> = Vec::new();
    let mut without_address = Vec::new();
    for a in st
        .assignments
        .iter()
        .filter(|a| !ch.sent_to.contains(&a.assessor))
    {
        let address = people
            .iter()
            .find(|(n, _)| *n == a.assessor)
            .and_then(|(_, e)| e.parse::<lettre::Address>().ok());
        let Some(address) = address else {
            without_address.push(a.assessor.clone());
            continue;
        };
        let cases: Vec<CaseLine> = executions
            .iter()
            .filter(|e| a.executions.contains(&e.id))
            .map(|e| CaseLine {
                summary: e.case_summary.clone(),
                url: tms.case_url(e.case_id),
                status: e.status.clone(),
            })
            .collect();
        let result = match notify::assessor_email(&about, &a.assessor, &cases, &mail.from, &address) {
            Ok(message) => mail.mailer.send(&message, std::slice::from_ref(&address)).await,
            Err(e) => Err(DeliveryError::Permanent(e)),
        };
        match result {
            Ok(()) => sent.push(a.assessor.clone()),
            Err(e) => errors.push(e),
        }
    }
    let result = match errors.as_slice() {
        [] => Ok(()),
        [.., last] if errors.iter().all(|e| matches!(e, DeliveryError::Permanent(_))) => {
            Err(DeliveryError::Permanent(last.reason().to_string()))
        }
        [.., last] => Err(DeliveryError::Transient(last.reason().to_string())),
    };
    let slot = st.assessor_emails.get_or_insert_with(|| delivery::pending(now));
    let requeue = settle_channel(
        slot,
        Delivery {
            sent_to: sent,
            result,
        },
        ctx,
        now,
    );
    if !without_address.is_empty() && slot.state == DeliveryState::Sent {
        slot.reason = Some(format!(
            "no email address in test management: {}",
            without_address.join(", ")
        ));
    }
    Ok(requeue)
}

async fn follow(
    reg: &Regression,
    ctx: &Context,
    st: &mut RegressionStatus,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, Failure> {
    let following = matches!(st.phase, RegressionPhase::InProgress | RegressionPhase::Overdue);
    let poll = chrono::Duration::from_std(ctx.poll).unwrap_or(chrono::Duration::MAX);
    let deadline = reg.spec.deadline;
    if following
        && let Some(checked) = st.progress.as_ref().and_then(|p| p.checked_at)
        && checked + poll > now
        && !(st.phase == RegressionPhase::InProgress && deadline.is_some_and(|d| d <= now))
        // A deadline moved past now (or removed) takes an Overdue regression back at once.
        && !(st.phase == RegressionPhase::Overdue && deadline.is_none_or(|d| d > now))
    {
        let next = deadline
            .filter(|d| *d > now && st.phase == RegressionPhase::InProgress)
            .map_or(checked + poll, |d| d.min(checked + poll));
        return Ok(Some(until(next, now)));
    }
    let tms = tms(ctx)?;
    let run = st.tms.as_ref().and_then(|t| t.run_id).unwrap_or_default();
    let executions = tms.executions(run).await?;
    let p = progress(&executions, &st.assignments, now);
    let phase = phase_of(&p, deadline, now);
    st.message = Some(progress_message(&p, phase));
    let overdue = phase == RegressionPhase::Overdue;
    Condition::set(
        &mut st.conditions,
        "Overdue",
        if overdue {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        if overdue { "PastDeadline" } else { "OnTime" },
        if overdue {
            super::plan::open_cases(&p)
        } else {
            String::new()
        },
        now,
    );
    st.phase = phase;
    st.progress = Some(p);
    Ok(Some(match phase {
        RegressionPhase::Reporting => Duration::ZERO,
        _ => {
            let next = now + poll;
            let next = deadline.filter(|d| *d > now).map_or(next, |d| d.min(next));
            until(next, now)
        }
    }))
}

async fn report(
    reg: &Regression,
    ctx: &Context,
    st: &mut RegressionStatus,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, Failure> {
    // The soonest a channel waiting for its retry is due again.
    let mut requeue: Option<Duration> = None;
    let mut soonest = |d: Duration| requeue = Some(requeue.map_or(d, |r| r.min(d)));
    let waits = |c: &Option<ChannelReport>| {
        c.as_ref()
            .filter(|c| c.state == DeliveryState::Pending && !delivery::is_due(c, now))
            .and_then(|c| c.next_at)
    };
    let planned_and_waiting =
        |c: &Option<ChannelReport>| c.as_ref().is_some_and(|c| !delivery::is_due(c, now));
    if planned_and_waiting(&st.summary_comment) && planned_and_waiting(&st.report_email) && !reported(st) {
        // Nothing due: no need to ask test management anything yet.
        for at in [waits(&st.summary_comment), waits(&st.report_email)]
            .into_iter()
            .flatten()
        {
            soonest(until(at, now));
        }
        return Ok(Some(requeue.unwrap_or(Duration::ZERO)));
    }
    let tms = tms(ctx)?;
    let run = st.tms.as_ref().and_then(|t| t.run_id).unwrap_or_default();
    let executions = tms.executions(run).await?;
    let progress = st.progress.clone().unwrap_or_default();
    let problems = notify::problems(&executions, |c| tms.case_url(c));
    let about = About::new(reg, &ctx.public_url);

    // The summary comment on the ticket.
    let comment_plan = match (&st.ticket, &ctx.tracker) {
        (None, _) => Err("the regression has no ticket"),
        (Some(_), None) => Err("no tracker is configured (set TOMATO_TRACKER)"),
        (Some(t), Some(tracker)) => Ok((t.key.clone(), tracker.clone())),
    };
    match comment_plan {
        Err(why) if st.summary_comment.is_none() => st.summary_comment = Some(delivery::skipped(why, now)),
        Err(_) => {}
        Ok((key, tracker)) => {
            let ch = st.summary_comment.get_or_insert_with(|| delivery::pending(now));
            if delivery::is_due(ch, now) {
                let text = notify::summary_comment(tracker.kind(), &about, &progress, &problems);
                let result = tracker.comment(&key, &text).await;
                let sent_to = if result.is_ok() { vec![key] } else { Vec::new() };
                if let Some(d) = settle_channel(ch, Delivery { sent_to, result }, ctx, now) {
                    soonest(d);
                }
            } else if let Some(at) = ch.next_at.filter(|_| ch.state == DeliveryState::Pending) {
                soonest(until(at, now));
            }
        }
    }

    // The report email: the assessors, the spec's emails, the service's report.emails.
    if st.report_email.is_none() || st.report_email.as_ref().is_some_and(|c| delivery::is_due(c, now)) {
        let people = addresses(tms, &reg.spec.assessors).await?;
        let service_emails = ctx
            .config
            .service(&reg.spec.service)
            .map(|s| s.report.emails.clone())
            .unwrap_or_default();
        let assessor_emails: Vec<String> = people
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| !e.is_empty())
            .collect();
        let (to, _) = crate::integrations::email::recipients(
            assessor_emails.iter().chain(&reg.spec.emails),
            &service_emails,
        );
        match (&ctx.mail, to.is_empty()) {
            (_, true) if st.report_email.is_none() => {
                st.report_email = Some(delivery::skipped("no recipients", now));
            }
            (None, _) if st.report_email.is_none() => {
                st.report_email = Some(delivery::skipped(
                    "email is not configured (set TOMATO_SMTP_URL and TOMATO_SMTP_FROM)",
                    now,
                ));
            }
            (Some(mail), false) => {
                let ch = st.report_email.get_or_insert_with(|| delivery::pending(now));
                let delivery = match notify::report_email(&about, &progress, &problems, &mail.from, &to) {
                    Ok(message) => {
                        crate::integrations::email::deliver(mail.mailer.as_ref(), &message, &to, &ch.sent_to)
                            .await
                    }
                    Err(e) => Delivery {
                        sent_to: Vec::new(),
                        result: Err(DeliveryError::Permanent(e)),
                    },
                };
                if let Some(d) = settle_channel(ch, delivery, ctx, now) {
                    soonest(d);
                }
            }
            _ => {}
        }
    } else if let Some(at) = st.report_email.as_ref().and_then(|c| c.next_at) {
        soonest(until(at, now));
    }

    if reported(st) {
        st.phase = RegressionPhase::Completed;
        st.completed_at = Some(now);
        let message = format!(
            "completed: {} cases, {} passed, {} failed, {} blocked",
            progress.counts.total, progress.counts.passed, progress.counts.failed, progress.counts.blocked
        );
        Condition::set(
            &mut st.conditions,
            "Completed",
            ConditionStatus::True,
            "AllVerdicts",
            message.clone(),
            now,
        );
        st.message = Some(message);
        return Ok(None);
    }
    Ok(Some(requeue.unwrap_or(Duration::ZERO)))
}

/// What cleaning up a deleted regression did.
#[derive(Clone, Debug, PartialEq)]
pub struct Cleanup {
    pub status: RegressionStatus,
    /// The object may go now.
    pub done: bool,
    /// When to try again when not done.
    pub requeue: Option<Duration>,
}

/// Before a regression goes: stops its test run in test management (retried while it is out
/// of reach, given up after the retry policy's attempts so a deletion is never stuck).
pub async fn cleanup(reg: &Regression, ctx: &Context, now: DateTime<Utc>) -> Cleanup {
    let mut st = reg.status.clone().unwrap_or_default();
    let run = st.tms.as_ref().filter(|t| !t.stopped).and_then(|t| t.run_id);
    let (Some(run), Some(tms)) = (run, ctx.tms.as_deref()) else {
        return Cleanup {
            status: st,
            done: true,
            requeue: None,
        };
    };
    if let Some(at) = st.retry.as_ref().and_then(|r| r.next_at).filter(|t| *t > now) {
        return Cleanup {
            status: st,
            done: false,
            requeue: Some(until(at, now)),
        };
    }
    match tms.stop_run(run).await {
        Ok(()) => {
            record(&mut st).stopped = true;
            st.retry = None;
            Cleanup {
                status: st,
                done: true,
                requeue: None,
            }
        }
        Err(e) => {
            let failures = st.retry.as_ref().map_or(0, |r| r.failures) + 1;
            if !e.is_transient() || failures >= ctx.retry.attempts {
                st.message = Some(format!("could not stop test run {run}: {}", e.reason()));
                return Cleanup {
                    status: st,
                    done: true,
                    requeue: None,
                };
            }
            let wait = ctx.retry.delay(failures, rand::random());
            st.retry = Some(RetryState {
                failures,
                next_at: Some(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)),
                reason: Some(e.reason().to_string()),
            });
            Cleanup {
                status: st,
                done: false,
                requeue: Some(wait),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RegressionSpec;
    use crate::integrations::settings::TrackerKind;
    use crate::integrations::tms::Outcome as Verdict;
    use crate::integrations::tms::memory::Memory;

    fn ctx(tms: &Arc<Memory>, tracker: Option<Arc<dyn IssueTracker>>) -> Context {
        let config =
            PacksConfig::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packs_config"))
                .expect("the shipped packs_config loads");
        Context {
            tms: Some(tms.clone() as Arc<dyn TestManagement>),
            tracker,
            mail: None,
            config: Arc::new(config),
            public_url: "http://tomato".into(),
            poll: Duration::from_secs(60),
            retry: RetryPolicy {
                attempts: 3,
                base: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
        }
    }

    fn regression(queue: Option<&str>) -> Regression {
        let mut r = Regression::new(
            "demo-2-0",
            RegressionSpec {
                service: "demo".into(),
                version: "2.0".into(),
                plan: None,
                stand: "localhost".into(),
                assessors: vec!["alice".into(), "bob".into()],
                deadline: None,
                queue: queue.map(str::to_string),
                issue_key: None,
                emails: vec![],
            },
        );
        r.metadata.uid = Some("u-1".into());
        r
    }

    /// Reconciles, storing each status as a driver does, until it has to wait.
    async fn settle(reg: &mut Regression, ctx: &Context, now: DateTime<Utc>) -> Option<Duration> {
        for _ in 0..20 {
            let o = reconcile(reg, ctx, now).await;
            reg.status = Some(o.status);
            if o.requeue != Some(Duration::ZERO) {
                return o.requeue;
            }
        }
        panic!("reconcile never settled: {:#?}", reg.status);
    }

    fn st(reg: &Regression) -> &RegressionStatus {
        reg.status.as_ref().unwrap()
    }

    #[tokio::test]
    async fn preparing_makes_one_run_of_the_confirmed_cases_shared_evenly_and_repeating_it_changes_nothing() {
        let tms = Arc::new(Memory::with_plan("demo regression", 6, 1, &["alice", "bob"]));
        let ctx = ctx(&tms, None);
        let now = Utc::now();
        let mut reg = regression(None);
        assert_eq!(settle(&mut reg, &ctx, now).await, Some(ctx.poll));
        assert_eq!(st(&reg).phase, RegressionPhase::InProgress);
        let shares: Vec<usize> = st(&reg).assignments.iter().map(|a| a.executions.len()).collect();
        assert_eq!(shares, vec![3, 3]);
        {
            let s = tms.state.lock().unwrap();
            assert_eq!(s.runs.len(), 1);
            assert_eq!(s.executions.len(), 6, "the draft case is not in the run");
            let alice = s
                .executions
                .iter()
                .filter(|(_, e)| e.assignee.as_deref() == Some("alice"))
                .count();
            assert_eq!(alice, 3);
        }
        let ticket = st(&reg)
            .conditions
            .iter()
            .find(|c| c.type_ == TICKET_CONDITION)
            .unwrap();
        assert_eq!(ticket.reason, "NotRequested");
        assert_eq!(
            st(&reg).assessor_emails.as_ref().unwrap().state,
            DeliveryState::Skipped
        );

        // Reconciling again before the next poll changes nothing.
        let again = reconcile(&reg, &ctx, now + chrono::Duration::seconds(5)).await;
        assert_eq!(&again.status, st(&reg));

        // A status lost in a crash: everything is found again, nothing is made twice.
        let before = st(&reg).clone();
        let mut lost = regression(None);
        settle(&mut lost, &ctx, now).await;
        assert_eq!(st(&lost).assignments, before.assignments);
        assert!(st(&lost).created.is_empty(), "{:?}", st(&lost).created);
        let s = tms.state.lock().unwrap();
        assert_eq!(
            (s.runs.len(), s.executions.len(), s.versions.len(), s.builds.len()),
            (1, 6, 2, 1)
        );
    }

    #[tokio::test]
    async fn once_every_case_has_a_verdict_the_regression_completes() {
        let tms = Arc::new(Memory::with_plan("demo regression", 4, 0, &["alice", "bob"]));
        let ctx = ctx(&tms, None);
        let now = Utc::now();
        let mut reg = regression(None);
        settle(&mut reg, &ctx, now).await;
        let ids: Vec<u64> = st(&reg)
            .assignments
            .iter()
            .flat_map(|a| a.executions.clone())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            tms.set_outcome(
                *id,
                [
                    Verdict::Passed,
                    Verdict::Failed,
                    Verdict::Blocked,
                    Verdict::Passed,
                ][i],
            );
        }
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(settle(&mut reg, &ctx, later).await, None);
        let s = st(&reg);
        assert_eq!(s.phase, RegressionPhase::Completed);
        assert_eq!(
            (
                s.progress.as_ref().unwrap().counts.passed,
                s.progress.as_ref().unwrap().counts.blocked
            ),
            (2, 1)
        );
        assert_eq!(
            s.summary_comment.as_ref().unwrap().reason.as_deref(),
            Some("the regression has no ticket")
        );
        assert_eq!(
            s.message.as_deref(),
            Some("completed: 4 cases, 2 passed, 1 failed, 1 blocked")
        );
    }

    /// A tracker whose comments fail for a while (it is down), counting the tries.
    struct DownTracker {
        comments: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl IssueTracker for DownTracker {
        fn kind(&self) -> TrackerKind {
            TrackerKind::Jira
        }
        fn issue_url(&self, key: &str) -> String {
            format!("jira:/{key}")
        }
        async fn ensure_version(&self, _: &str, name: &str) -> Result<String, DeliveryError> {
            Ok(name.into())
        }
        async fn find_issue(&self, _: &str, _: &str) -> Result<Option<String>, DeliveryError> {
            Ok(None)
        }
        async fn create_issue(&self, _: &NewIssue) -> Result<String, DeliveryError> {
            Ok("QA-1".into())
        }
        async fn comment(&self, _: &str, _: &str) -> Result<(), DeliveryError> {
            self.comments.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(DeliveryError::Transient("jira: HTTP 503".into()))
        }
        async fn ticket_state(&self, _: &str) -> Result<crate::mute::TicketState, DeliveryError> {
            Err(DeliveryError::Transient("jira: HTTP 503".into()))
        }
    }

    /// A summary comment that failed waits for its retry: reconciling before then neither
    /// comments again nor asks test management anything, and the wait is the retry's.
    #[tokio::test]
    async fn a_failed_summary_comment_waits_for_its_retry_and_nothing_is_done_before() {
        let tms = Arc::new(Memory::with_plan("demo regression", 2, 0, &["alice", "bob"]));
        let tracker = Arc::new(DownTracker {
            comments: Default::default(),
        });
        let ctx = ctx(&tms, Some(tracker.clone() as Arc<dyn IssueTracker>));
        let now = Utc::now();
        let mut reg = regression(Some("QA"));
        settle(&mut reg, &ctx, now).await;
        for a in st(&reg).assignments.clone() {
            for id in a.executions {
                tms.set_outcome(id, Verdict::Passed);
            }
        }
        let later = now + chrono::Duration::seconds(61);
        let wait = settle(&mut reg, &ctx, later).await.expect("waits for the retry");
        assert_eq!(tracker.comments.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(st(&reg).phase, RegressionPhase::Reporting);
        assert!(wait > Duration::ZERO && wait <= ctx.retry.max, "{wait:?}");

        tms.state.lock().unwrap().down = true;
        let before = reconcile(&reg, &ctx, later + chrono::Duration::milliseconds(10)).await;
        assert_eq!(
            &before.status,
            st(&reg),
            "nothing due: nothing done, test management not asked"
        );
        assert_eq!(tracker.comments.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    struct RefusingTracker;

    #[async_trait::async_trait]
    impl IssueTracker for RefusingTracker {
        fn kind(&self) -> TrackerKind {
            TrackerKind::Jira
        }
        fn issue_url(&self, key: &str) -> String {
            format!("jira:/{key}")
        }
        async fn ensure_version(&self, _: &str, name: &str) -> Result<String, DeliveryError> {
            Ok(name.into())
        }
        async fn find_issue(&self, _: &str, _: &str) -> Result<Option<String>, DeliveryError> {
            Ok(None)
        }
        async fn create_issue(&self, _: &NewIssue) -> Result<String, DeliveryError> {
            Err(DeliveryError::Permanent(
                "jira: HTTP 400: project QA does not exist".into(),
            ))
        }
        async fn comment(&self, _: &str, _: &str) -> Result<(), DeliveryError> {
            Ok(())
        }
        async fn ticket_state(&self, _: &str) -> Result<crate::mute::TicketState, DeliveryError> {
            Err(DeliveryError::Permanent("jira: HTTP 403".into()))
        }
    }

    #[tokio::test]
    async fn a_refused_ticket_fails_the_regression_listing_what_was_already_created() {
        let tms = Arc::new(Memory::with_plan("demo regression", 2, 0, &["alice", "bob"]));
        let ctx = ctx(&tms, Some(Arc::new(RefusingTracker)));
        let mut reg = regression(Some("QA"));
        assert_eq!(settle(&mut reg, &ctx, Utc::now()).await, None);
        let s = st(&reg);
        assert_eq!(s.phase, RegressionPhase::Failed);
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason, "TrackerRefused");
        let message = s.message.as_deref().unwrap();
        assert!(
            message.starts_with(
                "jira: HTTP 400: project QA does not exist (already created: version 2.0 of demo (id"
            ),
            "{message}"
        );
        assert!(message.contains("test run"), "{message}");
        assert!(
            s.tms.as_ref().unwrap().run_id.is_some(),
            "the run is still listed"
        );
    }

    #[tokio::test]
    async fn unreachable_test_management_is_retried_with_backoff_then_fails_the_regression() {
        let tms = Arc::new(Memory::with_plan("demo regression", 2, 0, &["alice", "bob"]));
        tms.state.lock().unwrap().down = true;
        let ctx = ctx(&tms, None);
        let mut reg = regression(None);
        let mut now = Utc::now();
        for attempt in 1..=2 {
            let wait = settle(&mut reg, &ctx, now).await.unwrap();
            assert!(wait > Duration::ZERO);
            assert_eq!(st(&reg).retry.as_ref().unwrap().failures, attempt);
            assert_eq!(st(&reg).phase, RegressionPhase::Preparing);
            // Not due yet: nothing is tried.
            assert_eq!(reconcile(&reg, &ctx, now).await.status, *st(&reg));
            now += chrono::Duration::seconds(30);
        }
        assert_eq!(settle(&mut reg, &ctx, now).await, None);
        let ready = st(&reg).conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.reason, "TmsUnreachable");
        assert_eq!(
            ready.message,
            "gave up after 3 attempts: memory: connection refused"
        );
    }

    #[tokio::test]
    async fn cleanup_stops_the_test_run_once() {
        let tms = Arc::new(Memory::with_plan("demo regression", 2, 0, &["alice", "bob"]));
        let ctx = ctx(&tms, None);
        let mut reg = regression(None);
        settle(&mut reg, &ctx, Utc::now()).await;
        let done = cleanup(&reg, &ctx, Utc::now()).await;
        assert!(done.done && done.status.tms.as_ref().unwrap().stopped);
        assert!(tms.state.lock().unwrap().runs[0].3);
        reg.status = Some(done.status);
        assert!(cleanup(&reg, &ctx, Utc::now()).await.done, "nothing left to stop");
    }
}
