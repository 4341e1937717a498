//! Request bodies claimed by a head handler: straight into a file by splice, or buffered for
//! the main handler, or answered without being read.
mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, HeadHandler, Request, Response};

type Done = Arc<Mutex<Vec<Result<u64, String>>>>;

fn upload_engine(dir: std::path::PathBuf, done: Done) -> (Engine, u16) {
    let head: HeadHandler = Arc::new(move |req: Request| {
        match req.head().path() {
            "/reject" => {
                let _ = req.respond(Response::plain(401));
                None
            }
            "/buffer" => Some(req),
            path => {
                let file = std::fs::File::create(dir.join(&path[1..])).unwrap();
                let slot: Arc<Mutex<Option<Request>>> = Arc::new(Mutex::new(None));
                let s2 = slot.clone();
                let d2 = done.clone();
                req.body_to_fd(
                    FileFd::Owned(OwnedFd::from(file)),
                    0,
                    Box::new(move |n, err| {
                        let r: Result<u64, String> = match err {
                            None => Ok(n),
                            Some(e) => Err(format!("{e} after {n} bytes")),
                        };
                        d2.lock().unwrap().push(r.clone());
                        if let Some(req) = s2.lock().unwrap().take() {
                            let mut resp = Response::new(if r.is_ok() { 201 } else { 500 }).unwrap();
                            resp.add_bytes(format!("{}", r.map(|n| n as i64).unwrap_or(-1)).as_bytes());
                            let _ = req.respond(resp);
                        }
                    }),
                )
                .unwrap();
                *slot.lock().unwrap() = Some(req);
                None
            }
        }
    });
    let engine = Engine::with_head_handler(
        Config { threads: 1, ..Config::default() },
        Arc::new(|req: Request| {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(format!("main handler got {} bytes", req.body().len()).as_bytes());
            req.respond(r).unwrap();
        }),
        Some(head),
    )
    .unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    engine.start().unwrap();
    (engine, port)
}

