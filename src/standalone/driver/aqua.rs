//! The Aqua part of attempts (packs whose launcher is `aqua`: every pack of a service with
//! `launch.launcher: aqua`, or one that says so itself): no process; a task that launches (or
//! restarts) in Aqua, records each launch id in the attempt's status at once, polls until the
//! reports are built, and stores their tests as the attempt's results — as any attempt's JUnit
//! results are stored ([`super::mixed`] stores them with a local part's instead). Before each
//! launch its intent is recorded (pack and `tomato.launch` marker, no id yet); because the ids
//! and intents are in the status, a restart of Tomato starts the task again over the same
//! attempt ([`Driver::resume_aqua`]), which polls what was launched and looks an intent's
//! launch up in Aqua instead of launching it twice. What to do is
//! [`crate::launch::aqua::plan`]'s decision.

use std::sync::Arc;

use super::*;
use crate::crd::{AquaLaunch, AttemptState};
use crate::launch::aqua::{self as aqua, AquaError, Client, LaunchObject, Progress};
use crate::packs::aqua::AquaService;

/// What the task needs, cloned out of the driver.
pub(super) struct Task {
    store: SqliteStore,
    name: String,
    number: u32,
    stand: String,
    svc: Arc<Service>,
    cfg: Arc<AquaService>,
    client: Client,
    pub(super) token: CancellationToken,
}

/// How the task ended.
pub(super) enum Outcome {
    Ended(AttemptEnd),
    /// The run was cancelled (the task recorded it); or its attempt is no longer running.
    Stopped,
}

impl Driver {
    /// Begins attempt `number` of an Aqua service and starts its task.
    pub(super) async fn launch_aqua(
        &mut self,
        run: &TestRun,
        svc: &Arc<Service>,
        number: u32,
        selection: Selection,
    ) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        self.store
            .update::<TestRun, _>(&name, move |r| {
                r.status.get_or_insert_default().begin_attempt(
                    number,
                    selection,
                    aqua::LAUNCH_REF.into(),
                    Utc::now(),
                );
                Ok((true, ()))
            })
            .await?;
        info!(run = name, attempt = number, "Aqua attempt started");
        self.start_aqua_task(run, svc, number);
        Ok(())
    }

    /// After a restart of Tomato (or whenever an Aqua attempt runs with no task): polls its
    /// recorded launches again, and makes only those it has not made yet.
    pub(super) async fn resume_aqua(
        &mut self,
        run: &TestRun,
        svc: &Arc<Service>,
        number: u32,
    ) -> Result<(), StoreError> {
        info!(
            run = run.metadata.name.as_deref().unwrap_or_default(),
            attempt = number,
            "resuming the Aqua attempt: polling its launches again"
        );
        self.start_aqua_task(run, svc, number);
        Ok(())
    }

    fn start_aqua_task(&mut self, run: &TestRun, svc: &Arc<Service>, number: u32) {
        let Some(task) = self.aqua_task(run, svc, number) else {
            return;
        };
        let name = task.name.clone();
        self.in_flight.insert(name.clone(), task.token.clone());
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let outcome = task.run().await;
            let (end, cancelled) = match outcome {
                Outcome::Ended(end) => (end, false),
                Outcome::Stopped => (stopped(number), true),
            };
            let _ = tx.send(AttemptDone {
                run: name,
                end,
                cancelled,
            });
        });
    }

    /// The task of attempt `number`'s Aqua part, with a cancel token of its own; `None` when
    /// the service has no Aqua settings (any more).
    pub(super) fn aqua_task(&self, run: &TestRun, svc: &Arc<Service>, number: u32) -> Option<Task> {
        let cfg = svc.aqua.clone()?;
        Some(Task {
            store: self.store.clone(),
            name: run.metadata.name.clone().unwrap_or_default(),
            number,
            stand: run.spec.template.stand.clone(),
            svc: svc.clone(),
            client: Client::new(&cfg),
            cfg,
            token: CancellationToken::new(),
        })
    }
}

/// The end recorded for an attempt that was cancelled (or no longer runs).
pub(super) fn stopped(number: u32) -> AttemptEnd {
    AttemptEnd {
        number,
        state: AttemptState::Cancelled,
        exit_code: None,
        report: ReportRead::Missing,
        message: None,
        runner_error: None,
    }
}

impl Task {
    async fn run(self) -> Outcome {
        let work = self.work();
        tokio::select! {
            outcome = work => outcome,
            _ = self.token.cancelled() => self.cancelled().await,
        }
    }

    /// [`Task::collect`] until the run is cancelled (then: revoked or said to go on, as
    /// [`Task::cancelled`] records).
    pub(super) async fn collect_or_cancel(&self) -> Result<Vec<results::Case>, Outcome> {
        tokio::select! {
            cases = self.collect() => cases,
            _ = self.token.cancelled() => Err(self.cancelled().await),
        }
    }

