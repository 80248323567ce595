//! Test support for test management and regressions: a real Kiwi TCMS (12.4, from PyPI,
//! `tests/kiwi-requirements.txt`) started per test, and an in-process server standing in for
//! Jira's issue API, which cannot run here.
//!
//! Kiwi runs on SQLite (`tests/support/kiwi/tomato_kiwi_settings.py`) under Django's
//! `runserver`. Migrating its database takes about 90 seconds, so the first test that needs
//! one builds a migrated database once — `migrate`, then `refresh_permissions` (without it
//! testers have no rights) — under a file lock, into a file named after the Kiwi version in
//! Cargo's target tmp dir; every test then starts from a copy of it. Users are created with
//! `django-admin shell`, as Kiwi has no RPC for that.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tomato::integrations::redact::Redactor;
use tomato::integrations::settings::TmsSettings;
use tomato::integrations::tms::Kiwi as KiwiClient;
use tomato::secrets::Secret;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The Kiwi TCMS version the tests run (pinned in tests/kiwi-requirements.txt).
pub const KIWI_VERSION: &str = "12.4";
/// Tomato's own account in Kiwi: in the Tester and Administrator groups (it reads users).
pub const TOMATO_USER: (&str, &str) = ("tomato", "tomato-kiwi-pw");
/// Assessors: testers.
pub const ASSESSORS: [(&str, &str, &str); 3] = [
    ("alice", "alice-pw", "alice@example.com"),
    ("bob", "bob-pw", "bob@example.com"),
    ("carol", "carol-pw", "carol@example.com"),
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn django(db: &Path) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "django"])
        .env("PYTHONPATH", format!("{REPO}/tests/support/kiwi"))
        .env("DJANGO_SETTINGS_MODULE", "tomato_kiwi_settings")
        .env("TOMATO_KIWI_DB", db);
    cmd
}

fn run_ok(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: python3 does not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed (pip install -r tests/kiwi-requirements.txt installs Kiwi TCMS):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The migrated database of this Kiwi version, built once per target dir.
fn migrated_db() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("kiwi-{KIWI_VERSION}-migrated.sqlite"));
    let lock = std::fs::File::create(dir.join(format!("kiwi-{KIWI_VERSION}.lock"))).unwrap();
    lock.lock().unwrap();
    if !db.exists() {
        let building = dir.join(format!("kiwi-{KIWI_VERSION}-building.sqlite"));
        let _ = std::fs::remove_file(&building);
        let started = Instant::now();
        let mut migrate = django(&building);
        migrate.args(["migrate", "-v", "0"]);
        run_ok(migrate, "Kiwi TCMS migrate");
        let mut perms = django(&building);
        perms.args(["refresh_permissions", "-v", "0"]);
        run_ok(perms, "Kiwi TCMS refresh_permissions");
        std::fs::rename(&building, &db).unwrap();
        eprintln!(
            "built the migrated Kiwi TCMS {KIWI_VERSION} database in {:?}",
            started.elapsed()
        );
    }
    lock.unlock().unwrap();
    db
}

