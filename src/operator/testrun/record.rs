//! An attempt's end: the core decides ([`crate::core::decide_end`]) from the stored results,
//! the mutes in force and each attempt's log; this records the decision and announces it.

use std::collections::HashMap;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::announce_verdict;
use crate::core::{AttemptEnd, Next};
use crate::crd::{AttemptState, TestRun};
use crate::operator::context::{Context, Error, write_status};
use crate::operator::results::{self};
use crate::packs::Service;

/// The service's mutes in force at `now`, from the run's namespace.
async fn mutes_in_force(
    ctx: &Context,
    run: &TestRun,
    svc: &Service,
    now: chrono::DateTime<Utc>,
) -> Result<crate::mute::Active, Error> {
    let api: Api<crate::crd::Mute> =
        Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    // Every Mute of the namespace: one made with kubectl need not carry the service label.
    match api.list(&ListParams::default()).await {
        Ok(listed) => Ok(crate::mute::Active::of(&listed.items, &svc.name, now)),
        // The Mute CRD is not installed, or the operator may not list Mutes (an upgrade that
        // did not apply crds/ or the new RBAC): nothing is muted rather than no attempt ending.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
            warn!(
                run = run.name_any(),
                code = e.code,
                "cannot list Mutes (apply crds/ and the RBAC of this version): no failure is muted"
            );
            Ok(crate::mute::Active::none())
        }
        Err(e) => Err(e.into()),
    }
}

/// Records an attempt's end and the decision, in one status write; announces both.
pub(in crate::operator) async fn record(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    end: &AttemptEnd,
) -> Result<Action, Error> {
    let max_attempts = svc.max_attempts(&run.spec.template);
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    // The ended attempt's tests become history rows (with a results database) before the
    // status says it ended, so a reader never sees an ended attempt without them.
    let ended: Vec<_> = results
        .iter()
        .filter(|r| r.attempt == end.number)
        .cloned()
        .collect();
    ctx.results.record_attempt(run, end.number, ended).await?;
    let now = Utc::now();
    let mutes = mutes_in_force(ctx, run, svc, now).await?;
    let status = run.status.clone().unwrap_or_default();
    let logs = attempt_logs(run, ctx, &status).await?;
    let rules = crate::core::EndRules {
        max_attempts,
        mutes: &mutes,
        outage: svc.outage_policy(),
        stand: &run.spec.template.stand,
    };
    let crate::core::Decided {
        status: decided,
        next,
        by_test,
    } = crate::core::decide_end(
        &status,
        end,
        results,
        &rules,
        |_, merged| {
            crate::classify::classify(svc.classifier.as_deref(), merged, |n| {
                logs.get(&n).map(|l| std::io::Cursor::new(l.as_bytes()))
            })
        },
        now,
    );
    // The per-test categories are stored before the status that says the attempt ended: every
    // surface reads them from there (crate::classify's module comment).
    let seq = decided
        .attempts
        .iter()
        .rposition(|a| a.number == end.number)
        .map_or(decided.attempts.len(), |i| i + 1);
    match ctx.results.store_categories(run, seq, &by_test).await {
        Ok(()) => {}
        // Surfaces then read the tests `status.categories` lists (classify::recorded).
        Err(e @ results::ResultsError::TooLarge(_)) => {
            warn!(run = run.name_any(), error = %e, "the classification is not stored")
        }
        Err(e) => return Err(e.into()),
    }
    let stored = write_status(&ctx.client, run, |st| *st = decided).await?;
    info!(run = run.name_any(), attempt = end.number, state = ?end.state, next = ?next, "attempt ended");
    crate::metrics::global().attempt_ended(
        &svc.name,
        end.state,
        stored
            .status
            .as_ref()
            .and_then(|st| crate::core::attempt_took(st, end.number)),
    );
    let counts = stored
        .status
        .as_ref()
        .and_then(|s| s.attempts.iter().rev().find(|a| a.number == end.number))
        .and_then(|a| a.summary)
        .map_or_else(
            || end.message.clone().unwrap_or_else(|| "no results".into()),
            |s| {
                format!(
                    "{} passed, {} failed, {} broken, {} skipped",
                    s.passed, s.failed, s.broken, s.skipped
                )
            },
        );
    let warning = end.state != AttemptState::Finished;
    ctx.event(
        run,
        warning,
        "AttemptFinished",
        format!("attempt {}: {counts}", end.number),
    )
    .await;
    match next {
        Next::Rerun { number, tests } => {
            let note = format!(
                "{} failed test(s) will run again as attempt {number}",
                tests.len()
            );
            ctx.event(run, false, "RerunScheduled", note).await;
        }
        Next::Finish { verdict, message } => announce_verdict(run, ctx, verdict, message).await,
    }
    Ok(Action::await_change())
}

/// Each attempt's stored log by attempt number, for the classification rules that look at
/// logs (the last launch of a number wins: an interrupted launch is followed by its relaunch).
async fn attempt_logs(
    run: &TestRun,
    ctx: &Context,
    status: &crate::crd::TestRunStatus,
) -> Result<HashMap<u32, String>, Error> {
    let mut logs = HashMap::new();
    for (i, a) in status.attempts.iter().enumerate() {
        if let Some(stored) = ctx.results.load(run, i + 1).await? {
            logs.insert(a.number, stored.log()?);
        }
    }
    Ok(logs)
}
