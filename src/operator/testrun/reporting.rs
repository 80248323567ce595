//! The Reporting phase: the report composed and delivered through the code both modes share
//! ([`crate::report::compose`], [`crate::report::delivery`]); each outcome recorded on the run
//! as last stored.

use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::record_finished;
use crate::crd::{DeliveryState, Phase, TestRun};
use crate::operator::context::{Context, Error, write_status};
use crate::operator::results::ResultsError;
use crate::packs::Service;
use crate::report::{compose, delivery as report_delivery};
use crate::results::MergedTest;

/// The Reporting phase: the verdict is final (`status.verdict`); the report goes out through
/// the reporting code shared with standalone mode ([`crate::report`]). Each channel's state
/// is planned in `status.report` first (`Pending`, or `Skipped` with the reason), then every
/// due channel is delivered and the outcome recorded; a transient failure is retried at the
/// time its backoff sets. The run ends in its verdict's phase once no channel is pending.
/// A delivery whose outcome could not be recorded (the leader died in between) is tried
/// again by the next leader: reports are delivered at least once, never lost; the targets a
/// channel already reached (`sentTo`) are not sent to again.
///
/// It starts from the run as stored, not as the watch cache last saw it: reporting asks to be
/// called again right after recording a delivery, and a cache that has not caught up with
/// that write would still show the channel `Pending` and deliver it twice.
pub(super) async fn report(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let api: Api<TestRun> = ctx.api(&run.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&run.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let fresh = ctx.results.hydrate(&fresh).await?;
    if fresh.status.as_ref().map(|s| s.phase) != Some(Phase::Reporting) {
        return Ok(Action::await_change());
    }
    let run = &fresh;
    let svc = ctx.config.service(&run.spec.template.service).cloned();
    // The tests are read and merged only when the targets need them or a channel is due.
    let mut tests = None;
    if compose::targets_need_tests(run, svc.as_deref()) {
        tests = Some(merged(run, ctx, svc.as_deref()).await?);
    }
    let mut history = compose::HistoryRead::default();
    let targets = compose::targets(
        &ctx.reporter,
        ctx,
        run,
        svc.as_deref(),
        tests.as_deref(),
        &mut history,
    )
    .await?;
    let now = Utc::now();
    let mut planned_status = run.status.clone().unwrap_or_default();
    let planned = report_delivery::plan_run(&mut planned_status, &targets, now);
    let run = if planned.changed() {
        // The written object leaves out rerun lists kept in the database: fill them back in
        // before the tests are merged for the report.
        let written = write_status(&ctx.client, run, |st| *st = planned_status).await?;
        ctx.results.hydrate(&written).await?
    } else {
        run.clone()
    };
    if planned.finished {
        announce_finished(&run, ctx).await;
        return Ok(Action::await_change());
    }

    let report = run
        .status
        .as_ref()
        .and_then(|s| s.report.clone())
        .unwrap_or_default();
    let report_delivery::Due {
        now: due,
        next_at: next_due,
    } = report_delivery::due(targets, &report, now, |_| false);
    if due.is_empty() {
        return Ok(match next_due {
            Some(at) => Action::requeue(
                (at - now)
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_millis(100)),
            ),
            None => Action::await_change(),
        });
    }
    let tests = match tests {
        Some(tests) => tests,
        None => merged(&run, ctx, svc.as_deref()).await?,
    };
    let content = compose::report(&ctx.reporter, ctx, &run, &tests, history).await?;
    // The latest stored object: each recorded delivery writes on top of the one before.
    let mut current = run.clone();
    for (channel, target, sent_to) in due {
        let outcome = ctx.reporter.deliver(&target, &content, &sent_to).await;
        let (stored, recorded) = record_delivery(current, ctx, channel, outcome).await?;
        current = stored;
        match recorded {
            Some(ch) if ch.state == DeliveryState::Sent => {
                info!(run = run.name_any(), channel = %channel, attempts = ch.attempts, "report delivered");
                let note = format!("{channel} report sent to {}", ch.sent_to.join(", "));
                ctx.event(&run, false, "ReportSent", note).await;
            }
            Some(ch) => {
                let reason = ch.reason.clone().unwrap_or_default();
                warn!(run = run.name_any(), channel = %channel, state = ?ch.state, reason, "report delivery failed");
                ctx.event(&run, true, "ReportFailed", format!("{channel}: {reason}"))
                    .await;
            }
            None => {}
        }
    }
    // Plan again (a retry's time, or the end of reporting) from the recorded state.
    Ok(Action::requeue(Duration::from_millis(100)))
}

