//! End to end, standalone mode, one real test runner per preset (`launch.runner`): the real
//! `tomato` binary runs a small suite under `tests/runners/<runner>/` holding passing,
//! always-failing, flaky (failing while `TOMATO_ATTEMPT` is 1), skipped, setup-error,
//! class-based or nested, and parametrized tests with odd characters in their names.
//!
//! Each test checks, from the runner's OWN report files of attempts 1 and 2 (not from
//! Tomato's view), that attempt 2 ran exactly the tests attempt 1 failed; then Tomato's
//! verdicts; then that a deliberately broken selection ends as a selection failure with its
//! message. The runners are installed by `.ci/run` (pytest from PyPI, Jest and Playwright
//! Test from npm under `tests/runners/<runner>/`, gotestsum from the Go module proxy, Maven
//! Surefire and JUnit 5 from Maven Central, fetched before the tests so Maven runs offline).
//! Gradle is not tested here: no Gradle distribution can be installed on this machine
//! (it is not published to the registries it reaches); its preset's argv is unit-tested.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{REPO, Server};
use tomato::results::{CaseStatus, junit};

const RUN: Duration = Duration::from_secs(240);

/// A packs_config directory with one service `<name>` whose directory is a copy of the suite
/// `tests/runners/<suite>`: a copy, not a link, because runners write beside their sources
/// (Maven's `target/`, Playwright's `test-results/`, pytest's caches) and two tests of one
/// runner run at once — sharing them, one test read the other's half-written Surefire report.
fn config(name: &str, suite: &str, yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{name}.yaml")), yaml).unwrap();
    copy_suite(
        Path::new(&format!("{REPO}/tests/runners/{suite}")),
        &dir.path().join(name),
    );
    dir
}

/// Copies a suite's sources; its installed packages (`node_modules`) are linked, and what
/// runners wrote there earlier is left behind.
fn copy_suite(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        match name.to_str() {
            Some("target" | "test-results" | "__pycache__" | ".pytest_cache") => {}
            Some("node_modules") => std::os::unix::fs::symlink(&src, &dst).unwrap(),
            _ if entry.file_type().unwrap().is_dir() => copy_suite(&src, &dst),
            _ => {
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }
}

/// Every JUnit file the runner wrote for one launch (`junit.xml` and `junit/*.xml`).
fn report_files(server: &Server, run: &str, seq: usize) -> Vec<PathBuf> {
    let attempt = server
        .data_dir
        .join("runs")
        .join(run)
        .join(format!("attempt-{seq}"));
    tomato::results::junit_files(&attempt.join("junit.xml"))
}

/// `(classname, name, status)` of every case in the runner's own report of a launch.
fn cases(server: &Server, run: &str, seq: usize) -> Vec<(String, String, CaseStatus)> {
    let mut out = Vec::new();
    for f in report_files(server, run, seq) {
        junit::parse_file(&f, |c| out.push((c.classname, c.name, c.status))).unwrap();
    }
    out
}

/// The tests a launch really ran (passed, failed or errored), as `classname / name`.
fn ran(cases: &[(String, String, CaseStatus)]) -> BTreeSet<String> {
    cases
        .iter()
        .filter(|(_, _, s)| *s != CaseStatus::Skipped)
        .map(|(c, n, _)| format!("{c} / {n}"))
        .collect()
}

fn failed(cases: &[(String, String, CaseStatus)]) -> BTreeSet<String> {
    cases
        .iter()
        .filter(|(_, _, s)| matches!(s, CaseStatus::Failed | CaseStatus::Errored))
        .map(|(c, n, _)| format!("{c} / {n}"))
        .collect()
}

/// The verdict a test of the sample suites must get, from what its name says it does.
fn expected_verdict(id: &str) -> Option<&'static [&'static str]> {
    let id = id.to_lowercase();
    if id.contains("always") {
        Some(&["failed"])
    } else if id.contains("setup") || id.contains("never") {
        Some(&["failed", "broken"])
    } else if id.contains("skip") {
        Some(&["skipped"])
    } else if id.contains("passes") {
        Some(&["passed"])
    } else if id.contains("flaky") || id.contains("odd") {
        Some(&["flaky"])
    } else {
        None
    }
}