    /// Launches what is still to launch, polls to the end, reads the reports, and stores
    /// their tests as the attempt's results.
    async fn work(&self) -> Outcome {
        let cases = match self.collect().await {
            Ok(cases) => cases,
            Err(ended) => return ended,
        };
        let results = results::assign_ids(self.number, cases, &self.svc.rerun.test_id);
        let report = super::ended::store_results(&self.store, &self.name, self.number, results).await;
        Outcome::Ended(AttemptEnd {
            number: self.number,
            state: AttemptState::Finished,
            exit_code: None,
            report,
            message: None,
            runner_error: None,
        })
    }

    /// The Aqua part of the attempt up to its tests: launches what is still to launch, polls
    /// to the end, reads the reports. `Err`: how the part ended without tests.
    pub(super) async fn collect(&self) -> Result<Vec<results::Case>, Outcome> {
        let Some((selection, attempt, previous, known)) = self.attempt().await else {
            return Err(Outcome::Stopped);
        };
        let mut launches: Vec<(AquaLaunch, Option<LaunchObject>)> = attempt
            .aqua
            .iter()
            .filter(|l| !aqua::is_intent(l))
            .cloned()
            .map(|l| (l, None))
            .collect();
        for todo in aqua::plan(&selection, &attempt, previous.as_ref()) {
            let Some(pack) = todo.pack() else { continue };
            let Some(p) = self.svc.packs.get(pack).and_then(|p| p.aqua.as_ref()) else {
                return Err(self.launch_failed(format!("pack {pack} has no Aqua pack id")));
            };
            // The intent first: a crash after Aqua's answer leaves it to be looked up.
            if let Some(intent) = aqua::intent(&todo, &self.name, self.number)
                && !self.record(intent).await
            {
                return Err(Outcome::Stopped);
            }
            let at = aqua::LaunchFor {
                run: &self.name,
                attempt: self.number,
                stand: &self.stand,
            };
            let (l, adopted) = match aqua::make(&self.client, &self.cfg, &todo, p, &at, &known).await {
                Ok(made) => made,
                Err(e) => return Err(self.launch_failed(format!("pack {pack}: {e}"))),
            };
            info!(
                run = self.name,
                attempt = self.number,
                pack,
                launch = l.id,
                adopted,
                "{}",
                if adopted {
                    "found the launch made before Tomato stopped in Aqua; polling it"
                } else {
                    "launched in Aqua"
                }
            );
            if !self.record(l.clone()).await {
                return Err(Outcome::Stopped);
            }
            launches.push((l, None));
        }
        if launches.is_empty() {
            return Err(self.error("the previous attempt left no Aqua launch to restart".into()));
        }

        // Poll every launch until each has its report (or failed), never faster than the
        // poll interval; failures in a row back off and are bounded by errorRetries.
        let mut failures = vec![0u32; launches.len()];
        loop {
            let mut wait = self.cfg.poll_interval;
            for (i, (l, done)) in launches.iter_mut().enumerate() {
                if done.is_some() {
                    continue;
                }
                let polled = self.client.poll(&l.id).await;
                // Aqua's status is recorded as seen, REPORT_FAILED included; REPORT_FAILED is
                // then polled again like a failed request (Aqua may build the report yet).
                if let Ok(lo) = &polled
                    && lo.launch_status != l.status
                {
                    l.status = lo.launch_status.clone();
                    if !self.record(l.clone()).await {
                        return Err(Outcome::Stopped);
                    }
                }
                let polled = polled.and_then(|lo| match aqua::progress(lo.launch_status.as_deref()) {
                    Progress::ReportFailed => Err(AquaError::Report {
                        launch: lo.id.clone(),
                        reason: "Aqua says REPORT_FAILED: it built no report".into(),
                    }),
                    _ => Ok(lo),
                });
                match polled {
                    Ok(lo) => {
                        failures[i] = 0;
                        if aqua::progress(lo.launch_status.as_deref()) == Progress::ReportReady {
                            *done = Some(lo);
                        }
                    }
                    Err(e) if e.transient() && failures[i] < self.cfg.error_retries => {
                        failures[i] += 1;
                        warn!(run = self.name, launch = l.id, error = %e, tries = failures[i], "polling Aqua failed; trying again");
                        wait = wait.max(aqua::backoff(self.cfg.poll_interval, failures[i]));
                    }
                    Err(e) => {
                        let tries = failures[i] + 1;
                        return Err(self.error(format!(
                            "Aqua launch {} of pack {}: {e} (after {tries} tr{})",
                            l.id,
                            l.pack,
                            if tries == 1 { "y" } else { "ies" }
                        )));
                    }
                }
            }
            if launches.iter().all(|(_, d)| d.is_some()) {
                break;
            }
            tokio::time::sleep(wait).await;
        }

        // Every report is ready: read each, retrying a report that cannot be read yet.
        let mut cases = Vec::new();
        for (l, lo) in &mut launches {
            let lo = lo
                .as_ref()
                .expect("the loop above ends when every launch is done");
            let read = aqua::retrying(&self.cfg, || self.client.read_report(lo, &l.pack)).await;
            let read = match read {
                Ok(r) => r,
                Err(e) => return Err(self.error(format!("pack {}: {e}", l.pack))),
            };
            l.failing = Some(
                read.iter()
                    .filter(|c| {
                        matches!(
                            c.status,
                            results::CaseStatus::Failed | results::CaseStatus::Errored
                        )
                    })
                    .count() as u32,
            );
            if !self.record(l.clone()).await {
                return Err(Outcome::Stopped);
            }
            cases.extend(read);
        }
        Ok(cases)
    }

