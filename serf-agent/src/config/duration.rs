//! Go's duration syntax (`time.ParseDuration`), which HashiCorp's flags and config files
//! use: `"30s"`, `"1m30s"`, `"1.5h"`, `"300ms"`, `"0"`.

use std::time::Duration;

/// The largest duration Go can represent (an `int64` of nanoseconds, about 292 years);
/// anything longer is refused as Go refuses it.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a duration in Go's syntax: a sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as `"1m30s"` or
/// `"1.5h"`; `"0"` alone needs no unit. Negative durations (which Go accepts) are refused:
/// no setting of the agent means anything with one.
///
/// ```
/// use serf_agent::config::parse_go_duration;
/// use std::time::Duration;
/// assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_go_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_go_duration("30").unwrap_err().contains("missing unit"));
/// ```
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration \"{s}\" (write it like 30s, 1m30s, 1.5h or 250ms)");
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!("negative duration \"{s}\" is not allowed here"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, an optional fraction; at least one digit in all.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or dot.
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "missing unit in duration \"{s}\" (for example 30s)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in duration \"{s}\" (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let too_long = || format!("duration \"{s}\" is too long");
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            // More than 39 digits cannot fit in a u128; far past MAX_NANOS anyway.
            int_part.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // Fraction digits beyond the 19th cannot change the nanoseconds of any unit here.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_part.bytes().take(19) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        nanos += frac * unit_nanos / scale;
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        if total > MAX_NANOS {
            return Err(too_long());
        }
        rest = after;
    }
    // Cannot fail: total <= i64::MAX.
    Ok(Duration::from_nanos(
        u64::try_from(total).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples_parse() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("24h", Duration::from_secs(86_400)),
            ("1.5h", Duration::from_secs(5_400)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("300ms", Duration::from_millis(300)),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("7ns", Duration::from_nanos(7)),
            ("+5s", Duration::from_secs(5)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("0.000000001s", Duration::from_nanos(1)),
        ];
        for (s, d) in cases {
            assert_eq!(parse_go_duration(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn malformed_durations_say_why() {
        for (s, why) in [
            ("", "invalid"),
            ("30", "missing unit"),
            ("1m30", "missing unit"),
            ("5x", "unknown unit"),
            ("s", "invalid"),
            (".", "invalid"),
            ("-1s", "negative"),
            ("3000000h", "too long"),
            ("99999999999999999999999999999999999999999999h", "too long"),
        ] {
            let e = parse_go_duration(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
