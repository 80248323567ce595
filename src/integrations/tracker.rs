//! The issue tracker — Jira (REST API v2) or Yandex Tracker (API v2) — for everything Tomato
//! does there: a run's report comment on its `issueKey`, and a regression's ticket (finding or
//! creating it, the release version, comments).
//!
//! Requests are values built by pure functions (tested without a network) and sent by
//! [`HttpTracker`], the one implementation of [`IssueTracker`] (a run's comment is sent with
//! [`comment`] and [`super::http::send`]). A created ticket carries a
//! label (Jira) or tag (Yandex) unique to the regression (`tomato-<uid>`), and creation looks
//! for it first, so a retry or a restart after the tracker accepted the ticket finds it
//! instead of making a second one.
//!
//! - Jira: versions `GET /rest/api/2/project/{key}/versions`, `POST /rest/api/2/version`;
//!   search `GET /rest/api/2/search?jql=...`; create `POST /rest/api/2/issue` (a `Task`, with
//!   `fixVersions`); comment `POST /rest/api/2/issue/{key}/comment`.
//! - Yandex Tracker: versions `GET /v2/queues/{queue}/versions`, `POST /v2/versions`; search
//!   `POST /v2/issues/_search` by tag; create `POST /v2/issues` (with `unique`, which the
//!   tracker itself refuses to repeat); comment `POST /v2/issues/{key}/comments`.
//!
//! Why v2 for Jira: v3 wants the Atlassian Document Format, and v2's wiki markup is accepted
//! by Cloud, Server and Data Center alike. Jira signs in with `Authorization: Basic` (user and
//! API token) or `Bearer` (personal access token); Yandex Tracker with `OAuth <token>` (or
//! `Bearer` with an IAM token) and the organisation in `X-Org-ID` (Yandex 360) or
//! `X-Cloud-Org-ID` (Yandex Cloud).

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::delivery::DeliveryError;
use super::http::{self, Auth, JsonPost};
use super::redact::Redactor;
use super::settings::{TrackerAuth, TrackerKind, TrackerSettings};

/// A ticket to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIssue {
    /// Jira project key or Yandex Tracker queue.
    pub project: String,
    pub summary: String,
    pub description: String,
    /// Marks the ticket as this regression's (`tomato-<uid>`).
    pub label: String,
    /// The release version in the tracker (Jira: its name; Yandex: its id).
    pub version: Option<String>,
}

/// The tracker, as regressions use it.
#[async_trait]
pub trait IssueTracker: Send + Sync {
    fn kind(&self) -> TrackerKind;
    /// The ticket's web page.
    fn issue_url(&self, key: &str) -> String;
    /// The release version in the project (found or created), as new issues name it.
    async fn ensure_version(&self, project: &str, name: &str) -> Result<String, DeliveryError>;
    /// The key of the project's issue carrying `label`, if there is one.
    async fn find_issue(&self, project: &str, label: &str) -> Result<Option<String>, DeliveryError>;
    /// Creates the issue; returns its key.
    async fn create_issue(&self, issue: &NewIssue) -> Result<String, DeliveryError>;
    async fn comment(&self, key: &str, text: &str) -> Result<(), DeliveryError>;
    /// The ticket's status, and whether the tracker counts it as closed (a mute that lifts
    /// itself on a closed ticket reads it).
    async fn ticket_state(&self, key: &str) -> Result<crate::mute::TicketState, DeliveryError>;
}

fn url(settings: &TrackerSettings, path: &str) -> Url {
    let base = settings.url.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{path}")).expect("a checked base URL followed by a path is a URL")
}

fn request(settings: &TrackerSettings, path: &str, body: Value) -> JsonPost {
    JsonPost {
        url: url(settings, path),
        label: label(settings),
        auth: auth(settings),
        headers: headers(settings),
        body,
    }
}

/// `GET` one issue (its status). The key has been checked (`PROJECT-123`), so it is safe in
/// a path.
pub fn issue_request(settings: &TrackerSettings, key: &str) -> (Method, JsonPost) {
    let path = match settings.kind {
        TrackerKind::Jira => format!("/rest/api/2/issue/{key}?fields=status"),
        TrackerKind::Yandex => format!("/v2/issues/{key}"),
    };
    (Method::GET, request(settings, &path, Value::Null))
}

