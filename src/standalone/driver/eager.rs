//! Eager reruns (`rerun.eager`): in a sharded attempt, the failed tests of a shard that has
//! finished are rerun at once, in the slot that shard freed, while the other shards still run.
//!
//! An eager rerun is the next attempt's work done early, not an attempt of its own: it runs
//! in `attempt-<seq>/eager-<i>/` with the next attempt's number and exactly the argv that
//! attempt would give those tests, and writes the ids it was given (`tests.txt`) once it ended.
//! When the core then decides the rerun (it alone decides: an eager result is used only for
//! tests the rerun selects), [`adopt`] copies each eager report that ran every test it was
//! given into the rerun's `junit/` directory, where the rerun's report is read from, and the
//! rerun's process runs only the rest. So the verdicts are those of a rerun after the attempt;
//! an eager rerun that crashed or timed out is simply not used, and its tests rerun then.

use super::*;

/// The ids an eager rerun was given, one per line (written once it ended).
const EAGER_TESTS: &str = "tests.txt";

/// The directory of the eager rerun of shard `index` of the attempt in `dir`.
pub(super) fn eager_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("eager-{index}"))
}

/// Records that the eager rerun in `dir` ended and was given `ids`: from now on its report
/// may stand for those tests in the next attempt.
pub(super) fn finished(dir: &Path, ids: &[String]) -> std::io::Result<()> {
    std::fs::write(dir.join(EAGER_TESTS), ids.join("\n"))
}

/// The tests of rerun `number` about to start in `dir` (of `run`, selecting `selection`) that an
/// eager rerun already ran: their reports are moved in ([`adopt`]) and they are not run again.
/// Empty unless the service reruns eagerly and this is a rerun.
pub(super) async fn adopted(
    run: &TestRun,
    svc: &Service,
    number: u32,
    selection: &Selection,
    data_dir: &Path,
    dir: &Path,
) -> HashSet<String> {
    let (crate::crd::SelectionKind::Failed, Some(of), true) =
        (selection.kind, selection.of_attempt, svc.rerun.eager)
    else {
        return HashSet::new();
    };
    let name = run.metadata.name.clone().unwrap_or_default();
    let Some(prev) = run
        .status
        .as_ref()
        .and_then(|st| st.attempts.iter().rposition(|a| a.number == of))
        .map(|i| attempt_dir(data_dir, &name, i + 1))
    else {
        return HashSet::new();
    };
    let (d, tests, style) = (
        dir.to_path_buf(),
        selection.tests.clone(),
        svc.rerun.test_id.clone(),
    );
    tokio::task::spawn_blocking(move || adopt(&prev, &d, &tests, number, &style))
        .await
        .unwrap_or_default()
}

/// Moves the eager reruns made during the launch in `prev` into the rerun about to start in
/// `dir` (attempt `number`, `selected` the tests it reruns): each eager report that has a result
/// (not skipped) for every test it was given, all of them selected, is copied into `dir/junit/`.
/// Answers the tests those reports cover, which the rerun's process need not run again.
pub(super) fn adopt(
    prev: &Path,
    dir: &Path,
    selected: &[String],
    number: u32,
    style: &crate::results::TestIdStyle,
) -> HashSet<String> {
    let selected: HashSet<&str> = selected.iter().map(String::as_str).collect();
    let mut covered = HashSet::new();
    let Ok(entries) = std::fs::read_dir(prev) else {
        return covered;
    };
    let mut eager: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("eager-"))
        })
        .collect();
    eager.sort();
    for edir in eager {
        let Ok(ids) = std::fs::read_to_string(edir.join(EAGER_TESTS)) else {
            continue; // it did not end normally
        };
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        let Ok(Some(results)) = super::ended::read_junit(&edir, number, style) else {
            continue;
        };
        let ran: HashSet<&str> = results
            .iter()
            .filter(|r| r.case.status != results::CaseStatus::Skipped)
            .map(|r| r.id.as_str())
            .collect();
        if ids.is_empty() || !ids.iter().all(|id| ran.contains(id) && selected.contains(id)) {
            continue;
        }
        let name = edir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let target = dir.join("junit");
        let copied = std::fs::create_dir_all(&target).and_then(|()| {
            for (k, f) in results::junit_files(&edir.join(JUNIT_FILE)).iter().enumerate() {
                std::fs::copy(f, target.join(format!("{name}-{k}.xml")))?;
            }
            Ok(())
        });
        match copied {
            Ok(()) => covered.extend(ids.iter().map(|s| s.to_string())),
            Err(e) => warn!(dir = %edir.display(), error = %e, "cannot adopt an eager rerun"),
        }
    }
    covered
}

impl Driver {
    /// A rerun whose every test was rerun eagerly ([`super::eager`]): no process; the
    /// attempt is their adopted reports, read as any attempt's are.
    pub(super) async fn adopt_eager(
        &mut self,
        name: &str,
        number: u32,
        selection: Selection,
        dir: PathBuf,
        svc: &Service,
    ) -> Result<(), StoreError> {
        let tests = selection.tests.len();
        self.store
            .update::<TestRun, _>(name, move |r| {
                r.status.get_or_insert_default().begin_attempt(
                    number,
                    selection,
                    "eager reruns".into(),
                    Utc::now(),
                );
                Ok((true, ()))
            })
            .await?;
        info!(
            run = name,
            attempt = number,
            tests,
            "every test of the rerun ran eagerly"
        );
        self.in_flight.insert(name.to_string(), CancellationToken::new());
        let (tx, store, test_id, name, limits) = (
            self.done_tx.clone(),
            self.store.clone(),
            svc.rerun.test_id.clone(),
            name.to_string(),
            svc.attachments,
        );
        tokio::spawn(async move {
            let report = super::ended::ingest(&store, &name, number, dir, test_id, limits).await;
            let end = AttemptEnd {
                number,
                state: AttemptState::Finished,
                exit_code: None,
                report,
                message: Some("its tests were rerun eagerly, while the attempt before still ran".into()),
                runner_error: None,
            };
            let _ = tx.send(AttemptDone {
                run: name,
                end,
                cancelled: false,
            });
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNIT: &str = r#"<testsuite name="s"><testcase classname="t" name="a"/><testcase classname="t" name="b"><skipped/></testcase></testsuite>"#;

    #[test]
    fn only_an_eager_report_that_ran_every_test_it_was_given_is_adopted() {
        let prev = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |i: usize, ids: Option<&[&str]>| {
            let e = eager_dir(prev.path(), i);
            std::fs::create_dir_all(&e).unwrap();
            std::fs::write(e.join(JUNIT_FILE), JUNIT).unwrap();
            if let Some(ids) = ids {
                let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
                finished(&e, &ids).unwrap();
            }
        };
        write(0, Some(&["t::a"]));
        write(1, Some(&["t::a", "t::b"])); // t::b was skipped: not rerun
        write(2, None); // still running when the attempt ended, or killed
        let selected = vec!["t::a".to_string(), "t::b".into()];
        let style = crate::results::TestIdStyle::default();
        let covered = adopt(prev.path(), dir.path(), &selected, 2, &style);
        assert_eq!(covered, HashSet::from(["t::a".to_string()]));
        assert!(dir.path().join("junit/eager-0-0.xml").is_file());
        assert!(!dir.path().join("junit/eager-1-0.xml").exists());
        // A test the rerun does not select is never adopted.
        assert!(adopt(prev.path(), dir.path(), &["t::b".to_string()], 2, &style).is_empty());
    }
}
