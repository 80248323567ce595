//! Attempts whose packs run in two places ([`crate::launch::split`]): the local packs as one
//! process, the Aqua packs as launches polled by the Aqua task, side by side under one cancel
//! token. When both are done their tests are stored together as the attempt's one set of
//! results (a store write replaces an attempt's results, so there is exactly one), and the
//! attempt ends as [`combine`] decides.
//!
//! A restart of Tomato kills the process (as for any process attempt) and marks the attempt
//! interrupted; its relaunch adopts the Aqua launches already made
//! ([`crate::crd::TestRunStatus::begin_attempt`]), so only the local part runs again.

use std::sync::Arc;

use super::aqua::Outcome;
use super::attempts::Started;
use super::ended::{after_exit, exit_state, read_local, store_results};
use super::*;

/// How the local part ended: its state, exit code and message, the runner's complaint, and
/// its results (`Ok(None)`: it wrote no report).
pub(super) struct LocalEnd {
    pub state: AttemptState,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub runner_error: Option<String>,
    pub results: Result<Option<Vec<AttemptResult>>, String>,
}

/// The attempt's end and the results to store, from both parts. An Aqua part that ended
/// without tests (could not launch, polling gave up, a report unreadable) decides the
/// attempt's state and report as it would alone, and the local results are still stored (so
/// they show); otherwise the local part's state (a timeout) and report decide, and the
/// results are both parts' together.
pub(super) fn combine(
    number: u32,
    local: LocalEnd,
    aqua: Result<Vec<AttemptResult>, AttemptEnd>,
) -> (AttemptEnd, Vec<AttemptResult>) {
    let join = crate::text::joined;
    let (mut stored, local_report) = match local.results {
        Ok(Some(r)) => (r, None),
        Ok(None) => (Vec::new(), Some(ReportRead::Missing)),
        Err(e) => (Vec::new(), Some(ReportRead::Invalid(e))),
    };
    match aqua {
        Err(aqua_end) => {
            let end = AttemptEnd {
                number,
                state: aqua_end.state,
                exit_code: local.exit_code,
                report: aqua_end.report,
                message: join(local.message, aqua_end.message),
                runner_error: local.runner_error,
            };
            (end, stored)
        }
        Ok(aqua_results) => {
            stored.extend(aqua_results);
            let report = local_report.unwrap_or(ReportRead::Found(stored.len()));
            let message = match &report {
                ReportRead::Missing => join(
                    local.message,
                    Some("the packs run locally wrote no report".into()),
                ),
                _ => local.message,
            };
            let end = AttemptEnd {
                number,
                state: local.state,
                exit_code: local.exit_code,
                report,
                message,
                runner_error: local.runner_error,
            };
            (end, stored)
        }
    }
}

