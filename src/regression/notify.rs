//! What a regression says, and to whom: each assessor's email with their cases, the ticket
//! (summary and description), the summary comment once every case has a verdict, and the
//! final report email. Pure: values in, text or a composed message out.
//!
//! Names of cases come from test management and may hold anything: they are escaped for
//! the ticket's markup (Jira wiki markup, Yandex Tracker's Markdown) and HTML-escaped in the
//! HTML part of each email (minijinja autoescaping).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use minijinja::Environment;
use minijinja::Value as V;
use minijinja::value::Serde;
use serde::Serialize;

use crate::crd::{Counts, Progress, Regression};
use crate::integrations::settings::TrackerKind;
use crate::integrations::tms::{Execution, Outcome};
use crate::integrations::tracker::{escape_jira, escape_markdown};

/// One case in a message.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CaseLine {
    pub summary: String,
    pub url: String,
    /// `PASSED`, `FAILED`, `IDLE`, ...
    pub status: String,
}

/// What every message of a regression knows.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct About {
    pub name: String,
    pub service: String,
    pub version: String,
    pub stand: String,
    pub plan: String,
    pub run_url: String,
    /// The regression's page in Tomato.
    pub link: String,
    pub deadline: Option<String>,
    pub ticket: Option<String>,
    pub ticket_url: Option<String>,
}

impl About {
    pub fn new(reg: &Regression, public_url: &str) -> About {
        let st = reg.status.clone().unwrap_or_default();
        let name = reg.metadata.name.clone().unwrap_or_default();
        About {
            link: format!("{}/regressions/{name}", public_url.trim_end_matches('/')),
            name,
            service: reg.spec.service.clone(),
            version: reg.spec.version.clone(),
            stand: reg.spec.stand.clone(),
            plan: st.tms.as_ref().map(|t| t.plan_name.clone()).unwrap_or_default(),
            run_url: st
                .tms
                .as_ref()
                .and_then(|t| t.run_url.clone())
                .unwrap_or_default(),
            deadline: reg
                .spec
                .deadline
                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
            ticket: st.ticket.as_ref().map(|t| t.key.clone()),
            ticket_url: st.ticket.as_ref().and_then(|t| t.url.clone()),
        }
    }

    fn title(&self) -> String {
        format!("Regression of {} {}", self.service, self.version)
    }
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

fn counts_line(c: &Counts) -> String {
    format!(
        "{} — {} passed, {} failed, {} blocked, {} without a verdict",
        plural(c.total as usize, "case"),
        c.passed,
        c.failed,
        c.blocked,
        c.idle
    )
}

const ASSESSOR_HTML: &str = r#"<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello {{ assessor }},</p>
<p>You are an assessor of the <b>{{ about.service }} {{ about.version }}</b> regression on <b>{{ about.stand }}</b>
(plan {{ about.plan }}).{% if about.deadline %} Please give every case a verdict by <b>{{ about.deadline }}</b>.{% endif %}</p>
<p>Your cases ({{ cases|length }}):</p>
<ol>{% for c in cases %}<li><a href="{{ c.url }}">{{ c.summary }}</a></li>{% endfor %}</ol>
<p>Mark each of them in the <a href="{{ about.run_url }}">test run</a> as PASSED, FAILED or BLOCKED.</p>
{% if about.ticket %}<p>Ticket: {% if about.ticket_url %}<a href="{{ about.ticket_url }}">{{ about.ticket }}</a>{% else %}{{ about.ticket }}{% endif %}</p>{% endif %}
<p><a href="{{ about.link }}">Progress of the regression</a></p>
</body></html>
"#;

const REPORT_HTML: &str = r#"<!doctype html>
<html><body style="font-family: sans-serif">
<h2>{{ title }}: completed</h2>
<p>{{ overall }}</p>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<tr><th>Assessor</th><th>Cases</th><th>Passed</th><th>Failed</th><th>Blocked</th></tr>
{% for a in assessors %}<tr><td>{{ a.assessor }}</td><td>{{ a.total }}</td><td>{{ a.passed }}</td><td>{{ a.failed }}</td><td>{{ a.blocked }}</td></tr>{% endfor %}
</table>
{% if problems %}<h3>Failed and blocked cases</h3><ul>{% for c in problems %}<li>{{ c.status }}: <a href="{{ c.url }}">{{ c.summary }}</a></li>{% endfor %}</ul>{% endif %}
<p><a href="{{ about.run_url }}">Test run</a> · <a href="{{ about.link }}">Regression in Tomato</a>{% if about.ticket %} · Ticket {{ about.ticket }}{% endif %}</p>
</body></html>
"#;

fn html(template: &str, ctx: minijinja::Value) -> Result<String, String> {
    let mut env = Environment::new();
    // The name ends in .html, so every value is HTML-escaped.
    env.add_template("message.html", template)
        .map_err(|e| format!("template: {e}"))?;
    env.get_template("message.html")
        .and_then(|t| t.render(ctx))
        .map_err(|e| format!("template: {e}"))
}

fn message(
    from: &Mailbox,
    to: &[Address],
    subject: &str,
    message_id: String,
    text: String,
    html: String,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(message_id));
    for a in to {
        builder = builder.to(Mailbox::new(None, a.clone()));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
        )
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The subject of an assessor's email.
pub fn assessor_subject(about: &About, cases: usize) -> String {
    let by = about
        .deadline
        .as_ref()
        .map(|d| format!(" by {d}"))
        .unwrap_or_default();
    format!(
        "[Tomato] {}: {} for you{by}",
        about.title(),
        plural(cases, "case")
    )
}

/// An assessor's email: their cases with links, the deadline, the test run and the ticket.
pub fn assessor_email(
    about: &About,
    assessor: &str,
    cases: &[CaseLine],
    from: &Mailbox,
    to: &Address,
) -> Result<Message, String> {
    let (text, html) = assessor_parts(about, assessor, cases)?;
    let id = format!("<{}.{assessor}.assigned@{}>", about.name, from.email.domain());
    message(
        from,
        std::slice::from_ref(to),
        &assessor_subject(about, cases.len()),
        id,
        text,
        html,
    )
}

/// The plain-text and HTML bodies of an assessor's email.
pub fn assessor_parts(about: &About, assessor: &str, cases: &[CaseLine]) -> Result<(String, String), String> {
    let mut text = format!(
        "Hello {assessor},\n\nYou are an assessor of the {} {} regression on {} (plan {}).\n",
        about.service, about.version, about.stand, about.plan
    );
    if let Some(d) = &about.deadline {
        text.push_str(&format!("Please give every case a verdict by {d}.\n"));
    }
    text.push_str(&format!("\nYour cases ({}):\n", cases.len()));
    for (i, c) in cases.iter().enumerate() {
        text.push_str(&format!("  {}. {} — {}\n", i + 1, c.summary, c.url));
    }
    text.push_str(&format!(
        "\nMark each of them in the test run as PASSED, FAILED or BLOCKED: {}\n",
        about.run_url
    ));
    if let Some(t) = &about.ticket {
        text.push_str(&format!(
            "Ticket: {t}{}\n",
            about
                .ticket_url
                .as_ref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        ));
    }
    text.push_str(&format!("Progress of the regression: {}\n", about.link));
    let html = html(
        ASSESSOR_HTML,
        minijinja::context! { about => V::from(Serde(about)), assessor => assessor, cases => V::from(Serde(cases)) },
    )?;
    Ok((text, html))
}

/// The lines of the cases that failed or are blocked.
pub fn problems(executions: &[Execution], case_url: impl Fn(u64) -> String) -> Vec<CaseLine> {
    executions
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Failed | Outcome::Blocked))
        .map(|e| CaseLine {
            summary: e.case_summary.clone(),
            url: case_url(e.case_id),
            status: e.status.clone(),
        })
        .collect()
}

