//! Where reports go: the SMTP server, the tracker, webhooks, and how deliveries are retried.
//!
//! Read once at start-up from the environment and, optionally, a YAML settings file
//! (`--settings FILE` / `TOMATO_SETTINGS`); an environment variable wins over the file's
//! field. Everything is checked before the server starts, and every problem is reported at
//! once, naming the variable or the file and field — never the value, which may be a
//! password or a webhook URL whose path is its token. Secrets are kept as
//! [`Secret`]s, and every secret is registered with the [`Redactor`] that cleans
//! delivery errors.
//!
//! The settings file mirrors the variables:
//!
//! ```yaml
//! smtp: {url: "smtp://mail.example.com:587?tls=required", from: "Tomato <tomato@example.com>",
//!        user: tomato, passwordFile: /run/secrets/smtp}
//! tracker: {kind: jira, url: "https://jira.example.com", user: bot, tokenFile: /run/secrets/jira}
//! webhooks: ["https://hooks.slack.com/services/..."]
//! retry: {attempts: 6, base: 2s, max: 5m}
//! tms: {url: "https://kiwi.example.com", user: tomato, passwordFile: /run/secrets/kiwi, poll: 1m}
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;
use serde::Deserialize;

use super::delivery::RetryPolicy;
use super::redact::Redactor;
use crate::secrets::{self, Secret};

/// Yandex Tracker's API, when `TOMATO_TRACKER_URL` does not say otherwise.
pub const YANDEX_TRACKER_API: &str = "https://api.tracker.yandex.net";
/// Retry attempts allowed in the settings.
const MAX_ATTEMPTS: u32 = 20;

/// Every reporting setting, checked.
#[derive(Clone, Debug, Default)]
pub struct ReportSettings {
    pub smtp: Option<SmtpSettings>,
    pub tracker: Option<TrackerSettings>,
    /// Webhooks every run reports to (a service may add its own in packs_config).
    pub webhooks: Vec<Webhook>,
    pub retry: RetryPolicy,
    /// The test-management system (Kiwi TCMS): runs with a `version` are recorded there, and
    /// regressions are run in it.
    pub tms: Option<TmsSettings>,
    /// Knows every secret above.
    pub redactor: Redactor,
}

/// The SMTP server and the sender.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// The server without credentials (`smtp://mail.example.com:587?tls=required`), for logs.
    pub server: String,
    /// The URL as given, in lettre's form; it may hold credentials.
    pub url: Secret,
    pub from: Mailbox,
    /// User and password, from the URL or the separate settings.
    pub credentials: Option<(String, Secret)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerKind {
    /// Jira (Server, Data Center or Cloud), REST API v2, wiki markup.
    Jira,
    /// Yandex Tracker, API v2, Markdown (YFM).
    Yandex,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Jira => "jira",
            TrackerKind::Yandex => "yandex",
        }
    }
}

/// How Tomato signs in to the tracker.
#[derive(Clone, Debug)]
pub enum TrackerAuth {
    /// `Authorization: Basic base64(user:token)` (Jira Cloud: e-mail and API token).
    Basic { user: String, token: Secret },
    /// `Authorization: Bearer <token>` (Jira personal access token, Yandex IAM token).
    Bearer(Secret),
    /// `Authorization: OAuth <token>` (Yandex Tracker's OAuth token).
    OAuth(Secret),
}

/// The tracker that receives a comment on each run's `issueKey`.
#[derive(Clone, Debug)]
pub struct TrackerSettings {
    pub kind: TrackerKind,
    /// Base URL of the API (`https://jira.example.com`, `https://api.tracker.yandex.net`).
    pub url: Url,
    pub auth: TrackerAuth,
    /// Yandex Tracker's organisation header: `(X-Org-ID | X-Cloud-Org-ID, id)`.
    pub org: Option<(&'static str, String)>,
}

/// Kiwi TCMS, reached over its JSON-RPC API as a user of its own.
#[derive(Clone, Debug)]
pub struct TmsSettings {
    /// Base URL of the Kiwi TCMS site (`https://kiwi.example.com`); the API is `<url>/json-rpc/`.
    pub url: Url,
    pub user: String,
    pub password: Secret,
    /// How often a regression in progress reads its executions (default 1m).
    pub poll: Duration,
}

/// How often regressions read their progress when the settings do not say.
pub const DEFAULT_TMS_POLL: Duration = Duration::from_secs(60);

/// One webhook URL. Its path is often the secret (Slack's incoming webhooks), so it is shown
/// only by its [`label`](Webhook::label): the host and a short stable hash of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    url: Url,
    label: String,
}

