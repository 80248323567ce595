//! Sharded attempts: one attempt as several local processes, each in its own directory
//! (`attempt-<seq>/shard-<i>`), their results merged into the one attempt.
//!
//! The core decides (how many shards the run gets, [`crate::shard`] splits the listed tests,
//! files or packs by recorded durations, and says which results a dead shard owes); this
//! module carries it out. The work happens in a task of its own, so listing the tests and
//! waiting for the shards never holds up the loop: the loop sees one attempt in flight, with
//! one cancel token for every shard, and one end. Each shard's progress is written to the
//! attempt's `shards` status as it ends.

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::*;
use crate::crd::{ShardState, ShardStatus};
use crate::launch::RerunTest;
use crate::launch::listing::{self, ListPlan};
use crate::results::Case;
use crate::shard::{self, DURATION_RUNS, Split, Unit};

/// Everything the task of a sharded attempt needs (owned: it outlives the loop's borrow).
struct ShardedAttempt {
    store: SqliteStore,
    svc: Service,
    run: String,
    stand: String,
    number: u32,
    selection: Selection,
    /// For a rerun: the failed tests' cases, by id (what the runner's selection is built from).
    cases: HashMap<String, Case>,
    durations: HashMap<String, Duration>,
    shards: usize,
    dir: PathBuf,
    timeout: Duration,
    extra_env: Vec<(String, crate::secrets::Secret)>,
    owner: String,
    token: CancellationToken,
    /// `rerun.eager`, when another attempt may follow: that attempt's number, which a
    /// finished shard's failed tests are rerun as at once ([`super::eager`]).
    eager_next: Option<u32>,
    /// A rerun's tests already rerun eagerly (their reports are in `dir/junit/`): not run again.
    skip: HashSet<String>,
}

impl Driver {
    /// Starts attempt `number` of `run` as up to `shards` processes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn launch_sharded(
        &mut self,
        run: &TestRun,
        svc: &Service,
        number: u32,
        selection: Selection,
        merged: &[MergedTest],
        dir: PathBuf,
        timeout: Duration,
        shards: usize,
        skip: HashSet<String>,
    ) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let extra_env = match self.secrets.env(&run.spec.template.env) {
            Ok(e) => e,
            Err(reason) => return self.launch_failed(&name, number, selection, reason).await,
        };
        let durations = self.store.test_durations(&svc.name, DURATION_RUNS).await?;
        let cases: HashMap<String, Case> = crate::launch::reruns(&selection, merged)
            .into_iter()
            .map(|r| (r.id.to_string(), r.case.clone()))
            .collect();
        let token = CancellationToken::new();
        let launch_ref = format!("{shards} shards");
        let begun = selection.clone();
        self.store
            .update::<TestRun, _>(&name, move |r| {
                r.status
                    .get_or_insert_default()
                    .begin_attempt(number, begun, launch_ref, Utc::now());
                Ok((true, ()))
            })
            .await?;
        info!(run = name, attempt = number, shards, "sharded attempt started");
        self.in_flight.insert(name.clone(), token.clone());
        let task = ShardedAttempt {
            store: self.store.clone(),
            svc: svc.clone(),
            run: name,
            stand: run.spec.template.stand.clone(),
            number,
            selection,
            cases,
            durations,
            shards,
            dir,
            timeout,
            extra_env,
            owner: self.store.instance().to_string(),
            token,
            eager_next: (svc.rerun.eager && number < svc.max_attempts(&run.spec.template))
                .then_some(number + 1),
            skip,
        };
        let tx = self.done_tx.clone();
        tokio::spawn(async move {
            let done = task.run().await;
            // The loop may be gone at shutdown; the next start recovers from the store.
            let _ = tx.send(done);
        });
        Ok(())
    }
}

