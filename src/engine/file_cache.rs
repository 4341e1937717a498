//! A worker's cache of open files: repeated requests for the same path cost no
//! `open`/`fstat`/`close` (what lighttpd's stat cache and nginx's `open_file_cache` buy them).
//!
//! An entry keeps the descriptor and its `fstat` result. It is trusted for `valid` after it was
//! last checked; the next lookup after that revalidates it with one `fstatat` of the path: the
//! same device, inode, size and mtime keep the entry (and its descriptor), anything else opens
//! the path again. A revalidation never opens through the unchecked path, so the cache does not
//! weaken `open_beneath`'s guarantee. Entries not used for `INACTIVE_INTERVALS × valid` are
//! closed by a sweep, so a deleted file's space is released even when nobody asks for it again.
//! Bounded: at most `capacity` entries; the least recently used one makes room.
//!
//! Descriptors are shared (`Arc`): a response in flight keeps its file open even after the
//! entry was replaced or swept.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::path_hash::PathHash;
use crate::static_file::{FileMeta, Validators};
use crate::transfer::{file_stat, open_beneath, relative, stat_at, FileStat};

/// An entry unused for this many validity intervals is closed by the sweep.
const INACTIVE_INTERVALS: u32 = 10;
/// The sweep never runs more often than this, however short the validity interval.
const MIN_SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What a lookup did, for the engine's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Served from the cache without a syscall.
    Hit,
    /// Checked with one `fstatat` and still the same file.
    Revalidated,
    /// Opened (and `fstat`ed) now.
    Opened,
}

/// An open file as the cache hands it out.
#[derive(Clone, Debug)]
pub struct CachedFile {
    pub fd: Arc<OwnedFd>,
    pub stat: FileStat,
    /// A regular file's ETag and Last-Modified, formatted when it was opened (they depend only
    /// on inode, size and mtime, which a revalidation checks): a hit does not format them.
    pub validators: Option<Validators>,
}

struct Entry {
    file: CachedFile,
    checked: Instant,
    used: Instant,
}

pub struct FileCache {
    capacity: usize,
    valid: Duration,
    /// Entries per directory fd (callers use one or a few roots; a map keyed by `CString`
    /// alone is found with a borrowed `&CStr`, so a hit allocates nothing).
    dirs: Vec<(RawFd, HashMap<CString, Entry, PathHash>)>,
    /// The keyed path hash of every map (see [`path_hash`]).
    hash: PathHash,
    len: usize,
    next_sweep: Option<Instant>,
}

/// Whether two stats describe the same unchanged file.
fn same_file(a: &FileStat, b: &FileStat) -> bool {
    (a.dev, a.inode, a.size, a.mtime_secs, a.mtime_nanos) == (b.dev, b.inode, b.size, b.mtime_secs, b.mtime_nanos)
}

/// Opens `path` beneath `dirfd` and `fstat`s it (no cache involved).
pub fn open_file(dirfd: RawFd, path: &CStr) -> io::Result<CachedFile> {
    let fd = open_beneath(dirfd, path)?;
    let stat = file_stat(fd.as_raw_fd())?;
    let validators = stat.is_regular.then(|| Validators::of(&FileMeta::from(stat)));
    Ok(CachedFile { fd: Arc::new(fd), stat, validators })
}