/// An issue's status from the tracker's answer to [`issue_request`]:
/// - Jira: `fields.status.name`, closed when its `statusCategory.key` is `done` (every
///   workflow's final statuses, whatever their names);
/// - Yandex Tracker: `status.display` (else `status.key`), closed when the issue has a
///   `resolution` or its status key is `closed` or `resolved` (the built-in final statuses).
pub fn ticket_state(kind: TrackerKind, answer: &Value) -> Option<crate::mute::TicketState> {
    match kind {
        TrackerKind::Jira => {
            let status = answer.pointer("/fields/status")?;
            Some(crate::mute::TicketState {
                status: status.get("name")?.as_str()?.to_string(),
                closed: status.pointer("/statusCategory/key").and_then(Value::as_str) == Some("done"),
            })
        }
        TrackerKind::Yandex => {
            let status = answer.get("status")?;
            let key = status.get("key").and_then(Value::as_str).unwrap_or_default();
            let name = status.get("display").and_then(Value::as_str).unwrap_or(key);
            if name.is_empty() {
                return None;
            }
            let resolved = answer.get("resolution").is_some_and(|r| !r.is_null());
            Some(crate::mute::TicketState {
                status: name.to_string(),
                closed: resolved || matches!(key, "closed" | "resolved"),
            })
        }
    }
}

/// `GET` the project's versions.
pub fn versions_request(settings: &TrackerSettings, project: &str) -> (Method, JsonPost) {
    let path = match settings.kind {
        TrackerKind::Jira => format!("/rest/api/2/project/{project}/versions"),
        TrackerKind::Yandex => format!("/v2/queues/{project}/versions"),
    };
    (Method::GET, request(settings, &path, Value::Null))
}

/// `POST` a new version.
pub fn create_version_request(settings: &TrackerSettings, project: &str, name: &str) -> (Method, JsonPost) {
    let (path, body) = match settings.kind {
        TrackerKind::Jira => ("/rest/api/2/version", json!({"name": name, "project": project})),
        TrackerKind::Yandex => ("/v2/versions", json!({"queue": project, "name": name})),
    };
    (Method::POST, request(settings, path, body))
}

/// Search for the project's issue with `label`.
pub fn search_request(settings: &TrackerSettings, project: &str, label: &str) -> (Method, JsonPost) {
    match settings.kind {
        TrackerKind::Jira => {
            let jql = format!("project = \"{project}\" AND labels = \"{label}\"");
            let mut req = request(settings, "/rest/api/2/search", Value::Null);
            req.url
                .query_pairs_mut()
                .append_pair("jql", &jql)
                .append_pair("fields", "key");
            (Method::GET, req)
        }
        TrackerKind::Yandex => (
            Method::POST,
            request(
                settings,
                "/v2/issues/_search",
                json!({"filter": {"queue": project, "tags": [label]}}),
            ),
        ),
    }
}

/// `POST` a new issue.
pub fn create_issue_request(settings: &TrackerSettings, issue: &NewIssue) -> (Method, JsonPost) {
    let body = match settings.kind {
        TrackerKind::Jira => {
            let mut fields = json!({
                "project": {"key": issue.project},
                "summary": issue.summary,
                "description": issue.description,
                "issuetype": {"name": "Task"},
                "labels": [issue.label],
            });
            if let Some(v) = &issue.version {
                fields["fixVersions"] = json!([{"name": v}]);
            }
            json!({ "fields": fields })
        }
        TrackerKind::Yandex => {
            let mut body = json!({
                "queue": issue.project,
                "summary": issue.summary,
                "description": issue.description,
                "tags": [issue.label],
                "unique": issue.label,
            });
            if let Some(v) = &issue.version {
                body["fixVersions"] = json!([v]);
            }
            body
        }
    };
    let path = match settings.kind {
        TrackerKind::Jira => "/rest/api/2/issue",
        TrackerKind::Yandex => "/v2/issues",
    };
    (Method::POST, request(settings, path, body))
}

/// The version named `name` in a versions answer, as issues refer to it (Jira: the name;
/// Yandex: the id).
fn version_ref(kind: TrackerKind, answer: &Value, name: &str) -> Option<String> {
    let found = answer
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))?;
    match kind {
        TrackerKind::Jira => Some(name.to_string()),
        TrackerKind::Yandex => found.get("id").map(|id| match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    }
}

/// The tracker of the report settings.
pub struct HttpTracker {
    settings: TrackerSettings,
    http: reqwest::Client,
    redactor: Redactor,
}

impl HttpTracker {
    pub fn new(settings: TrackerSettings, redactor: Redactor) -> Result<HttpTracker, String> {
        Ok(HttpTracker {
            settings,
            http: http::client()?,
            redactor,
        })
    }

    async fn send(&self, (method, req): (Method, JsonPost)) -> Result<Value, DeliveryError> {
        http::exchange(&self.http, method, &req, &self.redactor).await
    }
}

