//! Embedding: external-loop mode, adopted connections, inherited listening sockets.
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, Response};

fn hello_engine(threads: usize) -> Engine {
    Engine::new(
        Config { threads, ..Config::default() },
        Arc::new(|req| {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(format!("hello {}", req.head().path()).as_bytes());
            req.respond(r).unwrap();
        }),
    )
    .unwrap()
}

#[test]
fn external_loop_mode_creates_no_thread_and_serves_from_step() {
    let engine = Arc::new(hello_engine(0));
    assert!(engine.fd().unwrap() >= 0);
    let port = engine.listen("127.0.0.1:0").unwrap();
    let before = std::fs::read_dir("/proc/self/task").unwrap().count();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let client = std::thread::spawn(move || {
        let mut s = connect(port);
        let mut buf = Vec::new();
        for i in 0..50 {
            s.write_all(format!("GET /x{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
            assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, format!("hello /x{i}").as_bytes());
        }
        d2.store(true, Ordering::SeqCst);
    });
    let t = Instant::now();
    while !done.load(Ordering::SeqCst) {
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(engine.step(Duration::from_millis(50)).unwrap());
    }
    client.join().unwrap();
    // The client thread is gone again; the engine added none of its own (the disk pool's
    // threads are started with the engine, before `before` was taken).
    assert!(std::fs::read_dir("/proc/self/task").unwrap().count() <= before);
    assert_eq!(engine.stats().requests, 50);
    // A response from another thread wakes the engine fd and goes out on the next step.
    engine.shutdown(Duration::from_millis(100)).unwrap();
    assert!(!engine.step(Duration::ZERO).unwrap_or(false));
}

#[test]
fn answers_from_other_threads_wake_an_external_loop() {
    let engine = Arc::new(
        Engine::new(
            Config { threads: 0, ..Config::default() },
            Arc::new(|req| {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    let mut r = Response::new(200).unwrap();
                    r.add_bytes(b"late");
                    req.respond(r).unwrap();
                });
            }),
        )
        .unwrap(),
    );
    let port = engine.listen("127.0.0.1:0").unwrap();
    let client = std::thread::spawn(move || get(port, "/").body);
    let t = Instant::now();
    while !client.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(10));
        // Long waits: only a wake-up (or I/O) ends them early.
        engine.step(Duration::from_secs(5)).unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(4), "the answer did not wake the loop");
    assert_eq!(client.join().unwrap(), b"late");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn adopted_connections_keep_the_bytes_the_host_read() {
    let (engine, _port) = start(2, |req| {
        let mut r = Response::new(200).unwrap();
        r.add_bytes(format!("adopted {}", req.head().path()).as_bytes());
        req.respond(r).unwrap();
    });
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = host.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /sniffed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(&mut s, &mut Vec::new(), false).unwrap().body
    });
    let (mut conn, _) = host.accept().unwrap();
    let mut first = [0u8; 4];
    std::io::Read::read_exact(&mut conn, &mut first).unwrap();
    assert_eq!(&first, b"GET ");
    engine.adopt(std::os::fd::OwnedFd::from(conn), &first).unwrap();
    assert_eq!(client.join().unwrap(), b"adopted /sniffed");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn an_inherited_listening_socket_is_served_by_every_worker() {
    let engine = hello_engine(2);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    engine.listen_fd(std::os::fd::OwnedFd::from(l)).unwrap();
    engine.start().unwrap();
    for i in 0..20 {
        assert_eq!(get(port, &format!("/i{i}")).body, format!("hello /i{i}").as_bytes());
    }
    engine.shutdown(Duration::ZERO).unwrap();
}

fn echo_taken_connection(taken: Option<(std::os::fd::OwnedFd, bytes::Bytes)>) {
    let (fd, rest) = taken.expect("hand-off happened");
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::from(fd);
        s.set_nonblocking(false).unwrap();
        s.write_all(&rest).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });
}

