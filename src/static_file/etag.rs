//! Entity tags (RFC 9110 §8.8.3): syntax, strong and weak comparison, the `If-Match` /
//! `If-None-Match` list form, and the tag generated from a file's identity.

/// One entity-tag; `opaque` is the quoted string without its quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a [u8],
}

/// etagc = %x21 / %x23-7E / obs-text
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl<'a> EntityTag<'a> {
    /// Parses one entity-tag at the start of `s`; returns it and the rest.
    fn parse_prefix(s: &'a [u8]) -> Option<(EntityTag<'a>, &'a [u8])> {
        let (weak, s) = match s.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let s = s.strip_prefix(b"\"")?;
        let end = s.iter().position(|&b| !is_etagc(b))?;
        if s[end] != b'"' {
            return None;
        }
        Some((EntityTag { weak, opaque: &s[..end] }, &s[end + 1..]))
    }

    /// Parses a whole value that must be exactly one entity-tag (OWS around allowed).
    pub fn parse(s: &'a [u8]) -> Option<EntityTag<'a>> {
        match Self::parse_prefix(s.trim_ascii())? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison: both strong and the opaque tags identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the opaque tags identical, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The value of an `If-Match` / `If-None-Match` field (all its lines together).
#[derive(Debug, PartialEq, Eq)]
pub enum TagList<'a> {
    /// `*`
    Any,
    /// `#entity-tag`; a malformed element ends the list (what was parsed before it counts).
    Tags(Vec<EntityTag<'a>>),
}

impl<'a> TagList<'a> {
    /// Parses the field lines of a list-valued tag header; `None` when there is no such field.
    pub fn parse<I: Iterator<Item = &'a [u8]>>(lines: I) -> Option<TagList<'a>> {
        let mut seen = false;
        let mut tags = Vec::new();
        for line in lines {
            seen = true;
            let line = line.trim_ascii();
            if line == b"*" {
                return Some(TagList::Any);
            }
            let mut rest = line;
            loop {
                rest = rest.trim_ascii_start();
                // Empty list elements are allowed (RFC 9110 §5.6.1.2).
                if let Some(r) = rest.strip_prefix(b",") {
                    rest = r;
                    continue;
                }
                if rest.is_empty() {
                    break;
                }
                let Some((tag, r)) = EntityTag::parse_prefix(rest) else { break };
                tags.push(tag);
                let r = r.trim_ascii_start();
                if !(r.is_empty() || r.starts_with(b",")) {
                    break;
                }
                rest = r;
            }
        }
        seen.then_some(TagList::Tags(tags))
    }

    /// `If-Match`: `*` or any element strongly equal to `current` (false without a current tag).
    pub fn matches_strong(&self, current: Option<&EntityTag<'_>>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => current.is_some_and(|c| tags.iter().any(|t| t.strong_eq(c))),
        }
    }

    /// `If-None-Match`: `*` or any element weakly equal to `current`.
    pub fn matches_weak(&self, current: Option<&EntityTag<'_>>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => current.is_some_and(|c| tags.iter().any(|t| t.weak_eq(c))),
        }
    }
}

/// The generated validator: `"<inode>-<size>-<mtime in ns>"` in hex, `W/` prefixed when
/// `weak`. A change of any of the three gives another tag (same-size rewrites within one
/// nanosecond of the old mtime are the residual risk every server has).
pub fn generate(inode: u64, size: u64, mtime_secs: i64, mtime_nanos: u32, weak: bool) -> String {
    let mut buf = [0u8; GENERATED_MAX];
    let n = generate_into(&mut buf, inode, size, mtime_secs, mtime_nanos, weak);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Longest generated tag: `W/"` + 16 + `-` + 16 + `-n` + 32 hex digits + `"`.
pub(crate) const GENERATED_MAX: usize = 3 + 16 + 1 + 16 + 2 + 32 + 1;

/// [`generate`] into a caller's buffer (no allocation on the per-request path); returns the
/// length written.
pub(crate) fn generate_into(buf: &mut [u8; GENERATED_MAX], inode: u64, size: u64, mtime_secs: i64, mtime_nanos: u32, weak: bool) -> usize {
    let ns = i128::from(mtime_secs) * 1_000_000_000 + i128::from(mtime_nanos);
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if weak {
        put(b"W/");
    }
    put(b"\"");
    let mut digits = [0u8; 32];
    put(hex(u128::from(inode), &mut digits));
    put(b"-");
    put(hex(u128::from(size), &mut digits));
    put(if ns < 0 { b"-n" } else { b"-" });
    put(hex(ns.unsigned_abs(), &mut digits));
    put(b"\"");
    n
}

/// `v` in lowercase hex without leading zeros (as `{:x}` prints it), in the end of `digits`.
/// Hand-written: `write!` with `{:x}` cost over a thousand instructions per tag.
fn hex(mut v: u128, digits: &mut [u8; 32]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            return &digits[i..];
        }
    }
}

