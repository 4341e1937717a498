//! IMF-fixdate (RFC 9110 §5.6.7) without a time crate: the engine needs one format only.

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Proleptic Gregorian (year, month 1..=12, day 1..=31) for days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, restricted to non-negative input).
fn civil_from_days(days: u64) -> (u64, usize, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m as usize, d)
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for a unix time in seconds. Years past 9999 do not fit the
/// fixed-width format and are clamped to the last second of 9999.
pub fn format_http_date(unix_secs: u64) -> [u8; 29] {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = unix_secs.min(MAX);
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month - 1]);
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], sod / 3600);
    two(&mut out[20..22], sod / 60 % 60);
    two(&mut out[23..25], sod % 60);
    out
}

/// The formatted Date for the current second; re-formats only when the second changes.
/// One per worker thread (no global state, no locking).
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: Option<u64>,
    buf: [u8; 29],
}

impl DateCache {
    pub fn new() -> Self {
        DateCache {
            secs: None,
            buf: [0; 29],
        }
    }

    pub fn get(&mut self, unix_secs: u64) -> &[u8] {
        if self.secs != Some(unix_secs) {
            self.buf = format_http_date(unix_secs);
            self.secs = Some(unix_secs);
        }
        &self.buf
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> String {
        String::from_utf8(format_http_date(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_values() {
        assert_eq!(s(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(s(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(s(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT"); // leap year divisible by 400
        assert_eq!(s(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(s(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(s(1_709_251_200), "Fri, 01 Mar 2024 00:00:00 GMT");
        assert_eq!(s(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT"); // 2100 is not leap
        assert_eq!(s(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(s(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 GMT");
        assert_eq!(s(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(s(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn cache_refreshes_per_second() {
        let mut c = DateCache::new();
        assert_eq!(c.get(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(c.get(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(c.get(1), b"Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(c.get(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