/// The subject of the final report.
pub fn report_subject(about: &About, p: &Progress) -> String {
    format!(
        "[Tomato] {} completed: {} passed, {} failed, {} blocked",
        about.title(),
        p.counts.passed,
        p.counts.failed,
        p.counts.blocked
    )
}

/// The final report: counts overall and per assessor, the failed and blocked cases.
pub fn report_email(
    about: &About,
    p: &Progress,
    problems: &[CaseLine],
    from: &Mailbox,
    to: &[Address],
) -> Result<Message, String> {
    let mut text = format!("{}: completed\n\n{}\n\n", about.title(), counts_line(&p.counts));
    for a in &p.assessors {
        text.push_str(&format!("  {}: {}\n", a.assessor, counts_line(&a.counts)));
    }
    if !problems.is_empty() {
        text.push_str("\nFailed and blocked cases:\n");
        for c in problems {
            text.push_str(&format!("  - {}: {} — {}\n", c.status, c.summary, c.url));
        }
    }
    text.push_str(&format!(
        "\nTest run: {}\nRegression: {}\n",
        about.run_url, about.link
    ));
    let assessors: Vec<serde_json::Value> = p
        .assessors
        .iter()
        .map(|a| {
            serde_json::json!({"assessor": a.assessor, "total": a.counts.total, "passed": a.counts.passed,
                "failed": a.counts.failed, "blocked": a.counts.blocked})
        })
        .collect();
    let html = html(
        REPORT_HTML,
        minijinja::context! {
            about => V::from(Serde(about)), title => about.title(), overall => counts_line(&p.counts),
            assessors => V::from(Serde(&assessors)), problems => V::from(Serde(problems)),
        },
    )?;
    let id = format!("<{}.regression-report@{}>", about.name, from.email.domain());
    message(from, to, &report_subject(about, p), id, text, html)
}

fn escape(kind: TrackerKind, s: &str) -> String {
    match kind {
        TrackerKind::Jira => escape_jira(s),
        TrackerKind::Yandex => escape_markdown(s),
    }
}

fn link(kind: TrackerKind, text: &str, url: &str) -> String {
    match kind {
        TrackerKind::Jira => format!("[{}|{url}]", escape_jira(text)),
        TrackerKind::Yandex => format!("[{}]({url})", escape_markdown(text)),
    }
}

