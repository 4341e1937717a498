//! A Content-Length body claimed into a file gets its file range reserved before it is read:
//! the blocks are there before the bytes, a body that cannot fit is refused before the client
//! sends it, and a body that ends early gives back what it did not use.
mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, HeadHandler, Request, Response};

/// What each `on_done` reported: bytes, and the errno when the body ended early.
type Done = Arc<Mutex<Vec<(u64, Option<i32>)>>>;

/// Engine whose head handler writes every PUT body into `dir/<path>`; `on_done` answers 201 or
/// 507 with the byte count.
fn engine(dir: PathBuf, done: Done, force_copy: bool) -> (Engine, u16) {
    let head: HeadHandler = Arc::new(move |req: Request| {
        let file = std::fs::File::create(dir.join(&req.head().path()[1..])).unwrap();
        let slot: Arc<Mutex<Option<Request>>> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let d2 = done.clone();
        req.body_to_fd(
            FileFd::Owned(OwnedFd::from(file)),
            0,
            Box::new(move |n, err| {
                let errno = err.map(|e| e.raw_os_error().unwrap_or(-1));
                d2.lock().unwrap().push((n, errno));
                if let Some(req) = s2.lock().unwrap().take() {
                    let mut resp = Response::new(if errno.is_none() { 201 } else { 507 }).unwrap();
                    resp.add_bytes(n.to_string().as_bytes());
                    let _ = req.respond(resp);
                }
            }),
        )
        .unwrap();
        *slot.lock().unwrap() = Some(req);
        None
    });
    let config = Config { threads: 1, force_copy, ..Config::default() };
    let engine = Engine::with_head_handler(config, Arc::new(|req: Request| req.respond(Response::plain(404)).unwrap()), Some(head)).unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    engine.start().unwrap();
    (engine, port)
}

/// Bytes of disk the file holds (allocated blocks, reserved or written).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const LEN: usize = 8 << 20;

