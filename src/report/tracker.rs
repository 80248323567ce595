//! The tracker comment on a run's `issueKey`: the request for Jira or Yandex Tracker, built
//! from the settings and the rendered comment. Pure; [`super::http::send`] sends it.
//!
//! - Jira, REST API v2: `POST {url}/rest/api/2/issue/{key}/comment` with `{"body": ...}` in
//!   wiki markup; `Authorization: Basic` (user and API token) or `Bearer` (personal access
//!   token). v2 rather than v3 because v3 wants the Atlassian Document Format, and v2's
//!   wiki markup is accepted by Cloud, Server and Data Center alike.
//! - Yandex Tracker, API v2: `POST {url}/v2/issues/{key}/comments` with `{"text": ...}` in
//!   Markdown (YFM); `Authorization: OAuth <token>` (or `Bearer` with an IAM token) and the
//!   organisation in `X-Org-ID` (Yandex 360) or `X-Cloud-Org-ID` (Yandex Cloud).

use serde_json::json;

use super::http::{Auth, JsonPost};
use super::settings::{TrackerAuth, TrackerKind, TrackerSettings};
use super::templates::{TRACKER_JIRA, TRACKER_YANDEX};

/// The template the tracker's comment is rendered from.
pub fn template(kind: TrackerKind) -> &'static str {
    match kind {
        TrackerKind::Jira => TRACKER_JIRA,
        TrackerKind::Yandex => TRACKER_YANDEX,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::content::RunReport;
    use crate::report::templates::Templates;
    use crate::secrets::Secret;

    fn settings(kind: TrackerKind, url: &str, auth: TrackerAuth) -> TrackerSettings {
        TrackerSettings {
            kind,
            url: reqwest::Url::parse(url).unwrap(),
            auth,
            org: (kind == TrackerKind::Yandex).then(|| ("X-Org-ID", "123".to_string())),
        }
    }

    #[test]
    fn jira_comment_goes_to_the_v2_comment_path_under_the_sites_base() {
        let s = settings(
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
        let s = settings(
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

    #[test]
    fn jira_comment_is_wiki_markup_with_summary_categories_and_link() {
        let text = Templates::built_in()
            .render("demo", template(TrackerKind::Jira), &RunReport::sample())
            .unwrap();
        assert!(
            text.starts_with("h3. (x) Tomato: demo smoke on localhost — Failed"),
            "{text}"
        );
        assert!(
            text.contains("||Total||Passed||Failed||Broken||Flaky||Skipped||\n|3|1|1|0|1|0|"),
            "{text}"
        );
        assert!(text.contains("h4. Failures by category\n* *Unclassified* (1)\n** cart > applies the discount — _expected 85 but was 90_"), "{text}");
        assert!(
            text.contains(
                "h4. Flaky tests\n* submits the order form (failed on attempt 1, passed on attempt 2)"
            ),
            "{text}"
        );
        assert!(
            text.contains("[Run demo\\-sample|http://localhost:8080/runs/demo-sample]"),
            "{text}"
        );
    }

    #[test]
    fn yandex_comment_is_markdown_with_summary_categories_and_link() {
        let text = Templates::built_in()
            .render("demo", template(TrackerKind::Yandex), &RunReport::sample())
            .unwrap();
        assert!(
            text.starts_with("**Tomato: demo smoke on localhost — Failed**"),
            "{text}"
        );
        assert!(text.contains("| 3 | 1 | 1 | 0 | 1 | 0 |"), "{text}");
        assert!(text.contains("#### Failures by category\n\n- **Unclassified** (1)\n  - cart \\> applies the discount — _expected 85 but was 90_"), "{text}");
        assert!(
            text.contains("- submits the order form (failed on attempt 1, passed on attempt 2)"),
            "{text}"
        );
        assert!(
            text.contains("[Run demo-sample](http://localhost:8080/runs/demo-sample)"),
            "{text}"
        );
    }
}
