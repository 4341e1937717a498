//! Pipelined requests beyond the window, answered from other threads, with the client's
//! half-close (found by the connection fuzzer: the server stopped partway and hung).
mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::Response;

#[test]
fn async_answers_beyond_the_window_all_arrive_after_a_half_close() {
    let config = Config { threads: 1, max_pipeline: 4, header_read_timeout: Duration::from_millis(200), ..Config::default() };
    let (engine, port) = start_with(config, |req| {
        let path = req.head().path().to_string();
        if path.starts_with("/drop") {
            drop(req);
            return;
        }
        std::thread::spawn(move || {
            let n: u64 = path.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(0);
            std::thread::sleep(Duration::from_micros((n * 137) % 900));
            let mut r = Response::new(200).unwrap();
            r.add_bytes(path.as_bytes());
            let _ = req.respond(r);
        });
    });
    let rounds: usize = std::env::var("ZH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    for round in 0..rounds {
        let mut s = connect(port);
        let mut all = String::new();
        for i in 0..6 {
            all.push_str(&format!("GET /async{i} HTTP/1.1\r\nHost: a\r\n\r\n"));
        }
        if round % 3 == 0 {
            // A dropped request is answered 500 and ends the connection: last, so all count.
            all.push_str("GET /drop HTTP/1.1\r\nHost: a\r\n\r\n");
        }
        s.write_all(all.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap_or_else(|e| panic!("round {round}: {e} after {:?}", String::from_utf8_lossy(&got)));
        let text = String::from_utf8_lossy(&got);
        let expected = if round % 3 == 0 { 7 } else { 6 };
        assert_eq!(text.matches("HTTP/1.1 ").count(), expected, "round {round}: {text}");
    }
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_half_close_inside_a_body_still_answers_the_complete_requests_before_it() {
    let (engine, port) = start(1, |req| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let mut r = Response::new(200).unwrap();
            r.add_bytes(b"slow");
            let _ = req.respond(r);
        });
    });
    let mut s = connect(port);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("slow"), "{text}");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_dropped_first_request_is_answered_even_with_async_requests_behind_it() {
    use std::sync::mpsc;
    use std::sync::Mutex;
    let config = Config { threads: 1, max_pipeline: 4, header_read_timeout: Duration::from_millis(200), ..Config::default() };
    let (tx, rx) = mpsc::channel::<zerohttp::engine::Request>();
    std::thread::spawn(move || {
        for req in rx {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(b"async");
            let _ = req.respond(r);
        }
    });
    let tx = Mutex::new(tx);
    let (engine, port) = start_with(config, move |req| {
        if req.head().path() == "/drop" {
            drop(req);
        } else {
            let _ = tx.lock().unwrap().send(req);
        }
    });
    let rounds: usize = std::env::var("ZH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    for round in 0..rounds {
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /drop HTTP/1.1\r\nHost: a\r\n\r\nGET /async2 HTTP/1.1\r\nHost: a\r\n\r\nGET /async3 HTTP/1.1\r\nHost: a\r\n\r\nGET /async4 HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap_or_else(|e| panic!("round {round}: {e} after {:?}; {:?}", String::from_utf8_lossy(&got), engine.stats()));
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 500"), "round {round}");
    }
    engine.shutdown(Duration::ZERO).unwrap();
}
