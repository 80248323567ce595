//! Stand outages end to end (issue 17, item 7) in standalone mode: a real Node suite whose
//! tests fail with connection errors while their stand is "down". The run ends `Error` at
//! once (no reruns) naming the stand, the infrastructure category and the counts; later runs on
//! the stand stay queued with that reason; the stand's probe brings it back when it answers
//! as expected, or a person resumes it through the API.
//!
//! The stand is a small in-process HTTP server of this test: its `/health` answers 503 or 200
//! as the test says, which is what `stands.probe` asks. (It stands in for a stand's own health
//! endpoint; the tests' failures are real Node test failures.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

const RUN: Duration = Duration::from_secs(90);

/// One test per entry of state.json; each fails with a connection error while `down` is true,
/// except `checkout`, which fails with a product defect while `defect` is true.
const TESTS: &str = r#"
import { test } from 'node:test';
import assert from 'node:assert';
import { readFileSync } from 'node:fs';

const state = JSON.parse(readFileSync(new URL('./state.json', import.meta.url), 'utf8'));
for (const name of ['login', 'cart', 'search', 'profile']) {
  test(name, () => {
    if (state.down) throw new Error(`connect ECONNREFUSED ${process.env.STAND}: ${name} backend`);
  });
}
test('checkout', () => {
  if (state.defect) assert.fail('expected total 85 but was 90');
});
"#;

fn service(stand_port: u16) -> String {
    format!(
        r#"
description: A service whose stand goes down
stands:
  pattern: '127\.0\.0\.1:[0-9]+'
  probe: {{url: "http://{{stand}}/health", status: 200, every: 1s}}
launch:
  command: [node, --test, --test-reporter=junit, "--test-reporter-destination={{junit}}", "{{tests}}"]
  env: {{STAND: "127.0.0.1:{stand_port}"}}
retries: 2
outage: {{share: 0.8, min: 3}}
packs: {{basic: {{tests: ["{{dir}}/down.test.mjs"]}}}}
categories:
  - name: Stand down
    matchedStatuses: [failed, broken]
    messageRegex: '.*ECONNREFUSED.*'
    infrastructure: true
  - name: Product defects
    matchedStatuses: [failed]
    messageRegex: '.*expected .* but was .*'
"#
    )
}

/// The stand's health endpoint: answers the status held in `code`.
async fn stand(code: Arc<AtomicU16>) -> u16 {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let code = code.clone();
            async move { axum::http::StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn set_state(dir: &std::path::Path, state: Value) {
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
}

async fn run_get(server: &Server, id: &str) -> Value {
    let (code, run) = server.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(code, 200, "{run:#}");
    run
}

/// Waits `for_at_least` and checks the run is still queued, waiting for `stand`.
async fn stays_held(server: &Server, id: &str, stand: &str, for_at_least: Duration) {
    let until = Instant::now() + for_at_least;
    while Instant::now() < until {
        let run = run_get(server, id).await;
        assert_eq!(run["status"]["phase"], "Queued", "{run:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = run_get(server, id).await;
    let message = run["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "held: stand {stand} looks down: Stand down, 4 of 4 failures"
        )),
        "{run:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_found_down_holds_its_runs_until_the_probe_answers_or_a_person_resumes_it() {
    let health = Arc::new(AtomicU16::new(503));
    let port = stand(health.clone()).await;
    let stand = format!("127.0.0.1:{port}");
    let text = service(port);
    let config = support::config_with(&[("down.yaml", text.as_str())]);
    let dir = config.path().join("down");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("down.test.mjs"), TESTS).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let query = format!("service=down&stand={stand}");

    // A product defect alone is no outage: the run reruns and fails as usual.
    set_state(&dir, json!({"down": false, "defect": true}));
    let plain = server.run_now(&query).await;
    let st = server.wait_finished(&plain, RUN).await;
    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(
        run_get(&server, &plain).await["status"]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The stand goes down: four connection errors of five failures (80 %).
    set_state(&dir, json!({"down": true, "defect": true}));
    let first = server.run_now(&query).await;
    let st = server.wait_finished(&first, RUN).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let run = run_get(&server, &first).await;
    let message = format!("stand {stand} looks down: Stand down, 4 of 5 failures");
    assert_eq!(run["status"]["message"], message.as_str(), "{run:#}");
    assert_eq!(
        run["status"]["attempts"].as_array().unwrap().len(),
        1,
        "no reruns: {run:#}"
    );
    assert_eq!(run["status"]["standDown"]["stand"], stand.as_str(), "{run:#}");
    assert!(run["status"]["standDown"]["resolvedAt"].is_null(), "{run:#}");
    let (_, page) = server.get_text(&format!("/runs/{first}")).await;
    assert!(page.contains(r#"data-action="stand-resume""#), "{page}");

    // The next run on the stand waits; the API lists the hold.
    set_state(&dir, json!({"down": true, "defect": false}));
    let held = server.run_now(&query).await;
    let (_, holds) = server.get("/api/v1/stands").await;
    assert_eq!(holds["items"][0]["stand"], stand.as_str(), "{holds:#}");
    assert_eq!(holds["items"][0]["runs"], json!([first]), "{holds:#}");
    assert_eq!(holds["items"][0]["services"], json!(["down"]), "{holds:#}");
    let expected = format!("held: stand {stand} looks down: Stand down, 4 of 5 failures");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let run = run_get(&server, &held).await;
        assert_eq!(run["status"]["phase"], "Queued", "the probe answers 503: {run:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = run_get(&server, &held).await;
    assert!(
        run["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&expected),
        "{run:#}"
    );

    // The stand is back: its probe answers 200, the hold resolves, the waiting run runs.
    set_state(&dir, json!({"down": false, "defect": false}));
    health.store(200, Ordering::SeqCst);
    let st = server.wait_finished(&held, RUN).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}");
    let run = run_get(&server, &first).await;
    assert_eq!(run["status"]["standDown"]["resolvedBy"], "probe", "{run:#}");
    let (_, holds) = server.get("/api/v1/stands").await;
    assert_eq!(holds["items"], json!([]), "{holds:#}");
    let (_, page) = server.get_text(&format!("/runs/{first}")).await;
    assert!(page.contains("back: probe on"), "{page}");

    // Down again, the probe silent: a person resumes the stand.
    health.store(503, Ordering::SeqCst);
    set_state(&dir, json!({"down": true, "defect": false}));
    let second = server.run_now(&query).await;
    let st = server.wait_finished(&second, RUN).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let waiting = server.run_now(&query).await;
    stays_held(&server, &waiting, &stand, Duration::from_secs(2)).await;
    set_state(&dir, json!({"down": false, "defect": false}));
    let (code, resumed) = server
        .post(&format!("/api/v1/stands/{}/resume", stand.replace(':', "%3A")))
        .await;
    assert_eq!(code, 200, "{resumed:#}");
    assert_eq!(resumed, json!({"stand": stand, "resolved": 1}));
    let st = server.wait_finished(&waiting, RUN).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}");
    let run = run_get(&server, &second).await;
    assert_eq!(
        run["status"]["standDown"]["resolvedBy"], "resumed through the API",
        "{run:#}"
    );
    let (code, err) = server
        .post(&format!("/api/v1/stands/{}/resume", stand.replace(':', "%3A")))
        .await;
    assert_eq!((code, err["parameter"].as_str()), (404, Some("stand")), "{err:#}");
}
