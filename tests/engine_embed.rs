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

/// Set in the child process that runs [`external_loop_mode_creates_no_thread_and_serves_from_step`]
/// alone.
const ALONE: &str = "ZH_TEST_EXTERNAL_LOOP_ALONE";

/// Counting this process's threads says whether the engine started one only when no other test
/// runs beside it: the test harness runs this file's tests on parallel threads, and they start
/// engines and client threads of their own (seen failing once under load). So the test runs
/// itself again in a child process, as the only test there.
#[test]
fn external_loop_mode_creates_no_thread_and_serves_from_step() {
    if std::env::var_os(ALONE).is_some() {
        return external_loop_serves_from_step_with_no_thread_of_its_own();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "external_loop_mode_creates_no_thread_and_serves_from_step", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the test alone failed:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    // The child really ran the test (a filter that matched nothing would pass as well).
    assert!(report.contains("1 passed"), "the child ran no test:\n{report}");
}

fn external_loop_serves_from_step_with_no_thread_of_its_own() {
    let before = std::fs::read_dir("/proc/self/task").unwrap().count();
    let engine = Arc::new(hello_engine(0));
    assert!(engine.fd().unwrap() >= 0);
    let port = engine.listen("127.0.0.1:0").unwrap();
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
    // threads start with its first job, and every file here is a memory answer).
    assert!(std::fs::read_dir("/proc/self/task").unwrap().count() <= before);
    assert_eq!(engine.stats().requests, 50);
    // A response from another thread wakes the engine fd and goes out on the next step.
    engine.shutdown(Duration::from_millis(100)).unwrap();
    assert!(!engine.step(Duration::ZERO).unwrap_or(false));
}

/// Whether `fd` is readable right now.
fn readable_now(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd we own, count 1, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

/// An answer given by a handler inside `step` goes out before the step returns, so it must not
/// also wake the engine fd: that would cost the host an eventfd write and an empty step per
/// response. (Before, every answer in external-loop mode woke the fd.)
#[test]
fn answers_given_inside_a_step_leave_the_engine_fd_quiet() {
    let engine = hello_engine(0);
    let fd = engine.fd().unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    let mut client = connect(port);
    client.set_nonblocking(true).unwrap();
    for i in 0..5 {
        client.write_all(format!("GET /q{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
        let t = Instant::now();
        let mut got = Vec::new();
        let want = format!("hello /q{i}");
        while !String::from_utf8_lossy(&got).ends_with(&want) {
            assert!(t.elapsed() < Duration::from_secs(10), "no answer to /q{i}: {:?}", String::from_utf8_lossy(&got));
            assert!(engine.step(Duration::from_millis(10)).unwrap());
            let mut buf = [0u8; 4096];
            match std::io::Read::read(&mut client, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        assert!(!readable_now(fd), "the engine fd is readable after answer {i} went out inside a step");
    }
    assert_eq!(engine.stats().requests, 5);
}

/// A handler runs inside `step`; calling `step` (or `shutdown`) from it must be refused with a
/// state error, not wait forever for the worker its own step holds.
#[test]
fn step_and_shutdown_from_a_handler_are_refused() {
    let me: Arc<std::sync::OnceLock<std::sync::Weak<Engine>>> = Arc::new(std::sync::OnceLock::new());
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (me2, seen2) = (me.clone(), seen.clone());
    let engine = Arc::new(
        Engine::new(
            Config { threads: 0, ..Config::default() },
            Arc::new(move |req| {
                let engine = me2.get().and_then(std::sync::Weak::upgrade).expect("engine set before serving");
                let step = engine.step(Duration::ZERO).map(|_| ()).map_err(|e| e.to_string());
                let shut = engine.shutdown(Duration::ZERO).map_err(|e| e.to_string());
                seen2.lock().unwrap().push(format!("{step:?} {shut:?}"));
                let mut r = Response::new(200).unwrap();
                r.add_bytes(b"ok");
                req.respond(r).unwrap();
            }),
        )
        .unwrap(),
    );
    me.set(Arc::downgrade(&engine)).unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    let client = std::thread::spawn(move || get(port, "/").body);
    let t = Instant::now();
    while !client.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(10), "the handler hung");
        assert!(engine.step(Duration::from_millis(10)).unwrap());
    }
    assert_eq!(client.join().unwrap(), b"ok");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("step cannot be called from a handler"), "{}", seen[0]);
    assert!(seen[0].contains("shutdown cannot be called from a handler"), "{}", seen[0]);
    // Outside the handler both work again.
    assert!(engine.step(Duration::ZERO).unwrap());
    engine.shutdown(Duration::ZERO).unwrap();
}

/// Body callbacks still run while an external-loop engine shuts down gracefully, inside
/// `shutdown`'s own turns; a nested `step` or `shutdown` from them must be refused as from a
/// handler, not wait forever for the worker `shutdown` holds.
#[test]
fn callbacks_inside_an_external_shutdown_are_refused_a_nested_step() {
    use std::sync::{Mutex, OnceLock, Weak};
    use zerohttp::engine::{HeadHandler, ReadFlow, Request};
    let me: Arc<OnceLock<Weak<Engine>>> = Arc::new(OnceLock::new());
    let shutting = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (me2, shutting2, seen2) = (me.clone(), shutting.clone(), seen.clone());
    let head: HeadHandler = Arc::new(move |req: Request| {
        let req = Arc::new(req);
        let (me, shutting, seen) = (me2.clone(), shutting2.clone(), seen2.clone());
        let on_data = Box::new(move |_: &[u8]| {
            if shutting.load(Ordering::SeqCst) {
                let engine = me.get().and_then(Weak::upgrade).expect("the engine outlives its callbacks");
                let step = engine.step(Duration::ZERO).map(|_| ()).map_err(|e| e.to_string());
                let shut = engine.shutdown(Duration::ZERO).map_err(|e| e.to_string());
                seen.lock().unwrap().push(format!("{step:?} {shut:?}"));
            }
            ReadFlow::More
        });
        let r_end = req.clone();
        let on_end = Box::new(move |n: u64, _err: Option<std::io::Error>| {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(n.to_string().as_bytes());
            let _ = r_end.respond_ref(r, None);
        });
        req.body_read(on_data, on_end).unwrap();
        None
    });
    let engine = Arc::new(
        Engine::with_head_handler(Config { threads: 0, ..Config::default() }, Arc::new(|req: Request| req.respond(Response::plain(500)).unwrap()), Some(head))
            .unwrap(),
    );
    me.set(Arc::downgrade(&engine)).unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    let mut client = connect(port);
    client.write_all(b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nfirst").unwrap();
    // Step until the first part of the body has been delivered.
    let t = Instant::now();
    while engine.stats().requests == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the head never arrived");
        assert!(engine.step(Duration::from_millis(10)).unwrap());
    }
    for _ in 0..5 {
        engine.step(Duration::from_millis(10)).unwrap();
    }
    // The rest of the body arrives while `shutdown` drives the loop itself.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        client.write_all(b"-rest").unwrap();
        let mut buf = Vec::new();
        read_response(&mut client, &mut buf, false).unwrap().body
    });
    shutting.store(true, Ordering::SeqCst);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let e2 = engine.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(e2.shutdown(Duration::from_secs(5)));
    });
    let shut = done_rx.recv_timeout(Duration::from_secs(20)).expect("shutdown hung: a callback's nested step waited for the worker");
    shut.unwrap();
    assert_eq!(sender.join().unwrap(), b"10");
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no body callback ran during the shutdown");
    for s in seen.iter() {
        assert!(s.contains("step cannot be called from a handler") && s.contains("shutdown cannot be called from a handler"), "{s}");
    }
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
        start_with_hooks(Config { threads: 1, header_read_timeout: Duration::from_millis(200), ..Config::default() }, hooks, |req| {
            let mut r = Response::new(200).unwrap();
            r.add_bytes(b"x");
            req.respond(r).unwrap();
        })
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

