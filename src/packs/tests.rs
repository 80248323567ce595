use std::path::Path;

use super::*;
use crate::crd::{EnvVar, RunTemplate};

fn shipped() -> PacksConfig {
    PacksConfig::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packs_config"))).unwrap()
}

fn template(service: &str, stand: &str) -> RunTemplate {
    RunTemplate {
        service: service.into(),
        stand: stand.into(),
        category: None,
        packs: vec![],
        priority: crate::crd::Priority::DEFAULT,
        emails: vec![],
        issue_key: None,
        version: None,
        retries: None,
        shards: None,
        env: vec![],
    }
}

/// Writes `files` into a fresh directory and loads it.
fn load(files: &[(&str, &str)]) -> Result<PacksConfig, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    PacksConfig::load(dir.path())
}

const MINIMAL: &str = r#"
stands: {pattern: 'qa[0-9]+\.example\.com'}
launch: {command: [runner, "{tests}"]}
packs:
  smoke: {tests: [smoke/]}
  full: {tests: [full/]}
presets:
  quick: [smoke]
"#;

#[test]
fn shipped_examples_load_with_their_packs_and_presets() {
    let cfg = shipped();
    let demo = cfg.service("demo").unwrap();
    assert_eq!(demo.retries, 3);
    assert!(demo.presets.contains_key("smoke") && demo.presets.contains_key("slow"));
    assert!(demo.check_stand("localhost").is_ok());
    assert!(cfg.service("demo-py").is_some());
}

#[test]
fn defaults_apply_when_fields_are_left_out() {
    let cfg = load(&[("svc.yaml", MINIMAL)]).unwrap();
    let s = cfg.service("svc").unwrap();
    assert_eq!(
        (s.concurrency, s.stand_concurrency, s.retries),
        (1, 1, DEFAULT_RETRIES)
    );
    assert_eq!(s.launch.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn every_problem_is_reported_with_file_field_and_reason() {
    let bad = r#"
stands: {pattern: '(unclosed', concurrency: 0}
concurrency: 0
retries: 12
launch: {command: ["{stnad}", "--x={tests}"], timeout: 5d, env: {TOMATO_X: "1"}}
rerun: {testId: "{id}", args: ["{nope}"]}
packs:
  Smoke: {tests: ["{dir}/x"]}
presets:
  quick: [missing]
  empty: []
report: {emails: [not-an-address], webhooks: ["ftp://hooks.example.com/s3cret-path"]}
"#;
    let errs = load(&[("svc.yaml", bad)]).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "stands.pattern",
        "stands.concurrency",
        "concurrency",
        "retries",
        "launch.command[0]",
        "launch.command[1]",
        "launch.timeout",
        "launch.env.TOMATO_X",
        "rerun.testId",
        "rerun.args[0]",
        "packs.Smoke",
        "presets.quick[0]",
        "presets.empty",
        "report.emails[0]",
        "report.webhooks[0]",
    ] {
        assert!(fields.contains(&expected), "missing {expected} in {fields:?}");
    }
    assert!(errs.0.iter().all(|e| e.file.ends_with("svc.yaml")));
    let text = errs.to_string();
    assert!(
        text.contains("svc.yaml: stands.pattern: \"(unclosed\" is not a valid regular expression"),
        "{text}"
    );
    assert!(text.contains("unknown placeholder {stnad}"), "{text}");
    assert!(
        !text.contains("s3cret-path"),
        "a webhook URL is never repeated: {text}"
    );
}

#[test]
fn an_eager_rerun_needs_a_rerun_that_selects_the_failed_tests() {
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nlaunch: {command: [r, '{tests}']}\nrerun: {eager: true}\npacks: {a: {tests: [x]}}\n",
    )]);
    assert!(
        errs.contains(
            &"rerun.eager: needs a rerun that selects the failed tests (rerun.args or launch.runner)"
                .to_string()
        ),
        "{errs:?}"
    );
    let cfg = load(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nshards: 2\nlaunch: {runner: pytest}\nrerun: {eager: true}\npacks: {a: {tests: [x]}}\n",
    )])
    .unwrap();
    assert!(cfg.service("svc").unwrap().rerun.eager);
}

