//! Aqua attempts in operator mode: no Job; the controller polls. Each reconcile of a run whose
//! attempt runs in Aqua takes the one step [`crate::launch::aqua::step`] decides from the
//! attempt's status — make a launch (or restart) and record its id, poll the launches still
//! going and record what Aqua said, or read the finished reports and store their tests in the
//! results store as a JUnit report (the format every attempt's results have there) — and
//! requeues after the poll interval. The ids live in the status, so a restarted operator or a
//! new leader polls the same launches.

use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use tracing::{info, warn};

use super::context::{Context, Error, write_status};
use crate::core::{AttemptEnd, ReportRead};
use crate::crd::{AquaLaunch, Attempt, AttemptState, TestRun};
use crate::launch::aqua::{self as aqua, Client, LaunchObject, Step};
use crate::packs::Service;
use crate::results::upload::{AttemptResults, Source};

/// Takes the next step of the running Aqua attempt `attempt` (the `seq`-th launch of the run),
/// or of its Aqua part (`part`: where its results are kept apart, [`super::mixed`]). Answers
/// when to look again (its results stored: soon; the caller reads them back as any attempt's),
/// or the end the step came to.
pub async fn observe(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
    part: Option<u32>,
) -> Result<Result<Duration, AttemptEnd>, Error> {
    let cfg = svc.aqua.as_ref().expect("called for Aqua services only");
    let client = Client::new(cfg);
    let status = run.status.clone().unwrap_or_default();
    let previous = aqua::previous_of(&status, &attempt.selection);
    let number = attempt.number;
    let end = |state, report, message: String| AttemptEnd {
        number,
        state,
        exit_code: None,
        report,
        message: Some(message),
        runner_error: None,
    };
    let selection = crate::launch::split::aqua_part(svc, &attempt.selection);
    match aqua::step(&selection, attempt, previous, cfg.error_retries) {
        Step::Fail(why) => Ok(Err(end(
            AttemptState::Finished,
            ReportRead::Invalid(why.clone()),
            why,
        ))),
        Step::Make(todo) => {
            let name = run.name_any();
            let pack = todo.pack().unwrap_or_default().to_string();
            let Some(p) = svc.packs.get(&pack).and_then(|p| p.aqua.as_ref()) else {
                let why = format!("pack {pack} has no Aqua pack id");
                return Ok(Err(end(AttemptState::LaunchFailed, ReportRead::Missing, why)));
            };
            // The intent first, written with the run's resourceVersion (a second leader's
            // write conflicts): a crash after Aqua's answer leaves it to be looked up.
            let mut current = run.clone();
            if let Some(intent) = aqua::intent(&todo, &name, number) {
                current = write_status(&ctx.client, run, |st| {
                    aqua::record(st, number, intent);
                })
                .await?;
            }
            let at = aqua::LaunchFor {
                run: &name,
                attempt: number,
                stand: &run.spec.template.stand,
            };
            let (l, adopted) = match aqua::make(&client, cfg, &todo, p, &at, &aqua::known_ids(&status)).await
            {
                Ok(made) => made,
                Err(e) => {
                    let why = format!("pack {pack}: {e}");
                    return Ok(Err(end(AttemptState::LaunchFailed, ReportRead::Missing, why)));
                }
            };
            info!(
                run = name,
                attempt = number,
                pack,
                launch = l.id,
                adopted,
                "{}",
                if adopted {
                    "found the launch made before the operator stopped in Aqua; polling it"
                } else {
                    "launched in Aqua"
                }
            );
            let note = format!(
                "attempt {number}: pack {pack} {} in Aqua as {}{}",
                if adopted { "found again" } else { "launched" },
                l.id,
                l.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default()
            );
            write_status(&ctx.client, &current, |st| {
                aqua::record(st, number, l);
            })
            .await?;
            ctx.event(run, false, "AttemptStarted", note).await;
            Ok(Ok(cfg.poll_interval))
        }
        Step::Poll(ids) => {
            let mut changed = Vec::new();
            let mut worst = 0;
            for l in attempt.aqua.iter().filter(|l| ids.contains(&l.id)) {
                let answer = client.poll(&l.id).await;
                let mut next = l.clone();
                aqua::polled(&mut next, answer.as_ref());
                if let Err(e) = &answer {
                    warn!(run = run.name_any(), launch = l.id, error = %e, "polling Aqua failed");
                }
                worst = worst.max(next.failures.unwrap_or(0));
                if next != *l {
                    changed.push(next);
                }
            }
            if !changed.is_empty() {
                write_status(&ctx.client, run, |st| {
                    for l in changed {
                        aqua::record(st, number, l);
                    }
                })
                .await?;
            }
            Ok(Ok(aqua::backoff(cfg.poll_interval, worst)))
        }
        Step::ReadReports => {
            let mut cases = Vec::new();
            let mut counted = Vec::new();
            for l in attempt.aqua.iter().filter(|l| !aqua::is_intent(l)) {
                let lo = LaunchObject {
                    id: l.id.clone(),
                    launch_url: l.url.clone(),
                    launch_status: l.status.clone(),
                    report_request_url: None,
                    total_suites: None,
                    failed_suites: None,
                    pack: None,
                };
                // The report's place is in the launch object, not the status: asked again.
                let read = async {
                    let fresh = aqua::retrying(cfg, || client.poll(&lo.id)).await?;
                    aqua::retrying(cfg, || client.read_report(&fresh, &l.pack)).await
                };
                let read = match read.await {
                    Ok(r) => r,
                    Err(e) => {
                        let why = format!("pack {}: {e}", l.pack);
                        return Ok(Err(end(
                            AttemptState::Finished,
                            ReportRead::Invalid(why.clone()),
                            why,
                        )));
                    }
                };
                let failing = read
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.status,
                            crate::results::CaseStatus::Failed | crate::results::CaseStatus::Errored
                        )
                    })
                    .count() as u32;
                counted.push(AquaLaunch {
                    failing: Some(failing),
                    ..l.clone()
                });
                cases.extend(read);
            }
            // The failing counts first: the next attempt restarts the launches that had some.
            write_status(&ctx.client, run, |st| {
                for l in counted {
                    aqua::record(st, number, l);
                }
            })
            .await?;
            let junit = crate::results::allure_report::to_junit(&cases);
            let links: Vec<String> = attempt
                .aqua
                .iter()
                .map(|l| {
                    format!(
                        "[tomato] Aqua launch {} of pack {}: {}\n",
                        l.id,
                        l.pack,
                        l.url.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            let stored = AttemptResults {
                source: Source::Upload,
                exit_code: None,
                signal: None,
                junit_gz: vec![crate::results::upload::gzip(junit.as_bytes())],
                log: links.concat().into_bytes(),
                message: None,
                owed: Vec::new(),
                allure_gz: Vec::new(),
                allure_notes: Vec::new(),
            };
            ctx.results.store_or_cut(run, seq, part, &stored).await?;
            Ok(Ok(Duration::from_millis(100)))
        }
    }
}