/// A host transport over one end of a socketpair, standing in for TLS done by the host.
struct PairTransport(std::os::unix::net::UnixStream);

impl zerohttp::transfer::Transport for PairTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self.0, buf)
    }
    fn write_vectored(&mut self, bufs: &[&[u8]]) -> std::io::Result<usize> {
        let slices: Vec<std::io::IoSlice<'_>> = bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
        std::io::Write::write_vectored(&mut self.0, &slices)
    }
    fn shutdown_write(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }
}

#[test]
fn a_host_transport_carries_every_chunk_kind_by_copy() {
    let path = std::env::temp_dir().join(format!("zh-transport-{}", std::process::id()));
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let p2 = path.clone();
    let (engine, _port) = start(1, move |req| {
        let mut r = Response::new(200).unwrap();
        if req.head().path() == "/file" {
            let f = std::fs::File::open(&p2).unwrap();
            r.add_file(zerohttp::body::FileFd::Owned(std::os::fd::OwnedFd::from(f)), 0, None).unwrap();
        } else {
            r.add_bytes(format!("over transport {} body {}", req.head().path(), req.body().len()).as_bytes());
        }
        req.respond(r).unwrap();
    });
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let waker = engine.adopt_transport(Box::new(PairTransport(ours)), "10.0.0.1:4433".parse().unwrap()).unwrap();
    // The "host" polls its side and tells the engine when to try again.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let host = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            waker.wake();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut c = theirs;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    let mut buf = Vec::new();
    let read_one = |c: &mut std::os::unix::net::UnixStream, buf: &mut Vec<u8>| -> (String, Vec<u8>) {
        loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..p + 4]).to_string();
                let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ").or(l.strip_prefix("Content-Length: "))).unwrap().trim().parse().unwrap();
                while buf.len() < p + 4 + len {
                    let mut tmp = vec![0u8; 65536];
                    let n = std::io::Read::read(c, &mut tmp).unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&tmp[..n]);
                }
                let body = buf[p + 4..p + 4 + len].to_vec();
                buf.drain(..p + 4 + len);
                return (head, body);
            }
            let mut tmp = vec![0u8; 65536];
            let n = std::io::Read::read(c, &mut tmp).unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    let (_, body) = read_one(&mut c, &mut buf);
    assert_eq!(body, b"over transport /x body 3");
    c.write_all(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (_, body) = read_one(&mut c, &mut buf);
    assert!(body == data);
    stop.store(true, Ordering::SeqCst);
    host.join().unwrap();
    let st = engine.stats();
    assert_eq!(st.bytes_copy, data.len() as u64, "file regions go through the pooled buffer: {st:?}");
    assert_eq!(st.bytes_sendfile, 0);
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_engine_can_be_restarted_in_the_same_process_on_the_same_port() {
    let first = hello_engine(2);
    let port = first.listen("127.0.0.1:0").unwrap();
    first.start().unwrap();
    assert_eq!(get(port, "/a").body, b"hello /a");
    first.shutdown(Duration::from_millis(200)).unwrap();
    assert!(first.start().is_err(), "a shut-down engine does not start again");
    drop(first);
    let second = hello_engine(1);
    assert_eq!(second.listen(&format!("127.0.0.1:{port}")).unwrap(), port);
    second.start().unwrap();
    assert_eq!(get(port, "/b").body, b"hello /b");
    second.shutdown(Duration::ZERO).unwrap();
}

#[test]
fn the_access_record_names_the_small_file_path() {
    use zerohttp::engine::hooks::Hooks;
    let dir = std::env::temp_dir().join(format!("zh-access-strategy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("small"), vec![b's'; 100]).unwrap();
    std::fs::write(dir.join("large"), vec![b'l'; 10_000]).unwrap();
    let strategies = |small_file_read_max: usize| {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let hooks = Hooks {
            log: None,
            access: Some(Arc::new(move |r: &zerohttp::engine::hooks::AccessRecord<'_>| {
                s2.lock().unwrap().push(format!("{} {}", r.target, r.strategy))
            })),
        };
        let d2 = dir.clone();
        let (engine, port) = start_with_hooks(Config { threads: 1, small_file_read_max, ..Config::default() }, hooks, move |req| {
            let f = std::fs::File::open(d2.join(req.head().path().trim_start_matches('/'))).unwrap();
            let mut r = Response::new(200).unwrap();
            r.add_file(zerohttp::body::FileFd::Owned(std::os::fd::OwnedFd::from(f)), 0, None).unwrap();
            req.respond(r).unwrap();
        });
        assert_eq!(get(port, "/small").body.len(), 100);
        assert_eq!(get(port, "/large").body.len(), 10_000);
        let t = Instant::now();
        while seen.lock().unwrap().len() < 2 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        engine.shutdown(Duration::ZERO).unwrap();
        let v = seen.lock().unwrap().clone();
        v
    };
    assert_eq!(strategies(4096), vec!["/small read", "/large sendfile"]);
    assert_eq!(strategies(0), vec!["/small sendfile", "/large sendfile"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `wake` ends a step's wait from another thread, and a wake given before the step makes the
/// step return without waiting: a stop flag set with it is never missed.
#[test]
fn wake_ends_a_steps_wait() {
    let engine = Arc::new(hello_engine(0));
    engine.step(Duration::ZERO).unwrap(); // starts it
    let waker = engine.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        waker.wake().unwrap();
    });
    let started = Instant::now();
    assert!(engine.step(Duration::from_secs(60)).unwrap());
    let waited = started.elapsed();
    t.join().unwrap();
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(30), "step waited {waited:?}");

    engine.wake().unwrap();
    let started = Instant::now();
    assert!(engine.step(Duration::from_secs(60)).unwrap());
    assert!(started.elapsed() < Duration::from_secs(30), "a wake before the step was lost");
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn wake_is_for_external_loop_mode() {
    let engine = hello_engine(1);
    assert!(matches!(engine.wake(), Err(zerohttp::error::Error::State(_))));
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

/// An answer another thread queues while the host is away from the engine (its own loop waits
/// elsewhere, no step runs) carries the time it is sent at in `Date`, not the time of the last
/// step.
#[test]
fn an_answer_queued_between_steps_carries_the_current_date() {
    let held: Arc<std::sync::Mutex<Option<zerohttp::engine::Request>>> = Arc::default();
    let h = held.clone();
    let engine = Engine::new(
        Config { threads: 0, ..Config::default() },
        Arc::new(move |req| *h.lock().unwrap() = Some(req)),
    )
    .unwrap();
    let port = engine.listen("127.0.0.1:0").unwrap();
    let client = std::thread::spawn(move || get(port, "/"));
    let t = Instant::now();
    let req = loop {
        assert!(t.elapsed() < Duration::from_secs(10), "the request never reached the handler");
        engine.step(Duration::from_millis(10)).unwrap();
        if let Some(r) = held.lock().unwrap().take() {
            break r;
        }
    };
    engine.step(Duration::ZERO).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let sent_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut r = Response::new(200).unwrap();
    r.add_bytes(b"late");
    std::thread::spawn(move || req.respond(r).unwrap()).join().unwrap();
    while !client.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(20));
        engine.step(Duration::from_millis(10)).unwrap();
    }
    let resp = client.join().unwrap();
    assert_eq!(resp.body, b"late");
    let date = zerohttp::static_file::date::parse_http_date(resp.header("date").unwrap().as_bytes()).unwrap();
    assert!(date >= sent_at, "Date {date} is older than the answer ({sent_at})");
    engine.shutdown(Duration::ZERO).unwrap();
}