#[test]
fn shards_are_one_to_64_and_a_run_asks_for_at_most_its_limits() {
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nshards: 65\nlaunch: {command: [r, '{tests}'], list: []}\npacks: {a: {tests: [x]}}\n",
    )]);
    assert!(
        errs.contains(&"shards: must be 1–64, got 65".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"launch.list: an empty command".to_string()),
        "{errs:?}"
    );
    let cfg = load(&[(
        "svc.yaml",
        "stands: {pattern: localhost, concurrency: 2}\nconcurrency: 4\nshards: 3\n\
         launch: {command: [r, '{tests}'], list: [r, --list, '{tests}']}\npacks: {a: {tests: [x]}}\n",
    )])
    .unwrap();
    let s = cfg.service("svc").unwrap();
    let mut t = template("svc", "localhost");
    assert_eq!(
        (s.shards_for(&t), s.shard_slots(&t)),
        (3, 2),
        "the stand takes two at once"
    );
    t.shards = Some(1);
    assert_eq!(s.shard_slots(&t), 1, "a run's own shards win");
    t.shards = Some(0);
    let errs = cfg.check_run_all(&t).unwrap_err();
    assert_eq!(errs[0].field, "shards");
    assert_eq!(s.launch.list.as_ref().map(Vec::len), Some(3));
}

#[test]
fn yaml_errors_name_the_field_and_line() {
    let errs = load(&[(
        "svc.yaml",
        "stands: {pattern: x}\nlaunch: {command: [a]}\npacks:\n  p: {tests: [a], tset: 1}\n",
    )])
    .unwrap_err();
    assert_eq!(errs.0.len(), 1);
    let e = &errs.0[0];
    assert_eq!(e.field, "packs.p.tset");
    assert!(
        e.reason
            .contains("unknown field \"tset\"; the fields here are description, tests")
            && e.reason.contains("line 4"),
        "{}",
        e.reason
    );
}

#[test]
fn problems_of_several_files_are_all_reported() {
    let errs = load(&[
        ("a.yaml", "stands: {}\n"),
        ("b.yaml", "packs: 3\n"),
        ("Bad Name.yaml", MINIMAL),
    ])
    .unwrap_err();
    let files: std::collections::BTreeSet<_> = errs
        .0
        .iter()
        .map(|e| e.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 3, "{errs}");
}

#[test]
fn an_empty_directory_is_an_error() {
    let errs = load(&[]).unwrap_err();
    assert!(errs.to_string().contains("no service is defined"));
}

#[test]
fn check_run_names_the_field_at_fault() {
    let cfg = load(&[("svc.yaml", MINIMAL)]).unwrap();
    let field = |t: RunTemplate| cfg.check_run(&t).unwrap_err().field;
    assert_eq!(field(template("nope", "qa1.example.com")), "service");
    assert_eq!(field(template("svc", "prod.example.com")), "stand");
    assert_eq!(
        field(RunTemplate {
            category: Some("nightly".into()),
            ..template("svc", "qa1.example.com")
        }),
        "category"
    );
    assert_eq!(
        field(RunTemplate {
            packs: vec!["x".into()],
            ..template("svc", "qa1.example.com")
        }),
        "packs"
    );
    // A priority out of range cannot be built: `crd::Priority` refuses it (its own tests).
    assert!(crate::crd::Priority::new(10).is_err());
    assert_eq!(
        field(RunTemplate {
            emails: vec!["a@b".into(), "nope".into()],
            ..template("svc", "qa1.example.com")
        }),
        "emails"
    );
    assert_eq!(
        field(RunTemplate {
            issue_key: Some("qa-1".into()),
            ..template("svc", "qa1.example.com")
        }),
        "issueKey"
    );
    let env = vec![EnvVar {
        name: "X".into(),
        value: None,
        value_from: None,
    }];
    assert_eq!(
        field(RunTemplate {
            env,
            ..template("svc", "qa1.example.com")
        }),
        "env"
    );
}