/// Cancel: revokes the attempt's launches still going when a revoke path is configured; the
/// answer is what the run's message says of them.
pub async fn cancel_note(svc: &Service, attempt: Option<&Attempt>) -> String {
    if svc.aqua.is_none() {
        return "cancelled".into();
    }
    let (going, revoked) = revoke_going(svc, attempt).await;
    aqua::cancel_note(&going, revoked)
}

/// Revokes the attempt's launches still going, when a revoke path is configured: answers them
/// and whether every one was revoked.
pub async fn revoke_going(svc: &Service, attempt: Option<&Attempt>) -> (Vec<AquaLaunch>, bool) {
    let Some(cfg) = svc.aqua.as_ref() else {
        return (Vec::new(), false);
    };
    let client = Client::new(cfg);
    let going: Vec<AquaLaunch> = attempt
        .map(|a| a.aqua.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|l| !aqua::is_intent(l) && aqua::progress(l.status.as_deref()) == aqua::Progress::Going)
        .collect();
    let mut revoked = !going.is_empty();
    for l in &going {
        match aqua::revoke_path(cfg, &l.id) {
            Some(path) => {
                if let Err(e) = client.revoke(&path).await {
                    warn!(launch = l.id, error = %e, "revoking the Aqua launch failed");
                    revoked = false;
                }
            }
            None => revoked = false,
        }
    }
    (going, revoked)
}

/// Ends the cancelled run's status with what became of its launches.
pub fn cancelled(st: &mut crate::crd::TestRunStatus, note: String) {
    st.cancel(Utc::now());
    st.message = Some(note.clone());
    if let Some(a) = st.attempts.last_mut() {
        a.message = Some(note);
    }
}
