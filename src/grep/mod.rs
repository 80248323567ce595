//! Failure classification by grepping: Allure-style category rules, and a fast multi-rule log scanner.
//!
//! # Responsibility
//!
//! Tomato files each failed test under one category of its service's rules. A rule is an entry of an
//! Allure `categories.json` (so teams can paste the file they already have) plus Tomato's `logRegex`,
//! which must match some line of the test's log. This module
//!
//! * parses and validates rule files, reporting every problem of every rule at once ([`rules`]);
//! * decides a test's category from its status, message, trace and which `logRegex` matched
//!   ([`RuleSet::classify`], first match wins);
//! * finds which rules match which log lines, for one test's output ([`Engine::scan_bytes`]) or for
//!   gigabyte logs ([`Engine::scan`]) ([`engine`]);
//! * offers the `tomato grep` command to try a rules file on logs ([`cli`]).
//!
//! # Why it is shaped this way
//!
//! The old tool looped over lines and tried each compiled regex on each, which costs
//! `lines × rules` regex calls and made classification the slow part of a run. Rules almost always
//! name a rare literal, so the engine searches all rules' literals at once with one SIMD pass over big
//! chunks and runs real regexes only on the few lines that contain one (private module `literals`
//! picks the literals); rules without a usable literal get a skip-ahead scan over a run of narrow
//! character classes (private module `window`) or, failing that, share one DFA pass. On a 1 GiB test
//! log with 50 rules this is several times faster than `rg -c -f` with the same patterns
//! (`benches/grep_bench.py`). Everything uses finite-automata regexes (no backtracking), so a hostile or careless
//! pattern such as `(a+)+$` stays linear; the price is Rust regex syntax instead of Java's (no
//! look-around, no back-references), which the validator reports per rule.
//!
//! Compilation ([`RuleSet`], [`Engine`]) is separate from searching so a service's rules are compiled
//! once and reused for every test of every run; an [`Engine`] is `Sync` and can be shared by threads.

pub mod cli;
pub mod engine;
mod literals;
pub mod rules;
mod window;

pub use cli::{GrepArgs, run};
pub use engine::{Counts, Engine, EngineError, Plan, SAMPLE_BYTES, SAMPLE_LINES, ScanOptions};
pub use rules::{CategoryRule, RuleError, RuleMatches, RuleSet, RuleSetError, TestStatus};
