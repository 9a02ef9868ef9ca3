//! Durations as suite files write them: `250ms`, `40s`, `2m`, `1h`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration a suite may ask for; anything longer is a typo, not a drill.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// A non-negative duration of at most [`MAX`], written with a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Duration {
        d.0
    }
}

/// Why a duration did not parse; the message is shown after the field's location.
pub fn parse(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as `250ms`, `40s`, `2m` or `1h`";
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("`{text}` is negative; {EXPECTED}"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{text}` has no number; {EXPECTED}"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is too large; the longest allowed is 24h"))?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("`{text}` has no unit; {EXPECTED}")),
        other => return Err(format!("`{text}` has an unknown unit `{other}`; {EXPECTED}")),
    };
    let ms =
        n.checked_mul(per_unit_ms).filter(|ms| *ms <= MAX.as_millis() as u64).ok_or_else(|| format!("`{text}` is too large; the longest allowed is 24h"))?;
    Ok(Duration::from_millis(ms))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 3_600_000 == 0 && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1_000 == 0 {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `250ms`, `40s`, `2m` or `1h`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                parse(v).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!("`{v}` has no unit; write it as `{v}s` or `{v}ms`")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!("`{v}` has no unit; write it as `{v}s` or `{v}ms`")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!("`{v}` is not a duration; write whole units such as `1500ms`")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(ms|s|m|h)$",
            "description": "A duration with a unit: 250ms, 40s, 2m, 1h (at most 24h)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["-5s", "5", "s", "5 parsecs", "25h", "99999999999999999999999s", "1.5s", ""] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(parse("-5s").unwrap_err().contains("negative"));
        assert!(parse("25h").unwrap_err().contains("too large"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "40s", "2m", "1h", "0s", "1500ms"] {
            assert_eq!(Dur(parse(text).unwrap()).to_string(), text);
        }
    }
}
