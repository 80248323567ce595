//! Which template a run's tracker comment is rendered from: Jira's wiki markup or Yandex
//! Tracker's Markdown. Sending it is [`crate::integrations::tracker`]'s.

use super::templates::{TRACKER_JIRA, TRACKER_YANDEX};
use crate::integrations::settings::TrackerKind;

/// The template the tracker's comment is rendered from.
pub fn template(kind: TrackerKind) -> &'static str {
    match kind {
        TrackerKind::Jira => TRACKER_JIRA,
        TrackerKind::Yandex => TRACKER_YANDEX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::content::RunReport;
    use crate::report::templates::Templates;

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