impl Webhook {
    /// Checks an `http(s)://` URL. The error never repeats the URL.
    pub fn parse(s: &str) -> Result<Webhook, String> {
        let url = Url::parse(s.trim()).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("must be an http(s) URL, not {}:", url.scheme()));
        }
        let host = url.host_str().ok_or("the URL has no host")?.to_string();
        let label = format!("{host}#{:08x}", fnv1a(url.as_str().as_bytes()) as u32);
        Ok(Webhook { url, label })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `hooks.slack.com#1a2b3c4d`: names the webhook in status and logs without its secret.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Tells the redactor what to hide: the URL, its path and its query (where webhook
    /// services keep their tokens).
    pub fn hide_in(&self, redactor: &mut Redactor) {
        redactor.add(self.url.as_str());
        if self.url.path().len() > 1 {
            redactor.add(self.url.path());
        }
        if let Some(q) = self.url.query() {
            redactor.add(q);
        }
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Webhook({})", self.label)
    }
}

/// FNV-1a, 64 bits: a stable hash (the standard library's is randomly seeded).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Every problem found in the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<String>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the report settings are invalid ({} problem(s)):",
            self.0.len()
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    tracker: RawTracker,
    #[serde(default)]
    webhooks: Vec<String>,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    tms: RawTms,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTms {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    poll: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSmtp {
    url: Option<String>,
    from: Option<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTracker {
    kind: Option<String>,
    url: Option<String>,
    auth: Option<String>,
    user: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    org: Option<String>,
    org_header: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    attempts: Option<u32>,
    base: Option<String>,
    max: Option<String>,
}

/// A setting's value and where it came from (`TOMATO_SMTP_URL`, `settings.yaml: smtp.url`).
struct Setting {
    value: String,
    origin: String,
}

/// Reads settings from the environment over the file, collecting problems.
struct Reader<'a> {
    file: Option<&'a Path>,
    var: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<String>,
    redactor: Redactor,
}

impl Reader<'_> {
    fn origin(&self, field: &str) -> String {
        match self.file {
            Some(f) => format!("{}: {field}", f.display()),
            None => field.to_string(),
        }
    }

    fn problem(&mut self, origin: &str, reason: impl fmt::Display) {
        self.errors.push(format!("{origin}: {reason}"));
    }

    /// The variable when set, else the file's field.
    fn get(&self, var: &str, from_file: &Option<String>, field: &str) -> Option<Setting> {
        if let Some(v) = (self.var)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            return Some(Setting {
                value: v,
                origin: var.to_string(),
            });
        }
        from_file
            .as_ref()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|value| Setting {
                value,
                origin: self.origin(field),
            })
    }

    /// A secret: `VAR`, `VAR_FILE`, the file's literal field, or the file named by its `*File` field.
    fn secret(
        &mut self,
        var: &str,
        literal: &Option<String>,
        path: &Option<PathBuf>,
        field: &str,
    ) -> Option<(Secret, String)> {
        let found = match secrets::from_vars(var, self.var) {
            Ok(Some(s)) => Some((s, var.to_string())),
            Err(e) => {
                self.errors.push(e);
                return None;
            }
            Ok(None) => match (literal, path) {
                (Some(v), _) if !v.is_empty() => Some((Secret::new(v.clone()), self.origin(field))),
                (_, Some(p)) => {
                    let origin = self.origin(&format!("{field}File"));
                    match secrets::read_file(p) {
                        Ok(s) => Some((s, origin)),
                        Err(e) => {
                            self.problem(&origin, format!("cannot read {}: {e}", p.display()));
                            return None;
                        }
                    }
                }
                _ => None,
            },
        };
        if let Some((s, _)) = &found {
            self.redactor.add(s.expose());
        }
        found
    }
}

