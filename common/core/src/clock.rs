//! The wall clock, read in one place, and its text form.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whole seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

/// Unix milliseconds as RFC 3339 UTC text (`2024-05-01T12:00:00.123Z`).
pub fn rfc3339_ms(unix_ms: i64) -> Option<String> {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    // Sized for the longest form (`+YYYYYY-MM-DDTHH:MM:SS.mmmZ`): one allocation, no growth.
    let mut text = Vec::with_capacity(32);
    t.format_into(&mut text, &time::format_description::well_known::Rfc3339)
        .ok()?;
    String::from_utf8(text).ok()
}

/// An age in the largest unit that keeps it readable: `45s`, `12m`, `5h`, `3d`.
pub fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_format_as_rfc3339_utc() {
        assert_eq!(
            rfc3339_ms(1_700_000_000_123).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(rfc3339_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn ages_read_in_the_largest_readable_unit() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(119_999), "119s");
        assert_eq!(age(120_000), "2m");
        assert_eq!(age(7_200_000), "2h");
        assert_eq!(age(3 * 86_400_000), "3d");
    }

    #[test]
    fn the_clock_reads_after_this_code_was_written() {
        let secs = now_secs();
        let millis = now_ms();
        assert!(millis > 1_764_000_000_000);
        assert!(secs * 1000 <= millis && millis - secs * 1000 < 60_000);
    }
}
