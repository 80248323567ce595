//! Report templates: minijinja files built into the binary, which a team can override per
//! service by putting a file of the same name in `packs_config/<service>/templates/`.
//!
//! Every template renders a [`RunReport`]. Escaping is decided by the template's name, not
//! left to each template's author, so that nothing a test prints (JUnit names and messages
//! may hold `<script>`, `*bold*` or `[links|...]`) can change the markup around it:
//! `.html` escapes HTML; the Jira comment escapes wiki markup; the Yandex Tracker comment
//! escapes Markdown; the webhook text escapes Slack's `&`, `<`, `>`. A value marked
//! `|safe` is written as it is. Overrides are compiled and rendered against a sample report
//! at start-up, so a broken one stops the server with its file and line, not a report later.

use std::collections::BTreeSet;
use std::path::PathBuf;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, Value, value::Serde};

use super::content::RunReport;
use crate::integrations::tracker::{escape_jira, escape_markdown};
use crate::packs::{ConfigError, ConfigErrors, PacksConfig};

/// The email's subject line (whitespace is collapsed into one line).
pub const EMAIL_SUBJECT: &str = "email-subject.txt";
/// The email's plain-text part.
pub const EMAIL_TEXT: &str = "email.txt";
/// The email's HTML part.
pub const EMAIL_HTML: &str = "email.html";
/// The Jira comment, in Jira wiki markup.
pub const TRACKER_JIRA: &str = "tracker-jira.txt";
/// The Yandex Tracker comment, in Markdown (YFM).
pub const TRACKER_YANDEX: &str = "tracker-yandex.md";
/// The webhook message's `text` (Slack mrkdwn; also the notification's fallback).
pub const WEBHOOK_TEXT: &str = "webhook.txt";

/// Every template and its built-in source.
const BUILT_IN: [(&str, &str); 6] = [
    (EMAIL_SUBJECT, include_str!("templates/email-subject.txt")),
    (EMAIL_TEXT, include_str!("templates/email.txt")),
    (EMAIL_HTML, include_str!("templates/email.html")),
    (TRACKER_JIRA, include_str!("templates/tracker-jira.txt")),
    (TRACKER_YANDEX, include_str!("templates/tracker-yandex.md")),
    (WEBHOOK_TEXT, include_str!("templates/webhook.txt")),
];

/// Where a service's overrides live, under its packs_config directory.
pub const OVERRIDE_DIR: &str = "templates";

