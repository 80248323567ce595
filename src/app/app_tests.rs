//! The API in process: [`super::app`] over a real SQLite store and the shipped packs_config,
//! called with `oneshot` (no socket, no driver: runs stay queued).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::app;
use crate::api::{AppState, Auth};

pub(super) struct Api {
    pub(super) state: AppState,
    /// The same store, to play the driver's part (write a run's status).
    pub(super) store: crate::store::SqliteStore,
    _dir: tempfile::TempDir,
}

impl Api {
    pub(super) fn new() -> Api {
        Api::with_tms(false)
    }

    fn with_tms(tms_configured: bool) -> Api {
        Api::with(tms_configured, Auth::open())
    }

    /// With test management configured (so regressions are accepted) and `auth`.
    pub(super) fn with_auth(auth: Auth) -> Api {
        Api::with(true, auth)
    }

    fn with(tms_configured: bool, auth: Auth) -> Api {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::SqliteStore::open(dir.path()).expect("the store opens");
        let config = crate::packs::PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .expect("the shipped packs_config loads");
        let state = AppState {
            backend: Arc::new(store.clone()),
            config: Arc::new(config),
            auth,
            public_url: "http://tomato.test".into(),
            tms_configured,
            tracker_configured: false,
        };
        Api {
            state,
            store,
            _dir: dir,
        }
    }

    pub(super) async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, text) = self.call_text(method, uri, body).await;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn call_text(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("a request");
        let res = app(self.state.clone()).oneshot(req).await.expect("an answer");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("the body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub(super) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    pub(super) async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    /// Queues a run of demo on localhost; its name.
    pub(super) async fn queue_demo_run(&self) -> String {
        let run = self
            .queue_run(json!({"service": "demo", "stand": "localhost"}))
            .await;
        run["metadata"]["name"].as_str().unwrap().to_string()
    }

    pub(super) async fn queue_run(&self, spec: Value) -> Value {
        let (status, run) = self.post("/api/v1/runs", json!({ "spec": spec })).await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run
    }
}

/// The parameters an error's `errors` names, in order.
pub(super) fn named_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors listed: {body}"))
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect()
}

