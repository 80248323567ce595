//! Kiwi TCMS over its JSON-RPC API (`POST <site>/json-rpc/`).
//!
//! What its wire format asks of a client, and how this one answers:
//! - `Auth.login(user, password)` returns a session key, sent back as the `sessionid` cookie.
//!   The client signs in on its first call and again when a call is refused for want of a
//!   session (it expired, or the server was restarted over another database).
//! - Errors come back as HTTP 200 with a JSON-RPC `error` object (`Internal error: ...`);
//!   they are refusals ([`TmsError::Refused`]). A connection failure, a timeout or an HTTP
//!   5xx is [`TmsError::Unreachable`], worth retrying.
//! - Kiwi HTML-escapes every string it is given before it stores or compares it, and answers
//!   with the stored, escaped text; so queries go as plain text and every string of an answer
//!   is unescaped here.
//! - Lookups use Django field lookups (`{"name": ..., "product": 3}`).
//!
//! The password is a [`Secret`]; it and the session key are registered with the
//! [`Redactor`] that cleans every error's text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};

use super::{
    CaseInfo, Ensured, Execution, ExecutionChange, NewCase, NewPlan, NewRun, Outcome, Plan, PlanRef,
    PlanType, TestManagement, TmsError, User,
};
use crate::integrations::redact::Redactor;
use crate::integrations::settings::TmsSettings;
use crate::secrets::Secret;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Classification of the products Tomato creates (Kiwi requires one).
pub const CLASSIFICATION: &str = "Tomato";
/// The category every product has from its creation.
const DEFAULT_CATEGORY: &str = "--default--";

/// A Kiwi TCMS site, signed in as one user.
pub struct Kiwi {
    site: Url,
    endpoint: Url,
    user: String,
    password: Secret,
    http: reqwest::Client,
    session: Mutex<Option<Secret>>,
    next_id: AtomicU64,
    redactor: std::sync::Mutex<Redactor>,
    /// Execution statuses by id: `(name, weight)`. They never change while Kiwi runs.
    statuses: OnceCell<HashMap<u64, (String, i64)>>,
}

