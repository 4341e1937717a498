//! `fstat` of a file about to be served: size, modification time and identity, the inputs of
//! validators (ETag, Last-Modified) for static file responses.

use std::io;
use std::mem;
use std::os::fd::RawFd;

/// What a static file response needs to know about an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Modification time: seconds since the epoch (may be negative) and nanoseconds.
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    pub inode: u64,
    pub dev: u64,
    /// Only regular files can be sent as file regions.
    pub is_regular: bool,
    /// A directory (a file server answers it with its index or a redirect).
    pub is_dir: bool,
}

/// `fstat(fd)` reduced to a [`FileStat`].
pub fn file_stat(fd: RawFd) -> io::Result<FileStat> {
    // SAFETY: `st` is a plain-old-data struct that a successful fstat fully writes; fstat does
    // not retain the pointer. An invalid fd makes fstat fail with EBADF, which is reported.
    let st = unsafe {
        let mut st: libc::stat = mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok(stat_from(&st))
}

/// The fields of a `struct stat` that file responses use.
pub(crate) fn stat_from(st: &libc::stat) -> FileStat {
    FileStat {
        size: st.st_size.max(0) as u64,
        mtime_secs: st.st_mtime,
        mtime_nanos: st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        inode: st.st_ino,
        dev: st.st_dev,
        is_regular: (st.st_mode & libc::S_IFMT) == libc::S_IFREG,
        is_dir: (st.st_mode & libc::S_IFMT) == libc::S_IFDIR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_a_regular_file_and_a_pipe() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("zh-stat-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&[1u8; 321]).unwrap();
        let st = file_stat(f.as_raw_fd()).unwrap();
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(st.size, 321);
        assert!(st.is_regular);
        assert_eq!(st.inode, md.ino());
        assert_eq!(st.dev, md.dev());
        assert_eq!(st.mtime_secs, md.mtime());
        assert_eq!(i64::from(st.mtime_nanos), md.mtime_nsec());
        std::fs::remove_file(&path).unwrap();
        assert!(file_stat(-1).is_err());
        let (r, _w) = std::io::pipe().unwrap();
        assert!(!file_stat(r.as_raw_fd()).unwrap().is_regular);
    }
}
