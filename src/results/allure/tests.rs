use super::*;
use crate::results::TestIdStyle;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/allure_samples/pytest")
}

/// The real allure-pytest output of tests/allure_samples/pytest/suite, by pytest node id.
fn sample() -> BTreeMap<String, AllureTest> {
    let read = read_dir(&sample_dir().join("allure-results")).unwrap().unwrap();
    assert_eq!(read.notes, Vec::<String>::new());
    read.tests
        .into_iter()
        .map(|t| (TestIdStyle::Pytest.id_of(&t.case), t))
        .collect()
}

#[test]
fn allure_pytest_results_become_cases_with_the_ids_pytest_junit_gives() {
    let tests = sample();
    let ids: Vec<&str> = tests.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "tests/test_shop.py::TestPay::test_card_declined",
            "tests/test_shop.py::test_broken",
            "tests/test_shop.py::test_skipped",
            "tests/test_shop.py::test_teardown_fails",
            "tests/test_shop.py::test_total[1]",
            "tests/test_shop.py::test_total[2]",
        ]
    );
    // The same ids as the JUnit XML pytest wrote in the same run.
    let mut junit = Vec::new();
    crate::results::junit::parse_file(&sample_dir().join("junit.xml"), |c| junit.push(c)).unwrap();
    let mut junit_ids: Vec<String> = junit.iter().map(|c| TestIdStyle::Pytest.id_of(c)).collect();
    junit_ids.sort();
    junit_ids.dedup();
    assert_eq!(junit_ids, ids);

    let declined = &tests["tests/test_shop.py::TestPay::test_card_declined"].case;
    assert_eq!(declined.status, CaseStatus::Failed);
    assert_eq!(declined.classname, "tests.test_shop.TestPay");
    assert_eq!(declined.message, "AssertionError: card declined\nassert 1 == 2");
    assert!(
        declined.trace.ends_with("tests/test_shop.py:34: AssertionError"),
        "{}",
        declined.trace
    );
    assert!(declined.time_ms.is_some());
    assert!(
        declined.suites.is_empty(),
        "the classname says them: {:?}",
        declined.suites
    );
    let broken = &tests["tests/test_shop.py::test_broken"].case;
    assert_eq!(
        (broken.status, broken.message.as_str()),
        (CaseStatus::Errored, "RuntimeError: database is down")
    );
    let skipped = &tests["tests/test_shop.py::test_skipped"].case;
    assert_eq!(
        (skipped.status, skipped.message.as_str()),
        (CaseStatus::Skipped, "Skipped: not today")
    );
    assert_eq!(
        tests["tests/test_shop.py::test_total[1]"].case.status,
        CaseStatus::Passed
    );
}

#[test]
fn steps_parameters_labels_and_attachments_are_kept() {
    let tests = sample();
    let total = &tests["tests/test_shop.py::test_total[2]"].extras;
    assert_eq!(
        total.parameters,
        [Parameter {
            name: "qty".into(),
            value: "2".into()
        }]
    );
    assert_eq!(total.steps.len(), 1);
    assert_eq!(total.steps[0].name, "add 2 items");
    assert_eq!(total.steps[0].status, "passed");
    assert_eq!(total.steps[0].steps[0].name, "open the cart");
    assert!(total.steps[0].duration_ms.is_some());
    assert_eq!(total.labels.feature.as_deref(), Some("cart"));
    assert_eq!(total.labels.story.as_deref(), Some("checkout"));
    assert_eq!(total.labels.severity.as_deref(), Some("critical"));
    assert_eq!(total.labels.suite.as_deref(), Some("test_shop"));

    let declined = &tests["tests/test_shop.py::TestPay::test_card_declined"].extras;
    let step = &declined.steps[0];
    assert_eq!(
        (step.name.as_str(), step.status.as_str()),
        ("pay with a card", "failed")
    );
    assert!(step.message.starts_with("AssertionError: card declined"));
    let files: Vec<(&str, &str)> = step
        .attachments
        .iter()
        .map(|&i| {
            (
                declined.attachments[i].name.as_str(),
                declined.attachments[i].content_type.as_str(),
            )
        })
        .collect();
    assert_eq!(files, [("screenshot", "image/png"), ("server log", "text/plain")]);
    assert!(
        declined
            .attachments
            .iter()
            .all(|a| safe_source(&a.source) && a.refused.is_none())
    );
    assert!(is_image(&declined.attachments[0]));
    assert!(!is_image(&declined.attachments[1]));

    // A fixture's teardown failure is shown as a step of the test it broke.
    let teardown = &tests["tests/test_shop.py::test_teardown_fails"];
    assert_eq!(teardown.case.status, CaseStatus::Errored);
    assert_eq!(teardown.extras.steps[0].name, "tear down: leaky_session::1");
    assert_eq!(teardown.extras.steps[0].status, "broken");
}

