//! Bodies that are not plain memory: streams fed from other threads, pipe and socket fds by
//! splice, framing for unknown lengths.
mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use zerohttp::body::FileFd;
use zerohttp::engine::Response;

#[test]
fn a_stream_fed_from_another_thread_goes_chunked_with_trailers() {
    let (engine, port) = start(1, |req| {
        let mut head = Response::new(200).unwrap();
        head.add_bytes(b"first;");
        let stream = req.respond_stream(head, None).unwrap();
        std::thread::spawn(move || {
            for i in 0..5 {
                std::thread::sleep(Duration::from_millis(10));
                stream.push(zerohttp::body::Chunk::Memory(bytes::Bytes::from(format!("piece{i};")))).unwrap();
            }
            stream
                .end(vec![(http::HeaderName::from_static("x-count"), http::HeaderValue::from_static("5"))])
                .unwrap();
        });
    });
    let mut s = connect(port);
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("a well-framed chunked response");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.body, b"first;piece0;piece1;piece2;piece3;piece4;");
        assert_eq!(r.trailers, vec![("x-count".to_string(), "5".to_string())]);
    }
    // HTTP/1.0 gets the same body close-delimited.
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(String::from_utf8_lossy(&all).ends_with("\r\n\r\nfirst;piece0;piece1;piece2;piece3;piece4;"));
    engine.shutdown(Duration::ZERO).unwrap();
}

/// A pipe made with `pipe2`: `std::io::pipe` needs Rust 1.87 and the crate's MSRV is 1.85.
fn pipe() -> (OwnedFd, std::fs::File) {
    let mut fds = [-1; 2];
    // SAFETY (test): pipe2 writes two new fds into the array we own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY (test): both fds were just created by pipe2 and nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) }
}

fn pipe_with(data: Vec<u8>) -> OwnedFd {
    let (r, mut w) = pipe();
    std::thread::spawn(move || {
        for piece in data.chunks(100_000) {
            w.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    r
}

#[test]
fn pipe_sources_are_spliced_with_known_and_unknown_length() {
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 249) as u8).collect();
    let d2 = data.clone();
    let (engine, port) = start(1, move |req| {
        let mut r = Response::new(200).unwrap();
        let len = if req.head().path() == "/known" { Some(d2.len() as u64) } else { None };
        r.add_fd(FileFd::Owned(pipe_with(d2.clone())), len).unwrap();
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    let mut buf = Vec::new();
    s.write_all(b"GET /known HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.header("content-length"), Some("1500000"));
    assert!(r.body == data);
    s.write_all(b"GET /unknown HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body == data);
    let st = engine.stats();
    assert_eq!(st.bytes_splice, 2 * data.len() as u64, "{st:?}");
    assert_eq!(st.bytes_copy, 0);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_socket_source_is_proxied_through_the_engine_pipe() {
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
    let d2 = data.clone();
    let (engine, port) = start(1, move |req| {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let d3 = d2.clone();
        std::thread::spawn(move || {
            theirs.write_all(&d3).unwrap();
        });
        let mut r = Response::new(200).unwrap();
        r.add_fd(FileFd::Owned(OwnedFd::from(ours)), Some(d2.len() as u64)).unwrap();
        req.respond(r).unwrap();
    });
    let r = get(port, "/");
    assert!(r.body == data);
    let st = engine.stats();
    assert!(st.bytes_splice >= data.len() as u64, "{st:?}");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_pipe_that_ends_early_aborts_the_connection() {
    let (engine, port) = start(1, |req| {
        let mut r = Response::new(200).unwrap();
        r.add_fd(FileFd::Owned(pipe_with(vec![1u8; 1000])), Some(5000)).unwrap();
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("Content-Length: 5000"));
    assert!(all.len() < 5000, "no padding: got {}", all.len());
    assert!(engine.stats().errors_truncated >= 1);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn an_aborted_stream_closes_the_connection_and_a_gone_client_refuses_adds() {
    let held = std::sync::Arc::new(std::sync::Mutex::new(None));
    let h2 = held.clone();
    let (engine, port) = start(1, move |req| {
        let head = Response::new(200).unwrap();
        let stream = req.respond_stream(head, None).unwrap();
        if req.head().path() == "/abort" {
            stream.push(zerohttp::body::Chunk::Memory(bytes::Bytes::from_static(b"partial"))).unwrap();
            stream.abort();
        } else {
            *h2.lock().unwrap() = Some(stream);
        }
    });
    let mut s = connect(port);
    s.write_all(b"GET /abort HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(!String::from_utf8_lossy(&all).contains("0\r\n\r\n"), "an aborted stream must not look complete");

    let mut s = connect(port);
    s.write_all(b"GET /keep HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let t = std::time::Instant::now();
    let stream = loop {
        if let Some(st) = held.lock().unwrap().take() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    };
    let t = std::time::Instant::now();
    while !stream.is_closed() {
        let _ = stream.push(zerohttp::body::Chunk::Memory(bytes::Bytes::from_static(b"x")));
        assert!(t.elapsed() < Duration::from_secs(5), "closed connection not noticed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stream.push(zerohttp::body::Chunk::Memory(bytes::Bytes::from_static(b"x"))).is_err());
    let _ = engine.stats().errors_io;
    engine.shutdown(Duration::ZERO).unwrap();
    let _ = Ordering::Relaxed;
}

#[test]
fn force_copy_sends_the_same_bytes_without_sendfile_or_splice() {
    let config = zerohttp::config::Config { threads: 1, force_copy: true, ..Default::default() };
    let path = std::env::temp_dir().join(format!("zh-fc-{}", std::process::id()));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 233) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let p2 = path.clone();
    let d2 = data.clone();
    let (engine, port) = start_with(config, move |req| {
        let mut r = Response::new(200).unwrap();
        let f = std::fs::File::open(&p2).unwrap();
        r.add_file(FileFd::Owned(OwnedFd::from(f)), 0, None).unwrap();
        r.add_fd(FileFd::Owned(pipe_with(d2.clone())), Some(d2.len() as u64)).unwrap();
        req.respond(r).unwrap();
    });
    let r = get(port, "/");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.body.len(), 2 * data.len());
    assert!(r.body[..data.len()] == data[..] && r.body[data.len()..] == data[..]);
    let st = engine.stats();
    assert_eq!(st.bytes_sendfile + st.bytes_splice, 0, "{st:?}");
    assert_eq!(st.bytes_copy, 2 * data.len() as u64);
    engine.shutdown(Duration::ZERO).unwrap();
}
