//! Listing a sharded attempt's tests in operator mode, so that attempt 1 is split test by test
//! (balanced by the service's recorded durations), as standalone mode splits it.
//!
//! The suite lives in its image, so only a pod of that image can list it: a listing Job
//! ([`crate::launch::job::listing_job`]: the attempt's own pod running `tomato exec --list --
//! <listing>`) prints the tests, and once it has succeeded the controller reads them from its
//! pod's log. The Job's name is the launch's (`<run>-list-<seq>`), so a controller restarted
//! mid-listing finds it again instead of listing twice; it is deleted once the attempt's own Job
//! is recorded. A listing that fails, times out ([`crate::launch::listing::LIST_TIMEOUT`]),
//! cannot start its pod or lists nothing leaves the attempt split by pack, as for a runner that
//! cannot list, and says why in a warning event.
//!
//! The decision ([`outcome`]) is pure; [`list`] carries it out.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams};
use tracing::info;

use super::context::{Context, Error, MANAGER};
use crate::crd::TestRun;
use crate::launch::job::{
    JobAttempt, JobState, LABEL_LISTING, TEST_CONTAINER, job_state, listing_job, listing_job_name,
    pod_launch_failure,
};
use crate::launch::listing::ListPlan;
use crate::packs::Service;

/// Largest log read from the listing's pod. The kubelet rotates a container's log at 10 MiB
/// by default and then serves only the newest file; [`outcome`] knows a cut listing by its
/// missing first line.
const MAX_LISTING_BYTES: i64 = 64 << 20;

/// Where the listing of an attempt's tests stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The listing Job has not ended yet (or was just created).
    Underway,
    /// The items it listed (tests or files, as the plan says), in the order printed.
    Listed(Vec<String>),
    /// Why the tests cannot be listed: the attempt is split by pack.
    Failed(String),
}

/// What the listing Job's state, its pod's launch failure (an image that cannot be pulled,
/// a container that cannot start) and its pod's log say. Pure.
pub fn outcome(
    state: &JobState,
    launch_failure: Option<String>,
    log: Option<&str>,
    plan: &ListPlan,
) -> Listing {
    if let Some(why) = launch_failure {
        return Listing::Failed(format!("its pod cannot start: {why}"));
    }
    match state {
        JobState::Active => Listing::Underway,
        JobState::Failed { reason, message, .. } => {
            let mut why = format!("the listing Job failed ({reason}: {message})");
            if let Some(end) = log.and_then(last_words) {
                why.push_str(&format!("; its log ends: {end}"));
            }
            Listing::Failed(why)
        }
        JobState::Succeeded { .. } => match log.map(whole_listing) {
            None => Listing::Failed("its pod left no log".into()),
            Some(None) => Listing::Failed(
                "its pod's log does not hold the whole listing (the kubelet keeps the newest \
                 part of a large log only)"
                    .into(),
            ),
            Some(Some(body)) => {
                let items = crate::launch::listing::read(plan, body);
                if items.is_empty() {
                    Listing::Failed(format!("the listing printed no {}", plan.unit.as_str()))
                } else {
                    Listing::Listed(items)
                }
            }
        },
    }
}

/// What `tomato exec --list` printed between its first and last lines, when the log holds both.
fn whole_listing(log: &str) -> Option<&str> {
    use crate::launch::exec::{LIST_BEGINS, LIST_ENDS};
    let start = log.find(&format!("{LIST_BEGINS}\n"))? + LIST_BEGINS.len() + 1;
    let len = log[start..].rfind(&format!("{LIST_ENDS}\n"))?;
    Some(&log[start..start + len])
}

/// The last three non-empty lines of a log, on one line, at most 300 characters.
fn last_words(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let end = lines[lines.len().saturating_sub(3)..].join(" | ");
    (!end.is_empty()).then(|| crate::text::shorten(&end, 300))
}

/// Lists the tests of `attempt` with `plan`: creates its listing Job the first time, and reads
/// what it listed once it has ended.
pub async fn list(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    attempt: JobAttempt<'_>,
    plan: &ListPlan,
) -> Result<Listing, Error> {
    let ns = run.namespace().unwrap_or_default();
    let jobs: Api<Job> = ctx.api(&ns);
    let name = listing_job_name(&run.name_any(), attempt.seq);
    let Some(job) = jobs.get_opt(&name).await? else {
        let job = listing_job(run, svc, attempt, plan, &ctx.jobs);
        jobs.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&job))
            .await?;
        info!(
            namespace = ns,
            run = run.name_any(),
            job = name,
            "listing the tests"
        );
        let note = format!(
            "listing the tests to split attempt {} by (Job {name})",
            attempt.number
        );
        ctx.event(run, false, "ListingTests", note).await;
        return Ok(Listing::Underway);
    };
    if job.labels().get(LABEL_LISTING).map(String::as_str) != Some("true") {
        return Ok(Listing::Failed(format!(
            "a Job {name} that is not a listing is in the way"
        )));
    }
    if !super::results::owned_by(&job, run.metadata.uid.as_deref()) {
        // An earlier run's of this name, not yet garbage-collected: it is not this run's listing.
        if job.metadata.deletion_timestamp.is_none() {
            jobs.delete(&name, &DeleteParams::background()).await?;
        }
        return Ok(Listing::Underway);
    }
    let state = job_state(&job);
    let pods = super::testrun::job_pods(ctx, &ns, &name).await?;
    let launch_failure = pods.iter().find_map(pod_launch_failure);
    let log = match (&state, pods.last()) {
        (JobState::Active, _) | (_, None) => None,
        (_, Some(pod)) => read_log(ctx, &ns, pod).await?,
    };
    Ok(outcome(&state, launch_failure, log.as_deref(), plan))
}

