//! Time as Docker shows it: RFC 3339 UTC with nanoseconds, seconds since the epoch, and
//! the CLI's "5 minutes" ages.

/// Now, RFC 3339 UTC with nanoseconds (`2026-12-03T16:20:26.123456789Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Seconds (and nanoseconds) since the epoch as RFC 3339 UTC (times before the epoch,
/// which Docker never shows, read as the epoch).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs.max(0) as u64, nanos);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Seconds since the epoch of an RFC 3339 UTC time (0 if unparsable).
pub fn unix_time(t: &str) -> i64 {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// Seconds since the epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An age as `docker ps` words it.
/// (Docker's `units.HumanDuration`, word for word.)
pub fn human(secs: i64) -> String {
    let (m, h) = (secs / 60, secs / 3600);
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

/// A filter's point in time as Docker takes it: seconds since the epoch (fractions
/// allowed), an RFC 3339 time, or a duration before now ("10m", "1h30m").
pub fn parse_since(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(secs) = s.split('.').next().and_then(|x| x.parse::<i64>().ok()) {
        if s.split_once('.')
            .is_none_or(|(_, f)| f.chars().all(|c| c.is_ascii_digit()))
        {
            return Some(secs);
        }
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(now_unix().saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    }
    let t = unix_time(s);
    (t > 0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for secs in [0, 951782400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(unix_time(&rfc3339(secs, 5)), secs);
        }
        assert_eq!(rfc3339(951782400, 0), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(unix_time("garbage"), 0);
        assert_eq!(unix_time("2026-11-30T01:02:03.5Z"), 1796000523);
        assert_eq!(unix_time("0001-01-01T00:00:00Z"), 0);
    }

    #[test]
    fn ages_as_docker_words_them() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (150, "2 minutes"),
            (3600, "About an hour"),
            (3 * 3600, "3 hours"),
            (50 * 3600, "2 days"),
            (15 * 86400, "2 weeks"),
            (70 * 86400, "2 months"),
            (800 * 86400, "2 years"),
        ];
        for (s, want) in cases {
            assert_eq!(human(s), want, "{s}");
        }
        // A duration past i64 seconds: long ago, not an overflow.
        assert!(parse_since("9223372036854775808s").is_some_and(|t| t < 0));
    }
}
