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

/// A run's or attempt's length from milliseconds: `350 ms` under a second (a sub-second run
/// is not "0s"), else as [`duration`].
pub fn span_ms(ms: i64) -> String {
    match ms.max(0) {
        ms @ 0..1000 => format!("{ms} ms"),
        ms => duration(ms / 1000),
    }
}

/// Milliseconds between two instants (zero when `to` is earlier).
pub fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// Seconds between two instants (zero when `to` is earlier).
pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds().max(0)
}

/// An instant in UTC, to the second: `2024-05-01 12:00:03 UTC`. Pages mark it up with its
/// RFC 3339 value too, so the browser can show it in the reader's zone.
pub fn time(t: DateTime<Utc>) -> String {
    crate::report::model::timestamp(t)
}

/// An instant as an RFC 3339 value for `<time datetime>` and `data-since`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A share as a percentage: see [`rate`]; `–` when there is nothing to share.
pub fn percent(part: u32, whole: u32) -> String {
    if whole == 0 {
        return "–".to_string();
    }
    rate(f64::from(part) / f64::from(whole))
}

/// A fraction (0–1) as a percentage to one decimal, rounded to the nearest (`66.7%`), a whole
/// number without its `.0` (`50%`). Two values never round to a lie: `100%` means nothing
/// failed (99.96% shows as `99.9%`) and `0%` means nothing passed (0.04% shows as `0.1%`).
pub fn rate(fraction: f64) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let mut tenths = (f * 1000.0).round();
    if f < 1.0 {
        tenths = tenths.min(999.0);
    }
    if f > 0.0 {
        tenths = tenths.max(1.0);
    }
    if tenths % 10.0 == 0.0 {
        format!("{:.0}%", tenths / 10.0)
    } else {
        format!("{:.1}%", tenths / 10.0)
    }
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
    fn a_percentage_has_one_decimal_and_never_rounds_to_a_full_pass_or_none() {
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(199, 200), "99.5%");
        assert_eq!(percent(1, 2), "50%");
        assert_eq!(percent(9999, 10000), "99.9%", "not 100% while one failed");
        assert_eq!(percent(1, 10000), "0.1%", "not 0% while one passed");
        assert_eq!(percent(5, 5), "100%");
        assert_eq!(percent(0, 5), "0%");
        assert_eq!(percent(0, 0), "–");
    }

    #[test]
    fn sub_second_spans_are_in_milliseconds() {
        assert_eq!(span_ms(0), "0 ms");
        assert_eq!(span_ms(350), "350 ms");
        assert_eq!(span_ms(1500), "1s");
        assert_eq!(span_ms(185_000), "3m 05s");
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
