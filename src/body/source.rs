//! Bodies produced over time: a [`Source`] yields chunks on demand (a C callback, a stream fed
//! from other threads), may say "nothing yet" and wake the connection later through its
//! [`SourceWaker`].
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue};

use super::Chunk;

/// Trailer fields sent after a chunked body.
pub type Trailers = Vec<(HeaderName, HeaderValue)>;

/// What a source has next.
pub enum SourcePoll {
    /// The next piece of the body (never empty).
    Chunk(Chunk),
    /// Nothing yet; the source's waker fires when there is.
    Pending,
    /// The body is complete; trailers go out if the response is chunked.
    End(Trailers),
    /// The producer failed: the connection is aborted (never a truncated "success").
    Failed(&'static str),
}

/// A body producer. `poll` runs on the worker thread that owns the connection.
pub trait Source: Send {
    /// The total length, when known before the first byte.
    fn len(&self) -> Option<u64>;
    /// The next piece. `room` is how many bytes the connection would take right now (a hint
    /// for sizing copies, not a limit on file regions).
    fn poll(&mut self, room: usize) -> SourcePoll;
    /// Wakes the connection when a `Pending` source has more.
    fn waker(&self) -> &SourceWaker;
}

type WakeFn = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct WakeSlot {
    target: Mutex<Option<WakeFn>>,
    /// A wake that came before the source was attached to a connection.
    early: AtomicBool,
}

/// A thread-safe handle that reschedules the connection sending a source. Wakes before the
/// source is attached are remembered; wakes after it is detached are ignored.
#[derive(Clone, Default)]
pub struct SourceWaker {
    slot: Arc<WakeSlot>,
}

impl SourceWaker {
    pub fn new() -> Self {
        SourceWaker::default()
    }

    /// Asks the owning worker to poll the source again. Callable from any thread.
    pub fn wake(&self) {
        let target = self.slot.target.lock().unwrap_or_else(|e| e.into_inner());
        match target.as_ref() {
            Some(f) => f(),
            None => self.slot.early.store(true, Ordering::Release),
        }
    }

    /// Connects the waker to a connection (engine side).
    pub fn attach(&self, f: WakeFn) {
        *self.slot.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Disconnects it (the source is done or its connection is gone).
    pub fn detach(&self) {
        *self.slot.target.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a wake arrived before attachment (clears the flag).
    pub fn take_early(&self) -> bool {
        self.slot.early.swap(false, Ordering::AcqRel)
    }
}

impl std::fmt::Debug for SourceWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceWaker")
    }
}

/// Called when a stream's queue drains below its low-water mark.
pub type DrainFn = Box<dyn FnMut() + Send>;

struct StreamState {
    chunks: std::collections::VecDeque<Chunk>,
    queued: u64,
    ended: Option<Trailers>,
    /// `end` was called (stays set after the connection took the trailers).
    finished: bool,
    failed: bool,
    /// The connection is gone: adds are refused.
    closed: bool,
    low_mark: u64,
    on_drain: Option<DrainFn>,
    above_mark: bool,
}

/// The producer's side of a streaming response: chunks of any kind added over time from any
/// thread, with the queued byte count for backpressure.
#[derive(Clone)]
pub struct StreamHandle {
    state: Arc<Mutex<StreamState>>,
    waker: SourceWaker,
}

/// Why a stream refused a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The connection is gone.
    Closed,
    /// `end` or `abort` was already called.
    Ended,
}

impl StreamHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a chunk (memory, file region, pipe/socket fd) and wakes the connection.
    pub fn push(&self, chunk: Chunk) -> Result<(), (StreamError, Chunk)> {
        let mut slot = Some(chunk);
        match self.push_with(|| slot.take().expect("called once")) {
            Ok(()) => Ok(()),
            Err(e) => Err((e, slot.take().expect("not taken on error"))),
        }
    }

    /// Like [`StreamHandle::push`], but the chunk is only made (by `make`) once the stream is
    /// known to accept it, so a refused add takes nothing.
    pub fn push_with(&self, make: impl FnOnce() -> Chunk) -> Result<(), StreamError> {
        let mut s = self.lock();
        if s.closed {
            return Err(StreamError::Closed);
        }
        if s.finished || s.failed {
            return Err(StreamError::Ended);
        }
        let chunk = make();
        let n = chunk.remaining();
        if n == 0 && chunk.len_known() {
            // Released outside the lock: a release callback may call back into the stream.
            drop(s);
            drop(chunk);
            return Ok(());
        }
        s.queued += n;
        if s.queued >= s.low_mark {
            s.above_mark = true;
        }
        s.chunks.push_back(chunk);
        drop(s);
        self.waker.wake();
        Ok(())
    }

    /// Completes the body (with trailers for a chunked response).
    pub fn end(&self, trailers: Trailers) -> Result<(), StreamError> {
        let mut s = self.lock();
        if s.finished || s.failed {
            return Err(StreamError::Ended);
        }
        s.ended = Some(trailers);
        s.finished = true;
        let closed = s.closed;
        drop(s);
        self.waker.wake();
        if closed { Err(StreamError::Closed) } else { Ok(()) }
    }

    /// Aborts the response: the connection is closed without completing the body.
    pub fn abort(&self) {
        let mut s = self.lock();
        s.failed = true;
        let dropped = std::mem::take(&mut s.chunks);
        drop(s);
        // Released outside the lock: a release callback may call back into the stream.
        drop(dropped);
        self.waker.wake();
    }

    /// Bytes queued and not yet taken by the connection.
    pub fn queued(&self) -> u64 {
        self.lock().queued
    }

    /// Whether the connection that sends this stream is gone.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Calls `f` (on the worker thread) whenever the queue drains below `low_mark` bytes after
    /// having been at or above it.
    pub fn on_drain(&self, low_mark: u64, f: DrainFn) {
        let mut s = self.lock();
        s.low_mark = low_mark;
        s.above_mark = s.queued >= low_mark;
        s.on_drain = Some(f);
    }
}