/// Records one delivery attempt in `status.report.<channel>` on `run` as last stored (read
/// again if a user's change moved its resourceVersion meanwhile), and ends the run when it
/// was the last pending channel. Returns the stored run, and `None` when the channel was no
/// longer pending.
async fn record_delivery(
    run: TestRun,
    ctx: &Context,
    channel: crate::report::Channel,
    outcome: crate::integrations::delivery::Delivery,
) -> Result<(TestRun, Option<crate::crd::ChannelReport>), Error> {
    let api: Api<TestRun> = ctx.api(&run.namespace().unwrap_or_default());
    let policy = ctx.reporter.retry().clone();
    let jitter: f64 = rand::random();
    let mut last_error = None;
    // The object as last stored; read again only when a write finds it changed.
    let mut fresh = run;
    for _ in 0..5 {
        let mut st = fresh.status.clone().unwrap_or_default();
        let Some(recorded) =
            report_delivery::record_outcome(&mut st, channel, outcome.clone(), &policy, Utc::now(), jitter)
        else {
            return Ok((fresh, None));
        };
        match write_status(&ctx.client, &fresh, |s| *s = st).await {
            Ok(stored) => {
                if recorded.finished {
                    announce_finished(&stored, ctx).await;
                }
                return Ok((stored, Some(recorded.channel)));
            }
            Err(e) if e.is_conflict() => {
                last_error = Some(e);
                fresh = api.get(&fresh.name_any()).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Waiting("the delivery could not be recorded".into())))
}

/// Operator mode keeps a run's records beside it (ConfigMaps or the results database). It
/// keeps no history a report could compare with here: the runs of other namespaces are not
/// in this replica's view, so novelty is for the API and the run page.
#[async_trait::async_trait]
impl compose::RunRecords for Context {
    type Error = ResultsError;

    async fn categories(&self, run: &TestRun) -> Result<crate::classify::ByTest, ResultsError> {
        self.results.load_categories(run).await
    }

    /// A launch whose record cannot be read is left without links (the report still goes),
    /// as an attempt whose upload carried no Allure record is.
    async fn allure_extras(
        &self,
        run: &TestRun,
        seq: usize,
    ) -> Result<Option<crate::results::allure::AttemptExtras>, ResultsError> {
        let Some(svc) = self.config.service(&run.spec.template.service) else {
            return Ok(None);
        };
        let stored = match self.results.load(run, seq).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(e) => {
                warn!(run = run.name_any(), launch = seq, error = %e, "the report links no attachments of this launch");
                return Ok(None);
            }
        };
        Ok(stored.allure_extras(
            &svc.rerun.test_id,
            crate::results::upload::operator_limits(svc.attachments),
        ))
    }

    async fn novelty(
        &self,
        _: &TestRun,
        _: &[MergedTest],
    ) -> Result<Option<crate::results::Tags>, ResultsError> {
        Ok(None)
    }
}

async fn announce_finished(run: &TestRun, ctx: &Context) {
    let st = run.status.clone().unwrap_or_default();
    record_finished(run, ctx, st.phase).await;
    let s = st.summary.unwrap_or_default();
    let note = format!(
        "{}: {} passed, {} failed, {} flaky, {} broken, {} skipped",
        st.phase, s.passed, s.failed, s.flaky, s.broken, s.skipped
    );
    info!(run = run.name_any(), phase = %st.phase, "finished");
    ctx.event(run, st.phase != Phase::Succeeded, "Finished", note)
        .await;
}

/// The run's merged verdicts, failing first.
pub(super) async fn merged(
    run: &TestRun,
    ctx: &Context,
    svc: Option<&Service>,
) -> Result<Vec<MergedTest>, Error> {
    let Some(svc) = svc else {
        return Ok(Vec::new());
    };
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    let mut merged = crate::core::merge_run(run.status.as_ref().unwrap_or(&Default::default()), results);
    merged.sort_by_key(|t| t.verdict);
    Ok(merged)
}
