//! How the UI writes times, durations and rates: one place, so every page says them alike.
//!
//! Pure functions over explicit inputs (the current time is a parameter), so pages render
//! the same in tests as in use.

use chrono::{DateTime, Utc};

/// A span of time as people read it on a dashboard: `45s`, `3m 05s`, `2h 04m`, `3d 2h`.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Milliseconds as a test duration: `12 ms`, `1.5 s`, `2m 03s`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => duration((ms / 1000) as i64),
    }
}

/// Seconds between two instants (zero when `to` is earlier).
pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds().max(0)
}

/// An instant in UTC, to the second: `2024-05-01 12:00:03 UTC`. Pages mark it up with its
/// RFC 3339 value too, so the browser can show it in the reader's zone.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An instant as an RFC 3339 value for `<time datetime>` and `data-since`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A share as a whole percentage, rounded down so that "100%" means nothing failed.
pub fn percent(part: u32, whole: u32) -> String {
    if whole == 0 {
        return "–".to_string();
    }
    format!("{}%", (u64::from(part) * 100 / u64::from(whole)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock_at_every_scale() {
        assert_eq!(duration(-3), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(185), "3m 05s");
        assert_eq!(duration(7440), "2h 04m");
        assert_eq!(duration(3 * 86400 + 7200), "3d 2h");
        assert_eq!(millis(12), "12 ms");
        assert_eq!(millis(1540), "1.5 s");
        assert_eq!(millis(123_000), "2m 03s");
    }

    #[test]
    fn a_percentage_never_rounds_up_to_a_full_pass() {
        assert_eq!(percent(199, 200), "99%");
        assert_eq!(percent(5, 5), "100%");
        assert_eq!(percent(0, 0), "–");
    }

    #[test]
    fn times_are_utc_to_the_second() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:03.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(t), "2024-05-01 10:00:03 UTC");
        assert_eq!(rfc3339(t), "2024-05-01T10:00:03Z");
    }
}