/// The compiled templates: built-ins plus every service's overrides (`<service>/<name>`).
pub struct Templates {
    env: Environment<'static>,
    overrides: BTreeSet<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl Templates {
    /// The built-in templates only.
    pub fn built_in() -> Templates {
        let mut env = Environment::new();
        // Block tags on lines of their own leave no blank lines behind (Jinja's usual setup).
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_auto_escape_callback(escape_for);
        env.set_formatter(|out, state, value| {
            let custom = match state.auto_escape() {
                AutoEscape::Custom(kind) => Some(kind.clone()),
                _ => None,
            };
            match custom {
                Some(kind) if !value.is_safe() => {
                    let text = if value.is_none() || value.is_undefined() {
                        String::new()
                    } else {
                        value.to_string()
                    };
                    out.write_str(&escape(&kind, &text))
                        .map_err(minijinja::Error::from)
                }
                Some(_) => write!(out, "{value}").map_err(minijinja::Error::from),
                None if value.is_none() => Ok(()),
                None => minijinja::escape_formatter(out, state, value),
            }
        });
        for (name, source) in BUILT_IN {
            env.add_template(name, source)
                .expect("the built-in templates compile (checked by a test)");
        }
        Templates {
            env,
            overrides: BTreeSet::new(),
        }
    }

    /// The built-ins plus each service's overrides from `<service dir>/templates/`. Every
    /// problem (unknown file name, syntax error, render error) names the file.
    pub fn load(config: &PacksConfig) -> Result<Templates, ConfigErrors> {
        let mut t = Templates::built_in();
        let mut errors = Vec::new();
        let sample = RunReport::sample();
        for svc in config.services() {
            let dir = svc.dir.join(OVERRIDE_DIR);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                let problem = |reason: String| ConfigError {
                    file: file.clone(),
                    field: String::new(),
                    reason,
                };
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                if !BUILT_IN.iter().any(|(n, _)| *n == name) {
                    let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    errors.push(problem(format!(
                        "not a report template; templates are named {}",
                        known.join(", ")
                    )));
                    continue;
                }
                let source = match std::fs::read_to_string(&file) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(problem(format!("cannot read: {e}")));
                        continue;
                    }
                };
                let key = format!("{}/{name}", svc.name);
                if let Err(e) = t.env.add_template_owned(key.clone(), source) {
                    errors.push(problem(describe(&e)));
                    continue;
                }
                t.overrides.insert(key);
                if let Err(e) = t.render(&svc.name, &name, &sample) {
                    errors.push(problem(e));
                }
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Renders template `name` for `service` (its override, else the built-in).
    pub fn render(&self, service: &str, name: &str, report: &RunReport) -> Result<String, String> {
        let key = format!("{service}/{name}");
        let chosen = if self.overrides.contains(&key) {
            key.as_str()
        } else {
            name
        };
        let template = self.env.get_template(chosen).map_err(|e| describe(&e))?;
        template
            .render(Value::from(Serde(report)))
            .map_err(|e| describe(&e))
    }
}

/// A minijinja error with its cause and line, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Escaping by template name (the override's name is `<service>/<name>`).
fn escape_for(name: &str) -> AutoEscape {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        TRACKER_JIRA => AutoEscape::Custom("jira".into()),
        TRACKER_YANDEX => AutoEscape::Custom("markdown".into()),
        WEBHOOK_TEXT => AutoEscape::Custom("slack".into()),
        b if b.ends_with(".html") => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

fn escape(kind: &str, text: &str) -> String {
    match kind {
        "jira" => escape_jira(text),
        "markdown" => escape_markdown(text),
        "slack" => escape_slack(text),
        _ => text.to_string(),
    }
}

/// Slack mrkdwn: `&`, `<` and `>` as entities (the only escaping Slack defines; `<...>`
/// would otherwise be a link or a mention).
pub fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::content::{FailedTest, FailureGroup};

    fn hostile() -> RunReport {
        let mut r = RunReport::sample();
        r.failures = vec![FailureGroup {
            category: "<b>Product</b> defects".into(),
            count: 1,
            tests: vec![FailedTest {
                name: "<script>alert('name')</script>".into(),
                verdict: crate::results::TestVerdict::Failed,
                message: "expected <img src=x onerror=alert(1)> & *bold* [link|http://evil] {code}".into(),
                attempt: 4,
                attachments: Vec::new(),
            }],
            more: 0,
        }];
        r
    }

    /// Issue 16: a failed test's Allure attachments are linked from both emails, absolutely.
    #[test]
    fn the_email_links_a_failed_tests_attachments_with_the_public_url() {
        let mut r = RunReport::sample();
        r.link_attachments("https://tomato.example.com/", |id, attempt| {
            if id == r#"tests/test_cart.py::test_applies_coupon"# || attempt == 4 {
                vec![(
                    "failure screenshot".into(),
                    format!("/api/v1/runs/demo-sample/attempts/{attempt}/attachments/a-attachment.png"),
                )]
            } else {
                Vec::new()
            }
        });
        let t = Templates::built_in();
        let url =
            "https://tomato.example.com/api/v1/runs/demo-sample/attempts/4/attachments/a-attachment.png";
        let text = t.render("demo", EMAIL_TEXT, &r).unwrap();
        assert!(text.contains(&format!("failure screenshot: {url}")), "{text}");
        let html = t.render("demo", EMAIL_HTML, &r).unwrap();
        assert!(html.contains(">failure screenshot</a>"), "{html}");
        assert!(html.contains(&url.replace('/', "&#x2f;")), "{html}");
    }