fn is_camel_case(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase()) && key.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Every object key under `value` that is not camelCase, with its path. Keys that are data
/// (label and annotation names, preset names) are not the API's spelling and are skipped.
fn non_camel_keys(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if !is_camel_case(k) {
                    out.push(here.clone());
                }
                if !matches!(k.as_str(), "labels" | "annotations" | "presets") {
                    non_camel_keys(v, &here, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                non_camel_keys(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_key_of_every_api_v1_answer_is_camel_case() {
    let api = Api::new();
    let run = api
        .queue_run(json!({"service": "demo", "stand": "localhost", "category": "smoke", "issueKey": "QA-1"}))
        .await;
    let id = run["metadata"]["name"].as_str().unwrap().to_string();
    let schedule = json!({"metadata": {"name": "demo-nightly"},
        "spec": {"service": "demo", "stand": "localhost", "schedule": "0 2 * * *"}});
    let (status, created) = api.post("/api/v1/schedules", schedule).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, triggered) = api
        .call(Method::POST, "/api/v1/schedules/demo-nightly/trigger", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{triggered}");
    assert!(
        triggered["runId"].is_string() && triggered["run"]["spec"].is_object(),
        "{triggered}"
    );
    let (_, invalid) = api
        .post(
            "/api/v1/runs",
            json!({"spec": {"service": "demo", "stand": "prod", "emails": ["x"]}}),
        )
        .await;

    let mut answers = vec![
        ("POST /api/v1/runs".to_string(), run),
        ("trigger".into(), triggered),
    ];
    answers.push(("POST /api/v1/schedules".into(), created));
    answers.push(("a refused POST".into(), invalid));
    for uri in [
        "/api/v1".to_string(),
        "/api/v1/runs".into(),
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/tests"),
        format!("/api/v1/runs/{id}/attempts/1/log"),
        "/api/v1/services".into(),
        "/api/v1/services/demo".into(),
        "/api/v1/services/demo/queue".into(),
        "/api/v1/schedules".into(),
        "/api/v1/schedules/demo-nightly".into(),
        "/api/v1/regressions".into(),
    ] {
        let (_, body) = api.get(&uri).await;
        answers.push((uri, body));
    }
    let (_, patched) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/runs/{id}"),
            Some(json!({"spec": {"priority": 1}})),
        )
        .await;
    answers.push(("PATCH".into(), patched));
    // A test's view, as `/runs/{id}/tests` lists each (this run has no results yet).
    let test = crate::api::TestView {
        id: "t".into(),
        name: "t".into(),
        classname: "c".into(),
        suite: "s".into(),
        file: Some("f.py".into()),
        verdict: crate::results::TestVerdict::Flaky,
        category: Some("Timeouts".into()),
        signature: Some(crate::results::Signature::of("Timeout 5000ms exceeded", "")),
        attempts: vec![],
        explained_by: 1,
        message: String::new(),
        trace: String::new(),
        duration_ms: Some(5),
        allure: None,
        novelty: Some(serde_json::json!({"kind": "known", "sinceRun": "demo-1", "times": 2})),
        muted: None,
    };
    answers.push(("a test".into(), serde_json::to_value(&test).unwrap()));

    let queue = &answers.iter().find(|(u, _)| u.ends_with("/queue")).unwrap().1;
    assert!(queue["queued"][0]["runId"].is_string(), "{queue}");
    let mut bad = Vec::new();
    for (what, body) in &answers {
        non_camel_keys(body, what, &mut bad);
    }
    assert_eq!(bad, Vec::<String>::new(), "keys not in camelCase");
    let service = &answers
        .iter()
        .find(|(u, _)| u.ends_with("/services/demo"))
        .unwrap()
        .1;
    assert!(service["standPattern"].is_string(), "{service}");
    let test = &answers.last().unwrap().1;
    assert_eq!(
        (&test["explainedBy"], &test["durationMs"]),
        (&json!(1), &json!(5))
    );
}

#[tokio::test]
async fn a_sharded_attempts_shards_are_in_the_api_in_camel_case_and_on_the_run_page() {
    use crate::crd::{Attempt, AttemptState, Selection, ShardState, ShardStatus, TestRun};
    let api = Api::new();
    let run = api
        .queue_run(json!({"service": "demo-py", "stand": "localhost", "shards": 2}))
        .await;
    assert_eq!(run["spec"]["shards"], 2, "{run}");
    let id = run["metadata"]["name"].as_str().unwrap().to_string();
    let shard = |index: u32, state: ShardState, passed: u32, broken: u32| ShardStatus {
        index,
        state,
        tests: 3,
        unit: Some("tests".into()),
        expected_seconds: Some(12),
        passed,
        failed: 0,
        skipped: 0,
        broken,
        launch: Some(format!("pid {}", 100 + index)),
        exit_code: (state == ShardState::Crashed).then_some(3),
        started_at: None,
        finished_at: None,
        message: (state == ShardState::Crashed)
            .then(|| "shard 1 crashed (exit code 3); 3 of its tests not reported".into()),
    };
    api.store
        .update::<TestRun, _>(&id, move |r| {
            let st = r.status.get_or_insert_default();
            st.admit(chrono::Utc::now());
            st.attempts.push(Attempt {
                number: 1,
                selection: Selection::all(vec!["core".into()]),
                state: AttemptState::Running,
                launch: Some("2 shards: pid 100, pid 101".into()),
                started_at: Some(chrono::Utc::now()),
                finished_at: None,
                exit_code: None,
                summary: None,
                message: None,
                shards: vec![
                    shard(0, ShardState::Running, 0, 0),
                    shard(1, ShardState::Crashed, 0, 3),
                ],
                aqua: Vec::new(),
                mixed: false,
            });
            Ok((true, ()))
        })
        .await
        .unwrap();

    let (status, body) = api.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let shards = &body["status"]["attempts"][0]["shards"];
    assert_eq!(shards[1]["state"], "Crashed", "{body}");
    assert_eq!(
        (&shards[1]["broken"], &shards[1]["exitCode"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(shards[0]["expectedSeconds"], 12);
    let mut bad = Vec::new();
    non_camel_keys(&body, "run", &mut bad);
    assert_eq!(bad, Vec::<String>::new());

    let (status, html) = api.call_text(Method::GET, &format!("/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"data-shard="1""#), "{html}");
    assert!(html.contains("shard-crashed"), "{html}");
    assert!(html.contains("3 tests: 0 passed, 0 failed, 3 broken"), "{html}");
    assert!(html.contains("3 of its tests not reported"), "{html}");
}

#[tokio::test]
async fn the_legacy_handles_keep_their_snake_case_shape() {
    let api = Api::new();
    let (status, queued) = api
        .call(Method::POST, "/api/run_now?service=demo&stand=localhost", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{queued}");
    let id = queued["run_id"].as_str().expect("run_id").to_string();
    let (_, text) = api.call_text(Method::GET, "/api/runned?project=demo", None).await;
    assert!(
        text.starts_with(r#"{"service":"demo","running":[],"queued":[{"run_id":"#),
        "{text}"
    );
    assert!(text.ends_with(r#""running_count":0,"queued_count":1}"#), "{text}");
    let (_, status) = api.get(&format!("/api/status?run_id={id}")).await;
    assert_eq!(status["run_id"], id);
    assert!(status.get("queue_position").is_some(), "{status}");
}

#[tokio::test]
async fn get_api_v1_answers_an_index_linking_the_openapi_document() {
    let api = Api::new();
    for uri in ["/api/v1", "/api/v1/"] {
        let (status, index) = api.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {index}");
        assert_eq!(index["openapi"], "/api/v1/openapi.json");
        assert_eq!(index["links"]["runs"], "/api/v1/runs");
    }
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/api/v1"]["get"].is_object(),
        "the index is in the document"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_each_tests_failure_signature() {
    let (status, doc) = Api::new().get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let signature = &doc["components"]["schemas"]["TestView"]["properties"]["signature"];
    assert_eq!(signature["pattern"], "^[0-9a-f]{16}$", "{signature}");
    assert!(
        signature["description"]
            .as_str()
            .is_some_and(|d| d.contains("signature")),
        "{signature}"
    );
}

#[tokio::test]
async fn writes_answer_the_run_as_it_is_after_the_change() {
    let api = Api::new();
    let spec = json!({"service": "demo", "stand": "localhost"});
    let mut ids = Vec::new();
    for expected in 1..=3 {
        let run = api.queue_run(spec.clone()).await;
        assert_eq!(run["status"]["queuePosition"], expected, "{run}");
        ids.push(run["metadata"]["name"].as_str().unwrap().to_string());
    }
    let (status, run) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/runs/{}", ids[2]),
            Some(json!({"spec": {"priority": 0}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["spec"]["priority"], 0);
    assert_eq!(
        run["status"]["queuePosition"], 1,
        "the position after the change, not the 3 from before: {run}"
    );
    let (_, queue) = api.get("/api/v1/services/demo/queue").await;
    assert_eq!(queue["queued"][0]["runId"], ids[2].as_str());
}

#[tokio::test]
async fn validation_names_every_field_at_once_and_the_first_as_before() {
    let api = Api::new();
    let (status, body) = api
        .post(
            "/api/v1/runs",
            json!({"spec": {"service": "demo", "stand": "prod.example.com",
                "emails": ["qa-at-example.com"], "issueKey": "not a key", "category": "nope"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let named = named_fields(&body);
    assert_eq!(
        named,
        ["spec.stand", "spec.category", "spec.emails", "spec.issueKey"],
        "{body}"
    );
    assert_eq!(body["parameter"], "spec.stand");
    assert_eq!(body["error"], body["errors"][0]["error"]);
    let (_, list) = api.get("/api/v1/runs").await;
    assert_eq!(list["items"], json!([]), "nothing was queued");

    // Schedules too: a bad cron beside a bad stand.
    let (status, body) = api
        .post(
            "/api/v1/schedules",
            json!({"metadata": {"name": "n"}, "spec": {"service": "demo", "stand": "prod", "schedule": "every night"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let named = named_fields(&body);
    assert_eq!(named, ["spec.schedule", "spec.stand"], "{body}");
}

#[tokio::test]
async fn old_snake_case_spellings_of_request_fields_are_still_accepted() {
    let api = Api::new();
    let (status, run) = api
        .post(
            "/api/v1/runs",
            json!({"api_version": "tomato.dev/v1alpha1", "metadata": {"generate_name": "mine-"},
                "spec": {"service": "demo", "stand": "localhost"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert!(
        run["metadata"]["name"].as_str().unwrap().starts_with("mine-"),
        "{run}"
    );
}

#[tokio::test]
async fn without_test_management_a_regression_is_refused_and_the_pages_say_why() {
    let api = Api::new();
    let spec = json!({"metadata": {"name": "demo-2-0"},
        "spec": {"service": "demo", "version": "2.0", "plan": 1, "stand": "localhost", "assessors": ["alice"]}});
    let (status, body) = api.post("/api/v1/regressions", spec.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("TOMATO_TMS_URL"),
        "{body}"
    );
    let (_, list) = api.get("/api/v1/regressions").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
    for page in ["/regressions", "/regressions/new"] {
        let (_, html) = api.call_text(Method::GET, page, None).await;
        assert!(
            html.contains(r#"id="regressions-unavailable""#)
                && html.contains("test management is not configured"),
            "{page} says why"
        );
    }

    let configured = Api::with_tms(true);
    let (status, body) = configured.post("/api/v1/regressions", spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, html) = configured.call_text(Method::GET, "/regressions", None).await;
    assert!(!html.contains(r#"id="regressions-unavailable""#));
}

/// A request with a raw body (any bytes, any content type).
pub(super) async fn call_raw(
    api: &Api,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body.to_string()))
        .expect("a request");
    let res = app(api.state.clone()).oneshot(req).await.expect("an answer");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("the body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_json_array_is_no_patch_of_a_run_and_changes_nothing() {
    let api = Api::new();
    let run = api
        .queue_run(json!({"service": "demo", "stand": "localhost", "priority": 5}))
        .await;
    let id = run["metadata"]["name"].as_str().unwrap();
    let uri = format!("/api/v1/runs/{id}");
    // serde reads `RunPatch { spec: PatchSpec { priority, cancel } }` from `[[1, true]]` too.
    let (status, body) = call_raw(&api, Method::PATCH, &uri, "application/json", "[[1,true]]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["parameter"], "body", "{body}");
    let (_, after) = api.get(&uri).await;
    assert_eq!(after["spec"]["priority"], 5);
    assert_ne!(after["spec"]["cancel"], true);
    assert_eq!(after["status"]["phase"], "Queued");
}

#[tokio::test]
async fn every_post_refuses_a_body_that_is_not_an_object_naming_body() {
    let api = Api::new();
    for (uri, body) in [
        (
            "/api/v1/runs",
            r#"[null, null, {}, {"service": "demo", "stand": "localhost"}]"#,
        ),
        ("/api/v1/schedules", r#"["v", "NightlySchedule", {}, {}]"#),
        ("/api/v1/runs", r#""a string""#),
        ("/api/run_now", r#"[["service", "demo"], ["stand", "localhost"]]"#),
    ] {
        let (status, answer) = call_raw(&api, Method::POST, uri, "application/json", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {answer}");
        assert_eq!(answer["parameter"], "body", "{uri} {body}: {answer}");
    }
    // An old client's array without a content type is refused too, not read as a form.
    let (status, answer) = call_raw(&api, Method::POST, "/api/run_now", "", "[1]").await;
    assert_eq!(
        (status, &answer["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("body"))
    );
    let (_, runs) = api.get("/api/v1/runs").await;
    assert_eq!(runs["items"], json!([]), "nothing was queued");
}

#[tokio::test]
async fn control_characters_are_refused_wherever_they_would_reach_a_process_or_a_header() {
    let api = Api::new();
    let base = || json!({"service": "demo", "stand": "localhost"});
    let with = |k: &str, v: Value| {
        let mut s = base();
        s[k] = v;
        json!({ "spec": s })
    };
    for (spec, field) in [
        (
            with("env", json!([{"name": "MODE", "value": "a\u{0}b"}])),
            "spec.env",
        ),
        (
            with("env", json!([{"name": "MODE", "value": "line\nbreak"}])),
            "spec.env",
        ),
        (with("stand", json!("local\u{0}host")), "spec.stand"),
        (with("category", json!("smoke\u{1b}")), "spec.category"),
        (with("packs", json!(["basic\u{0}"])), "spec.packs"),
        (with("emails", json!(["qa\u{0}@example.com"])), "spec.emails"),
        (
            with("emails", json!(["qa\u{202E}moc.elpmaxe@example.com"])),
            "spec.emails",
        ),
        (with("emails", json!(["qa\u{2066}@example.com"])), "spec.emails"),
        (with("issueKey", json!("QA-1\u{0}")), "spec.issueKey"),
        (with("version", json!("1.0\u{7}")), "spec.version"),
    ] {
        let (status, body) = api.post("/api/v1/runs", spec.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert_eq!(body["parameter"], field, "{spec}: {body}");
    }
    // The legacy handle uses the same checks.
    for (query, parameter) in [
        (
            "service=demo&stand=localhost&emails=qa%E2%80%AE@example.com",
            "emails",
        ),
        ("service=demo&stand=localhost%00", "stand"),
        ("service=demo&stand=localhost&category=smo%0Ake", "category"),
        ("service=demo&stand=localhost&testpalm=1.0%00", "testpalm"),
    ] {
        let (status, body) = api.post(&format!("/api/run_now?{query}"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    let (_, runs) = api.get("/api/v1/runs").await;
    assert_eq!(runs["items"], json!([]), "nothing was queued");
}

#[tokio::test]
async fn a_bad_value_is_quoted_up_to_a_bounded_prefix() {
    let api = Api::new();
    // http's URIs end at 64 KiB; longer ones are the HTTP layer's (see `head_guard`).
    let long = "x".repeat(20_000);
    for uri in [
        format!("/api/runned?project={long}"),
        format!("/api/status?run_id={long}"),
        format!("/api/v1/runs?service={long}"),
        format!("/api/v1/runs/{long}"),
        format!("/api/v1/runs/r/attempts/{long}/log"),
    ] {
        let (status, body) = api.get(&uri).await;
        assert!(status.is_client_error(), "{status}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.len() < 400 && error.contains('…'),
            "{}: {status} {}",
            &uri[..40],
            &error[..error.len().min(400)]
        );
    }
    let (status, body) = api
        .post(
            "/api/v1/runs",
            json!({"spec": {"service": "demo", "stand": long}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().len() < 400, "{body}");
}

#[tokio::test]
async fn query_and_path_errors_name_their_parameter() {
    let api = Api::new();
    let id = &api.queue_demo_run().await;
    for (uri, parameter) in [
        (
            format!("/api/v1/runs/{id}/attempts/1/log?tail=9223372036854775808"),
            "tail",
        ),
        (format!("/api/v1/runs/{id}/attempts/1/log?tail=-1"), "tail"),
        (format!("/api/v1/runs/{id}/attempts/one/log"), "n"),
        (format!("/api/v1/runs/{id}/attempts/-1/junit"), "n"),
        ("/api/v1/runs?limit=0".to_string(), "limit"),
        ("/api/v1/runs?limit=1001".to_string(), "limit"),
        ("/api/v1/runs?limit=many".to_string(), "limit"),
        ("/api/v1/runs?phase=Sleeping".to_string(), "phase"),
        ("/api/v1/runs?continue=not-a-token".to_string(), "continue"),
        (format!("/api/v1/runs/{id}/tests?verdict=great"), "verdict"),
        ("/api/v1/schedules?service=".to_string(), "service"),
    ] {
        let (status, body) = api.get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }
    // What the document allows is accepted.
    for uri in [
        format!("/api/v1/runs/{id}/tests?verdict="),
        format!("/api/v1/runs/{id}/tests?verdict=failed,%20flaky"),
        "/api/v1/runs?limit=1&phase=queued,%20Running,".to_string(),
    ] {
        let (status, body) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
}

/// `/api/v1/runs` pages like the Kubernetes API: `limit` items and, when more follow, an opaque
/// `metadata.continue` that gives the next page; the pages cover every run once, newest first,
/// with the filters kept.
#[tokio::test]
async fn run_list_pages_with_continue_tokens() {
    let api = Api::new();
    let mut queued = Vec::new();
    for i in 0..7 {
        let stand = if i % 2 == 0 { "localhost" } else { "127.0.0.1" };
        let run = api.queue_run(json!({"service": "demo", "stand": stand})).await;
        queued.push(run["metadata"]["name"].as_str().unwrap().to_string());
    }
    queued.reverse();
    let mut seen: Vec<String> = Vec::new();
    let mut uri = "/api/v1/runs?service=demo&limit=3".to_string();
    let mut pages = 0;
    loop {
        let (status, body) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        pages += 1;
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 3, "{body}");
        seen.extend(
            items
                .iter()
                .map(|r| r["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match body["metadata"]["continue"].as_str() {
            Some(token) => uri = format!("/api/v1/runs?service=demo&limit=3&continue={token}"),
            None => break,
        }
    }
    assert_eq!(seen, queued, "every run once, newest first");
    assert_eq!(pages, 3);
    // The last page says nothing follows; a list that fits says so too.
    let (_, body) = api.get("/api/v1/runs?service=demo&limit=7").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 7);
    assert!(body["metadata"].get("continue").is_none(), "{body}");
}

/// The mutes and stands routes' error paths, in process: a body that is no object, an unknown
/// field, a missing spec, an unknown mute (get and delete), a service filter naming no
/// service, and resuming a stand nothing holds; nothing is stored on any of them.
#[tokio::test]
async fn mutes_and_stands_answer_their_error_paths_naming_the_parameter() {
    let api = Api::new();
    let (status, answer) = call_raw(&api, Method::POST, "/api/v1/mutes", "application/json", "[1]").await;
    assert_eq!(
        (status, &answer["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("body"))
    );
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    for (body, parameter) in [
        (json!({"metadata": {"name": "m"}}), "spec"),
        (
            json!({"spec": {"service": "demo", "test": "t", "reason": "r", "expires": expires, "why": 1}}),
            "spec.why",
        ),
        (
            json!({"spec": {"service": "demo", "test": "t", "reason": "r", "expires": expires, "liftWhenTicketClosed": "yes"}}),
            "spec.liftWhenTicketClosed",
        ),
        (
            json!({"metadata": {"name": "Bad Name"}, "spec": {"service": "demo", "test": "t", "reason": "r", "expires": expires}}),
            "metadata.name",
        ),
        (
            json!({"spec": {"service": "demo", "test": "t", "reason": "r", "expires": expires, "ticket": "QA-1", "liftWhenTicketClosed": true}}),
            "spec.liftWhenTicketClosed",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/mutes", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["parameter"], parameter, "{body}: {answer}");
    }
    let (_, list) = api.get("/api/v1/mutes").await;
    assert_eq!(list["items"], json!([]), "nothing stored");
    let (status, answer) = api.get("/api/v1/mutes?service=nope").await;
    assert_eq!(
        (status, &answer["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("service"))
    );
    // Any name a Mute made with kubectl can have is looked up (a DNS subdomain, beyond the 63
    // characters the API gives); what no resource can be named is not found either.
    let long = format!("/api/v1/mutes/{}.{}", "a".repeat(40), "b".repeat(40));
    for method in [Method::GET, Method::DELETE] {
        for uri in ["/api/v1/mutes/none", long.as_str()] {
            let (status, answer) = api.call(method.clone(), uri, None).await;
            assert_eq!(
                (status, &answer["parameter"]),
                (StatusCode::NOT_FOUND, &json!("name")),
                "{method} {uri}: {answer}"
            );
        }
        let (status, answer) = api.call(method.clone(), "/api/v1/mutes/a%2Fb", None).await;
        assert_eq!(
            (status, &answer["parameter"]),
            (StatusCode::NOT_FOUND, &json!("name")),
            "{method}: {answer}"
        );
    }

    let (status, held) = api.get("/api/v1/stands").await;
    assert_eq!((status, &held["items"]), (StatusCode::OK, &json!([])));
    let (status, answer) = api.call(Method::POST, "/api/v1/stands/qa1/resume", None).await;
    assert_eq!(
        (status, &answer["parameter"]),
        (StatusCode::NOT_FOUND, &json!("stand")),
        "{answer}"
    );
    assert_eq!(answer["error"], "no outage holds stand \"qa1\"");

    // A good mute is stored with its service label and listed by service.
    let (status, made) = api
        .post(
            "/api/v1/mutes",
            json!({"spec": {"service": "demo", "test": "t", "reason": "r", "expires": expires}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["metadata"]["labels"]["tomato.dev/service"], "demo");
    let (_, list) = api.get("/api/v1/mutes?service=demo").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}