impl Kiwi {
    pub fn new(settings: &TmsSettings, mut redactor: Redactor) -> Result<Kiwi, String> {
        redactor.add(settings.password.expose());
        let site = settings.url.clone();
        let endpoint = site
            .join("json-rpc/")
            .map_err(|e| format!("{}: cannot form the JSON-RPC URL: {e}", settings.url))?;
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tomato/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Kiwi {
            site,
            endpoint,
            user: settings.user.clone(),
            password: settings.password.clone(),
            http,
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
            redactor: std::sync::Mutex::new(redactor),
            statuses: OnceCell::new(),
        })
    }

    fn clean(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clean(text)
    }

    /// One JSON-RPC request, with the session cookie when there is one.
    async fn post(&self, method: &str, params: Value, session: Option<&Secret>) -> Result<Value, TmsError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        let mut req = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(s) = session {
            let mut cookie = reqwest::header::HeaderValue::from_str(&format!("sessionid={}", s.expose()))
                .map_err(|_| {
                    TmsError::Refused("Kiwi TCMS answered a session key that is not a cookie".into())
                })?;
            cookie.set_sensitive(true);
            req = req.header(reqwest::header::COOKIE, cookie);
        }
        let host = self.site.host_str().unwrap_or_default().to_string();
        let response = req.send().await.map_err(|e| {
            TmsError::Unreachable(self.clean(&format!(
                "Kiwi TCMS at {host}: {}",
                crate::integrations::email::chain(&e.without_url())
            )))
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TmsError::Unreachable(format!(
                "Kiwi TCMS at {host}: {method}: HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(TmsError::Refused(format!(
                "Kiwi TCMS at {host}: {method}: HTTP {status} (is TOMATO_TMS_URL the Kiwi TCMS site?)"
            )));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|_| {
            TmsError::Refused(format!(
                "Kiwi TCMS at {host}: {method}: the answer is not JSON-RPC (is TOMATO_TMS_URL the Kiwi TCMS site?)"
            ))
        })?;
        if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(unescape)
                .unwrap_or_else(|| err.to_string());
            let message = message.trim_start_matches("Internal error: ").to_string();
            return Err(TmsError::Refused(
                self.clean(&format!("Kiwi TCMS: {method}: {message}")),
            ));
        }
        Ok(unescape_all(answer.get("result").cloned().unwrap_or(Value::Null)))
    }

    async fn login(&self) -> Result<Secret, TmsError> {
        let key = self
            .post("Auth.login", json!([self.user, self.password.expose()]), None)
            .await
            .map_err(|e| match e {
                TmsError::Refused(r) => TmsError::Refused(format!("signing in as {}: {r}", self.user)),
                other => other,
            })?;
        let key = key
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TmsError::Refused("Kiwi TCMS: Auth.login answered no session key".into()))?;
        self.redactor.lock().unwrap_or_else(|p| p.into_inner()).add(key);
        Ok(Secret::new(key))
    }

    /// Calls `method`, signing in first when needed and once more when the session is refused.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, TmsError> {
        let mut session = self.session.lock().await;
        if session.is_none() {
            *session = Some(self.login().await?);
        }
        let result = self.post(method, params.clone(), session.as_ref()).await;
        match result {
            Err(TmsError::Refused(r)) if r.contains("Authentication failed") => {
                *session = Some(self.login().await?);
                self.post(method, params, session.as_ref()).await
            }
            other => other,
        }
    }

    /// `<Kind>.filter(query)` as a list of objects.
    async fn filter(&self, kind: &str, query: Value) -> Result<Vec<Value>, TmsError> {
        match self.call(&format!("{kind}.filter"), json!([query])).await? {
            Value::Array(items) => Ok(items),
            other => Err(TmsError::Refused(format!(
                "Kiwi TCMS: {kind}.filter answered {other} instead of a list"
            ))),
        }
    }

    /// The id of the first object matching `query`, if any.
    async fn first_id(&self, kind: &str, query: Value) -> Result<Option<u64>, TmsError> {
        Ok(self.filter(kind, query).await?.first().and_then(|o| id(o, "id")))
    }

    /// Finds by `query`, else creates from `values`.
    async fn find_or_create(&self, kind: &str, query: Value, values: Value) -> Result<Ensured, TmsError> {
        if let Some(id) = self.first_id(kind, query).await? {
            return Ok(Ensured { id, created: false });
        }
        let created = self.call(&format!("{kind}.create"), json!([values])).await?;
        let id = id(&created, "id")
            .ok_or_else(|| TmsError::Refused(format!("Kiwi TCMS: {kind}.create answered no id")))?;
        Ok(Ensured { id, created: true })
    }

    async fn statuses(&self) -> Result<&HashMap<u64, (String, i64)>, TmsError> {
        self.statuses
            .get_or_try_init(|| async {
                let all = self.filter("TestExecutionStatus", json!({})).await?;
                Ok(all
                    .iter()
                    .filter_map(|s| {
                        Some((
                            id(s, "id")?,
                            (
                                s.get("name")?.as_str()?.to_string(),
                                s.get("weight").and_then(Value::as_i64).unwrap_or(0),
                            ),
                        ))
                    })
                    .collect())
            })
            .await
    }

    fn execution(&self, e: &Value, statuses: &HashMap<u64, (String, i64)>) -> Option<Execution> {
        let status_id = id(e, "status")?;
        let (name, weight) = statuses
            .get(&status_id)
            .cloned()
            .unwrap_or_else(|| (format!("status {status_id}"), 0));
        Some(Execution {
            id: id(e, "id")?,
            case_id: id(e, "case")?,
            case_summary: str_of(e, "case__summary"),
            assignee: e
                .get("assignee__username")
                .and_then(Value::as_str)
                .map(str::to_string),
            outcome: outcome(&name, weight),
            status: name,
        })
    }
}

/// What a status means for progress: Kiwi gives each a weight — positive for a pass
/// (`PASSED`, `WAIVED`), negative for a failure (`FAILED`, `ERROR`, `BLOCKED`), zero while
/// there is no verdict (`IDLE`, `RUNNING`, `PAUSED`).
pub fn outcome(name: &str, weight: i64) -> Outcome {
    match weight {
        0 => Outcome::Idle,
        w if w > 0 => Outcome::Passed,
        _ if name.eq_ignore_ascii_case("BLOCKED") => Outcome::Blocked,
        _ => Outcome::Failed,
    }
}

fn id(v: &Value, field: &str) -> Option<u64> {
    v.get(field).and_then(Value::as_u64)
}

fn str_of(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Undoes the HTML escaping Kiwi applies to stored text (Python's `html.escape`).
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn unescape_all(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(unescape(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(unescape_all).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, unescape_all(v))).collect()),
        other => other,
    }
}

#[async_trait]
impl TestManagement for Kiwi {
    fn describe(&self) -> String {
        format!("Kiwi TCMS at {}", self.site)
    }

    fn run_url(&self, run: u64) -> String {
        format!("{}runs/{run}/", self.site)
    }

    fn case_url(&self, case: u64) -> String {
        format!("{}case/{case}/", self.site)
    }