/// Runs the service's every pack with one rerun, and checks the rerun from the runner's own
/// reports and the verdicts from Tomato's. Returns the run's status.
async fn rerun_runs_exactly_the_failed_tests(name: &str, suite: &str, yaml: &str, min_tests: usize) -> Value {
    let cfg = config(name, suite, yaml);
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let id = server.run_now(&format!("service={name}&stand=localhost")).await;
    let st = server.wait_finished(&id, RUN).await;
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{st:#}\n{}", server.log());
    assert_eq!(attempts[1]["state"], "Finished", "{st:#}");

    let first = cases(&server, &id, 1);
    let second = cases(&server, &id, 2);
    assert!(
        first.len() >= min_tests,
        "attempt 1 ran the whole suite: {first:#?}"
    );
    let failed_first = failed(&first);
    assert!(failed_first.len() >= 5, "{failed_first:#?}");
    assert_eq!(
        ran(&second),
        failed_first,
        "attempt 2 ran exactly the tests attempt 1 failed (the runner's own reports)"
    );

    let verdicts = server.verdicts(&id).await;
    assert!(verdicts.len() >= min_tests, "{verdicts:#?}");
    let mut checked = 0;
    for (test, verdict) in &verdicts {
        if let Some(want) = expected_verdict(test) {
            assert!(
                want.contains(&verdict.as_str()),
                "{test}: {verdict}, want {want:?}"
            );
            checked += 1;
        }
    }
    assert!(checked + 2 >= verdicts.len(), "{verdicts:#?}");
    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert!(st["summary"]["flaky"].as_u64().unwrap() >= 5, "{st:#}");
    st
}

/// Runs a service whose rerun selection is broken on purpose and checks it ends as a
/// selection failure naming how many selected tests ran (`ran`).
async fn a_broken_selection_is_a_selection_failure(
    name: &str,
    suite: &str,
    yaml: &str,
    ran: usize,
    quote: Option<&str>,
) {
    let cfg = config(name, suite, yaml);
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let id = server.run_now(&format!("service={name}&stand=localhost")).await;
    let st = server.wait_finished(&id, RUN).await;
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "no rerun follows a broken selection: {st:#}");
    assert_eq!(attempts[1]["state"], "SelectionFailed", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("attempt 2 was a selection failure: {ran} of the ")),
        "{msg}"
    );
    if let Some(q) = quote {
        assert!(msg.contains(q), "the runner's error line is quoted: {msg}");
    }
    assert_eq!(st["phase"], "Failed", "{st:#}");
    let verdicts = server.verdicts(&id).await;
    assert!(
        !verdicts.values().any(|v| v == "flaky"),
        "no test counts as rerun: {verdicts:#?}"
    );
}

fn has_node_modules(suite: &str) -> bool {
    Path::new(&format!("{REPO}/tests/runners/{suite}/node_modules")).is_dir()
}

const PYTEST: &str = "
stands: {pattern: localhost}
retries: 1
launch: {runner: pytest}
packs:
  all: {tests: ['{dir}/tests']}
";

#[tokio::test]
async fn pytest_preset_reruns_exactly_the_failed_tests() {
    rerun_runs_exactly_the_failed_tests("py", "pytest", PYTEST, 15).await;
}

#[tokio::test]
async fn pytest_rerun_with_a_broken_selection_is_a_selection_failure_quoting_pytest() {
    let yaml = format!("{PYTEST}rerun: {{args: ['{{dir}}/nowhere/{{id}}']}}\n");
    a_broken_selection_is_a_selection_failure("py", "pytest", &yaml, 0, Some("exited with 4")).await;
}

const NODE: &str = "
stands: {pattern: localhost}
retries: 1
launch: {runner: node}
packs:
  all: {tests: ['{dir}/basic.test.mjs']}
";

#[tokio::test]
async fn node_preset_reruns_exactly_the_failed_tests() {
    rerun_runs_exactly_the_failed_tests("nd", "node", NODE, 10).await;
}

#[tokio::test]
async fn node_rerun_whose_name_pattern_matches_nothing_is_a_selection_failure() {
    // Node reports the tests a name pattern leaves out as skipped: none of the selection ran.
    let yaml = format!(
        "{NODE}rerun: {{args: ['--test-name-pattern=^no test has this name$'], includePackTests: true}}\n"
    );
    // Its `before` hook still runs and fails the one test of its `describe`: 1 of them "ran".
    a_broken_selection_is_a_selection_failure("nd", "node", &yaml, 1, None).await;
}

const JEST: &str = "
stands: {pattern: localhost}
retries: 1
launch: {runner: jest}
packs:
  all: {tests: ['{dir}/tests']}
";

#[tokio::test]
async fn jest_preset_reruns_exactly_the_failed_tests() {
    assert!(
        has_node_modules("jest"),
        "run .ci/run: it installs tests/runners/jest"
    );
    rerun_runs_exactly_the_failed_tests("js", "jest", JEST, 16).await;
}

#[tokio::test]
async fn jest_rerun_matching_no_test_is_a_selection_failure() {
    assert!(
        has_node_modules("jest"),
        "run .ci/run: it installs tests/runners/jest"
    );
    let yaml = format!("{JEST}rerun: {{args: ['-t', 'no test has this name']}}\n");
    a_broken_selection_is_a_selection_failure("js", "jest", &yaml, 0, None).await;
}

