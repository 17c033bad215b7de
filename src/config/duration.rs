//! Duration strings in the config ("500ms", "30s", "15m", "2h", "7d"): one strict grammar, an
//! unsigned integer followed by a unit, so a typo is an error instead of a surprise.

use std::time::Duration;

/// What a duration string must look like; used in error messages.
pub(super) const EXPECTED: &str =
    "a duration: an integer and a unit (ms, s, m, h, d) with no space, like \"500ms\", \"30s\", \"15m\", \"7d\"";

/// Parses `"<digits><unit>"` with unit one of `ms`, `s`, `m`, `h`, `d`.
///
/// Rejects the empty string, a missing unit, fractions, signs, inner spaces and values that
/// overflow. The error is a short reason without the value (the caller adds key and value).
pub(super) fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(if s.is_empty() {
            "empty duration"
        } else {
            "a duration starts with an unsigned integer"
        });
    }
    if unit.is_empty() {
        return Err("missing unit (ms, s, m, h or d)");
    }
    let seconds_per_unit: u64 = match unit {
        "ms" => {
            let ms: u64 = digits.parse().map_err(|_| "number too large")?;
            return Ok(Duration::from_millis(ms));
        }
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ if unit.starts_with('.') => return Err("fractions are not allowed; use a smaller unit"),
        _ => return Err("unknown unit; expected ms, s, m, h or d"),
    };
    let n: u64 = digits.parse().map_err(|_| "number too large")?;
    let secs = n.checked_mul(seconds_per_unit).ok_or("number too large")?;
    Ok(Duration::from_secs(secs))
}

/// Renders a duration back in the config's own syntax, using the largest exact unit
/// (so messages say "5s", not "5000ms").
pub(super) fn display(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{d:?}");
    }
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, per) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s != 0 && s.is_multiple_of(per) {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "10",
            "1.5s",
            "-1s",
            "+1s",
            "5 s",
            " 5s",
            "5s ",
            "s",
            "5S",
            "5sec",
            "5us",
            "1h30m",
            "99999999999999999999d",
            "99999999999999999999ms",
            "213503982334602d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn largest_value_that_fits() {
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
        assert!(parse_duration("18446744073709551616s").is_err());
    }

    #[test]
    fn reasons_are_specific() {
        assert_eq!(parse_duration("10"), Err("missing unit (ms, s, m, h or d)"));
        assert_eq!(
            parse_duration("1.5s"),
            Err("fractions are not allowed; use a smaller unit")
        );
        assert_eq!(
            parse_duration("-1s"),
            Err("a duration starts with an unsigned integer")
        );
    }

    #[test]
    fn display_uses_largest_exact_unit() {
        assert_eq!(display(Duration::from_millis(500)), "500ms");
        assert_eq!(display(Duration::from_secs(5)), "5s");
        assert_eq!(display(Duration::from_secs(300)), "5m");
        assert_eq!(display(Duration::from_secs(7200)), "2h");
        assert_eq!(display(Duration::from_secs(86_400 * 7)), "7d");
        assert_eq!(display(Duration::ZERO), "0s");
    }
}
