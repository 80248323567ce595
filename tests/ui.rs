//! The web UI in a real browser: the real `tomato` binary, Debian's chromium driven by
//! `playwright-core` (pinned in tests/ui/package.json; never a downloaded browser), scripts
//! in tests/ui/*.test.mjs run by Node's test runner. Screenshots of each page land in
//! tests/artifacts/ui/ for people to look at.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`) and `npm ci` in tests/ui; `.ci/run`
//! does both. Without them these tests fail, saying what is missing.

mod support;
mod tms_support;

use std::path::Path;
use std::time::Duration;

use support::{REPO, Server, config_with};

/// Runs one browser test script against `server`; fails with its output and the server log.
async fn browse(script: &str, server: &Server) {
    let ui = Path::new(REPO).join("tests/ui");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium: apt-get install -y chromium (.ci/run does it)"
    );
    assert!(
        ui.join("node_modules/playwright-core/package.json").exists(),
        "the browser tests need playwright-core: run `npm ci` in {} (.ci/run does it)",
        ui.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test-reporter=spec")
        .arg(ui.join(script))
        .current_dir(&ui)
        .env("TOMATO_URL", &server.url)
        .env("TOMATO_UI_ARTIFACTS", Path::new(REPO).join("tests/artifacts/ui"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in 5 minutes:\n{}", server.log()))
        .expect("node runs (Node.js 20 is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\n--- server log ---\n{}",
        out.status,
        server.log()
    );
    println!("{stdout}");
}

/// Allure results on the run page (issue 16): a real pytest + allure-pytest suite's steps,
/// parameters and failure screenshot, as a person sees them.
#[tokio::test]
async fn allure_steps_parameters_and_the_failure_screenshot_show_on_the_run_page() {
    let config = support::allure_shop_config();
    let server = Server::start_with(Some(config.path()), &[]).await;
    browse("allure.test.mjs", &server).await;
}

#[tokio::test]
async fn dashboard_run_form_live_run_page_and_history_work_in_a_browser() {
    let server = Server::start().await;
    browse("queue_and_runs.test.mjs", &server).await;
}

/// A service whose one test fails with a long message (an environment dump, as pytest writes).
const LONGFAIL_SERVICE: &str = r#"
description: fails with a long message
stands:
  pattern: 'localhost'
retries: 0
launch:
  command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]
packs:
  env:
    tests: ["{dir}/env.test.mjs"]
"#;

const LONGFAIL_SUITE: &str = r#"
import { test } from 'node:test';
test('reads the environment', () => {
  const dump = Array.from({ length: 40 }, (_, i) => `VARIABLE_NUMBER_${i}=/some/rather/long/path/value/${i}/that/goes/on`).join('\n');
  throw new Error('the environment is not what the test expects:\n' + dump);
});
test('passes', () => {});
"#;

/// A service that holds the `localhost` stand (one run at a time) for two minutes, so the demo
/// runs queued behind it stay queued however slowly the browser checks before them go.
const HOLD_SERVICE: &str = r#"
description: holds the stand
stands:
  pattern: 'localhost'
retries: 0
launch:
  command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]
packs:
  hold:
    tests: ["{dir}/hold.test.mjs"]
"#;

const HOLD_SUITE: &str = r#"
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
test('holds the stand', async () => { await sleep(120_000); });
"#;

/// Every page at desktop and phone sizes: no sideways scrolling, every action on screen,
/// long failures clamped, charts that fit and say their units; screenshots of each.
#[tokio::test]
async fn every_page_works_on_a_desktop_and_on_a_phone() {
    let config = config_with(&[("longfail.yaml", LONGFAIL_SERVICE), ("hold.yaml", HOLD_SERVICE)]);
    std::fs::create_dir(config.path().join("longfail")).unwrap();
    std::fs::write(config.path().join("longfail/env.test.mjs"), LONGFAIL_SUITE).unwrap();
    std::fs::create_dir(config.path().join("hold")).unwrap();
    std::fs::write(config.path().join("hold/hold.test.mjs"), HOLD_SUITE).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    browse("phone.test.mjs", &server).await;
}

/// A service whose test names and messages are full of markup, beside the shipped ones.
const MARKUP_SERVICE: &str = r#"
description: <i>Markup</i> in every field <script>window.__pwned = "description"</script>
stands:
  pattern: 'localhost'
retries: 1
launch:
  command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]
rerun:
  testId: node
  includePackTests: true
  args: ["--test-name-pattern=^{name:regex}$"]
packs:
  markup:
    description: <b>names</b> that are markup
    tests: ["{dir}/markup.test.mjs"]
"#;

const MARKUP_SUITE: &str = r#"
import { test } from 'node:test';
test('<script>window.__pwned = "name"</script><img src=x onerror="window.__pwned = 1">', () => {
  const e = new Error('<script>window.__pwned = "message"</script><b>bold</b>');
  throw e;
});
test('<b>plain</b> & "quoted"', () => {});
"#;

