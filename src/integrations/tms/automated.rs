//! Recording a finished automated run in test management (the `tms` report channel, the old
//! tool's `testpalm` link).
//!
//! For a run with a `version`: the service is a product, the version a product version with
//! a build of the same name, and the service's automated tests for that version live in a
//! plan of their own (`<service> <version> — Tomato autotests`). The run becomes a test run
//! in that plan, named after the Tomato run (`Tomato <run>: <service> on <stand>`) with a
//! link back in its notes; each test becomes an automated, confirmed case named by its test
//! id (the stable name packs_config's `rerun.testId` gives the JUnit case); and each test's
//! final verdict becomes its execution's status.
//!
//! Every step finds before it creates, and a status is only written when it differs, so a
//! delivery retried after a failure or a restart never duplicates anything.

use super::{ExecutionChange, NewCase, NewPlan, NewRun, PlanType, TestManagement, TmsError};
use crate::results::{CaseStatus, MergedTest, TestVerdict};

/// Longest summary Kiwi keeps for a case or a run.
const MAX_SUMMARY: usize = 255;

/// A finished run, as test management records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomatedRun {
    pub run: String,
    pub service: String,
    pub stand: String,
    pub version: String,
    /// The run's page in Tomato.
    pub link: String,
    pub tests: Vec<TestOutcome>,
}

/// One test's final verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    pub id: String,
    pub verdict: TestVerdict,
    /// For a flaky test: the attempt it failed on and the one it passed on.
    pub failed_on: Option<u32>,
    pub passed_on: Option<u32>,
}

impl TestOutcome {
    pub fn of(t: &MergedTest) -> TestOutcome {
        let flaky = t.verdict == TestVerdict::Flaky;
        TestOutcome {
            id: t.id.clone(),
            verdict: t.verdict,
            failed_on: flaky.then_some(t.attempt),
            passed_on: t
                .history
                .iter()
                .find(|(a, s)| flaky && *a > t.attempt && *s == CaseStatus::Passed)
                .map(|(a, _)| *a),
        }
    }
}

/// The execution status of a verdict, and the comment that explains it when the status
/// alone does not (Kiwi has no "flaky" or "skipped").
pub fn status_of(t: &TestOutcome, run: &str) -> (&'static str, Option<String>) {
    match t.verdict {
        TestVerdict::Passed => ("PASSED", None),
        TestVerdict::Flaky => (
            "PASSED",
            Some(format!(
                "Flaky in Tomato run {run}: failed on attempt {}, passed on attempt {}.",
                t.failed_on.map_or("?".to_string(), |a| a.to_string()),
                t.passed_on.map_or("?".to_string(), |a| a.to_string()),
            )),
        ),
        TestVerdict::Failed => ("FAILED", None),
        TestVerdict::Broken => (
            "ERROR",
            Some(format!("Broken in Tomato run {run}: the test could not run.")),
        ),
        TestVerdict::Skipped => ("WAIVED", Some(format!("Skipped in Tomato run {run}."))),
    }
}

/// `Tomato <run>: <service> on <stand>`: the test run's name, fixed by the run.
pub fn run_summary(run: &AutomatedRun) -> String {
    fit(&format!("Tomato {}: {} on {}", run.run, run.service, run.stand))
}

/// The plan holding a service's automated tests of one version.
pub fn plan_name(service: &str, version: &str) -> String {
    fit(&format!("{service} {version} — Tomato autotests"))
}

/// A name Kiwi can keep: at most 255 characters; a longer one is cut and ends with a hash
/// of the whole, so two long names never become one.
pub fn fit(name: &str) -> String {
    if name.chars().count() <= MAX_SUMMARY {
        return name.to_string();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let head: String = name.chars().take(MAX_SUMMARY - 19).collect();
    format!("{head}… #{hash:016x}")
}

/// What recording made: the test run's id and page, and the objects it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub run_id: u64,
    pub run_url: String,
    pub created: Vec<String>,
}