#[test]
fn stand_pattern_must_match_the_whole_stand() {
    let cfg = load(&[("svc.yaml", MINIMAL)]).unwrap();
    let s = cfg.service("svc").unwrap();
    assert!(s.check_stand("qa12.example.com").is_ok());
    assert!(s.check_stand("qa12.example.com.evil.org").is_err());
    assert!(s.check_stand("xqa1.example.com").is_err());
    assert!(s.check_stand("qa1.example.com; rm -rf /").is_err());
}

#[test]
fn packs_win_over_category_and_nothing_means_everything() {
    let cfg = load(&[("svc.yaml", MINIMAL)]).unwrap();
    let s = cfg.service("svc").unwrap();
    assert_eq!(s.resolve_packs(None, &[]).unwrap(), vec!["full", "smoke"]);
    assert_eq!(s.resolve_packs(Some("quick"), &[]).unwrap(), vec!["smoke"]);
    assert_eq!(
        s.resolve_packs(Some("quick"), &["full".into(), "full".into()])
            .unwrap(),
        vec!["full"]
    );
}

#[test]
fn bad_category_rules_are_refused_with_the_rule_name_and_regex_error() {
    let with_rules = format!(
        "{MINIMAL}categories:\n  - name: Broken regex\n    logRegex: '(unclosed'\n  - name: Odd status\n    matchedStatuses: [exploded]\n  - name: ''\n"
    );
    let errs = load(&[("svc.yaml", &with_rules)]).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("categories[0]") && text.contains("Broken regex") && text.contains("unclosed"),
        "{text}"
    );
    assert!(
        text.contains("categories[1]") && text.contains("exploded"),
        "{text}"
    );
    assert!(text.contains("categories[2]"), "{text}");

    let both = format!("{MINIMAL}categories: []\ncategoriesFile: x.json\n");
    assert_eq!(
        load(&[("svc.yaml", &both)]).unwrap_err().0[0].field,
        "categoriesFile"
    );
    let missing = format!("{MINIMAL}categoriesFile: nope.json\n");
    let e = load(&[("svc.yaml", &missing)]).unwrap_err();
    assert!(e.0[0].reason.contains("nope.json"), "{e}");
}

#[test]
fn shipped_demo_has_categories() {
    let cfg = shipped();
    let rules = cfg
        .service("demo")
        .unwrap()
        .classifier
        .as_ref()
        .unwrap()
        .rules()
        .len();
    assert!(rules >= 4);
}

#[test]
fn a_service_names_its_default_regression_plan_by_id_or_name() {
    let by_name = format!("{MINIMAL}regression: {{plan: Release regression}}\n");
    let by_id = format!("{MINIMAL}regression: {{plan: 42}}\n");
    let cfg = load(&[("a.yaml", &by_name), ("b.yaml", &by_id), ("c.yaml", MINIMAL)]).unwrap();
    assert_eq!(
        cfg.service("a").unwrap().regression_plan,
        Some(crate::integrations::tms::PlanRef::Name(
            "Release regression".into()
        ))
    );
    assert_eq!(
        cfg.service("b").unwrap().regression_plan,
        Some(crate::integrations::tms::PlanRef::Id(42))
    );
    assert_eq!(cfg.service("c").unwrap().regression_plan, None);
    let bad = format!("{MINIMAL}regression: {{plan: [1]}}\n");
    let errs = load(&[("svc.yaml", &bad)]).unwrap_err();
    assert_eq!(errs.0[0].field, "regression.plan");
    assert!(
        errs.0[0].reason.contains("a plan id (a number) or a plan name"),
        "{errs}"
    );
}

