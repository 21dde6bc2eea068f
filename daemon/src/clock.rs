//! Time as Docker shows it: RFC 3339 UTC with nanoseconds, seconds since the epoch, and
//! the CLI's "5 minutes" ages.

/// Now, RFC 3339 UTC with nanoseconds (`2026-12-03T16:20:26.123456789Z`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Seconds (and nanoseconds) since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's published algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Seconds since the epoch of an RFC 3339 UTC time (0 if unparsable).
pub fn unix_time(t: &str) -> i64 {
    let p = |a: usize, b: usize| t.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) =
        (p(0, 4), p(5, 7), p(8, 10), p(11, 13), p(14, 16), p(17, 19))
    else {
        return 0;
    };
    // Days from civil (the inverse of the above).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h * 3600 + mi * 60 + s
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
    }
}
