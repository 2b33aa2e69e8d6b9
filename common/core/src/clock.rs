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
    fn the_clock_reads_after_this_code_was_written() {
        let secs = now_secs();
        let millis = now_ms();
        assert!(millis > 1_764_000_000_000);
        assert!(secs * 1000 <= millis && millis - secs * 1000 < 60_000);
    }
}
