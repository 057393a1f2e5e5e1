//! Durations as written in manifests: `500ms`, `30s`, `5m`, `1h`, or combinations like `1m30s`.

use std::time::Duration;

/// A CEL rule (for `x-kubernetes-validations`) accepting what [`parse`] accepts.
pub const CEL_RULE: &str = "self.matches('^([0-9]+(ms|s|m|h))+$')";

/// Parse a manifest duration. Returns a message a user can act on.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("{s:?} is not a duration; write e.g. \"500ms\", \"30s\", \"5m\", \"1h30m\"");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        let part = unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        for bad in ["", "5", "s", "5d", "-1s", "1.5s", "5 s"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("30s"), "{bad}: {err}");
        }
    }
}
