//! The engine: worker threads, each with its own mio event loop, connection slab and timers;
//! listeners with `SO_REUSEPORT`; the cross-thread queue that lets any thread respond; and
//! graceful shutdown.
#![forbid(unsafe_code)]

mod conn;
mod disk;
pub mod file_cache;
mod framing;
pub mod hooks;
mod request;
mod response;
mod slots;
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
    hooks: Arc<hooks::Hooks>,
    disk: Option<Arc<disk::DiskPool>>,
    shared: Vec<Arc<WorkerShared>>,
    state: Mutex<State>,
    stopped: Condvar,
    /// External-loop mode (`threads = 0`): the one worker, driven by `step`.
    external: Option<Mutex<Option<Worker>>>,
    /// The epoll fd a host polls in external-loop mode.
    external_fd: i32,
    /// Round robin for adopted connections.
    next_adopt: std::sync::atomic::AtomicUsize,
}

impl Engine {
    /// Creates the workers' event loops (threads start with [`Engine::start`]).
    pub fn new(config: Config, handler: Handler) -> Result<Engine, Error> {
        Self::with_head_handler(config, handler, None)
    }

    /// Like [`Engine::new`], with a handler for request heads that carry a body.
    pub fn with_head_handler(config: Config, handler: Handler, head_handler: Option<HeadHandler>) -> Result<Engine, Error> {
        Self::with_options(config, handler, head_handler, hooks::Hooks::default())
    }

