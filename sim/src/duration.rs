//! Human-readable durations in scenario files: `"250ms"`, `"1.5s"`, `"10m"`, `"2h"`, or a
//! bare number of seconds.

use core::time::Duration;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"250ms"`, `"1.5s"`, `"10m"`, `"2h"`, `"30us"`, `"90"` (seconds), or a sum of
/// parts as Go writes them: `"5m30s"`, `"1h2m3.5s"`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty string is not a duration (e.g. 250ms, 1.5s, 10m, 5m30s)".into());
    }
    let mut rest = s;
    let mut secs = 0.0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (e.g. 250ms, 1.5s, 10m, 5m30s)"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit.trim() {
            // A bare number is seconds, but only on its own: "5m30" and "5 30s" are
            // mistakes.
            "" if rest.len() == s.len() && next.is_empty() => 1.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{s}` (ns, us, ms, s, m, h; parts add up: 5m30s)"
                ));
            }
        };
        secs += value * scale;
        rest = next;
    }
    checked(secs, s)
}

/// The longest duration accepted: about 31 years (virtual time is counted in `u64`
/// nanoseconds, which last 584 years).
pub const MAX_SECS: f64 = 1e9;

/// `secs` as a duration if it is a number in `[0, MAX_SECS]`; `shown` is what the user
/// wrote, for the error.
fn checked(secs: f64, shown: &str) -> Result<Duration, String> {
    if !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!(
            "`{shown}` is not a valid duration (between 0 and {MAX_SECS:e} seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0s".into()
    } else if ns.is_multiple_of(3_600_000_000_000) {
        format!("{}h", ns / 3_600_000_000_000)
    } else if ns.is_multiple_of(60_000_000_000) {
        format!("{}m", ns / 60_000_000_000)
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}us", ns / 1_000)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Secs(f64),
}

fn from_raw(raw: Raw) -> Result<Duration, String> {
    match raw {
        Raw::Text(s) => parse(&s),
        Raw::Secs(x) => checked(x, &x.to_string()),
    }
}

/// Serde adapter for a required duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_raw(Raw::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Serde adapter: writes the duration as text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Serde adapter for an optional duration.
pub mod option {
    use super::*;

    /// Reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(raw) => from_raw(raw).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// Writes an optional duration as text.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }
}

/// Serde adapter for a `[min, max]` pair of durations.
pub mod range {
    use super::*;

    /// Reads `["2s", "5s"]` or a single duration (min = max).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(Duration, Duration), D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum R {
            Pair(Raw, Raw),
            One(Raw),
        }
        let (a, b) = match R::deserialize(d)? {
            R::Pair(a, b) => (a, b),
            R::One(a) => {
                let v = from_raw(a).map_err(serde::de::Error::custom)?;
                return Ok((v, v));
            }
        };
        let a = from_raw(a).map_err(serde::de::Error::custom)?;
        let b = from_raw(b).map_err(serde::de::Error::custom)?;
        if b < a {
            return Err(serde::de::Error::custom("range [min, max] has max < min"));
        }
        Ok((a, b))
    }

    /// Writes the pair as `["2s", "5s"]`.
    pub fn serialize<S: Serializer>(r: &(Duration, Duration), s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&format(r.0))?;
        t.serialize_element(&format(r.1))?;
        t.end()
    }
}

/// Serde adapter for an optional `[min, max]` pair.
pub mod option_range {
    use super::*;

    /// Reads an optional pair.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(Duration, Duration)>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "super::range::deserialize")] (Duration, Duration));
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }

    /// Writes an optional pair.
    pub fn serialize<S: Serializer>(
        r: &Option<(Duration, Duration)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => super::range::serialize(r, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("90").unwrap(), Duration::from_secs(90));
        assert!(parse("ten").is_err());
        assert!(parse("5 parsecs").is_err());
    }

    #[test]
    fn a_bare_toml_number_is_bounded_too() {
        for bad in ["1e20", "-1.0", "nan", "9223372036854775807"] {
            let e = crate::Scenario::from_toml(&format!("name = 't'\nnodes = 1\nduration = {bad}"))
                .unwrap_err();
            assert!(e.contains("not a valid duration"), "{bad}: {e}");
        }
        let s = crate::Scenario::from_toml("name = 't'\nnodes = 1\nduration = 90").unwrap();
        assert_eq!(s.duration, Duration::from_secs(90));
    }

    #[test]
    fn parts_add_up_as_in_go() {
        assert_eq!(parse("5m30s").unwrap(), Duration::from_secs(330));
        assert_eq!(parse("1h2m3.5s").unwrap(), Duration::from_millis(3_723_500));
        assert_eq!(parse("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse("5m30").is_err(), "a bare number only stands alone");
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
        assert!(parse("99999999999999999999h").is_err(), "no overflow panic");
        assert!(parse("5 30s").is_err() && parse("90 5m").is_err());
        assert_eq!(parse("3μs").unwrap(), parse("3us").unwrap());
    }

    #[test]
    fn format_round_trips() {
        for s in ["0s", "250ms", "10m", "2h", "45s", "1500us"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
