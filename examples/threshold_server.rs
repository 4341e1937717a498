//! Server for `bench/thresholds.sh`: measures the small-response thresholds
//! (`Config::inline_body_max`, `Config::small_file_read_max`).
//!
//! - `GET /m/N`: an N-byte memory body (one `Bytes` slice of a preallocated buffer).
//! - `GET /f/N`: an N-byte file, sent as head + file region (`Response::add_file_checked` with a
//!   descriptor shared across requests, as the open-file cache does for `zh_respond_file_at`).
//!
//! Environment: `ZH_INLINE_BODY_MAX`, `ZH_SMALL_FILE_READ_MAX` (bytes; defaults: the engine's),
//! `ZH_THREADS` (default 1), `ZH_PORT` (default 0 = any), `ZH_FILE_SIZES` (comma-separated,
//! default `512,2048,8192,16384,65536`), `ZH_FILE_DIR` (default the temp dir). Prints
//! `port PORT` once listening, then serves until killed (SIGTERM/SIGINT).
//!
//! `cargo run --release --example threshold_server`

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, Response};

fn env_usize(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}: not a number: {v:?}")))
}

const MEMORY_MAX: usize = 1 << 20;

fn main() {
    let mut config = Config { threads: env_usize("ZH_THREADS").unwrap_or(1), ..Config::default() };
    if let Some(n) = env_usize("ZH_INLINE_BODY_MAX") {
        config.inline_body_max = n;
    }
    if let Some(n) = env_usize("ZH_SMALL_FILE_READ_MAX") {
        config.small_file_read_max = n;
    }
    let sizes: Vec<u64> = std::env::var("ZH_FILE_SIZES")
        .unwrap_or_else(|_| "512,2048,8192,16384,65536".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("ZH_FILE_SIZES: numbers"))
        .collect();
    let dir = std::env::var_os("ZH_FILE_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let data: Vec<u8> = (0..MEMORY_MAX).map(|i| b'a' + (i % 26) as u8).collect();
    let mut files: HashMap<u64, (Arc<OwnedFd>, u64)> = HashMap::new();
    for &n in &sizes {
        let path = dir.join(format!("zh-threshold-{}-{n}", std::process::id()));
        std::fs::write(&path, &data[..n as usize]).expect("write test file");
        let f = std::fs::File::open(&path).expect("open test file");
        std::fs::remove_file(&path).expect("unlink test file");
        files.insert(n, (Arc::new(OwnedFd::from(f)), n));
    }
    let memory = Bytes::from(data);
    eprintln!(
        "threshold_server: inline_body_max={} small_file_read_max={} threads={}",
        config.inline_body_max, config.small_file_read_max, config.threads
    );
    let engine = Engine::new(
        config,
        Arc::new(move |req| {
            let path = req.head().path();
            let (kind, n) = match path.get(1..2).zip(path.get(3..)) {
                Some((k, n)) if path.as_bytes().get(2) == Some(&b'/') => (k, n.parse::<u64>().ok()),
                _ => ("", None),
            };
            let mut r = Response::new(200).expect("status");
            r.add_header(b"Content-Type", b"application/octet-stream").expect("header");
            match (kind, n) {
                ("m", Some(n)) if n as usize <= MEMORY_MAX => r.add_memory(memory.slice(..n as usize)),
                ("f", Some(n)) if files.contains_key(&n) => {
                    let (fd, len) = &files[&n];
                    r.add_file_checked(FileFd::Shared(fd.clone()), 0, *len);
                }
                _ => r = Response::plain(404),
            }
            let _ = req.respond(r);
        }),
    )
    .expect("engine");
    let port = engine.listen(&format!("127.0.0.1:{}", env_usize("ZH_PORT").unwrap_or(0))).expect("listen");
    engine.start().expect("start");
    println!("port {port}");
    use std::io::Write;
    std::io::stdout().flush().ok();
    loop {
        std::thread::park();
    }
}