/// The ticket's summary.
pub fn ticket_summary(about: &About) -> String {
    format!("{} on {}", about.title(), about.stand)
}

/// The ticket's description: the run, the assessors and their shares, the deadline.
pub fn ticket_description(kind: TrackerKind, about: &About, shares: &[(String, usize)]) -> String {
    let mut out = format!(
        "Manual regression of {} {} on {}, plan {}.\n\n",
        escape(kind, &about.service),
        escape(kind, &about.version),
        escape(kind, &about.stand),
        escape(kind, &about.plan)
    );
    out.push_str(&format!(
        "Test run: {}\n",
        link(kind, "Kiwi TCMS", &about.run_url)
    ));
    if let Some(d) = &about.deadline {
        out.push_str(&format!("Deadline: {d}\n"));
    }
    out.push_str("\nAssessors:\n");
    for (a, n) in shares {
        out.push_str(&format!("- {}: {}\n", escape(kind, a), plural(*n, "case")));
    }
    out.push_str(&format!(
        "\n{}\n",
        link(kind, "Regression in Tomato", &about.link)
    ));
    out
}

/// The comment on the ticket once every case has a verdict.
pub fn summary_comment(kind: TrackerKind, about: &About, p: &Progress, problems: &[CaseLine]) -> String {
    let mut out = match kind {
        TrackerKind::Jira => format!("h3. {}: completed\n", escape_jira(&about.title())),
        TrackerKind::Yandex => format!("**{}: completed**\n\n", escape_markdown(&about.title())),
    };
    out.push_str(&format!("{}\n\n", counts_line(&p.counts)));
    for a in &p.assessors {
        out.push_str(&format!(
            "- {}: {}\n",
            escape(kind, &a.assessor),
            counts_line(&a.counts)
        ));
    }
    if !problems.is_empty() {
        out.push_str("\nFailed and blocked cases:\n");
        for c in problems {
            out.push_str(&format!("- {}: {}\n", c.status, link(kind, &c.summary, &c.url)));
        }
    }
    out.push_str(&format!(
        "\n{} · {}\n",
        link(kind, "Test run", &about.run_url),
        link(kind, "Regression in Tomato", &about.link)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AssessorProgress;

    fn about() -> About {
        About {
            name: "demo-2-0".into(),
            service: "demo".into(),
            version: "2.0".into(),
            stand: "localhost".into(),
            plan: "Release regression".into(),
            run_url: "http://kiwi/runs/3/".into(),
            link: "http://tomato/regressions/demo-2-0".into(),
            deadline: Some("2030-01-01 18:00 UTC".into()),
            ticket: Some("QA-1".into()),
            ticket_url: Some("http://jira/browse/QA-1".into()),
        }
    }

    fn cases() -> Vec<CaseLine> {
        vec![CaseLine {
            summary: "Log in <b>& out".into(),
            url: "http://kiwi/case/7/".into(),
            status: "FAILED".into(),
        }]
    }

    #[test]
    fn an_assessor_email_lists_their_cases_with_links_and_escapes_them_in_html() {
        let from: Mailbox = "Tomato <tomato@example.com>".parse().unwrap();
        let to: Address = "alice@example.com".parse().unwrap();
        let msg = assessor_email(&about(), "alice", &cases(), &from, &to).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <demo-2-0.alice.assigned@example.com>"),
            "{raw}"
        );
        let (text, html) = assessor_parts(&about(), "alice", &cases()).unwrap();
        assert!(
            text.contains("1. Log in <b>& out — http://kiwi/case/7/"),
            "{text}"
        );
        assert!(html.contains("Log in &lt;b&gt;&amp; out"), "{html}");
        assert!(!html.contains("<b>&"), "{html}");
        assert_eq!(
            assessor_subject(&about(), 3),
            "[Tomato] Regression of demo 2.0: 3 cases for you by 2030-01-01 18:00 UTC"
        );
    }

    #[test]
    fn the_summary_comment_is_escaped_for_each_trackers_markup() {
        let p = Progress {
            counts: Counts {
                total: 2,
                idle: 0,
                passed: 1,
                failed: 1,
                blocked: 0,
            },
            assessors: vec![AssessorProgress {
                assessor: "alice".into(),
                counts: Counts {
                    total: 2,
                    idle: 0,
                    passed: 1,
                    failed: 1,
                    blocked: 0,
                },
            }],
            checked_at: None,
        };
        let jira = summary_comment(TrackerKind::Jira, &about(), &p, &cases());
        assert!(
            jira.starts_with(
                "h3. Regression of demo 2.0: completed\n2 cases — 1 passed, 1 failed, 0 blocked"
            ),
            "{jira}"
        );
        assert!(
            jira.contains("- FAILED: [Log in <b>& out|http://kiwi/case/7/]"),
            "{jira}"
        );
        let md = summary_comment(TrackerKind::Yandex, &about(), &p, &cases());
        assert!(
            md.contains("- FAILED: [Log in \\<b\\>\\& out](http://kiwi/case/7/)"),
            "{md}"
        );
    }
}