/// Records `run` in test management (see the module doc). Safe to call again after any failure.
pub async fn record(tms: &dyn TestManagement, run: &AutomatedRun) -> Result<Recorded, TmsError> {
    let mut created = Vec::new();
    let mut note = |what: String, made: bool| {
        if made {
            created.push(what);
        }
    };
    let product = tms.ensure_product(&run.service).await?;
    note(
        format!("product {} (id {})", run.service, product.id),
        product.created,
    );
    let version = tms.ensure_version(product.id, &run.version).await?;
    note(
        format!("version {} (id {})", run.version, version.id),
        version.created,
    );
    let build = tms.ensure_build(version.id, &run.version).await?;
    note(format!("build {} (id {})", run.version, build.id), build.created);
    let plan_name = plan_name(&run.service, &run.version);
    let plan = tms
        .ensure_plan(&NewPlan {
            name: plan_name.clone(),
            product_id: product.id,
            version_id: version.id,
            plan_type: PlanType::Named("Function".into()),
            parent: None,
            text: format!(
                "Automated tests of {} {}, recorded by Tomato.",
                run.service, run.version
            ),
        })
        .await?;
    note(format!("plan {plan_name} (id {})", plan.id), plan.created);
    let test_run = tms
        .ensure_run(&NewRun {
            summary: run_summary(run),
            plan_id: plan.id,
            build_id: build.id,
            notes: format!("Tomato run {}: {}", run.run, run.link),
        })
        .await?;
    note(format!("test run {}", test_run.id), test_run.created);

    let mut cases = Vec::with_capacity(run.tests.len());
    for t in &run.tests {
        let case = tms
            .ensure_case(&NewCase {
                summary: fit(&t.id),
                product_id: product.id,
                plan_id: plan.id,
                text: format!("Automated test of {}: {}", run.service, t.id),
            })
            .await?;
        cases.push((case.id, t));
    }
    let ids: Vec<u64> = cases.iter().map(|(id, _)| *id).collect();
    let executions = tms.add_cases(test_run.id, &ids).await?;
    for (case, t) in &cases {
        let (status, comment) = status_of(t, &run.run);
        for e in executions.iter().filter(|e| e.case_id == *case) {
            if !e.status.eq_ignore_ascii_case(status) {
                tms.update_execution(
                    e.id,
                    &ExecutionChange {
                        status: Some(status.to_string()),
                        assignee: None,
                    },
                )
                .await?;
            }
            if let Some(text) = &comment {
                tms.comment_once(e.id, text).await?;
            }
        }
    }
    Ok(Recorded {
        run_id: test_run.id,
        run_url: tms.run_url(test_run.id),
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(verdict: TestVerdict) -> TestOutcome {
        TestOutcome {
            id: "cart > applies the discount".into(),
            verdict,
            failed_on: Some(1),
            passed_on: Some(2),
        }
    }

    #[test]
    fn a_flaky_test_is_recorded_passed_with_a_comment_naming_the_failed_attempt() {
        let (status, comment) = status_of(&outcome(TestVerdict::Flaky), "demo-x1");
        assert_eq!(status, "PASSED");
        assert_eq!(
            comment.as_deref(),
            Some("Flaky in Tomato run demo-x1: failed on attempt 1, passed on attempt 2.")
        );
    }

    #[test]
    fn each_verdict_has_a_status() {
        let statuses: Vec<&str> = [
            TestVerdict::Passed,
            TestVerdict::Failed,
            TestVerdict::Broken,
            TestVerdict::Skipped,
        ]
        .into_iter()
        .map(|v| status_of(&outcome(v), "r").0)
        .collect();
        assert_eq!(statuses, ["PASSED", "FAILED", "ERROR", "WAIVED"]);
        assert_eq!(status_of(&outcome(TestVerdict::Passed), "r").1, None);
    }

    #[test]
    fn long_names_are_cut_to_kiwis_limit_and_stay_distinct() {
        let a = "x".repeat(300);
        let b = format!("{}y", "x".repeat(299));
        assert_eq!(fit(&a).chars().count(), 255);
        assert_ne!(fit(&a), fit(&b));
        assert_eq!(fit(&a), fit(&a), "stable");
        assert_eq!(fit("short"), "short");
    }
}