    /// The full constructor: main handler, optional head handler, log and access hooks.
    pub fn with_options(config: Config, handler: Handler, head_handler: Option<HeadHandler>, hooks: hooks::Hooks) -> Result<Engine, Error> {
        config.validate()?;
        let external = config.threads == 0;
        let mut workers = Vec::with_capacity(config.threads.max(1));
        let mut external_fd = -1;
        for _ in 0..config.threads.max(1) {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER)?;
            external_fd = std::os::fd::AsRawFd::as_raw_fd(&poll);
            let shared = WorkerShared::new(waker, file_cache::FileCache::new(config.file_cache_entries, config.file_cache_valid));
            workers.push(WorkerSlot { shared: Arc::new(shared), poll: Some(poll), thread: None });
        }
        let shared = workers.iter().map(|w| w.shared.clone()).collect();
        Ok(Engine {
            external: external.then(|| Mutex::new(None)),
            external_fd: if external { external_fd } else { -1 },
            next_adopt: std::sync::atomic::AtomicUsize::new(0),
            disk: (config.disk_threads > 0).then(|| Arc::new(disk::DiskPool::new(config.disk_threads))),
            config: Arc::new(config),
            handler,
            head_handler,
            hooks: Arc::new(hooks),
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
        for l in &listeners {
            self.set_congestion(std::os::fd::AsRawFd::as_raw_fd(l))?;
        }
        for (slot, l) in state.workers.iter().zip(listeners) {
            let l = mio::net::TcpListener::from_std(l);
            let _ = slot.shared.send(Msg::AddListener(l));
        }
        Ok(bound.port())
    }

    /// Gives a listener the configured congestion control (none configured: nothing to do);
    /// the connections it accepts inherit it.
    fn set_congestion(&self, listener: std::os::fd::RawFd) -> Result<(), Error> {
        let Some(name) = &self.config.tcp_congestion else { return Ok(()) };
        crate::transfer::set_tcp_congestion(listener, name).map_err(Error::Io)
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
                self.hooks.clone(),
            );
            if let Some(ext) = &self.external {
                *ext.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker);
                continue;
            }
            let thread = std::thread::Builder::new().name(format!("zerohttp-{i}")).spawn(move || {
                crate::transfer::block_sigpipe();
                worker.run();
            })?;
            slot.thread = Some(thread);
        }
        state.lifecycle = Lifecycle::Running;
        Ok(())
    }

    /// External-loop mode: the fd to poll for readability (an epoll fd); when it is readable,
    /// or when [`Engine::next_timeout_ms`] has passed, call [`Engine::step`].
    pub fn fd(&self) -> Result<i32, Error> {
        if self.external.is_none() {
            return Err(Error::State("the engine runs its own threads (threads >= 1)"));
        }
        Ok(self.external_fd)
    }

    /// External-loop mode: does all ready work, waiting for events at most `timeout`
    /// (zero: never blocks). Starts the engine on first use. Must always be called from the
    /// same thread; handlers run inside it. Returns false once a shutdown has completed.
    pub fn step(&self, timeout: Duration) -> Result<bool, Error> {
        let Some(ext) = &self.external else {
            return Err(Error::State("step is for external-loop mode (threads = 0)"));
        };
        // From a handler the worker is already borrowed by the step that runs it: refuse
        // rather than wait for ourselves.
        if self.on_worker_thread() {
            return Err(Error::State("step cannot be called from a handler"));
        }
        if let Err(e) = self.start() {
            if self.lock().lifecycle == Lifecycle::Stopped {
                return Ok(false);
            }
            return Err(e);
        }
        let mut guard = ext.lock().unwrap_or_else(|e| e.into_inner());
        let Some(worker) = guard.as_mut() else { return Ok(false) };
        let going = {
            let _owner = worker.shared().own_while_stepping();
            worker.turn(Some(timeout))
        };
        if !going {
            let mut worker = guard.take().expect("checked above");
            worker.finish();
            drop(guard);
            self.mark_stopped();
        }
        Ok(going)
    }

    /// External-loop mode: makes the `step` that is waiting for events return now, or the next
    /// one return without waiting. One `write(2)` to the worker's eventfd: no lock and no
    /// allocation, so a signal handler may call it.
    pub fn wake(&self) -> Result<(), Error> {
        if self.external.is_none() {
            return Err(Error::State("wake is for external-loop mode (threads = 0)"));
        }
        self.shared[0].wake();
        Ok(())
    }

    /// External-loop mode: milliseconds until timers need a `step` (-1: no timer pending).
    pub fn next_timeout_ms(&self) -> i64 {
        match &self.external {
            Some(ext) => ext.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(-1, |w| w.next_timeout_ms()),
            None => -1,
        }
    }

    fn mark_stopped(&self) {
        let mut state = self.lock();
        state.lifecycle = Lifecycle::Stopped;
        if let Some(pool) = &self.disk {
            pool.stop();
        }
        self.stopped.notify_all();
    }

    /// Takes over an already-listening socket (e.g. inherited from a supervisor). Each worker
    /// accepts from its own duplicate of it.
    pub fn listen_fd(&self, fd: std::os::fd::OwnedFd) -> Result<(), Error> {
        crate::transfer::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
        let state = self.lock();
        if matches!(state.lifecycle, Lifecycle::Stopping | Lifecycle::Stopped) {
            return Err(Error::State("the engine is shut down"));
        }
        let listener = std::net::TcpListener::from(fd);
        listener.local_addr().map_err(|_| Error::Invalid("not a listening TCP socket"))?;
        self.set_congestion(std::os::fd::AsRawFd::as_raw_fd(&listener))?;
        for slot in state.workers.iter() {
            let l = mio::net::TcpListener::from_std(listener.try_clone()?);
            let _ = slot.shared.send(Msg::AddListener(l));
        }
        Ok(())
    }

    /// Takes over an already-accepted connection, with `initial` bytes the host already read
    /// from it (e.g. while sniffing the protocol).
    pub fn adopt(&self, fd: std::os::fd::OwnedFd, initial: &[u8]) -> Result<(), Error> {
        crate::transfer::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
        let stream = std::net::TcpStream::from(fd);
        let peer = stream.peer_addr().map_err(|_| Error::Invalid("not a connected TCP socket"))?;
        let state = self.lock();
        if matches!(state.lifecycle, Lifecycle::Stopping | Lifecycle::Stopped) {
            return Err(Error::State("the engine is shut down"));
        }
        let i = self.next_adopt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % state.workers.len();
        let msg = Msg::Adopt { stream: mio::net::TcpStream::from_std(stream), peer, initial: bytes::Bytes::copy_from_slice(initial) };
        state.workers[i].shared.send(msg).map_err(|_| Error::Closed)
    }

    /// Serves a connection over a host-provided transport (TLS terminated by the host, or any
    /// byte stream). Returns the handle the host uses to say the transport is ready again
    /// after it returned `WouldBlock` (call `wake()` on it, from any thread).
    pub fn adopt_transport(&self, transport: Box<dyn crate::transfer::Transport>, peer: SocketAddr) -> Result<crate::body::source::SourceWaker, Error> {
        let waker = crate::body::source::SourceWaker::new();
        self.adopt_transport_with(transport, peer, waker.clone()).map_err(|(e, _)| e)?;
        Ok(waker)
    }

    /// Like [`Engine::adopt_transport`] with the caller's waker; on failure the transport is
    /// given back untouched.
    #[allow(clippy::type_complexity)]
    pub fn adopt_transport_with(
        &self,
        transport: Box<dyn crate::transfer::Transport>,
        peer: SocketAddr,
        waker: crate::body::source::SourceWaker,
    ) -> Result<(), (Error, Box<dyn crate::transfer::Transport>)> {
        let state = self.lock();
        if matches!(state.lifecycle, Lifecycle::Stopping | Lifecycle::Stopped) {
            return Err((Error::State("the engine is shut down"), transport));
        }
        let i = self.next_adopt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % state.workers.len();
        match state.workers[i].shared.send(Msg::AdoptTransport { transport, peer, waker }) {
            Ok(()) => Ok(()),
            Err(Msg::AdoptTransport { transport, .. }) => Err((Error::Closed, transport)),
            Err(_) => unreachable!("the message comes back as sent"),
        }
    }

    /// Starts if needed, then blocks until [`Engine::shutdown`] finishes on another thread.
    pub fn run(&self) -> Result<(), Error> {
        if self.external.is_some() {
            return Err(Error::State("external-loop mode: drive the engine with step"));
        }
        // A handler waiting for the engine to stop would hold up its own worker, and so the
        // shutdown that would end the wait.
        if self.on_worker_thread() {
            return Err(Error::State("run cannot be called from a handler"));
        }
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

    /// Called where the engine is about to be freed. On one of its own handler threads it
    /// cannot be: the worker running this handler (in external-loop mode the step up the
    /// stack) still uses it, and a worker cannot wait for itself. Then every worker is told
    /// to stop now (they finish by themselves), an error is logged, and `false` says the
    /// caller must keep the engine alive; freeing it again from another thread works.
    pub(crate) fn can_be_freed_here(&self) -> bool {
        if !self.on_worker_thread() {
            return true;
        }
        self.tell_workers_to_stop(Duration::ZERO);
        self.hooks.log(hooks::LogLevel::Error, || {
            "engine freed from one of its own handlers (zh_engine_free called from a handler): its workers stop; \
             from C free it again from another thread"
                .to_string()
        });
        false
    }

    /// Sends every worker its shutdown (a worker whose inbox is closed is woken instead).
    fn tell_workers_to_stop(&self, grace: Duration) {
        for shared in &self.shared {
            if shared.send(Msg::Shutdown { grace }).is_err() {
                shared.wake();
            }
        }
    }

    /// Stops accepting, closes idle connections, lets in-flight responses finish for up to
    /// `grace`, then closes everything and waits for the workers to exit.
    pub fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        // A worker thread, or the thread inside an external-loop step: both run handlers.
        if self.on_worker_thread() {
            return Err(Error::State("shutdown cannot be called from a handler"));
        }
        if let Some(ext) = &self.external {
            return self.shutdown_external(ext, grace);
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
        self.tell_workers_to_stop(grace);
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

    /// External-loop mode: drives the loop itself until the in-flight work is done or the
    /// grace period ends.
    fn shutdown_external(&self, ext: &Mutex<Option<Worker>>, grace: Duration) -> Result<(), Error> {
        let mut state = self.lock();
        match state.lifecycle {
            Lifecycle::Stopped => return Ok(()),
            Lifecycle::Created => {
                state.lifecycle = Lifecycle::Stopped;
                drop(state);
                self.mark_stopped();
                return Ok(());
            }
            _ => state.lifecycle = Lifecycle::Stopping,
        }
        drop(state);
        // A step on another thread may be waiting for events: wake it so it returns and
        // releases the worker.
        for shared in &self.shared {
            shared.wake();
        }
        let mut guard = ext.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut worker) = guard.take() {
            let _ = worker.shared().send(Msg::Shutdown { grace });
            // Handlers still run in these turns: as inside a step, they must be refused a
            // nested step or shutdown (the worker's lock is held right here).
            let _owner = worker.shared().own_while_stepping();
            while worker.turn(Some(Duration::from_millis(10))) {}
            worker.finish();
        }
        drop(guard);
        self.mark_stopped();
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
        // Dropped on one of its own handler threads (the handler took it out of shared
        // ownership) the workers cannot be joined from here: they are told to stop and finish
        // by themselves, rather than go on serving with nobody to stop them.
        if self.can_be_freed_here() {
            let _ = self.shutdown(Duration::ZERO);
        }
    }
}