#[test]
fn operator_launch_settings_are_read_and_checked() {
    let with_job = MINIMAL.replace(
        "launch: {command: [runner, \"{tests}\"]}",
        r#"launch:
  command: [runner, "{tests}"]
  image: registry.example.com/qa/suite:1.2
  imagePullPolicy: IfNotPresent
  serviceAccountName: qa-tests
  workingDir: /suite
  resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {memory: 1Gi, nvidia.com/gpu: "1"}}"#,
    );
    let cfg = load(&[("svc.yaml", &with_job)]).unwrap();
    let job = &cfg.service("svc").unwrap().launch.job;
    assert_eq!(job.image.as_deref(), Some("registry.example.com/qa/suite:1.2"));
    assert_eq!(job.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(job.working_dir, "/suite");
    assert_eq!(job.requests["cpu"], "500m");
    assert_eq!(job.limits["nvidia.com/gpu"], "1");
    assert!(cfg.check_operator().is_ok());

    let without = load(&[("svc.yaml", MINIMAL)]).unwrap();
    assert_eq!(
        without.service("svc").unwrap().launch.job.working_dir,
        DEFAULT_WORKING_DIR
    );
    let err = without.check_operator().unwrap_err();
    assert_eq!(err.0[0].field, "launch.image");
}

#[test]
fn bad_operator_launch_settings_are_each_named() {
    let bad = MINIMAL.replace(
        "launch: {command: [runner, \"{tests}\"]}",
        r#"launch:
  command: [runner, "{tests}"]
  image: "has space"
  imagePullPolicy: Sometimes
  serviceAccountName: Not_Valid
  workingDir: relative/dir
  resources: {requests: {cpu: lots, gpus: "1"}}"#,
    );
    let fields: Vec<String> = load(&[("svc.yaml", &bad)])
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
    for f in [
        "launch.image",
        "launch.imagePullPolicy",
        "launch.serviceAccountName",
        "launch.workingDir",
        "launch.resources.requests.cpu",
        "launch.resources.requests.gpus",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} not reported in {fields:?}");
    }
}

/// Serde stops at the first field of the wrong type; every other wrong field in the file is
/// still reported (a required field with a wrong type is not then reported missing).
#[test]
fn every_wrongly_typed_field_of_a_file_is_reported_not_only_the_first() {
    let text = r#"
stands: {pattern: localhost, concurrency: -2}
concurrency: -1
retries: many
launch: {command: [node]}
packs:
  a: {tests: [x], bogus: 1}
"#;
    let errs = load(&[("bad.yaml", text)]).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["stands.concurrency", "concurrency", "packs.a.bogus", "retries"],
        "{errs:?}"
    );
    assert!(errs.0[0].reason.contains("line 2"), "{errs:?}");
    let only_stands = load(&[("s.yaml", "stands: 7\nlaunch: {command: [x]}\npacks: {}\n")]).unwrap_err();
    assert_eq!(only_stands.0.len(), 1, "{only_stands:?}");
}

#[test]
fn a_run_names_at_most_100_recipients_and_a_short_issue_key() {
    let cfg = load(&[("svc.yaml", MINIMAL)]).unwrap();
    let mut t = template("svc", "qa1.example.com");
    t.emails = (0..101).map(|i| format!("qa{i}@example.com")).collect();
    assert_eq!(cfg.check_run(&t).unwrap_err().field, "emails");
    t.emails.truncate(100);
    assert!(cfg.check_run(&t).is_ok());
    t.issue_key = Some(format!("QA-{}", "1".repeat(70)));
    let e = cfg.check_run(&t).unwrap_err();
    assert_eq!(
        (e.field, e.message.as_str()),
        ("issueKey", "is longer than 64 characters")
    );
}

/// The errors of a file, as `field: reason` lines.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    load(files)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect()
}

#[test]
fn the_smallest_service_file_is_the_runner_the_packs_and_the_stands() {
    let cfg = load(&[(
        "py.yaml",
        "stands: {pattern: localhost}\nlaunch: {runner: pytest}\npacks:\n  all: {tests: ['{dir}/tests']}\n",
    )])
    .unwrap();
    let s = cfg.service("py").unwrap();
    assert_eq!(s.runner, Some(Runner::Pytest));
    assert_eq!(s.rerun.test_id, TestIdStyle::Pytest);
    assert_eq!(s.rerun.select, Some(Runner::Pytest));
    assert!(!s.rerun.include_pack_tests);
    let command: Vec<String> = s.launch.command.iter().map(ToString::to_string).collect();
    assert!(
        command.contains(&"junit_family=xunit1".to_string()),
        "{command:?}"
    );
    assert!(command.contains(&"junit_logging=all".to_string()), "{command:?}");
}

