//! Launchers: start one attempt and later yield its exit, log and JUnit XML.
//!
//! [`plan`] turns a service's launch config and an attempt's selection into an argv and
//! environment — a pure function, shared by every launcher. The argv never passes through a
//! shell: each template renders to exactly one argument, whatever a user put in a stand name
//! or a test name. [`process`] runs the plan as a local child process (standalone mode).

pub mod exec;
pub mod job;
pub mod process;

use std::path::Path;
use std::time::Duration;

use std::collections::HashMap;

use crate::crd::{Selection, SelectionKind, TestRun};
use crate::packs::{Service, Var};
use crate::results::{Case, MergedTest};

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
    /// Empty for a full run; the failed tests for a rerun.
    pub reruns: &'a [RerunTest<'a>],
    /// Where the framework must write its JUnit XML.
    pub junit: &'a Path,
    pub timeout: Duration,
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
    let full_rerun = svc.rerun.args.is_empty();
    let mut tests: Vec<String> = Vec::new();
    if !full_rerun {
        for r in a.reruns {
            for t in &svc.rerun.args {
                tests.push(t.render(|v| match v {
                    Var::Id => r.id.to_string(),
                    Var::Dir => dir.clone(),
                    v => crate::packs::case_var(r.case, v),
                }));
            }
        }
    }
    if a.reruns.is_empty() || svc.rerun.include_pack_tests || full_rerun {
        tests.extend(pack_selectors());
    }

    let mut argv = Vec::with_capacity(svc.launch.command.len() + tests.len());
    for t in &svc.launch.command {
        if t.is_exactly(Var::Tests) {
            argv.extend(tests.iter().cloned());
        } else {
            argv.push(t.render(|v| match v {
                Var::Stand => a.stand.to_string(),
                Var::Junit => junit.clone(),
                Var::Run => a.run.to_string(),
                Var::Attempt => number.clone(),
                Var::Dir => dir.clone(),
                _ => String::new(),
            }));
        }
    }

    let ids: Vec<&str> = a.reruns.iter().map(|r| r.id).collect();
    let mut env = vec![
        ("TOMATO_STAND".to_string(), a.stand.to_string()),
        ("TOMATO_RUN".to_string(), a.run.to_string()),
        ("TOMATO_ATTEMPT".to_string(), number),
        ("TOMATO_TESTS".to_string(), ids.join("\n")),
        ("TOMATO_PACKS".to_string(), a.packs.join(",")),
        ("TOMATO_JUNIT".to_string(), junit),
    ];
    env.extend(svc.launch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    LaunchPlan {
        argv,
        env,
        timeout: a.timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::PacksConfig;
    use crate::results::CaseStatus;

    fn config() -> PacksConfig {
        PacksConfig::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packs_config"))).unwrap()
    }

    fn failed_case(name: &str, file: Option<&str>) -> Case {
        Case {
            suites: vec![],
            classname: "tests.test_demo".into(),
            name: name.into(),
            file: file.map(Into::into),
            time_ms: None,
            status: CaseStatus::Failed,
            message: String::new(),
            kind: String::new(),
            trace: String::new(),
            system_out: String::new(),
            system_err: String::new(),
        }
    }

    #[test]
    fn first_attempt_runs_the_packs_selectors_in_place_of_tests() {
        let cfg = config();
        let svc = cfg.service("demo").unwrap();
        let packs = vec!["basic".to_string()];
        let p = plan(
            svc,
            &AttemptRef {
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
