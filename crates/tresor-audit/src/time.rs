//! Times in and out. Out: RFC 3339 in UTC, with the civil-date arithmetic
//! of Howard Hinnant's algorithms (exact for the proleptic Gregorian
//! calendar). In: what auditors type (relative, calendar, RFC 3339, unix
//! seconds), parsed with `jiff`, a maintained date crate that knows time
//! zones and calendar spans (a day is not always 24 hours).

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `2026-11-29T07:12:03.123456789Z`
pub fn format_ns(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z", s / 3600, s / 60 % 60, s % 60, ns % 1_000_000_000)
}

/// Parses a time as auditors write it, to unix nanoseconds:
/// `now`, `today`, `yesterday` (midnight, local time), a signed span from
/// now (`-1h`, `-7d`, `-2h30m`, `-1 week`), RFC 3339 (`2026-11-29T07:12:03Z`,
/// offsets, fractions, `T` or a space), a date alone (`2026-11-29`, local
/// midnight) or a local date and time (`2026-11-29T07:12`), or unix
/// seconds (`1764400323`, `@1764400323`). Calendar arithmetic is jiff's.
pub fn parse(s: &str) -> Result<u64, String> {
    parse_at(s, &jiff::Zoned::now())
}

/// [`parse`] relative to `now` (and its time zone).
pub fn parse_at(s: &str, now: &jiff::Zoned) -> Result<u64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: use now, today, yesterday, -1h, -7d, RFC 3339 (2026-11-29T07:12:03Z), \
             a date (2026-11-29) or unix seconds"
        )
    };
    let digits = s.strip_prefix('@').unwrap_or(s);
    let ts: jiff::Timestamp = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = digits.parse().map_err(|_| bad())?;
        jiff::Timestamp::from_second(secs).map_err(|_| bad())?
    } else {
        match s {
            "now" => now.timestamp(),
            "today" => now.start_of_day().map_err(|_| bad())?.timestamp(),
            "yesterday" => now
                .checked_sub(jiff::Span::new().days(1))
                .and_then(|d| d.start_of_day())
                .map_err(|_| bad())?
                .timestamp(),
            _ if s.starts_with(['-', '+']) => {
                let span: jiff::Span = s.parse().map_err(|_| bad())?;
                now.checked_add(span).map_err(|_| bad())?.timestamp()
            }
            _ => {
                if let Ok(t) = s.parse::<jiff::Timestamp>() {
                    t
                } else if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
                    // A date alone parses as its midnight.
                    dt.to_zoned(now.time_zone().clone()).map_err(|_| bad())?.timestamp()
                } else {
                    return Err(bad());
                }
            }
        }
    };
    u64::try_from(ts.as_nanosecond()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_seconds_agree() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse("2026-11-29T07:12:03Z").unwrap(), 1_795_936_323 * 1_000_000_000);
        assert_eq!(parse("1795936323").unwrap(), parse("2026-11-29T08:12:03+01:00").unwrap());
        assert_eq!(parse("2000-02-29 12:00:00.5Z").unwrap(), 951_825_600_500_000_000);
        assert_eq!(format_ns(951_825_600_500_000_000), "2000-02-29T12:00:00.500000000Z");
        for bad in
            ["", "someday", "2026-13-01T00:00:00Z", "2026-11-29T07:12:03.Z", "-1 fortnight", "1969-12-31T00:00:00Z"]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_and_calendar_times_count_from_now_in_its_zone() {
        let now: jiff::Zoned = "2026-11-29T07:12:03+01:00[Europe/Berlin]".parse().unwrap();
        let at = |s| format_ns(parse_at(s, &now).unwrap());
        assert_eq!(at("now"), "2026-11-29T06:12:03.000000000Z");
        assert_eq!(at("-1h"), "2026-11-29T05:12:03.000000000Z");
        assert_eq!(at("-7d"), "2026-11-22T06:12:03.000000000Z");
        assert_eq!(at("-2h30m"), "2026-11-29T03:42:03.000000000Z");
        assert_eq!(at("today"), "2026-11-28T23:00:00.000000000Z", "local midnight");
        assert_eq!(at("yesterday"), "2026-11-27T23:00:00.000000000Z");
        assert_eq!(at("2026-07-01"), "2026-06-30T22:00:00.000000000Z", "a date alone: local midnight (summer time)");
        assert_eq!(at("2026-11-29T07:12"), "2026-11-29T06:12:00.000000000Z", "local date and time");
        assert_eq!(at("2026-11-29T07:12:03Z"), "2026-11-29T07:12:03.000000000Z");
    }
}
