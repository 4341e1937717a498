//! The part of a worker that other threads may touch: its message queue, the waker that
//! interrupts its poll, and its counters.
#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::Cell;
use std::sync::Mutex;

use crate::engine::file_cache::FileCache;
use crate::engine::response::Response;
use crate::stats::WorkerStats;

/// Something the application handed back with a response that must live until the response
/// has left (the C API uses it to keep a request handle valid for double-use detection).
pub type Keep = Box<dyn Any + Send>;

thread_local! {
    /// The address of the `WorkerShared` whose worker runs on this thread (0: none). Asking a
    /// thread-local costs a few instructions; `std::thread::current()` clones an `Arc` twice
    /// per answer. A worker thread owns one worker for its whole life and ends with it, so an
    /// address cannot be taken for another worker's while this thread still runs.
    static OWNED: Cell<usize> = const { Cell::new(0) };
}

/// Ends a thread's ownership of a worker at the end of an external-loop step.
pub(crate) struct StepOwner {
    before: usize,
}

impl Drop for StepOwner {
    fn drop(&mut self) {
        OWNED.with(|o| o.set(self.before));
    }
}

/// Work for a worker, sent from any thread.
pub(crate) enum Msg {
    Respond { token: usize, conn_id: u64, seq: u64, resp: Response, keep: Option<Keep> },
    /// The application wants more of a paused streaming body read.
    ResumeBody { token: usize, conn_id: u64 },
    /// A body source of this connection has more to send.
    Wake { token: usize, conn_id: u64 },
    /// The disk pool has read `[offset, end)` of `fd` into the page cache for this connection.
    DiskDone { token: usize, conn_id: u64, fd: i32, offset: u64, end: u64 },
    AddListener(mio::net::TcpListener),
    /// A connection over a host-provided transport, and the waker the host uses for it.
    AdoptTransport { transport: Box<dyn crate::transfer::Transport>, peer: std::net::SocketAddr, waker: crate::body::source::SourceWaker },
    /// The host says a transport is ready (readable and/or writable) again.
    TransportReady { token: usize, conn_id: u64 },
    /// A connection the host accepted itself, with bytes it already read.
    Adopt { stream: mio::net::TcpStream, peer: std::net::SocketAddr, initial: bytes::Bytes },
    Shutdown { grace: std::time::Duration },
}

struct Queue {
    msgs: Vec<Msg>,
    /// The worker has exited; nothing will ever read the queue again.
    dead: bool,
}

pub(crate) struct WorkerShared {
    queue: Mutex<Queue>,
    waker: mio::Waker,
    pub(crate) stats: WorkerStats,
    /// Open files for `respond_file_at` (locked by whichever thread answers; normally the
    /// worker's own, so uncontended).
    pub(crate) files: Mutex<FileCache>,
}

impl WorkerShared {
    pub(crate) fn new(waker: mio::Waker, files: FileCache) -> Self {
        WorkerShared {
            files: Mutex::new(files),
            queue: Mutex::new(Queue { msgs: Vec::new(), dead: false }),
            waker,
            stats: WorkerStats::default(),
        }
    }

    /// Called by the worker thread itself, once, before its loop.
    pub(crate) fn set_owner(&self) {
        OWNED.with(|o| o.set(self.addr()));
    }

    /// External-loop mode: the stepping thread owns the worker for the length of one step
    /// (answers given inside it are drained before the step returns, so they need no wake-up);
    /// outside a step every answer wakes the host's poll. The guard puts back what was there.
    pub(crate) fn own_while_stepping(&self) -> StepOwner {
        StepOwner { before: OWNED.with(|o| o.replace(self.addr())) }
    }

    pub(crate) fn is_owner_thread(&self) -> bool {
        OWNED.with(Cell::get) == self.addr()
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Queues a message; gives it back if the worker has exited.
    pub(crate) fn send(&self, msg: Msg) -> Result<(), Msg> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.dead {
            return Err(msg);
        }
        let was_empty = q.msgs.is_empty();
        q.msgs.push(msg);
        drop(q);
        // The owning worker drains its queue after every handler call and every loop turn, so
        // it needs no wake-up; another thread wakes it once per batch.
        if was_empty && !self.is_owner_thread() {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// Takes every queued message (into `into`, to reuse its allocation).
    pub(crate) fn take(&self, into: &mut Vec<Msg>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut q.msgs, into);
    }

    /// Marks the worker gone and returns what was still queued, for dropping outside the lock.
    pub(crate) fn close(&self) -> Vec<Msg> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.dead = true;
        std::mem::take(&mut q.msgs)
    }

    pub(crate) fn file_cache(&self) -> std::sync::MutexGuard<'_, FileCache> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}