impl ShardedAttempt {
    async fn run(self) -> AttemptDone {
        let split = self.split().await;
        let unit = split.unit;
        let n = split.shards.len();
        // Attempt 1's listed tests have no case yet: what the id holds is all a selection needs.
        let listed: HashMap<&str, Case> = split
            .shards
            .iter()
            .flat_map(|s| s.items.iter())
            .filter(|id| !self.cases.contains_key(id.as_str()))
            .map(|id| (id.as_str(), shard::listed_case(id)))
            .collect();
        let mut statuses = Vec::with_capacity(n);
        let mut waits = FuturesUnordered::new();
        let mut results: Vec<AttemptResult> = Vec::new();
        for (i, s) in split.shards.iter().enumerate() {
            let given = self.given(unit, &s.items, &listed);
            let sdir = self.dir.join(format!("shard-{i}"));
            let junit = sdir.join(JUNIT_FILE);
            let mut plan = plan(
                &self.svc,
                &AttemptRef {
                    run: &self.run,
                    stand: &self.stand,
                    number: self.number,
                    packs: &given.packs,
                    reruns: &given.reruns,
                    files: &given.files,
                    junit: &junit,
                    timeout: self.timeout,
                },
            );
            plan.env.push(("TOMATO_SHARD".into(), i.to_string()));
            plan.env.push(("TOMATO_SHARDS".into(), n.to_string()));
            let reports = plan.reports.clone();
            let mut status = ShardStatus {
                index: i as u32,
                state: ShardState::Running,
                tests: s.items.len() as u32,
                unit: Some(unit.as_str().to_string()),
                expected_seconds: (s.unknown < s.items.len()).then_some(s.expected.as_secs()),
                passed: 0,
                failed: 0,
                skipped: 0,
                broken: 0,
                launch: None,
                exit_code: None,
                started_at: Some(Utc::now()),
                finished_at: None,
                message: None,
            };
            let spawned = process::spawn(ProcessSpec {
                plan,
                extra_env: self.extra_env.clone(),
                dir: sdir.clone(),
                owner: self.owner.clone(),
            });
            match spawned {
                Ok(p) => {
                    status.launch = Some(format!("pid {}", p.pid));
                    let token = self.token.clone();
                    let started = std::time::SystemTime::now();
                    waits.push(async move {
                        let exit = p.wait(token).await;
                        (i, exit, sdir, reports, started)
                    });
                }
                Err(reason) => {
                    warn!(
                        run = self.run,
                        attempt = self.number,
                        shard = i,
                        reason,
                        "shard launch failed"
                    );
                    let owed = shard::unreported(
                        self.number,
                        unit,
                        &s.items,
                        &[],
                        &format!("shard {i} could not start: {reason}"),
                    );
                    shard::count(&mut status, &owed);
                    status.state = ShardState::LaunchFailed;
                    status.finished_at = Some(Utc::now());
                    status.message = Some(reason);
                    results.extend(owed);
                }
            }
            statuses.push(status);
        }
        let launch_ref = {
            let pids: Vec<&str> = statuses.iter().filter_map(|s| s.launch.as_deref()).collect();
            format!("{n} shards: {}", pids.join(", "))
        };
        let number = self.number;
        let written = statuses.clone();
        self.write_status(move |a| {
            a.launch = Some(launch_ref);
            a.shards = written;
        })
        .await;

        let mut problems: Vec<String> = statuses
            .iter()
            .filter_map(|s| {
                s.message
                    .as_ref()
                    .map(|m| format!("shard {} could not start: {m}", s.index))
            })
            .collect();
        let mut cancelled = false;
        let mut timed_out = 0;
        let mut eager = FuturesUnordered::new();
        let mut exit_code = None;
        while let Some((i, exit, sdir, reports, started)) = waits.next().await {
            let items = &split.shards[i].items;
            let (reported, unreadable) = self.read_shard(&sdir, reports, started).await;
            let why = match (exit, &unreadable) {
                (Exit::Cancelled, _) => {
                    cancelled = true;
                    continue;
                }
                (Exit::TimedOut(t), _) => {
                    timed_out += 1;
                    format!("shard {i} timed out after {}", crate::duration::human(t))
                }
                (Exit::Signal(s), _) => format!("shard {i} was killed by signal {s}"),
                (_, Some(e)) => format!("shard {i}'s report is unreadable: {e}"),
                (Exit::Code(c), None) => format!("shard {i} crashed (exit code {c})"),
            };
            if let Exit::Code(c) = exit
                && c != 0
            {
                exit_code = Some(exit_code.map_or(c, |e: i32| e.max(c)));
            }
            let owed = shard::unreported(number, unit, items, &reported, &why);
            let status = &mut statuses[i];
            shard::count(status, &reported);
            shard::count(status, &owed);
            status.finished_at = Some(Utc::now());
            status.exit_code = match exit {
                Exit::Code(c) => Some(c),
                _ => None,
            };
            status.state = match exit {
                Exit::TimedOut(_) => ShardState::TimedOut,
                _ if !owed.is_empty() || unreadable.is_some() => ShardState::Crashed,
                Exit::Signal(_) if reported.is_empty() => ShardState::Crashed,
                _ => ShardState::Finished,
            };
            if status.state != ShardState::Finished {
                let msg = if owed.is_empty() {
                    why.clone()
                } else {
                    format!("{why}; {} of its tests not reported", owed.len())
                };
                status.message = Some(msg.clone());
                problems.push(msg);
            }
            info!(
                run = self.run,
                attempt = number,
                shard = i,
                state = status.state.as_str(),
                "shard ended"
            );
            let s = status.clone();
            self.write_status(move |a| {
                if let Some(slot) = a.shards.iter_mut().find(|x| x.index == s.index) {
                    *slot = s;
                }
            })
            .await;
            // Other shards still run: this one's failures need not wait for them.
            if let Some(next) = self.eager_next
                && !waits.is_empty()
                && !self.token.is_cancelled()
            {
                let owed_tests: &[AttemptResult] = if unit == Unit::Tests { &owed } else { &[] };
                let failed: Vec<&AttemptResult> = reported
                    .iter()
                    .chain(owed_tests)
                    .filter(|r| {
                        matches!(
                            r.case.status,
                            results::CaseStatus::Failed | results::CaseStatus::Errored
                        )
                    })
                    .collect();
                if !failed.is_empty()
                    && let Some(w) = self.spawn_eager(i, next, &failed)
                {
                    eager.push(w);
                }
            }
            results.extend(reported);
            results.extend(owed);
        }
        // The attempt ends once its eager reruns have: the next attempt adopts their reports.
        while eager.next().await.is_some() {}
        // A rerun's tests rerun eagerly during the attempt before: their adopted reports.
        if !self.skip.is_empty() {
            let (dir, number, style) = (self.dir.clone(), number, self.svc.rerun.test_id.clone());
            if let Ok(Ok(Some(adopted))) =
                tokio::task::spawn_blocking(move || super::ended::read_junit(&dir, number, &style)).await
            {
                results.extend(adopted);
            }
        }
        self.join_logs(n);
        // The shards' Allure files gathered into the attempt's own directory (after every
        // read of the attempt's reports above), and its record kept from them.
        {
            let (dir, style, limits) = (
                self.dir.clone(),
                self.svc.rerun.test_id.clone(),
                self.svc.attachments,
            );
            let _ = tokio::task::spawn_blocking(move || {
                for i in 0..n {
                    super::ended::gather_allure(&dir.join(format!("shard-{i}")), &dir);
                }
                super::ended::keep_gathered_allure(&dir, &style, limits)
            })
            .await;
        }
        if cancelled || self.token.is_cancelled() {
            return AttemptDone {
                run: self.run,
                end: AttemptEnd {
                    number,
                    state: AttemptState::Cancelled,
                    exit_code: None,
                    report: ReportRead::Missing,
                    message: Some("cancelled".into()),
                    runner_error: None,
                },
                cancelled: true,
            };
        }
        let report = if results.is_empty() {
            ReportRead::Missing
        } else {
            super::ended::store_results(&self.store, &self.run, number, results).await
        };
        let state = if timed_out == n {
            AttemptState::TimedOut
        } else {
            AttemptState::Finished
        };
        AttemptDone {
            run: self.run,
            end: AttemptEnd {
                number,
                state,
                exit_code,
                report,
                message: (!problems.is_empty()).then(|| problems.join("; ")),
                runner_error: None,
            },
            cancelled: false,
        }
    }

