//! A request as the application sees it, and the link back to the connection that answers it.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::body::source::{stream, StreamHandle};
use crate::engine::response::Response;
use crate::engine::shared::{Keep, Msg, WorkerShared};
use crate::error::Error;
use crate::h1::RequestHead;

/// Where a response for one request goes: a connection on one worker, at one position in the
/// connection's response order.
pub(crate) struct Link {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) token: usize,
    pub(crate) conn_id: u64,
    pub(crate) seq: u64,
    /// Cleared when the connection closes, so a late response is refused without a round trip.
    pub(crate) alive: Arc<AtomicBool>,
}

impl Link {
    /// Hands the response to the owning worker. `keep` is dropped once the response has left
    /// (or at once, on error).
    pub(crate) fn respond(self, resp: Response, keep: Option<Keep>) -> Result<(), Error> {
        if !self.alive.load(Ordering::Acquire) {
            drop(resp);
            drop(keep);
            return Err(Error::Closed);
        }
        let msg = Msg::Respond { token: self.token, conn_id: self.conn_id, seq: self.seq, resp, keep };
        self.shared.send(msg).map_err(|msg| {
            drop(msg);
            Error::Closed
        })
    }
}

/// Called once when a claimed body is complete or failed (client abort, ENOSPC …), on the
/// worker thread, with the bytes delivered (also on failure: what did arrive is kept) and the
/// error, if any.
pub type OnBodyDone = Box<dyn FnOnce(u64, Option<std::io::Error>) + Send>;

/// What a body reader wants after a piece of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFlow {
    /// Deliver more as it arrives.
    More,
    /// Stop reading the socket until [`Request::body_resume`] (backpressure).
    Pause,
}

/// Receives body data in arrival order, on the worker thread; the slice is valid for the call.
pub type OnBodyData = Box<dyn FnMut(&[u8]) -> ReadFlow + Send>;

/// What a head handler may do with the body.
pub enum BodyClaim {
    /// Write the body into `fd` starting at `offset` (splice for Content-Length bodies).
    ToFd { fd: crate::body::FileFd, offset: u64, on_done: OnBodyDone },
    /// Hand the body to `on_data` piece by piece; `on_end` reports the total or the error.
    /// `trailers` is the request's cell for a chunked body's trailer fields, filled before
    /// `on_end` runs.
    Stream { on_data: OnBodyData, on_end: OnBodyDone, trailers: LateTrailers },
}

pub(crate) enum ClaimState {
    Open,
    Claimed(BodyClaim),
    Closed,
}

/// Trailer fields of a body that is streamed while the application holds the request: the
/// connection fills the cell once, the request reads it.
pub type LateTrailers = Arc<std::sync::OnceLock<Vec<(CString, CString)>>>;

/// Trailer fields as NUL-terminated pairs (the decoder admits no NUL in them, so nothing is
/// dropped in practice).
pub(crate) fn trailer_cstrings(trailers: Vec<(String, Vec<u8>)>) -> Vec<(CString, CString)> {
    trailers.into_iter().filter_map(|(n, v)| Some((CString::new(n).ok()?, CString::new(v).ok()?))).collect()
}

/// Shared between a request in its head handler and its connection.
pub(crate) type ClaimSlot = Arc<Mutex<ClaimState>>;

/// One parsed request with its whole body. Owned by the application until it responds.
/// Dropping it without responding answers `500` (a safety net for Rust callers; the C API
/// never drops a request behind the application's back).
pub struct Request {
    head: RequestHead,
    body: Bytes,
    /// Trailer fields of a chunked body, NUL-terminated for the C API.
    trailers: Vec<(CString, CString)>,
    /// Trailers of a body streamed to a head handler's reader (see [`LateTrailers`]); made
    /// with the claim window, so a request without a head stage allocates no cell.
    late_trailers: Option<LateTrailers>,
    /// Present while the request is in its head handler (body not read yet).
    claim: Option<ClaimSlot>,
    /// The body, when it was spooled to a file instead of memory: (file, length).
    spooled: Option<(std::fs::File, u64)>,
    peer: SocketAddr,
    link: Mutex<Option<Link>>,
}

