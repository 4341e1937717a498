//! What a worker recently found in the page cache, shared by its connections.
//!
//! Every response starts on a fresh connection state, so without this each request for a hot
//! cached file paid one `cachestat` before its `sendfile` (about 0.7 µs of the ~27 µs a
//! keep-alive 64 KiB response costs the server here). A range found cached stays trusted for
//! [`TRUST`]: pages of a file being served that often are not evicted within it except under
//! heavy memory pressure, and a miss then costs one `sendfile` that waits for the disk, not a
//! wrong answer.
//!
//! Only descriptors shared with the open-file cache are remembered. The entry holds a `Weak` to
//! the descriptor's allocation, so the memo never keeps a file open, and a descriptor number the
//! kernel hands out again after a close cannot be mistaken for the old file (the allocation, and
//! with it the identity, stays distinct while the `Weak` lives).

use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a range found cached is trusted without asking again.
pub const TRUST: Duration = Duration::from_millis(50);
/// Entries kept; a worker serves a handful of hot files at a time.
const ENTRIES: usize = 8;

struct Entry {
    fd: Weak<OwnedFd>,
    from: u64,
    to: u64,
    at: Instant,
}

/// The ranges of shared descriptors found cached in the last [`TRUST`].
#[derive(Default)]
pub struct WarmMemo {
    entries: Vec<Entry>,
    /// The slot the next insertion replaces when all are taken (round robin).
    next: usize,
}

impl std::fmt::Debug for WarmMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmMemo").field("entries", &self.entries.len()).finish()
    }
}

impl WarmMemo {
    /// The remembered cached range of `fd` that contains `offset`, if still trusted at `now`.
    pub fn lookup(&self, fd: &Arc<OwnedFd>, offset: u64, now: Instant) -> Option<(u64, u64)> {
        self.entries
            .iter()
            .find(|e| std::ptr::eq(e.fd.as_ptr(), Arc::as_ptr(fd)) && offset >= e.from && offset < e.to)
            .filter(|e| now.saturating_duration_since(e.at) < TRUST)
            .map(|e| (e.from, e.to))
    }

    /// Remembers that `[from, to)` of `fd` was found cached at `now`.
    pub fn remember(&mut self, fd: &Arc<OwnedFd>, from: u64, to: u64, now: Instant) {
        if from >= to {
            return;
        }
        let entry = Entry { fd: Arc::downgrade(fd), from, to, at: now };
        let same = self.entries.iter().position(|e| std::ptr::eq(e.fd.as_ptr(), Arc::as_ptr(fd)));
        let expired = || self.entries.iter().position(|e| e.fd.strong_count() == 0 || now.saturating_duration_since(e.at) >= TRUST);
        if let Some(i) = same.or_else(expired) {
            self.entries[i] = entry;
        } else if self.entries.len() < ENTRIES {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % ENTRIES;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> Arc<OwnedFd> {
        Arc::new(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
    }

    #[test]
    fn a_remembered_range_is_trusted_for_a_while_and_only_inside_it() {
        let (a, t0) = (fd(), Instant::now());
        let mut memo = WarmMemo::default();
        assert_eq!(memo.lookup(&a, 0, t0), None);
        memo.remember(&a, 100, 200, t0);
        assert_eq!(memo.lookup(&a, 100, t0), Some((100, 200)));
        assert_eq!(memo.lookup(&a, 199, t0 + TRUST / 2), Some((100, 200)));
        assert_eq!(memo.lookup(&a, 200, t0), None, "the end is exclusive");
        assert_eq!(memo.lookup(&a, 99, t0), None);
        assert_eq!(memo.lookup(&a, 150, t0 + TRUST), None, "expired");
    }

    #[test]
    fn another_descriptor_is_another_file_even_with_the_same_number() {
        let a = fd();
        let now = Instant::now();
        let mut memo = WarmMemo::default();
        memo.remember(&a, 0, 4096, now);
        // The memo must not keep the file open…
        assert_eq!(Arc::strong_count(&a), 1);
        drop(a);
        // …and a new open that gets the same number is not the remembered file.
        let b = fd();
        assert_eq!(memo.lookup(&b, 0, now), None);
    }

    #[test]
    fn a_file_has_one_entry_and_the_memo_stays_small() {
        let now = Instant::now();
        let mut memo = WarmMemo::default();
        let a = fd();
        memo.remember(&a, 0, 10, now);
        memo.remember(&a, 10, 20, now);
        assert_eq!(memo.entries.len(), 1);
        assert_eq!(memo.lookup(&a, 15, now), Some((10, 20)));
        let many: Vec<_> = (0..ENTRIES * 2).map(|_| fd()).collect();
        for f in &many {
            memo.remember(f, 0, 10, now);
        }
        assert_eq!(memo.entries.len(), ENTRIES);
        assert_eq!(memo.lookup(many.last().unwrap(), 0, now), Some((0, 10)), "the newest is kept");
    }
}
