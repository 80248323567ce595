//! Failure classification end to end: the demo services' failing tests land in the
//! categories their rules predict, in `/api/status` and in each test of `/api/v1/runs/{id}/tests`.
//! A finished run keeps the categories it finished with when the rules change: every surface
//! agrees. The webhook receiver is an in-process stand-in (chat services cannot run here).

mod report_support;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use support::Server;

const RUN: Duration = Duration::from_secs(90);

fn categories(st: &Value) -> HashMap<String, (u64, Vec<String>)> {
    st["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let tests = c["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            (
                c["name"].as_str().unwrap().to_string(),
                (c["count"].as_u64().unwrap(), tests),
            )
        })
        .collect()
}

async fn test_categories(server: &Server, id: &str) -> HashMap<String, Option<String>> {
    server.per_test(id, "/category").await
}

#[tokio::test]
async fn demo_failures_land_in_the_predicted_categories() {
    let server = Server::start().await;
    let id = server
        .run_now("service=demo&stand=localhost&packs=basic,api")
        .await;
    let st = server.wait_finished(&id, RUN).await;
    let cats = categories(&st);
    assert_eq!(
        cats["Infrastructure problems"],
        (1, vec!["talks to the billing backend".to_string()]),
        "{st:#}"
    );
    assert_eq!(
        cats["Timeouts"],
        (1, vec!["submits the order form".to_string()]),
        "the flaky test, by its failing attempt"
    );
    assert_eq!(
        cats["Product defects"],
        (1, vec!["cart > applies the discount".to_string()])
    );
    assert!(!cats.contains_key("Unclassified"), "{st:#}");
    let message = st["categories"][0]["tests"][0]["message"].as_str().unwrap();
    assert!(message.contains("ECONNREFUSED"), "{message}");

    let per_test = test_categories(&server, &id).await;
    assert_eq!(
        per_test["talks to the billing backend"].as_deref(),
        Some("Infrastructure problems")
    );
    assert_eq!(per_test["submits the order form"].as_deref(), Some("Timeouts"));
    assert_eq!(per_test["adds numbers"], None, "passed tests have no category");
}

/// pytest keeps each test's output in the JUnit `system-out`: `logRegex` searches it.
#[tokio::test]
async fn pytest_output_is_searched_by_log_rules() {
    let server = Server::start().await;
    let id = server.run_now("service=demo-py&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    let cats = categories(&st);
    assert_eq!(
        cats["Server errors (5xx)"].1,
        vec!["tests/test_accounts.py::TestProfile::test_changes_avatar".to_string()],
        "{st:#}"
    );
    assert_eq!(
        cats["Product defects"].1,
        vec!["tests/test_core.py::test_applies_coupon".to_string()]
    );
    assert_eq!(
        cats["Timeouts"].1,
        vec!["tests/test_core.py::test_flaky_payment_gateway".to_string()]
    );
}

const NO_RULES: &str = r#"
description: A failing service without category rules
stands: {pattern: localhost}
launch: {command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]}
retries: 0
packs: {basic: {tests: ["{dir}/../demo/basic.test.mjs"]}}
"#;

#[tokio::test]
async fn without_rules_failures_are_unclassified() {
    let config = support::config_with(&[("plain.yaml", NO_RULES)]);
    std::fs::create_dir(config.path().join("plain")).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=plain&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    let cats = categories(&st);
    assert_eq!(cats.len(), 1, "{st:#}");
    assert_eq!(cats["Unclassified"].0, 2);
}

/// A service whose every failure lands in one category, named `category`.
fn recat(category: &str, webhook: &str) -> String {
    format!(
        r#"
description: A failing service whose rules get renamed
stands: {{pattern: localhost}}
launch: {{command: [node, --test, --test-reporter=junit, "--test-reporter-destination={{junit}}", "{{tests}}"]}}
retries: 0
packs: {{basic: {{tests: ["{{dir}}/../demo/basic.test.mjs"]}}}}
categories: [{{name: "{category}", matchedStatuses: [failed, broken]}}]
report: {{emails: [], webhooks: ["{webhook}"]}}
"#
    )
}

/// The rules change and the server restarts (issue 15, item 4): the finished run keeps the
/// categories it finished with in `/api/status`, `/api/v1/runs/{id}/tests`, the run page and
/// its webhook report alike; a new run gets the new rules.
#[tokio::test]
async fn a_finished_run_keeps_its_categories_on_every_surface_when_the_rules_change() {
    let hook = report_support::FakeHttp::start(200).await;
    let url = format!("{}/hooks/recat", hook.url);
    let config = support::config_with(&[("recat.yaml", &recat("Old rules", &url))]);
    std::fs::create_dir(config.path().join("recat")).unwrap();
    let mut server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=recat&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(categories(&st)["Old rules"].0, 2, "{st:#}");
    let webhook = hook.requests_to("/hooks/recat");
    assert_eq!(webhook.len(), 1);
    let sent = webhook[0].body.to_string();
    assert!(sent.contains("Old rules"), "{sent}");

    std::fs::write(config.path().join("recat.yaml"), recat("New rules", &url)).unwrap();
    server.terminate().await;
    server.start_again().await;

    let st = server.status(&id).await;
    let cats = categories(&st);
    assert_eq!(cats.keys().collect::<Vec<_>>(), ["Old rules"], "{st:#}");
    let per_test = test_categories(&server, &id).await;
    let failing: Vec<_> = per_test.values().flatten().collect();
    assert_eq!(failing.len(), 2, "{per_test:?}");
    assert!(failing.iter().all(|c| *c == "Old rules"), "{per_test:?}");
    let (code, page) = server.get_text(&format!("/runs/{id}")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("Old rules") && !page.contains("New rules"),
        "{page}"
    );

    let again = server.run_now("service=recat&stand=localhost").await;
    let st = server.wait_finished(&again, RUN).await;
    assert_eq!(categories(&st)["New rules"].0, 2, "{st:#}");
    let per_test = test_categories(&server, &again).await;
    assert!(
        per_test.values().flatten().all(|c| c == "New rules"),
        "{per_test:?}"
    );
}