/// A running Kiwi TCMS with Tomato's account and the assessors.
pub struct Kiwi {
    pub url: String,
    pub port: u16,
    child: Child,
    pub log_path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Kiwi {
    /// Starts one from a copy of the migrated database (building that first if needed).
    pub async fn start() -> Kiwi {
        tokio::task::spawn_blocking(Self::start_blocking).await.unwrap()
    }

    fn start_blocking() -> Kiwi {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("kiwi.sqlite");
        std::fs::copy(migrated_db(), &db).unwrap();
        let mut script = String::from(
            "from django.contrib.auth.models import User, Group\n\
             tester = Group.objects.get(name='Tester')\n\
             admin = Group.objects.get(name='Administrator')\n",
        );
        script.push_str(&format!(
            "u = User.objects.create_user('{}', 'tomato@example.com', '{}')\nu.groups.add(tester, admin)\n",
            TOMATO_USER.0, TOMATO_USER.1
        ));
        for (name, password, email) in ASSESSORS {
            script.push_str(&format!(
                "u = User.objects.create_user('{name}', '{email}', '{password}')\nu.groups.add(tester)\n"
            ));
        }
        let mut shell = django(&db);
        shell.args(["shell", "-c", &script]);
        run_ok(shell, "creating Kiwi TCMS users");

        let port = free_port();
        let log_path = tmp.path().join("kiwi.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut server = django(&db);
        server
            .args(["runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let mut child = server.spawn().expect("python3 runs Kiwi TCMS");
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "Kiwi TCMS exited with {status}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "Kiwi TCMS did not start in 60s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Kiwi {
            url,
            port,
            child,
            log_path,
            _tmp: tmp,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A JSON-RPC client signed in as `user` (Tomato's own client type).
    pub fn client(&self, user: (&str, &str)) -> KiwiClient {
        let settings = TmsSettings {
            url: self.url.parse().unwrap(),
            user: user.0.to_string(),
            password: Secret::new(user.1),
            poll: Duration::from_secs(1),
        };
        KiwiClient::new(&settings, Redactor::default()).unwrap()
    }

    /// The environment that points Tomato at this Kiwi.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TOMATO_TMS_URL".into(), self.url.clone()),
            ("TOMATO_TMS_USER".into(), TOMATO_USER.0.into()),
            ("TOMATO_TMS_PASSWORD".into(), TOMATO_USER.1.into()),
        ]
    }
}

impl Drop for Kiwi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls a Kiwi method and returns its result, failing the test on an error.
pub async fn rpc(client: &KiwiClient, method: &str, params: Value) -> Value {
    client
        .call(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// A product with a regression plan of `confirmed` confirmed manual cases (plus one
/// proposed case, which must not join a run). Returns the plan's id and the confirmed
/// cases' ids.
pub async fn regression_plan(kiwi: &Kiwi, product: &str, plan: &str, confirmed: usize) -> (u64, Vec<u64>) {
    let c = kiwi.client(TOMATO_USER);
    let class = rpc(
        &c,
        "Classification.create",
        json!([{"name": format!("{product} class")}]),
    )
    .await;
    let product = rpc(
        &c,
        "Product.create",
        json!([{"name": product, "classification": class["id"]}]),
    )
    .await;
    let pid = product["id"].as_u64().unwrap();
    let version = rpc(
        &c,
        "Version.filter",
        json!([{"product": pid, "value": "unspecified"}]),
    )
    .await;
    let plan_type = rpc(&c, "PlanType.filter", json!([{"name": "Regression"}])).await;
    let plan = rpc(
        &c,
        "TestPlan.create",
        json!([{"name": plan, "product": pid, "product_version": version[0]["id"],
                "type": plan_type[0]["id"], "text": "The release regression"}]),
    )
    .await;
    let plan_id = plan["id"].as_u64().unwrap();
    let category = rpc(&c, "Category.filter", json!([{"product": pid}])).await;
    let status = |name: &str| {
        let c = &c;
        let name = name.to_string();
        async move { rpc(c, "TestCaseStatus.filter", json!([{"name": name}])).await[0]["id"].clone() }
    };
    let (confirmed_status, proposed) = (status("CONFIRMED").await, status("PROPOSED").await);
    let mut ids = Vec::new();
    for i in 0..=confirmed {
        let is_confirmed = i < confirmed;
        let case = rpc(
            &c,
            "TestCase.create",
            json!([{"summary": if is_confirmed { format!("Manual check {} <b>&", i + 1) } else { "Draft check".into() },
                    "product": pid, "category": category[0]["id"], "priority": 1,
                    "case_status": if is_confirmed { confirmed_status.clone() } else { proposed.clone() },
                    "text": "Steps"}]),
        )
        .await;
        let id = case["id"].as_u64().unwrap();
        rpc(&c, "TestPlan.add_case", json!([plan_id, id])).await;
        if is_confirmed {
            ids.push(id);
        }
    }
    (plan_id, ids)
}

/// One stored issue of the fake tracker.
#[derive(Clone, Debug)]
pub struct Issue {
    pub key: String,
    pub fields: Value,
    pub comments: Vec<String>,
}

#[derive(Default)]
struct TrackerState {
    issues: Vec<Issue>,
    versions: Vec<(String, String)>,
    requests: Vec<(String, String)>,
    /// Issue key → (status name, closed), for issues moved from `Open`.
    statuses: HashMap<String, (String, bool)>,
}

/// Which tracker [`FakeTracker`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Jira,
    Yandex,
}

/// An in-process server standing in for a tracker, which cannot run here. It speaks the wire
/// format of what Tomato uses, for one of the two trackers, and keeps what it was given, so a
/// test can check the ticket, its version and its comments:
///
/// - Jira REST API v2 (bearer token): project versions (`GET
///   /rest/api/2/project/{key}/versions`, `POST /rest/api/2/version`), issue search by label
///   (`GET /rest/api/2/search?jql=...`), issue creation (`POST /rest/api/2/issue`, answering
///   the new key), comments (`POST /rest/api/2/issue/{key}/comment`) and an issue's status
///   (`GET /rest/api/2/issue/{key}?fields=status`: `fields.status.name` and its
///   `statusCategory.key`, `done` once closed).
/// - Yandex Tracker API v2 (`Authorization: OAuth <token>` and the `X-Org-ID` header, both
///   required): queue versions (`GET /v2/queues/{queue}/versions`, `POST /v2/versions`, with
///   numeric ids), issue search (`POST /v2/issues/_search` by queue and tags), issue creation
///   (`POST /v2/issues`, refusing a repeated `unique` with 409 as the tracker does) and
///   comments (`POST /v2/issues/{key}/comments`) and an issue (`GET /v2/issues/{key}`: its
///   `status` key and display name, and a `resolution` once closed).
pub struct FakeTracker {
    pub url: String,
    pub dialect: Dialect,
    state: Arc<Mutex<TrackerState>>,
    task: tokio::task::JoinHandle<()>,
}

const JIRA_TOKEN: &str = "jira-t0ken";
const YANDEX_TOKEN: &str = "yandex-t0ken";
const YANDEX_ORG: &str = "4242";

type Answer = (axum::http::StatusCode, String);

fn answer(code: u16, v: Value) -> Answer {
    (axum::http::StatusCode::from_u16(code).unwrap(), v.to_string())
}

fn jira(st: &mut TrackerState, method: &str, path: &str, query: &str, body: &Value) -> Answer {
    let parts: Vec<&str> = path.trim_start_matches("/rest/api/2/").split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["project", project, "versions"]) => answer(
            200,
            Value::Array(
                st.versions
                    .iter()
                    .filter(|(p, _)| p == project)
                    .enumerate()
                    .map(|(i, (_, name))| json!({"id": (i + 1).to_string(), "name": name}))
                    .collect(),
            ),
        ),
        ("POST", ["version"]) => {
            let project = body["project"].as_str().unwrap_or_default().to_string();
            let name = body["name"].as_str().unwrap_or_default().to_string();
            st.versions.push((project, name.clone()));
            answer(201, json!({"id": "10", "name": name}))
        }
        ("GET", ["search"]) => {
            let jql = urlencoding_decode(query);
            let found: Vec<Value> = st
                .issues
                .iter()
                .filter(|i| {
                    i.fields["labels"].as_array().is_some_and(|ls| {
                        ls.iter()
                            .any(|l| jql.contains(&format!("\"{}\"", l.as_str().unwrap_or(""))))
                    })
                })
                .map(|i| json!({"key": i.key}))
                .collect();
            answer(200, json!({"issues": found, "total": found.len()}))
        }
        ("POST", ["issue"]) => {
            let project = body["fields"]["project"]["key"].as_str().unwrap_or("X");
            let key = st.add(project, body["fields"].clone());
            answer(201, json!({"id": "1", "key": key}))
        }
        ("GET", ["issue", key]) => match st.status_of(key) {
            Some((name, closed)) => answer(
                200,
                json!({"id": "10001", "key": key, "fields": {"status": {"name": name, "id": "3",
                    "statusCategory": {"id": if closed { 3 } else { 4 }, "key": if closed { "done" } else { "indeterminate" }}}}}),
            ),
            None => answer(
                404,
                json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."]}),
            ),
        },
        ("POST", ["issue", key, "comment"]) => {
            let text = body["body"].as_str().unwrap_or_default();
            match st.comment(key, text) {
                true => answer(201, json!({})),
                false => answer(404, json!({"errorMessages": ["Issue does not exist"]})),
            }
        }
        _ => answer(404, json!({})),
    }
}

fn yandex(st: &mut TrackerState, method: &str, path: &str, body: &Value) -> Answer {
    let parts: Vec<&str> = path.trim_start_matches("/v2/").split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["queues", queue, "versions"]) => answer(
            200,
            Value::Array(
                st.versions
                    .iter()
                    .enumerate()
                    .filter(|(_, (q, _))| q == queue)
                    .map(|(i, (q, name))| json!({"id": i + 1, "version": 1, "name": name, "queue": {"key": q}}))
                    .collect(),
            ),
        ),
        ("POST", ["versions"]) => {
            let queue = body["queue"].as_str().unwrap_or_default().to_string();
            let name = body["name"].as_str().unwrap_or_default().to_string();
            st.versions.push((queue, name.clone()));
            answer(201, json!({"id": st.versions.len(), "version": 1, "name": name}))
        }
        ("POST", ["issues", "_search"]) => {
            let queue = body["filter"]["queue"].as_str().unwrap_or_default();
            let tags = body["filter"]["tags"].as_array().cloned().unwrap_or_default();
            let found: Vec<Value> = st
                .issues
                .iter()
                .filter(|i| i.key.starts_with(&format!("{queue}-")))
                .filter(|i| {
                    let have = i.fields["tags"].as_array().cloned().unwrap_or_default();
                    tags.iter().all(|t| have.contains(t))
                })
                .map(|i| json!({"key": i.key, "summary": i.fields["summary"]}))
                .collect();
            answer(200, Value::Array(found))
        }
        ("POST", ["issues"]) => {
            let unique = &body["unique"];
            if !unique.is_null() && st.issues.iter().any(|i| &i.fields["unique"] == unique) {
                return answer(409, json!({"errorMessages": ["Issue with this unique already exists"]}));
            }
            let queue = body["queue"].as_str().unwrap_or("X");
            let key = st.add(queue, body.clone());
            answer(201, json!({"id": "5f0", "key": key}))
        }
        ("GET", ["issues", key]) => match st.status_of(key) {
            Some((name, closed)) => answer(
                200,
                json!({"self": format!("https://api.tracker.yandex.net/v2/issues/{key}"), "key": key,
                    "status": {"id": "1", "key": if closed { "closed" } else { "open" }, "display": name},
                    "resolution": if closed { json!({"key": "fixed", "display": "Решён"}) } else { Value::Null }}),
            ),
            None => answer(404, json!({"errorMessages": ["Задача не существует."]})),
        },
        ("POST", ["issues", key, "comments"]) => {
            let text = body["text"].as_str().unwrap_or_default();
            match st.comment(key, text) {
                true => answer(201, json!({"id": 1})),
                false => answer(404, json!({"errorMessages": ["Issue does not exist"]})),
            }
        }
        _ => answer(404, json!({})),
    }
}

impl TrackerState {
    /// An existing issue's status name and whether it is closed (`Open` until set).
    fn status_of(&self, key: &str) -> Option<(String, bool)> {
        self.issues.iter().any(|i| i.key == key).then(|| {
            self.statuses
                .get(key)
                .cloned()
                .unwrap_or_else(|| ("Open".to_string(), false))
        })
    }

    /// Stores a new issue of `project`; returns its key.
    fn add(&mut self, project: &str, fields: Value) -> String {
        let key = format!("{project}-{}", self.issues.len() + 1);
        self.issues.push(Issue {
            key: key.clone(),
            fields,
            comments: Vec::new(),
        });
        key
    }

    fn comment(&mut self, key: &str, text: &str) -> bool {
        match self.issues.iter_mut().find(|i| i.key == key) {
            Some(i) => {
                i.comments.push(text.to_string());
                true
            }
            None => false,
        }
    }
}

impl FakeTracker {
    pub async fn jira() -> FakeTracker {
        FakeTracker::start(Dialect::Jira).await
    }

    pub async fn yandex() -> FakeTracker {
        FakeTracker::start(Dialect::Yandex).await
    }

    async fn start(dialect: Dialect) -> FakeTracker {
        use axum::extract::{Request, State};
        let state = Arc::new(Mutex::new(TrackerState::default()));
        let handle = move |State(state): State<Arc<Mutex<TrackerState>>>, req: Request| async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            // Read before the body is awaited: a borrowed request is not `Send`.
            let signed_in = {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                match dialect {
                    Dialect::Jira => header("authorization") == format!("Bearer {JIRA_TOKEN}"),
                    Dialect::Yandex => {
                        header("authorization") == format!("OAuth {YANDEX_TOKEN}")
                            && header("x-org-id") == YANDEX_ORG
                    }
                }
            };
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let mut st = state.lock().unwrap();
            st.requests.push((method.clone(), path.clone()));
            if !signed_in {
                return answer(401, json!({}));
            }
            match dialect {
                Dialect::Jira => jira(&mut st, &method, &path, &query, &body),
                Dialect::Yandex => yandex(&mut st, &method, &path, &body),
            }
        };
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeTracker {
            url,
            dialect,
            state,
            task,
        }
    }

    /// An issue that exists before the test (an `issueKey` given by the user).
    pub fn add_issue(&self, key: &str) {
        self.state.lock().unwrap().issues.push(Issue {
            key: key.into(),
            fields: json!({}),
            comments: Vec::new(),
        });
    }

    /// Moves an issue to the status `name`, closed or not.
    pub fn set_status(&self, key: &str, name: &str, closed: bool) {
        self.state
            .lock()
            .unwrap()
            .statuses
            .insert(key.to_string(), (name.to_string(), closed));
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    /// `(project or queue, name)` of every version created.
    pub fn versions(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().versions.clone()
    }

    /// `(method, path)` of every request.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How Tomato is told to use this tracker.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("TOMATO_TRACKER_URL".into(), self.url.clone())];
        match self.dialect {
            Dialect::Jira => env.extend([
                ("TOMATO_TRACKER".into(), "jira".into()),
                ("TOMATO_TRACKER_TOKEN".into(), JIRA_TOKEN.into()),
            ]),
            Dialect::Yandex => env.extend([
                ("TOMATO_TRACKER".into(), "yandex".into()),
                ("TOMATO_TRACKER_TOKEN".into(), YANDEX_TOKEN.into()),
                ("TOMATO_TRACKER_ORG".into(), YANDEX_ORG.into()),
            ]),
        }
        env
    }
}

impl Drop for FakeTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn urlencoding_decode(s: &str) -> String {
    let pairs: HashMap<String, String> = serde_urlencoded::from_str(s).unwrap_or_default();
    pairs.get("jql").cloned().unwrap_or_default()
}