#[test]
fn a_content_length_upload_goes_into_the_file_by_splice() {
    let dir = temp_dir("up-cl");
    let done: Done = Default::default();
    let (engine, port) = upload_engine(dir.clone(), done.clone());
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = connect(port);
    s.write_all(format!("PUT /big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes()).unwrap();
    for piece in data.chunks(64 * 1024) {
        s.write_all(piece).unwrap();
    }
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body, data.len().to_string().as_bytes());
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
    let st = engine.stats();
    assert!(st.body_bytes_spliced > 4_000_000, "{st:?}");
    assert_eq!(st.body_bytes_spliced + st.body_bytes_copied, data.len() as u64);
    // The connection stays usable.
    s.write_all(b"PUT /buffer HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"main handler got 3 bytes");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_chunked_upload_keeps_only_the_payload() {
    let dir = temp_dir("up-ch");
    let done: Done = Default::default();
    let (engine, port) = upload_engine(dir.clone(), done.clone());
    let mut s = connect(port);
    s.write_all(b"PUT /c.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(std::fs::read(dir.join("c.txt")).unwrap(), b"hello world");
    // Big chunks: the framing is parsed here, the payload runs go by splice.
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 239) as u8).collect();
    let before = engine.stats();
    s.write_all(b"PUT /big-chunked.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for piece in data.chunks(1 << 20) {
        s.write_all(format!("{:x};note=\"x\"\r\n", piece.len()).as_bytes()).unwrap();
        for part in piece.chunks(100_000) {
            s.write_all(part).unwrap();
        }
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\nX-Done: yes\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body, data.len().to_string().as_bytes());
    assert!(std::fs::read(dir.join("big-chunked.bin")).unwrap() == data);
    let after = engine.stats();
    let spliced = after.body_bytes_spliced - before.body_bytes_spliced;
    let copied = after.body_bytes_copied - before.body_bytes_copied;
    assert_eq!(spliced + copied, data.len() as u64);
    assert!(spliced > data.len() as u64 / 2, "spliced {spliced}, copied {copied}");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unwanted_bodies_are_drained_and_expectations_not_met_get_no_continue() {
    let dir = temp_dir("up-rej");
    let (engine, port) = upload_engine(dir.clone(), Default::default());
    let mut s = connect(port);
    let mut buf = Vec::new();
    s.write_all(b"PUT /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 401);
    s.write_all(b"PUT /buffer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"main handler got 2 bytes", "drained, still in sync");
    // A client that waits for 100 Continue gets the 401 straight away, not a 100.
    let mut s = connect(port);
    s.write_all(b"PUT /reject HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 401);
    // ... while a claimed body does get it.
    let mut s = connect(port);
    s.write_all(b"PUT /e.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 100);
    s.write_all(b"abcd").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 201);
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_client_that_aborts_an_upload_is_reported_once() {
    let dir = temp_dir("up-ab");
    let done: Done = Default::default();
    let (engine, port) = upload_engine(dir.clone(), done.clone());
    let mut s = connect(port);
    s.write_all(b"PUT /partial.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n").unwrap();
    s.write_all(&[9u8; 300_000]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let t = std::time::Instant::now();
    while done.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "on_done never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let d = done.lock().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].as_ref().is_err_and(|e| e.ends_with("after 300000 bytes")), "{d:?}");
    drop(d);
    let mut rest = Vec::new();
    let _ = std::fs::File::open(dir.join("partial.bin")).unwrap().read_to_end(&mut rest);
    assert_eq!(rest.len(), 300_000, "what arrived is kept");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_streamed_body_arrives_in_order_with_backpressure() {
    use zerohttp::engine::ReadFlow;
    let got: Arc<Mutex<Vec<u8>>> = Default::default();
    let pauses = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g2, p2) = (got.clone(), pauses.clone());
    let head: HeadHandler = Arc::new(move |req: Request| {
        let req = Arc::new(req);
        let (g3, p3) = (g2.clone(), p2.clone());
        let r2 = req.clone();
        let r3 = req.clone();
        req.body_read(
            Box::new(move |data: &[u8]| {
                let mut g = g3.lock().unwrap();
                let before = g.len();
                g.extend_from_slice(data);
                // Pause at every MiB boundary and resume from another thread a bit later.
                if before >> 20 != g.len() >> 20 {
                    p3.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let r = r2.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(20));
                        r.body_resume();
                    });
                    return ReadFlow::Pause;
                }
                ReadFlow::More
            }),
            Box::new(move |n, err| {
                let mut resp = Response::new(200).unwrap();
                resp.add_bytes(format!("{}", if err.is_none() { n as i64 } else { -1 }).as_bytes());
                let _ = r3.respond_ref(resp, None);
            }),
        )
        .unwrap();
        // The closures keep the request alive; it is answered from on_end.
        None
    });
    let engine = Engine::with_head_handler(
        Config { threads: 1, ..Config::default() },
        Arc::new(|req: Request| req.respond(Response::plain(500)).unwrap()),
        Some(head),
    )
    .unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    engine.start().unwrap();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 247) as u8).collect();
    let mut s = connect(port);
    s.write_all(format!("POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes()).unwrap();
    s.write_all(&data).unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body, data.len().to_string().as_bytes());
    assert!(*got.lock().unwrap() == data);
    assert!(pauses.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    // Chunked, same path.
    got.lock().unwrap().clear();
    s.write_all(b"POST /s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for piece in data.chunks(300_000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body, data.len().to_string().as_bytes());
    assert!(*got.lock().unwrap() == data);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn large_unclaimed_bodies_are_spooled_and_moved_by_copy_file_range() {
    let dir = temp_dir("up-spool");
    let d2 = dir.clone();
    let config = Config { threads: 1, spool_threshold: Some(64 * 1024), spool_dir: dir.clone(), ..Config::default() };
    let (engine, port) = start_with(config, move |req| {
        let (len, spooled) = match req.body_spooled() {
            Some((_, n)) => (n, true),
            None => (req.body().len() as u64, false),
        };
        let out = std::fs::File::create(d2.join("moved.bin")).unwrap();
        let copied = req.body_copy_to_fd(std::os::fd::AsRawFd::as_raw_fd(&out), 0).unwrap();
        assert_eq!(copied, len);
        let mut r = Response::new(200).unwrap();
        r.add_bytes(format!("{len} {spooled}").as_bytes());
        req.respond(r).unwrap();
    });
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut s = connect(port);
    let mut buf = Vec::new();
    s.write_all(format!("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes()).unwrap();
    s.write_all(&data).unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, format!("{} true", data.len()).as_bytes());
    assert!(std::fs::read(dir.join("moved.bin")).unwrap() == data);
    // Chunked: starts in memory, moves to the spool file once past the threshold.
    s.write_all(b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for piece in data.chunks(50_000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, format!("{} true", data.len()).as_bytes());
    assert!(std::fs::read(dir.join("moved.bin")).unwrap() == data);
    // Small bodies stay in memory.
    s.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nsmall").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"5 false");
    let st = engine.stats();
    assert!(st.body_bytes_spliced > 2_000_000, "{st:?}");
    assert!(st.bytes_copy_file_range >= 2 * data.len() as u64, "{st:?}");
    // O_TMPFILE: nothing left in the spool directory but our own output.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("moved.bin")]);
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn force_copy_uploads_go_by_recv_and_pwrite() {
    let dir = temp_dir("up-fcopy");
    let d2 = dir.clone();
    let head: HeadHandler = Arc::new(move |req: Request| {
        let file = std::fs::File::create(d2.join("f.bin")).unwrap();
        let slot: Arc<Mutex<Option<Request>>> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        req.body_to_fd(
            FileFd::Owned(OwnedFd::from(file)),
            0,
            Box::new(move |n, err| {
                assert!(err.is_none());
                let mut r = Response::new(201).unwrap();
                r.add_bytes(n.to_string().as_bytes());
                let _ = s2.lock().unwrap().take().unwrap().respond(r);
            }),
        )
        .unwrap();
        *slot.lock().unwrap() = Some(req);
        None
    });
    let engine = Engine::with_head_handler(Config { threads: 1, force_copy: true, ..Config::default() }, Arc::new(|r: Request| drop(r)), Some(head)).unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    engine.start().unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 211) as u8).collect();
    let mut s = connect(port);
    s.write_all(format!("PUT /f HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes()).unwrap();
    s.write_all(&data).unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new(), false).unwrap().status, 201);
    assert!(std::fs::read(dir.join("f.bin")).unwrap() == data);
    let st = engine.stats();
    assert_eq!((st.body_bytes_spliced, st.body_bytes_copied), (0, data.len() as u64));
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
