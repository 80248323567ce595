//! Roles in standalone mode, in process: every write route with no token and with a `read`,
//! `run` and `admin` token, reads when closed, and the audit log of it all.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::app;
use super::app_tests::Api;
use crate::api::{AuditLog, Auth, Tokens};

const ROLES: &str = "tokens:
  - {name: dashboards, role: read, token: read-secret-1}
  - {name: ci, role: run, token: run-secret-2}
  - {name: qa-lead, role: admin, token: admin-secret-3}
";
const READ: &str = "read-secret-1";
const RUN: &str = "run-secret-2";
const ADMIN: &str = "admin-secret-3";

struct Server {
    api: Api,
    dir: tempfile::TempDir,
}

impl Server {
    fn new(roles: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.yaml");
        std::fs::write(&path, roles).unwrap();
        let tokens = Tokens::new(["legacy-bare-token".to_string()])
            .with_roles_file(&path)
            .unwrap();
        let audit = AuditLog::to_file(&dir.path().join("audit.jsonl")).unwrap();
        Server {
            api: Api::with_auth(Auth::new(tokens, audit)),
            dir,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let mut req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo::<std::net::SocketAddr>(
                "192.0.2.10:40000".parse().unwrap(),
            ));
        let res = app(self.api.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The raw answer to a request with `authorization` as given.
    async fn raw(&self, method: Method, uri: &str, authorization: Option<&str>) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        app(self.api.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// Creates what a write needs (a queued run, a schedule, a regression) as `admin`;
    /// answers the run's id.
    async fn prepare(&self, n: usize) -> String {
        let (s, run) = self
            .call(
                Method::POST,
                "/api/v1/runs",
                Some(ADMIN),
                Some(json!({"spec": {"service": "demo", "stand": "localhost", "category": "smoke"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{run}");
        let schedule = json!({"metadata": {"name": format!("sched-{n}")},
            "spec": {"service": "demo", "stand": "localhost", "schedule": "0 2 * * *"}});
        let (s, body) = self
            .call(Method::POST, "/api/v1/schedules", Some(ADMIN), Some(schedule))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let (s, body) = self
            .call(
                Method::POST,
                "/api/v1/regressions",
                Some(ADMIN),
                Some(regression(&format!("reg-{n}"))),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        run["metadata"]["name"].as_str().unwrap().to_string()
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn regression(name: &str) -> Value {
    json!({"metadata": {"name": name},
        "spec": {"service": "demo", "version": "2.0", "plan": 1, "stand": "localhost", "assessors": ["alice"]}})
}

/// One write route: what it is called with, the role it needs, and what it answers when allowed.
struct Route {
    method: Method,
    /// `{run}` and `{n}` are filled in.
    path: &'static str,
    body: Option<fn(usize) -> Value>,
    needs: &'static str,
    ok: StatusCode,
}

fn routes() -> Vec<Route> {
    let r = |method, path, body, needs, ok| Route {
        method,
        path,
        body,
        needs,
        ok,
    };
    vec![
        r(
            Method::POST,
            "/api/v1/runs",
            Some(|_| json!({"spec": {"service": "demo", "stand": "localhost", "category": "smoke"}})),
            "run",
            StatusCode::CREATED,
        ),
        r(
            Method::PATCH,
            "/api/v1/runs/{run}",
            Some(|_| json!({"spec": {"priority": 1}})),
            "run",
            StatusCode::OK,
        ),
        r(
            Method::DELETE,
            "/api/v1/runs/{run}",
            None,
            "run",
            StatusCode::ACCEPTED,
        ),
        r(
            Method::POST,
            "/api/run_now?service=demo&stand=localhost",
            None,
            "run",
            StatusCode::OK,
        ),
        r(
            Method::POST,
            "/api/nightly?service=demo",
            None,
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::POST,
            "/api/v1/schedules",
            Some(|n| {
                json!({"metadata": {"name": format!("new-{n}")},
                "spec": {"service": "demo", "stand": "localhost", "schedule": "0 3 * * *"}})
            }),
            "admin",
            StatusCode::CREATED,
        ),
        r(
            Method::PUT,
            "/api/v1/schedules/sched-{n}",
            Some(|n| {
                json!({"metadata": {"name": format!("sched-{n}")},
                "spec": {"service": "demo", "stand": "localhost", "schedule": "0 4 * * *"}})
            }),
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::PATCH,
            "/api/v1/schedules/sched-{n}",
            Some(|_| json!({"spec": {"suspend": true}})),
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::POST,
            "/api/v1/schedules/sched-{n}/trigger",
            None,
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::DELETE,
            "/api/v1/schedules/sched-{n}",
            None,
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::POST,
            "/api/v1/regressions",
            Some(|n| regression(&format!("new-reg-{n}"))),
            "admin",
            StatusCode::CREATED,
        ),
        r(
            Method::PATCH,
            "/api/v1/regressions/reg-{n}",
            Some(|_| json!({"spec": {"deadline": "2099-01-01T18:00:00Z"}})),
            "admin",
            StatusCode::OK,
        ),
        r(
            Method::DELETE,
            "/api/v1/regressions/reg-{n}",
            None,
            "admin",
            StatusCode::ACCEPTED,
        ),
    ]
}

#[tokio::test]
async fn every_write_route_answers_each_role_as_the_role_allows() {
    let server = Server::new(ROLES);
    let mut n = 0;
    let mut wrong = Vec::new();
    for route in routes() {
        for (token, role) in [
            (None, ""),
            (Some(READ), "read"),
            (Some(RUN), "run"),
            (Some(ADMIN), "admin"),
        ] {
            n += 1;
            let run = server.prepare(n).await;
            let path = route.path.replace("{run}", &run).replace("{n}", &n.to_string());
            let body = route.body.map(|b| b(n));
            let (status, answer) = server.call(route.method.clone(), &path, token, body).await;
            let allowed = matches!((role, route.needs), ("admin", _) | ("run", "run"));
            let expected = match token {
                None => StatusCode::UNAUTHORIZED,
                Some(_) if !allowed => StatusCode::FORBIDDEN,
                Some(_) => route.ok,
            };
            if status != expected {
                wrong.push(format!(
                    "{} {path} as {role:?}: {status} (expected {expected}) {answer}",
                    route.method
                ));
            }
            if status == StatusCode::FORBIDDEN {
                let error = answer["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains(&format!("needs the {} role", route.needs)) && error.contains(role),
                    "a 403 names the role needed and the one held: {error}"
                );
                assert_eq!(answer["parameter"], "Authorization");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn refused_writes_change_nothing_and_unknown_tokens_are_401() {
    let server = Server::new(ROLES);
    let (_, before) = server.call(Method::GET, "/api/v1/runs", None, None).await;
    let spec = json!({"spec": {"service": "demo", "stand": "localhost"}});
    let (s, body) = server
        .call(
            Method::POST,
            "/api/v1/runs",
            Some("not-a-token"),
            Some(spec.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "the API token is not valid");
    let (s, _) = server
        .call(Method::POST, "/api/v1/runs", Some(READ), Some(spec.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, after) = server.call(Method::GET, "/api/v1/runs", None, None).await;
    assert_eq!(before["items"], after["items"], "nothing was queued");
    // A bare TOMATO_API_TOKENS token keeps full rights.
    let (s, body) = server
        .call(
            Method::POST,
            "/api/v1/regressions",
            Some("legacy-bare-token"),
            Some(regression("bare")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn closed_reads_need_a_token_but_probes_and_metrics_stay_open() {
    let server = Server::new(&format!("readsOpen: false\n{ROLES}"));
    for open in ["/healthz", "/readyz", "/metrics", "/ui/static/app.css"] {
        let (s, _) = server.call(Method::GET, open, None, None).await;
        assert_eq!(s, StatusCode::OK, "{open} stays open");
    }
    for read in [
        "/api/v1/runs",
        "/api/runned?project=demo",
        "/",
        "/api/v1/openapi.json",
    ] {
        let (s, body) = server.call(Method::GET, read, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{read}: {body}");
        let (s, _) = server.call(Method::GET, read, Some("wrong"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{read}");
        for token in [READ, RUN, ADMIN] {
            let (s, _) = server.call(Method::GET, read, Some(token), None).await;
            assert_eq!(s, StatusCode::OK, "{read} with a token");
        }
    }
    // A browser: a page asks for its own prompt, whose answer (Basic, the token as the
    // password) is accepted; the API keeps answering Bearer.
    let page = server.raw(Method::GET, "/", None).await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(
        page.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let api = server.raw(Method::GET, "/api/v1/runs", None).await;
    assert_eq!(api.headers()["www-authenticate"], "Bearer");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("me:{READ}"));
    let page = server
        .raw(Method::GET, "/", Some(&format!("Basic {basic}")))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let wrong = base64::engine::general_purpose::STANDARD.encode("me:wrong");
    let page = server
        .raw(Method::GET, "/", Some(&format!("Basic {wrong}")))
        .await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    // Reads open (the default): no token needed.
    let open = Server::new(ROLES);
    let (s, _) = open.call(Method::GET, "/api/v1/runs", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn every_write_is_audited_with_who_what_when_and_where_and_never_the_token() {
    let server = Server::new(ROLES);
    let spec = json!({"spec": {"service": "demo", "stand": "localhost"}});
    let (s, run) = server
        .call(Method::POST, "/api/v1/runs", Some(RUN), Some(spec.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = run["metadata"]["name"].as_str().unwrap();
    server
        .call(Method::DELETE, &format!("/api/v1/runs/{id}"), Some(READ), None)
        .await;
    server
        .call(Method::POST, "/api/v1/runs", None, Some(spec.clone()))
        .await;
    server.call(Method::GET, "/api/v1/runs", Some(ADMIN), None).await;
    // A Job's upload carries its run's own token, checked by the handler, not a role.
    let (upload, _) = server
        .call(Method::POST, "/api/v1/runs/nope/attempts/1/results", None, None)
        .await;

    let lines = server.audit_lines();
    assert_eq!(lines.len(), 4, "writes and uploads only: {lines:?}");
    assert_eq!(
        (
            &lines[3]["who"],
            &lines[3]["via"],
            &lines[3]["name"],
            &lines[3]["status"]
        ),
        (
            &json!("run-token"),
            &json!("run-token"),
            &json!("nope"),
            &json!(upload.as_u16())
        )
    );
    let created = &lines[0];
    assert_eq!(created["who"], "ci");
    assert_eq!(created["via"], "token");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["path"], "/api/v1/runs");
    assert_eq!(created["resource"], "testruns");
    assert_eq!(created["verb"], "create");
    assert_eq!(created["status"], 201);
    assert_eq!(created["decision"], "allowed");
    assert_eq!(created["from"], "192.0.2.10:40000");
    let time = created["time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
        "{time}"
    );
    let refused = &lines[1];
    assert_eq!(
        (
            &refused["who"],
            &refused["verb"],
            &refused["name"],
            &refused["status"],
            &refused["decision"]
        ),
        (
            &json!("dashboards"),
            &json!("patch"),
            &json!(id),
            &json!(403),
            &json!("refused")
        )
    );
    assert_eq!(
        (&lines[2]["who"], &lines[2]["status"]),
        (&json!("unauthenticated"), &json!(401))
    );

    let text = std::fs::read_to_string(server.dir.path().join("audit.jsonl")).unwrap();
    for secret in [READ, RUN, ADMIN, "localhost"] {
        assert!(!text.contains(secret), "the audit log holds no token or body");
    }
}

#[tokio::test]
async fn with_writes_open_each_write_is_still_audited_as_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::to_file(&dir.path().join("a.jsonl")).unwrap();
    let api = Api::with_auth(Auth::new(Tokens::default(), audit));
    let (s, _) = api
        .post("/api/run_now?service=demo&stand=localhost", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(
        (&line["who"], &line["via"], &line["path"], &line["from"]),
        (
            &json!("anonymous"),
            &json!("open"),
            &json!("/api/run_now"),
            &json!("unknown")
        )
    );
}
