//! Character classes and small grammar pieces shared by the head and trailer parsers.

/// tchar (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// field-vchar / SP / HTAB: everything but CTLs (HTAB excepted) and DEL. obs-text (0x80..) is
/// allowed as RFC 9110 §5.5 requires; NUL never is, which is what lets the C API hand out
/// values as C strings.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parse one `field-name ":" OWS field-value OWS` line (CRLF already removed).
/// Used for trailers; request heads go through httparse, which applies the same rules.
pub(crate) fn parse_field_line(line: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if line.first().is_some_and(|&b| is_ows(b)) {
        return Err("obs-fold");
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("field line without colon")?;
    let name = &line[..colon];
    if name.last().is_some_and(|&b| is_ows(b)) {
        return Err("whitespace before colon");
    }
    if !is_token(name) {
        return Err("invalid field name");
    }
    let value = &line[colon + 1..];
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err("invalid byte in field value");
    }
    Ok((name, trim_ows(value)))
}

/// Iterate the elements of a comma-separated list (RFC 9110 §5.6.1), OWS-trimmed.
/// Empty elements are yielded as empty slices so callers can decide (we reject them where
/// they would be ambiguous, e.g. Content-Length).
pub(crate) fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim_ows)
}

/// Position of the first `needle` in `hay`, eight bytes at a time (no memchr dependency;
/// a per-byte loop was as slow as httparse itself on typical heads).
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // Classic "has zero byte": the lowest flagged byte is always a true match.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

/// Decimal formatting into a stack buffer; returns the used tail.
pub(crate) fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn field_lines() {
        assert_eq!(
            parse_field_line(b"X-A:  v 1 \t"),
            Ok((&b"X-A"[..], &b"v 1"[..]))
        );
        assert_eq!(parse_field_line(b"X-A:"), Ok((&b"X-A"[..], &b""[..])));
        assert!(parse_field_line(b"X-A : v").is_err());
        assert!(parse_field_line(b" X-A: v").is_err());
        assert!(parse_field_line(b"X A: v").is_err());
        assert!(parse_field_line(b": v").is_err());
        assert!(parse_field_line(b"X-A: a\0b").is_err());
        assert!(parse_field_line(b"X-A: a\x7fb").is_err());
        assert!(parse_field_line(b"X-A v").is_err());
        assert!(parse_field_line(b"X-A: caf\xc3\xa9").is_ok());
    }

    #[test]
    fn find_byte_matches_position() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for start in 0..40 {
            for len in 0..(hay.len() - start) {
                let h = &hay[start..start + len];
                for needle in [b'\n', 0, 0x80, 0xff, 1, h.last().copied().unwrap_or(9)] {
                    assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle));
                }
            }
        }
        assert_eq!(find_byte(b"\x0b\n", b'\n'), Some(1));
        assert_eq!(find_byte(b"aaaaaaa\x0b\n", b'\n'), Some(8));
        assert_eq!(find_byte(b"\x0a\x09aaaaaa\n", b'\n'), Some(0));
    }

    #[test]
    fn decimal() {
        let mut b = [0; 20];
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(1234567890, &mut b), b"1234567890");
        assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
    }
}
