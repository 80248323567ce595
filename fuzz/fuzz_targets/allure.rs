//! The Allure results reader never panics, whatever bytes an adapter (or a crash) leaves in a
//! result or container file, and what it keeps stays within its bounds: text capped, steps
//! bounded in number and depth, attachment names either plain file names or refused, and the
//! record it writes reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tomato::results::allure::{self, AttemptExtras, MAX_STEP_DEPTH, MAX_STEPS, MAX_TEXT_BYTES, Step};

fn check(steps: &[Step], depth: usize, count: &mut usize) {
    assert!(depth < MAX_STEP_DEPTH, "steps nest no deeper than the cap");
    for s in steps {
        *count += 1;
        assert!(s.name.len() <= MAX_TEXT_BYTES + 64);
        check(&s.steps, depth + 1, count);
    }
}

fuzz_target!(|data: &[u8]| {
    let containers: Vec<_> = allure::parse_container(data).into_iter().collect();
    let Ok(result) = allure::parse_result(data) else {
        return;
    };
    let (tests, _notes) = allure::assemble(vec![result], &containers);
    assert_eq!(tests.len(), 1);
    let t = &tests[0];
    assert!(t.case.message.len() <= MAX_TEXT_BYTES * 2 + 128);
    assert!(t.case.trace.len() <= MAX_TEXT_BYTES + 64);
    let mut count = 0;
    check(&t.extras.steps, 0, &mut count);
    assert!(count <= MAX_STEPS);
    for a in &t.extras.attachments {
        assert!(a.refused.is_some() || allure::safe_source(&a.source));
    }
    let record = AttemptExtras {
        tests: [("id".to_string(), t.extras.clone())].into(),
        notes: Vec::new(),
    };
    let json = serde_json::to_vec(&record).expect("a record serializes");
    let back: AttemptExtras = serde_json::from_slice(&json).expect("a record reads back");
    assert_eq!(back, record);
});
