//! Launchers: start one attempt and later yield its exit, log and JUnit XML.
//!
//! [`plan`] turns a service's launch config and an attempt's selection into an argv and
//! environment — a pure function, shared by every launcher. The argv never passes through a
//! shell: each template renders to exactly one argument, whatever a user put in a stand name
//! or a test name. [`process`] runs the plan as a local child process (standalone mode).

pub mod aqua;
pub mod exec;
pub mod job;
pub mod listing;
pub mod process;
pub mod split;

use std::path::Path;
use std::time::Duration;

use std::collections::HashMap;

use crate::crd::{Selection, SelectionKind, TestRun};
use crate::packs::Service;
use crate::results::{Case, MergedTest};
use crate::template::Var;

/// Names, for `tomato exec` in a Job, the directory where the runner writes report files of
/// its own naming (`launch.reports`).
pub const REPORTS_ENV: &str = "TOMATO_REPORTS";

/// Names the directory where the runner may write Allure results (`{allure}`): an Allure
/// adapter configured by environment (allure-js's `ALLURE_RESULTS_DIR`) can be pointed at it.
pub const ALLURE_ENV: &str = "TOMATO_ALLURE_RESULTS";

/// A failed test to re-run: its id and the JUnit case it came from (for `{name}`, `{file}`...).
#[derive(Clone, Copy, Debug)]
pub struct RerunTest<'a> {
    pub id: &'a str,
    pub case: &'a Case,
}

/// What a launcher must start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchPlan {
    pub argv: Vec<String>,
    /// Where the runner writes report files of its own naming (`launch.reports`), if it does.
    pub reports: Option<String>,
    /// `TOMATO_*` variables and the service's `launch.env` (never secrets).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The attempt a plan is for.
#[derive(Clone, Copy, Debug)]
pub struct AttemptRef<'a> {
    pub run: &'a str,
    pub stand: &'a str,
    pub number: u32,
    pub packs: &'a [String],
    /// Empty for a full run; the failed tests for a rerun (or a shard's listed tests).
    pub reruns: &'a [RerunTest<'a>],
    /// A shard's test files, run in place of the packs' selectors (empty: the packs').
    pub files: &'a [String],
    /// Where the framework must write its JUnit XML.
    pub junit: &'a Path,
    pub timeout: Duration,
}

/// What one shard of an attempt is given, in the runner's terms: packs, files or tests.
pub struct ShardGiven<'a> {
    pub packs: Vec<String>,
    pub files: Vec<String>,
    pub reruns: Vec<RerunTest<'a>>,
}

/// What a shard whose split `unit` gave it `items` runs, for an attempt over `packs`: whole
/// packs, the packs' files in place of their selectors, or tests selected like a rerun's
/// (`case_of` gives each test's case; one without is left out). Both drivers build shards
/// with it, so a shard runs the same argv as a local process or as a Job's completion.
pub fn shard_given<'a>(
    unit: crate::shard::Unit,
    items: &'a [String],
    packs: &[String],
    case_of: impl Fn(&str) -> Option<&'a Case>,
) -> ShardGiven<'a> {
    use crate::shard::Unit;
    match unit {
        Unit::Packs => ShardGiven {
            packs: items.to_vec(),
            files: Vec::new(),
            reruns: Vec::new(),
        },
        Unit::Files => ShardGiven {
            packs: packs.to_vec(),
            files: items.to_vec(),
            reruns: Vec::new(),
        },
        Unit::Tests => ShardGiven {
            packs: packs.to_vec(),
            files: Vec::new(),
            reruns: items
                .iter()
                .filter_map(|id| {
                    Some(RerunTest {
                        id,
                        case: case_of(id)?,
                    })
                })
                .collect(),
        },
    }
}

/// The tests a selection re-runs, each with the case it failed with (none for a full run).
pub fn reruns<'a>(selection: &Selection, merged: &'a [MergedTest]) -> Vec<RerunTest<'a>> {
    if selection.kind == SelectionKind::All {
        return Vec::new();
    }
    let by_id: HashMap<&str, &MergedTest> = merged.iter().map(|t| (t.id.as_str(), t)).collect();
    selection
        .tests
        .iter()
        .filter_map(|id| {
            by_id.get(id.as_str()).map(|t| RerunTest {
                id: &t.id,
                case: &t.case,
            })
        })
        .collect()
}

