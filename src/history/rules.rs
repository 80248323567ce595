//! Unclassified failures become rules (issue 17 item 6): the service's recent failures that no
//! categories rule matched are clustered by failure signature, and for each cluster a rule is
//! proposed — a `messageRegex` made of the words every member's message shares, in order —
//! with a back-test over the same window: how many failures it would match, how many of them
//! are unclassified today, and which existing categories already claim the rest (the rule it
//! would collide with). Pure: the caller reads the failures ([`crate::store::ResultsStore::failures_since`]).
//!
//! Why it is shaped so:
//! - **One cluster per signature.** The signature already is "the same failure, whatever values
//!   it printed" ([`crate::results::signature`]), so a cluster is one failure shape.
//! - **Words, not values.** Only words of three or more letters or digits that are not numbers
//!   or hex are kept, and only those found in every member's message, in the first member's
//!   order: what varies between members (ids, counts, hosts) drops out by itself. The regex is
//!   `.*word.*word.*` under Allure's semantics (DOTALL, whole message), so it reads as the
//!   words it needs.
//! - **Back-tested with the classifier's own matcher** ([`crate::grep::RuleSet`]), on every
//!   failure of the window, classified or not: a rule appended after the existing ones never
//!   takes their failures (first match wins), but a collision says the new rule is broader than
//!   its cluster, or an existing rule narrower than it should be.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::classify::UNCLASSIFIED;
use crate::grep::{CategoryRule, RuleMatches, RuleSet, TestStatus};
use crate::results::CaseStatus;
use crate::store::results::Failure;

/// Most words a proposed regex needs (the first ones shared, in order).
const MAX_WORDS: usize = 8;
/// Tests named per suggestion.
const MAX_TESTS: usize = 10;

/// One proposed rule, with its cluster and back-test.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// The failure signature the cluster shares.
    pub signature: String,
    /// The rule to add to the service's categories (a name to edit, the regex, the statuses).
    #[schema(value_type = Object)]
    pub rule: CategoryRule,
    /// Unclassified failures in the cluster (one per run and test).
    pub failures: usize,
    /// Runs they happened in.
    pub runs: usize,
    /// Tests that failed so (the first few, by id).
    pub tests: Vec<String>,
    /// One member's message, as it was.
    pub example: String,
    pub backtest: Backtest,
}

/// What the proposed rule would have done to the window's failures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    /// Failures of the window it was tried on.
    pub checked: usize,
    /// Of them, those it matches.
    pub matched: usize,
    /// Of those, the unclassified ones (what it would newly classify).
    pub unclassified: usize,
    /// Of those, failures existing categories already claim, by category: the rules it
    /// collides with.
    pub collisions: BTreeMap<String, usize>,
}