    /// The split: attempt 1 by the listed tests or files (else by pack), a rerun by its
    /// failed tests.
    async fn split(&self) -> Split {
        if self.selection.kind == crate::crd::SelectionKind::Failed {
            let rest: Vec<String> = self
                .selection
                .tests
                .iter()
                .filter(|t| !self.skip.contains(*t))
                .cloned()
                .collect();
            return shard::split_rerun(&rest, &self.durations, self.shards);
        }
        let listed = match listing::list_plan(&self.svc, &self.stand, &self.selection.packs) {
            Some(lp) => match self.list(&lp).await {
                Ok(ids) => Some((lp.unit, ids)),
                Err(e) => {
                    warn!(
                        run = self.run,
                        error = e,
                        "cannot list the tests; splitting by pack"
                    );
                    None
                }
            },
            None => None,
        };
        let dir = self.svc.dir.display().to_string();
        shard::split_first(listed, &self.selection.packs, &self.durations, &dir, self.shards)
    }

    /// Runs the listing command (as a process of its own, in `attempt-<seq>/list`, argv only)
    /// and reads what it printed.
    async fn list(&self, lp: &ListPlan) -> Result<Vec<String>, String> {
        let dir = self.dir.join("list");
        let mut env = lp.env.clone();
        env.push(("TOMATO_STAND".into(), self.stand.clone()));
        let p = process::spawn(ProcessSpec {
            plan: crate::launch::LaunchPlan {
                argv: lp.argv.clone(),
                reports: None,
                env,
                timeout: listing::LIST_TIMEOUT.min(self.timeout),
            },
            extra_env: self.extra_env.clone(),
            dir: dir.clone(),
            owner: self.owner.clone(),
        })?;
        match p.wait(self.token.clone()).await {
            Exit::Code(0) => {}
            Exit::Code(c) => return Err(format!("the listing command exited with code {c}")),
            other => return Err(format!("the listing command did not finish: {other:?}")),
        }
        let out = tokio::fs::read_to_string(process::log_path(&dir))
            .await
            .map_err(|e| format!("cannot read the listing: {e}"))?;
        let body: String = out
            .lines()
            .filter(|l| !l.starts_with("[tomato]"))
            .map(|l| format!("{l}\n"))
            .collect();
        Ok(listing::read(lp, &body))
    }

