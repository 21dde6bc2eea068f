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
pub fn human(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 86400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
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
        return Some(now_unix() - d.as_secs() as i64);
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
}
