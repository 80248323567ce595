//! The error answers of the legacy handles and of `/api/v1`, in process: each refusal the
//! binary tests (`tests/*_e2e.rs`) check over a socket, and those no test checked, with its
//! status, the parameter it names and its message, byte for byte. The binary tests stay: they
//! check the same through the real server; these fail fast and name the case.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::app_tests::{Api, call_raw};

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