#[test]
fn whatever_a_preset_sets_can_be_overridden_field_by_field() {
    let cfg = load(&[(
        "js.yaml",
        "stands: {pattern: localhost}\nlaunch: {runner: jest, args: ['--runInBand']}\n\
         rerun: {testId: '{classname}::{name}', includePackTests: true}\npacks:\n  all: {tests: [tests/]}\n",
    )])
    .unwrap();
    let s = cfg.service("js").unwrap();
    assert_eq!(
        s.rerun.test_id,
        TestIdStyle::parse("{classname}::{name}").unwrap()
    );
    assert!(s.rerun.include_pack_tests);
    assert_eq!(
        s.rerun.select,
        Some(Runner::Jest),
        "the selection stays the preset's"
    );
    let command: Vec<String> = s.launch.command.iter().map(ToString::to_string).collect();
    let tests = command.iter().position(|a| a == "{tests}").unwrap();
    assert_eq!(
        command[tests - 1],
        "--runInBand",
        "launch.args go just before {{tests}}"
    );

    let explicit = load(&[(
        "js.yaml",
        "stands: {pattern: localhost}\nlaunch: {runner: jest}\nrerun: {args: ['-t', '{name}']}\npacks:\n  all: {tests: [x]}\n",
    )])
    .unwrap();
    assert_eq!(
        explicit.service("js").unwrap().rerun.select,
        None,
        "rerun.args replace the preset's selection"
    );
}

#[test]
fn check_config_refuses_what_broke_at_run_time_all_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("svc/tests")).unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        "stands: {pattern: 'qa(['}\nlaunch: {command: [pytest, '--junitxml={junti}']}\n\
         packs:\n  core: {tests: ['{dir}/tests', '{dir}/tset_core.py::test_x']}\npresets:\n  smoke: [cor]\n",
    )
    .unwrap();
    let errs: Vec<String> = PacksConfig::load(dir.path())
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("stands.pattern: \"qa([\" is not a valid regular expression"),
        "{errs:#?}"
    );
    assert!(
        !has("^(?:"),
        "the stand pattern is reported as written: {errs:#?}"
    );
    assert!(has("(did you mean {junit}?)"), "{errs:#?}");
    assert!(
        has("packs.core.tests[1]: \"{dir}/tset_core.py::test_x\" names tset_core.py, which does not exist"),
        "{errs:#?}"
    );
    assert!(!has("packs.core.tests[0]"), "{errs:#?}");
    assert!(has("presets.smoke[0]: unknown pack \"cor\""), "{errs:#?}");
}

#[test]
fn a_command_without_tests_is_refused_unless_a_preset_supplies_it() {
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nlaunch: {command: [pytest, -q]}\npacks:\n  all: {tests: [t]}\n",
    )]);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("launch.command: has no \"{tests}\" argument")),
        "{errs:#?}"
    );
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nlaunch: {runner: pytset}\npacks:\n  all: {tests: [t]}\n",
    )]);
    assert!(
        errs.iter().any(|e| e.contains("launch.runner: \"pytset\" is not a runner preset, did you mean \"pytest\"?")),
        "{errs:#?}"
    );
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: localhost}\nlaunch: {}\npacks:\n  all: {tests: [t]}\n",
    )]);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("launch: give a runner preset (launch.runner: pytest | node")),
        "{errs:#?}"
    );
}

/// Every packs_config example of the README (a yaml block opening with
/// `# packs_config/<name>.yaml`) loads, so none can rot.
#[test]
fn every_packs_config_example_in_the_readme_loads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut found = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap_or_default();
        let Some(name) = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# packs_config/"))
            .map(str::trim)
        else {
            continue;
        };
        if let Err(e) = load(&[(name, body)]) {
            panic!("the README's example {name} does not load:\n{e}\n{body}");
        }
        found += 1;
    }
    assert!(
        found >= 7,
        "one example per runner preset at least, found {found}"
    );
}