    async fn find_plan(&self, plan: &PlanRef) -> Result<Option<Plan>, TmsError> {
        let query = match plan {
            PlanRef::Id(id) => json!({"pk": id}),
            PlanRef::Name(name) => json!({"name": name}),
        };
        let found = self.filter("TestPlan", query).await?;
        Ok(found.first().and_then(|p| {
            Some(Plan {
                id: id(p, "id")?,
                name: str_of(p, "name"),
                product_id: id(p, "product")?,
                product: str_of(p, "product__name"),
                version_id: id(p, "product_version")?,
                version: str_of(p, "product_version__value"),
                type_id: id(p, "type")?,
            })
        }))
    }

    async fn plan_cases(&self, plan: u64) -> Result<Vec<CaseInfo>, TmsError> {
        let confirmed: Vec<u64> = self
            .filter("TestCaseStatus", json!({"is_confirmed": true}))
            .await?
            .iter()
            .filter_map(|s| id(s, "id"))
            .collect();
        let mut cases: Vec<CaseInfo> = self
            .filter("TestCase", json!({"plan": plan}))
            .await?
            .iter()
            .filter_map(|c| {
                Some(CaseInfo {
                    id: id(c, "id")?,
                    summary: str_of(c, "summary"),
                    confirmed: id(c, "case_status").is_some_and(|s| confirmed.contains(&s)),
                })
            })
            .collect();
        cases.sort_by_key(|c| c.id);
        cases.dedup_by_key(|c| c.id);
        Ok(cases)
    }