impl Driver {
    /// Starts attempt `number` with its local part (`local`) as one process and its Aqua part
    /// as the Aqua task, both under one cancel token. A mixed attempt is not sharded: its
    /// local part runs whole.
    pub(super) async fn launch_mixed(
        &mut self,
        run: &TestRun,
        svc: &Arc<Service>,
        number: u32,
        selection: Selection,
        local: Selection,
        merged: &[MergedTest],
    ) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        if self.store.write_refused().is_some() {
            self.store.probe_write().await?;
        }
        let Some(mut task) = self.aqua_task(run, svc, number) else {
            let why = "packs run in Aqua but the service has no Aqua settings".to_string();
            return self.launch_failed(&name, number, selection, why).await;
        };
        let seq = run.status.as_ref().map_or(0, |s| s.attempts.len()) + 1;
        let dir = attempt_dir(&self.data_dir, &name, seq);
        let reruns = crate::launch::reruns(&local, merged);
        let token = task.token.clone();
        let what = "attempt started: local packs as a process, the rest in Aqua";
        let Some(Started {
            proc,
            reports,
            started,
        }) = self
            .start_process(
                run,
                svc,
                number,
                selection,
                &local.packs,
                &reruns,
                &dir,
                &token,
                what,
            )
            .await?
        else {
            return Ok(());
        };
        task.token = token.clone();
        self.in_flight.insert(name.clone(), token.clone());
        let (tx, store, style, limits) = (
            self.done_tx.clone(),
            self.store.clone(),
            svc.rerun.test_id.clone(),
            svc.attachments,
        );
        tokio::spawn(async move {
            let (exit, aqua) = tokio::join!(proc.wait(token), task.collect_or_cancel());
            // `None`: the Aqua part stopped (the run was cancelled, and the task recorded it).
            let aqua = match aqua {
                Ok(cases) => Some(Ok(results::assign_ids(number, cases, &style))),
                Err(Outcome::Ended(end)) => Some(Err(end)),
                Err(Outcome::Stopped) => None,
            };
            let (end, cancelled) = match aqua {
                Some(aqua) if exit != Exit::Cancelled => {
                    let (state, exit_code, message) = exit_state(exit);
                    let runner_error = {
                        let dir = dir.clone();
                        tokio::task::spawn_blocking(move || after_exit(&dir, reports.as_deref(), started))
                            .await
                            .ok()
                            .flatten()
                    };
                    let local = LocalEnd {
                        state,
                        exit_code,
                        message,
                        runner_error,
                        results: read_local(dir, number, style, limits).await,
                    };
                    let (mut end, results) = combine(number, local, aqua);
                    if !results.is_empty() || matches!(end.report, ReportRead::Found(_)) {
                        let stored = store_results(&store, &name, number, results).await;
                        if let ReportRead::Invalid(_) = stored {
                            end.report = stored;
                        }
                    }
                    (end, false)
                }
                _ => (super::aqua::stopped(number), true),
            };
            let _ = tx.send(AttemptDone {
                run: name,
                end,
                cancelled,
            });
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Case, CaseStatus};

    fn result(id: &str, status: CaseStatus) -> AttemptResult {
        let mut case = Case::failed("c", id, None);
        case.status = status;
        AttemptResult {
            attempt: 1,
            id: id.into(),
            case,
        }
    }

    fn local(results: Result<Option<Vec<AttemptResult>>, String>) -> LocalEnd {
        LocalEnd {
            state: AttemptState::Finished,
            exit_code: Some(1),
            message: None,
            runner_error: None,
            results,
        }
    }

    #[test]
    fn both_parts_results_are_one_set() {
        let (end, stored) = combine(
            1,
            local(Ok(Some(vec![result("web", CaseStatus::Failed)]))),
            Ok(vec![result("farm", CaseStatus::Passed)]),
        );
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (end.state, end.exit_code, end.report),
            (AttemptState::Finished, Some(1), ReportRead::Found(2))
        );
    }

    #[test]
    fn an_aqua_part_that_failed_decides_the_attempt_and_the_local_results_are_kept() {
        let failed = AttemptEnd {
            number: 1,
            state: AttemptState::LaunchFailed,
            exit_code: None,
            report: ReportRead::Missing,
            message: Some("pack farm: Aqua did not answer".into()),
            runner_error: None,
        };
        let (end, stored) = combine(
            1,
            local(Ok(Some(vec![result("web", CaseStatus::Passed)]))),
            Err(failed),
        );
        assert_eq!(stored.len(), 1);
        assert_eq!(end.state, AttemptState::LaunchFailed);
        assert_eq!(end.message.as_deref(), Some("pack farm: Aqua did not answer"));
    }

    #[test]
    fn a_local_part_without_a_report_is_named_and_aqua_results_are_kept() {
        let (end, stored) = combine(1, local(Ok(None)), Ok(vec![result("farm", CaseStatus::Passed)]));
        assert_eq!(stored.len(), 1);
        assert_eq!(end.report, ReportRead::Missing);
        assert!(end.message.unwrap().contains("wrote no report"));
        let (end, _) = combine(1, local(Err("junit.xml: bad".into())), Ok(vec![]));
        assert_eq!(end.report, ReportRead::Invalid("junit.xml: bad".into()));
    }
}
