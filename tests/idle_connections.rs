//! Keep-alive connections between requests: the last ones to go idle stay whole, the others
//! take their small form; either way they answer their next request, time out and close the
//! same. More connections than a worker keeps whole (64) make both forms, and the moves
//! between them, happen here.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::{Request, Response};

const CONNECTIONS: usize = 150;

fn echo_path(req: Request) {
    let mut r = Response::new(200).unwrap();
    r.add_bytes(req.head().path().as_bytes());
    req.respond(r).unwrap();
}

/// One keep-alive request on `s`; the answer echoes the path.
fn ask(s: &mut TcpStream, buf: &mut Vec<u8>, path: &str) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(s, buf, false).unwrap_or_else(|| panic!("no answer to {path}"));
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(r.body, path.as_bytes(), "{path}: someone else's answer");
}

fn open_all(port: u16) -> Vec<(TcpStream, Vec<u8>)> {
    (0..CONNECTIONS).map(|_| (connect(port), Vec::new())).collect()
}

/// Every connection sends a request in rounds, in orders that wake the oldest idle ones, the
/// newest ones, and ones in between.
fn rounds(conns: &mut [(TcpStream, Vec<u8>)]) {
    let n = conns.len();
    let orders: [Box<dyn Fn(usize) -> usize>; 4] = [
        Box::new(|i| i),
        Box::new(move |i| n - 1 - i),
        Box::new(move |i| (i * 37) % n),
        Box::new(|i| i),
    ];
    for (round, order) in orders.iter().enumerate() {
        for i in 0..n {
            let c = order(i);
            let (s, buf) = &mut conns[c];
            ask(s, buf, &format!("/c{c}/r{round}"));
        }
    }
}

#[test]
fn more_keep_alive_connections_than_stay_whole_keep_answering() {
    let (engine, port) = start(1, echo_path);
    let mut conns = open_all(port);
    rounds(&mut conns);
    // Several requests on one connection in a row, then back to the others.
    for k in 0..5 {
        let (s, buf) = &mut conns[3];
        ask(s, buf, &format!("/again{k}"));
    }
    rounds(&mut conns);
    let st = engine.stats();
    assert_eq!(st.connections_active as usize, CONNECTIONS, "{st:?}");
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn idle_connections_in_either_form_time_out() {
    let config = Config { threads: 1, idle_timeout: Duration::from_millis(400), ..Config::default() };
    let (engine, port) = start_with(config, echo_path);
    let mut conns = open_all(port);
    rounds(&mut conns);
    let t = Instant::now();
    for (i, (s, _)) in conns.iter_mut().enumerate() {
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "connection {i} was not closed at its idle timeout");
        assert!(rest.is_empty());
    }
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(engine.stats().connections_active, 0);
    engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn shutdown_closes_idle_connections_in_either_form_at_once() {
    let (engine, port) = start(1, echo_path);
    let mut conns = open_all(port);
    rounds(&mut conns);
    let t = Instant::now();
    engine.shutdown(Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "idle connections held the shutdown: {:?}", t.elapsed());
    for (i, (s, _)) in conns.iter_mut().enumerate() {
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "connection {i} still open after shutdown");
    }
}
