//! Schedules: any expression and zone is a schedule or an error; a schedule's next firing
//! is after the time asked from.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (expr, tz) = input;
    if let Ok(s) = tomato::schedule::Schedule::parse(expr, tz) {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        if let Some(next) = s.next_after(now) {
            assert!(next > now);
        }
    }
});
