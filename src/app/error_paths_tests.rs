//! The error answers of the legacy handles and of `/api/v1`, in process: each refusal the
//! binary tests (`tests/*_e2e.rs`) check over a socket, and those no test checked, with its
//! status, the parameter it names and its message, byte for byte. The binary tests stay: they
//! check the same through the real server; these fail fast and name the case.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::app_tests::{Api, call_raw, named_fields};

/// A request's body.
enum Body {
    None,
    Json(Value),
    /// Raw text with a content type (`""` for none).
    Raw(&'static str, String),
}

/// A request and the error it must be answered with: status, parameter (none for a conflict)
/// and the whole message.
struct Refusal {
    method: Method,
    uri: String,
    body: Body,
    status: StatusCode,
    parameter: Option<&'static str>,
    error: String,
}

/// An answer expected: status, parameter, message.
type Answer = (StatusCode, Option<&'static str>, String);

fn refusal(
    method: Method,
    uri: impl Into<String>,
    body: Body,
    (status, parameter, error): Answer,
) -> Refusal {
    Refusal {
        method,
        uri: uri.into(),
        body,
        status,
        parameter,
        error,
    }
}

fn get(uri: impl Into<String>, answer: Answer) -> Refusal {
    refusal(Method::GET, uri, Body::None, answer)
}

fn post(uri: impl Into<String>, body: Value, answer: Answer) -> Refusal {
    refusal(Method::POST, uri, Body::Json(body), answer)
}

fn bad(parameter: &'static str, error: impl Into<String>) -> Answer {
    (StatusCode::BAD_REQUEST, Some(parameter), error.into())
}

fn missing(parameter: &'static str, error: impl Into<String>) -> Answer {
    (StatusCode::NOT_FOUND, Some(parameter), error.into())
}

fn not_allowed() -> Answer {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Some("method"),
        "this endpoint does not take that method".into(),
    )
}

/// 401: the run's upload token is not sent.
fn no_token() -> Answer {
    (
        StatusCode::UNAUTHORIZED,
        Some("Authorization"),
        "send the run's upload token: Authorization: Bearer <token>".into(),
    )
}

fn conflict(error: impl Into<String>) -> Answer {
    (StatusCode::CONFLICT, None, error.into())
}

/// Sends every request and checks each answer; the failures are listed together, with what
/// was answered.
async fn assert_refused(api: &Api, cases: Vec<Refusal>) {
    let mut wrong = Vec::new();
    for case in cases {
        let (status, body) = match &case.body {
            Body::None => api.call(case.method.clone(), &case.uri, None).await,
            Body::Json(v) => api.call(case.method.clone(), &case.uri, Some(v.clone())).await,
            Body::Raw(content_type, text) => {
                call_raw(api, case.method.clone(), &case.uri, content_type, text).await
            }
        };
        let got = (status, body["parameter"].as_str(), body["error"].as_str());
        if got != (case.status, case.parameter, Some(case.error.as_str())) {
            wrong.push(format!(
                "{} {}: expected {} {:?} {:?}, got {} {:?} {:?}",
                case.method, case.uri, case.status, case.parameter, case.error, got.0, got.1, got.2
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The names of the runs stored.
async fn run_names(api: &Api) -> Vec<String> {
    let (_, list) = api.get("/api/v1/runs").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_legacy_handles_refuse_bad_input_naming_the_parameter_and_queue_nothing() {
    let api = Api::new();
    let run_now =
        |query: &str, answer| refusal(Method::POST, format!("/api/run_now?{query}"), Body::None, answer);
    let cases = vec![
        // As tests/standalone_e2e.rs sends them.
        run_now("stand=localhost", bad("service", "service is required")),
        run_now("service=demo", bad("stand", "stand is required")),
        run_now(
            "service=nope&stand=localhost",
            bad("service", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        run_now(
            "service=demo&stand=prod.example.com",
            bad(
                "stand",
                "\"prod.example.com\" is not a stand of demo (must match localhost(:[0-9]+)?|127\\.0\\.0\\.1(:[0-9]+)?)",
            ),
        ),
        run_now(
            "service=demo&stand=localhost;reboot",
            bad(
                "stand",
                "\"localhost;reboot\" is not a stand of demo (must match localhost(:[0-9]+)?|127\\.0\\.0\\.1(:[0-9]+)?)",
            ),
        ),
        run_now(
            "service=demo&stand=localhost&category=nightly",
            bad(
                "category",
                "unknown category \"nightly\" of demo; known: api, slow, smoke",
            ),
        ),
        run_now(
            "service=demo&stand=localhost&packs=basic,nope",
            bad("packs", "unknown pack \"nope\" of demo; known: api, basic, slow"),
        ),
        run_now(
            "service=demo&stand=localhost&priority=10",
            bad("priority", "must be an integer 0–9, got \"10\""),
        ),
        run_now(
            "service=demo&stand=localhost&priority=-1",
            bad("priority", "must be an integer 0–9, got \"-1\""),
        ),
        run_now(
            "service=demo&stand=localhost&priority=high",
            bad("priority", "must be an integer 0–9, got \"high\""),
        ),
        run_now(
            "service=demo&stand=localhost&emails=qa@example.com,not-an-email",
            bad(
                "emails",
                "\"not-an-email\" is not an email address (Missing domain or user)",
            ),
        ),
        run_now(
            "service=demo&stand=localhost&issueKey=not%20a%20key",
            bad("issueKey", "\"not a key\" is not a tracker key like QA-123"),
        ),
        refusal(
            Method::POST,
            "/api/nightly?service=nope",
            Body::None,
            bad("service", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        refusal(
            Method::POST,
            "/api/nightly",
            Body::None,
            bad("service", "service is required"),
        ),
        get(
            "/api/runned?project=nope",
            bad("project", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        get("/api/runned", bad("project", "project is required")),
        get("/api/status", bad("run_id", "run_id is required")),
        get(
            "/api/status?run_id=demo-doesnotexist",
            missing("run_id", "run \"demo-doesnotexist\" not found"),
        ),
        post(
            "/api/run_now",
            json!({"service": "demo", "stand": "localhost", "priority": 12}),
            bad("priority", "must be an integer 0–9, got \"12\""),
        ),
        // No test sent these.
        refusal(
            Method::POST,
            "/api/run_now",
            Body::Raw("application/json", "{\"service\": ".into()),
            bad(
                "body",
                "the JSON body is malformed: EOF while parsing a value at line 1 column 12",
            ),
        ),
        refusal(
            Method::POST,
            "/api/run_now",
            Body::Raw("application/json", "\"demo\"".into()),
            bad("body", "the JSON body must be an object of parameters"),
        ),
        get("/api/run_now?service=demo&stand=localhost", not_allowed()),
        get(
            "/api/status?run_id=%FF",
            missing("run_id", "run \"\u{FFFD}\" not found"),
        ),
        post("/api/status?run_id=x", json!({}), not_allowed()),
    ];
    assert_refused(&api, cases).await;
    assert_eq!(run_names(&api).await, Vec::<String>::new(), "nothing was queued");
}

#[tokio::test]
async fn creating_a_run_refuses_bad_metadata_specs_and_bodies_naming_the_field() {
    let api = Api::new();
    api.queue_demo_run().await;
    let before = run_names(&api).await;
    let spec = |extra: Value| {
        let mut s = json!({"service": "demo", "stand": "localhost"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let create = |body: Value, answer| post("/api/v1/runs", body, answer);
    let raw = |content_type, text: &str, answer| {
        refusal(
            Method::POST,
            "/api/v1/runs",
            Body::Raw(content_type, text.into()),
            answer,
        )
    };
    let cases = vec![
        // As tests/standalone_e2e.rs, retention_e2e.rs and shards_e2e.rs send them.
        create(
            json!({"metadata": {"labels": {"tomato.dev/schedule": "nightly"}}, "spec": spec(json!({}))}),
            bad(
                "metadata.labels.tomato.dev/schedule",
                "\"tomato.dev/schedule\" is set by Tomato itself",
            ),
        ),
        create(
            json!({"metadata": {"labels": {"team": "<qa>"}}, "spec": spec(json!({}))}),
            bad(
                "metadata.labels.team",
                "\"<qa>\" is not a label value (letters, digits, '-', '_', '.'; at most 63)",
            ),
        ),
        create(
            json!({"metadata": {"name": "Bad Name!"}, "spec": spec(json!({}))}),
            bad(
                "metadata.name",
                "\"Bad Name!\" is not a valid name (lowercase letters, digits, '-' and '.'; at most 63)",
            ),
        ),
        raw(
            "application/json",
            "{bad",
            bad(
                "body",
                "the body is not JSON: key must be a string at line 1 column 2",
            ),
        ),
        create(
            json!({"spec": {"service": "demo"}}),
            bad("spec.stand", "missing field `stand`"),
        ),
        create(
            json!({"spec": spec(json!({"prority": 1}))}),
            bad(
                "spec.prority",
                "unknown field \"prority\"; known: service, stand, category, packs, priority, emails, issueKey, version, retries, shards, env, timeout, type, cancel, retention",
            ),
        ),
        create(
            json!({"spec": spec(json!({"priority": "high"}))}),
            bad("spec.priority", "must be an integer 0–9"),
        ),
        create(
            json!({"spec": spec(json!({"timeout": "soon"}))}),
            bad(
                "spec.timeout",
                "invalid duration \"soon\": write it like 90s, 30m or 1h30m",
            ),
        ),
        create(
            json!({"spec": spec(json!({"type": "Weekly"}))}),
            bad("spec.type", "must be one of Regular, Nightly"),
        ),
        create(
            json!({"spec": spec(json!({"env": [{"name": "A"}]}))}),
            bad("spec.env", "A: give a value or valueFrom.secretKeyRef"),
        ),
        create(
            json!({"spec": spec(json!({"retention": {"maxAge": "0d"}}))}),
            bad(
                "spec.retention.maxAge",
                "invalid duration \"0d\": must be longer than zero",
            ),
        ),
        create(
            json!({"spec": spec(json!({"shards": 65}))}),
            bad("spec.shards", "must be an integer 1–64"),
        ),
        create(
            json!({"metadata": {"name": before[0]}, "spec": spec(json!({}))}),
            conflict(format!("TestRun \"{}\" already exists", before[0])),
        ),
        // No test sent these.
        create(
            json!({"spec": {"stand": "localhost"}}),
            bad("spec.service", "missing field `service`"),
        ),
        create(json!({}), bad("spec", "spec is required")),
        create(json!({"spec": "demo"}), bad("spec", "spec must be an object")),
        create(
            json!({"spec": spec(json!({"env": [{"value": "x"}]}))}),
            bad("spec.env[0].name", "missing field `name`"),
        ),
        create(
            json!({"spec": spec(json!({"retention": {"files": {"maxAge": 3}}}))}),
            bad(
                "spec.retention.files.maxAge",
                "invalid type: integer `3`, expected a string",
            ),
        ),
        // Any content type is read as JSON (old clients send none or text/plain).
        raw(
            "text/plain",
            "[1]",
            bad("body", "the body must be a JSON object, not an array"),
        ),
        raw("", "{}", bad("spec", "spec is required")),
        refusal(
            Method::POST,
            "/api/v1/runs",
            Body::Raw("application/json", " ".repeat((1 << 20) + 1)),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                "the request body is too large".into(),
            ),
        ),
        refusal(
            Method::POST,
            "/api/run_now",
            Body::Raw("application/json", " ".repeat((1 << 20) + 1)),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                "the request body is too large".into(),
            ),
        ),
        refusal(Method::PUT, "/api/v1/runs", Body::None, not_allowed()),
    ];
    assert_refused(&api, cases).await;
    assert_eq!(run_names(&api).await, before, "nothing was queued");
}

#[tokio::test]
async fn every_run_route_answers_an_unknown_run_with_404_naming_id() {
    let api = Api::new();
    let cases = vec![
        get("/api/v1/runs/nope", missing("id", "run \"nope\" not found")),
        refusal(
            Method::PATCH,
            "/api/v1/runs/nope",
            Body::Json(json!({"spec": {"priority": 1}})),
            missing("id", "run \"nope\" not found"),
        ),
        refusal(
            Method::DELETE,
            "/api/v1/runs/nope",
            Body::None,
            missing("id", "run \"nope\" not found"),
        ),
        get("/api/v1/runs/nope/tests", missing("id", "run \"nope\" not found")),
        get(
            "/api/v1/runs/nope/compare",
            missing("id", "run \"nope\" not found"),
        ),
        get(
            "/api/v1/runs/nope/attempts/1/log",
            missing("id", "run \"nope\" not found"),
        ),
        get(
            "/api/v1/runs/nope/attempts/1/junit",
            missing("id", "run \"nope\" not found"),
        ),
        get(
            "/api/v1/runs/nope/attempts/1/attachments/a.png",
            missing("id", "run \"nope\" not found"),
        ),
    ];
    assert_refused(&api, cases).await;
}

#[tokio::test]
async fn a_run_refuses_a_bad_patch_a_cancel_once_it_has_its_verdict_and_files_it_lacks() {
    let api = Api::new();
    let id = api.queue_demo_run().await;
    let runs = format!("/api/v1/runs/{id}");
    let patch = |body: Value, answer| refusal(Method::PATCH, runs.clone(), Body::Json(body), answer);
    let queued = vec![
        // As tests/standalone_e2e.rs sends it.
        patch(
            json!({"spec": {"priority": 0.5}}),
            bad("spec.priority", "must be 0–9, got 0.5"),
        ),
        // No test sent these.
        patch(
            json!({"spec": {"priority": 10}}),
            bad("spec.priority", "must be 0–9, got 10"),
        ),
        patch(
            json!({"spec": {"stand": "localhost"}}),
            bad(
                "spec",
                "only spec.priority and spec.cancel can change: unknown field `stand`, expected `priority` or `cancel`",
            ),
        ),
        get(
            format!("{runs}/attempts/1/log"),
            missing("n", format!("run {id} has 0 attempt(s); there is no attempt 1")),
        ),
        get(
            format!("{runs}/compare?slowerBy=0"),
            bad("slowerBy", "must be 1–10000 (percent), got 0"),
        ),
        get(
            format!("{runs}/compare?with=nope"),
            missing("with", "run \"nope\" not found"),
        ),
    ];
    assert_refused(&api, queued).await;

    api.store
        .update::<crate::crd::TestRun, _>(&id, |r| {
            let st = r.status.get_or_insert_default();
            st.phase = crate::crd::Phase::Failed;
            st.verdict = Some(crate::crd::Verdict::Failed);
            Ok((true, ()))
        })
        .await
        .unwrap();
    let ended = vec![
        // As tests/standalone_e2e.rs and history_e2e.rs send them.
        refusal(
            Method::DELETE,
            runs.clone(),
            Body::None,
            conflict(format!(
                "run {id} is Failed and already has its verdict; there is nothing to cancel"
            )),
        ),
        get(
            format!("{runs}/attempts/1/junit"),
            missing("n", format!("run {id} has 0 attempt(s); there is no attempt 1")),
        ),
        get(
            format!("{runs}/compare"),
            missing(
                "with",
                format!(
                    "run \"{id}\" has no previous comparable run (same service, stand, packs and category, ended with a verdict): name one with ?with="
                ),
            ),
        ),
        get(
            format!("{runs}/compare?slowerBy=0"),
            bad("slowerBy", "must be 1–10000 (percent), got 0"),
        ),
        // As tests/allure_e2e.rs sends them: names are never paths.
        get(
            format!("{runs}/attempts/1/attachments/..%2F..%2Fsecrets"),
            missing(
                "name",
                format!("attempt 1 of {id} keeps no attachment \"../../secrets\""),
            ),
        ),
        get(
            format!("{runs}/attempts/1/attachments/.allure.json"),
            missing(
                "name",
                format!("attempt 1 of {id} keeps no attachment \".allure.json\""),
            ),
        ),
    ];
    assert_refused(&api, ended).await;
}

#[tokio::test]
async fn service_routes_refuse_unknown_services_and_tests_and_out_of_range_queries() {
    let api = Api::new();
    let cases = vec![
        // As tests/history_e2e.rs sends them.
        get(
            "/api/v1/services/demo/tests/test%3A%3Anope",
            missing("id", "service \"demo\" has no results of test \"test::nope\""),
        ),
        get(
            "/api/v1/services/demo/tests/test%3A%3Acart?limit=0",
            bad("limit", "must be 1–500, got 0"),
        ),
        get(
            "/api/v1/services/demo/rules/suggestions?min=0",
            bad("min", "must be 1–1000, got 0"),
        ),
        get(
            "/api/v1/services/demo/rules/suggestions?min=1001",
            bad("min", "must be 1–1000, got 1001"),
        ),
        get(
            "/api/v1/services/demo/rules/suggestions?days=91",
            bad("days", "must be 1–90, got 91"),
        ),
        get(
            "/api/v1/services/nope/rules/suggestions",
            missing("name", "unknown service \"nope\""),
        ),
        // No test sent these.
        get(
            "/api/v1/services/nope",
            missing("name", "unknown service \"nope\""),
        ),
        get(
            "/api/v1/services/nope/queue",
            missing("name", "unknown service \"nope\""),
        ),
        get(
            "/api/v1/services/nope/tests/t",
            missing("name", "unknown service \"nope\""),
        ),
        get("/api/v1/nope", missing("path", "no such endpoint")),
    ];
    assert_refused(&api, cases).await;
}

#[tokio::test]
async fn schedules_refuse_bad_specs_patches_filters_and_unknown_names() {
    let api = Api::new();
    let schedule = |extra: Value| {
        let mut body = json!({"metadata": {"name": "bad"}, "spec": {"service": "demo", "stand": "localhost",
            "category": "smoke", "schedule": "0 2 * * *", "timeZone": "Europe/Moscow"}});
        for (k, v) in extra.as_object().unwrap() {
            body["spec"][k] = v.clone();
        }
        body
    };
    let create = |extra: Value, answer| post("/api/v1/schedules", schedule(extra), answer);
    let (status, made) = api.post("/api/v1/schedules", schedule(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let cases = vec![
        // As tests/schedules_e2e.rs sends them.
        create(
            json!({"schedule": "every night"}),
            bad(
                "spec.schedule",
                "\"every night\" is not a cron expression: give 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
            ),
        ),
        create(
            json!({"schedule": "0 25 * * *"}),
            bad(
                "spec.schedule",
                "\"0 25 * * *\" is not a valid cron expression: Component error: Number out of bounds.",
            ),
        ),
        create(
            json!({"timeZone": "Moon/Base"}),
            bad(
                "spec.timeZone",
                "\"Moon/Base\" is not an IANA time zone (such as UTC or Europe/Moscow)",
            ),
        ),
        create(
            json!({"service": "nope"}),
            bad("spec.service", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        create(
            json!({"category": "weekly"}),
            bad(
                "spec.category",
                "unknown category \"weekly\" of demo; known: api, slow, smoke",
            ),
        ),
        create(
            json!({"concurrencyPolicy": "Sometimes"}),
            bad("spec.concurrencyPolicy", "must be one of Allow, Forbid, Replace"),
        ),
        create(
            json!({"startingDeadlineSeconds": -1}),
            bad("spec.startingDeadlineSeconds", "must be an integer of at least 0"),
        ),
        create(
            json!({"stand": "prod.example.com"}),
            bad(
                "spec.stand",
                "\"prod.example.com\" is not a stand of demo (must match localhost(:[0-9]+)?|127\\.0\\.0\\.1(:[0-9]+)?)",
            ),
        ),
        create(
            json!({"scheduel": "0 2 * * *"}),
            bad(
                "spec.scheduel",
                "unknown field \"scheduel\"; known: service, stand, category, packs, priority, emails, issueKey, version, retries, shards, env, timeout, schedule, timeZone, suspend, concurrencyPolicy, startingDeadlineSeconds, successfulRunsHistoryLimit, failedRunsHistoryLimit",
            ),
        ),
        refusal(
            Method::PATCH,
            "/api/v1/schedules/bad",
            Body::Json(json!({"spec": {"timeZone": "Nowhere"}})),
            bad(
                "spec.timeZone",
                "\"Nowhere\" is not an IANA time zone (such as UTC or Europe/Moscow)",
            ),
        ),
        get(
            "/api/v1/schedules?service=demo-pi",
            bad("service", "unknown service \"demo-pi\"; known: demo, demo-py"),
        ),
        get(
            "/api/v1/schedules/gone",
            missing("name", "schedule \"gone\" not found"),
        ),
        // No test sent these.
        create(json!({}), conflict("NightlySchedule \"bad\" already exists")),
        refusal(
            Method::PUT,
            "/api/v1/schedules/gone",
            Body::Json(schedule(json!({}))),
            bad("metadata.name", "\"bad\" does not match the URL's \"gone\""),
        ),
        refusal(
            Method::PUT,
            "/api/v1/schedules/gone",
            Body::Json({
                let mut body = schedule(json!({}));
                body["metadata"]["name"] = json!("gone");
                body
            }),
            missing("name", "schedule \"gone\" not found"),
        ),
        refusal(
            Method::PATCH,
            "/api/v1/schedules/gone",
            Body::Json(json!({"spec": {"suspend": true}})),
            missing("name", "schedule \"gone\" not found"),
        ),
        refusal(
            Method::DELETE,
            "/api/v1/schedules/gone",
            Body::None,
            missing("name", "schedule \"gone\" not found"),
        ),
        refusal(
            Method::POST,
            "/api/v1/schedules/gone/trigger",
            Body::None,
            missing("name", "schedule \"gone\" not found"),
        ),
    ];
    assert_refused(&api, cases).await;
}

#[tokio::test]
async fn mutes_refuse_each_bad_field_naming_it_and_store_nothing() {
    let api = Api::new();
    let in_days = |days: i64| (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let mute = |spec: Value, answer| post("/api/v1/mutes", json!({ "spec": spec }), answer);
    let cases = vec![
        // As tests/mutes_e2e.rs sends them.
        mute(
            json!({"service": "nope", "test": "t", "reason": "r", "expires": in_days(1)}),
            bad("spec.service", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        mute(
            json!({"service": "demo", "test": "t", "reason": "r", "expires": in_days(400)}),
            bad(
                "spec.expires",
                "is more than 366 days away: mute for a while, then look again",
            ),
        ),
        mute(
            json!({"service": "demo", "test": "t", "reason": "r", "expires": "tomorrow"}),
            bad("spec.expires", "input contains invalid characters"),
        ),
        mute(
            json!({"service": "demo", "test": "t", "reason": "r", "expires": in_days(1), "liftWhenTicketClosed": true}),
            bad("spec.liftWhenTicketClosed", "needs a ticket to watch"),
        ),
        mute(
            json!({"service": "demo", "test": "t", "reason": "r", "expires": in_days(1), "until": "x"}),
            bad(
                "spec.until",
                "unknown field \"until\"; known: service, test, signature, reason, ticket, expires, liftWhenTicketClosed, author",
            ),
        ),
        mute(
            json!({"service": "demo", "reason": "r", "expires": in_days(1)}),
            bad("spec.test", "missing field `test`"),
        ),
        refusal(
            Method::DELETE,
            "/api/v1/mutes/gone",
            Body::None,
            missing("name", "mute \"gone\" not found"),
        ),
    ];
    assert_refused(&api, cases).await;
    // Every field at fault at once, the first also as `parameter` (tests/mutes_e2e.rs).
    let (status, err) = api
        .post(
            "/api/v1/mutes",
            json!({"spec": {"service": "demo", "test": "test::login", "reason": " ", "signature": "XYZ",
                "ticket": "qa 1", "expires": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err:#}");
    assert_eq!(
        named_fields(&err),
        ["spec.signature", "spec.reason", "spec.ticket", "spec.expires"],
        "{err:#}"
    );
    let (_, list) = api.get("/api/v1/mutes").await;
    assert_eq!(list["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn uploads_launches_and_regressions_refuse_what_they_cannot_take() {
    let api = Api::new();
    let id = api.queue_demo_run().await;
    let results = format!("/api/v1/runs/{id}/attempts/1/results");
    let multipart = "multipart/form-data; boundary=X";
    let upload = |uri: &str, content_type, body: &str, answer| {
        refusal(Method::POST, uri, Body::Raw(content_type, body.into()), answer)
    };
    let cases = vec![
        // No test sent these.
        upload(
            &results,
            "application/json",
            "{}",
            bad("body", "Invalid `boundary` for `multipart/form-data` request"),
        ),
        upload(&results, multipart, "--X--\r\n", no_token()),
        upload(
            &format!("/api/v1/runs/{id}/attempts/one/results"),
            multipart,
            "--X--\r\n",
            bad("n", "\"one\" is not a non-negative integer"),
        ),
        get(
            format!("/api/v1/runs/{id}/attempts/1/launch?shard=x"),
            bad(
                "shard",
                "the query string is not valid: invalid digit found in string",
            ),
        ),
        get(format!("/api/v1/runs/{id}/attempts/1/launch"), no_token()),
        post(
            "/api/v1/regressions",
            json!({"spec": {"service": "demo", "version": "2.0", "plan": 1, "stand": "localhost"}}),
            conflict(
                "test management is not configured on this server, so a regression could only fail: set TOMATO_TMS_URL, TOMATO_TMS_USER and TOMATO_TMS_PASSWORD (Kiwi TCMS) and restart Tomato",
            ),
        ),
        get(
            "/api/v1/regressions/nope",
            missing("name", "regression \"nope\" not found"),
        ),
        refusal(
            Method::DELETE,
            "/api/v1/regressions/nope",
            Body::None,
            missing("name", "regression \"nope\" not found"),
        ),
        get(
            "/api/v1/regressions?service=nope",
            bad("service", "unknown service \"nope\"; known: demo, demo-py"),
        ),
        get("/api/v1/stands/qa1/resume", not_allowed()),
    ];
    assert_refused(&api, cases).await;
}

/// What the framework answers itself, before any handler: the JSON error, with what a
/// client needs beside it (the methods a route takes).
#[tokio::test]
async fn framework_refusals_keep_their_headers_and_a_declared_length_over_the_limit_is_413() {
    use axum::body::Body as HttpBody;
    use axum::http::{Request, header};
    use tower::ServiceExt;
    let api = Api::new();
    let send = |req: Request<HttpBody>| async {
        let res = super::app(api.state.clone())
            .oneshot(req)
            .await
            .expect("an answer");
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body");
        (
            parts,
            serde_json::from_slice::<Value>(&body).expect("a JSON error"),
        )
    };
    let (parts, body) = send(Request::delete("/api/v1/runs").body(HttpBody::empty()).unwrap()).await;
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["parameter"], "method", "{body}");
    assert_eq!(parts.headers[header::ALLOW], "GET,HEAD,POST");
    // As tests/standalone_e2e.rs sends it: the length declared, the limit layer refuses it.
    for uri in ["/api/run_now", "/api/v1/runs"] {
        let (parts, body) = send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, (1 << 20) + 1)
                .body(HttpBody::from(vec![b' '; (1 << 20) + 1]))
                .unwrap(),
        )
        .await;
        assert_eq!(
            (parts.status, &body),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "the request body is too large", "parameter": "body"})
            ),
            "{uri}"
        );
    }
}
