//! Requests held by the application while their client leaves: answering them later must
//! release every response (found by capi-tests/t_release_on_disconnect).
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use zerohttp::engine::{Request, Response};

struct Counted(Arc<AtomicUsize>, Vec<u8>);
impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.1
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn responses_to_a_departed_pipelining_client_are_all_released() {
    let held: Arc<Mutex<Vec<Request>>> = Default::default();
    let h2 = held.clone();
    let (engine, port) = start(2, move |req| h2.lock().unwrap().push(req));
    let released = Arc::new(AtomicUsize::new(0));
    let path = std::env::temp_dir().join(format!("zh-held-{}", std::process::id()));
    std::fs::write(&path, vec![b'F'; 4096]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for round in 0..8 {
        let n = [1, 2, 3, 5, 10][round % 5];
        let mut s = connect(port);
        s.write_all("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n).as_bytes()).unwrap();
        let t = Instant::now();
        while held.lock().unwrap().len() < n {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(if round % 2 == 0 { 5 } else { 1000 }));
        let before = released.load(Ordering::SeqCst);
        let reqs: Vec<Request> = held.lock().unwrap().drain(..).collect();
        for (i, req) in reqs.into_iter().enumerate() {
            if i == 1 {
                // The first answer drew a reset from the departed peer; its error event must
                // not wedge the worker before the rest are answered.
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut r = Response::new(200).unwrap();
            r.add_memory(bytes::Bytes::from_owner(Counted(released.clone(), vec![b'L'; 1000])));
            r.add_file(zerohttp::body::FileFd::Owned(std::os::fd::OwnedFd::from(file.try_clone().unwrap())), 0, Some(1000)).unwrap();
            let _ = req.respond(r);
        }
        let t = Instant::now();
        while released.load(Ordering::SeqCst) < before + n {
            assert!(t.elapsed() < Duration::from_secs(3), "round {round} (n={n}): {} of {n} released; {:?}", released.load(Ordering::SeqCst) - before, engine.stats());
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    engine.shutdown(Duration::from_millis(200)).unwrap();
}