/// `tomato check-config --explain SERVICE`: the exact argv (and the runner's environment) of
/// attempt 1 over every pack, and of a rerun of two sample failed tests, as [`plan`] builds
/// them, so a service file can be checked before any run.
pub fn explain(cfg: &crate::packs::PacksConfig, service: &str) -> Result<String, String> {
    use std::fmt::Write;
    let svc = cfg.service(service).ok_or_else(|| {
        let names: Vec<&str> = cfg.services().map(|s| s.name.as_str()).collect();
        format!(
            "there is no service {service:?}{}; the services are {}",
            crate::suggest::did_you_mean(service, names.iter().copied()),
            names.join(", ")
        )
    })?;
    // Packs that run in Aqua are explained as Aqua's requests; the rest as argv below.
    let aqua_explained = svc.aqua.as_ref().map(|a| aqua::explain(svc, a));
    let packs: Vec<String> = svc
        .packs
        .iter()
        .filter(|(_, p)| p.aqua.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    if packs.is_empty() {
        return Ok(aqua_explained.unwrap_or_default());
    }
    let junit = Path::new("<attempt>/junit.xml");
    let samples = sample_failures(svc);
    let ids: Vec<String> = samples.iter().map(|c| svc.rerun.test_id.id_of(c)).collect();
    let reruns: Vec<RerunTest<'_>> = ids
        .iter()
        .zip(&samples)
        .map(|(id, case)| RerunTest { id, case })
        .collect();
    let attempt = |number: u32, reruns: &[RerunTest<'_>]| {
        plan(
            svc,
            &AttemptRef {
                files: &[],
                run: "<run>",
                stand: "<stand>",
                number,
                packs: &packs,
                reruns,
                junit,
                timeout: svc.launch.timeout,
            },
        )
    };
    let mut out = String::new();
    let runner = svc
        .runner
        .map_or("none (explicit command)".to_string(), |r| r.as_str().to_string());
    let _ = writeln!(out, "\n{} (runner preset: {runner}):", svc.name);
    for (title, p) in [
        (
            if aqua_explained.is_some() {
                format!("attempt 1, the packs run locally ({})", packs.join(", "))
            } else {
                "attempt 1, every pack".to_string()
            },
            attempt(1, &[]),
        ),
        (
            format!("rerun of two failed tests ({})", ids.join(" | ")),
            attempt(2, &reruns),
        ),
    ] {
        let _ = writeln!(out, "  {title}:");
        let _ = writeln!(
            out,
            "    argv: {}",
            serde_json::to_string(&p.argv).unwrap_or_default()
        );
        for (k, v) in p.env.iter().filter(|(k, _)| !k.starts_with("TOMATO_")) {
            let _ = writeln!(out, "    env: {k}={v}");
        }
        if let Some(r) = &p.reports {
            let _ = writeln!(out, "    reports read from: {r}");
        }
    }
    if svc.shards > 1 {
        match listing::list_plan(svc, "<stand>", &packs) {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "  shards: {}, split by {} listed with: {}",
                    svc.shards,
                    l.unit.as_str(),
                    serde_json::to_string(&l.argv).unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  shards: {}, split by pack (the runner cannot list its tests; see launch.list)",
                    svc.shards
                );
            }
        }
    }
    if let Some(a) = aqua_explained {
        let _ = write!(out, "{a}");
    }
    Ok(out)
}

/// Two failed cases in the shape the service's runner reports them, for [`explain`].
fn sample_failures(svc: &Service) -> Vec<Case> {
    use crate::packs::Runner;
    let case = Case::failed;
    match svc.runner {
        Some(Runner::Pytest) | None if svc.rerun.test_id == crate::results::TestIdStyle::Pytest => vec![
            case(
                "tests.test_cart.TestCheckout",
                "test_refund[a b]",
                Some("tests/test_cart.py"),
            ),
            case("tests.test_cart", "test_total", Some("tests/test_cart.py")),
        ],
        Some(Runner::Jest) => vec![
            case("checkout", "refunds (twice)", Some("tests/cart.test.js")),
            case("", "totals", Some("tests/cart.test.js")),
        ],
        Some(Runner::Playwright) => vec![
            case("cart.spec.ts", "[chromium] checkout › refunds", None),
            case("cart.spec.ts", "[chromium] totals", None),
        ],
        Some(Runner::Maven | Runner::Gradle) => vec![
            case("com.example.CartTest", "refund()", None),
            case("com.example.CartTest$Nested", "total(int)[1]", None),
        ],
        Some(Runner::Go) => vec![
            case("example.com/shop/cart", "TestRefund/twice", None),
            case("example.com/shop/cart", "TestTotal", None),
        ],
        _ => vec![
            case("test", "refunds (twice)", None),
            case("test", "totals", None),
        ],
    }
}

