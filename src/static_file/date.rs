//! Parsing HTTP-date (RFC 9110 §5.6.7): the preferred IMF-fixdate and, as recipients must, the
//! two obsolete formats (RFC 850 and asctime). Pure; no time crate.

const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const DAYS_LONG: [&[u8]; 7] = [b"Monday", b"Tuesday", b"Wednesday", b"Thursday", b"Friday", b"Saturday", b"Sunday"];
const MONTHS: [&[u8]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a unix time.
fn year_of(unix_secs: i64) -> i64 {
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
}

fn month(s: &[u8]) -> Option<u32> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s)).map(|i| i as u32 + 1)
}

fn day_name(s: &[u8], names: &[&[u8]; 7]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(s))
}

/// `HH:MM:SS` → seconds of the day (a leap second 60 is accepted, as the grammar allows).
fn time_of_day(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(i64::from(h * 3600 + m * 60 + sec))
}

fn assemble(y: i64, m: u32, d: u32, tod: i64) -> Option<i64> {
    if d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + tod)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<i64> {
    if s.len() != 29 || &s[3..5] != b", " || s[7] != b' ' || s[11] != b' ' || s[16] != b' ' || &s[25..] != b" GMT" {
        return None;
    }
    if !day_name(&s[0..3], &DAYS) || s[5..7].iter().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    let d = digits(&s[5..7])?;
    let m = month(&s[8..11])?;
    let y = i64::from(digits(&s[12..16]).filter(|_| s[12..16].len() == 4)?);
    assemble(y, m, d, time_of_day(&s[17..25])?)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`; a two-digit year that would lie more than 50 years in
/// the future of `now` means the most recent past year with those digits (§5.6.7).
fn rfc850(s: &[u8], now: i64) -> Option<i64> {
    let comma = s.iter().position(|&b| b == b',')?;
    if !day_name(&s[..comma], &DAYS_LONG) {
        return None;
    }
    let rest = &s[comma..];
    // ", 06-Nov-94 08:49:37 GMT"
    if rest.len() != 24 || &rest[..2] != b", " || rest[4] != b'-' || rest[8] != b'-' || rest[11] != b' ' || &rest[20..] != b" GMT" {
        return None;
    }
    let d = digits(&rest[2..4])?;
    let m = month(&rest[5..8])?;
    let yy = i64::from(digits(&rest[9..11])?);
    let this_year = year_of(now);
    let mut y = this_year - this_year.rem_euclid(100) + yy;
    if y > this_year + 50 {
        y -= 100;
    }
    assemble(y, m, d, time_of_day(&rest[12..20])?)
}

/// `Sun Nov  6 08:49:37 1994` (day padded with a space, or two digits)
fn asctime(s: &[u8]) -> Option<i64> {
    if s.len() != 24 || s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    if !day_name(&s[0..3], &DAYS) {
        return None;
    }
    let m = month(&s[4..7])?;
    let d = match (s[8], s[9]) {
        (b' ', c) if c.is_ascii_digit() => u32::from(c - b'0'),
        (a, c) if a.is_ascii_digit() && c.is_ascii_digit() => digits(&s[8..10])?,
        _ => return None,
    };
    let y = i64::from(digits(&s[20..24])?);
    assemble(y, m, d, time_of_day(&s[11..19])?)
}

/// Parses an HTTP-date in any of the three formats into unix seconds, relative to `now` (only
/// the RFC 850 two-digit year needs it). Leading/trailing whitespace is allowed; anything
/// else that does not match a format exactly is `None`.
pub fn parse_http_date_at(value: &[u8], now: i64) -> Option<i64> {
    let v = value.trim_ascii();
    imf_fixdate(v).or_else(|| rfc850(v, now)).or_else(|| asctime(v))
}

/// [`parse_http_date_at`] relative to the system clock.
pub fn parse_http_date(value: &[u8]) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    parse_http_date_at(value, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::format_http_date;

    const NOW_2025: i64 = 1_750_000_000; // 2025-06-15

    #[test]
    fn the_three_formats_of_rfc_9110_example() {
        let t = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_http_date_at(b"Sun, 06 Nov 1994 08:49:37 GMT", NOW_2025), Some(t));
        assert_eq!(parse_http_date_at(b"Sunday, 06-Nov-94 08:49:37 GMT", NOW_2025), Some(t));
        assert_eq!(parse_http_date_at(b"Sun Nov  6 08:49:37 1994", NOW_2025), Some(t));
        assert_eq!(parse_http_date_at(b"  Sun, 06 Nov 1994 08:49:37 GMT ", NOW_2025), Some(t));
    }

    #[test]
    fn round_trips_with_the_formatter() {
        for t in [0u64, 1, 59, 86_399, 86_400, 951_782_400, 1_709_164_800, 1_750_000_000, 4_102_444_800, 253_402_300_799] {
            let s = format_http_date(t);
            assert_eq!(parse_http_date_at(&s, NOW_2025), Some(t as i64), "{}", String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn leap_days_and_bad_calendar_dates() {
        assert!(parse_http_date_at(b"Tue, 29 Feb 2000 00:00:00 GMT", NOW_2025).is_some());
        assert!(parse_http_date_at(b"Thu, 29 Feb 2024 00:00:00 GMT", NOW_2025).is_some());
        assert!(parse_http_date_at(b"Thu, 29 Feb 1900 00:00:00 GMT", NOW_2025).is_none());
        assert!(parse_http_date_at(b"Mon, 31 Apr 2024 00:00:00 GMT", NOW_2025).is_none());
        assert!(parse_http_date_at(b"Mon, 00 Apr 2024 00:00:00 GMT", NOW_2025).is_none());
        assert!(parse_http_date_at(b"Mon, 01 Apr 2024 24:00:00 GMT", NOW_2025).is_none());
        assert!(parse_http_date_at(b"Mon, 01 Apr 2024 23:60:00 GMT", NOW_2025).is_none());
        assert_eq!(
            parse_http_date_at(b"Mon, 01 Apr 2024 23:59:60 GMT", NOW_2025),
            parse_http_date_at(b"Tue, 02 Apr 2024 00:00:00 GMT", NOW_2025)
        );
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            &b""[..],
            b"garbage",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 94 08:49:37 GMT",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT x",
            b"Sun, 0x Nov 1994 08:49:37 GMT",
            b"Sun, +6 Nov 1994 08:49:37 GMT",
            b"Sun Nov 6 08:49:37 1994",
            b"Sunday, 06-Nov-1994 08:49:37 GMT",
            b"Sun, 06-Nov-94 08:49:37 GMT",
            b"1994-11-06T08:49:37Z",
            b"784111777",
        ] {
            assert_eq!(parse_http_date_at(bad, NOW_2025), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rfc850_two_digit_years_follow_the_fifty_year_rule() {
        // Relative to 2025: "75" is 2075 (exactly 50 years ahead), "76" is 1976.
        let y2075 = parse_http_date_at(b"Friday, 01-Jan-75 00:00:00 GMT", NOW_2025).unwrap();
        assert_eq!(y2075, days_from_civil(2075, 1, 1) * 86_400);
        let y1976 = parse_http_date_at(b"Thursday, 01-Jan-76 00:00:00 GMT", NOW_2025).unwrap();
        assert_eq!(y1976, days_from_civil(1976, 1, 1) * 86_400);
        let y2000 = parse_http_date_at(b"Saturday, 01-Jan-00 00:00:00 GMT", NOW_2025).unwrap();
        assert_eq!(y2000, 946_684_800);
        assert!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT").is_some());
    }

    #[test]
    fn dates_before_1970_are_negative() {
        assert_eq!(parse_http_date_at(b"Wed, 31 Dec 1969 23:59:59 GMT", NOW_2025), Some(-1));
        assert_eq!(year_of(-1), 1969);
        assert_eq!(year_of(NOW_2025), 2025);
    }
}
