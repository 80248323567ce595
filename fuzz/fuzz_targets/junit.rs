//! The streaming JUnit parser never panics, whatever bytes a runner writes; a parse that
//! succeeds reports as many cases as it handed over.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cases = 0u64;
    if let Ok(stats) = tomato::results::junit::parse(data, |_| cases += 1) {
        assert_eq!(stats.cases, cases);
    }
});
