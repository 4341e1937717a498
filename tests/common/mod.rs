//! Helpers for integration tests: an engine on 127.0.0.1:0 and a tiny blocking HTTP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use zerohttp::config::Config;
use zerohttp::engine::{Engine, Request};

pub fn start(threads: usize, handler: impl Fn(Request) + Send + Sync + 'static) -> (Engine, u16) {
    start_with(Config { threads, ..Config::default() }, handler)
}

pub fn start_with(config: Config, handler: impl Fn(Request) + Send + Sync + 'static) -> (Engine, u16) {
    listen_and_start(Engine::new(config, Arc::new(handler)).expect("engine"))
}

/// An engine with log/access hooks (no head handler).
pub fn start_with_hooks(config: Config, hooks: zerohttp::engine::hooks::Hooks, handler: impl Fn(Request) + Send + Sync + 'static) -> (Engine, u16) {
    listen_and_start(Engine::with_options(config, Arc::new(handler), None, hooks).expect("engine"))
}

fn listen_and_start(engine: Engine) -> (Engine, u16) {
    let port = engine.listen("127.0.0.1:0").expect("listen");
    engine.start().expect("start");
    (engine, port)
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

fn fill_until(s: &mut TcpStream, buf: &mut Vec<u8>, want: impl Fn(&[u8]) -> Option<usize>) -> Option<usize> {
    loop {
        if let Some(p) = want(buf) {
            return Some(p);
        }
        let mut tmp = [0u8; 65536];
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Decodes a chunked body strictly; None if the framing is wrong or the peer closed early.
fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>, trailers: &mut Vec<(String, String)>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = fill_until(s, buf, find_crlf)?;
        let line = String::from_utf8(buf[..eol].to_vec()).ok()?;
        buf.drain(..eol + 2);
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            loop {
                let eol = fill_until(s, buf, find_crlf)?;
                let line = String::from_utf8(buf[..eol].to_vec()).ok()?;
                buf.drain(..eol + 2);
                if line.is_empty() {
                    return Some(body);
                }
                let (n, v) = line.split_once(':')?;
                trailers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        fill_until(s, buf, |b| (b.len() >= size + 2).then_some(0))?;
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return None;
        }
        buf.drain(..size + 2);
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `s`, using `buf` for bytes that belong to later responses.
pub fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Option<Resp> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let mut tmp = [0u8; 65536];
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(a, b)| (a.trim().to_string(), b.trim().to_string())))
        .collect();
    let mut resp = Resp { status, headers, body: Vec::new(), trailers: Vec::new() };
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(resp);
    }
    if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        resp.body = read_chunked(s, buf, &mut resp.trailers)?;
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().ok()?;
        while buf.len() < len {
            let mut tmp = vec![0u8; (len - buf.len()).min(1 << 20)];
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        resp.body = buf.drain(..len).collect();
    } else {
        s.read_to_end(buf).ok()?;
        resp.body = std::mem::take(buf);
    }
    Some(resp)
}

pub fn get(port: u16, path: &str) -> Resp {
    let mut s = connect(port);
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s, &mut Vec::new(), false).expect("response")
}

/// A fresh directory `zh-<tag>-<pid>` under the system temp directory (the test removes it).
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zh-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
