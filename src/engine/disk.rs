//! A small pool of blocking threads that bring cold file ranges into the page cache, so the
//! event loops never wait for the disk.
//!
//! The threads start with the first job, not with the engine: a server whose files stay in the
//! page cache never has them, and a one-worker engine stepped from the host's thread stays a
//! single-threaded process. That is worth having: the kernel skips the file reference count on
//! every fd syscall of a process with one thread (measured with bench/peers/floor.c serving
//! 64 KiB files: 0.5 µs less system time per request than with one idle thread beside it).
#![forbid(unsafe_code)]

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct DiskPool {
    size: usize,
    state: Mutex<PoolState>,
}

enum PoolState {
    /// No job yet: no thread either.
    NotStarted,
    Running { tx: Sender<Job>, threads: Vec<JoinHandle<()>> },
    /// Stopped, or no thread could be started: jobs are given back.
    Closed,
}

impl DiskPool {
    /// A pool of at most `size` threads, started by the first `submit`.
    pub(crate) fn new(size: usize) -> DiskPool {
        DiskPool { size, state: Mutex::new(PoolState::NotStarted) }
    }

    /// Runs `job` on a pool thread; gives it back if the pool is stopped or has no thread.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let PoolState::NotStarted = *state {
            *state = spawn(self.size);
        }
        match &*state {
            PoolState::Running { tx, .. } => tx.send(job).map_err(|e| e.0),
            _ => Err(job),
        }
    }

    /// Whether the pool's threads exist (tests: they start with the first job only).
    #[cfg(test)]
    fn started(&self) -> bool {
        matches!(*self.state.lock().unwrap_or_else(|e| e.into_inner()), PoolState::Running { .. })
    }

    /// Lets queued jobs finish, then joins the threads. Later jobs are given back.
    pub(crate) fn stop(&self) {
        let old = std::mem::replace(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()), PoolState::Closed);
        if let PoolState::Running { tx, threads } = old {
            drop(tx);
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

fn spawn(size: usize) -> PoolState {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = (0..size).filter_map(|i| spawn_one(i, rx.clone())).collect::<Vec<_>>();
    if threads.is_empty() {
        return PoolState::Closed;
    }
    PoolState::Running { tx, threads }
}

fn spawn_one(i: usize, rx: Arc<Mutex<Receiver<Job>>>) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("zerohttp-disk-{i}"))
        .spawn(move || {
            crate::transfer::block_sigpipe();
            loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn threads_start_with_the_first_job_and_run_every_job() {
        let pool = DiskPool::new(2);
        assert!(!pool.started(), "a pool that has had no job has no thread");
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        for _ in 0..5 {
            let (done, tx) = (done.clone(), tx.clone());
            assert!(pool.submit(Box::new(move || {
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(());
            }))
            .is_ok());
        }
        assert!(pool.started());
        for _ in 0..5 {
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        }
        pool.stop();
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_stopped_pool_gives_jobs_back_whether_or_not_it_ever_started() {
        let never = DiskPool::new(1);
        never.stop();
        assert!(never.submit(Box::new(|| {})).is_err());
        assert!(!never.started());

        let used = DiskPool::new(1);
        assert!(used.submit(Box::new(|| {})).is_ok());
        used.stop();
        assert!(used.submit(Box::new(|| {})).is_err());
    }
}
