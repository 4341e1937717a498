//! Slowloris: 1,000 connections trickle a request head one byte per ~100 ms each.
//!
//! While they trickle, a normal client must be served within 1 s; then every trickling
//! connection must be closed by the server (408 or plain close) at the header-read deadline,
//! within deadline + 1 s, and counted in `stats().errors_timeout`. Run once with one worker
//! thread and once with two. Each run takes about 3.5 s.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::{Request, Response};

const CONNS: usize = 1000;
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
const TICK: Duration = Duration::from_millis(100);
/// A head far longer than the ~15 bytes a connection sends before its deadline.
const HEAD: &[u8] = b"GET /slowloris HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: slowloris-test\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

/// The two runs hold 2,000+ descriptors each and measure latencies: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ok(req: Request) {
    let mut r = Response::new(200).unwrap();
    r.add_bytes(b"ok");
    req.respond(r).unwrap();
}

/// Makes sure the soft fd limit covers `need` descriptors (raising it up to the hard limit).
fn ensure_fd_limit(need: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; RLIMIT_NOFILE is a valid resource.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur >= need {
        return;
    }
    assert!(lim.rlim_max >= need, "RLIMIT_NOFILE hard limit {} < {need} needed", lim.rlim_max);
    lim.rlim_cur = need;
    // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one is allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

struct Slow {
    sock: TcpStream,
    sent: usize,
    first_byte: Option<Instant>,
    closed: Option<Instant>,
    got_408: bool,
    rbuf: Vec<u8>,
}

impl Slow {
    /// Non-blocking check whether the server has answered or closed; records the close time.
    fn poll_closed(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        let mut tmp = [0u8; 512];
        loop {
            match self.sock.read(&mut tmp) {
                Ok(0) => break self.closed = Some(now),
                Ok(n) => self.rbuf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break self.closed = Some(now), // reset: closed as well
            }
        }
        if self.rbuf.starts_with(b"HTTP/1.1 408") {
            self.got_408 = true;
        }
    }

    /// Writes the next byte of the head; a write error means the server closed the connection.
    fn trickle(&mut self, now: Instant) {
        if self.closed.is_some() || self.sent >= HEAD.len() {
            return;
        }
        match self.sock.write(&HEAD[self.sent..self.sent + 1]) {
            Ok(1) => {
                self.sent += 1;
                self.first_byte.get_or_insert(now);
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => self.closed = Some(now),
        }
    }
}

/// One timed request on a fresh connection: (status, latency).
fn timed_get(port: u16) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /normal HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let resp = read_response(&mut s, &mut Vec::new(), false).expect("normal client got no response");
    (resp.status, t.elapsed())
}

fn slowloris(threads: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    ensure_fd_limit(2 * CONNS as u64 + 512);
    let config = Config { threads, header_read_timeout: HEADER_TIMEOUT, ..Config::default() };
    let (engine, port) = start_with(config, ok);
    let start = Instant::now();

    let mut conns: Vec<Slow> = (0..CONNS)
        .map(|_| {
            let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            sock.set_nodelay(true).unwrap();
            sock.set_nonblocking(true).unwrap();
            Slow { sock, sent: 0, first_byte: None, closed: None, got_408: false, rbuf: Vec::new() }
        })
        .collect();
    let connect_time = start.elapsed();

    // The normal client: a few requests spread over the trickling phase, before any deadline.
    let (tx, rx) = mpsc::channel();
    let base = Instant::now();
    let normal = std::thread::spawn(move || {
        for at_ms in [300u64, 600, 900, 1200] {
            let at = base + Duration::from_millis(at_ms);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let _ = tx.send(timed_get(port));
        }
    });

    // Round robin: one byte per connection per tick, until every connection is closed or the
    // last possible deadline + 1 s has passed.
    let trickle_start = Instant::now();
    let give_up = trickle_start + TICK + HEADER_TIMEOUT + Duration::from_millis(2500);
    let mut ticks = 0u32;
    loop {
        let tick_start = Instant::now();
        for c in conns.iter_mut() {
            let now = Instant::now();
            c.poll_closed(now);
            c.trickle(now);
        }
        ticks += 1;
        if conns.iter().all(|c| c.closed.is_some()) || Instant::now() >= give_up {
            break;
        }
        // Between ticks, poll for closes at a finer grain so close times are accurate.
        while tick_start.elapsed() < TICK {
            std::thread::sleep(Duration::from_millis(10));
            let now = Instant::now();
            for c in conns.iter_mut() {
                c.poll_closed(now);
            }
        }
    }
    let trickle_time = trickle_start.elapsed();
    normal.join().unwrap();
    let normal_results: Vec<(u16, Duration)> = rx.try_iter().collect();

    // The normal client was served promptly while 1,000 connections trickled.
    assert_eq!(normal_results.len(), 4, "normal client requests: {normal_results:?}");
    for (status, latency) in &normal_results {
        assert_eq!(*status, 200);
        assert!(*latency < Duration::from_secs(1), "normal request took {latency:?} under slowloris");
    }

    // Every trickling connection was closed at its header deadline (not before, at most 1 s after).
    let mut too_early = 0;
    let mut too_late = 0;
    let mut still_open = 0;
    let mut with_408 = 0;
    let mut max_after = Duration::ZERO;
    let mut min_after = Duration::MAX;
    let mut max_sent = 0;
    for c in &conns {
        let first = c.first_byte.expect("every connection sent a byte");
        max_sent = max_sent.max(c.sent);
        with_408 += c.got_408 as usize;
        match c.closed {
            None => still_open += 1,
            Some(t) => {
                let after = t.saturating_duration_since(first);
                max_after = max_after.max(after);
                min_after = min_after.min(after);
                if after + Duration::from_millis(50) < HEADER_TIMEOUT {
                    too_early += 1;
                }
                if after > HEADER_TIMEOUT + Duration::from_secs(1) {
                    too_late += 1;
                }
            }
        }
    }
    let st = engine.stats();
    eprintln!(
        "slowloris threads={threads}: connect {connect_time:?}, trickle {trickle_time:?} ({ticks} ticks, \
         <= {max_sent} bytes/conn), normal requests {:?}, closed after first byte: min {min_after:?} \
         max {max_after:?}, 408 seen on {with_408}, errors_timeout {}",
        normal_results.iter().map(|r| r.1).collect::<Vec<_>>(),
        st.errors_timeout
    );
    assert!(max_sent < HEAD.len(), "a head was completed: the trickle is too fast for the test");
    assert_eq!(still_open, 0, "{still_open} trickling connections still open at deadline + 1 s");
    assert_eq!(too_early, 0, "{too_early} connections closed before the header deadline");
    assert_eq!(too_late, 0, "{too_late} connections closed later than deadline + 1 s (max {max_after:?})");
    assert!(st.errors_timeout >= CONNS as u64 - 10, "errors_timeout {} for {CONNS} slow heads", st.errors_timeout);

    // The engine is still healthy afterwards.
    assert_eq!(timed_get(port).0, 200);
    drop(conns);
    engine.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn slowloris_one_worker() {
    slowloris(1);
}

#[test]
fn slowloris_two_workers() {
    slowloris(2);
}
