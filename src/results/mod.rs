//! Test results: reading JUnit XML, and merging attempts into one verdict per test.

pub mod junit;
mod merge;

pub use junit::{Case, CaseStatus};
pub use merge::{MergedTest, TestVerdict, attempt_summary, merge, selection_filter, summarize};

/// One test's result in one attempt: the JUnit case plus the id it is known by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    /// Attempt number (1 = the full run).
    pub attempt: u32,
    /// Test id (see `rerun.testId` in packs_config), unique within the attempt.
    pub id: String,
    pub case: Case,
}

/// Gives each case of one attempt its test id, making repeated ids unique (`id #2`) so that
/// two same-named tests (in different files, say) are never merged into one.
pub fn assign_ids(attempt: u32, cases: Vec<Case>, id_of: impl Fn(&Case) -> String) -> Vec<AttemptResult> {
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    cases
        .into_iter()
        .map(|case| {
            let base = id_of(&case);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { base } else { format!("{base} #{n}") };
            AttemptResult { attempt, id, case }
        })
        .collect()
}
