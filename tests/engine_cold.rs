//! A file that is not in the page cache must not stall the worker: its ranges are read in on
//! the disk pool while the same worker keeps answering other requests.
mod common;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use zerohttp::body::FileFd;
use zerohttp::engine::Response;
use zerohttp::transfer::{evict, probe, Residency};

#[test]
fn a_cold_file_is_warmed_off_the_event_loop() {
    let path = std::env::temp_dir().join(format!("zh-cold-{}", std::process::id()));
    let data: Vec<u8> = (0..(96u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
    let f = std::fs::File::open(&path).unwrap();
    evict(f.as_raw_fd()).unwrap();
    let stats = zerohttp::stats::WorkerStats::default();
    assert_eq!(probe(f.as_raw_fd(), 0, 1 << 20, &stats), Residency::Cold, "eviction did not work here");
    drop(f);

    let p2 = path.clone();
    let (engine, port) = start(1, move |req| {
        let mut r = Response::new(200).unwrap();
        if req.head().path() == "/cold" {
            let f = std::fs::File::open(&p2).unwrap();
            r.add_file(FileFd::Owned(OwnedFd::from(f)), 0, None).unwrap();
        } else {
            r.add_bytes(b"Hello, world!");
        }
        req.respond(r).unwrap();
    });
    let download = std::thread::spawn(move || get(port, "/cold"));
    let mut worst = Duration::ZERO;
    let mut s = connect(port);
    let mut buf = Vec::new();
    let t = Instant::now();
    let mut n = 0;
    while !download.is_finished() && t.elapsed() < Duration::from_secs(20) {
        let one = Instant::now();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.body, b"Hello, world!");
        worst = worst.max(one.elapsed());
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let body = download.join().unwrap().body;
    assert!(body == data, "cold file served byte-identical");
    let st = engine.stats();
    assert!(st.cold_offloads >= 1, "{st:?}");
    assert!(st.bytes_sendfile == data.len() as u64 && st.bytes_copy == 0, "{st:?}");
    eprintln!("{n} /hello requests during the cold download, worst {worst:?}, offloads {}", st.cold_offloads);
    assert!(worst < Duration::from_millis(250), "worst /hello latency {worst:?}");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_file(&path).unwrap();
}
