//! Spool files for large request bodies, and moving a spooled body into the caller's file
//! (`copy_file_range`, falling back to `sendfile` and then `pread` + `pwrite` on EXDEV & co).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::stats::{bump, WorkerStats};

/// An anonymous file in `dir` (`O_TMPFILE`: it never has a name, so nothing is left behind);
/// where the filesystem lacks O_TMPFILE, a named temporary that is unlinked at once.
pub fn spool_file(dir: &Path) -> io::Result<File> {
    let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open(2) with a NUL-terminated path we own; the result is checked.
    let fd = unsafe { libc::open(cdir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    if fd >= 0 {
        // SAFETY: a descriptor we just opened and own.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)) {
        return Err(err);
    }
    let mut template = dir.join("zerohttp-spool-XXXXXX").into_os_string().into_vec();
    template.push(0);
    // SAFETY: mkostemp rewrites the XXXXXX of our own NUL-terminated buffer in place.
    let fd = unsafe { libc::mkostemp(template.as_mut_ptr().cast(), libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: unlink the name we just created; the open descriptor keeps the file alive.
    unsafe { libc::unlink(template.as_ptr().cast()) };
    // SAFETY: a descriptor we just created and own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

use std::os::unix::ffi::OsStringExt;

/// Copies `len` bytes from `src` (at 0) to `dst` at `offset`, inside the kernel where it can:
/// `copy_file_range` (may share extents on the same filesystem), then `sendfile`, then
/// `pread` + `pwrite`. Returns the bytes copied.
pub fn copy_to_fd(src: RawFd, len: u64, dst: RawFd, offset: u64, stats: &WorkerStats) -> io::Result<u64> {
    let mut done = 0u64;
    let mut path = 0; // 0 copy_file_range, 1 sendfile, 2 pread+pwrite
    while done < len {
        let want = (len - done).min(1 << 30) as usize;
        let mut in_off = done as libc::loff_t;
        let mut out_off = (offset + done) as libc::loff_t;
        let n = match path {
            0 => {
                bump(&stats.syscalls_copy_file_range, 1);
                // SAFETY: both offsets are live locals; no memory is passed.
                unsafe { libc::copy_file_range(src, &mut in_off, dst, &mut out_off, want, 0) }
            }
            1 => {
                // sendfile writes at the destination's file position: set it first.
                // SAFETY: lseek on the caller's descriptor.
                if unsafe { libc::lseek(dst, out_off as libc::off_t, libc::SEEK_SET) } < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut off = in_off as libc::off_t;
                bump(&stats.syscalls_sendfile, 1);
                // SAFETY: `off` is a live local the kernel advances; descriptors are ints.
                unsafe { libc::sendfile(dst, src, &mut off, want) }
            }
            _ => {
                let mut buf = vec![0u8; want.min(256 * 1024)];
                bump(&stats.syscalls_copy, 2);
                // SAFETY: `buf` has buf.len() initialised bytes; pread writes at most that.
                let r = unsafe { libc::pread(src, buf.as_mut_ptr().cast(), buf.len(), in_off as libc::off_t) };
                if r <= 0 {
                    r
                } else {
                    super::pwrite_all(dst, &buf[..r as usize], out_off as u64, stats)?;
                    r
                }
            }
        };
        if n > 0 {
            let n = n as u64;
            match path {
                0 => bump(&stats.bytes_copy_file_range, n),
                1 => bump(&stats.bytes_sendfile, n),
                _ => bump(&stats.bytes_copy, n),
            }
            done += n;
            continue;
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EXDEV) | Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) | Some(libc::EBADF) if path < 2 => {
                bump(&stats.fallbacks, 1);
                path += 1;
            }
            _ => return Err(err),
        }
    }
    Ok(done)
}
