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