    /// Starts the eager rerun of shard `index`'s `failed` tests as attempt `next` (see
    /// [`super::eager`]); answers the wait for it, or `None` when it could not start (the
    /// tests then rerun with the next attempt, as without `rerun.eager`).
    fn spawn_eager(
        &self,
        index: usize,
        next: u32,
        failed: &[&AttemptResult],
    ) -> Option<futures::future::BoxFuture<'static, ()>> {
        let dir = super::eager::eager_dir(&self.dir, index);
        let junit = dir.join(JUNIT_FILE);
        let reruns: Vec<RerunTest<'_>> = failed
            .iter()
            .map(|r| RerunTest {
                id: &r.id,
                case: &r.case,
            })
            .collect();
        let plan = plan(
            &self.svc,
            &AttemptRef {
                run: &self.run,
                stand: &self.stand,
                number: next,
                packs: &self.selection.packs,
                reruns: &reruns,
                files: &[],
                junit: &junit,
                timeout: self.timeout,
            },
        );
        let reports = plan.reports.clone();
        let ids: Vec<String> = failed.iter().map(|r| r.id.clone()).collect();
        let started = std::time::SystemTime::now();
        let spawned = process::spawn(ProcessSpec {
            plan,
            extra_env: self.extra_env.clone(),
            dir: dir.clone(),
            owner: self.owner.clone(),
        });
        let p = match spawned {
            Ok(p) => p,
            Err(reason) => {
                warn!(
                    run = self.run,
                    shard = index,
                    reason,
                    "eager rerun could not start"
                );
                return None;
            }
        };
        info!(
            run = self.run,
            shard = index,
            attempt = next,
            tests = ids.len(),
            pid = p.pid,
            "eager rerun started"
        );
        let (token, run) = (self.token.clone(), self.run.clone());
        Some(Box::pin(async move {
            if let Exit::Code(_) = p.wait(token).await {
                let recorded = tokio::task::spawn_blocking(move || {
                    let _ = super::ended::after_exit(&dir, reports.as_deref(), started);
                    super::eager::finished(&dir, &ids)
                })
                .await;
                if !matches!(recorded, Ok(Ok(()))) {
                    warn!(run, shard = index, "cannot record an eager rerun's end");
                }
            }
        }))
    }

    /// What a shard with `items` runs.
    fn given<'a>(
        &'a self,
        unit: Unit,
        items: &'a [String],
        listed: &'a HashMap<&str, Case>,
    ) -> crate::launch::ShardGiven<'a> {
        crate::launch::shard_given(unit, items, &self.selection.packs, |id| {
            self.cases.get(id).or_else(|| listed.get(id))
        })
    }

    /// Reads a shard's report: its results (with the ids the service's style gives them), and
    /// why the report could not be read, if so.
    async fn read_shard(
        &self,
        sdir: &Path,
        reports: Option<String>,
        started: std::time::SystemTime,
    ) -> (Vec<AttemptResult>, Option<String>) {
        let (sdir, style, number) = (sdir.to_path_buf(), self.svc.rerun.test_id.clone(), self.number);
        tokio::task::spawn_blocking(move || {
            let _ = super::ended::after_exit(&sdir, reports.as_deref(), started);
            match super::ended::read_junit(&sdir, number, &style) {
                Ok(Some(r)) => (r, None),
                Ok(None) => (Vec::new(), None),
                Err(e) => (Vec::new(), Some(e)),
            }
        })
        .await
        .unwrap_or_else(|e| (Vec::new(), Some(format!("the parser task failed: {e}"))))
    }

    /// Changes the running attempt's status (a shard's progress). A failed write is logged,
    /// not fatal: the attempt's end, written by the loop, carries every shard's final state.
    async fn write_status(&self, change: impl FnOnce(&mut crate::crd::Attempt) + Send + 'static) {
        let number = self.number;
        let res = self
            .store
            .update::<TestRun, _>(&self.run, move |r| {
                let st = r.status.get_or_insert_default();
                let changed = match st
                    .attempts
                    .last_mut()
                    .filter(|a| a.number == number && a.state == AttemptState::Running)
                {
                    Some(a) => {
                        change(a);
                        true
                    }
                    None => false,
                };
                Ok((changed, ()))
            })
            .await;
        if let Err(e) = res {
            warn!(run = self.run, error = %e, "cannot record a shard's progress");
        }
    }

    /// The attempt's log: every shard's log in turn, each under a header, so the log view and
    /// the classifier's log rules see the whole attempt.
    fn join_logs(&self, n: usize) {
        let mut joined = Vec::new();
        for i in 0..n {
            let log = process::log_path(&self.dir.join(format!("shard-{i}")));
            joined.extend_from_slice(format!("[tomato] ===== shard {i} of {n} =====\n").as_bytes());
            if let Ok(b) = std::fs::read(&log) {
                joined.extend_from_slice(&b);
            }
        }
        if let Err(e) = std::fs::write(process::log_path(&self.dir), joined) {
            warn!(run = self.run, error = %e, "cannot write the attempt's joined log");
        }
    }
}
