//! Attempts: launching the next one a run needs (a process, or its Aqua or mixed launch);
//! its end is read and recorded in [`super::ended`].

use super::*;

/// A started attempt process ([`Driver::start_process`]): what its end is read with.
pub(super) struct Started {
    pub proc: process::RunningProcess,
    /// Where a runner that names its own report files writes them.
    pub reports: Option<String>,
    pub started: std::time::SystemTime,
}

impl Driver {
    /// Launches whatever attempt an active run without an attempt in flight needs next.
    pub(super) async fn advance(&mut self, run: &TestRun) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let Some(svc) = self.config.service(&run.spec.template.service).cloned() else {
            return self
                .conclude_error(
                    &name,
                    format!(
                        "service {:?} is no longer in packs_config",
                        run.spec.template.service
                    ),
                )
                .await;
        };
        let status = run.status.clone().unwrap_or_default();
        // An Aqua attempt running with no task (Tomato restarted): poll its launches again.
        if svc.aqua.is_some()
            && let Some(a) = status
                .running_attempt()
                .filter(|a| a.launch.as_deref() == Some(crate::launch::aqua::LAUNCH_REF))
        {
            return self.resume_aqua(run, &svc, a.number).await;
        }
        let max_attempts = svc.max_attempts(&run.spec.template);
        let merged = self.merged(&name, &status).await?;
        let packs = || {
            svc.resolve_packs(run.spec.template.category.as_deref(), &run.spec.template.packs)
                .map_err(|e| e.to_string())
        };
        let (number, selection) = match crate::core::next_step(&status, &merged, max_attempts, packs) {
            None => return Ok(()), // its waiter will report
            Some(Step::Launch { number, selection }) => (number, selection),
            Some(Step::Finish { verdict, message }) => {
                self.store
                    .update::<TestRun, _>(&name, move |r| {
                        r.status
                            .get_or_insert_default()
                            .conclude(verdict, message, Utc::now());
                        Ok((true, ()))
                    })
                    .await?;
                return Ok(());
            }
        };
        // Which packs Aqua runs and which a local process runs: one decision, shared with
        // operator mode (crate::launch::split).
        let previous = crate::launch::aqua::previous_of(&status, &selection);
        let parts = crate::launch::split::split(&svc, &selection, previous, &merged);
        match parts.local {
            None => self.launch_aqua(run, &svc, number, selection).await,
            Some(local) if parts.aqua.is_some() => {
                self.launch_mixed(run, &svc, number, selection, local, &merged)
                    .await
            }
            Some(_) => self.launch(run, &svc, number, selection, &merged).await,
        }
    }

    /// Starts attempt `number` of `run`.
    async fn launch(
        &mut self,
        run: &TestRun,
        svc: &Service,
        number: u32,
        selection: Selection,
        merged: &[MergedTest],
    ) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        // Nothing is started that could not be recorded: while the disk refuses writes, a
        // small probe write answers first (and the run waits for the next pass).
        if self.store.write_refused().is_some() {
            self.store.probe_write().await?;
        }
        let seq = run.status.as_ref().map_or(0, |s| s.attempts.len()) + 1;
        let dir = attempt_dir(&self.data_dir, &name, seq);
        let timeout = crate::launch::timeout_of(run, svc);
        // Tests rerun eagerly during the attempt this one reruns: adopted, not run again.
        let skip = super::eager::adopted(run, svc, number, &selection, &self.data_dir, &dir).await;
        if !skip.is_empty() && selection.tests.iter().all(|t| skip.contains(t)) {
            return self.adopt_eager(&name, number, selection, dir, svc).await;
        }
        let rest = Selection {
            tests: selection
                .tests
                .iter()
                .filter(|t| !skip.contains(*t))
                .cloned()
                .collect(),
            ..selection.clone()
        };
        if let Some(shards) = svc.attempt_shards(run, &rest) {
            return self
                .launch_sharded(run, svc, number, selection, merged, dir, timeout, shards, skip)
                .await;
        }
        let mut reruns = crate::launch::reruns(&selection, merged);
        reruns.retain(|r| !skip.contains(r.id));
        let token = CancellationToken::new();
        let packs = selection.packs.clone();
        let what = format!("attempt started ({} tests selected)", reruns.len());
        let Some(Started {
            proc,
            reports,
            started,
        }) = self
            .start_process(run, svc, number, selection, &packs, &reruns, &dir, &token, &what)
            .await?
        else {
            return Ok(());
        };
        self.in_flight.insert(name.clone(), token.clone());
        let waiter = super::ended::Waiter {
            run: name,
            number,
            dir,
            reports,
            started,
            test_id: svc.rerun.test_id.clone(),
            limits: svc.attachments,
        };
        tokio::spawn(waiter.wait(proc, token, self.store.clone(), self.done_tx.clone()));
        Ok(())
    }

    /// Starts the process of an attempt (`packs`, with `reruns` selected) in `dir` and records
    /// the attempt begun with its pid; both a plain and a mixed attempt start this way. `None`:
    /// the process could not start, and that launch failure is recorded. When the record
    /// fails, the process is stopped (its whole group) rather than left running untracked;
    /// the run is launched again once the store takes writes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_process(
        &mut self,
        run: &TestRun,
        svc: &Service,
        number: u32,
        selection: Selection,
        packs: &[String],
        reruns: &[crate::launch::RerunTest<'_>],
        dir: &std::path::Path,
        token: &CancellationToken,
        what: &str,
    ) -> Result<Option<Started>, StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let junit = dir.join(JUNIT_FILE);
        let plan = plan(
            svc,
            &AttemptRef {
                files: &[],
                run: &name,
                stand: &run.spec.template.stand,
                number,
                packs,
                reruns,
                junit: &junit,
                timeout: crate::launch::timeout_of(run, svc),
            },
        );
        let reports = plan.reports.clone();
        let started = std::time::SystemTime::now();
        let spawned = self.secrets.env(&run.spec.template.env).and_then(|extra_env| {
            process::spawn(ProcessSpec {
                plan,
                extra_env,
                dir: dir.to_path_buf(),
                owner: self.store.instance().to_string(),
            })
        });
        let proc = match spawned {
            Ok(p) => p,
            Err(reason) => {
                self.launch_failed(&name, number, selection, reason).await?;
                return Ok(None);
            }
        };
        info!(run = name, attempt = number, pid = proc.pid, packs = ?packs, "{what}");
        let launch_ref = format!("pid {}", proc.pid);
        let begun = self
            .store
            .update::<TestRun, _>(&name, move |r| {
                r.status
                    .get_or_insert_default()
                    .begin_attempt(number, selection, launch_ref, Utc::now());
                Ok((true, ()))
            })
            .await;
        if let Err(e) = begun {
            token.cancel();
            proc.wait(token.clone()).await;
            return Err(e);
        }
        Ok(Some(Started {
            proc,
            reports,
            started,
        }))
    }
}
