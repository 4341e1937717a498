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

/// `len` bytes that differ from one offset to the next (a misplaced range shows).
fn pattern(len: u32) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect()
}

#[test]
fn a_cold_file_is_warmed_off_the_event_loop() {
    let path = std::env::temp_dir().join(format!("zh-cold-{}", std::process::id()));
    let data = pattern(96 << 20);
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
    let worker = worker_thread_id().expect("the engine's worker thread 'zerohttp-0'");
    let download = std::thread::spawn(move || get(port, "/cold"));
    let sampler = {
        let download_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = download_done.clone();
        (std::thread::spawn(move || sample_states(worker, &done)), download_done)
    };
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
    sampler.1.store(true, std::sync::atomic::Ordering::Release);
    let (samples, disk_waits) = sampler.0.join().unwrap();
    // The worker may be caught in uninterruptible sleep now and then for reasons of its own
    // (reclaim), but not in the disk reads: readahead alone left pages in flight that the
    // worker's sendfile then waited for (15-35% of this test's samples before the pool waited).
    // Up to 1% is allowed: under `make test`, with other test binaries beside it, one sample
    // in 619 (0.16%) was once caught so; the old 0.1% bound then failed on a single sample.
    eprintln!("worker thread: {disk_waits} of {samples} samples waiting in the kernel (D)");
    assert!(samples >= 200, "too few samples of the worker's state: {samples}");
    assert!(disk_waits * 100 <= samples, "the worker waited for the disk in {disk_waits} of {samples} samples");
    assert!(body == data, "cold file served byte-identical");
    let st = engine.stats();
    assert!(st.cold_offloads >= 1, "{st:?}");
    assert!(st.bytes_sendfile == data.len() as u64 && st.bytes_copy == 0, "{st:?}");
    eprintln!("{n} /hello requests during the cold download, worst {worst:?}, offloads {}", st.cold_offloads);
    assert!(worst < Duration::from_millis(250), "worst /hello latency {worst:?}");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// The thread id of this process's engine worker (a new thread names itself once it runs).
fn worker_thread_id() -> Option<String> {
    let find = || {
        std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim() == "zerohttp-0").then(|| t.file_name().to_string_lossy().into_owned())
        })
    };
    (0..200).find_map(|_| find().or_else(|| {
        std::thread::sleep(Duration::from_millis(5));
        None
    }))
}

/// Samples the thread's scheduler state until `done`: (samples, samples in state D).
fn sample_states(tid: String, done: &std::sync::atomic::AtomicBool) -> (u64, u64) {
    let path = format!("/proc/self/task/{tid}/stat");
    let (mut samples, mut waits) = (0u64, 0u64);
    while !done.load(std::sync::atomic::Ordering::Acquire) {
        let Ok(stat) = std::fs::read_to_string(&path) else { break };
        // The state follows the parenthesised name, which may itself contain spaces.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("?");
        samples += 1;
        waits += (state == "D") as u64;
        std::thread::sleep(Duration::from_micros(200));
    }
    (samples, waits)
}

/// A connection that stays whole between requests must not take what it learned about one
/// file's page cache for the next file that gets the same fd number: the first answer's fd is
/// closed when it has left, and the next `open` reuses its number.
#[test]
fn a_reused_fd_number_is_asked_about_again() {
    let dir = temp_dir("fdreuse");
    let (hot, cold) = (dir.join("hot"), dir.join("cold"));
    let hot_data = pattern(8 << 20);
    let cold_data = pattern(2 << 20);
    std::fs::write(&hot, &hot_data).unwrap();
    {
        let mut f = std::fs::File::create(&cold).unwrap();
        f.write_all(&cold_data).unwrap();
        f.sync_all().unwrap();
    }
    let _ = std::fs::read(&hot).unwrap();
    let f = std::fs::File::open(&cold).unwrap();
    evict(f.as_raw_fd()).unwrap();
    let stats = zerohttp::stats::WorkerStats::default();
    assert_eq!(probe(f.as_raw_fd(), 0, 2 << 20, &stats), Residency::Cold, "eviction did not work here");
    drop(f);

    let hot_fd = std::sync::Arc::new(std::sync::Mutex::new(None::<i32>));
    let seen = hot_fd.clone();
    let (engine, port) = start(1, move |req| {
        let mut r = Response::new(200).unwrap();
        let fd = if req.head().path() == "/hot" {
            let fd = OwnedFd::from(std::fs::File::open(&hot).unwrap());
            *seen.lock().unwrap() = Some(fd.as_raw_fd());
            fd
        } else {
            // The number the hot file had, for the cold one: the kernel would pick it anyway
            // when nothing else opened a file meanwhile; dup2 makes it certain.
            let number = seen.lock().unwrap().expect("/hot came first");
            // SAFETY: F_GETFD only asks whether the number is open.
            assert_eq!(unsafe { libc::fcntl(number, libc::F_GETFD) }, -1, "the hot file's fd is closed once its answer left");
            let f = OwnedFd::from(std::fs::File::open(&cold).unwrap());
            if f.as_raw_fd() == number {
                f
            } else {
                // SAFETY: `number` is free (checked above); dup2 makes it a second fd of the cold file.
                assert_eq!(unsafe { libc::dup2(f.as_raw_fd(), number) }, number);
                // SAFETY: `number` was just made by dup2 and nothing else owns it.
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(number) }
            }
        };
        r.add_file(FileFd::Owned(fd), 0, None).unwrap();
        req.respond(r).unwrap();
    });
    let mut s = connect(port);
    let mut buf = Vec::new();
    s.write_all(b"GET /hot HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(read_response(&mut s, &mut buf, false).unwrap().body == hot_data);
    let before = engine.stats().cold_offloads;
    s.write_all(b"GET /cold HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(read_response(&mut s, &mut buf, false).unwrap().body == cold_data);
    let st = engine.stats();
    assert!(st.cold_offloads > before, "the cold file was sent as if its pages were the hot file's: {st:?}");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
