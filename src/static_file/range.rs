//! The `Range` header (RFC 9110 §14.1–14.2) for the `bytes` unit: parsing, resolving against a
//! representation length, and the limits that protect against range amplification.

/// Range-specs beyond this count make the whole `Range` header ignored (full `200`), like
/// nginx's `max_ranges`: a request for thousands of tiny ranges costs the server far more than
/// the client.
pub const MAX_RANGES: usize = 16;

/// Ranges separated by fewer bytes than this are merged into one: a part's own headers cost
/// about as much (RFC 9110 §14.2 allows coalescing ranges "separated by a gap that is smaller
/// than the overhead of sending multiple parts").
pub const MERGE_GAP: u64 = 80;

/// One range-spec as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-` (last `None`). Numbers too large for u64 saturate.
    Int { first: u64, last: Option<u64> },
    /// `-suffix_length`
    Suffix(u64),
}

/// A satisfiable range: `start..=end` within the representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What to do with a request's `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// Serve the whole representation (no header, another unit, invalid syntax, too many
    /// ranges).
    Ignore,
    /// `416` with `Content-Range: bytes */size`.
    Unsatisfiable,
    /// `206`: one range (single part) or several (multipart/byteranges), in sending order.
    Ranges(Vec<ByteRange>),
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// Parses `bytes=<range-set>`. `None`: not the bytes unit, or syntactically invalid (a
/// range-spec with last < first is invalid, RFC 9110 §14.1.1), or more than [`MAX_RANGES`]
/// specs.
pub fn parse_range(value: &[u8]) -> Option<Vec<RangeSpec>> {
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for elem in value[eq + 1..].split(|&b| b == b',') {
        let elem = elem.trim_ascii();
        if elem.is_empty() {
            continue; // empty list elements are allowed
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        let dash = elem.iter().position(|&b| b == b'-')?;
        let (a, b) = (elem[..dash].trim_ascii(), elem[dash + 1..].trim_ascii());
        if a.is_empty() {
            specs.push(RangeSpec::Suffix(number(b)?));
        } else {
            let first = number(a)?;
            let last = if b.is_empty() { None } else { Some(number(b)?) };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            specs.push(RangeSpec::Int { first, last });
        }
    }
    (!specs.is_empty()).then_some(specs)
}

/// Resolves specs against a representation of `size` bytes: unsatisfiable specs are dropped
/// (416 only when none is left), last positions past the end are clamped, and overlapping or
/// nearly adjacent ranges (gap < [`MERGE_GAP`]) are coalesced — sorted by offset in that case,
/// otherwise the order requested is kept.
pub fn resolve(specs: &[RangeSpec], size: u64) -> RangeDecision {
    let mut ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|s| match *s {
            RangeSpec::Int { first, last } if first < size => Some(ByteRange { start: first, end: last.map_or(size - 1, |l| l.min(size - 1)) }),
            RangeSpec::Suffix(n) if n > 0 && size > 0 => Some(ByteRange { start: size.saturating_sub(n), end: size - 1 }),
            _ => None,
        })
        .collect();
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    // One range (the common request) has nothing to merge: no sorted copy, no merged list.
    if ranges.len() == 1 {
        return RangeDecision::Ranges(ranges);
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(m) if r.start <= m.end.saturating_add(MERGE_GAP) => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() < ranges.len() {
        ranges = merged;
    }
    RangeDecision::Ranges(ranges)
}

/// The decision for a `Range` field value against `size` bytes.
pub fn decide(value: &[u8], size: u64) -> RangeDecision {
    match parse_range(value) {
        Some(specs) => resolve(&specs, size),
        None => RangeDecision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn ranges(v: &str, size: u64) -> RangeDecision {
        decide(v.as_bytes(), size)
    }

    #[test]
    fn the_three_forms() {
        // RFC 9110 §14.1.2 examples for a 10000-byte representation.
        assert_eq!(ranges("bytes=0-499", 10_000), RangeDecision::Ranges(vec![r(0, 499)]));
        assert_eq!(ranges("bytes=500-999", 10_000), RangeDecision::Ranges(vec![r(500, 999)]));
        assert_eq!(ranges("bytes=-500", 10_000), RangeDecision::Ranges(vec![r(9500, 9999)]));
        assert_eq!(ranges("bytes=9500-", 10_000), RangeDecision::Ranges(vec![r(9500, 9999)]));
        assert_eq!(ranges("bytes=0-0,-1", 10_000), RangeDecision::Ranges(vec![r(0, 0), r(9999, 9999)]));
        assert_eq!(ranges("bytes=0-", 10_000), RangeDecision::Ranges(vec![r(0, 9999)]));
    }

    #[test]
    fn clamping_and_suffix_longer_than_file() {
        assert_eq!(ranges("bytes=5-100", 10), RangeDecision::Ranges(vec![r(5, 9)]));
        assert_eq!(ranges("bytes=-100", 10), RangeDecision::Ranges(vec![r(0, 9)]));
        assert_eq!(ranges("bytes=0-99999999999999999999999999", 10), RangeDecision::Ranges(vec![r(0, 9)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(ranges("bytes=10-", 10), RangeDecision::Unsatisfiable);
        assert_eq!(ranges("bytes=10-20", 10), RangeDecision::Unsatisfiable);
        assert_eq!(ranges("bytes=-0", 10), RangeDecision::Unsatisfiable);
        assert_eq!(ranges("bytes=0-", 0), RangeDecision::Unsatisfiable);
        assert_eq!(ranges("bytes=-5", 0), RangeDecision::Unsatisfiable);
        assert_eq!(ranges("bytes=99999999999999999999999-", 10), RangeDecision::Unsatisfiable);
        // One satisfiable spec is enough; the others are dropped.
        assert_eq!(ranges("bytes=20-30,0-1,-0", 10), RangeDecision::Ranges(vec![r(0, 1)]));
    }

    #[test]
    fn invalid_or_foreign_is_ignored() {
        for v in [
            "bytes=5-4", "bytes=abc", "bytes=1-2-3", "bytes=", "bytes=,", "bytes", "items=0-1", "bytes=0x1-2", "bytes=-", "bytes=--1",
            "bytes=+1-2", "bytes=1-+2", "bytes=0-1,5-4", " = 0-1",
        ] {
            assert_eq!(ranges(v, 100), RangeDecision::Ignore, "{v}");
        }
        // Unit is case-insensitive; whitespace around elements is OWS.
        assert_eq!(ranges("Bytes=0-1", 100), RangeDecision::Ranges(vec![r(0, 1)]));
        assert_eq!(ranges("bytes= 0-1 , 500-600 ,", 1000), RangeDecision::Ranges(vec![r(0, 1), r(500, 600)]));
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{}", i * 1000, i * 1000)).collect();
        match ranges(&format!("bytes={}", sixteen.join(",")), 100_000) {
            RangeDecision::Ranges(v) => assert_eq!(v.len(), 16),
            other => panic!("{other:?}"),
        }
        let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 1000, i * 1000)).collect();
        assert_eq!(ranges(&format!("bytes={}", seventeen.join(",")), 100_000), RangeDecision::Ignore);
    }

    #[test]
    fn overlapping_and_close_ranges_are_coalesced() {
        // Overlap: merged and sorted.
        assert_eq!(ranges("bytes=500-700,0-600", 10_000), RangeDecision::Ranges(vec![r(0, 700)]));
        // The same range many times: one part (no amplification).
        assert_eq!(ranges("bytes=0-9999,0-9999,0-9999", 10_000), RangeDecision::Ranges(vec![r(0, 9999)]));
        // Adjacent and within MERGE_GAP.
        assert_eq!(ranges("bytes=0-99,100-199", 10_000), RangeDecision::Ranges(vec![r(0, 199)]));
        assert_eq!(ranges("bytes=0-99,179-199", 10_000), RangeDecision::Ranges(vec![r(0, 199)]));
        assert_eq!(ranges("bytes=0-99,181-199", 10_000), RangeDecision::Ranges(vec![r(0, 99), r(181, 199)]));
        // Disjoint ranges keep the requested order.
        assert_eq!(ranges("bytes=5000-5099,0-99", 10_000), RangeDecision::Ranges(vec![r(5000, 5099), r(0, 99)]));
        // A suffix overlapping an int range.
        assert_eq!(ranges("bytes=9000-9500,-1000", 10_000), RangeDecision::Ranges(vec![r(9000, 9999)]));
        // The total never exceeds the representation.
        match ranges("bytes=0-,0-,0-,-10000,1-,2-", 10_000) {
            RangeDecision::Ranges(v) => assert_eq!(v, vec![r(0, 9999)]),
            other => panic!("{other:?}"),
        }
    }
}
