//! A small pool of blocking threads that bring cold file ranges into the page cache, so the
//! event loops never wait for the disk.
#![forbid(unsafe_code)]

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct DiskPool {
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl DiskPool {
    pub(crate) fn new(size: usize) -> DiskPool {
        let (tx, rx) = channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = (0..size)
            .filter_map(|i| {
                let rx = rx.clone();
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
            })
            .collect::<Vec<_>>();
        let tx = if threads.is_empty() { None } else { Some(tx) };
        DiskPool { tx: Mutex::new(tx), threads: Mutex::new(threads) }
    }

    /// Runs `job` on a pool thread; gives it back if the pool is gone.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        match self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Lets queued jobs finish, then joins the threads.
    pub(crate) fn stop(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        for t in self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = t.join();
        }
    }
}