/// A service's base URL: http(s) with a host, and no credentials in it (those have settings of
/// their own, named by `credentials`; a password found in the URL is redacted from then on).
fn http_url(r: &mut Reader<'_>, setting: &Setting, credentials: &str) -> Option<Url> {
    match Url::parse(&setting.value) {
        Ok(parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            if let Some(p) = parsed.password() {
                r.redactor.add(p);
            }
            r.problem(
                &setting.origin,
                format!("must not carry credentials: use {credentials}"),
            );
            None
        }
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() => {
            Some(parsed)
        }
        Ok(_) => {
            r.problem(&setting.origin, "must be an http(s) URL with a host");
            None
        }
        Err(e) => {
            r.problem(&setting.origin, format!("not a URL ({e})"));
            None
        }
    }
}

impl ReportSettings {
    /// From the process environment and, when given, the settings file.
    pub fn load(file: Option<&Path>) -> Result<ReportSettings, SettingsErrors> {
        Self::load_with(file, &|name| std::env::var(name).ok())
    }

    /// From the variables `var` gives and, when given, the settings file.
    pub fn load_with(
        file: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReportSettings, SettingsErrors> {
        let raw = match file {
            None => RawSettings::default(),
            Some(f) => read_file(f).map_err(|e| SettingsErrors(vec![e]))?,
        };
        let mut r = Reader {
            file,
            var,
            errors: Vec::new(),
            redactor: Redactor::default(),
        };
        let smtp = smtp(&mut r, &raw.smtp);
        let tracker = tracker(&mut r, &raw.tracker);
        let webhooks = webhooks(&mut r, &raw.webhooks);
        let retry = retry(&mut r, &raw.retry);
        let tms = tms(&mut r, &raw.tms);
        if !r.errors.is_empty() {
            // A reason may quote what it could not parse; keep secrets out of it all the same.
            let cleaned = r.errors.iter().map(|e| r.redactor.clean(e)).collect();
            return Err(SettingsErrors(cleaned));
        }
        Ok(ReportSettings {
            smtp,
            tracker,
            webhooks,
            retry,
            tms,
            redactor: r.redactor,
        })
    }

    /// One line on what is configured, for the start-up log (no secrets).
    pub fn describe(&self) -> String {
        let email = self.smtp.as_ref().map_or("off".to_string(), |s| {
            format!("{} from {}", s.server, s.from.email)
        });
        let tracker = self
            .tracker
            .as_ref()
            .map_or("off".to_string(), |t| format!("{} at {}", t.kind.as_str(), t.url));
        let schedule: Vec<String> = self
            .retry
            .schedule()
            .into_iter()
            .map(crate::duration::human)
            .collect();
        let tms = self.tms.as_ref().map_or("off".to_string(), |t| {
            format!("Kiwi TCMS at {} as {}", t.url, t.user)
        });
        format!(
            "email: {email}; tracker: {tracker}; webhooks: {}; test management: {tms}; retry: {} attempts, waits {}",
            self.webhooks.len(),
            self.retry.attempts,
            schedule.join(", ")
        )
    }
}

fn read_file(f: &Path) -> Result<RawSettings, String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
    if text.trim().is_empty() {
        return Ok(RawSettings::default());
    }
    // No snippet of the input in errors: the file may hold passwords.
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
        let reason = e.to_string();
        format!("{}: {}", f.display(), reason.trim_start_matches("error: ").trim())
    })
}

