//! Durations as people write them in specs and packs_config: `90s`, `30m`, `1h30m`.

use std::time::Duration;

/// Parses `<number><unit>` groups (unit `s`, `m` or `h`), e.g. `1h30m`. Zero is refused:
/// a zero timeout would kill every attempt at once.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_units(s, false)
}

/// Parses an age limit (retention's `maxAge`): like [`parse`], with days too (`30d`, `1d12h`).
/// Timeouts stay without days: no attempt should run that long.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    parse_units(s, true)
}

fn parse_units(s: &str, days: bool) -> Result<Duration, String> {
    let err = || {
        let examples = if days {
            "30d, 12h or 1d12h"
        } else {
            "90s, 30m or 1h30m"
        };
        format!(
            "invalid duration {q_s}: write it like {examples}",
            q_s = crate::text::quote(s)
        )
    };
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' if days => 86_400,
            _ => return Err(err()),
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(err());
    }
    if total == 0 {
        return Err(format!(
            "invalid duration {q_s}: must be longer than zero",
            q_s = crate::text::quote(s)
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration compactly for people (`1h2m`, `45s`, `1.5s`).
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 10 && d.subsec_millis() > 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums_groups() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_garbage_zero_and_overflow() {
        for bad in ["", "10", "m", "5d", "1h 2m", "0s", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ages_take_days_and_timeouts_do_not() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert!(parse("1d").is_err());
        for bad in ["", "0d", "d", "-1d", "1w", "30 d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_age("1x").unwrap_err().contains("30d"));
    }

    #[test]
    fn human_is_compact() {
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(125)), "2m5s");
        assert_eq!(human(Duration::from_secs(3720)), "1h2m");
    }
}
