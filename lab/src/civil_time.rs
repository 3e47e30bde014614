//! Calendar dates from Unix seconds (UTC), for the timestamps the doubles print; no time crate.

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
}