const PLAYWRIGHT: &str = "
stands: {pattern: localhost}
retries: 1
launch: {runner: playwright}
packs:
  all: {tests: ['tests/']}
";

#[tokio::test]
async fn playwright_preset_reruns_exactly_the_failed_tests_per_project() {
    assert!(
        has_node_modules("playwright"),
        "run .ci/run: it installs tests/runners/playwright"
    );
    rerun_runs_exactly_the_failed_tests("pw", "playwright", PLAYWRIGHT, 32).await;
}

#[tokio::test]
async fn playwright_rerun_grepping_no_test_is_a_selection_failure_quoting_playwright() {
    assert!(
        has_node_modules("playwright"),
        "run .ci/run: it installs tests/runners/playwright"
    );
    let yaml =
        format!("{PLAYWRIGHT}rerun: {{args: ['--grep=no test has this name'], includePackTests: true}}\n");
    a_broken_selection_is_a_selection_failure("pw", "playwright", &yaml, 0, Some("No tests found")).await;
}

const GO: &str = "
stands: {pattern: localhost}
retries: 1
launch: {runner: go}
packs:
  all: {tests: ['./...']}
";

#[tokio::test]
async fn go_preset_reruns_exactly_the_failed_tests_and_subtests() {
    rerun_runs_exactly_the_failed_tests("gt", "go", GO, 15).await;
}

/// Sharded, the Go preset lists the tests with `go test -list '.*' -json` and splits them test
/// by test across its packages; each shard selects its own with `-run` over their packages.
#[tokio::test]
async fn go_preset_shards_by_listed_test_across_packages() {
    let yaml = GO.replace(
        "stands: {pattern: localhost}\n",
        "stands: {pattern: localhost, concurrency: 2}\nconcurrency: 2\nshards: 2\n",
    );
    assert!(yaml.contains("shards: 2"), "{yaml}");
    let cfg = config("gs", "go", &yaml);
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let id = server.run_now("service=gs&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    let shards = st["attempts"][0]["shards"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(shards.len(), 2, "{st:#}\n{}", server.log());
    assert!(
        shards
            .iter()
            .all(|s| s["unit"] == "tests" && s["state"] == "Finished"),
        "{st:#}"
    );
    let listed: u64 = shards.iter().map(|s| s["tests"].as_u64().unwrap()).sum();
    assert_eq!(listed, 8, "every top-level test of both packages, once: {st:#}");
    // Each shard ran only its own tests (subtests come with their test).
    for (i, shard) in shards.iter().enumerate() {
        let dir = server.data_dir.join(format!("runs/{id}/attempt-1/shard-{i}"));
        let mut names = Vec::new();
        for f in tomato::results::junit_files(&dir.join("junit.xml")) {
            junit::parse_file(&f, |c| names.push((c.classname, c.name))).unwrap();
        }
        let top: std::collections::BTreeSet<(&str, &str)> = names
            .iter()
            .map(|(pkg, n)| (pkg.as_str(), n.split('/').next().unwrap()))
            .collect();
        assert_eq!(
            top.len() as u64,
            shard["tests"].as_u64().unwrap(),
            "shard {i}: {names:?}"
        );
    }
    let verdicts = server.verdicts(&id).await;
    for (test, verdict) in &verdicts {
        if let Some(want) = expected_verdict(test) {
            assert!(
                want.contains(&verdict.as_str()),
                "{test}: {verdict}, want {want:?}"
            );
        }
    }
    assert_eq!(
        verdicts["example.com/tomato/runners::TestFlaky"], "flaky",
        "{verdicts:#?}"
    );
    assert_eq!(st["phase"], "Failed", "{st:#}");
}

#[tokio::test]
async fn go_rerun_matching_no_test_is_a_selection_failure_quoting_go() {
    let yaml = format!("{GO}rerun: {{args: ['-run=^NoSuchTest$', './...']}}\n");
    a_broken_selection_is_a_selection_failure("gt", "go", &yaml, 0, Some("no tests to run")).await;
}

const MAVEN: &str = "
stands: {pattern: localhost}
retries: 1
launch:
  runner: maven
  # Offline: .ci/run fetched the plugins and JUnit before the tests.
  args: ['-o', '-q']
packs:
  all: {tests: []}
";

#[tokio::test]
async fn maven_preset_reruns_exactly_the_failed_tests_from_surefire_reports() {
    rerun_runs_exactly_the_failed_tests("mv", "maven", MAVEN, 11).await;
}

#[tokio::test]
async fn maven_rerun_matching_no_test_is_a_selection_failure_quoting_surefire() {
    let yaml = format!("{MAVEN}rerun: {{args: ['-Dtest=NoSuchTest#nothing']}}\n");
    a_broken_selection_is_a_selection_failure("mv", "maven", &yaml, 0, Some("No tests matching pattern"))
        .await;
}