/// The listing pod's log (its test container's: what `tomato exec --list` passed through);
/// `None` when the pod or its log is gone. Any other failure is the reconcile's, retried.
async fn read_log(ctx: &Context, ns: &str, pod: &Pod) -> Result<Option<String>, Error> {
    let pods: Api<Pod> = ctx.api(ns);
    let params = LogParams {
        container: Some(TEST_CONTAINER.into()),
        limit_bytes: Some(MAX_LISTING_BYTES),
        ..Default::default()
    };
    match pods.logs(&pod.name_any(), &params).await {
        Ok(log) => Ok(Some(log)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the listing Job of `run`'s `seq`-th launch once its split is recorded (a missing
/// one is fine: the service could not list, or it is gone already).
pub async fn forget(run: &TestRun, ctx: &Context, seq: usize) -> Result<(), Error> {
    let jobs: Api<Job> = ctx.api(&run.namespace().unwrap_or_default());
    let name = listing_job_name(&run.name_any(), seq);
    super::testrun::delete_job(&jobs, &name, &DeleteParams::background()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Unit;

    fn pytest() -> ListPlan {
        ListPlan {
            argv: vec![
                "python3".into(),
                "-m".into(),
                "pytest".into(),
                "--collect-only".into(),
                "-q".into(),
            ],
            unit: Unit::Tests,
            pytest: true,
            go: false,
            env: Vec::new(),
        }
    }

    fn failed(reason: &str, message: &str) -> JobState {
        JobState::Failed {
            reason: reason.into(),
            message: message.into(),
            at: None,
        }
    }

    #[test]
    fn a_succeeded_listing_gives_the_tests_it_printed() {
        let log = "[tomato exec] the listing begins\ntests/test_a.py::test_one\ntests/test_a.py::TestK::test_two\n\n\
                   2 tests collected in 0.01s\n[tomato exec] the listing ends\n";
        assert_eq!(
            outcome(&JobState::Succeeded { at: None }, None, Some(log), &pytest()),
            Listing::Listed(vec![
                "tests/test_a.py::test_one".into(),
                "tests/test_a.py::TestK::test_two".into()
            ])
        );
    }

    #[test]
    fn a_running_listing_is_waited_for_and_its_log_not_read() {
        assert_eq!(
            outcome(&JobState::Active, None, None, &pytest()),
            Listing::Underway
        );
    }

    #[test]
    fn a_pod_that_cannot_start_fails_the_listing_at_once() {
        let got = outcome(
            &JobState::Active,
            Some("ErrImagePull: no such image".into()),
            None,
            &pytest(),
        );
        assert_eq!(
            got,
            Listing::Failed("its pod cannot start: ErrImagePull: no such image".into())
        );
    }

    #[test]
    fn a_failed_listing_says_why_with_the_end_of_its_log() {
        let log = "[tomato exec] the listing command exited with 4; its error output ends:\nERROR: file or directory not found: tests/x.py\n";
        let Listing::Failed(why) = outcome(
            &failed(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
            None,
            Some(log),
            &pytest(),
        ) else {
            panic!("not failed");
        };
        assert!(
            why.starts_with("the listing Job failed (BackoffLimitExceeded: "),
            "{why}"
        );
        assert!(
            why.ends_with(
                "exited with 4; its error output ends: | ERROR: file or directory not found: tests/x.py"
            ),
            "{why}"
        );
        let Listing::Failed(late) = outcome(
            &failed(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ),
            None,
            None,
            &pytest(),
        ) else {
            panic!("not failed");
        };
        assert_eq!(
            late,
            "the listing Job failed (DeadlineExceeded: Job was active longer than specified deadline)"
        );
    }

    #[test]
    fn a_listing_of_nothing_or_an_unreadable_log_is_split_by_pack() {
        let done = JobState::Succeeded { at: None };
        let empty =
            "[tomato exec] the listing begins\nno tests ran in 0.01s\n[tomato exec] the listing ends\n";
        assert_eq!(
            outcome(&done, None, Some(empty), &pytest()),
            Listing::Failed("the listing printed no tests".into())
        );
        assert_eq!(
            outcome(&done, None, None, &pytest()),
            Listing::Failed("its pod left no log".into())
        );
    }

    #[test]
    fn a_listing_whose_start_the_log_rotated_away_is_not_taken_for_the_whole() {
        let done = JobState::Succeeded { at: None };
        let cut = "tests/test_z.py::test_last\n[tomato exec] the listing ends\n";
        let Listing::Failed(why) = outcome(&done, None, Some(cut), &pytest()) else {
            panic!("a cut listing was taken");
        };
        assert!(why.contains("does not hold the whole listing"), "{why}");
        let unended = "[tomato exec] the listing begins\ntests/test_a.py::test_one\n";
        assert!(matches!(
            outcome(&done, None, Some(unended), &pytest()),
            Listing::Failed(_)
        ));
    }
}