    #[test]
    fn every_built_in_template_renders_the_sample() {
        let t = Templates::built_in();
        for (name, _) in BUILT_IN {
            let out = t.render("demo", name, &RunReport::sample()).unwrap();
            assert!(out.contains("demo"), "{name}: {out}");
        }
    }

    #[test]
    fn test_output_in_the_html_email_is_escaped() {
        let html = Templates::built_in()
            .render("demo", EMAIL_HTML, &hostile())
            .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>Product"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#x27;name&#x27;)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; *bold*"),
            "{html}"
        );
    }

    #[test]
    fn jira_markup_in_test_output_is_escaped() {
        let out = Templates::built_in()
            .render("demo", TRACKER_JIRA, &hostile())
            .unwrap();
        assert!(out.contains(r"\*bold\* \[link\|http://evil\] \{code\}"), "{out}");
        assert_eq!(escape_jira("a-b\nc|d"), r"a\-b c\|d");
    }

    #[test]
    fn markdown_in_test_output_is_escaped() {
        let out = Templates::built_in()
            .render("demo", TRACKER_YANDEX, &hostile())
            .unwrap();
        assert!(out.contains(r"\*bold\* \[link\|http://evil\]"), "{out}");
        assert!(out.contains(r"\<script\>"), "{out}");
        assert_eq!(escape_markdown("a_b\n`c`"), r"a\_b \`c\`");
    }

    #[test]
    fn slack_text_escapes_angle_brackets_and_ampersands() {
        let out = Templates::built_in()
            .render("demo", WEBHOOK_TEXT, &hostile())
            .unwrap();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert_eq!(escape_slack("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    fn config_with_templates(files: &[(&str, &str)]) -> (tempfile::TempDir, PacksConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("svc.yaml"),
            "stands: {pattern: x}\nlaunch: {command: [run, \"{tests}\"]}\npacks: {p: {tests: [a]}}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("svc/templates")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("svc/templates").join(name), text).unwrap();
        }
        let config = PacksConfig::load(dir.path()).unwrap();
        (dir, config)
    }

    #[test]
    fn a_service_overrides_a_template_by_file_name_and_keeps_the_escaping() {
        let (_dir, config) =
            config_with_templates(&[(EMAIL_SUBJECT, "Tests of {{ service }}: {{ headline }}")]);
        let t = Templates::load(&config).unwrap();
        assert_eq!(
            t.render("svc", EMAIL_SUBJECT, &RunReport::sample()).unwrap(),
            "Tests of demo: 1 failed, 1 flaky"
        );
        // Other services keep the built-in.
        assert!(
            t.render("other", EMAIL_SUBJECT, &RunReport::sample())
                .unwrap()
                .starts_with("[Tomato]")
        );

        let (_dir, config) = config_with_templates(&[(EMAIL_HTML, "<p>{{ failures[0].tests[0].name }}</p>")]);
        let html = Templates::load(&config)
            .unwrap()
            .render("svc", EMAIL_HTML, &hostile())
            .unwrap();
        assert!(html.starts_with("<p>&lt;script&gt;"), "{html}");
    }

    #[test]
    fn broken_or_unknown_overrides_are_refused_naming_the_file() {
        let (_dir, config) = config_with_templates(&[
            (EMAIL_TEXT, "{% for x in failures %}unclosed"),
            ("emial.html", "typo"),
            (WEBHOOK_TEXT, "{{ headline | no_such_filter }}"),
        ]);
        let errs = Templates::load(&config).unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 3, "{text}");
        assert!(text.contains("templates/email.txt: syntax error"), "{text}");
        assert!(
            text.contains("templates/emial.html: not a report template"),
            "{text}"
        );
        assert!(
            text.contains("templates/webhook.txt: ") && text.contains("no_such_filter"),
            "{text}"
        );
    }
}
