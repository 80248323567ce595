//! The categories rule compiler (Allure's categories.json shape): any JSON text compiles to
//! a rule set or an error, and a compiled set scans a log and classifies without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tomato::grep::{Engine, RuleSet, TestStatus};

fuzz_target!(|input: (&str, &[u8], &str)| {
    let (json, log, message) = input;
    let Ok(rules) = RuleSet::from_json(json) else {
        return;
    };
    let Ok(engine) = Engine::new(&rules) else {
        return;
    };
    let mut counts = engine.counts();
    engine.scan_bytes(log, &mut counts);
    let matches = counts.rule_matches();
    if let Some(i) = rules.classify(TestStatus::Failed, message, message, &matches) {
        assert!(i < rules.len());
    }
});