/// The suggestions for `failures` (a service's recent ones, with the category and signature
/// each run recorded): one per signature shared by at least `min_failures` unclassified
/// failures, biggest cluster first. Failures recorded before signatures were have none and
/// are left out of the clusters (not of the back-test). Pure.
pub fn suggest(failures: &[Failure], min_failures: usize) -> Vec<Suggestion> {
    let mut clusters: HashMap<&str, Vec<&Failure>> = HashMap::new();
    let mut seen = HashSet::new();
    for f in failures {
        if f.category.as_deref().is_some_and(|c| c != UNCLASSIFIED) {
            continue;
        }
        let Some(signature) = &f.signature else { continue };
        // One per run and test: a test failing the same way on every attempt is one failure.
        if seen.insert((f.run.as_str(), f.test_id.as_str())) {
            clusters.entry(signature.as_str()).or_default().push(f);
        }
    }
    let mut out: Vec<Suggestion> = clusters
        .into_iter()
        .filter(|(_, members)| members.len() >= min_failures.max(1))
        .filter_map(|(signature, members)| {
            let rule = proposed_rule(signature, &members)?;
            let backtest = backtest(&rule, failures)?;
            let runs: HashSet<&str> = members.iter().map(|f| f.run.as_str()).collect();
            let mut tests: Vec<String> = members.iter().map(|f| f.test_id.clone()).collect();
            tests.sort();
            tests.dedup();
            tests.truncate(MAX_TESTS);
            Some(Suggestion {
                signature: signature.to_string(),
                failures: members.len(),
                runs: runs.len(),
                tests,
                example: members[0].message.clone(),
                rule,
                backtest,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.failures
            .cmp(&a.failures)
            .then_with(|| a.signature.cmp(&b.signature))
    });
    out
}

/// The words of `message` a rule may rest on: runs of three or more letters, digits or `_`
/// that are not a number or a hex value.
fn words(message: &str) -> Vec<&str> {
    message
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().count() >= 3)
        // A number, or a hex value with a digit in it ("deadbeef" and "add" are words).
        .filter(|w| !(w.chars().any(|c| c.is_ascii_digit()) && w.chars().all(|c| c.is_ascii_hexdigit())))
        .collect()
}

/// The rule for one cluster: the words every member's message has, in the first member's
/// order, as `.*w1.*w2.*`; `None` when the members share no word.
fn proposed_rule(signature: &str, members: &[&Failure]) -> Option<CategoryRule> {
    let others: Vec<HashSet<&str>> = members[1..]
        .iter()
        .map(|f| words(&f.message).into_iter().collect())
        .collect();
    let mut shared: Vec<&str> = Vec::new();
    for w in words(&members[0].message) {
        if !shared.contains(&w) && others.iter().all(|o| o.contains(w)) {
            shared.push(w);
        }
        if shared.len() == MAX_WORDS {
            break;
        }
    }
    // The words are in the first member's order; one whose message has them in another order
    // would not match: drop words from the end until every member matches.
    while !shared.is_empty() {
        let rule = rule_of(signature, &shared, members);
        let set = RuleSet::from_rules(vec![rule.clone()]).ok()?;
        let all = members.iter().all(|f| {
            set.classify(test_status(f.status), &f.message, "", &RuleMatches::none())
                .is_some()
        });
        if all {
            return Some(rule);
        }
        shared.pop();
    }
    None
}

/// The rule made of `shared` words for a cluster of `members`.
fn rule_of(signature: &str, shared: &[&str], members: &[&Failure]) -> CategoryRule {
    let regex = format!(
        ".*{}.*",
        shared
            .iter()
            .map(|w| regex_syntax::escape(w))
            .collect::<Vec<_>>()
            .join(".*")
    );
    let name = format!(
        "Suggested: {}",
        shared.iter().take(4).copied().collect::<Vec<_>>().join(" ")
    );
    let mut statuses: Vec<String> = members
        .iter()
        .map(|f| status_name(f.status).to_string())
        .collect();
    statuses.sort();
    statuses.dedup();
    CategoryRule {
        name,
        description: Some(format!(
            "Proposed by Tomato from {} unclassified failures of signature {signature}",
            members.len()
        )),
        matched_statuses: statuses,
        message_regex: Some(regex),
        ..CategoryRule::default()
    }
}

fn test_status(status: CaseStatus) -> TestStatus {
    match status {
        CaseStatus::Errored => TestStatus::Broken,
        _ => TestStatus::Failed,
    }
}

fn status_name(status: CaseStatus) -> &'static str {
    test_status(status).as_str()
}