/// A file with many shape errors: every one is reported at once, in the user's words.
#[test]
fn every_shape_error_of_a_file_is_reported_in_one_pass_in_the_users_words() {
    let errs = problems(&[(
        "svc.yaml",
        "stands: {pattern: [localhost], concurency: 2}\nretries: lots\nconcurrency: -1\n\
         launch:\n  runner: pytest\n  comand: [x]\n  timeout: [1]\nrerun: {includePackTest: true}\n\
         packs:\n  all: {tests: '{dir}/tests', tag: x}\n  two: [a]\npresets: [all]\n",
    )]);
    let has = |field: &str, needle: &str| {
        errs.iter()
            .any(|e| e.starts_with(&format!("{field}: ")) && e.contains(needle))
    };
    for (field, needle) in [
        ("stands.pattern", "expected text, not a list"),
        (
            "stands.concurency",
            "unknown field \"concurency\", did you mean \"concurrency\"?",
        ),
        ("retries", "expected a whole number from 0 to 255, not \"lots\""),
        (
            "concurrency",
            "expected a whole number from 0 to 4294967295, not -1",
        ),
        ("launch.comand", "did you mean \"command\"?"),
        ("launch.timeout", "expected text, not a list"),
        ("rerun.includePackTest", "did you mean \"includePackTests\"?"),
        ("packs.all.tests", "expected a list"),
        (
            "packs.all.tag",
            "unknown field \"tag\"; the fields here are description, tests",
        ),
        ("packs.two", "expected a mapping (key: value), not a list"),
        ("presets", "expected a mapping (key: value), not a list"),
    ] {
        assert!(has(field, needle), "{field}: {needle:?} in {errs:#?}");
    }
    for e in &errs {
        for raw in ["invalid u", "unexpected event", "expected u32", "struct Raw", "`"] {
            assert!(!e.contains(raw), "serde's own words in {e:?}");
        }
    }
}

#[test]
fn attachment_limits_are_read_with_units_and_checked() {
    let set = format!("{MINIMAL}attachments: {{perTest: 2MB, perRun: \"1048576\"}}\n");
    let cfg = load(&[("a.yaml", &set), ("b.yaml", MINIMAL)]).unwrap();
    let a = cfg.service("a").unwrap().attachments;
    assert_eq!((a.per_test, a.per_run), (2 << 20, 1 << 20));
    assert_eq!(
        cfg.service("b").unwrap().attachments,
        crate::results::allure::Limits::default()
    );
    let bad = format!("{MINIMAL}attachments: {{perTest: 10 parsecs}}\n");
    let errs = load(&[("svc.yaml", &bad)]).unwrap_err();
    assert_eq!(errs.0[0].field, "attachments.perTest");
    assert!(errs.0[0].reason.contains("is not a size"), "{errs}");
}

#[test]
fn retention_is_read_per_outcome_with_files_apart_and_absent_keeps_everything() {
    let text = format!(
        "{MINIMAL}retention:\n  successful: {{maxAge: 30d, runs: 200}}\n  failed: {{maxAge: 1d12h}}\n  files: {{maxAge: 7d}}\n"
    );
    let cfg = load(&[("svc.yaml", &text), ("plain.yaml", MINIMAL)]).unwrap();
    let r = *cfg.retention("svc").unwrap();
    let day = Duration::from_secs(86_400);
    assert_eq!(r.successful.max_age, Some(day * 30));
    assert_eq!(r.successful.runs, Some(200));
    assert_eq!(r.failed.max_age, Some(day + day / 2));
    assert_eq!(r.failed.runs, None);
    assert_eq!(r.files, Some(day * 7));
    assert_eq!(cfg.retention("plain"), None);
    assert_eq!(cfg.retention("unknown"), None);
    // The shipped examples show the feature.
    assert!(!shipped().retention("demo").unwrap().keeps_everything());
}