    async fn find_users(&self, names: &[String]) -> Result<Vec<User>, TmsError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.filter("User", json!({"username__in": names})).await?;
        Ok(found
            .iter()
            .filter_map(|u| {
                Some(User {
                    id: id(u, "id")?,
                    username: str_of(u, "username"),
                    email: str_of(u, "email"),
                })
            })
            .collect())
    }

    async fn ensure_product(&self, name: &str) -> Result<Ensured, TmsError> {
        if let Some(id) = self.first_id("Product", json!({"name": name})).await? {
            return Ok(Ensured { id, created: false });
        }
        let classification = self
            .find_or_create(
                "Classification",
                json!({"name": CLASSIFICATION}),
                json!({"name": CLASSIFICATION}),
            )
            .await?;
        self.find_or_create(
            "Product",
            json!({"name": name}),
            json!({"name": name, "classification": classification.id, "description": "Created by Tomato"}),
        )
        .await
    }

    async fn ensure_version(&self, product: u64, value: &str) -> Result<Ensured, TmsError> {
        self.find_or_create(
            "Version",
            json!({"product": product, "value": value}),
            json!({"product": product, "value": value}),
        )
        .await
    }

    async fn ensure_build(&self, version: u64, name: &str) -> Result<Ensured, TmsError> {
        self.find_or_create(
            "Build",
            json!({"version": version, "name": name}),
            json!({"version": version, "name": name, "is_active": true}),
        )
        .await
    }

    async fn ensure_plan(&self, plan: &NewPlan) -> Result<Ensured, TmsError> {
        let query =
            json!({"name": plan.name, "product": plan.product_id, "product_version": plan.version_id});
        if let Some(id) = self.first_id("TestPlan", query.clone()).await? {
            return Ok(Ensured { id, created: false });
        }
        let type_id = match &plan.plan_type {
            PlanType::Id(id) => *id,
            PlanType::Named(name) => match self.first_id("PlanType", json!({"name": name})).await? {
                Some(id) => id,
                None => self
                    .first_id("PlanType", json!({}))
                    .await?
                    .ok_or_else(|| TmsError::Refused("Kiwi TCMS has no plan type".into()))?,
            },
        };
        let mut values = json!({
            "name": plan.name,
            "product": plan.product_id,
            "product_version": plan.version_id,
            "type": type_id,
            "text": plan.text,
            "is_active": true,
        });
        if let Some(parent) = plan.parent {
            values["parent"] = json!(parent);
        }
        self.find_or_create("TestPlan", query, values).await
    }

    async fn link_cases(&self, plan: u64, cases: &[u64]) -> Result<(), TmsError> {
        let linked: Vec<u64> = self
            .filter("TestCase", json!({"plan": plan}))
            .await?
            .iter()
            .filter_map(|c| id(c, "id"))
            .collect();
        for case in cases.iter().filter(|c| !linked.contains(c)) {
            self.call("TestPlan.add_case", json!([plan, case])).await?;
        }
        Ok(())
    }

    async fn ensure_case(&self, case: &NewCase) -> Result<Ensured, TmsError> {
        let query =
            json!({"summary": case.summary, "category__product": case.product_id, "is_automated": true});
        let ensured = match self.first_id("TestCase", query).await? {
            Some(id) => Ensured { id, created: false },
            None => {
                let category = self
                    .first_id(
                        "Category",
                        json!({"product": case.product_id, "name": DEFAULT_CATEGORY}),
                    )
                    .await?
                    .ok_or_else(|| {
                        TmsError::Refused(format!(
                            "Kiwi TCMS: product {} has no {DEFAULT_CATEGORY} category",
                            case.product_id
                        ))
                    })?;
                let confirmed = self
                    .first_id("TestCaseStatus", json!({"is_confirmed": true}))
                    .await?
                    .ok_or_else(|| TmsError::Refused("Kiwi TCMS has no confirmed case status".into()))?;
                let priority = self
                    .first_id("Priority", json!({"is_active": true}))
                    .await?
                    .ok_or_else(|| TmsError::Refused("Kiwi TCMS has no active priority".into()))?;
                let created = self
                    .call(
                        "TestCase.create",
                        json!([{
                            "summary": case.summary,
                            "product": case.product_id,
                            "category": category,
                            "priority": priority,
                            "case_status": confirmed,
                            "is_automated": true,
                            "text": case.text,
                        }]),
                    )
                    .await?;
                Ensured {
                    id: id(&created, "id").ok_or_else(|| {
                        TmsError::Refused("Kiwi TCMS: TestCase.create answered no id".into())
                    })?,
                    created: true,
                }
            }
        };
        self.call("TestPlan.add_case", json!([case.plan_id, ensured.id]))
            .await?;
        Ok(ensured)
    }

    async fn ensure_run(&self, run: &NewRun) -> Result<Ensured, TmsError> {
        self.find_or_create(
            "TestRun",
            json!({"summary": run.summary, "plan": run.plan_id}),
            json!({
                "summary": run.summary,
                "plan": run.plan_id,
                "build": run.build_id,
                "manager": self.user,
                "notes": run.notes,
            }),
        )
        .await
    }

    async fn add_cases(&self, run: u64, cases: &[u64]) -> Result<Vec<Execution>, TmsError> {
        let present: Vec<u64> = self.executions(run).await?.iter().map(|e| e.case_id).collect();
        for case in cases.iter().filter(|c| !present.contains(c)) {
            self.call("TestRun.add_case", json!([run, case])).await?;
        }
        self.executions(run).await
    }

    async fn executions(&self, run: u64) -> Result<Vec<Execution>, TmsError> {
        let statuses = self.statuses().await?;
        let mut out: Vec<Execution> = self
            .filter("TestExecution", json!({"run": run}))
            .await?
            .iter()
            .filter_map(|e| self.execution(e, statuses))
            .collect();
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    async fn update_execution(&self, execution: u64, change: &ExecutionChange) -> Result<(), TmsError> {
        let mut values = serde_json::Map::new();
        if let Some(name) = &change.status {
            let statuses = self.statuses().await?;
            let status = statuses
                .iter()
                .find(|(_, (n, _))| n.eq_ignore_ascii_case(name))
                .map(|(id, _)| *id)
                .ok_or_else(|| TmsError::Refused(format!("Kiwi TCMS has no execution status {name:?}")))?;
            values.insert("status".into(), json!(status));
        }
        if let Some(assignee) = change.assignee {
            values.insert("assignee".into(), json!(assignee));
        }
        if values.is_empty() {
            return Ok(());
        }
        self.call("TestExecution.update", json!([execution, values]))
            .await
            .map(|_| ())
    }

    async fn comment_once(&self, execution: u64, text: &str) -> Result<bool, TmsError> {
        let comments = self
            .call("TestExecution.get_comments", json!([execution]))
            .await?;
        let present = comments.as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("comment").and_then(Value::as_str) == Some(text))
        });
        if present {
            return Ok(false);
        }
        self.call("TestExecution.add_comment", json!([execution, text]))
            .await?;
        Ok(true)
    }

    async fn stop_run(&self, run: u64) -> Result<(), TmsError> {
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        self.call("TestRun.update", json!([run, {"stop_date": now}]))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiwis_escaping_is_undone_in_every_string_of_an_answer() {
        let answer =
            json!({"name": "a &lt;b&gt; &amp; &quot;c&quot; &#x27;d&#x27;", "list": ["&amp;amp;"], "n": 3});
        assert_eq!(
            unescape_all(answer),
            json!({"name": "a <b> & \"c\" 'd'", "list": ["&amp;"], "n": 3})
        );
    }

    #[test]
    fn a_status_weight_says_passed_failed_blocked_or_no_verdict() {
        assert_eq!(outcome("IDLE", 0), Outcome::Idle);
        assert_eq!(outcome("PAUSED", 0), Outcome::Idle);
        assert_eq!(outcome("PASSED", 20), Outcome::Passed);
        assert_eq!(outcome("WAIVED", 10), Outcome::Passed);
        assert_eq!(outcome("FAILED", -30), Outcome::Failed);
        assert_eq!(outcome("ERROR", -20), Outcome::Failed);
        assert_eq!(outcome("BLOCKED", -10), Outcome::Blocked);
    }
}
