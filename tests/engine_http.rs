//! End-to-end behaviour of the engine over 127.0.0.1, through the Rust API.
mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Request, Response};

fn text(req: Request, body: &str) {
    let mut r = Response::new(200).unwrap();
    r.add_bytes(body.as_bytes());
    req.respond(r).unwrap();
}

fn pattern_file(len: usize) -> (std::fs::File, Vec<u8>) {
    let path = std::env::temp_dir().join(format!("zh-it-{}-{len}-{:?}", std::process::id(), std::thread::current().id()));
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8 ^ (i >> 12) as u8).collect();
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    f.write_all(&data).unwrap();
    std::fs::remove_file(&path).unwrap();
    (f, data)
}

#[test]
fn pipelined_requests_answered_out_of_order_leave_in_order() {
    let (engine, port) = start(2, |req| {
        let n: u64 = req.head().path()[3..].parse().unwrap();
        if n % 3 == 0 {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20 - n % 20));
                let body = req.head().path().to_string();
                text(req, &body);
            });
        } else {
            let body = req.head().path().to_string();
            text(req, &body);
        }
    });
    let mut s = connect(port);
    let mut all = String::new();
    for i in 0..100 {
        all.push_str(&format!("GET /r/{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    s.write_all(all.as_bytes()).unwrap();
    let mut buf = Vec::new();
    for i in 0..100 {
        let r = read_response(&mut s, &mut buf, false).expect("response");
        assert_eq!(String::from_utf8(r.body).unwrap(), format!("/r/{i}"));
    }
    engine.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn file_region_goes_by_sendfile_and_head_gets_length_only() {
    let (file, data) = pattern_file(3 << 20);
    let file = Arc::new(Mutex::new(Some(file)));
    let f2 = file.clone();
    let (engine, port) = start(1, move |req| {
        let dup = f2.lock().unwrap().as_ref().unwrap().try_clone().unwrap();
        let mut r = Response::new(200).unwrap();
        r.add_bytes(b"<");
        r.add_file(FileFd::Owned(OwnedFd::from(dup)), 5, Some((3 << 20) - 10)).unwrap();
        r.add_bytes(b">");
        req.respond(r).unwrap();
    });
    let resp = get(port, "/f");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), (3 << 20) - 8);
    assert_eq!(resp.body[0], b'<');
    assert_eq!(*resp.body.last().unwrap(), b'>');
    assert!(resp.body[1..resp.body.len() - 1] == data[5..(3 << 20) - 5]);
    let st = engine.stats();
    assert_eq!(st.bytes_sendfile, (3 << 20) - 10);
    assert_eq!(st.bytes_copy, 0);

    let mut s = connect(port);
    s.write_all(b"HEAD /f HTTP/1.1\r\nHost: t\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(head.header("content-length"), Some(((3 << 20) - 8).to_string().as_str()));
    let full = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(full.body.len(), (3 << 20) - 8, "HEAD must not have sent a body");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn request_bodies_content_length_and_chunked() {
    let (engine, port) = start(1, |req| {
        let body = req.body().clone();
        let mut r = Response::new(200).unwrap();
        r.add_memory(body);
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    s.write_all(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world").unwrap();
    s.write_all(b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"hello world");
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"hello world");
    // A body that arrives in pieces.
    s.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n").unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for piece in payload.chunks(7919) {
        s.write_all(piece).unwrap();
    }
    assert!(read_response(&mut s, &mut buf, false).unwrap().body == payload);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let (engine, port) = start(1, |req| text(req, "x"));
    for req in ["GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"] {
        let mut s = connect(port);
        s.write_all(req.as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
        assert!(text.ends_with("\r\n\r\nx"));
    }
    // HTTP/1.0 keep-alive when asked.
    let mut s = connect(port);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("keep-alive"));
    }
    engine.shutdown(Duration::ZERO).unwrap();
}

fn raw_exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = connect(port);
    s.write_all(bytes).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).to_string()
}

#[test]
fn limits_answer_with_the_right_status_and_close() {
    let config = Config { threads: 1, max_body: Some(1000), ..Config::default() };
    let (engine, port) = start_with(config, |req| text(req, "ok"));
    let r = raw_exchange(port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.to_ascii_lowercase().contains("connection: close"));
    let mut chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..30 {
        chunked.extend_from_slice(b"40\r\n");
        chunked.extend_from_slice(&[b'a'; 64]);
        chunked.extend_from_slice(b"\r\n");
    }
    let r = raw_exchange(port, &chunked);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert!(raw_exchange(port, long_line.as_bytes()).starts_with("HTTP/1.1 414"));
    let big_head = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(300));
    assert!(raw_exchange(port, big_head.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"), "missing Host");
    assert!(raw_exchange(port, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n").starts_with("HTTP/1.1 505"));
    let st = engine.stats();
    assert!(st.errors_limit >= 4, "{st:?}");
    assert!(st.errors_parse >= 2, "{st:?}");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn slow_heads_and_idle_connections_time_out() {
    let config = Config {
        threads: 1,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let (engine, port) = start_with(config, |req| text(req, "ok"));
    let t = Instant::now();
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 408"));

    let t = Instant::now();
    let mut s = connect(port);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let waited = t.elapsed();
    assert!(all.is_empty());
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(3), "{waited:?}");
    assert!(engine.stats().errors_timeout >= 1);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn dropped_or_panicking_handlers_answer_500() {
    let (engine, port) = start(1, |req| {
        if req.head().path() == "/panic" {
            panic!("handler panicked on purpose");
        }
        drop(req);
    });
    assert_eq!(get(port, "/drop").status, 500);
    assert_eq!(get(port, "/panic").status, 500);
    assert_eq!(get(port, "/drop").status, 500, "the worker survived");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn graceful_shutdown_finishes_in_flight_and_refuses_late_answers() {
    let held: Arc<Mutex<Vec<Request>>> = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    let (engine, port) = start(1, move |req| {
        if req.head().path() == "/slow" {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                text(req, "slow done");
            });
        } else if req.head().path() == "/never" {
            h2.lock().unwrap().push(req);
        } else {
            text(req, "fast");
        }
    });
    let mut idle = connect(port);
    let mut buf = Vec::new();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_response(&mut idle, &mut buf, false).unwrap();
    let mut slow = connect(port);
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut never = connect(port);
    never.write_all(b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    engine.shutdown(Duration::from_millis(1500)).unwrap();
    let took = t.elapsed();
    let r = read_response(&mut slow, &mut Vec::new(), false).expect("in-flight response finished");
    assert_eq!(r.body, b"slow done");
    assert!(r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")));
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0, "idle connection closed");
    assert!(took >= Duration::from_millis(1400), "waited for /never until the grace ended: {took:?}");
    let req = held.lock().unwrap().pop().unwrap();
    let resp = Response::new(200).unwrap();
    assert!(matches!(req.respond(resp), Err(zerohttp::error::Error::Closed)));
}

#[test]
fn many_connections_across_workers() {
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let (engine, port) = start(2, move |req| {
        c2.fetch_add(1, Ordering::Relaxed);
        text(req, "ok");
    });
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(get(port, "/").body, b"ok");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), 400);
    let st = engine.stats();
    assert_eq!(st.connections_accepted, 400);
    engine.shutdown(Duration::from_millis(500)).unwrap();
    let st = engine.stats();
    assert_eq!(st.connections_active, 0);
    assert_eq!(st.connections_closed, 400);
}

#[test]
fn unknown_expectations_get_417_and_trailers_reach_the_handler() {
    let (engine, port) = start(1, |req| {
        let t = req.trailer(b"x-checksum").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        text(req, &t);
    });
    let r = raw_exchange(port, b"POST / HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\nhi");
    assert!(r.starts_with("HTTP/1.1 417"), "{r}");
    let mut s = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n").unwrap();
    let resp = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(resp.body, b"42");
    // 100-continue: the interim response comes before the body is sent.
    let mut s = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let interim = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"abc").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_send_deadline() {
    let config = Config { threads: 1, send_timeout: Duration::from_millis(400), ..Config::default() };
    let big = bytes::Bytes::from(vec![7u8; 32 << 20]);
    let (engine, port) = start_with(config, move |req| {
        let mut r = Response::new(200).unwrap();
        r.add_memory(big.clone());
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let t = Instant::now();
    while engine.stats().errors_timeout == 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "not dropped");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(engine.stats().connections_active, 0);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_pipelining_client_that_never_reads_cannot_grow_server_memory() {
    let config = Config { threads: 1, send_timeout: Duration::from_secs(30), ..Config::default() };
    let body = bytes::Bytes::from(vec![1u8; 64 << 10]);
    let (engine, port) = start_with(config, move |req| {
        let mut r = Response::new(200).unwrap();
        r.add_memory(body.clone());
        req.respond(r).unwrap();
    });
    let s = connect(port);
    s.set_nonblocking(true).unwrap();
    let one = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    let flood: Vec<u8> = one.iter().copied().cycle().take(one.len() * 200_000).collect();
    let mut written = 0usize;
    let t = Instant::now();
    let mut s = s;
    while t.elapsed() < Duration::from_secs(2) && written < flood.len() {
        match s.write(&flood[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    }
    // The server stopped reading once its window filled: the flood stalls in socket buffers.
    assert!(written < flood.len(), "the server swallowed the whole flood");
    // What was parsed is the window plus what the kernel's socket buffers absorbed; it must
    // stop growing even though the client keeps offering requests.
    let parsed = engine.stats().requests;
    std::thread::sleep(Duration::from_millis(300));
    let _ = s.write(&flood[written..]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(engine.stats().requests, parsed, "still parsing");
    assert!(parsed < 1000, "parsed {parsed} requests while the client read nothing");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_half_closed_client_still_gets_its_response() {
    let (engine, port) = start(1, |req| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            text(req, "late");
        });
    });
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(String::from_utf8_lossy(&all).ends_with("late"));
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn pipelined_bodies_from_a_client_that_never_reads_stay_bounded() {
    let body = bytes::Bytes::from(vec![1u8; 16 << 10]);
    let (engine, port) = start(1, move |req| {
        let mut r = Response::new(200).unwrap();
        r.add_memory(body.clone());
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    s.set_nonblocking(true).unwrap();
    let mut one = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 16384\r\n\r\n".to_vec();
    one.extend_from_slice(&[b'p'; 16384]);
    let t = Instant::now();
    let mut offset = 0usize;
    while t.elapsed() < Duration::from_millis(1500) {
        match s.write(&one[offset..]) {
            Ok(n) => offset = (offset + n) % one.len(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("{e}"),
        }
    }
    let st = engine.stats();
    // The window (32) plus what the kernel buffers absorb; without the bound this reads
    // hundreds of megabytes within a second.
    assert!(st.bytes_received < 32 << 20, "read {} bytes from a client that reads nothing", st.bytes_received);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(engine.stats().bytes_received, st.bytes_received, "still reading");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn connect_is_the_last_request_on_its_connection() {
    let (engine, port) = start(1, |req| text(req, "tunnel?"));
    let r = raw_exchange(port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
    engine.shutdown(Duration::ZERO).unwrap();
}
