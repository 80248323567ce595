//! The webhook message: Slack-compatible JSON (`text` plus Block Kit `blocks`), which Slack,
//! Mattermost and Rocket.Chat incoming webhooks accept. Pure.
//!
//! `text` is the rendered `webhook.txt` template (what notifications and clients without
//! blocks show); `blocks` lay the same report out: a header, the counts, the details, the
//! failures by category, the flaky tests, and a button to the run page. Every value from the
//! run is escaped for mrkdwn, and each block is kept within Slack's size limits.

use serde_json::{Value, json};

use super::content::RunReport;
use super::templates::escape_slack;
use crate::crd::Verdict;
use crate::integrations::http::{Auth, JsonPost};
use crate::integrations::settings::Webhook;
use crate::text::shorten;

/// Slack's limit on a header block's text.
const MAX_HEADER_CHARS: usize = 150;
/// Slack's limit on a section's text.
const MAX_SECTION_CHARS: usize = 3000;
/// Tests shown per category in the blocks.
const TESTS_PER_CATEGORY: usize = 5;

/// The POST of `payload` to one webhook.
pub fn post(hook: &Webhook, payload: Value) -> JsonPost {
    JsonPost {
        url: hook.url().clone(),
        label: hook.label().to_string(),
        auth: Auth::None,
        headers: Vec::new(),
        body: payload,
    }
}

/// The Slack message of a report; `text` is the rendered `webhook.txt`.
pub fn payload(r: &RunReport, text: &str) -> Value {
    let e = escape_slack;
    let title = format!(
        "{} {}{} on {}: {}",
        match r.verdict {
            Verdict::Succeeded => "✅",
            Verdict::Failed => "❌",
            Verdict::Error => "⚠️",
        },
        r.service,
        if r.selection.is_empty() {
            String::new()
        } else {
            format!(" {}", r.selection)
        },
        r.stand,
        r.verdict
    );
    let s = &r.summary;
    let counts = format!(
        "*{}*\n{} tests: {} passed, {} failed, {} broken, {} flaky, {} skipped",
        e(&r.headline),
        s.total,
        s.passed,
        s.failed,
        s.broken,
        s.flaky,
        s.skipped
    );
    let mut fields = vec![
        field("Stand", &r.stand),
        field("Priority", &r.priority.to_string()),
    ];
    if let Some(v) = &r.version {
        fields.push(field("Version", v));
    }
    if let Some(k) = &r.issue_key {
        fields.push(field("Issue", k));
    }
    if let Some(d) = &r.duration {
        fields.push(field("Duration", d));
    }
    fields.push(field("Attempts", &r.attempts.len().to_string()));

    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": shorten(&title, MAX_HEADER_CHARS), "emoji": true}}),
        section(&counts),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(m) = r.message.as_deref().filter(|_| r.verdict == Verdict::Error) {
        blocks.push(section(&format!("*Why:* {}", e(m))));
    }
    if let Some(n) = &r.novelty {
        let mut lines = vec![format!("*Against history:* {}", e(&n.line))];
        for t in n.news.iter().take(TESTS_PER_CATEGORY) {
            lines.push(format!("• {} `{}`", t.kind, e(&t.name).replace('`', "'")));
        }
        let more = n.news.len() + n.news_more;
        if more > TESTS_PER_CATEGORY {
            lines.push(format!("• … and {} more", more - TESTS_PER_CATEGORY));
        }
        blocks.push(section(&lines.join("\n")));
    }
    if !r.failures.is_empty() {
        let mut lines = vec![format!("*Failures by category* ({})", r.failing)];
        for g in &r.failures {
            lines.push(format!("*{}* ({})", e(&g.category), g.count));
            for t in g.tests.iter().take(TESTS_PER_CATEGORY) {
                let message = if t.message.is_empty() {
                    String::new()
                } else {
                    format!(" — _{}_", e(&shorten(&crate::text::one_line(&t.message), 200)))
                };
                lines.push(format!("• `{}`{message}", e(&t.name).replace('`', "'")));
            }
            if g.count > TESTS_PER_CATEGORY {
                lines.push(format!("• … and {} more", g.count - TESTS_PER_CATEGORY));
            }
        }
        blocks.push(section(&lines.join("\n")));
    }
    if !r.flaky.is_empty() {
        let mut lines = vec![format!("*Flaky tests* ({})", r.summary.flaky)];
        for t in r.flaky.iter().take(TESTS_PER_CATEGORY) {
            lines.push(format!(
                "• `{}` (failed on attempt {})",
                e(&t.name).replace('`', "'"),
                t.failed_on
            ));
        }
        if r.flaky.len() + r.flaky_more > TESTS_PER_CATEGORY {
            lines.push(format!(
                "• … and {} more",
                r.flaky.len() + r.flaky_more - TESTS_PER_CATEGORY
            ));
        }
        blocks.push(section(&lines.join("\n")));
    }
    blocks.push(json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open the run"},
            "url": r.link,
        }],
    }));
    json!({ "text": text.trim(), "blocks": blocks })
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": shorten(text, MAX_SECTION_CHARS)}})
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape_slack(value))})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::content::{FailedTest, FailureGroup};

    #[test]
    fn the_message_has_text_and_blocks_with_counts_failures_flaky_and_a_link() {
        let r = RunReport::sample();
        let p = payload(&r, "fallback text\n");
        assert_eq!(p["text"], "fallback text");
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "❌ demo smoke on localhost: Failed");
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*1 failed, 1 flaky*")
        );
        let all = serde_json::to_string(&p).unwrap();
        assert!(all.contains("*Unclassified* (1)"), "{all}");
        assert!(
            all.contains("• `cart &gt; applies the discount` — _expected 85 but was 90_"),
            "{all}"
        );
        assert!(
            all.contains("• `submits the order form` (failed on attempt 1)"),
            "{all}"
        );
        let button = &blocks.last().unwrap()["elements"][0];
        assert_eq!(button["url"], "http://localhost:8080/runs/demo-sample");
    }

    #[test]
    fn test_output_cannot_inject_links_or_mentions() {
        let mut r = RunReport::sample();
        r.failures = vec![FailureGroup {
            category: "<!channel>".into(),
            count: 1,
            tests: vec![FailedTest {
                name: "<http://evil|click>".into(),
                verdict: crate::results::TestVerdict::Failed,
                message: "a & b".into(),
                attempt: 1,
                attachments: Vec::new(),
            }],
            more: 0,
        }];
        let all = serde_json::to_string(&payload(&r, "")).unwrap();
        assert!(
            !all.contains("<!channel>") && !all.contains("<http://evil"),
            "{all}"
        );
        assert!(
            all.contains("&lt;!channel&gt;") && all.contains("a &amp; b"),
            "{all}"
        );
    }
}