impl FileCache {
    /// `capacity` 0 makes a cache that keeps nothing (every lookup opens).
    pub fn new(capacity: usize, valid: Duration) -> Self {
        FileCache { capacity, valid, dirs: Vec::new(), hash: PathHash::random(), len: 0, next_sweep: None }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn dir(&mut self, dirfd: RawFd) -> &mut HashMap<CString, Entry, PathHash> {
        let i = match self.dirs.iter().position(|(d, _)| *d == dirfd) {
            Some(i) => i,
            None => {
                self.dirs.push((dirfd, HashMap::with_hasher(self.hash.clone())));
                self.dirs.len() - 1
            }
        };
        &mut self.dirs[i].1
    }

    /// The open file for `path` beneath `dirfd`. Only regular files are kept; directories and
    /// other kinds are returned (so the caller can tell what it found) but not cached.
    pub fn get(&mut self, dirfd: RawFd, path: &CStr, now: Instant) -> io::Result<(CachedFile, Lookup)> {
        self.sweep_if_due(now);
        if self.capacity == 0 {
            return open_file(dirfd, path).map(|f| (f, Lookup::Opened));
        }
        // "/a" and "a" are the same file beneath the directory: one entry.
        let path = relative(path);
        let valid = self.valid;
        let map = self.dir(dirfd);
        if let Some(e) = map.get_mut(path) {
            e.used = now;
            if now.saturating_duration_since(e.checked) < valid {
                return Ok((e.file.clone(), Lookup::Hit));
            }
            if let Ok(st) = stat_at(dirfd, path)
                && same_file(&st, &e.file.stat)
            {
                e.checked = now;
                return Ok((e.file.clone(), Lookup::Revalidated));
            }
            map.remove(path);
            self.len -= 1;
        }
        let file = open_file(dirfd, path)?;
        if file.stat.is_regular {
            if self.len >= self.capacity {
                self.evict_least_recent();
            }
            self.dir(dirfd).insert(path.to_owned(), Entry { file: file.clone(), checked: now, used: now });
            self.len += 1;
            let every = self.sweep_every();
            self.next_sweep.get_or_insert(now + every);
        }
        Ok((file, Lookup::Opened))
    }

    /// When the next sweep is due (None while the cache is empty).
    pub fn next_sweep(&self) -> Option<Instant> {
        if self.is_empty() { None } else { self.next_sweep }
    }

    /// Closes entries nobody used for a while; cheap when not yet due.
    pub fn sweep_if_due(&mut self, now: Instant) {
        match self.next_sweep {
            Some(at) if now >= at => {}
            _ => return,
        }
        let inactive = self.valid * INACTIVE_INTERVALS;
        // The next sweep is due when the least recently used entry left turns inactive (an
        // entry used meanwhile only moves that later): an idle worker with cached files wakes
        // once more to close them, not every `valid`.
        let mut first_due: Option<Instant> = None;
        for (_, map) in &mut self.dirs {
            map.retain(|_, e| {
                let keep = now.saturating_duration_since(e.used) < inactive;
                if keep {
                    let due = e.used + inactive;
                    first_due = Some(first_due.map_or(due, |d| d.min(due)));
                }
                keep
            });
        }
        self.dirs.retain(|(_, map)| !map.is_empty());
        self.len = self.dirs.iter().map(|(_, m)| m.len()).sum();
        self.next_sweep = first_due.map(|due| due.max(now + self.sweep_every()));
    }

    /// Drops every entry (descriptors in use by responses stay open until those finish).
    pub fn clear(&mut self) {
        self.dirs.clear();
        self.len = 0;
        self.next_sweep = None;
    }

    fn sweep_every(&self) -> Duration {
        self.valid.max(MIN_SWEEP_EVERY)
    }

    /// O(entries), but only on a miss with a full cache.
    fn evict_least_recent(&mut self) {
        let oldest = self
            .dirs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, m))| m.iter().map(move |(k, e)| (e.used, i, k)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, i, k)| (i, k.clone()));
        if let Some((i, k)) = oldest {
            self.dirs[i].1.remove(&k);
            self.len -= 1;
        }
    }
}

/// The cache's path hash: keyed, and cheap for short paths.
///
/// The standard `HashMap` hashes with SipHash-1-3, ~420 instructions per lookup of a short
/// path, a visible share of a cached file response. This is a folded 64×64→128-bit multiply per
/// 8 bytes of the key (the construction of foldhash/wyhash), keyed with two random words per
/// cache, so the bucket of a path cannot be predicted from outside. It is not a cryptographic
/// PRF, and it need not be: what flooding could achieve here is bounded anyway. Paths are
/// attacker-chosen (`/a`, `/./a`, `//a` are distinct keys for one file), but an entry is only
/// inserted for a path that opened as a regular file beneath the root, the map never holds more
/// than `capacity` entries (least recently used out first), and a lookup of a missing path
/// inserts nothing. Even keys that all collided would make a lookup compare at most `capacity`
/// keys, not grow without bound as a flooded request-header map would.
mod path_hash {
    use std::hash::{BuildHasher, Hasher};

    #[derive(Clone, Debug)]
    pub(super) struct PathHash {
        k0: u64,
        k1: u64,
    }

    impl PathHash {
        /// Keys from the standard library's per-instance random hash keys (no RNG dependency).
        pub(super) fn random() -> PathHash {
            let s = std::collections::hash_map::RandomState::new();
            PathHash { k0: s.hash_one(0x5a17_u64), k1: s.hash_one(0x0dd_ba11_u64) }
        }
    }

