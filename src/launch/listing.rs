//! Listing an attempt's tests up front, so that shards can be balanced test by test: the
//! command (a service's `launch.list`, else its runner preset's) as a pure function of the
//! service, the stand and the packs, like [`super::plan`]. Running it is the driver's job;
//! reading what it printed is [`crate::shard::parse_listing`].

use crate::packs::Service;
use crate::shard::Unit;
use crate::template::Var;

/// How long listing the tests may take (a process standalone, a Job's deadline in a
/// cluster); past it the attempt is split by pack.
pub const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a listing printed, as the items to split by (tests or files). Pure.
pub fn read(plan: &ListPlan, output: &str) -> Vec<String> {
    if plan.go {
        crate::shard::parse_go_listing(output)
    } else {
        crate::shard::parse_listing(output, plan.unit, plan.pytest)
    }
}

/// A listing command and what each line it prints is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPlan {
    pub argv: Vec<String>,
    pub unit: Unit,
    /// pytest's output: only node ids count (it adds a summary and warnings).
    pub pytest: bool,
    /// `go test -list -json`'s events: each test name with its package.
    pub go: bool,
    /// The service's `launch.env` (the runner may need it to import the suite).
    pub env: Vec<(String, String)>,
}

/// How to list the tests of `packs`, or `None` when the service cannot: no `launch.list`
/// and a preset that cannot list, or tests that a shard could not select by id (the
/// service's rerun selection needs more of a test than its id: its name, class or file).
pub fn list_plan(svc: &Service, stand: &str, packs: &[String]) -> Option<ListPlan> {
    let dir = svc.dir.display().to_string();
    let pack_var = |v: Var| match v {
        Var::Dir => dir.clone(),
        Var::Stand => stand.to_string(),
        _ => String::new(),
    };
    let selectors: Vec<String> = packs
        .iter()
        .filter_map(|p| svc.packs.get(p))
        .flat_map(|p| p.tests.iter().map(|t| t.render(pack_var)))
        .collect();
    let (argv, unit, pytest) = match (&svc.launch.list, svc.runner.and_then(|r| r.list())) {
        (Some(own), _) => {
            let mut argv = Vec::new();
            for t in own {
                if t.is_exactly(Var::Tests) {
                    argv.extend(selectors.iter().cloned());
                } else {
                    argv.push(t.render(pack_var));
                }
            }
            (argv, Unit::Tests, false)
        }
        (None, Some((command, unit))) => {
            let mut argv = Vec::new();
            for t in command {
                match *t {
                    "{tests}" => argv.extend(selectors.iter().cloned()),
                    t => argv.push(t.replace("{dir}", &dir)),
                }
            }
            (argv, unit, svc.runner == Some(crate::packs::Runner::Pytest))
        }
        (None, None) => return None,
    };
    if unit == Unit::Tests && !svc.rerun.selects_by_id() {
        return None;
    }
    Some(ListPlan {
        argv,
        unit,
        pytest,
        go: svc.launch.list.is_none() && svc.runner == Some(crate::packs::Runner::Go),
        env: svc
            .launch
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::PacksConfig;
    use std::path::Path;

    fn config() -> PacksConfig {
        PacksConfig::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packs_config"))).unwrap()
    }

    #[test]
    fn the_pytest_preset_collects_the_packs_tests_quietly() {
        let cfg = config();
        let mut svc = (**cfg.service("demo-py").unwrap()).clone();
        svc.runner = Some(crate::packs::Runner::Pytest);
        let p = list_plan(&svc, "localhost", &["core".into()]).unwrap();
        let dir = svc.dir.display().to_string();
        assert_eq!(p.unit, Unit::Tests);
        assert!(p.pytest);
        assert!(p.argv.contains(&"--collect-only".to_string()));
        assert_eq!(p.argv.last().unwrap(), &format!("{dir}/tests/test_core.py"));
        assert!(p.argv.contains(&format!("--rootdir={dir}")));
    }

    #[test]
    fn the_go_preset_lists_with_json_events_to_know_each_tests_package() {
        let cfg = config();
        let mut svc = (**cfg.service("demo-py").unwrap()).clone();
        svc.runner = Some(crate::packs::Runner::Go);
        svc.launch.list = None;
        svc.rerun.select = Some(crate::packs::Runner::Go);
        svc.rerun.args.clear();
        let p = list_plan(&svc, "localhost", &["core".into()]).unwrap();
        assert_eq!(p.unit, Unit::Tests);
        assert!(p.go && !p.pytest);
        assert_eq!(&p.argv[..3], ["go", "test", "-C"]);
        assert!(
            p.argv.windows(3).any(|w| w == ["-list", ".*", "-json"]),
            "{:?}",
            p.argv
        );
    }

    #[test]
    fn check_config_explains_how_a_sharded_service_is_split() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("py.yaml"),
            "stands: {pattern: localhost}\nshards: 4\nlaunch: {runner: pytest}\npacks: {all: {tests: ['{dir}/tests']}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mvn.yaml"),
            "stands: {pattern: localhost}\nshards: 2\nlaunch: {runner: maven}\npacks: {all: {tests: []}}\n",
        )
        .unwrap();
        let cfg = PacksConfig::load(dir.path()).unwrap();
        let py = crate::launch::explain(&cfg, "py").unwrap();
        assert!(
            py.contains("shards: 4, split by tests listed with: [\"python3\""),
            "{py}"
        );
        assert!(py.contains("\"--collect-only\",\"-q\""), "{py}");
        let mvn = crate::launch::explain(&cfg, "mvn").unwrap();
        assert!(mvn.contains("shards: 2, split by pack"), "{mvn}");
    }

    #[test]
    fn a_listing_is_used_only_when_a_test_id_alone_selects_a_test() {
        let dir = tempfile::tempdir().unwrap();
        for (name, rerun) in [("by-id", "{dir}/{id}"), ("by-name", "--grep=^{name:regex}$")] {
            std::fs::write(
                dir.path().join(format!("{name}.yaml")),
                format!(
                    "stands: {{pattern: localhost}}\nlaunch: {{command: [r, '{{tests}}'], list: [r, --list]}}\n\
                     rerun: {{args: ['{rerun}']}}\npacks: {{all: {{tests: [x]}}}}\n"
                ),
            )
            .unwrap();
        }
        let cfg = PacksConfig::load(dir.path()).unwrap();
        let by_id = list_plan(cfg.service("by-id").unwrap(), "s", &["all".into()]).unwrap();
        assert_eq!(
            (by_id.argv, by_id.unit),
            (vec!["r".to_string(), "--list".into()], Unit::Tests)
        );
        assert_eq!(
            list_plan(cfg.service("by-name").unwrap(), "s", &["all".into()]),
            None
        );
    }

    #[test]
    fn a_service_without_a_listing_is_split_by_pack() {
        let cfg = config();
        let mut svc = (**cfg.service("demo-py").unwrap()).clone();
        svc.runner = None;
        svc.launch.list = None;
        assert_eq!(list_plan(&svc, "localhost", &["core".into()]), None);
    }
}