    /// The running attempt, its selection, and the attempt it reruns; `None` when it is no
    /// longer running.
    #[allow(clippy::type_complexity)]
    async fn attempt(
        &self,
    ) -> Option<(
        Selection,
        crate::crd::Attempt,
        Option<crate::crd::Attempt>,
        Vec<String>,
    )> {
        let run = self
            .retry_store(|| self.store.get::<TestRun>(&self.name))
            .await??;
        let status = run.status?;
        let attempt = status
            .running_attempt()
            .filter(|a| a.number == self.number)?
            .clone();
        let previous = aqua::previous_of(&status, &attempt.selection).cloned();
        // Aqua's part only: the packs of a mixed attempt that run locally are not Aqua's.
        let selection = crate::launch::split::aqua_part(&self.svc, &attempt.selection);
        Some((selection, attempt, previous, aqua::known_ids(&status)))
    }

    /// Records a launch in the attempt; false when the attempt no longer runs.
    async fn record(&self, l: AquaLaunch) -> bool {
        let number = self.number;
        self.retry_store(|| {
            let l = l.clone();
            self.store.update::<TestRun, _>(&self.name, move |r| {
                let ok = aqua::record(r.status.get_or_insert_default(), number, l);
                Ok((ok, ok))
            })
        })
        .await
        .is_some_and(|(_, ok)| ok)
    }

    /// A store write is tried again while the store refuses writes (a full disk): the launch
    /// exists in Aqua and must not be forgotten.
    async fn retry_store<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut delay = Duration::from_millis(500);
        loop {
            match f().await {
                Ok(v) => return Some(v),
                Err(e) if e.is_unwritable() => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(WRITE_RETRY_MAX);
                }
                Err(e) => {
                    error!(run = self.name, error = %e, "cannot record an Aqua launch");
                    return None;
                }
            }
        }
    }

    fn launch_failed(&self, why: String) -> Outcome {
        warn!(
            run = self.name,
            attempt = self.number,
            reason = why,
            "Aqua launch failed"
        );
        Outcome::Ended(AttemptEnd {
            number: self.number,
            state: AttemptState::LaunchFailed,
            exit_code: None,
            report: ReportRead::Missing,
            message: Some(why),
            runner_error: None,
        })
    }

    fn error(&self, why: String) -> Outcome {
        warn!(
            run = self.name,
            attempt = self.number,
            reason = why,
            "Aqua attempt failed"
        );
        Outcome::Ended(AttemptEnd {
            number: self.number,
            state: AttemptState::Finished,
            exit_code: None,
            report: ReportRead::Invalid(why.clone()),
            message: Some(why),
            runner_error: None,
        })
    }

    /// The run was cancelled: revoke its unfinished launches when a revoke path is
    /// configured, and record the cancel with a message saying what became of them.
    async fn cancelled(&self) -> Outcome {
        // The token is also cancelled when Tomato stops: then the launches go on in Aqua and
        // the next start polls them again; only a cancelled run revokes them.
        let asked = matches!(self.store.get::<TestRun>(&self.name).await, Ok(Some(r)) if r.spec.cancel);
        if !asked {
            return Outcome::Stopped;
        }
        let launches: Vec<AquaLaunch> = self
            .attempt()
            .await
            .map(|(_, a, _, _)| a.aqua)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| !aqua::is_intent(l) && aqua::progress(l.status.as_deref()) == Progress::Going)
            .collect();
        let mut revoked = !launches.is_empty();
        for l in &launches {
            match aqua::revoke_path(&self.cfg, &l.id) {
                Some(path) => {
                    if let Err(e) = self.client.revoke(&path).await {
                        warn!(run = self.name, launch = l.id, error = %e, "revoking the Aqua launch failed");
                        revoked = false;
                    }
                }
                None => revoked = false,
            }
        }
        let note = aqua::cancel_note(&launches, revoked);
        info!(run = self.name, note, "Aqua attempt cancelled");
        let _ = self
            .store
            .update::<TestRun, _>(&self.name, move |r| {
                let st = r.status.get_or_insert_default();
                if st.phase.is_terminal() {
                    return Ok((false, ()));
                }
                st.cancel(Utc::now());
                st.message = Some(note.clone());
                if let Some(a) = st.attempts.last_mut() {
                    a.message = Some(note);
                }
                Ok((true, ()))
            })
            .await;
        Outcome::Stopped
    }
}