#[test]
fn a_failed_fixture_of_a_container_breaks_a_passing_test() {
    let result = br#"{"uuid": "t1", "name": "test_a", "fullName": "m#test_a", "status": "passed",
        "labels": [{"name": "framework", "value": "pytest"}, {"name": "package", "value": "m"}]}"#;
    let container = br#"{"uuid": "c1", "children": ["t1"],
        "befores": [{"name": "db", "status": "passed"}],
        "afters": [{"name": "db::close", "status": "failed", "statusDetails": {"message": "close timed out\n"}}]}"#;
    let (tests, notes) = assemble(
        vec![parse_result(result).unwrap()],
        &[parse_container(container).unwrap()],
    );
    assert!(notes.is_empty());
    let t = &tests[0];
    assert_eq!(t.case.status, CaseStatus::Errored);
    assert_eq!(t.case.message, "tear down db::close failed: close timed out");
    assert_eq!(t.case.file.as_deref(), Some("m.py"));
    assert_eq!(TestIdStyle::Pytest.id_of(&t.case), "m.py::test_a");
    assert_eq!(t.extras.steps.len(), 1, "only the failed fixture is shown");
}

#[test]
fn a_file_that_is_not_json_or_not_a_result_is_skipped_with_a_note_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(sample_dir().join("allure-results")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("aaa-result.json"), "<html>not json</html>").unwrap();
    std::fs::write(dir.path().join("bbb-result.json"), "[1, 2]").unwrap();
    std::fs::write(
        dir.path().join("ccc-result.json"),
        r#"{"status": "passed", "x": 1}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("ddd-container.json"), r#"{"children": "nope"}"#).unwrap();
    let read = read_dir(dir.path()).unwrap().unwrap();
    assert_eq!(read.tests.len(), 6, "every real result is still read");
    assert_eq!(read.notes.len(), 4, "{:?}", read.notes);
    assert!(
        read.notes[0].starts_with("aaa-result.json: not JSON"),
        "{}",
        read.notes[0]
    );
    assert!(
        read.notes[1].starts_with("bbb-result.json: not an Allure result"),
        "{}",
        read.notes[1]
    );
    assert!(
        read.notes[2].contains("neither name nor fullName"),
        "{}",
        read.notes[2]
    );
    assert!(
        read.notes[3].starts_with("ddd-container.json: not an Allure container"),
        "{}",
        read.notes[3]
    );
    assert!(read_dir(&dir.path().join("missing")).unwrap().is_none());
}

