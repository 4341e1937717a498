//! Opening a file by a path relative to a directory without ever leaving that directory, and
//! the cheap `fstatat` a file cache uses to revalidate what it opened earlier.
//!
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` makes the kernel refuse any `..`,
//! absolute symlink or magic link that would lead out of the directory (EXDEV/ELOOP), with no
//! window between the check and the open. Kernels before 5.6 have no openat2: there the file is
//! opened normally and the path the kernel actually opened (`/proc/self/fd/N`) must lie under the
//! directory's own path, which also catches symlinks swapped in while the path was resolved.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::transfer::stat::{stat_from, FileStat};

/// Set once openat2 said ENOSYS: the fallback is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const OPEN_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

/// Opens `path` (relative, no leading `/` needed: it is resolved beneath `dirfd` either way)
/// read-only and non-blocking (a FIFO must not block the caller's thread). Errors keep the
/// kernel's errno: ENOENT/ENOTDIR for missing, EXDEV/ELOOP for escapes, EACCES for permission.
pub fn open_beneath(dirfd: RawFd, path: &CStr) -> io::Result<OwnedFd> {
    let path = relative(path);
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2_beneath(dirfd, path) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            other => return other,
        }
    }
    open_checked_prefix(dirfd, path)
}

fn openat2_beneath(dirfd: RawFd, path: &CStr) -> io::Result<OwnedFd> {
    let how = OpenHow { flags: OPEN_FLAGS as u64, mode: 0, resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    // SAFETY: `path` is a valid NUL-terminated string and `how` a live open_how of the size
    // passed; the kernel reads both during the call only. A bad dirfd is reported as EBADF.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dirfd, path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `path` without its leading slashes (URL paths start with one; both ways treat the rest as
/// relative to the directory). The tail of a C string is still NUL-terminated: no copy.
pub fn relative(path: &CStr) -> &CStr {
    let bytes = path.to_bytes_with_nul();
    let skip = bytes.iter().take_while(|&&b| b == b'/').count();
    CStr::from_bytes_with_nul(&bytes[skip..]).unwrap_or(path)
}

/// The pre-openat2 fallback: open, then check where the opened file really is.
pub(crate) fn open_checked_prefix(dirfd: RawFd, path: &CStr) -> io::Result<OwnedFd> {
    let rel = relative(path);
    // SAFETY: `rel` is NUL-terminated and outlives the call; openat does not keep the pointer.
    let fd = unsafe { libc::openat(dirfd, rel.as_ptr(), OPEN_FLAGS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    let dir = fd_path(dirfd)?;
    let opened = fd_path(std::os::fd::AsRawFd::as_raw_fd(&file))?;
    let inside = dir == b"/" || (opened.starts_with(&dir) && opened.get(dir.len()) == Some(&b'/'));
    if !inside {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(file)
}

/// The path the kernel records for an open descriptor.
fn fd_path(fd: RawFd) -> io::Result<Vec<u8>> {
    let link = std::path::PathBuf::from(format!("/proc/self/fd/{fd}"));
    let target = std::fs::read_link(link)?;
    Ok(std::os::unix::ffi::OsStringExt::into_vec(target.into_os_string()))
}

/// `fstatat(dirfd, path)` following symlinks, for revalidating a cached open: the result is only
/// compared with what an earlier `open_beneath` saw, never used to open anything.
pub fn stat_at(dirfd: RawFd, path: &CStr) -> io::Result<FileStat> {
    let path = relative(path);
    // SAFETY: `st` is plain old data that a successful fstatat fully writes; `path` is a valid
    // NUL-terminated string; neither pointer is kept after the call.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dirfd, path.as_ptr(), &mut st, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok(stat_from(&st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn tree() -> (std::path::PathBuf, std::fs::File) {
        let root = std::env::temp_dir().join(format!("zh-open-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("www/sub")).unwrap();
        std::fs::write(root.join("www/sub/a.txt"), b"inside").unwrap();
        std::fs::write(root.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("www/escape")).unwrap();
        std::os::unix::fs::symlink("sub/a.txt", root.join("www/ok-link")).unwrap();
        let dir = std::fs::File::open(root.join("www")).unwrap();
        (root, dir)
    }

    fn errno(r: io::Result<OwnedFd>) -> i32 {
        r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
    }

    #[test]
    fn both_ways_stay_beneath_the_directory() {
        let (root, dir) = tree();
        for open in [open_beneath as fn(RawFd, &CStr) -> io::Result<OwnedFd>, open_checked_prefix] {
            let d = dir.as_raw_fd();
            assert!(open(d, c"sub/a.txt").is_ok());
            assert!(open(d, c"ok-link").is_ok());
            assert!(open(d, c"/sub/a.txt").is_ok(), "a URL path's leading slash is relative");
            assert_eq!(errno(open(d, c"missing")), libc::ENOENT);
            let escapes = [errno(open(d, c"escape")), errno(open(d, c"../secret")), errno(open(d, c"sub/../../secret"))];
            for e in escapes {
                assert!(e == libc::EXDEV || e == libc::ELOOP, "escape gave errno {e}");
            }
        }
        let st = stat_at(dir.as_raw_fd(), c"/sub/a.txt").unwrap();
        assert_eq!(st.size, 6);
        assert!(st.is_regular);
        std::fs::remove_dir_all(root).unwrap();
    }
}
