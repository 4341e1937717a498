//! The engine: worker threads, each with its own mio event loop, connection slab and timers;
//! listeners with `SO_REUSEPORT`; the cross-thread queue that lets any thread respond; and
//! graceful shutdown.
#![forbid(unsafe_code)]

mod conn;
mod disk;
mod framing;
mod request;
mod response;
pub(crate) mod shared;
mod worker;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use request::{BodyClaim, OnBodyData, OnBodyDone, ReadFlow, Request};
pub use response::Response;
pub use shared::Keep;

use crate::config::Config;
use crate::error::Error;
use crate::stats::Snapshot;
use shared::{Msg, WorkerShared};
use worker::{Worker, WAKER};

/// The application's request handler. Runs on the worker thread that owns the connection and
/// must not block; it may keep the request and respond later from any thread.
pub type Handler = Arc<dyn Fn(Request) + Send + Sync>;

/// Runs when a request head with a body is complete, before the body is read. It may claim
/// the body ([`Request::body_to_fd`]) and keep the request, respond at once without reading the
/// body, or give the request back (`Some`) to have the body buffered and the main handler run.
pub type HeadHandler = Arc<dyn Fn(Request) -> Option<Request> + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Created,
    Running,
    Stopping,
    Stopped,
}

struct WorkerSlot {
    shared: Arc<WorkerShared>,
    poll: Option<mio::Poll>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    lifecycle: Lifecycle,
    workers: Vec<WorkerSlot>,
}

/// An HTTP/1.1 server engine. All methods take `&self` and are safe from any thread, except
/// that `shutdown` (and dropping the engine) must not be called from a handler.
pub struct Engine {
    config: Arc<Config>,
    handler: Handler,
    head_handler: Option<HeadHandler>,
    disk: Option<Arc<disk::DiskPool>>,
    shared: Vec<Arc<WorkerShared>>,
    state: Mutex<State>,
    stopped: Condvar,
}

impl Engine {
    /// Creates the workers' event loops (threads start with [`Engine::start`]).
    pub fn new(config: Config, handler: Handler) -> Result<Engine, Error> {
        Self::with_head_handler(config, handler, None)
    }

    /// Like [`Engine::new`], with a handler for request heads that carry a body.
    pub fn with_head_handler(config: Config, handler: Handler, head_handler: Option<HeadHandler>) -> Result<Engine, Error> {
        config.validate()?;
        let mut workers = Vec::with_capacity(config.threads);
        for _ in 0..config.threads {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER)?;
            workers.push(WorkerSlot { shared: Arc::new(WorkerShared::new(waker)), poll: Some(poll), thread: None });
        }
        let shared = workers.iter().map(|w| w.shared.clone()).collect();
        Ok(Engine {
            disk: (config.disk_threads > 0).then(|| Arc::new(disk::DiskPool::new(config.disk_threads))),
            config: Arc::new(config),
            handler,
            head_handler,
            shared,
            state: Mutex::new(State { lifecycle: Lifecycle::Created, workers }),
            stopped: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens on `addr` ("127.0.0.1:0", "[::1]:8080", "localhost:80"): one `SO_REUSEPORT`
    /// socket per worker. Returns the bound port.
    pub fn listen(&self, addr: &str) -> Result<u16, Error> {
        let addr: SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(_) => addr
                .to_socket_addrs()
                .map_err(|_| Error::Addr(addr.to_string()))?
                .next()
                .ok_or_else(|| Error::Addr(addr.to_string()))?,
        };
        let state = self.lock();
        if matches!(state.lifecycle, Lifecycle::Stopping | Lifecycle::Stopped) {
            return Err(Error::State("the engine is shut down"));
        }
        let first = crate::transfer::reuseport_listener(addr, 4096).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::InvalidInput => Error::Addr(format!("{addr}: {e}")),
            _ => Error::Io(e),
        })?;
        let bound = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..state.workers.len() {
            listeners.push(crate::transfer::reuseport_listener(bound, 4096)?);
        }
        for (slot, l) in state.workers.iter().zip(listeners) {
            let l = mio::net::TcpListener::from_std(l);
            let _ = slot.shared.send(Msg::AddListener(l));
        }
        Ok(bound.port())
    }

    /// Starts the worker threads and returns. Calling it again while running is a no-op.
    pub fn start(&self) -> Result<(), Error> {
        let mut state = self.lock();
        match state.lifecycle {
            Lifecycle::Running => return Ok(()),
            Lifecycle::Stopping | Lifecycle::Stopped => return Err(Error::State("the engine is shut down")),
            Lifecycle::Created => {}
        }
        for (i, slot) in state.workers.iter_mut().enumerate() {
            let Some(poll) = slot.poll.take() else { continue };
            let worker = Worker::new(
                poll,
                slot.shared.clone(),
                self.config.clone(),
                self.handler.clone(),
                self.head_handler.clone(),
                self.disk.clone(),
            );
            let thread = std::thread::Builder::new().name(format!("zerohttp-{i}")).spawn(move || {
                crate::transfer::block_sigpipe();
                worker.run();
            })?;
            slot.thread = Some(thread);
        }
        state.lifecycle = Lifecycle::Running;
        Ok(())
    }

    /// Starts if needed, then blocks until [`Engine::shutdown`] finishes on another thread.
    pub fn run(&self) -> Result<(), Error> {
        self.start()?;
        let mut state = self.lock();
        while state.lifecycle != Lifecycle::Stopped {
            state = self.stopped.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn on_worker_thread(&self) -> bool {
        self.shared.iter().any(|s| s.is_owner_thread())
    }

    /// Stops accepting, closes idle connections, lets in-flight responses finish for up to
    /// `grace`, then closes everything and waits for the workers to exit.
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        if self.on_worker_thread() {
            return Err(Error::State("shutdown cannot be called from a handler"));
        }
        let mut state = self.lock();
        match state.lifecycle {
            Lifecycle::Created => {
                state.lifecycle = Lifecycle::Stopped;
                if let Some(pool) = &self.disk {
                    pool.stop();
                }
                for slot in &state.workers {
                    drop(slot.shared.close());
                }
                self.stopped.notify_all();
                return Ok(());
            }
            Lifecycle::Stopped => return Ok(()),
            Lifecycle::Stopping => {
                while state.lifecycle != Lifecycle::Stopped {
                    state = self.stopped.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                return Ok(());
            }
            Lifecycle::Running => {}
        }
        state.lifecycle = Lifecycle::Stopping;
        let threads: Vec<_> = state.workers.iter_mut().filter_map(|w| w.thread.take()).collect();
        for slot in &state.workers {
            if slot.shared.send(Msg::Shutdown { grace }).is_err() {
                slot.shared.wake();
            }
        }
        drop(state);
        for t in threads {
            let _ = t.join();
        }
        if let Some(pool) = &self.disk {
            pool.stop();
        }
        let mut state = self.lock();
        state.lifecycle = Lifecycle::Stopped;
        self.stopped.notify_all();
        Ok(())
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for w in &self.shared {
            w.stats.add_to(&mut s);
        }
        s
    }

    pub fn threads(&self) -> usize {
        self.shared.len()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::ZERO);
    }
}