#[test]
fn the_file_range_is_reserved_before_the_body_arrives() {
    for force_copy in [false, true] {
        let dir = temp_dir(if force_copy { "reserve-copy" } else { "reserve-splice" });
        let done: Done = Default::default();
        let (engine, port) = engine(dir.clone(), done.clone(), force_copy);
        let path = dir.join("up.bin");
        let mut s = connect(port);
        s.write_all(format!("PUT /up.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n").as_bytes()).unwrap();
        // Only the head has been sent: the blocks are there, the size is still 0.
        wait_for("the reservation", || allocated(&path) >= LEN as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the reservation keeps the size");
        let data: Vec<u8> = (0..LEN as u32).map(|i| (i % 253) as u8).collect();
        s.write_all(&data).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
        assert_eq!(r.status, 201, "force_copy {force_copy}");
        assert!(std::fs::read(&path).unwrap() == data, "force_copy {force_copy}: the file is the body");
        let held = allocated(&path);
        assert!((LEN as u64..LEN as u64 + (1 << 20)).contains(&held), "force_copy {force_copy}: {held} bytes allocated for {LEN}");
        let st = engine.stats();
        if force_copy {
            assert_eq!(st.body_bytes_spliced, 0, "{st:?}");
        } else {
            assert!(st.body_bytes_spliced > LEN as u64 / 2, "{st:?}");
        }
        engine.shutdown(Duration::ZERO).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_body_that_cannot_fit_is_refused_before_it_is_sent() {
    let dir = temp_dir("reserve-nofit");
    let done: Done = Default::default();
    let (engine, port) = engine(dir.clone(), done.clone(), false);
    let mut s = connect(port);
    // 4 EiB: more than any filesystem here has free (ENOSPC; EFBIG where a filesystem's largest
    // file is smaller than its free space). The client waits for `100 Continue` before sending
    // a byte of it.
    let huge = 1u64 << 62;
    s.write_all(format!("PUT /huge.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {huge}\r\nExpect: 100-continue\r\n\r\n").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 507, "the final answer comes first, no 100 Continue");
    assert_eq!(r.body, b"0");
    let d = done.lock().unwrap().clone();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(matches!(d[0], (0, Some(libc::EFBIG)) | (0, Some(libc::ENOSPC))), "{d:?}");
    // The body will never be read: the connection ends after the answer.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(rest.is_empty(), "nothing after the answer: {:?}", String::from_utf8_lossy(&rest));
    assert_eq!(allocated(&dir.join("huge.bin")), 0);
    assert_eq!(engine.stats().body_bytes_spliced + engine.stats().body_bytes_copied, 0);
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_client_already_sending_a_refused_body_gets_the_answer_not_a_reset() {
    let dir = temp_dir("reserve-nofit-noexpect");
    let done: Done = Default::default();
    let (engine, port) = engine(dir.clone(), done.clone(), false);
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // No `Expect`: the client sends the head and goes straight on with the body.
    s.write_all(b"PUT /huge.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 4611686018427387904\r\n\r\n").unwrap();
    s.write_all(&vec![3u8; 256 << 10]).unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 507);
    assert!(r.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v == "close"), "{:?}", r.headers);
    // The engine reads away what still comes (lingering close) instead of resetting the
    // connection under a client that is still sending: these writes land, and the client
    // then sees an orderly end.
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&vec![3u8; 256 << 10]).expect("the server still reads after its answer");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let end = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(end.is_ok() && rest.is_empty(), "{end:?}, {} bytes", rest.len());
    assert_eq!(done.lock().unwrap().len(), 1);
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_large_body_is_reserved_a_window_ahead_of_its_writes() {
    let dir = temp_dir("reserve-window");
    let done: Done = Default::default();
    let (engine, port) = engine(dir.clone(), done.clone(), false);
    let path = dir.join("large.bin");
    let len = 2 * zerohttp::transfer::Reservation::window() as usize + (8 << 20);
    let mut s = connect(port);
    s.write_all(format!("PUT /large.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").as_bytes()).unwrap();
    // One window is reserved before the body, not the whole length: one `fallocate` of a
    // large body would hold the event loop for milliseconds.
    let window = zerohttp::transfer::Reservation::window();
    wait_for("the first window", || allocated(&path) >= window);
    std::thread::sleep(Duration::from_millis(50));
    assert!(allocated(&path) < 2 * window, "{} bytes allocated before the body", allocated(&path));
    let data: Vec<u8> = (0..len as u32).map(|i| (i % 241) as u8).collect();
    // Past the middle of the second window the rest is reserved ahead of the writes (by the
    // writes alone the file would hold what arrived, 100 MiB).
    let first = 100 << 20;
    s.write_all(&data[..first]).unwrap();
    wait_for("the first 100 MiB", || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == first as u64);
    assert!(allocated(&path) >= len as u64, "{} bytes allocated at {first} written of {len}", allocated(&path));
    s.write_all(&data[first..]).unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body, len.to_string().as_bytes());
    assert!(std::fs::read(&path).unwrap() == data, "the file is the body");
    let held = allocated(&path);
    assert!((len as u64..len as u64 + (1 << 20)).contains(&held), "{held} bytes allocated for {len}");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_body_that_ends_early_gives_back_the_unused_reservation() {
    let dir = temp_dir("reserve-early");
    let done: Done = Default::default();
    let (engine, port) = engine(dir.clone(), done.clone(), false);
    let path = dir.join("part.bin");
    let mut s = connect(port);
    s.write_all(format!("PUT /part.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n").as_bytes()).unwrap();
    wait_for("the reservation", || allocated(&path) >= LEN as u64);
    let sent = 1_000_000usize;
    s.write_all(&vec![7u8; sent]).unwrap();
    wait_for("the bytes sent", || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == sent as u64);
    drop(s);
    wait_for("on_done", || !done.lock().unwrap().is_empty());
    let d = done.lock().unwrap().clone();
    assert_eq!(d, vec![(sent as u64, Some(libc::ECONNRESET))]);
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; sent], "what arrived is kept");
    let held = allocated(&path);
    assert!(held >= sent as u64 && held < sent as u64 + (1 << 20), "{held} bytes still allocated for {sent} written");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn small_and_chunked_bodies_are_not_reserved() {
    let dir = temp_dir("reserve-small");
    let done: Done = Default::default();
    let (engine, port) = engine(dir.clone(), done.clone(), false);
    let mut s = connect(port);
    // Under the threshold: written as it comes; the head alone allocates nothing.
    let small = 512 * 1024;
    s.write_all(format!("PUT /small.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {small}\r\n\r\n").as_bytes()).unwrap();
    wait_for("the file", || dir.join("small.bin").exists());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(allocated(&dir.join("small.bin")), 0);
    s.write_all(&vec![1u8; small]).unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().status, 201);
    // Chunked: no length to reserve.
    s.write_all(b"PUT /chunked.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    wait_for("the file", || dir.join("chunked.bin").exists());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(allocated(&dir.join("chunked.bin")), 0);
    s.write_all(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().status, 201);
    assert_eq!(std::fs::read(dir.join("chunked.bin")).unwrap(), b"hello");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Spooled bodies (unclaimed, over the spool threshold) get the same reservation: one that cannot
/// fit is answered 507 by the engine before it is read, whether or not a head handler saw it.
#[test]
fn an_unclaimed_body_the_spool_cannot_hold_is_answered_507_before_it_is_sent() {
    for with_head_handler in [false, true] {
        let dir = temp_dir(if with_head_handler { "reserve-spool-head" } else { "reserve-spool" });
        let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h2 = handled.clone();
        let config = Config { threads: 1, spool_threshold: Some(1 << 20), spool_dir: dir.clone(), ..Config::default() };
        let handler = Arc::new(move |req: Request| {
            h2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            req.respond(Response::plain(200)).unwrap();
        });
        // A head handler that looks and gives the request back: the body is spooled after it.
        let head: Option<HeadHandler> = with_head_handler.then(|| Arc::new(|req: Request| Some(req)) as HeadHandler);
        let engine = Engine::with_head_handler(config, handler, head).unwrap();
        let port = engine.listen("127.0.0.1:0").unwrap();
        engine.start().unwrap();
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4611686018427387904\r\nExpect: 100-continue\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 507, "head handler {with_head_handler}: the first answer, no 100 Continue");
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut rest);
        assert!(rest.is_empty(), "the connection ends after the answer: {:?}", String::from_utf8_lossy(&rest));
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 0, "the handler never sees it");
        // A body that fits still goes through the spool.
        let mut s = connect(port);
        let data = vec![9u8; 3 << 20];
        s.write_all(format!("PUT /y HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes()).unwrap();
        s.write_all(&data).unwrap();
        assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().status, 200);
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 1);
        engine.shutdown(Duration::ZERO).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
