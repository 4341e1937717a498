//! `Config::tcp_congestion`: the engine's listeners, and so the connections they accept, get
//! the configured congestion control instead of the system default.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, Response};
use zerohttp::error::Error;
use zerohttp::transfer::{choosable_tcp_congestion, default_tcp_congestion, tcp_congestion};

/// The tests below count this process's sockets by algorithm; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// An algorithm other than the system default, so "set" cannot pass for "inherited".
fn other_than_default() -> String {
    let default = default_tcp_congestion().unwrap();
    choosable_tcp_congestion()
        .unwrap()
        .into_iter()
        .find(|n| *n != default)
        .unwrap_or_else(|| panic!("this machine offers no congestion control but its default {default}"))
}

/// How many of this process's descriptors are TCP sockets using `name`.
fn sockets_using(name: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&fd| tcp_congestion(fd).is_ok_and(|n| n == name))
        .count()
}

fn hello(req: zerohttp::engine::Request) {
    let mut r = Response::new(200).unwrap();
    r.add_bytes(b"hi");
    req.respond(r).unwrap();
}

#[test]
fn listeners_and_accepted_connections_use_the_configured_algorithm() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = other_than_default();
    let before = sockets_using(&name);
    let (engine, port) = start_with(Config { threads: 2, tcp_congestion: Some(name.clone()), ..Config::default() }, hello);
    // One SO_REUSEPORT listener per worker.
    assert_eq!(sockets_using(&name), before + 2);
    let mut s = connect(port);
    let mut buf = Vec::new();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.body, b"hi");
    // The accepted connection inherited it; our client end kept the system default.
    assert_eq!(sockets_using(&name), before + 3);
    assert_eq!(tcp_congestion(std::os::fd::AsRawFd::as_raw_fd(&s)).unwrap(), default_tcp_congestion().unwrap());
    drop(s);
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn an_adopted_listener_gets_it_too() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = other_than_default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = listener.try_clone().unwrap();
    let engine = Engine::new(Config { threads: 1, tcp_congestion: Some(name.clone()), ..Config::default() }, Arc::new(hello)).unwrap();
    engine.listen_fd(listener.into()).unwrap();
    assert_eq!(tcp_congestion(std::os::fd::AsRawFd::as_raw_fd(&ours)).unwrap(), name);
    engine.start().unwrap();
    let r = get(ours.local_addr().unwrap().port(), "/");
    assert_eq!(r.body, b"hi");
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn without_the_setting_listeners_keep_the_system_default() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = listener.try_clone().unwrap();
    let engine = Engine::new(Config { threads: 1, ..Config::default() }, Arc::new(hello)).unwrap();
    engine.listen_fd(listener.into()).unwrap();
    assert_eq!(tcp_congestion(std::os::fd::AsRawFd::as_raw_fd(&ours)).unwrap(), default_tcp_congestion().unwrap());
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn a_name_the_kernel_does_not_know_fails_listen() {
    let engine = Engine::new(Config { threads: 1, tcp_congestion: Some("no-such-cc".into()), ..Config::default() }, Arc::new(hello)).unwrap();
    match engine.listen("127.0.0.1:0") {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
        other => panic!("expected ENOENT, got {other:?}"),
    }
    engine.shutdown(Duration::from_millis(100)).unwrap();
}

#[test]
fn malformed_names_are_invalid() {
    for bad in ["", "has space", "sixteen-chars-xx", "semi;colon"] {
        let c = Config { tcp_congestion: Some(bad.into()), ..Config::default() };
        assert!(matches!(c.validate(), Err(Error::Invalid(_))), "{bad:?} passed");
    }
    let ok = Config { tcp_congestion: Some("reno".into()), ..Config::default() };
    assert!(ok.validate().is_ok());
}

/// `sendfile` calls per 1 MiB response over one keep-alive connection from an engine whose
/// listener uses `congestion` (None: the system default).
fn sendfile_calls_per_mib(congestion: Option<&str>) -> f64 {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("zh-cc-{}-{}", std::process::id(), congestion.unwrap_or("default")));
    std::fs::write(&path, vec![b'z'; 1 << 20]).unwrap();
    let p = path.clone();
    let config = Config { threads: 1, tcp_congestion: congestion.map(str::to_string), ..Config::default() };
    let (engine, port) = start_with(config, move |req| {
        let mut r = Response::new(200).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        r.add_file(zerohttp::body::FileFd::Owned(std::os::fd::OwnedFd::from(f)), 0, None).unwrap();
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    let mut buf = Vec::new();
    let n = 20;
    for _ in 0..n {
        s.write_all(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.body.len(), 1 << 20);
    }
    let calls = engine.stats().syscalls_sendfile;
    drop(s);
    engine.shutdown(Duration::from_millis(100)).unwrap();
    std::fs::remove_file(&path).unwrap();
    calls as f64 / n as f64
}

#[test]
fn an_unpaced_connection_takes_bigger_sendfile_calls() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // reno never paces: a 1 MiB file may go in one call (more when the socket buffer is full).
    let unpaced = sendfile_calls_per_mib(Some("reno"));
    eprintln!("sendfile calls per 1 MiB response, reno: {unpaced}");
    assert!(unpaced < 4.0, "{unpaced} sendfile calls per 1 MiB response with reno");
    // bbr paces: at most 256 KiB per call, so at least 4 per 1 MiB response.
    if choosable_tcp_congestion().unwrap().iter().any(|n| n == "bbr") {
        let paced = sendfile_calls_per_mib(Some("bbr"));
        eprintln!("sendfile calls per 1 MiB response, bbr: {paced}");
        assert!(paced >= 4.0, "{paced} sendfile calls per 1 MiB response with bbr");
    }
}
