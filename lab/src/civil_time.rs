//! Calendar dates from and to Unix seconds (UTC), for the timestamps the doubles print; no time
//! crate.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) hour: u64,
    pub(crate) minute: u64,
    pub(crate) second: u64,
}

/// Unix seconds → civil date and time (Howard Hinnant's civil-from-days algorithm).
pub(crate) fn from_unix(secs: u64) -> Civil {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60 }
}

/// Civil date and time → Unix seconds (Howard Hinnant's days-from-civil); dates before 1970 give 0.
pub(crate) fn to_unix(c: Civil) -> u64 {
    let y = c.year - i64::from(c.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (c.month + if c.month > 2 { -3 } else { 9 }) + 2) / 5 + c.day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).map_or(0, |d| d * 86_400 + c.hour * 3600 + c.minute * 60 + c.second)
}

/// `2026-11-23T13:00:00Z` from Unix seconds (RFC 3339, UTC, whole seconds).
pub(crate) fn iso8601(secs: u64) -> String {
    let c = from_unix(secs);
    format!("{}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `2026-11-20T09:00:00.000Z` (the inventory's `launch_time`; fractions and the zone are
/// ignored) → Unix seconds.
pub(crate) fn parse_iso8601(s: &str) -> Option<u64> {
    let n = |range: std::ops::Range<usize>| s.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hour, minute, second) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let (year, month, day) = (i64::try_from(year).ok()?, i64::try_from(month).ok()?, i64::try_from(day).ok()?);
    Some(to_unix(Civil { year, month, day, hour, minute, second }))
}

/// The English three-letter month name (`Jan`…`Dec`) of a month number 1–12.
pub(crate) fn month_abbrev(month: i64) -> &'static str {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)]
}

/// The English three-letter weekday name (`Sun`…`Sat`) of a Unix time.
pub(crate) fn weekday_abbrev(secs: u64) -> &'static str {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    DAYS[usize::try_from(secs / 86_400 % 7).unwrap_or(0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let c = from_unix(1_795_422_608);
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second), (2026, 11, 23, 8, 30, 8));
        let c = from_unix(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
    }

    #[test]
    fn round_trips() {
        for secs in [0, 951_782_400, 1_795_422_608, 4_102_444_799] {
            assert_eq!(to_unix(from_unix(secs)), secs);
        }
        assert_eq!(parse_iso8601("2026-11-23T08:30:08.000Z"), Some(1_795_422_608));
        assert_eq!(parse_iso8601("2026-13-23T08:30:08Z"), None);
        assert_eq!(parse_iso8601("garbage"), None);
        assert_eq!(weekday_abbrev(1_795_422_608), "Mon"); // 2026-11-23
        assert_eq!((month_abbrev(1), month_abbrev(11)), ("Jan", "Nov"));
    }
}