/// A caller-supplied ETag as it goes on the wire: a full entity-tag (`"x"` or `W/"x"`) is kept,
/// a bare opaque value (`x`) is quoted (and prefixed with `W/` when `weak`). `None` if the
/// value cannot be an entity-tag.
pub fn normalize(value: &[u8], weak: bool) -> Option<Vec<u8>> {
    if value.starts_with(b"\"") || value.starts_with(b"W/\"") {
        let tag = EntityTag::parse(value)?;
        if value.trim_ascii().len() != value.len() {
            return None;
        }
        let mut out = Vec::with_capacity(value.len() + 2);
        if tag.weak || weak {
            out.extend_from_slice(b"W/");
        }
        out.push(b'"');
        out.extend_from_slice(tag.opaque);
        out.push(b'"');
        return Some(out);
    }
    if !value.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    let mut out = Vec::with_capacity(value.len() + 4);
    if weak {
        out.extend_from_slice(b"W/");
    }
    out.push(b'"');
    out.extend_from_slice(value);
    out.push(b'"');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> EntityTag<'_> {
        EntityTag::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn syntax() {
        assert_eq!(tag("\"xyzzy\""), EntityTag { weak: false, opaque: b"xyzzy" });
        assert_eq!(tag("W/\"xyzzy\""), EntityTag { weak: true, opaque: b"xyzzy" });
        assert_eq!(tag("\"\""), EntityTag { weak: false, opaque: b"" });
        for bad in ["xyzzy", "\"xy zzy\"", "\"xyzzy", "w/\"x\"", "W/x", "\"a\"b", "\"a\"\"b\"", "\"a\\\"\""] {
            assert!(EntityTag::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    /// The comparison table of RFC 9110 §8.8.3.2.
    #[test]
    fn rfc_9110_comparison_table() {
        let cases = [
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in cases {
            assert_eq!(tag(a).strong_eq(&tag(b)), strong, "{a} {b}");
            assert_eq!(tag(a).weak_eq(&tag(b)), weak, "{a} {b}");
        }
    }

    #[test]
    fn lists() {
        let l = TagList::parse([&b"\"a\", W/\"b\""[..], b" ,\"c\",,"].into_iter()).unwrap();
        assert_eq!(
            l,
            TagList::Tags(vec![
                EntityTag { weak: false, opaque: b"a" },
                EntityTag { weak: true, opaque: b"b" },
                EntityTag { weak: false, opaque: b"c" }
            ])
        );
        assert_eq!(TagList::parse([&b" * "[..]].into_iter()), Some(TagList::Any));
        assert_eq!(TagList::parse(std::iter::empty()), None);
        // A comma inside an opaque tag belongs to the tag.
        let l = TagList::parse([&b"\"a,b\""[..]].into_iter()).unwrap();
        assert_eq!(l, TagList::Tags(vec![EntityTag { weak: false, opaque: b"a,b" }]));
        // Garbage ends the list; earlier elements count.
        let l = TagList::parse([&b"\"a\", junk, \"b\""[..]].into_iter()).unwrap();
        assert_eq!(l, TagList::Tags(vec![EntityTag { weak: false, opaque: b"a" }]));
        let cur = tag("\"b\"");
        let l = TagList::parse([&b"W/\"b\""[..]].into_iter()).unwrap();
        assert!(l.matches_weak(Some(&cur)));
        assert!(!l.matches_strong(Some(&cur)));
        assert!(!l.matches_weak(None));
        assert!(TagList::Any.matches_strong(None));
    }

    #[test]
    fn generated_tags() {
        let a = generate(0x1234, 100, 1_700_000_000, 5, false);
        assert_eq!(a, format!("\"1234-64-{:x}\"", 1_700_000_000_000_000_005i128));
        assert!(EntityTag::parse(a.as_bytes()).is_some_and(|t| !t.weak));
        assert!(generate(1, 2, 3, 4, true).starts_with("W/\""));
        assert_ne!(generate(1, 2, 3, 4, false), generate(1, 2, 3, 5, false));
        assert_ne!(generate(1, 2, 3, 4, false), generate(1, 3, 3, 4, false));
        assert_ne!(generate(1, 2, 3, 4, false), generate(2, 2, 3, 4, false));
        assert!(EntityTag::parse(generate(1, 2, -3, 4, false).as_bytes()).is_some());
        // The extremes fit the fixed buffer whole.
        let longest = generate(u64::MAX, u64::MAX, i64::MIN, 999_999_999, true);
        assert!(longest.ends_with('"') && longest.len() <= GENERATED_MAX, "{longest}");
        assert_eq!(generate(0x1234, 100, 1_700_000_000, 5, false), format!("\"1234-64-{:x}\"", 1_700_000_000_000_000_005i128));
        // The same text `format!` with `{:x}` gives, edge values included.
        for (inode, size, secs, nanos, weak) in [(0, 0, 0, 0, false), (u64::MAX, u64::MAX, i64::MAX, 999_999_999, true), (1, 15, -1, 0, false), (16, 255, i64::MIN, 0, true), (7, 1, -1, 999_999_999, false)] {
            let ns = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
            let w = if weak { "W/" } else { "" };
            let want = if ns < 0 { format!("{w}\"{inode:x}-{size:x}-n{:x}\"", ns.unsigned_abs()) } else { format!("{w}\"{inode:x}-{size:x}-{ns:x}\"") };
            assert_eq!(generate(inode, size, secs, nanos, weak), want);
        }
    }

    #[test]
    fn normalizing_caller_tags() {
        assert_eq!(normalize(b"abc", false).unwrap(), b"\"abc\"");
        assert_eq!(normalize(b"abc", true).unwrap(), b"W/\"abc\"");
        assert_eq!(normalize(b"\"abc\"", false).unwrap(), b"\"abc\"");
        assert_eq!(normalize(b"W/\"abc\"", false).unwrap(), b"W/\"abc\"");
        assert_eq!(normalize(b"\"abc\"", true).unwrap(), b"W/\"abc\"");
        assert!(normalize(b"a b", false).is_none());
        assert!(normalize(b"\"abc", false).is_none());
        assert!(normalize(b"a\"b", false).is_none());
    }
}