#[test]
fn a_101_hands_the_connection_over_with_the_bytes_already_read() {
    let (engine, port) = start(1, |req| {
        if req.head().path() == "/ws" {
            let mut r = Response::switching_protocols(Box::new(echo_taken_connection));
            r.add_header(b"Upgrade", b"echo").unwrap();
            req.respond(r).unwrap();
        } else {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(b"plain");
            req.respond(r).unwrap();
        }
    });
    let mut s = connect(port);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nEARLY").unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("connection"), Some("upgrade"));
    assert!(r.header("content-length").is_none());
    let mut got = buf.clone();
    while got.len() < 5 {
        let mut tmp = [0u8; 64];
        let n = std::io::Read::read(&mut s, &mut tmp).unwrap();
        got.extend_from_slice(&tmp[..n]);
    }
    assert_eq!(&got[..5], b"EARLY", "bytes sent right after the request came back through the new owner");
    s.write_all(b"ping").unwrap();
    let mut tmp = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut tmp).unwrap();
    assert_eq!(&tmp, b"ping");
    // An Upgrade request answered normally keeps HTTP going, pipelining included.
    let mut s = connect(port);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"plain");
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().body, b"plain");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_connect_tunnel_is_handed_over_after_its_2xx() {
    let (engine, port) = start(1, |req| {
        let r = Response::new(200).unwrap().tunnel(Box::new(echo_taken_connection));
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    s.write_all(b"CONNECT upstream:443 HTTP/1.1\r\nHost: upstream:443\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), true).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_none() && r.header("transfer-encoding").is_none());
    s.write_all(b"tunnelled").unwrap();
    let mut tmp = [0u8; 9];
    std::io::Read::read_exact(&mut s, &mut tmp).unwrap();
    assert_eq!(&tmp, b"tunnelled");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_hand_off_that_cannot_happen_is_reported() {
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t2 = told.clone();
    let (engine, port) = start(1, move |req| {
        let t3 = t2.clone();
        // A tunnel on a plain GET is not a hand-off: the function hears `None`.
        let r = Response::new(200).unwrap().tunnel(Box::new(move |x| t3.lock().unwrap().push(x.is_some())));
        req.respond(r).unwrap();
    });
    assert_eq!(get(port, "/").status, 200);
    let t = Instant::now();
    while told.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*told.lock().unwrap(), vec![false]);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn access_and_log_hooks_are_per_engine() {
    use zerohttp::engine::hooks::{Hooks, LogLevel};
    let make = |tag: &'static str, sink: Arc<std::sync::Mutex<Vec<String>>>| {
        let s2 = sink.clone();
        let hooks = Hooks {
            log: Some(Arc::new(move |level: LogLevel, msg: &str| s2.lock().unwrap().push(format!("{tag} log {level:?} {msg}")))),
            access: Some(Arc::new(move |r: &zerohttp::engine::hooks::AccessRecord<'_>| {
                sink.lock().unwrap().push(format!("{tag} {} {} {} {} {}", r.method, r.target, r.status, r.strategy, r.bytes > 0))
            })),
        };
        let engine = Engine::with_options(
            Config { threads: 1, header_read_timeout: Duration::from_millis(200), ..Config::default() },
            Arc::new(|req| {
                let mut r = Response::new(200).unwrap();
                r.add_bytes(b"x");
                req.respond(r).unwrap();
            }),
            None,
            hooks,
        )
        .unwrap();
        let port = engine.listen("127.0.0.1:0").unwrap();
        engine.start().unwrap();
        (engine, port)
    };
    let a_log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let b_log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (a, pa) = make("A", a_log.clone());
    let (b, pb) = make("B", b_log.clone());
    get(pa, "/one");
    get(pb, "/two?q=1");
    // A slow head on A: a timeout that A logs.
    let mut s = connect(pa);
    s.write_all(b"GET / HT").unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    let t = Instant::now();
    while a_log.lock().unwrap().len() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let a_lines = a_log.lock().unwrap().clone();
    let b_lines = b_log.lock().unwrap().clone();
    assert!(a_lines.contains(&"A GET /one 200 writev true".to_string()), "{a_lines:?}");
    assert!(a_lines.iter().any(|l| l.starts_with("A log Info") && l.contains("Timeout")), "{a_lines:?}");
    assert_eq!(b_lines, vec!["B GET /two?q=1 200 writev true".to_string()]);
    a.shutdown(Duration::ZERO).unwrap();
    b.shutdown(Duration::ZERO).unwrap();
}