/// The connection's side of a stream.
pub struct StreamSource {
    handle: StreamHandle,
    len: Option<u64>,
}

/// A stream pair: the handle for the producer, the source for the response body.
pub fn stream(len: Option<u64>) -> (StreamHandle, StreamSource) {
    let handle = StreamHandle {
        state: Arc::new(Mutex::new(StreamState {
            chunks: Default::default(),
            queued: 0,
            ended: None,
            finished: false,
            failed: false,
            closed: false,
            low_mark: 0,
            on_drain: None,
            above_mark: false,
        })),
        waker: SourceWaker::new(),
    };
    (handle.clone(), StreamSource { handle, len })
}

impl Source for StreamSource {
    fn len(&self) -> Option<u64> {
        self.len
    }

    fn poll(&mut self, _room: usize) -> SourcePoll {
        let mut s = self.handle.lock();
        if s.failed {
            return SourcePoll::Failed("stream aborted by the application");
        }
        if let Some(chunk) = s.chunks.pop_front() {
            s.queued -= chunk.remaining().min(s.queued);
            let mut drained = None;
            if s.above_mark && s.queued < s.low_mark {
                s.above_mark = false;
                drained = s.on_drain.take();
            }
            drop(s);
            if let Some(mut f) = drained {
                f();
                let mut s = self.handle.lock();
                if s.on_drain.is_none() {
                    s.on_drain = Some(f);
                }
            }
            return SourcePoll::Chunk(chunk);
        }
        match s.ended.take() {
            Some(trailers) => SourcePoll::End(trailers),
            None => SourcePoll::Pending,
        }
    }

    fn waker(&self) -> &SourceWaker {
        &self.handle.waker
    }
}

impl Drop for StreamSource {
    fn drop(&mut self) {
        // The connection is done with the stream (sent, or aborted): refuse further adds and
        // release what is still queued now, on this thread.
        let leftover = {
            let mut s = self.handle.lock();
            s.closed = true;
            s.on_drain = None;
            std::mem::take(&mut s.chunks)
        };
        drop(leftover);
        self.handle.waker.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_stream_yields_in_order_then_ends() {
        let (h, mut src) = stream(None);
        assert!(matches!(src.poll(100), SourcePoll::Pending));
        h.push(Chunk::Memory(Bytes::from_static(b"ab"))).unwrap();
        h.push(Chunk::Memory(Bytes::from_static(b"cd"))).unwrap();
        assert_eq!(h.queued(), 4);
        assert!(matches!(src.poll(100), SourcePoll::Chunk(Chunk::Memory(b)) if b == "ab"));
        assert!(matches!(src.poll(100), SourcePoll::Chunk(Chunk::Memory(b)) if b == "cd"));
        h.end(Vec::new()).unwrap();
        assert!(matches!(src.poll(100), SourcePoll::End(t) if t.is_empty()));
        assert!(matches!(h.push(Chunk::Memory(Bytes::from_static(b"x"))), Err((StreamError::Ended, _))));
    }

    #[test]
    fn wakes_before_attach_are_remembered_and_drain_fires_below_the_mark() {
        let (h, mut src) = stream(None);
        let fired = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f2 = fired.clone();
        h.on_drain(3, Box::new(move || {
            f2.fetch_add(1, Ordering::SeqCst);
        }));
        h.push(Chunk::Memory(Bytes::from_static(b"abcd"))).unwrap();
        assert!(src.waker().take_early());
        let _ = src.poll(100);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        drop(src);
        assert!(matches!(h.push(Chunk::Memory(Bytes::from_static(b"x"))), Err((StreamError::Closed, _))));
    }
}
