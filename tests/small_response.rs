//! Small-response policy: memory bodies copied into the head's buffer up to
//! `Config::inline_body_max`, and small file regions read into the head's sendmsg up to
//! `Config::small_file_read_max` (default 4096; 0 = always sendfile).

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::Response;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8).collect()
}

/// An unlinked file holding `data`.
fn file_with(data: &[u8]) -> Arc<OwnedFd> {
    let path = std::env::temp_dir().join(format!("zh-small-{}-{}-{:?}", std::process::id(), data.len(), std::thread::current().id()));
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(OwnedFd::from(f))
}

/// Serves `/N` as an N-byte file region of a shared fd; returns the stats after GETs of
/// `sizes` (three keep-alive requests each, so a partly sent head is not the only case).
fn serve_files(small_file_read_max: usize, sizes: &[usize]) -> zerohttp::stats::Snapshot {
    let data = pattern(1 << 17);
    let fd = file_with(&data);
    let config = Config { threads: 1, small_file_read_max, ..Config::default() };
    let (engine, port) = start_with(config, move |req| {
        let n: u64 = req.head().path()[1..].parse().unwrap();
        let mut r = Response::new(200).unwrap();
        r.add_file_checked(FileFd::Shared(fd.clone()), 7, n);
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    let mut buf = Vec::new();
    for &n in sizes {
        for _ in 0..3 {
            write!(s, "GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut s, &mut buf, false).unwrap();
            assert_eq!(r.status, 200);
            assert!(r.body == data[7..7 + n], "file body of {n} bytes differs (small_file_read_max {small_file_read_max})");
        }
    }
    // Pipelined: several small files gathered into one sendmsg with the heads between them.
    let mut batch = String::new();
    for &n in sizes {
        batch += &format!("GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    s.write_all(batch.as_bytes()).unwrap();
    for &n in sizes {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert!(r.body == data[7..7 + n], "pipelined file body of {n} bytes differs");
    }
    drop(s);
    let st = settled(&engine, sizes.len() as u64 * 4);
    engine.shutdown(Duration::from_millis(100)).unwrap();
    st
}

/// The stats once `responses` responses are counted (the worker counts a response after its
/// last byte went out, so the client may have it a moment earlier).
fn settled(engine: &zerohttp::engine::Engine, responses: u64) -> zerohttp::stats::Snapshot {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st = engine.stats();
        if st.responses >= responses || std::time::Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn small_files_go_with_the_head_when_enabled() {
    let sizes = [1, 512, 4000];
    let sequential: u64 = sizes.iter().map(|&n| n as u64 * 3).sum();
    let st = serve_files(4096, &sizes);
    // Each sequential response is head + file in one sendmsg; in the pipelined batch the
    // 4000-byte file no longer fits the 4096-byte budget after the first two and may go by
    // sendfile (how the batch is split depends on how the requests were read).
    assert_eq!(st.bytes_copy + st.bytes_sendfile, sequential * 4 / 3, "{st:?}");
    assert!(st.bytes_copy >= sequential, "{st:?}");
    assert!(st.bytes_sendfile <= 4000, "{st:?}");
    assert!(st.syscalls_copy >= 9, "{st:?}");
}

#[test]
fn the_default_reads_regions_up_to_4096_bytes_with_the_head() {
    let max = Config::default().small_file_read_max;
    assert_eq!(max, 4096);
    // Exactly the limit: every one of the 4 responses is read into its head's sendmsg (one
    // 4096-byte region fills the budget of one sendmsg, so none is left for sendfile).
    let st = serve_files(max, &[max]);
    assert_eq!(st.bytes_copy, 4 * 4096, "{st:?}");
    assert_eq!(st.bytes_sendfile, 0, "{st:?}");
    assert_eq!(st.syscalls_sendfile, 0, "{st:?}");
    assert!(st.syscalls_copy >= 4, "{st:?}");
}

#[test]
fn files_above_the_limit_and_with_the_path_off_use_sendfile() {
    let st = serve_files(4096, &[4097, 100_000]);
    assert_eq!(st.bytes_copy, 0, "{st:?}");
    assert_eq!(st.bytes_sendfile, (4097 + 100_000) * 4, "{st:?}");
    let st = serve_files(0, &[1, 512]);
    assert_eq!(st.bytes_copy, 0, "{st:?}");
    assert_eq!(st.bytes_sendfile, 513 * 4, "{st:?}");
}

#[test]
fn memory_bodies_at_and_past_the_inline_limit_arrive_intact() {
    for max in [0usize, 1000, 2048] {
        let data = Arc::new(pattern(max + 2));
        let served = data.clone();
        let config = Config { threads: 1, inline_body_max: max, ..Config::default() };
        let (engine, port) = start_with(config, move |req| {
            let n: usize = req.head().path()[1..].parse().unwrap();
            let mut r = Response::new(200).unwrap();
            r.add_bytes(&served[..n]);
            req.respond(r).unwrap();
        });
        let mut s = connect(port);
        let mut buf = Vec::new();
        let sizes = [max.saturating_sub(1), max, max + 1];
        for n in sizes {
            write!(s, "GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut s, &mut buf, false).unwrap();
            assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
            assert!(r.body == data[..n], "inline_body_max {max}: body of {n} bytes differs");
        }
        drop(s);
        let st = settled(&engine, sizes.len() as u64);
        // One sendmsg per response either way: inlined or as a second slice.
        assert_eq!(st.syscalls_writev, sizes.len() as u64, "inline_body_max {max}: {st:?}");
        assert_eq!(st.bytes_sendfile + st.bytes_copy, 0);
        engine.shutdown(Duration::from_millis(100)).unwrap();
    }
}

#[test]
fn thresholds_are_validated() {
    for c in [Config { inline_body_max: (1 << 20) + 1, ..Config::default() }, Config { small_file_read_max: (1 << 20) + 1, ..Config::default() }] {
        assert!(c.validate().is_err());
    }
    assert!(Config { inline_body_max: 1 << 20, small_file_read_max: 1 << 20, ..Config::default() }.validate().is_ok());
}