/// Lines by which runners say they ran nothing of what they were given.
const RUNNER_ERRORS: &[&str] = &[
    "ERROR: not found:",                  // pytest, exit 4: a node id that matches nothing
    "ERROR: file or directory not found", // pytest, exit 4
    "no tests ran",                       // pytest, exit 5
    "ERROR: usage:",                      // pytest, exit 4
    "No tests found",                     // Jest, Playwright Test
    "No tests matching pattern",          // Maven Surefire
    "No tests were executed",             // Maven Surefire
    "No tests found for given includes",  // Gradle
    "testing: warning: no tests to run",  // go test
    "no test files",                      // go test
];

/// The runner's own complaint about what it was asked to run, from the end of an attempt's
/// log: the first line holding one of [`RUNNER_ERRORS`], trimmed (at most 300 characters).
pub fn runner_error(log_tail: &str) -> Option<String> {
    log_tail
        .lines()
        .map(str::trim)
        .find(|l| RUNNER_ERRORS.iter().any(|e| l.contains(e)))
        .map(|l| {
            let l = l.trim_matches(|c: char| c == '=' || c.is_whitespace());
            l.chars().take(300).collect()
        })
}

/// An attempt's timeout: the run's own (`spec.timeout`), else the service's.
pub fn timeout_of(run: &TestRun, svc: &Service) -> Duration {
    match run.spec.timeout.as_deref().map(crate::duration::parse) {
        Some(Ok(t)) => t,
        _ => svc.launch.timeout,
    }
}