#[async_trait]
impl IssueTracker for HttpTracker {
    fn kind(&self) -> TrackerKind {
        self.settings.kind
    }

    fn issue_url(&self, key: &str) -> String {
        match self.settings.kind {
            TrackerKind::Jira => format!(
                "{}/browse/{key}",
                self.settings.url.as_str().trim_end_matches('/')
            ),
            // The API's host is not the web UI's; Yandex Tracker's UI is one site for all.
            TrackerKind::Yandex => format!("https://tracker.yandex.ru/{key}"),
        }
    }

    async fn ensure_version(&self, project: &str, name: &str) -> Result<String, DeliveryError> {
        let kind = self.settings.kind;
        let existing = self.send(versions_request(&self.settings, project)).await?;
        if let Some(v) = version_ref(kind, &existing, name) {
            return Ok(v);
        }
        let created = self
            .send(create_version_request(&self.settings, project, name))
            .await?;
        match kind {
            TrackerKind::Jira => Ok(name.to_string()),
            TrackerKind::Yandex => created
                .get("id")
                .map(|id| match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .ok_or_else(|| {
                    DeliveryError::Permanent("the tracker created a version without an id".into())
                }),
        }
    }

    async fn find_issue(&self, project: &str, label: &str) -> Result<Option<String>, DeliveryError> {
        let answer = self.send(search_request(&self.settings, project, label)).await?;
        let issues = match self.settings.kind {
            TrackerKind::Jira => answer.get("issues").cloned().unwrap_or(Value::Null),
            TrackerKind::Yandex => answer,
        };
        Ok(issues
            .as_array()
            .and_then(|a| a.first())
            .and_then(|i| i.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    async fn create_issue(&self, issue: &NewIssue) -> Result<String, DeliveryError> {
        let answer = self.send(create_issue_request(&self.settings, issue)).await?;
        answer
            .get("key")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| DeliveryError::Permanent("the tracker created an issue without a key".into()))
    }

    async fn comment(&self, key: &str, text: &str) -> Result<(), DeliveryError> {
        let post = comment(&self.settings, key, text.to_string());
        http::send(&self.http, &post, &self.redactor).await
    }

    async fn ticket_state(&self, key: &str) -> Result<crate::mute::TicketState, DeliveryError> {
        let answer = self.send(issue_request(&self.settings, key)).await?;
        ticket_state(self.settings.kind, &answer)
            .ok_or_else(|| DeliveryError::Permanent(format!("the tracker's answer for {key} has no status")))
    }
}

/// Reads a ticket's state with `tracker`, if one is configured (both modes' mute passes).
pub async fn read_ticket(
    tracker: Option<std::sync::Arc<dyn IssueTracker>>,
    key: String,
) -> Result<crate::mute::TicketState, String> {
    match tracker {
        Some(t) => t.ticket_state(&key).await.map_err(|e| e.reason().to_string()),
        None => Err("no tracker is configured (TOMATO_TRACKER_URL)".into()),
    }
}

/// The request adding `text` as a comment to `issue_key`. The key has been checked at
/// admission (`PROJECT-123`), so it is safe in a path.
pub fn comment(settings: &TrackerSettings, issue_key: &str, text: String) -> JsonPost {
    let base = settings.url.as_str().trim_end_matches('/');
    let (path, body) = match settings.kind {
        TrackerKind::Jira => (
            format!("/rest/api/2/issue/{issue_key}/comment"),
            json!({ "body": text }),
        ),
        TrackerKind::Yandex => (
            format!("/v2/issues/{issue_key}/comments"),
            json!({ "text": text }),
        ),
    };
    let url = reqwest::Url::parse(&format!("{base}{path}"))
        .expect("a checked base URL followed by a path of checked parts is a URL");
    JsonPost {
        label: label(settings),
        url,
        auth: auth(settings),
        headers: headers(settings),
        body,
    }
}

/// How requests to the tracker sign in.
pub fn auth(settings: &TrackerSettings) -> Auth {
    match &settings.auth {
        TrackerAuth::Basic { user, token } => Auth::Basic {
            user: user.clone(),
            password: token.clone(),
        },
        TrackerAuth::Bearer(token) => Auth::Token {
            scheme: "Bearer",
            token: token.clone(),
        },
        TrackerAuth::OAuth(token) => Auth::Token {
            scheme: "OAuth",
            token: token.clone(),
        },
    }
}

/// Names the tracker in reasons: `jira jira.example.com`.
pub fn label(settings: &TrackerSettings) -> String {
    format!(
        "{} {}",
        settings.kind.as_str(),
        settings.url.host_str().unwrap_or_default()
    )
}

/// Headers every request to the tracker carries (Yandex Tracker's organisation).
pub fn headers(settings: &TrackerSettings) -> Vec<(&'static str, String)> {
    settings.org.iter().map(|(h, v)| (*h, v.clone())).collect()
}

/// Jira wiki markup: a backslash before each character that starts markup, and one line (a
/// newline would end the list item or table row the value is in).
pub fn escape_jira(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::text::one_line(text).chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '?' | '-' | '+' | '^' | '~' | '|' | '!' | '{' | '}' | '[' | ']' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Markdown (CommonMark, YFM) inside a line: a backslash before each character that can
/// start inline markup there — emphasis, code, links and images (`[`), HTML and autolinks
/// (`<`), tables (`|`), strikethrough (`~`), entities (`&`), YFM's `{{ }}`/`{% %}` — and one
/// line (a newline could start a heading or a list). CommonMark allows a backslash before
/// any punctuation, so these all render as the characters themselves.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::text::one_line(text).chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '<' | '>' | '|' | '~' | '&'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn settings(kind: TrackerKind) -> TrackerSettings {
        TrackerSettings {
            kind,
            url: Url::parse(match kind {
                TrackerKind::Jira => "https://jira.example.com/",
                TrackerKind::Yandex => "https://api.tracker.yandex.net",
            })
            .unwrap(),
            auth: TrackerAuth::Bearer(Secret::new("t")),
            org: (kind == TrackerKind::Yandex).then(|| ("X-Org-ID", "42".to_string())),
        }
    }

    fn issue() -> NewIssue {
        NewIssue {
            project: "QA".into(),
            summary: "Regression demo 2.0".into(),
            description: "cases".into(),
            label: "tomato-1234".into(),
            version: Some("2.0".into()),
        }
    }

    #[test]
    fn a_tickets_state_is_read_from_each_trackers_real_answer_shape() {
        let (method, req) = issue_request(&settings(TrackerKind::Jira), "QA-7");
        assert_eq!(method, Method::GET);
        assert_eq!(
            req.url.as_str(),
            "https://jira.example.com/rest/api/2/issue/QA-7?fields=status"
        );
        let (_, req) = issue_request(&settings(TrackerKind::Yandex), "QA-7");
        assert_eq!(req.url.as_str(), "https://api.tracker.yandex.net/v2/issues/QA-7");
        assert_eq!(req.headers, vec![("X-Org-ID", "42".to_string())]);

        // Jira: a custom final status is closed by its category, whatever its name.
        let jira = |name: &str, category: &str| {
            json!({"id": "10001", "key": "QA-7", "fields": {"status": {"name": name, "id": "3",
                "statusCategory": {"id": 3, "key": category, "name": "Done"}}}})
        };
        let state = |kind, v: &Value| ticket_state(kind, v).map(|t| (t.status, t.closed));
        assert_eq!(
            state(TrackerKind::Jira, &jira("Shipped", "done")),
            Some(("Shipped".into(), true))
        );
        assert_eq!(
            state(TrackerKind::Jira, &jira("In Progress", "indeterminate")),
            Some(("In Progress".into(), false))
        );
        assert_eq!(state(TrackerKind::Jira, &json!({"key": "QA-7"})), None);

        let yandex = |key: &str, display: &str, resolution: Value| {
            json!({"key": "QA-7", "status": {"self": "https://api.tracker.yandex.net/v2/statuses/3",
                "id": "3", "key": key, "display": display}, "resolution": resolution})
        };
        assert_eq!(
            state(TrackerKind::Yandex, &yandex("closed", "Закрыт", Value::Null)),
            Some(("Закрыт".into(), true))
        );
        assert_eq!(
            state(
                TrackerKind::Yandex,
                &yandex("inReview", "Ревью", json!({"key": "fixed", "display": "Решён"}))
            ),
            Some(("Ревью".into(), true)),
            "a resolution closes it"
        );
        assert_eq!(
            state(TrackerKind::Yandex, &yandex("open", "Открыт", Value::Null)),
            Some(("Открыт".into(), false))
        );
    }

    #[test]
    fn jira_issue_is_a_task_with_the_label_and_the_fix_version() {
        let (method, req) = create_issue_request(&settings(TrackerKind::Jira), &issue());
        assert_eq!(method, Method::POST);
        assert_eq!(req.url.as_str(), "https://jira.example.com/rest/api/2/issue");
        assert_eq!(
            req.body,
            json!({"fields": {"project": {"key": "QA"}, "summary": "Regression demo 2.0", "description": "cases",
                "issuetype": {"name": "Task"}, "labels": ["tomato-1234"], "fixVersions": [{"name": "2.0"}]}})
        );
    }

    #[test]
    fn yandex_issue_is_unique_per_regression_and_names_the_version_by_id() {
        let mut i = issue();
        i.version = Some("7".into());
        let (_, req) = create_issue_request(&settings(TrackerKind::Yandex), &i);
        assert_eq!(req.url.as_str(), "https://api.tracker.yandex.net/v2/issues");
        assert_eq!(req.body["unique"], "tomato-1234");
        assert_eq!(req.body["tags"], json!(["tomato-1234"]));
        assert_eq!(req.body["fixVersions"], json!(["7"]));
        assert_eq!(req.headers, vec![("X-Org-ID", "42".to_string())]);
    }

    #[test]
    fn versions_and_search_go_to_each_trackers_paths() {
        let jira = settings(TrackerKind::Jira);
        assert_eq!(
            versions_request(&jira, "QA").1.url.as_str(),
            "https://jira.example.com/rest/api/2/project/QA/versions"
        );
        let (m, search) = search_request(&jira, "QA", "tomato-1234");
        assert_eq!(m, Method::GET);
        assert_eq!(
            search.url.query_pairs().find(|(k, _)| k == "jql").unwrap().1,
            "project = \"QA\" AND labels = \"tomato-1234\""
        );
        assert_eq!(
            create_version_request(&jira, "QA", "2.0").1.body,
            json!({"name": "2.0", "project": "QA"})
        );
        let yandex = settings(TrackerKind::Yandex);
        assert_eq!(
            versions_request(&yandex, "QA").1.url.as_str(),
            "https://api.tracker.yandex.net/v2/queues/QA/versions"
        );
        let (m, search) = search_request(&yandex, "QA", "tomato-1234");
        assert_eq!((m, search.url.path()), (Method::POST, "/v2/issues/_search"));
        assert_eq!(
            search.body,
            json!({"filter": {"queue": "QA", "tags": ["tomato-1234"]}})
        );
        assert_eq!(
            create_version_request(&yandex, "QA", "2.0").1.body,
            json!({"queue": "QA", "name": "2.0"})
        );
    }

    #[test]
    fn an_existing_version_is_found_by_name() {
        let answer = json!([{"id": "3", "name": "1.0"}, {"id": 9, "name": "2.0"}]);
        assert_eq!(
            version_ref(TrackerKind::Jira, &answer, "2.0").as_deref(),
            Some("2.0")
        );
        assert_eq!(
            version_ref(TrackerKind::Yandex, &answer, "2.0").as_deref(),
            Some("9")
        );
        assert_eq!(version_ref(TrackerKind::Yandex, &answer, "3.0"), None);
    }

    fn settings_at(kind: TrackerKind, url: &str, auth: TrackerAuth) -> TrackerSettings {
        TrackerSettings {
            kind,
            url: reqwest::Url::parse(url).unwrap(),
            auth,
            org: (kind == TrackerKind::Yandex).then(|| ("X-Org-ID", "123".to_string())),
        }
    }

    #[test]
    fn jira_comment_goes_to_the_v2_comment_path_under_the_sites_base() {
        let s = settings_at(
            TrackerKind::Jira,
            "https://example.com/jira/",
            TrackerAuth::Basic {
                user: "bot".into(),
                token: Secret::new("t"),
            },
        );
        let post = comment(&s, "QA-12", "hello".into());
        assert_eq!(
            post.url.as_str(),
            "https://example.com/jira/rest/api/2/issue/QA-12/comment"
        );
        assert_eq!(post.body, json!({"body": "hello"}));
        assert!(matches!(post.auth, Auth::Basic { ref user, .. } if user == "bot"));
        assert!(post.headers.is_empty());
        assert_eq!(post.label, "jira example.com");
    }

    #[test]
    fn yandex_comment_carries_the_oauth_token_and_the_organisation() {
        let s = settings_at(
            TrackerKind::Yandex,
            "https://api.tracker.yandex.net",
            TrackerAuth::OAuth(Secret::new("y0")),
        );
        let post = comment(&s, "QA-12", "hello".into());
        assert_eq!(
            post.url.as_str(),
            "https://api.tracker.yandex.net/v2/issues/QA-12/comments"
        );
        assert_eq!(post.body, json!({"text": "hello"}));
        assert!(matches!(post.auth, Auth::Token { scheme: "OAuth", ref token } if token.expose() == "y0"));
        assert_eq!(post.headers, vec![("X-Org-ID", "123".to_string())]);
    }
}