impl Request {
    pub(crate) fn new(head: RequestHead, body: Bytes, peer: SocketAddr, link: Link) -> Self {
        Request { head, body, trailers: Vec::new(), late_trailers: None, claim: None, spooled: None, peer, link: Mutex::new(Some(link)) }
    }

    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The whole request body (empty when there was none).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Opens the claim window for a head handler and returns the connection's side of it.
    pub(crate) fn open_claims(&mut self) -> ClaimSlot {
        let slot = Arc::new(Mutex::new(ClaimState::Open));
        self.claim = Some(slot.clone());
        self.late_trailers = Some(LateTrailers::default());
        slot
    }

    pub(crate) fn set_spooled(&mut self, file: std::fs::File, len: u64) {
        self.spooled = Some((file, len));
        self.claim = None;
    }

    /// The body's spool file and length, when the body was larger than the spool threshold
    /// (then [`Request::body`] is empty). The file is positioned anywhere: read it with
    /// positional reads.
    pub fn body_spooled(&self) -> Option<(&std::fs::File, u64)> {
        self.spooled.as_ref().map(|(f, n)| (f, *n))
    }

    /// Copies the whole body into `fd` at `offset`: from a spool file by `copy_file_range`
    /// (falling back to sendfile, then pread/pwrite), from memory by pwrite. Returns the bytes
    /// copied.
    pub fn body_copy_to_fd(&self, fd: std::os::fd::RawFd, offset: u64) -> Result<u64, Error> {
        let fallback = crate::stats::WorkerStats::default();
        let link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        // Counters are the worker's; from another thread an increment may race with it.
        let stats = link.as_ref().map(|l| &l.shared.stats).unwrap_or(&fallback);
        match &self.spooled {
            Some((file, len)) => Ok(crate::transfer::copy_to_fd(std::os::fd::AsRawFd::as_raw_fd(file), *len, fd, offset, stats)?),
            None => {
                crate::transfer::pwrite_all(fd, &self.body, offset, stats)?;
                Ok(self.body.len() as u64)
            }
        }
    }

    /// Opens `path` beneath the directory `dirfd` (never outside it: see
    /// [`crate::transfer::open_beneath`]) through the connection's worker's open-file cache
    /// (`use_cache` false, or a request without a worker: open and fstat now, keep nothing).
    pub fn open_file_at(&self, dirfd: std::os::fd::RawFd, path: &std::ffi::CStr, use_cache: bool) -> std::io::Result<crate::engine::file_cache::CachedFile> {
        use crate::engine::file_cache::{open_file, Lookup};
        let link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        let Some(shared) = link.as_ref().map(|l| l.shared.clone()) else { return open_file(dirfd, path) };
        drop(link);
        // The counters are bumped under the cache's lock, so the single-writer rule holds
        // even when this runs on another thread than the worker's.
        let mut cache = shared.file_cache();
        let (file, how) = if use_cache {
            cache.get(dirfd, path, std::time::Instant::now())?
        } else {
            (open_file(dirfd, path)?, Lookup::Opened)
        };
        let stats = &shared.stats;
        match how {
            Lookup::Hit => crate::stats::bump(&stats.file_cache_hits, 1),
            Lookup::Revalidated => crate::stats::bump(&stats.file_cache_revalidations, 1),
            Lookup::Opened => crate::stats::bump(&stats.file_opens, 1),
        }
        Ok(file)
    }

    pub(crate) fn set_body(&mut self, body: Bytes) {
        self.body = body;
        self.claim = None;
    }