#[test]
fn oversized_text_and_deep_steps_are_bounded() {
    let long = "x".repeat(MAX_TEXT_BYTES * 2);
    let mut steps = String::from("[]");
    for i in 0..(MAX_STEP_DEPTH + 10) {
        steps = format!(r#"[{{"name": "s{i}", "status": "passed", "steps": {steps}}}]"#);
    }
    let json = format!(
        r#"{{"name": "t", "status": "failed", "statusDetails": {{"message": "{long}"}}, "steps": {steps}, "unknownField": {{"a": 1}}}}"#
    );
    let (tests, _) = assemble(vec![parse_result(json.as_bytes()).unwrap()], &[]);
    let t = &tests[0];
    assert!(t.case.message.len() < MAX_TEXT_BYTES + 100);
    assert!(t.case.message.ends_with("bytes truncated]"));
    let mut depth = 0;
    let mut s = &t.extras.steps;
    while let Some(first) = s.first() {
        depth += 1;
        s = &first.steps;
    }
    assert_eq!(depth, MAX_STEP_DEPTH);
}

#[test]
fn attachment_sources_that_could_be_paths_are_refused() {
    for bad in [
        "../etc/passwd",
        "a/b.png",
        "..",
        ".hidden",
        "",
        "a\\b",
        "x\0y",
        "é.png",
    ] {
        assert!(!safe_source(bad), "{bad:?}");
    }
    assert!(safe_source("75882cd2-b987-4144-9f70-2fd6ed11edc9-attachment.png"));
    let json = br#"{"name": "t", "status": "failed", "attachments": [{"name": "x", "source": "../../secret", "type": "image/png"}]}"#;
    let (tests, _) = assemble(vec![parse_result(json).unwrap()], &[]);
    assert!(tests[0].extras.attachments[0].refused.is_some());
}

#[test]
fn served_types_are_safe() {
    assert_eq!(served_type("image/png", "a-attachment.png"), "image/png");
    assert_eq!(
        served_type("image/svg+xml", "a-attachment.svg"),
        "application/octet-stream"
    );
    assert_eq!(
        served_type("text/html", "a-attachment.html"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        served_type("application/x-sh", "a-attachment.sh"),
        "application/octet-stream"
    );
    assert_eq!(served_type("", "a-attachment.jpg"), "image/jpeg");
}

#[test]
fn attachments_over_a_limit_are_refused_with_a_note_and_the_others_kept() {
    let att = |source: &str| Attachment {
        name: source.into(),
        source: source.into(),
        ..Default::default()
    };
    let mut tests = vec![
        (
            "a".to_string(),
            Extras {
                attachments: vec![att("big"), att("small"), att("gone")],
                ..Default::default()
            },
        ),
        (
            "b".to_string(),
            Extras {
                attachments: vec![att("mid")],
                ..Default::default()
            },
        ),
    ];
    let sizes: HashMap<&str, u64> = [("big", 600), ("small", 100), ("mid", 300)].into();
    let limits = Limits {
        per_test: 500,
        per_run: 1000,
    };
    let total = apply_limits(&mut tests, limits, 700, |s| sizes.get(s).copied());
    let a = &tests[0].1.attachments;
    assert!(
        a[0].refused.as_deref().unwrap().contains("per test"),
        "{:?}",
        a[0].refused
    );
    assert_eq!((a[1].refused.as_ref(), a[1].size), (None, Some(100)));
    assert!(
        a[2].refused
            .as_deref()
            .unwrap()
            .contains("not in the results directory")
    );
    let b = &tests[1].1.attachments;
    assert!(
        b[0].refused.as_deref().unwrap().contains("per run"),
        "{:?}",
        b[0].refused
    );
    assert_eq!(total, 800);
}

#[test]
fn junit_and_allure_of_one_attempt_are_one_set_of_tests() {
    let mut junit = Vec::new();
    crate::results::junit::parse_file(&sample_dir().join("junit.xml"), |c| junit.push(c)).unwrap();
    let junit_count = {
        let mut ids: Vec<String> = junit.iter().map(|c| TestIdStyle::Pytest.id_of(c)).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let allure = read_dir(&sample_dir().join("allure-results"))
        .unwrap()
        .unwrap()
        .tests;
    let mut only_allure = allure[0].clone();
    only_allure.case.name = "test_only_in_allure".into();
    let mut with_extra = allure.clone();
    with_extra.push(only_allure);
    let (cases, extras) = unite(junit.clone(), with_extra, &TestIdStyle::Pytest);
    let results = crate::results::assign_ids(1, cases, &TestIdStyle::Pytest);
    assert_eq!(results.len(), junit_count + 1);
    assert_eq!(extras.len(), junit_count + 1);
    // JUnit's verdict and output stand for a test both report.
    let declined = results
        .iter()
        .find(|r| r.id == "tests/test_shop.py::TestPay::test_card_declined")
        .unwrap();
    assert!(declined.case.trace.contains("self = <tests.test_shop.TestPay"));
    assert!(
        !extras["tests/test_shop.py::TestPay::test_card_declined"]
            .attachments
            .is_empty()
    );
}

/// tests/allure_samples/pytest-titles: `@allure.title` renames results (with parameters or
/// without); each stays one test with its JUnit twin, named as pytest names it, its title kept.
#[test]
fn tests_renamed_by_allure_title_are_one_set_with_their_junit_twins() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/allure_samples/pytest-titles");
    let mut junit = Vec::new();
    crate::results::junit::parse_file(&dir.join("junit.xml"), |c| junit.push(c)).unwrap();
    assert_eq!(junit.len(), 6);
    let allure = read_dir(&dir.join("allure-results")).unwrap().unwrap().tests;
    assert_eq!(allure.len(), 6);
    let (cases, extras) = unite(junit, allure, &TestIdStyle::Pytest);
    let results = crate::results::assign_ids(1, cases, &TestIdStyle::Pytest);
    let ids: std::collections::BTreeSet<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        std::collections::BTreeSet::from([
            "tests/test_titles.py::TestLogin::test_login",
            "tests/test_titles.py::test_checkout",
            "tests/test_titles.py::test_pay[card]",
            "tests/test_titles.py::test_pay[cash]",
            "tests/test_titles.py::test_untitled[1-a b]",
            "tests/test_titles.py::test_untitled[2-x]",
        ]),
        "one test each, not a JUnit one and an Allure one"
    );
    assert_eq!(results.len(), 6);
    let title = |id: &str| extras[id].title.as_deref();
    assert_eq!(
        title("tests/test_titles.py::test_checkout"),
        Some("Checkout works")
    );
    assert_eq!(
        title("tests/test_titles.py::test_pay[cash]"),
        Some("Pay with cash")
    );
    assert_eq!(
        title("tests/test_titles.py::TestLogin::test_login"),
        Some("Login with a good password")
    );
    assert_eq!(title("tests/test_titles.py::test_untitled[1-a b]"), None);
}
