//! One response per request when a request body turns out malformed or too large after its
//! request was handed out (claimed by the head handler, or given back to be buffered): the
//! engine answers it (400 / 413, then closes) unless the application already did, and the
//! application's later answer is not sent after the engine's.
//!
//! Regressions guarded: a claimed body's error queued the engine's 400/413 *behind* the
//! request's own slot, so the client got the application's answer and then the error status
//! (two responses to one request); for a body given back to be buffered, the request's slot was
//! never filled and the error status waited behind it until the connection timed out.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, HeadHandler, ReadFlow, Request, Response};

/// How long any single expected event may take to show up.
const WAIT: Duration = Duration::from_secs(5);
/// The status the application answers with from `on_end` / `on_done`.
const APP_STATUS: u16 = 299;

struct Harness {
    engine: Engine,
    port: u16,
    /// Per finished claimed body: the errno it ended with (0 = complete).
    ends: Receiver<i32>,
}

/// Head handler: `/read` streams the body, `/fd` writes it into a temporary file (both answer
/// 299 when the body ends, whatever the error); `/early` streams it and answers 413 from the
/// first piece; anything else is given back to be buffered (main handler: 200).
fn harness() -> Harness {
    let (etx, ends) = channel::<i32>();
    let etx = Mutex::new(etx);
    let head: HeadHandler = Arc::new(move |req: Request| {
        let path = req.head().path().to_string();
        if !matches!(path.as_str(), "/read" | "/fd" | "/early") {
            return Some(req);
        }
        let req = Arc::new(req);
        let etx = etx.lock().unwrap().clone();
        let r_end = req.clone();
        let on_end = Box::new(move |_: u64, err: Option<std::io::Error>| {
            let _ = etx.send(err.map_or(0, |e| e.raw_os_error().unwrap_or(-1)));
            let _ = r_end.respond_ref(Response::plain(APP_STATUS), None);
        });
        if path == "/fd" {
            let file = tempfile_in_tmp();
            req.body_to_fd(FileFd::Owned(OwnedFd::from(file)), 0, on_end).unwrap();
        } else {
            let early = path == "/early";
            let r_data = req.clone();
            let on_data = Box::new(move |_: &[u8]| {
                if early {
                    let _ = r_data.respond_ref(Response::plain(413), None);
                }
                ReadFlow::More
            });
            req.body_read(on_data, on_end).unwrap();
        }
        None
    });
    let config = Config { threads: 1, max_body: Some(1000), ..Config::default() };
    let main = Arc::new(|req: Request| {
        let mut r = Response::new(200).unwrap();
        r.add_bytes(req.body().len().to_string().as_bytes());
        req.respond(r).unwrap();
    });
    let engine = Engine::with_head_handler(config, main, Some(head)).unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    engine.start().unwrap();
    Harness { engine, port, ends }
}

fn tempfile_in_tmp() -> std::fs::File {
    let path = std::env::temp_dir().join(format!("zh-cba-{}-{:?}", std::process::id(), std::time::Instant::now()));
    let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

/// Every response status the server sends on `s`, and whether it then closed the connection
/// (rather than going silent).
fn statuses_until_close(s: &mut TcpStream) -> (Vec<u16>, bool) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = Vec::new();
    let mut statuses = Vec::new();
    while let Some(r) = read_response(s, &mut buf, false) {
        statuses.push(r.status);
    }
    // read_response stops at EOF, a reset, or the timeout: only the last means "still open".
    let mut b = [0u8; 1];
    let closed = !matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut);
    (statuses, closed)
}

fn put_chunked(port: u16, path: &str, body: &[u8]) -> TcpStream {
    let mut s = connect(port);
    s.write_all(format!("PUT {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes()).unwrap();
    // The engine may answer and close before all of it is taken.
    let _ = s.write_all(body);
    s
}

/// A 600-byte chunk twice: past the 1000-byte body limit.
fn too_long() -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..2 {
        b.extend_from_slice(b"258\r\n");
        b.extend_from_slice(&[b'x'; 600]);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"0\r\n\r\n");
    b
}

const MALFORMED: &[u8] = b"5\r\nhello\r\nzz\r\n";

#[test]
fn a_claimed_body_that_fails_gets_the_engines_answer_only() {
    let h = harness();
    for path in ["/read", "/fd"] {
        for (body, want, errno) in [(MALFORMED.to_vec(), 400, libc::EPROTO), (too_long(), 413, libc::EMSGSIZE)] {
            let mut s = put_chunked(h.port, path, &body);
            assert_eq!(h.ends.recv_timeout(WAIT), Ok(errno), "{path} {want}");
            // The application answered from on_end too; that answer must not follow the engine's.
            let (statuses, closed) = statuses_until_close(&mut s);
            assert_eq!(statuses, [want], "{path}");
            assert!(closed, "{path} {want}: the connection stayed open");
        }
    }
    h.engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_body_answered_early_then_malformed_gets_no_second_response() {
    let h = harness();
    let mut s = put_chunked(h.port, "/early", b"5\r\nhello\r\n");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = Vec::new();
    let first = read_response(&mut s, &mut buf, false).expect("the early answer");
    assert_eq!(first.status, 413);
    s.write_all(b"zz\r\n").unwrap();
    assert_eq!(h.ends.recv_timeout(WAIT), Ok(libc::EPROTO));
    let (more, closed) = statuses_until_close(&mut s);
    assert!(more.is_empty() && buf.is_empty(), "a second response: {more:?}");
    assert!(closed, "the connection stayed open after a malformed body");
    h.engine.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn a_given_back_body_that_fails_is_answered_at_once() {
    let h = harness();
    for (body, want) in [(MALFORMED.to_vec(), 400), (too_long(), 413)] {
        let mut s = put_chunked(h.port, "/buffered", &body);
        let (statuses, closed) = statuses_until_close(&mut s);
        assert_eq!(statuses, [want]);
        assert!(closed);
    }
    // A good body on the same path still goes to the main handler.
    let mut s = put_chunked(h.port, "/buffered", b"5\r\nhello\r\n0\r\n\r\n");
    let r = read_response(&mut s, &mut Vec::new(), false).expect("a response");
    assert_eq!((r.status, r.body.as_slice()), (200, b"5".as_slice()));
    h.engine.shutdown(Duration::ZERO).unwrap();
}