/// `tomato grep` on a log file, as the CLI prints it with `--json`.
#[test]
fn the_grep_command_counts_lines_per_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"name": "refused", "logRegex": "ECONNREFUSED"}, {"name": "5xx", "logRegex": "HTTP/1\\.1\" 5[0-9]{2}"},
            {"name": "no log rule", "messageRegex": ".*"}]"#,
    )
    .unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(
        &log,
        "ok\nconnect ECONNREFUSED 127.0.0.1:1\n\"GET / HTTP/1.1\" 503 12\nECONNREFUSED again\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .args(["grep", "--json", "--rules"])
        .arg(&rules)
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: HashMap<&str, u64> = v["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["lines"].as_u64().unwrap()))
        .collect();
    assert_eq!(lines["refused"], 2);
    assert_eq!(lines["5xx"], 1);
    assert_eq!(v["bytes"], std::fs::metadata(&log).unwrap().len());
    assert!(v["seconds"].is_number());

    std::fs::write(&rules, r#"[{"name": "broken", "logRegex": "(unclosed"}]"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .args(["grep", "--rules"])
        .arg(&rules)
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken") && err.contains("logRegex"), "{err}");
}

/// A pytest service whose failures print different values on every run: a random total, a
/// UUID, the time, an address and a port.
const SIG: &str = r#"
description: Failures that print volatile values
stands: {pattern: localhost}
launch:
  command: [python3, -m, pytest, -p, no:cacheprovider, "--rootdir={dir}", -c, "{dir}/pytest.ini", "--junitxml={junit}", -o, junit_family=xunit1, "{tests}"]
  env: {PYTHONDONTWRITEBYTECODE: "1"}
retries: 0
packs: {all: {tests: ["{dir}/tests/test_sig.py"]}}
"#;

const SIG_TESTS: &str = r#"
import datetime, random, uuid

def test_order_total():
    total = random.randint(100, 100000)
    assert total == 42, f"order {uuid.uuid4()} at {datetime.datetime.now().isoformat()} took {random.random():.3f}s"

def test_profile_loads():
    raise ConnectionError(
        f"HTTPConnectionPool(host='10.0.0.{random.randint(1, 254)}', port={random.randint(1024, 65000)}): "
        f"Max retries exceeded with url: /api/v1/users/{random.randint(1, 10**6)}"
    )

def test_passes():
    pass
"#;

/// Issue 17, item 1: each failed test of a run carries its failure signature, and two runs
/// failing the same way — other numbers, ids, times, hosts — get the same ones.
#[tokio::test]
async fn two_runs_failing_the_same_way_share_their_failure_signatures() {
    let config = support::config_with(&[("sig.yaml", SIG)]);
    let dir = config.path().join("sig");
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("pytest.ini"), "[pytest]\njunit_family = xunit1\n").unwrap();
    std::fs::write(dir.join("tests/test_sig.py"), SIG_TESTS).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;

    let first = server.run_now("service=sig&stand=localhost").await;
    let st = server.wait_finished(&first, RUN).await;
    assert_eq!(st["summary"]["failed"].as_u64(), Some(2), "{st:#}");
    let second = server.run_now("service=sig&stand=localhost").await;
    server.wait_finished(&second, RUN).await;

    let (a, b) = (
        server.per_test(&first, "/signature").await,
        server.per_test(&second, "/signature").await,
    );
    let total = "tests.test_sig::test_order_total";
    let profile = "tests.test_sig::test_profile_loads";
    let sig = |m: &HashMap<String, Option<String>>, t: &str| {
        m.get(t)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("{t} has no signature: {m:?}"))
    };
    for s in [sig(&a, total), sig(&a, profile)] {
        assert!(s.len() == 16 && s.bytes().all(|c| c.is_ascii_hexdigit()), "{s}");
    }
    let (ma, mb) = (
        server.per_test(&first, "/message").await,
        server.per_test(&second, "/message").await,
    );
    for t in [total, profile] {
        let (ta, tb) = (
            ma[t].clone().unwrap_or_default(),
            mb[t].clone().unwrap_or_default(),
        );
        assert_eq!(
            sig(&a, t),
            sig(&b, t),
            "the same failure, other values:\n{ta}\n  -> {:?}\n{tb}\n  -> {:?}",
            tomato::results::signature::normalise(&ta, ""),
            tomato::results::signature::normalise(&tb, ""),
        );
    }
    assert_ne!(sig(&a, total), sig(&a, profile), "two failures, two signatures");
    assert_eq!(a["tests.test_sig::test_passes"], None, "a passed test has none");

    let (code, page) = server.get_text(&format!("/runs/{first}")).await;
    assert_eq!(code, 200);
    assert!(page.contains(&format!("sig {}", &sig(&a, total)[..8])), "{page}");
}