    impl BuildHasher for PathHash {
        type Hasher = Folded;
        fn build_hasher(&self) -> Folded {
            Folded { h: self.k0, k0: self.k0, k1: self.k1 }
        }
    }

    pub(super) struct Folded {
        h: u64,
        k0: u64,
        k1: u64,
    }

    /// The full 128-bit product folded to 64 bits: every input bit reaches every output bit.
    fn fold(a: u64, b: u64) -> u64 {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    }

    impl Folded {
        fn word(&mut self, w: u64) {
            // Both factors are masked with a secret: the key bytes cannot zero a factor.
            self.h = fold(w ^ self.k0, self.h ^ self.k1);
        }
    }

    impl Hasher for Folded {
        fn write(&mut self, bytes: &[u8]) {
            let mut words = bytes.chunks_exact(8);
            for w in &mut words {
                self.word(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
            }
            let rest = words.remainder();
            if !rest.is_empty() {
                let mut last = [0u8; 8];
                last[..rest.len()].copy_from_slice(rest);
                // The tail's length goes in too, so "a" and "a\0" differ.
                self.word(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
            }
        }

        fn write_usize(&mut self, n: usize) {
            self.word(n as u64);
        }

        fn finish(&self) -> u64 {
            // One more round so the last word's bits are spread over the whole result.
            fold(self.h ^ self.k1, self.k0 | 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir {
        path: std::path::PathBuf,
        fd: std::fs::File,
    }

    impl Dir {
        fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("zh-fcache-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(path.join("d")).unwrap();
            for (name, body) in [("a", "aaaa"), ("b", "bb"), ("c", "c")] {
                std::fs::write(path.join(name), body).unwrap();
            }
            let fd = std::fs::File::open(&path).unwrap();
            Dir { path, fd }
        }
        fn raw(&self) -> RawFd {
            self.fd.as_raw_fd()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    #[test]
    fn hits_within_the_interval_and_revalidates_after_it() {
        let dir = Dir::new("hit");
        let mut c = FileCache::new(8, Duration::from_secs(1));
        let t0 = Instant::now();
        let (f1, how) = c.get(dir.raw(), c"a", t0).unwrap();
        assert_eq!((how, f1.stat.size), (Lookup::Opened, 4));
        let (f2, how) = c.get(dir.raw(), c"a", t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(how, Lookup::Hit);
        assert!(Arc::ptr_eq(&f1.fd, &f2.fd), "a hit hands out the same descriptor");
        assert_eq!(c.get(dir.raw(), c"//a", t0).unwrap().1, Lookup::Hit, "leading slashes name the same entry");
        let (f3, how) = c.get(dir.raw(), c"a", t0 + Duration::from_millis(1500)).unwrap();
        assert_eq!(how, Lookup::Revalidated);
        assert!(Arc::ptr_eq(&f1.fd, &f3.fd));
    }

    #[test]
    fn a_changed_file_is_opened_again_after_the_interval() {
        let dir = Dir::new("change");
        let mut c = FileCache::new(8, Duration::from_millis(200));
        let t0 = Instant::now();
        let (old, _) = c.get(dir.raw(), c"a", t0).unwrap();
        // Replace the file (new inode), as deploy tools do with rename.
        std::fs::write(dir.path.join("a.new"), "replaced!").unwrap();
        std::fs::rename(dir.path.join("a.new"), dir.path.join("a")).unwrap();
        let (still, how) = c.get(dir.raw(), c"a", t0 + Duration::from_millis(100)).unwrap();
        assert_eq!((how, still.stat.size), (Lookup::Hit, 4), "within the interval the old file is served");
        let (new, how) = c.get(dir.raw(), c"a", t0 + Duration::from_millis(300)).unwrap();
        assert_eq!((how, new.stat.size), (Lookup::Opened, 9));
        assert_ne!(new.stat.inode, old.stat.inode);
        let etag = |f: &CachedFile| f.validators.clone().and_then(|v| v.take_for_test(&FileMeta::from(f.stat)));
        assert_ne!(etag(&new), etag(&old), "a new file gets new validators");
        // In-place change of size: same inode, different size → reopened.
        std::fs::write(dir.path.join("a"), "x").unwrap();
        let (again, how) = c.get(dir.raw(), c"a", t0 + Duration::from_millis(600)).unwrap();
        assert_eq!((how, again.stat.size), (Lookup::Opened, 1));
        assert_ne!(etag(&again), etag(&new));
        assert!(etag(&again).is_some(), "the validators describe the file handed out");
    }

    #[test]
    fn bounded_least_recently_used_first_and_swept_when_inactive() {
        let dir = Dir::new("bound");
        let mut c = FileCache::new(2, Duration::from_millis(100));
        let t0 = Instant::now();
        c.get(dir.raw(), c"a", t0).unwrap();
        c.get(dir.raw(), c"b", t0 + Duration::from_millis(1)).unwrap();
        c.get(dir.raw(), c"a", t0 + Duration::from_millis(2)).unwrap();
        c.get(dir.raw(), c"c", t0 + Duration::from_millis(3)).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(dir.raw(), c"a", t0 + Duration::from_millis(4)).unwrap().1, Lookup::Hit, "b was the least recent");
        assert_eq!(c.get(dir.raw(), c"b", t0 + Duration::from_millis(5)).unwrap().1, Lookup::Opened);
        let later = t0 + Duration::from_millis(100 * u64::from(INACTIVE_INTERVALS) + 50);
        assert!(c.next_sweep().is_some());
        c.sweep_if_due(later);
        assert!(c.is_empty(), "inactive entries are closed");
        assert_eq!(c.next_sweep(), None);
    }

    #[test]
    fn the_next_sweep_waits_for_the_first_entry_to_turn_inactive() {
        let dir = Dir::new("due");
        let valid = Duration::from_millis(100);
        let inactive = valid * INACTIVE_INTERVALS;
        let mut c = FileCache::new(8, valid);
        let t0 = Instant::now();
        c.get(dir.raw(), c"a", t0).unwrap();
        assert_eq!(c.next_sweep(), Some(t0 + valid), "the first sweep comes one interval after the first entry");
        // This lookup is past that, so it sweeps; nothing is inactive yet.
        c.get(dir.raw(), c"b", t0 + Duration::from_millis(300)).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.next_sweep(), Some(t0 + inactive), "then when a turns inactive, not every interval");
        c.sweep_if_due(t0 + inactive);
        assert_eq!(c.len(), 1, "a closed");
        assert_eq!(c.next_sweep(), Some(t0 + Duration::from_millis(300) + inactive), "b's turn");
        // An entry used meanwhile moves its turn later.
        c.get(dir.raw(), c"b", t0 + inactive).unwrap();
        c.sweep_if_due(t0 + Duration::from_millis(300) + inactive);
        assert_eq!(c.len(), 1);
        assert_eq!(c.next_sweep(), Some(t0 + inactive + inactive));
    }

    #[test]
    fn the_path_hash_is_keyed_and_tells_paths_apart() {
        use std::hash::BuildHasher;
        let (a, b) = (PathHash::random(), PathHash::random());
        let paths: [&CStr; 6] = [c"a", c"b", c"ab", c"a/b/c/d/e/f/g/h", c"a/b/c/d/e/f/g/i", c"a/b/c/d/e/f/g/h/"];
        let hashes: std::collections::HashSet<u64> = paths.iter().map(|p| a.hash_one(p)).collect();
        assert_eq!(hashes.len(), paths.len());
        assert_ne!(a.hash_one(c"index.html"), b.hash_one(c"index.html"), "another cache, another key");
        // A borrowed &CStr finds the CString key.
        let owned = CString::from(c"x/y.bin");
        assert_eq!(a.hash_one(&owned), a.hash_one(c"x/y.bin"));
    }

    #[test]
    fn directories_and_errors_are_not_cached() {
        let dir = Dir::new("kinds");
        let mut c = FileCache::new(8, Duration::from_secs(10));
        let now = Instant::now();
        let (d, how) = c.get(dir.raw(), c"d", now).unwrap();
        assert!(d.stat.is_dir && how == Lookup::Opened);
        assert_eq!(c.len(), 0);
        let err = c.get(dir.raw(), c"nope", now).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(c.len(), 0);
        let off = &mut FileCache::new(0, Duration::from_secs(10));
        assert_eq!(off.get(dir.raw(), c"a", now).unwrap().1, Lookup::Opened);
        assert_eq!(off.get(dir.raw(), c"a", now).unwrap().1, Lookup::Opened, "capacity 0 keeps nothing");
    }
}