#[test]
fn bad_retention_names_every_field_at_fault() {
    let text = format!(
        "{MINIMAL}retention:\n  successful: {{maxAge: 0d, runs: 0}}\n  failed: {{runs: -3}}\n  files: {{maxAge: soon}}\n"
    );
    let errs = load(&[("svc.yaml", &text)]).unwrap_err().0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "retention.successful.maxAge",
        "retention.successful.runs",
        "retention.failed.runs",
        "retention.files.maxAge",
    ] {
        assert!(fields.contains(&f), "{f} not named in {errs:?}");
    }
    let runs = errs.iter().find(|e| e.field == "retention.failed.runs").unwrap();
    assert!(runs.reason.contains("got -3"), "{}", runs.reason);

    let empty = format!("{MINIMAL}retention:\n  successful: {{}}\n");
    let errs = load(&[("svc.yaml", &empty)]).unwrap_err().0;
    assert_eq!(errs[0].field, "retention.successful", "{errs:?}");

    let unknown = format!("{MINIMAL}retention:\n  successful: {{days: 30}}\n");
    let errs = load(&[("svc.yaml", &unknown)]).unwrap_err().0;
    assert!(
        errs.iter()
            .any(|e| e.field.starts_with("retention.successful") && e.reason.contains("days")),
        "{errs:?}"
    );
}

#[test]
fn defaults_give_every_service_without_its_own_retention_and_are_checked_like_it() {
    let own = format!("{MINIMAL}retention:\n  failed: {{runs: 5}}\n");
    let defaults = "retention:\n  successful: {maxAge: 30d}\n  files: {maxAge: 7d}\n";
    let cfg = load(&[
        ("_defaults.yaml", defaults),
        ("svc.yaml", &own),
        ("plain.yaml", MINIMAL),
    ])
    .unwrap();
    assert!(
        cfg.service("_defaults").is_none(),
        "the defaults file is no service"
    );
    let plain = cfg.retention("plain").unwrap();
    assert_eq!(plain.successful.max_age, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(plain.files, Some(Duration::from_secs(7 * 86_400)));
    // A service's own block replaces the defaults as a whole.
    let svc = cfg.retention("svc").unwrap();
    assert_eq!(
        (svc.failed.runs, svc.successful.max_age, svc.files),
        (Some(5), None, None)
    );
    // An empty defaults file is no defaults.
    let cfg = load(&[("_defaults.yaml", ""), ("plain.yaml", MINIMAL)]).unwrap();
    assert_eq!(cfg.retention("plain"), None);

    let bad = "retention:\n  failed: {runs: 0}\nretries: 2\n";
    let errs = load(&[("_defaults.yaml", bad), ("plain.yaml", MINIMAL)])
        .unwrap_err()
        .0;
    assert!(errs[0].file.ends_with("_defaults.yaml"), "{errs:?}");
    assert_eq!(errs[0].field, "retries", "only retention is read there: {errs:?}");
    let bad = "retention:\n  failed: {runs: 0}\n";
    let errs = load(&[("_defaults.yaml", bad), ("plain.yaml", MINIMAL)])
        .unwrap_err()
        .0;
    assert_eq!(errs[0].field, "retention.failed.runs", "{errs:?}");
}

#[test]
fn a_bad_probe_or_outage_setting_is_named_and_good_ones_load() {
    let bad = r#"
stands:
  pattern: localhost
  probe: {url: "ftp://{stand}/{path}", status: 42, every: 0s}
outage: {share: 1.5, min: 0}
launch: {command: [node]}
packs: {a: {tests: [x]}}
"#;
    let errs = load(&[("bad.yaml", bad)]).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "stands.probe.url",
        "stands.probe.status",
        "stands.probe.every",
        "outage.share",
        "outage.min",
    ] {
        assert!(fields.contains(&f), "{f} not reported in {errs:?}");
    }
    let good = r#"
stands:
  pattern: localhost
  probe: {url: "https://{stand}/health"}
outage: {min: 5}
launch: {command: [node, "{tests}"]}
packs: {a: {tests: [x]}}
"#;
    let config = load(&[("good.yaml", good)]).unwrap();
    let svc = config.service("good").unwrap();
    let probe = svc.stand_probe.clone().unwrap();
    assert_eq!(
        (probe.status, probe.every),
        (200, std::time::Duration::from_secs(30))
    );
    assert_eq!((svc.outage.share, svc.outage.min), (0.8, 5));
    assert!(
        shipped()
            .service("demo")
            .unwrap()
            .outage_policy()
            .infrastructure
            .contains("Infrastructure problems")
    );
}
