mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use zerohttp::engine::Response;

#[test]
fn hello_and_keepalive() {
    let (engine, port) = start(2, |req| {
        let mut r = Response::new(200).unwrap();
        r.add_header(b"Content-Type", b"text/plain").unwrap();
        r.add_bytes(format!("hello {}", req.head().path()).as_bytes());
        req.respond(r).unwrap();
    });
    let resp = get(port, "/x");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello /x");
    assert!(resp.header("date").is_some());
    let mut s = connect(port);
    let mut buf = Vec::new();
    for i in 0..100 {
        write!(s, "GET /k{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.body, format!("hello /k{i}").as_bytes());
    }
    let st = engine.stats();
    assert_eq!(st.requests, 101);
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn timing_probe() {
    let (engine, port) = start(1, |req| {
        let mut r = Response::new(200).unwrap();
        r.add_bytes(b"ok");
        req.respond(r).unwrap();
    });
    let t = std::time::Instant::now();
    let _ = get(port, "/x");
    eprintln!("get: {:?}", t.elapsed());
    let mut s = connect(port);
    let mut buf = Vec::new();
    let t = std::time::Instant::now();
    for i in 0..10 {
        write!(s, "GET /k{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(&mut s, &mut buf, false).unwrap();
    }
    eprintln!("10 keepalive: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    engine.shutdown(Duration::from_millis(100)).unwrap();
    eprintln!("shutdown: {:?}", t.elapsed());
}