/// A "framework" that writes a JUnit file carrying an XHTML script, which a browser opening
/// the file would run if it were served as a page of Tomato's origin.
const RAWXML_SERVICE: &str = r#"
stands:
  pattern: 'localhost'
retries: 0
launch:
  command: [node, "{tests}", "{junit}"]
packs:
  raw:
    tests: ["{dir}/write-junit.mjs"]
"#;

const RAWXML_WRITER: &str = r#"
import { writeFileSync } from 'node:fs';
writeFileSync(process.argv[2], `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <h:script xmlns:h="http://www.w3.org/1999/xhtml">document.documentElement.setAttribute('data-pwned', location.origin)</h:script>
  <testsuite name="raw" tests="1"><testcase classname="raw" name="passes" time="0.001"/></testsuite>
</testsuites>
`);
"#;

#[tokio::test]
async fn markup_from_test_output_is_text_and_cross_site_writes_are_refused() {
    let config = config_with(&[("markup.yaml", MARKUP_SERVICE), ("rawxml.yaml", RAWXML_SERVICE)]);
    std::fs::create_dir(config.path().join("markup")).unwrap();
    std::fs::write(config.path().join("markup/markup.test.mjs"), MARKUP_SUITE).unwrap();
    std::fs::create_dir(config.path().join("rawxml")).unwrap();
    std::fs::write(config.path().join("rawxml/write-junit.mjs"), RAWXML_WRITER).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    browse("hygiene.test.mjs", &server).await;

    // The old tool's clients send no Origin: they still queue runs.
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke")
        .await;
    assert!(id.starts_with("demo-"), "{id}");
}

#[tokio::test]
async fn with_api_tokens_the_ui_asks_for_a_token_before_changing_anything() {
    let server = Server::start_with(None, &[("TOMATO_API_TOKENS", "ui-test-token")]).await;
    browse("token.test.mjs", &server).await;
}

#[tokio::test]
async fn with_roles_and_closed_reads_the_browser_signs_in_and_a_read_token_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.yaml");
    std::fs::write(
        &roles,
        "readsOpen: false\ntokens:\n  - {name: viewer, role: read, token: ui-viewer-token}\n  - {name: runner, role: run, token: ui-runner-token}\n",
    )
    .unwrap();
    let server = Server::start_with(None, &[("TOMATO_API_ROLES_FILE", roles.to_str().unwrap())]).await;
    browse("roles.test.mjs", &server).await;
}

#[tokio::test]
async fn schedules_are_created_suspended_triggered_edited_and_deleted_in_a_browser() {
    let server = Server::start().await;
    browse("schedules.test.mjs", &server).await;
}

/// The regressions pages against a real Kiwi TCMS (see tests/tms_support) and an in-process
/// stand-in for Jira: the regression is started with the browser's form, two cases are
/// marked here, the pages are checked in the browser, and deleting it there stops the Kiwi
/// test run.
#[tokio::test]
async fn regressions_are_started_show_their_progress_and_are_deleted_in_a_browser() {
    use serde_json::json;
    use tms_support::{ASSESSORS, FakeTracker, Kiwi, TOMATO_USER, regression_plan, rpc};
    let kiwi = Kiwi::start().await;
    regression_plan(&kiwi, "demo", "demo regression", 4).await;
    let jira = FakeTracker::jira().await;
    let mut env = kiwi.env();
    env.extend(jira.env());
    env.push(("TOMATO_TMS_POLL".into(), "300ms".into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(None, &refs).await;
    browse("regression_form.test.mjs", &server).await;
    let reg = wait_regression(&server, |st| st["phase"] == "InProgress").await;
    for (who, status) in [("alice", "PASSED"), ("bob", "FAILED")] {
        let first = reg["status"]["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["assessor"] == who)
            .unwrap()["executions"][0]
            .clone();
        let password = ASSESSORS.iter().find(|a| a.0 == who).unwrap().1;
        let c = kiwi.client((who, password));
        let s = rpc(&c, "TestExecutionStatus.filter", json!([{"name": status}])).await;
        rpc(&c, "TestExecution.update", json!([first, {"status": s[0]["id"]}])).await;
    }
    let reg = wait_regression(&server, |st| st["progress"]["idle"] == 2).await;
    browse("regressions.test.mjs", &server).await;
    let c = kiwi.client(TOMATO_USER);
    let run = rpc(
        &c,
        "TestRun.filter",
        json!([{"pk": reg["status"]["tms"]["runId"]}]),
    )
    .await;
    assert!(
        run[0]["stop_date"].is_string(),
        "deleting stopped the Kiwi run: {run:#}"
    );
}

async fn wait_regression(server: &Server, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, reg) = server.get("/api/v1/regressions/demo-2-0").await;
        if done(&reg["status"]) {
            return reg;
        }
        assert!(std::time::Instant::now() < deadline, "{reg:#}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