    /// From a head handler: write the body into `fd` at `offset` instead of buffering it;
    /// `on_done` reports the outcome. The application still owes the response. A Content-Length
    /// body of 1 MiB or more has its file range reserved
    /// ahead of its writes ([`crate::transfer::Reservation`]): one that cannot fit is reported
    /// before it is read, and the unused part of the reservation of one that ends early is
    /// given back.
    pub fn body_to_fd(&self, fd: crate::body::FileFd, offset: u64, on_done: OnBodyDone) -> Result<(), Error> {
        let Some(slot) = self.claim.as_ref() else {
            return Err(Error::State("the body can only be claimed from the head handler"));
        };
        if self.handed_back() {
            // Answered already: the request (and a C handle to it) is gone once the answer
            // has left, so nothing may be called back with it.
            return Err(Error::AlreadyUsed);
        }
        let (_, regular) = crate::transfer::file_size(fd.raw())?;
        if !regular {
            return Err(Error::Invalid("request bodies go to regular files"));
        }
        let mut state = slot.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            ClaimState::Open => {
                *state = ClaimState::Claimed(BodyClaim::ToFd { fd, offset, on_done });
                Ok(())
            }
            ClaimState::Claimed(_) => Err(Error::AlreadyUsed),
            ClaimState::Closed => Err(Error::State("the body can only be claimed from the head handler")),
        }
    }

    /// From a head handler: deliver the body to `on_data` as it arrives (with backpressure:
    /// return [`ReadFlow::Pause`] and call [`Request::body_resume`] later), then `on_end`.
    pub fn body_read(&self, on_data: OnBodyData, on_end: OnBodyDone) -> Result<(), Error> {
        let Some(slot) = self.claim.as_ref() else {
            return Err(Error::State("the body can only be claimed from the head handler"));
        };
        if self.handed_back() {
            return Err(Error::AlreadyUsed);
        }
        let mut state = slot.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            ClaimState::Open => {
                *state = ClaimState::Claimed(BodyClaim::Stream { on_data, on_end, trailers: self.late_trailers.clone().unwrap_or_default() });
                Ok(())
            }
            ClaimState::Claimed(_) => Err(Error::AlreadyUsed),
            ClaimState::Closed => Err(Error::State("the body can only be claimed from the head handler")),
        }
    }

    /// Resumes a body read paused by [`ReadFlow::Pause`]. Thread-safe; a no-op once the
    /// request was answered or its connection is gone.
    pub fn body_resume(&self) {
        if let Some(link) = self.link.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = link.shared.send(Msg::ResumeBody { token: link.token, conn_id: link.conn_id });
        }
    }

    /// Whether a head handler claimed the body.
    pub fn body_claimed(&self) -> bool {
        self.claim.as_ref().is_some_and(|s| matches!(*s.lock().unwrap_or_else(|e| e.into_inner()), ClaimState::Claimed(_)))
    }

    /// Whether the request was handed back (responded to or rejected).
    pub fn handed_back(&self) -> bool {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    pub(crate) fn set_trailers(&mut self, trailers: Vec<(String, Vec<u8>)>) {
        self.trailers = trailer_cstrings(trailers);
    }

    /// Trailer fields of a chunked request body, in the order received (for a body read with
    /// [`Request::body_read`]: available from its `on_end` on).
    pub fn trailers(&self) -> &[(CString, CString)] {
        match self.late_trailers.as_ref().and_then(|t| t.get()) {
            Some(late) if self.trailers.is_empty() => late,
            _ => &self.trailers,
        }
    }

    /// The first trailer field named `name` (ASCII case-insensitive).
    pub fn trailer(&self, name: &[u8]) -> Option<&CString> {
        self.trailers().iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Takes the link out; `None` if the request was already handed back.
    pub(crate) fn take_link(&self) -> Option<Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Sends `resp` as the answer to this request, from any thread.
    pub fn respond(self, resp: Response) -> Result<(), Error> {
        self.respond_ref(resp, None)
    }

    /// Like [`Request::respond`] without consuming the request: a second call returns
    /// `Error::AlreadyUsed`. `keep` lives until the response has left.
    pub fn respond_ref(&self, resp: Response, keep: Option<Keep>) -> Result<(), Error> {
        resp.check_sendable()?;
        match self.take_link() {
            Some(link) => link.respond(resp, keep),
            None => Err(Error::AlreadyUsed),
        }
    }

    /// Answers with `head` (status, headers, any first chunks) and a body that the returned
    /// handle feeds over time, from any thread, until `end` — chunked for HTTP/1.1,
    /// close-delimited for HTTP/1.0.
    pub fn respond_stream(&self, head: Response, keep: Option<Keep>) -> Result<StreamHandle, Error> {
        let (handle, source) = stream(None);
        let mut head = head;
        head.add_source(Box::new(source));
        self.respond_ref(head, keep)?;
        Ok(handle)
    }

    /// Whether the connection that sent this request is still there.
    pub fn is_connected(&self) -> bool {
        self.link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|l| l.alive.load(Ordering::Acquire))
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let link = self.link.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(link) = link {
            let mut resp = Response::plain(500);
            resp.close = true;
            let _ = link.respond(resp, None);
        }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", self.head.method())
            .field("target", &self.head.target())
            .field("body_len", &self.body.len())
            .field("peer", &self.peer)
            .finish()
    }
}