fn smtp(r: &mut Reader<'_>, raw: &RawSmtp) -> Option<SmtpSettings> {
    let url = r.get("TOMATO_SMTP_URL", &raw.url, "smtp.url");
    let from = r.get("TOMATO_SMTP_FROM", &raw.from, "smtp.from");
    let user = r.get("TOMATO_SMTP_USER", &raw.user, "smtp.user");
    let password = r.secret(
        "TOMATO_SMTP_PASSWORD",
        &raw.password,
        &raw.password_file,
        "smtp.password",
    );
    let url = match (url, &from) {
        (None, None) => {
            if let Some((_, origin)) = password {
                r.problem(&origin, "is set but TOMATO_SMTP_URL is not");
            }
            return None;
        }
        (None, Some(f)) => {
            let origin = f.origin.clone();
            r.problem(&origin, "is set but TOMATO_SMTP_URL (smtp.url) is not");
            return None;
        }
        (Some(u), _) => u,
    };
    let from = match from {
        None => {
            r.problem(&url.origin, "needs a sender: set TOMATO_SMTP_FROM (smtp.from)");
            None
        }
        Some(f) => match f.value.parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                r.problem(&f.origin, format!("{:?} is not a mailbox ({e})", f.value));
                None
            }
        },
    };
    let parsed = match Url::parse(&url.value) {
        Ok(u) => u,
        Err(e) => {
            r.problem(
                &url.origin,
                format!("not a URL ({e}); write it like smtp://host:port"),
            );
            return None;
        }
    };
    if let Some(p) = parsed.password() {
        r.redactor.add(p);
        r.redactor.add(&percent_decode(p));
    }
    // The URL itself is no secret without its password (registered above); keeping the
    // whole URL out would hide the server's address from every reason too.
    let secret_url = Secret::new(url.value.clone());
    if let Err(e) = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(secret_url.expose()) {
        let reason = r.redactor.clean(&e.to_string());
        r.problem(
            &url.origin,
            format!(
                "not an SMTP URL ({reason}); use smtp://host:port, smtp://host?tls=required or smtps://host"
            ),
        );
        return None;
    }
    let url_user = Some(parsed.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode);
    let url_password = parsed.password().map(percent_decode);
    let credentials = match (user.map(|u| u.value).or(url_user), password, url_password) {
        (Some(u), Some((p, _)), _) => Some((u, p)),
        (Some(u), None, Some(p)) => Some((u, Secret::new(p))),
        (None, Some((_, origin)), _) => {
            r.problem(
                &origin,
                "needs a user: set TOMATO_SMTP_USER (smtp.user) or put it in the URL (smtp://user@host)",
            );
            None
        }
        _ => None,
    };
    let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
    let server = format!(
        "{}://{}{}{query}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default(),
        parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    Some(SmtpSettings {
        server: r.redactor.clean(&server),
        url: secret_url,
        from: from?,
        credentials,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tracker(r: &mut Reader<'_>, raw: &RawTracker) -> Option<TrackerSettings> {
    let kind = r.get("TOMATO_TRACKER", &raw.kind, "tracker.kind");
    let url = r.get("TOMATO_TRACKER_URL", &raw.url, "tracker.url");
    let auth = r.get("TOMATO_TRACKER_AUTH", &raw.auth, "tracker.auth");
    let user = r.get("TOMATO_TRACKER_USER", &raw.user, "tracker.user");
    let org = r.get("TOMATO_TRACKER_ORG", &raw.org, "tracker.org");
    let org_header = r.get("TOMATO_TRACKER_ORG_HEADER", &raw.org_header, "tracker.orgHeader");
    let token = r.secret(
        "TOMATO_TRACKER_TOKEN",
        &raw.token,
        &raw.token_file,
        "tracker.token",
    );
    let Some(kind) = kind else {
        for s in [&url, &user, &org].into_iter().flatten() {
            let origin = s.origin.clone();
            r.problem(&origin, "is set but TOMATO_TRACKER (tracker.kind) is not");
        }
        return None;
    };
    let kind = match kind.value.to_ascii_lowercase().as_str() {
        "jira" => TrackerKind::Jira,
        "yandex" => TrackerKind::Yandex,
        other => {
            r.problem(
                &kind.origin,
                format!("unknown tracker {other:?}; known: jira, yandex"),
            );
            return None;
        }
    };
    let base = match (url, kind) {
        (Some(u), _) => http_url(r, &u, "TOMATO_TRACKER_USER and TOMATO_TRACKER_TOKEN"),
        (None, TrackerKind::Yandex) => {
            Some(Url::parse(YANDEX_TRACKER_API).expect("the default URL is valid"))
        }
        (None, TrackerKind::Jira) => {
            r.problem(
                "TOMATO_TRACKER_URL",
                "is required for Jira (the base URL of the Jira site)",
            );
            None
        }
    };
    let Some((token, token_origin)) = token else {
        r.problem(
            "TOMATO_TRACKER_TOKEN",
            format!(
                "is required for the {} tracker (or TOMATO_TRACKER_TOKEN_FILE)",
                kind.as_str()
            ),
        );
        return None;
    };
    let scheme = auth.as_ref().map(|a| a.value.to_ascii_lowercase());
    let auth = match (kind, scheme.as_deref(), user) {
        (TrackerKind::Jira, None | Some("basic"), Some(u)) => {
            Some(TrackerAuth::Basic { user: u.value, token })
        }
        (TrackerKind::Jira, Some("basic"), None) => {
            r.problem(
                &token_origin,
                "basic auth needs TOMATO_TRACKER_USER (tracker.user)",
            );
            None
        }
        (TrackerKind::Jira, None | Some("bearer"), _) => Some(TrackerAuth::Bearer(token)),
        (TrackerKind::Yandex, None | Some("oauth"), _) => Some(TrackerAuth::OAuth(token)),
        (TrackerKind::Yandex, Some("bearer"), _) => Some(TrackerAuth::Bearer(token)),
        (_, Some(other), _) => {
            let known = match kind {
                TrackerKind::Jira => "basic, bearer",
                TrackerKind::Yandex => "oauth, bearer",
            };
            let origin = auth.map(|a| a.origin).unwrap_or_default();
            r.problem(
                &origin,
                format!(
                    "{other:?} is not an auth scheme of {}; known: {known}",
                    kind.as_str()
                ),
            );
            None
        }
    };
    if let Some(TrackerAuth::Basic { user, token }) = &auth {
        // What `Authorization: Basic` carries, in case the tracker's error answer echoes it.
        r.redactor.add(&super::redact::base64(
            format!("{user}:{}", token.expose()).as_bytes(),
        ));
    }
    let org = match (kind, org) {
        (TrackerKind::Yandex, None) => {
            r.problem(
                "TOMATO_TRACKER_ORG",
                "is required for Yandex Tracker (the organisation id)",
            );
            None
        }
        (TrackerKind::Yandex, Some(o)) => {
            let header = match org_header.as_ref().map(|h| h.value.to_ascii_lowercase()) {
                None => Some("X-Org-ID"),
                Some(h) if h == "x-org-id" => Some("X-Org-ID"),
                Some(h) if h == "x-cloud-org-id" => Some("X-Cloud-Org-ID"),
                Some(_) => {
                    let origin = org_header.as_ref().map(|h| h.origin.clone()).unwrap_or_default();
                    r.problem(
                        &origin,
                        "must be X-Org-ID (Yandex 360) or X-Cloud-Org-ID (Yandex Cloud)",
                    );
                    None
                }
            };
            header.map(|h| (h, o.value))
        }
        (TrackerKind::Jira, _) => None,
    };
    Some(TrackerSettings {
        kind,
        url: base?,
        auth: auth?,
        org,
    })
}

fn tms(r: &mut Reader<'_>, raw: &RawTms) -> Option<TmsSettings> {
    let url = r.get("TOMATO_TMS_URL", &raw.url, "tms.url");
    let user = r.get("TOMATO_TMS_USER", &raw.user, "tms.user");
    let poll = r.get("TOMATO_TMS_POLL", &raw.poll, "tms.poll");
    let password = r.secret(
        "TOMATO_TMS_PASSWORD",
        &raw.password,
        &raw.password_file,
        "tms.password",
    );
    let Some(url) = url else {
        let origins: Vec<String> = [user.map(|u| u.origin), password.map(|p| p.1)]
            .into_iter()
            .flatten()
            .collect();
        for origin in origins {
            r.problem(&origin, "is set but TOMATO_TMS_URL (tms.url) is not");
        }
        return None;
    };
    let base = http_url(r, &url, "TOMATO_TMS_USER and TOMATO_TMS_PASSWORD");
    let user = match user {
        Some(u) => Some(u.value),
        None => {
            r.problem(
                "TOMATO_TMS_USER",
                "is required with TOMATO_TMS_URL (the Kiwi TCMS user Tomato signs in as)",
            );
            None
        }
    };
    let password = match password {
        Some((p, _)) => Some(p),
        None => {
            r.problem(
                "TOMATO_TMS_PASSWORD",
                "is required with TOMATO_TMS_URL (or TOMATO_TMS_PASSWORD_FILE)",
            );
            None
        }
    };
    let poll = match poll {
        None => Some(DEFAULT_TMS_POLL),
        Some(p) => match parse_delay(&p.value) {
            Ok(d) => Some(d),
            Err(e) => {
                r.problem(&p.origin, e);
                None
            }
        },
    };
    Some(TmsSettings {
        url: base?,
        user: user?,
        password: password?,
        poll: poll?,
    })
}

fn webhooks(r: &mut Reader<'_>, from_file: &[String]) -> Vec<Webhook> {
    let (list, origin): (Vec<String>, String) = match secrets::from_vars("TOMATO_WEBHOOK_URLS", r.var) {
        Ok(Some(s)) => (
            s.expose()
                .split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            "TOMATO_WEBHOOK_URLS".to_string(),
        ),
        Ok(None) => (from_file.to_vec(), r.origin("webhooks")),
        Err(e) => {
            r.errors.push(e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, u) in list.iter().enumerate() {
        r.redactor.add(u);
        match Webhook::parse(u) {
            Ok(w) => {
                w.hide_in(&mut r.redactor);
                out.push(w);
            }
            Err(e) => r.problem(&format!("{origin}[{i}]"), e),
        }
    }
    out
}

fn retry(r: &mut Reader<'_>, raw: &RawRetry) -> RetryPolicy {
    let mut p = RetryPolicy::default();
    let attempts = r.get(
        "TOMATO_REPORT_RETRY_ATTEMPTS",
        &raw.attempts.map(|a| a.to_string()),
        "retry.attempts",
    );
    if let Some(a) = attempts {
        match a.value.parse::<u32>() {
            Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => p.attempts = n,
            _ => r.problem(
                &a.origin,
                format!("must be a number 1–{MAX_ATTEMPTS}, got {:?}", a.value),
            ),
        }
    }
    for (var, raw_value, field, slot) in [
        ("TOMATO_REPORT_RETRY_BASE", &raw.base, "retry.base", &mut p.base),
        ("TOMATO_REPORT_RETRY_MAX", &raw.max, "retry.max", &mut p.max),
    ] {
        if let Some(s) = r.get(var, raw_value, field) {
            match parse_delay(&s.value) {
                Ok(d) => *slot = d,
                Err(e) => r.problem(&s.origin, e),
            }
        }
    }
    if p.max < p.base {
        r.problem(
            "TOMATO_REPORT_RETRY_MAX",
            "must not be shorter than TOMATO_REPORT_RETRY_BASE",
        );
    }
    p
}

/// A wait: `500ms`, or a duration as everywhere else (`2s`, `5m`, `1h`).
fn parse_delay(s: &str) -> Result<Duration, String> {
    match s.strip_suffix("ms") {
        Some(n) => match n.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!("invalid duration {s:?}: write it like 500ms, 2s or 5m")),
        },
        None => crate::duration::parse(s),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<ReportSettings, SettingsErrors> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.yaml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        ReportSettings::load_with(file.map(|_| path.as_path()), &|k| vars.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_no_channel_configured_and_the_default_retry() {
        let s = load(&[], None).unwrap();
        assert!(s.smtp.is_none() && s.tracker.is_none() && s.webhooks.is_empty());
        assert_eq!(s.retry, RetryPolicy::default());
    }

    #[test]
    fn smtp_credentials_come_from_the_url_or_the_password_variable_and_are_never_shown() {
        let s = load(
            &[
                ("TOMATO_SMTP_URL", "smtp://tomato:s%40cret@mail.example.com:2525"),
                ("TOMATO_SMTP_FROM", "Tomato <tomato@example.com>"),
            ],
            None,
        )
        .unwrap();
        let smtp = s.smtp.as_ref().unwrap();
        assert_eq!(smtp.server, "smtp://mail.example.com:2525");
        let (user, password) = smtp.credentials.as_ref().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("tomato", "s@cret"));
        assert!(!s.describe().contains("s@cret") && !format!("{s:?}").contains("s@cret"));
        assert_eq!(s.redactor.clean("bad s@cret and s%40cret"), "bad *** and ***");

        let s = load(
            &[
                ("TOMATO_SMTP_URL", "smtp://tomato@mail.example.com?tls=required"),
                ("TOMATO_SMTP_FROM", "tomato@example.com"),
                ("TOMATO_SMTP_PASSWORD", "hunter2"),
            ],
            None,
        )
        .unwrap();
        let smtp = s.smtp.unwrap();
        assert_eq!(smtp.server, "smtp://mail.example.com?tls=required");
        assert_eq!(smtp.credentials.unwrap().1.expose(), "hunter2");
    }

    #[test]
    fn every_problem_is_named_by_its_variable_without_the_value() {
        let errs = load(
            &[
                ("TOMATO_SMTP_URL", "ftp://u:topsecret@host"),
                ("TOMATO_SMTP_FROM", "not a mailbox"),
                ("TOMATO_TRACKER", "redmine"),
                (
                    "TOMATO_WEBHOOK_URLS",
                    "https://hooks.example.com/T/B/tok3n,notaurl",
                ),
                ("TOMATO_REPORT_RETRY_ATTEMPTS", "0"),
                ("TOMATO_REPORT_RETRY_BASE", "fast"),
            ],
            None,
        )
        .unwrap_err();
        let text = errs.to_string();
        for expected in [
            "TOMATO_SMTP_URL: not an SMTP URL",
            "TOMATO_SMTP_FROM: \"not a mailbox\" is not a mailbox",
            "TOMATO_TRACKER: unknown tracker \"redmine\"",
            "TOMATO_WEBHOOK_URLS[1]: not a URL",
            "TOMATO_REPORT_RETRY_ATTEMPTS: must be a number 1–20",
            "TOMATO_REPORT_RETRY_BASE: invalid duration",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("topsecret") && !text.contains("tok3n"), "{text}");
    }

    #[test]
    fn jira_signs_in_with_basic_auth_when_a_user_is_given_else_bearer() {
        let base = [
            ("TOMATO_TRACKER", "jira"),
            ("TOMATO_TRACKER_URL", "https://jira.example.com/jira"),
            ("TOMATO_TRACKER_TOKEN", "t0ken"),
        ];
        let s = load(&base, None).unwrap();
        let t = s.tracker.unwrap();
        assert_eq!(t.kind, TrackerKind::Jira);
        assert!(matches!(t.auth, TrackerAuth::Bearer(ref k) if k.expose() == "t0ken"));
        let mut with_user = base.to_vec();
        with_user.push(("TOMATO_TRACKER_USER", "bot@example.com"));
        let t = load(&with_user, None).unwrap().tracker.unwrap();
        assert!(matches!(t.auth, TrackerAuth::Basic { ref user, .. } if user == "bot@example.com"));

        let errs = load(&[("TOMATO_TRACKER", "jira")], None).unwrap_err().to_string();
        assert!(
            errs.contains("TOMATO_TRACKER_URL: is required for Jira"),
            "{errs}"
        );
        assert!(errs.contains("TOMATO_TRACKER_TOKEN: is required"), "{errs}");

        let mut with_password = base.to_vec();
        with_password[1] = ("TOMATO_TRACKER_URL", "https://bot:hunter2@jira.example.com");
        let errs = load(&with_password, None).unwrap_err().to_string();
        assert!(
            errs.contains("TOMATO_TRACKER_URL: must not carry credentials"),
            "{errs}"
        );
        assert!(!errs.contains("hunter2"), "{errs}");
    }

    #[test]
    fn yandex_needs_an_organisation_and_takes_either_header() {
        let errs = load(
            &[("TOMATO_TRACKER", "yandex"), ("TOMATO_TRACKER_TOKEN", "y0")],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("TOMATO_TRACKER_ORG: is required"), "{errs}");
        let t = load(
            &[
                ("TOMATO_TRACKER", "yandex"),
                ("TOMATO_TRACKER_TOKEN", "y0"),
                ("TOMATO_TRACKER_ORG", "42"),
                ("TOMATO_TRACKER_ORG_HEADER", "x-cloud-org-id"),
            ],
            None,
        )
        .unwrap()
        .tracker
        .unwrap();
        assert_eq!(t.url.as_str(), "https://api.tracker.yandex.net/");
        assert_eq!(t.org, Some(("X-Cloud-Org-ID", "42".to_string())));
        assert!(matches!(t.auth, TrackerAuth::OAuth(_)));
    }

    #[test]
    fn the_settings_file_is_read_and_the_environment_wins_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        let file = format!(
            "smtp: {{url: 'smtp://localhost:25', from: 'a@example.com'}}\n\
             tracker: {{kind: jira, url: 'https://jira.example.com', tokenFile: '{}'}}\n\
             webhooks: ['https://hooks.example.com/x']\n\
             retry: {{attempts: 3, base: 250ms, max: 1s}}\n",
            token.display()
        );
        let s = load(&[("TOMATO_SMTP_FROM", "b@example.com")], Some(&file)).unwrap();
        assert_eq!(s.smtp.unwrap().from.email.to_string(), "b@example.com");
        let t = s.tracker.unwrap();
        assert!(matches!(t.auth, TrackerAuth::Bearer(ref k) if k.expose() == "from-file"));
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(
            s.retry,
            RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(250),
                max: Duration::from_secs(1)
            }
        );

        let errs = load(&[], Some("smtp: {url: x, passwd: y}\n"))
            .unwrap_err()
            .to_string();
        assert!(errs.contains("unknown field `passwd`"), "{errs}");
    }

    #[test]
    fn test_management_needs_a_url_a_user_and_a_password_which_is_never_shown() {
        let s = load(
            &[
                ("TOMATO_TMS_URL", "https://kiwi.example.com"),
                ("TOMATO_TMS_USER", "tomato"),
                ("TOMATO_TMS_PASSWORD", "k1wi-s3cret"),
                ("TOMATO_TMS_POLL", "500ms"),
            ],
            None,
        )
        .unwrap();
        let tms = s.tms.as_ref().unwrap();
        assert_eq!(
            (tms.url.as_str(), tms.user.as_str(), tms.password.expose()),
            ("https://kiwi.example.com/", "tomato", "k1wi-s3cret")
        );
        assert_eq!(tms.poll, Duration::from_millis(500));
        assert!(!s.describe().contains("k1wi") && !format!("{s:?}").contains("k1wi"));
        assert!(
            s.describe()
                .contains("test management: Kiwi TCMS at https://kiwi.example.com/ as tomato")
        );
        assert_eq!(s.redactor.clean("login k1wi-s3cret refused"), "login *** refused");

        let errs = load(&[("TOMATO_TMS_URL", "https://kiwi.example.com")], None)
            .unwrap_err()
            .to_string();
        assert!(errs.contains("TOMATO_TMS_USER: is required"), "{errs}");
        assert!(errs.contains("TOMATO_TMS_PASSWORD: is required"), "{errs}");
        let errs = load(&[("TOMATO_TMS_PASSWORD", "k1wi")], None)
            .unwrap_err()
            .to_string();
        assert!(
            errs.contains("TOMATO_TMS_PASSWORD: is set but TOMATO_TMS_URL"),
            "{errs}"
        );
        let errs = load(
            &[
                ("TOMATO_TMS_URL", "https://u:k1wi-pw@kiwi.example.com"),
                ("TOMATO_TMS_USER", "u"),
                ("TOMATO_TMS_PASSWORD", "x"),
            ],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("TOMATO_TMS_URL: must not carry credentials") && !errs.contains("k1wi-pw"),
            "{errs}"
        );
    }

    #[test]
    fn a_webhook_is_shown_by_host_and_a_stable_hash_only() {
        let w = Webhook::parse("https://hooks.slack.com/services/T0/B0/s3cret").unwrap();
        assert!(w.label().starts_with("hooks.slack.com#"), "{}", w.label());
        assert_eq!(
            w.label(),
            Webhook::parse("https://hooks.slack.com/services/T0/B0/s3cret")
                .unwrap()
                .label()
        );
        assert!(!format!("{w:?}").contains("s3cret"));
        assert!(Webhook::parse("ftp://x/y").is_err());
    }
}