/// Builds argv and environment for an attempt.
pub fn plan(svc: &Service, a: &AttemptRef<'_>) -> LaunchPlan {
    let dir = svc.dir.display().to_string();
    let junit = a.junit.display().to_string();
    let allure = crate::results::allure_dir(a.junit).display().to_string();
    let number = a.number.to_string();
    let pack_var = |v: Var| match v {
        Var::Dir => dir.clone(),
        Var::Stand => a.stand.to_string(),
        _ => String::new(),
    };
    let pack_selectors = || -> Vec<String> {
        a.packs
            .iter()
            .filter_map(|p| svc.packs.get(p))
            .flat_map(|p| p.tests.iter().map(|t| t.render(pack_var)))
            .collect()
    };

    // Per-test arguments come first: they are often options (`--test-name-pattern`), which
    // some runners only accept before the files.
    let full_rerun = !svc.rerun.selects();
    let mut tests: Vec<String> = Vec::new();
    if let (Some(runner), true) = (svc.rerun.select, svc.rerun.args.is_empty()) {
        let failed: Vec<(&str, &Case)> = a.reruns.iter().map(|r| (r.id, r.case)).collect();
        tests.extend(runner.select(&dir, &failed));
    } else if !full_rerun {
        for r in a.reruns {
            for t in &svc.rerun.args {
                tests.push(t.render(|v| match v {
                    Var::Id => r.id.to_string(),
                    Var::Dir => dir.clone(),
                    v => crate::results::case_var(r.case, v),
                }));
            }
        }
    }
    if !a.files.is_empty() {
        tests.extend(a.files.iter().cloned());
    } else if a.reruns.is_empty() || svc.rerun.include_pack_tests || full_rerun {
        tests.extend(pack_selectors());
    }

    let command_var = |v: Var| match v {
        Var::Stand => a.stand.to_string(),
        Var::Junit => junit.clone(),
        Var::Allure => allure.clone(),
        Var::Run => a.run.to_string(),
        Var::Attempt => number.clone(),
        Var::Dir => dir.clone(),
        _ => String::new(),
    };
    let mut argv = Vec::with_capacity(svc.launch.command.len() + tests.len());
    for t in &svc.launch.command {
        if t.is_exactly(Var::Tests) {
            argv.extend(tests.iter().cloned());
        } else {
            argv.push(t.render(command_var));
        }
    }
    let reports = svc.launch.reports.as_ref().map(|t| t.render(pack_var));

    let ids: Vec<&str> = a.reruns.iter().map(|r| r.id).collect();
    let mut env = vec![
        ("TOMATO_STAND".to_string(), a.stand.to_string()),
        ("TOMATO_RUN".to_string(), a.run.to_string()),
        ("TOMATO_ATTEMPT".to_string(), number.clone()),
        ("TOMATO_TESTS".to_string(), ids.join("\n")),
        ("TOMATO_PACKS".to_string(), a.packs.join(",")),
        ("TOMATO_JUNIT".to_string(), junit.clone()),
        (ALLURE_ENV.to_string(), allure.clone()),
    ];
    if let Some(r) = &reports {
        env.push((REPORTS_ENV.to_string(), r.clone()));
    }
    env.extend(
        svc.launch
            .runner_env
            .iter()
            .filter(|(k, _)| !svc.launch.env.contains_key(k))
            .map(|(k, t)| (k.clone(), t.render(command_var))),
    );
    env.extend(svc.launch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    LaunchPlan {
        argv,
        reports,
        env,
        timeout: a.timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::PacksConfig;

    fn config() -> PacksConfig {
        PacksConfig::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packs_config"))).unwrap()
    }

    fn failed_case(name: &str, file: Option<&str>) -> Case {
        Case::failed("tests.test_demo", name, file)
    }

    #[test]
    fn a_runners_complaint_is_found_in_its_log() {
        let log = "collected 0 items\nERROR: not found: /s/tests/t.py::nope\n(no match in any of [<Module t.py>])\n";
        assert_eq!(
            runner_error(log).as_deref(),
            Some("ERROR: not found: /s/tests/t.py::nope")
        );
        assert_eq!(
            runner_error("[ERROR] Failed to execute goal: No tests matching pattern \"X#y\" were executed!")
                .as_deref(),
            Some("[ERROR] Failed to execute goal: No tests matching pattern \"X#y\" were executed!")
        );
        assert_eq!(
            runner_error("=== no tests ran in 0.01s ===").as_deref(),
            Some("no tests ran in 0.01s")
        );
        assert_eq!(runner_error("3 passed\n"), None);
    }

    #[test]
    fn first_attempt_runs_the_packs_selectors_in_place_of_tests() {
        let cfg = config();
        let svc = cfg.service("demo").unwrap();
        let packs = vec!["basic".to_string()];
        let p = plan(
            svc,
            &AttemptRef {
                files: &[],
                run: "demo-abc",
                stand: "localhost",
                number: 1,
                packs: &packs,
                reruns: &[],
                junit: Path::new("/data/junit.xml"),
                timeout: Duration::from_secs(60),
            },
        );
        assert_eq!(p.argv[0], "node");
        assert!(
            p.argv
                .contains(&"--test-reporter-destination=/data/junit.xml".to_string()),
            "{:?}",
            p.argv
        );
        assert!(
            p.argv.iter().any(|a| a.ends_with("demo/basic.test.mjs")),
            "{:?}",
            p.argv
        );
        assert!(!p.argv.iter().any(|a| a.contains("--test-name-pattern")));
        let env: std::collections::HashMap<_, _> = p.env.into_iter().collect();
        assert_eq!(env["TOMATO_ATTEMPT"], "1");
        assert_eq!(env["TOMATO_TESTS"], "");
        assert_eq!(env["TOMATO_STAND"], "localhost");
    }

    #[test]
    fn rerun_selects_failed_tests_by_name_pattern_for_node() {
        let cfg = config();
        let svc = cfg.service("demo").unwrap();
        let packs = vec!["basic".to_string()];
        let case = failed_case("always fails (a.b)", None);
        let reruns = [RerunTest {
            id: "always fails (a.b)",
            case: &case,
        }];
        let p = plan(
            svc,
            &AttemptRef {
                files: &[],
                run: "demo-abc",
                stand: "localhost; rm -rf /",
                number: 2,
                packs: &packs,
                reruns: &reruns,
                junit: Path::new("/data/junit.xml"),
                timeout: Duration::from_secs(60),
            },
        );
        assert!(
            p.argv
                .contains(&r"--test-name-pattern=^always fails \(a\.b\)$".to_string()),
            "{:?}",
            p.argv
        );
        assert!(
            p.argv.iter().any(|a| a.ends_with("demo/basic.test.mjs")),
            "node needs its files on a rerun"
        );
        let env: std::collections::HashMap<_, _> = p.env.into_iter().collect();
        assert_eq!(env["TOMATO_TESTS"], "always fails (a.b)");
        assert_eq!(
            env["TOMATO_STAND"], "localhost; rm -rf /",
            "passed as data, never to a shell"
        );
    }

    #[test]
    fn rerun_passes_pytest_node_ids_without_the_pack_paths() {
        let cfg = config();
        let svc = cfg.service("demo-py").unwrap();
        let packs: Vec<String> = svc.packs.keys().cloned().collect();
        let case = failed_case("test_always_fails", Some("tests/test_demo.py"));
        let reruns = [RerunTest {
            id: "tests/test_demo.py::test_always_fails",
            case: &case,
        }];
        let p = plan(
            svc,
            &AttemptRef {
                files: &[],
                run: "r",
                stand: "localhost",
                number: 2,
                packs: &packs,
                reruns: &reruns,
                junit: Path::new("/j.xml"),
                timeout: Duration::from_secs(1),
            },
        );
        let dir = svc.dir.display().to_string();
        assert!(
            p.argv
                .contains(&format!("{dir}/tests/test_demo.py::test_always_fails")),
            "{:?}",
            p.argv
        );
        assert!(!p.argv.contains(&format!("{dir}/tests")), "{:?}", p.argv);
    }
}