/// Tries `rule` on every failure (its message, as the classifier would), one per run and
/// test as the clusters count them; `None` when the rule does not compile (it always should:
/// its words are escaped).
fn backtest(rule: &CategoryRule, failures: &[Failure]) -> Option<Backtest> {
    let set = RuleSet::from_rules(vec![rule.clone()]).ok()?;
    let mut out = Backtest::default();
    let mut seen = HashSet::new();
    for f in failures {
        if !seen.insert((f.run.as_str(), f.test_id.as_str())) {
            continue;
        }
        out.checked += 1;
        if set
            .classify(test_status(f.status), &f.message, "", &RuleMatches::none())
            .is_none()
        {
            continue;
        }
        out.matched += 1;
        match f.category.as_deref() {
            None | Some(UNCLASSIFIED) => out.unclassified += 1,
            Some(other) => *out.collisions.entry(other.to_string()).or_default() += 1,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Signature;

    fn failure(run: &str, test: &str, message: &str, category: Option<&str>) -> Failure {
        Failure {
            test_id: test.into(),
            run: run.into(),
            stand: "stage".into(),
            created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            attempt: 1,
            status: CaseStatus::Failed,
            message: message.into(),
            category: category.map(str::to_string),
            signature: Some(Signature::of(message, "")),
        }
    }

    /// Real messages: a Selenium wait timing out on different selectors and durations, a
    /// pytest connection refusal on different ports, and one already classified.
    fn window() -> Vec<Failure> {
        let wait = |selector: &str, secs: u32| {
            format!("TimeoutException: Message: waiting for element #{selector} timed out after {secs}s")
        };
        vec![
            failure("r1", "ui::login", &wait("login-7", 30), Some("Unclassified")),
            failure("r2", "ui::login", &wait("login-9", 45), Some("Unclassified")),
            failure("r2", "ui::signup", &wait("login-3", 30), None),
            failure(
                "r3",
                "api::pay",
                "ConnectionRefusedError: [Errno 111] Connection refused (port 8081)",
                Some("Unclassified"),
            ),
            failure(
                "r3",
                "api::refund",
                "ConnectionRefusedError: [Errno 111] Connection refused (port 9090)",
                Some("Unclassified"),
            ),
            failure("r1", "ui::menu", &wait("login-2", 12), Some("Product defects")),
            failure(
                "r1",
                "api::x",
                "AssertionError: expected 1 but was 2",
                Some("Product defects"),
            ),
        ]
    }

    #[test]
    fn unclassified_failures_cluster_by_signature_into_a_rule_of_their_shared_words() {
        let all = window();
        let got = suggest(&all, 2);
        assert_eq!(got.len(), 2, "{got:#?}");
        let timeouts = &got[0];
        assert_eq!((timeouts.failures, timeouts.runs), (3, 2));
        assert_eq!(timeouts.tests, ["ui::login", "ui::signup"]);
        // The selectors' numbers and the durations differ: they are not in the rule.
        assert_eq!(
            timeouts.rule.message_regex.as_deref(),
            Some(".*TimeoutException.*Message.*waiting.*for.*element.*login.*timed.*out.*"),
            "{:?}",
            timeouts.rule
        );
        assert_eq!(
            timeouts.rule.name,
            "Suggested: TimeoutException Message waiting for"
        );
        assert_eq!(timeouts.rule.matched_statuses, ["failed"]);
        // It matches its three, and the menu timeout "Product defects" already claims.
        assert_eq!(
            timeouts.backtest,
            Backtest {
                checked: 7,
                matched: 4,
                unclassified: 3,
                collisions: BTreeMap::from([("Product defects".to_string(), 1)]),
            }
        );
        let refused = &got[1];
        assert_eq!(
            refused.rule.message_regex.as_deref(),
            Some(".*ConnectionRefusedError.*Errno.*Connection.*refused.*port.*")
        );
        assert_eq!((refused.backtest.matched, refused.backtest.unclassified), (2, 2));
        assert!(refused.backtest.collisions.is_empty());
    }

    #[test]
    fn a_proposed_rule_classifies_its_cluster_with_the_real_classifier() {
        let all = window();
        let rules: Vec<CategoryRule> = suggest(&all, 2).into_iter().map(|s| s.rule).collect();
        let set = RuleSet::from_rules(rules).expect("proposed rules are valid rules");
        for f in all
            .iter()
            .filter(|f| f.category.as_deref() != Some("Product defects"))
        {
            assert!(
                set.classify(TestStatus::Failed, &f.message, "", &RuleMatches::none())
                    .is_some(),
                "{}",
                f.message
            );
        }
    }

    /// A cluster whose members have the shared words in other orders still gets a rule that
    /// matches every member (fewer words), never one that misses its own cluster.
    #[test]
    fn a_proposed_rule_matches_every_member_of_its_cluster() {
        let same = Some(Signature::of("one shape", ""));
        let mut a = failure("r1", "a", "beta alpha gamma", None);
        let mut b = failure("r2", "b", "alpha beta gamma", None);
        a.signature = same.clone();
        b.signature = same;
        let got = suggest(&[a, b], 2);
        assert_eq!(got[0].rule.message_regex.as_deref(), Some(".*beta.*"), "{got:#?}");
        assert_eq!(got[0].backtest.matched, 2);
    }

    #[test]
    fn small_clusters_repeats_and_wordless_messages_propose_nothing() {
        let mut all = window();
        assert_eq!(suggest(&all, 4).len(), 0, "no cluster of four");
        // The same test failing the same way on a rerun is one failure, not two.
        let mut rerun = all[0].clone();
        rerun.attempt = 2;
        all.push(rerun);
        let got = suggest(&all, 2);
        assert_eq!(got[0].failures, 3);
        assert_eq!(
            (got[0].backtest.checked, got[0].backtest.matched),
            (7, 4),
            "one per run and test"
        );
        let wordless = vec![
            failure("r1", "a", "42 != 43", None),
            failure("r2", "a", "42 != 44", None),
        ];
        assert!(suggest(&wordless, 1).is_empty(), "numbers are not words");
        // Special characters in shared words cannot break the regex.
        let dotted = vec![
            failure("r1", "a", "KeyError: 'user_id' in payload", None),
            failure("r2", "b", "KeyError: 'user_id' in payload", None),
        ];
        let got = suggest(&dotted, 2);
        assert_eq!(
            got[0].rule.message_regex.as_deref(),
            Some(".*KeyError.*user_id.*payload.*")
        );
    }
}
