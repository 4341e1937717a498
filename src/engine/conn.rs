//! One client connection: reads and parses requests, keeps their responses in request order,
//! and feeds finished responses to the transfer layer.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::body::Chunk;
use crate::config::Config;
use crate::engine::request::{BodyClaim, ClaimSlot, Link, OnBodyData, OnBodyDone, ReadFlow, Request};
use crate::engine::hooks::{AccessInfo, AccessRecord};
use crate::engine::response::{Response, Upgrade};
use crate::body::source::SourcePoll;
use crate::engine::framing;
use crate::engine::shared::{Keep, Msg, WorkerShared};
use crate::h1::{self, BodyFraming, ChunkedDecoder, ChunkedStep, ParseError, RequestHead, Version};
use crate::stats::bump;
use crate::transfer::{self, PathMemory, RecvOutcome, SendError, Sent};

mod idle;
pub(crate) use idle::IdleConn;

/// One read from the socket or the host's transport.
fn recv(fd: RawFd, transport: &mut Option<Box<dyn transfer::Transport>>, buf: &mut BytesMut, max: usize, stats: &crate::stats::WorkerStats) -> std::io::Result<RecvOutcome> {
    match transport.as_mut() {
        Some(t) => transfer::recv_via(t.as_mut(), buf, max, stats),
        None => transfer::recv_into(fd, buf, max, stats),
    }
}

/// Bytes asked of one `recv` while reading heads.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes one connection may send per turn before the worker serves others (a loopback socket
/// would otherwise take a whole large file in one go while `/hello` waits).
const SEND_BUDGET: u64 = 1 << 20;
/// Size of the buffer a worker writes response heads into. Each head is split off as shared
/// `Bytes`; once all heads split from it have been sent the buffer is reused in place, so a
/// response head costs no malloc. A head a slow peer has not taken yet keeps its buffer alive
/// (the next heads go to a new one): at most this much per such connection.
pub(crate) const HEAD_BUF: usize = 2048;
/// The head just written into the worker's head buffer, as `Bytes`.
fn split_head(heads: &mut BytesMut) -> Bytes {
    let head = heads.split().freeze();
    if head.len() > HEAD_BUF {
        // The buffer grew for this one (a large inline body, many headers): the heads after
        // it must not keep all of that alive.
        *heads = BytesMut::new();
    }
    head
}

/// Spare read buffers a worker keeps for connections that start reading again.
const SPARE_READ_BUFS: usize = 64;
/// Largest single `recv` while reading a body.
const BODY_READ_MAX: usize = 1024 * 1024;
/// Parsed-but-unanswered input kept at most, beyond the pipeline window (backpressure).
const UNPARSED_MAX: usize = 64 * 1024;
/// After a response that closes the connection, unread input is drained for at most this
/// long (and this much) so the peer gets the response instead of a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_MAX_BYTES: u64 = 1024 * 1024;

/// Unparsed chunked-body input buffered at most (it is decoded as it arrives).
const CHUNKED_READ_AHEAD: usize = 256 * 1024;
/// Bytes of small source output gathered before sending.
const SOURCE_BATCH: usize = 256 * 1024;
/// Tokens of source fds watched for a connection: the connection's token with this bit set.
pub(crate) const SOURCE_TOKEN_BIT: usize = 1 << (usize::BITS - 2);

/// What polling a source led to.
enum Expand {
    /// Chunks were queued (or the source ended): keep sending.
    More,
    /// The source is pending; its waker will reschedule the connection.
    Waiting,
    /// The source failed: abort the connection.
    Failed,
}

pub(crate) struct StreamSink {
    on_data: OnBodyData,
    on_end: Option<OnBodyDone>,
    /// Content-Length bodies: bytes still to come.
    remaining: u64,
    decoder: Option<Box<ChunkedDecoder>>,
    delivered: u64,
    paused: bool,
    /// The whole body arrived while the reader was paused: `on_end` waits for the resume.
    finished: bool,
    trailers: crate::engine::request::LateTrailers,
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            // A body that arrived whole is reported whole, even if the peer left before resume.
            let error = (!self.finished).then(|| body_error(libc::ECONNABORTED));
            f(self.delivered, error);
        }
    }
}

/// Streamed bodies: unread input buffered at most before the application has taken it.
const STREAM_READ_AHEAD: usize = 64 * 1024;

pub(crate) struct FdSink {
    fd: crate::body::FileFd,
    offset: u64,
    written: u64,
    /// Content-Length bodies: bytes still to come.
    remaining: u64,
    /// Chunked bodies: the framing parser.
    decoder: Option<Box<ChunkedDecoder>>,
    on_done: Option<OnBodyDone>,
    /// Spooling an unclaimed body: the request (or its head) that gets the file when done.
    spool: Option<Spool>,
    /// A Content-Length body's file range, reserved ahead of the writes until the body ends.
    reservation: Option<transfer::Reservation>,
}

/// The request a spooled body belongs to.
pub(crate) enum Spool {
    Head(RequestHead),
    Request(Request),
}

impl FdSink {
    /// Keeps the reservation a window ahead of the next write (an error: the body will not fit).
    fn reserve_ahead(&mut self) -> std::io::Result<()> {
        match self.reservation.as_mut() {
            Some(r) => r.ahead_of(self.fd.raw(), self.offset),
            None => Ok(()),
        }
    }

    fn finish(&mut self, r: Result<u64, std::io::Error>) {
        // Before `on_done`, which may close the fd: blocks reserved for bytes that never came.
        if let Some(reservation) = self.reservation.take() {
            if r.is_err() {
                reservation.release_after(self.fd.raw(), self.offset);
            }
        }
        if let Some(f) = self.on_done.take() {
            match r {
                Ok(n) => f(n, None),
                Err(e) => f(self.written, Some(e)),
            }
        }
    }
}

impl Drop for FdSink {
    fn drop(&mut self) {
        // The connection went away before the body was complete.
        self.finish(Err(body_error(libc::ECONNABORTED)));
    }
}

/// What the engine needs to know about a request when its response leaves.
#[derive(Clone, Copy, Debug)]
struct Meta {
    is_head: bool,
    is_connect: bool,
    version: Version,
    keep_alive: bool,
}

enum Slot {
    Waiting(Meta),
    Ready(Meta, Response, Option<Keep>),
}

enum Reading {
    Head,
    /// Buffering a body; `head` is None when the request already exists (`pending_req`).
    Body { head: Option<RequestHead>, remaining: u64 },
    Chunked { head: Option<RequestHead>, decoder: Box<ChunkedDecoder>, body: BytesMut },
    /// A claimed body going into a file: payload by splice (socket → pipe → file); for a
    /// chunked body the framing is parsed here and only payload bytes are spliced.
    ToFd(Box<FdSink>),
    /// A claimed body delivered to the application piece by piece.
    Stream(Box<StreamSink>),
    /// Reading away a body nobody wants, to keep the connection.
    Discard { remaining: u64 },
    DiscardChunked(Box<ChunkedDecoder>),
    /// No more requests will be read (close requested, error, or shutdown).
    Stopped,
}

/// Why a connection was closed, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseReason {
    Done,
    Io,
    Timeout,
    Truncated,
    Shutdown,
}

impl CloseReason {
    /// The errno a claimed body cut short by this close is reported with (the table is in
    /// `zh_request_body_read`'s doc comment). An I/O error reports the socket's own errno at
    /// the failing call (`Conn::end_body`); this is the fallback.
    fn body_errno(self) -> i32 {
        match self {
            CloseReason::Timeout => libc::ETIMEDOUT,
            CloseReason::Shutdown => libc::ECANCELED,
            CloseReason::Io | CloseReason::Truncated | CloseReason::Done => libc::ECONNABORTED,
        }
    }
}

/// The error a claimed body ends with: an OS error, so `raw_os_error()` is the errno the C API
/// passes on and `kind()` still says what happened (TimedOut, ConnectionReset …).
fn body_error(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

/// A response in the send queue, as far as the connection cares once it has left.
struct Mark {
    closes: bool,
    keep: Option<Keep>,
    upgrade: Option<Upgrade>,
    /// For the access hook: request, status, size, path.
    access: Option<Box<(AccessInfo, u16, u64, &'static str)>>,
}

/// What the worker should do after a step.
#[derive(Debug)]
pub(crate) enum Next {
    Continue,
    Close(CloseReason),
    /// The 101 (or CONNECT 2xx) has left: give the connection to the application.
    HandOff(Upgrade),
}

/// Per-call context from the worker.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    pub registry: &'a mio::Registry,
    pub shared: &'a Arc<WorkerShared>,
    pub date: &'a [u8],
    pub paths: &'a mut PathMemory,
    /// The worker's spare read buffers (see `Conn::park_if_idle`).
    pub read_bufs: &'a mut Vec<BytesMut>,
    /// Response heads are written here and split off (see `HEAD_BUF`).
    pub heads: &'a mut BytesMut,
    /// Where cold file ranges are read in (None: probing is off).
    pub disk: Option<&'a crate::engine::disk::DiskPool>,
    pub hooks: &'a crate::engine::hooks::Hooks,
    pub now: Instant,
    pub draining: bool,
    /// A head handler is configured: heads with a body go to it first.
    pub head_stage: bool,
}

/// A request handed to the worker.
pub(crate) enum Dispatch {
    /// Head complete, body not read: for the head handler.
    Head(Request, ClaimSlot),
    /// Head and whole body: for the main handler.
    Full(Request),
}

/// Bodies the application answered without reading are drained up to this size (to keep the
/// connection); larger ones close it.
const DISCARD_MAX: u64 = 1024 * 1024;

pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) token: usize,
    /// The socket; None for a host-provided transport.
    pub(crate) sock: Option<mio::net::TcpStream>,
    /// The socket's fd (-1 with a transport).
    fd: RawFd,
    /// A host-provided byte stream (TLS …) instead of a socket.
    transport: Option<Box<dyn transfer::Transport>>,
    /// Tells this connection that its transport is ready again.
    transport_waker: Option<crate::body::source::SourceWaker>,
    peer: SocketAddr,
    alive: Arc<AtomicBool>,
    rbuf: BytesMut,
    reading: Reading,
    /// The peer will send nothing more.
    read_eof: bool,
    /// Data may be waiting on the socket (edge-triggered: set by events, cleared by EAGAIN).
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The last event said the peer shut its side: read on until EOF.
    pub(crate) peer_closing: bool,
    next_seq: u64,
    send_seq: u64,
    inflight: VecDeque<Slot>,
    out: VecDeque<Chunk>,
    /// Stream positions at which responses end: (end, closes the connection, keep-alive data).
    /// Responses queued in `out` and not yet fully sent.
    marks: VecDeque<Mark>,
    /// With an access hook: per in-flight request, in `inflight` order.
    access: VecDeque<Option<AccessInfo>>,
    /// A request that may switch protocols (Upgrade, CONNECT) waits for its answer: parse no
    /// further until then, since what follows may not be HTTP.
    upgrade_wait: bool,
    /// Transfer state: the staging pipe for socket and chunked fd sources, the cached range.
    xfer: transfer::ConnPaths,
    /// A cold file range is being read in by the disk pool: do not send until it is done.
    disk_wait: bool,
    /// A pipe/socket source fd registered for readability.
    watched_fd: Option<RawFd>,
    /// A response that closes the connection has been queued: queue nothing after it.
    final_queued: bool,
    /// Draining input after the final response (lingering close).
    lingering: Option<(Instant, u64)>,
    head_started: Option<Instant>,
    /// Parsing paused because `max_pipeline` responses were outstanding.
    window_blocked: bool,
    /// A request given back by the head handler, waiting for its body.
    pending_req: Option<Box<Request>>,
    /// A request whose body was spooled to a file, ready for the main handler.
    spooled_ready: Option<Box<Request>>,
    /// The framing of a body whose head is with the head handler, and whether the client
    /// waits for `100 Continue`.
    head_wait: Option<(BodyFraming, bool)>,
    /// Reading state after the current body: `Head` (keep-alive) or `Stopped`.
    after_body_keep: bool,
    /// The staging pipe for claimed request bodies (separate from the response pipe, which a
    /// pipelined response may be using at the same time).
    rx_pipe: Option<transfer::PipePair>,
    last_progress: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) scheduled: Option<Instant>,
    /// Stopped sending after its turn's budget with the socket still writable: the worker
    /// drives it again after the other ready connections (no event would come for it).
    pub(crate) yielded: bool,
    /// Listed among the worker's idle connections left whole (see `slots::rest`).
    pub(crate) resting: bool,
}

impl Conn {
    /// Says whether the socket's congestion control leaves it unpaced (larger `sendfile` calls).
    pub(crate) fn set_unpaced(&mut self, unpaced: bool) {
        self.xfer.set_unpaced(unpaced);
    }

    pub(crate) fn new(id: u64, token: usize, sock: mio::net::TcpStream, peer: SocketAddr, now: Instant) -> Self {
        let fd = sock.as_raw_fd();
        Self::with_io(id, token, Some(sock), fd, None, peer, now, Arc::new(AtomicBool::new(true)))
    }

    /// A connection over a host-provided transport.
    pub(crate) fn over_transport(id: u64, token: usize, t: Box<dyn transfer::Transport>, waker: crate::body::source::SourceWaker, peer: SocketAddr, now: Instant) -> Self {
        let mut c = Self::with_io(id, token, None, -1, Some(t), peer, now, Arc::new(AtomicBool::new(true)));
        c.transport_waker = Some(waker);
        // Nothing signals readiness at the start: try both directions once.
        c.readable = true;
        c.writable = true;
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn with_io(id: u64, token: usize, sock: Option<mio::net::TcpStream>, fd: RawFd, transport: Option<Box<dyn transfer::Transport>>, peer: SocketAddr, now: Instant, alive: Arc<AtomicBool>) -> Self {
        Conn {
            id,
            token,
            sock,
            fd,
            transport,
            transport_waker: None,
            peer,
            alive,
            rbuf: BytesMut::new(),
            reading: Reading::Head,
            read_eof: false,
            readable: false,
            writable: false,
            peer_closing: false,
            next_seq: 0,
            send_seq: 0,
            inflight: VecDeque::new(),
            out: VecDeque::new(),
            marks: VecDeque::new(),
            access: VecDeque::new(),
            upgrade_wait: false,
            xfer: transfer::ConnPaths::default(),
            disk_wait: false,
            watched_fd: None,
            final_queued: false,
            lingering: None,
            head_started: None,
            window_blocked: false,
            pending_req: None,
            spooled_ready: None,
            yielded: false,
            head_wait: None,
            after_body_keep: true,
            rx_pipe: None,
            last_progress: now,
            deadline: None,
            scheduled: None,
            resting: false,
        }
    }

    /// Bytes the host read from an adopted connection before handing it over.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(crate) fn prefill(&mut self, initial: &[u8]) {
        self.rbuf.extend_from_slice(initial);
        self.readable = true;
    }

    /// Reads what the socket has, within the buffering bounds.
    pub(crate) fn fill(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if let Some((until, drained)) = self.lingering {
            return self.linger_read(ctx, until, drained);
        }
        if self.read_eof {
            // Nothing more can be read; an error or hang-up event after EOF must not leave
            // `readable` set, or the worker would spin on this connection.
            self.readable = false;
            return Next::Continue;
        }
        if matches!(self.reading, Reading::ToFd(_)) {
            return self.sink_to_fd(ctx);
        }
        while self.readable && !self.read_eof && self.wants_input(ctx.config) {
            let max = match &self.reading {
                Reading::Body { remaining, .. } | Reading::Discard { remaining } => (*remaining as usize).clamp(READ_CHUNK, BODY_READ_MAX),
                Reading::Chunked { .. } | Reading::DiscardChunked(_) => BODY_READ_MAX.min(4 * READ_CHUNK),
                _ => READ_CHUNK,
            };
            if self.rbuf.capacity() == 0
                && let Some(buf) = ctx.read_bufs.pop()
            {
                self.rbuf = buf;
            }
            match recv(self.fd, &mut self.transport, &mut self.rbuf, max, &ctx.shared.stats) {
                Ok(RecvOutcome::Data { drained, .. }) => {
                    // A short read emptied the receive queue: skip the recv that would only
                    // say EAGAIN (unless the peer's FIN is pending, which must be read).
                    if drained && !self.peer_closing {
                        self.readable = false;
                    }
                    self.last_progress = ctx.now;
                    if matches!(self.reading, Reading::Head) && self.head_started.is_none() {
                        self.head_started = Some(ctx.now);
                    }
                }
                Ok(RecvOutcome::WouldBlock) => self.readable = false,
                Ok(RecvOutcome::Eof) => {
                    self.read_eof = true;
                    self.readable = false;
                }
                Err(e) => {
                    self.end_body(e.raw_os_error().unwrap_or(libc::ECONNRESET));
                    return Next::Close(CloseReason::Io);
                }
            }
        }
        Next::Continue
    }

    /// Whether reading more now is useful: not while the pipeline window is full and enough
    /// unparsed input is already buffered.
    pub(crate) fn wants_input(&self, config: &Config) -> bool {
        match &self.reading {
            Reading::Stopped => false,
            Reading::Head => {
                if self.outstanding() >= config.max_pipeline {
                    self.rbuf.len() < UNPARSED_MAX
                } else {
                    self.rbuf.len() <= config.limits.max_head_bytes
                }
            }
            // Only the rest of the body: what follows it waits in the socket until the body is
            // parsed and the pipeline window has room again.
            Reading::Body { remaining, .. } | Reading::Discard { remaining } => (self.rbuf.len() as u64) < *remaining,
            Reading::Chunked { .. } | Reading::DiscardChunked(_) => self.rbuf.len() < CHUNKED_READ_AHEAD,
            Reading::ToFd(_) => true,
            Reading::Stream(s) => !s.paused && self.rbuf.len() < STREAM_READ_AHEAD,
        }
    }

    /// Parsing stopped only because the pipeline window was full, and it has room again.
    pub(crate) fn can_parse_more(&self, config: &Config) -> bool {
        self.window_blocked
            && self.outstanding() < config.max_pipeline
            && !self.upgrade_wait
            && !self.final_queued
            && matches!(self.reading, Reading::Head)
    }

    /// Responses not yet fully sent: waiting for the application, or queued for the socket.
    /// Bounding this bounds what a client that pipelines without reading can make us hold.
    fn outstanding(&self) -> usize {
        self.inflight.len() + self.marks.len()
    }

    /// Parses the next complete request, if any, and returns it for the handler.
    /// Errors become an in-order error response and stop reading.
    pub(crate) fn next_request(&mut self, ctx: &mut Ctx<'_>) -> Option<Dispatch> {
        // Recomputed below if the window stops parsing again; left set while nothing more will
        // ever be parsed (a final response, shutdown), it would make `drive` spin.
        self.window_blocked = false;
        if let Some(req) = self.spooled_ready.take() {
            return Some(Dispatch::Full(*req));
        }
        loop {
            match std::mem::replace(&mut self.reading, Reading::Stopped) {
                Reading::Stopped => return None,
                Reading::Head => {
                    if ctx.draining || self.final_queued {
                        return None;
                    }
                    self.window_blocked = false;
                    if self.rbuf.is_empty() {
                        self.reading = Reading::Head;
                        return None;
                    }
                    if self.outstanding() >= ctx.config.max_pipeline || self.upgrade_wait {
                        self.window_blocked = true;
                        self.reading = Reading::Head;
                        return None;
                    }
                    match h1::parse_request_head(&self.rbuf, &ctx.config.limits) {
                        Err(e) => {
                            self.fail(e, ctx);
                            return None;
                        }
                        Ok(None) => {
                            if self.read_eof {
                                // The peer stopped in the middle of a head: nothing to answer.
                                self.rbuf.clear();
                                return None;
                            }
                            self.reading = Reading::Head;
                            return None;
                        }
                        Ok(Some((head, used))) => {
                            self.rbuf.advance(used);
                            self.head_started = None;
                            bump(&ctx.shared.stats.requests, 1);
                            if head.expect_unmet() {
                                // RFC 9110 §10.1.1: an expectation we cannot meet.
                                self.fail_status(417, false, ctx);
                                return None;
                            }
                            match head.framing() {
                                BodyFraming::None | BodyFraming::Length(0) => {
                                    return Some(Dispatch::Full(self.dispatch(head, Bytes::new(), ctx)));
                                }
                                BodyFraming::Length(n) if ctx.config.max_body.is_some_and(|max| n > max) => {
                                    self.fail(ParseError::PayloadTooLarge, ctx);
                                    return None;
                                }
                                framing if ctx.head_stage => {
                                    let expect = head.expect_continue() && head.version() == Version::Http11;
                                    let mut req = self.dispatch(head, Bytes::new(), ctx);
                                    self.after_body_keep = matches!(self.reading, Reading::Head);
                                    self.head_wait = Some((framing, expect));
                                    let slot = req.open_claims();
                                    return Some(Dispatch::Head(req, slot));
                                }
                                BodyFraming::Length(n) => {
                                    let expect = head.expect_continue() && head.version() == Version::Http11;
                                    if ctx.config.spool_threshold.is_some_and(|t| n > t) {
                                        // The request is made (and its slot taken) when the body is in.
                                        self.after_body_keep = head.keep_alive() && head.method() != http::Method::CONNECT;
                                        match self.start_spool(Spool::Head(head), BodyFraming::Length(n), None, &[], ctx) {
                                            Ok(()) => {}
                                            Err((spool, Some(e))) => {
                                                // No room for it: answered before it is read.
                                                self.fail_spool(spool, e.raw_os_error(), ctx);
                                                return None;
                                            }
                                            Err((Spool::Head(h), None)) => self.reading = Reading::Body { head: Some(h), remaining: n },
                                            Err((Spool::Request(_), None)) => unreachable!(),
                                        }
                                    } else {
                                        self.reading = Reading::Body { head: Some(head), remaining: n };
                                    }
                                    self.maybe_continue(expect, n as usize, false);
                                    if matches!(self.reading, Reading::ToFd(_)) {
                                        return None;
                                    }
                                }
                                BodyFraming::Chunked => {
                                    self.maybe_continue(head.expect_continue() && head.version() == Version::Http11, usize::MAX, false);
                                    self.after_body_keep = head.keep_alive() && head.method() != http::Method::CONNECT;
                                    let decoder = Box::new(ChunkedDecoder::new(&ctx.config.limits));
                                    self.reading = Reading::Chunked { head: Some(head), decoder, body: BytesMut::new() };
                                }
                            }
                        }
                    }
                }
                Reading::Body { head, remaining } => {
                    if (self.rbuf.len() as u64) < remaining {
                        let want = (remaining as usize - self.rbuf.len()).min(BODY_READ_MAX * 16);
                        self.rbuf.reserve(want);
                        self.reading = Reading::Body { head, remaining };
                        return None;
                    }
                    let body = self.rbuf.split_to(remaining as usize).freeze();
                    return Some(self.complete(head, body, Vec::new(), ctx));
                }
                Reading::Chunked { head, mut decoder, mut body } => {
                    match decoder.decode_into(&self.rbuf, &mut body) {
                        Err(e) => {
                            self.fail_body(e, head.is_none(), ctx);
                            return None;
                        }
                        Ok((used, done)) => {
                            self.rbuf.advance(used);
                            if ctx.config.max_body.is_some_and(|max| body.len() as u64 > max) {
                                self.fail_body(ParseError::PayloadTooLarge, head.is_none(), ctx);
                                return None;
                            }
                            if done {
                                let trailers = decoder.trailers().to_vec();
                                return Some(self.complete(head, body.freeze(), trailers, ctx));
                            }
                            if ctx.config.spool_threshold.is_some_and(|t| body.len() as u64 > t) {
                                // Too big for memory: what is decoded goes to a spool file first,
                                // the rest follows by splice.
                                let spool = match (head, self.pending_req.take()) {
                                    (Some(h), _) => Spool::Head(h),
                                    (None, Some(r)) => Spool::Request(*r),
                                    (None, None) => unreachable!("a body without its request"),
                                };
                                match self.start_spool(spool, BodyFraming::Chunked, Some(decoder), &body, ctx) {
                                    Ok(()) => return None,
                                    Err((spool, _)) => {
                                        let dispatched = matches!(spool, Spool::Request(_));
                                        drop(spool);
                                        self.fail_body(ParseError::PayloadTooLarge, dispatched, ctx);
                                        return None;
                                    }
                                }
                            }
                            self.reading = Reading::Chunked { head, decoder, body };
                            return None;
                        }
                    }
                }
                Reading::ToFd(sink) => {
                    // Driven by `fill` (splice straight from the socket).
                    self.reading = Reading::ToFd(sink);
                    return None;
                }
                Reading::Stream(mut sink) => {
                    if sink.finished && !sink.paused {
                        if let Some(f) = sink.on_end.take() {
                            f(sink.delivered, None);
                        }
                        self.reading = self.state_after_body();
                        continue;
                    }
                    if sink.paused || self.rbuf.is_empty() {
                        self.reading = Reading::Stream(sink);
                        return None;
                    }
                    let (consumed, data, done) = match sink.decoder.as_mut() {
                        Some(d) => match d.step(&self.rbuf) {
                            Ok(ChunkedStep::Progress { consumed, data }) => (consumed, data, false),
                            Ok(ChunkedStep::Done { consumed }) => (consumed, 0..0, true),
                            Err(e) => {
                                if let Some(f) = sink.on_end.take() {
                                    f(sink.delivered, Some(body_error(libc::EPROTO)));
                                }
                                self.fail_body(e, true, ctx);
                                return None;
                            }
                        },
                        None => {
                            let take = (self.rbuf.len() as u64).min(sink.remaining) as usize;
                            sink.remaining -= take as u64;
                            (take, 0..take, sink.remaining == 0)
                        }
                    };
                    if ctx.config.max_body.is_some_and(|max| sink.delivered + data.len() as u64 > max) {
                        // Only a chunked body gets here (a Content-Length over the limit is
                        // refused before the head handler).
                        if let Some(f) = sink.on_end.take() {
                            f(sink.delivered, Some(body_error(libc::EMSGSIZE)));
                        }
                        self.fail_body(ParseError::PayloadTooLarge, true, ctx);
                        return None;
                    }
                    if !data.is_empty() {
                        sink.delivered += data.len() as u64;
                        if (sink.on_data)(&self.rbuf[data]) == ReadFlow::Pause {
                            sink.paused = true;
                        }
                    }
                    self.rbuf.advance(consumed);
                    if done {
                        if let Some(d) = sink.decoder.as_ref() {
                            let _ = sink.trailers.set(crate::engine::request::trailer_cstrings(d.trailers().to_vec()));
                        }
                        // A reader that paused on the last piece gets `on_end` after its resume,
                        // whatever the framing.
                        sink.finished = true;
                        self.reading = Reading::Stream(sink);
                        continue;
                    }
                    let stalled = consumed == 0;
                    self.reading = Reading::Stream(sink);
                    if stalled {
                        return None;
                    }
                }
                Reading::Discard { remaining } => {
                    let take = (self.rbuf.len() as u64).min(remaining);
                    self.rbuf.advance(take as usize);
                    if take == remaining {
                        self.reading = self.state_after_body();
                        continue;
                    }
                    self.reading = Reading::Discard { remaining: remaining - take };
                    return None;
                }
                Reading::DiscardChunked(mut decoder) => {
                    let mut scratch = BytesMut::new();
                    match decoder.decode_into(&self.rbuf, &mut scratch) {
                        Ok((used, done)) if decoder.body_bytes_seen() <= DISCARD_MAX => {
                            self.rbuf.advance(used);
                            if done {
                                self.reading = self.state_after_body();
                                continue;
                            }
                            self.reading = Reading::DiscardChunked(decoder);
                            return None;
                        }
                        _ => {
                            self.abandon_body();
                            return None;
                        }
                    }
                }
            }
        }
    }

    fn state_after_body(&self) -> Reading {
        if self.after_body_keep { Reading::Head } else { Reading::Stopped }
    }

    /// Finishes a buffered body: fills in the waiting request, or makes a new one.
    fn complete(&mut self, head: Option<RequestHead>, body: Bytes, trailers: Vec<(String, Vec<u8>)>, ctx: &mut Ctx<'_>) -> Dispatch {
        let mut req = match (head, self.pending_req.take()) {
            (Some(head), _) => self.dispatch(head, body, ctx),
            (None, Some(mut req)) => {
                req.set_body(body);
                self.reading = self.state_after_body();
                *req
            }
            (None, None) => unreachable!("a body without its request"),
        };
        req.set_trailers(trailers);
        Dispatch::Full(req)
    }

    /// The rest of the body cannot be read (sink error, or too big to drain): answer what is
    /// pending, then close.
    fn abandon_body(&mut self) {
        self.reading = Reading::Stopped;
        self.rbuf.clear();
        self.read_eof = true;
    }

    /// The spool file of an unclaimed body failed, or cannot hold it (`errno`): the request is
    /// answered here — 507 when the disk or quota is full, 413 past the largest file, else 500
    /// — as the connection's last answer, and what the client still sends is read away after
    /// it (lingering close).
    fn fail_spool(&mut self, spool: Spool, errno: Option<i32>, ctx: &mut Ctx<'_>) {
        let status = match errno {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => 507,
            Some(libc::EFBIG) => 413,
            _ => 500,
        };
        match spool {
            // Not made into a request yet: the answer takes its place in line.
            Spool::Head(_) => {
                self.rbuf.clear();
                self.fail_status(status, true, ctx);
            }
            Spool::Request(req) => {
                let _ = req.respond(Response::plain(status));
                self.refuse_body();
            }
        }
    }

    /// A body the engine will not read (it cannot fit, or its spool file failed): its
    /// request's answer, whoever gives it, is the connection's last, and what the client sends
    /// meanwhile is read away after that answer (lingering close), so a client already sending
    /// the body gets the answer, not a reset.
    fn refuse_body(&mut self) {
        self.rbuf.clear();
        self.reading = Reading::Stopped;
        // Nothing is dispatched while a body is read: the request's slot is the last one.
        match self.inflight.back_mut() {
            Some(Slot::Waiting(meta)) | Some(Slot::Ready(meta, ..)) => meta.keep_alive = false,
            // Answered and queued already: close right after it.
            _ => self.read_eof = true,
        }
    }

    /// After the head handler: claimed → into the fd; given back → buffer, then the main
    /// handler; answered (or kept) without a claim → drain a bounded amount, else close.
    pub(crate) fn after_head(&mut self, back: Option<Request>, claim: Option<BodyClaim>, ctx: &mut Ctx<'_>) {
        let Some((framing, expect)) = self.head_wait.take() else { return };
        let limits = &ctx.config.limits;
        match (claim, back) {
            (Some(BodyClaim::Stream { on_data, on_end, trailers }), back) => {
                drop(back);
                self.maybe_continue(expect, usize::MAX, true);
                let remaining = match framing {
                    BodyFraming::Length(n) => n,
                    _ => 0,
                };
                let decoder = matches!(framing, BodyFraming::Chunked).then(|| Box::new(ChunkedDecoder::new(limits)));
                self.reading = Reading::Stream(Box::new(StreamSink { on_data, on_end: Some(on_end), remaining, decoder, delivered: 0, paused: false, finished: false, trailers }));
            }
            (Some(BodyClaim::ToFd { fd, offset, on_done }), back) => {
                drop(back);
                let remaining = match framing {
                    BodyFraming::Length(n) => n,
                    _ => 0,
                };
                let decoder = matches!(framing, BodyFraming::Chunked).then(|| Box::new(ChunkedDecoder::new(limits)));
                let mut sink = Box::new(FdSink { fd, offset, written: 0, remaining, decoder, on_done: Some(on_done), spool: None, reservation: None });
                match transfer::Reservation::start(sink.fd.raw(), offset, remaining) {
                    Ok(r) => sink.reservation = r,
                    Err(e) => {
                        // The body cannot fit: said before it is read, and without a
                        // `100 Continue` a waiting client never sends it.
                        sink.finish(Err(e));
                        self.refuse_body();
                        return;
                    }
                }
                self.maybe_continue(expect, usize::MAX, true);
                self.reading = Reading::ToFd(sink);
                // Body bytes that came with the head are already in the buffer: write them now.
                self.readable = true;
            }
            (None, Some(req)) => {
                let req = match framing {
                    BodyFraming::Length(n) if ctx.config.spool_threshold.is_some_and(|t| n > t) => {
                        match self.start_spool(Spool::Request(req), framing, None, &[], ctx) {
                            Ok(()) => {
                                self.maybe_continue(expect, n as usize, true);
                                return;
                            }
                            Err((spool, Some(e))) => {
                                // No room for it: answered before it is read.
                                self.fail_spool(spool, e.raw_os_error(), ctx);
                                return;
                            }
                            Err((Spool::Request(r), None)) => {
                                self.maybe_continue(expect, n as usize, true);
                                r
                            }
                            Err((Spool::Head(_), None)) => unreachable!(),
                        }
                    }
                    _ => req,
                };
                self.pending_req = Some(Box::new(req));
                match framing {
                    BodyFraming::Length(n) => {
                        self.maybe_continue(expect, n as usize, true);
                        self.reading = Reading::Body { head: None, remaining: n };
                    }
                    _ => {
                        self.maybe_continue(expect, usize::MAX, true);
                        self.reading = Reading::Chunked { head: None, decoder: Box::new(ChunkedDecoder::new(limits)), body: BytesMut::new() };
                    }
                }
            }
            (None, None) => {
                // Nobody wants the body. Without `100 Continue` a waiting client sends nothing.
                self.reading = match framing {
                    _ if expect && self.rbuf.is_empty() => self.state_after_body(),
                    BodyFraming::Length(n) if n <= DISCARD_MAX => Reading::Discard { remaining: n },
                    BodyFraming::Chunked => Reading::DiscardChunked(Box::new(ChunkedDecoder::new(limits))),
                    _ => {
                        self.abandon_body();
                        Reading::Stopped
                    }
                };
            }
        }
    }

    /// Moves a claimed body into its fd: bytes already buffered with `pwrite`, the rest
    /// straight from the socket with `splice` socket → pipe → file. For a chunked body the
    /// framing is read into the buffer (small reads) and parsed; payload runs are spliced.
    fn sink_to_fd(&mut self, ctx: &mut Ctx<'_>) -> Next {
        const FRAMING_READ: usize = 512;
        let Reading::ToFd(sink) = &mut self.reading else { return Next::Continue };
        let stats = &ctx.shared.stats;
        let mut outcome: Option<Result<u64, std::io::Error>> = None;
        let mut parse_error = None;
        loop {
            // 1. Whatever is buffered.
            if !self.rbuf.is_empty() {
                let (consumed, data, done) = match sink.decoder.as_mut() {
                    Some(d) => match d.step(&self.rbuf) {
                        Ok(ChunkedStep::Progress { consumed, data }) => (consumed, data, false),
                        Ok(ChunkedStep::Done { consumed }) => (consumed, 0..0, true),
                        Err(e) => {
                            parse_error = Some(e);
                            break;
                        }
                    },
                    None => {
                        let take = (self.rbuf.len() as u64).min(sink.remaining) as usize;
                        sink.remaining -= take as u64;
                        (take, 0..take, sink.remaining == 0)
                    }
                };
                if ctx.config.max_body.is_some_and(|max| sink.written + data.len() as u64 > max) {
                    parse_error = Some(ParseError::PayloadTooLarge);
                    break;
                }
                if !data.is_empty() {
                    if let Err(e) = sink.reserve_ahead() {
                        outcome = Some(Err(e));
                        break;
                    }
                    let mut landed = 0;
                    let r = transfer::pwrite_counted(sink.fd.raw(), &self.rbuf[data.clone()], sink.offset, &mut landed, stats);
                    sink.offset += landed;
                    sink.written += landed;
                    if let Err(e) = r {
                        outcome = Some(Err(e));
                        break;
                    }
                }
                self.rbuf.advance(consumed);
                if done {
                    outcome = Some(Ok(sink.written));
                    break;
                }
                if consumed > 0 {
                    continue;
                }
                // Incomplete framing in the buffer: read more of it below.
            } else if sink.decoder.is_none() && sink.remaining == 0 {
                outcome = Some(Ok(sink.written));
                break;
            }
            if !self.readable {
                break;
            }
            // 2. Payload straight from the socket, when nothing is buffered.
            let payload = match sink.decoder.as_ref() {
                _ if !ctx.paths.splice_allowed() || self.transport.is_some() => None,
                Some(d) if self.rbuf.is_empty() => d.data_remaining().filter(|&n| n > 0),
                Some(_) => None,
                None => Some(sink.remaining),
            };
            if let Some(want) = payload {
                if ctx.config.max_body.is_some_and(|max| sink.written + want > max) {
                    // The chunk announced more than the limit allows: refused before it moves.
                    parse_error = Some(ParseError::PayloadTooLarge);
                    break;
                }
                if self.rx_pipe.is_none() {
                    match transfer::PipePair::new() {
                        Ok(p) => self.rx_pipe = Some(p),
                        Err(e) => {
                            outcome = Some(Err(e));
                            break;
                        }
                    }
                }
                if let Err(e) = sink.reserve_ahead() {
                    outcome = Some(Err(e));
                    break;
                }
                let pipe = self.rx_pipe.as_ref().expect("created above");
                let start = sink.offset;
                let step = transfer::splice_to_file(self.fd, pipe, sink.fd.raw(), &mut sink.offset, want, stats);
                if step.is_err() {
                    // Staged bytes that reached the file before the error are in it.
                    sink.written += sink.offset - start;
                }
                match step {
                    Ok(transfer::SinkStep::Moved(n)) => {
                        sink.written += n;
                        match sink.decoder.as_mut() {
                            Some(d) => d.skip_data(n),
                            None => sink.remaining -= n,
                        }
                        self.last_progress = ctx.now;
                    }
                    Ok(transfer::SinkStep::WouldBlock) => self.readable = false,
                    Ok(transfer::SinkStep::Eof) => {
                        self.read_eof = true;
                        self.readable = false;
                        outcome = Some(Err(body_error(libc::ECONNRESET)));
                        break;
                    }
                    Err(e) => {
                        let clean = transfer::pipe_is_clean(pipe);
                        if !clean {
                            self.rx_pipe = None;
                        }
                        if clean && matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)) {
                            // This destination cannot take splice: remember it, copy instead.
                            ctx.paths.refuse_splice();
                            crate::stats::bump(&stats.fallbacks, 1);
                            continue;
                        }
                        outcome = Some(Err(e));
                        break;
                    }
                }
                continue;
            }
            // 3. Framing bytes (chunk-size lines, trailers): small reads, so that payload
            // after them is left for splice. Without splice, plain large reads.
            let read_size = if ctx.paths.splice_allowed() && self.transport.is_none() { FRAMING_READ } else { BODY_READ_MAX.min(sink.remaining.max(READ_CHUNK as u64) as usize) };
            match recv(self.fd, &mut self.transport, &mut self.rbuf, read_size, stats) {
                Ok(RecvOutcome::Data { .. }) => self.last_progress = ctx.now,
                Ok(RecvOutcome::WouldBlock) => self.readable = false,
                Ok(RecvOutcome::Eof) => {
                    self.read_eof = true;
                    self.readable = false;
                    outcome = Some(Err(body_error(libc::ECONNRESET)));
                    break;
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    break;
                }
            }
        }
        if let Some(e) = parse_error {
            let errno = if e == ParseError::PayloadTooLarge { libc::EMSGSIZE } else { libc::EPROTO };
            // Claimed, or given back by the head handler (then spooled): the request is out.
            let dispatched = sink.on_done.is_some() || matches!(sink.spool, Some(Spool::Request(_)));
            sink.finish(Err(body_error(errno)));
            self.fail_body(e, dispatched, ctx);
            return Next::Continue;
        }
        match outcome {
            None => Next::Continue,
            Some(Ok(n)) => {
                if let Some(spool) = sink.spool.take() {
                    let trailers = sink.decoder.as_ref().map(|d| d.trailers().to_vec()).unwrap_or_default();
                    let fd = std::mem::replace(&mut sink.fd, crate::body::FileFd::Borrowed(-1));
                    let file = match fd {
                        crate::body::FileFd::Owned(fd) => std::fs::File::from(fd),
                        crate::body::FileFd::Borrowed(_) | crate::body::FileFd::Shared(_) => unreachable!("spool files are owned"),
                    };
                    self.reading = self.state_after_body();
                    let mut req = match spool {
                        Spool::Head(head) => {
                            let keep = std::mem::replace(&mut self.reading, Reading::Stopped);
                            let r = self.dispatch(head, Bytes::new(), ctx);
                            self.reading = keep;
                            r
                        }
                        Spool::Request(r) => r,
                    };
                    req.set_spooled(file, n);
                    req.set_trailers(trailers);
                    self.spooled_ready = Some(Box::new(req));
                    return Next::Continue;
                }
                sink.finish(Ok(n));
                self.reading = self.state_after_body();
                Next::Continue
            }
            Some(Err(e)) => {
                let spool = sink.spool.take();
                let errno = e.raw_os_error();
                sink.finish(Err(e));
                match spool {
                    // The spool file failed (not the client): its request gets an answer.
                    Some(spool) if !self.read_eof => self.fail_spool(spool, errno, ctx),
                    _ => self.abandon_body(),
                }
                Next::Continue
            }
        }
    }

    /// Starts writing the body of `spool`'s request into a fresh spool file, with `first`
    /// (bytes already decoded) written first. Gives the spool back if no spool file could be
    /// made (the body is then buffered), with the error if a Content-Length body will not fit
    /// in it (the request is then refused).
    fn start_spool(&mut self, spool: Spool, framing: BodyFraming, decoder: Option<Box<ChunkedDecoder>>, first: &[u8], ctx: &mut Ctx<'_>) -> Result<(), (Spool, Option<std::io::Error>)> {
        let file = match transfer::spool_file(&ctx.config.spool_dir) {
            Ok(f) => f,
            Err(_) => return Err((spool, None)),
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        if !first.is_empty() && transfer::pwrite_all(fd, first, 0, &ctx.shared.stats).is_err() {
            return Err((spool, None));
        }
        let remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        let reservation = match transfer::Reservation::start(fd, first.len() as u64, remaining) {
            Ok(r) => r,
            Err(e) => return Err((spool, Some(e))),
        };
        self.reading = Reading::ToFd(Box::new(FdSink {
            fd: crate::body::FileFd::Owned(std::os::fd::OwnedFd::from(file)),
            offset: first.len() as u64,
            written: first.len() as u64,
            remaining,
            decoder,
            on_done: None,
            spool: Some(spool),
            reservation,
        }));
        self.readable = true;
        Ok(())
    }

    /// Sends `100 Continue` when the client waits for it and the body is not here yet. Only
    /// when no earlier response is pending, since the interim response must not overtake them.
    fn maybe_continue(&mut self, expect: bool, body_len: usize, dispatched: bool) {
        // Earlier responses not yet queued would be overtaken; a dispatched request (head
        // handler path) is itself in `inflight`.
        if expect && self.inflight.len() <= usize::from(dispatched) && self.rbuf.len() < body_len {
            self.push_out(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        }
    }

    fn dispatch(&mut self, head: RequestHead, body: Bytes, ctx: &mut Ctx<'_>) -> Request {
        // After CONNECT the bytes that follow belong to a tunnel, never to HTTP: it is the last
        // request read on the connection (tunnel hand-off is not offered yet).
        let keep_alive = head.keep_alive() && head.method() != http::Method::CONNECT;
        let is_connect = head.method() == http::Method::CONNECT;
        // What follows a request that may switch protocols is not parsed until it is answered.
        self.upgrade_wait = is_connect || head.has_upgrade();
        let meta = Meta { is_head: head.is_head(), is_connect, version: head.version(), keep_alive };
        if ctx.hooks.access.is_some() {
            let started = self.head_started.unwrap_or(ctx.now);
            self.access.push_back(Some(AccessInfo { method: head.method().as_str().to_string(), target: head.target().to_string(), started }));
        }
        // A request that ends the connection is the last one read.
        self.reading = if meta.keep_alive { Reading::Head } else { Reading::Stopped };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.push_back(Slot::Waiting(meta));
        let link = Link { shared: ctx.shared.clone(), token: self.token, conn_id: self.id, seq, alive: self.alive.clone() };
        Request::new(head, body, self.peer, link)
    }

    /// Answers a malformed or over-limit request in order, then closes.
    fn fail(&mut self, err: ParseError, ctx: &mut Ctx<'_>) {
        let limit = matches!(err, ParseError::PayloadTooLarge | ParseError::UriTooLong | ParseError::HeadersTooLarge);
        self.fail_status(err.status(), limit, ctx);
    }

    /// A request body that cannot be read (malformed framing, over the limit). Its request is
    /// answered with the error status — unless it was already handed out (`dispatched`: claimed
    /// by the head handler or given back to be buffered) and answered, when nothing more is
    /// sent: one response per request, whoever gives it. Either way the connection closes after.
    fn fail_body(&mut self, err: ParseError, dispatched: bool, ctx: &mut Ctx<'_>) {
        if !dispatched {
            return self.fail(err, ctx);
        }
        // Dropped unanswered, a given-back request answers 500 later; its slot is settled here.
        self.pending_req = None;
        let stats = &ctx.shared.stats;
        bump(if err == ParseError::PayloadTooLarge { &stats.errors_limit } else { &stats.errors_parse }, 1);
        // Nothing is dispatched while a body is read, so the request's slot is the last one,
        // or gone (answered and sent).
        match self.inflight.back_mut() {
            Some(slot) if matches!(slot, Slot::Waiting(_)) => {
                let Slot::Waiting(meta) = *slot else { unreachable!() };
                let mut resp = Response::plain(err.status());
                resp.close = true;
                *slot = Slot::Ready(meta, resp, None);
                self.rbuf.clear();
                self.reading = Reading::Stopped;
            }
            _ => self.abandon_body(),
        }
    }

    fn fail_status(&mut self, status: u16, limit: bool, ctx: &mut Ctx<'_>) {
        let stats = &ctx.shared.stats;
        bump(if limit { &stats.errors_limit } else { &stats.errors_parse }, 1);
        self.rbuf.clear();
        self.reading = Reading::Stopped;
        let mut resp = Response::plain(status);
        resp.close = true;
        let meta = Meta { is_head: false, is_connect: false, version: Version::Http11, keep_alive: false };
        self.inflight.push_back(Slot::Ready(meta, resp, None));
        if ctx.hooks.access.is_some() {
            self.access.push_back(Some(AccessInfo { method: "-".into(), target: "-".into(), started: ctx.now }));
        }
        self.next_seq += 1;
    }

    /// Accepts the application's response for request `seq`.
    pub(crate) fn on_response(&mut self, seq: u64, resp: Response, keep: Option<Keep>) {
        let Some(idx) = seq.checked_sub(self.send_seq) else { return };
        if let Some(slot) = self.inflight.get_mut(idx as usize) {
            if let Slot::Waiting(meta) = *slot {
                *slot = Slot::Ready(meta, resp, keep);
            }
        }
    }

    fn push_out(&mut self, bytes: Bytes) {
        self.out.push_back(Chunk::Memory(bytes));
    }

    /// Moves responses that are ready, in order, into the send queue.
    fn queue_ready(&mut self, ctx: &mut Ctx<'_>) {
        while matches!(self.inflight.front(), Some(Slot::Ready(..))) {
            let Some(Slot::Ready(meta, resp, keep)) = self.inflight.pop_front() else { unreachable!() };
            let access = self.access.pop_front().flatten();
            self.send_seq += 1;
            if self.final_queued {
                continue;
            }
            self.queue_response(meta, resp, keep, access, ctx);
        }
    }

    fn queue_response(&mut self, meta: Meta, resp: Response, keep: Option<Keep>, access: Option<AccessInfo>, ctx: &mut Ctx<'_>) {
        let Response { status, mut headers, body, close, upgrade } = resp;
        // This request's answer is decided: parsing may go on (unless it is a hand-off).
        self.upgrade_wait = false;
        // A hand-off happens for 101, or for a 2xx to CONNECT; otherwise the function is told no.
        let upgrade = upgrade.filter(|_| status == 101 || (meta.is_connect && (200..300).contains(&status)));
        let mut keep_alive = meta.keep_alive && !close && !ctx.draining;
        let body_len = body.known_len();
        let mut has_body = h1::response_has_body(meta.is_head, status);
        let mut framing = h1::response_framing(meta.is_head, meta.version, status, body_len);
        if upgrade.is_some() {
            // The bytes that follow belong to the new protocol: no framing, no close.
            framing = h1::ResponseFraming::NoBody;
            has_body = false;
            keep_alive = true;
            if status == 101 {
                headers.push((http::header::CONNECTION, http::HeaderValue::from_static("upgrade")));
            }
        } else if meta.is_connect && (200..300).contains(&status) {
            // RFC 9110 §9.3.6: no Content-Length on a 2xx to CONNECT; nothing follows it here.
            framing = h1::ResponseFraming::NoBody;
            has_body = false;
        }
        if framing == h1::ResponseFraming::CloseDelimited {
            keep_alive = false;
        }
        let head = &mut *ctx.heads;
        debug_assert!(head.is_empty());
        if head.capacity() < 512 && !head.try_reclaim(HEAD_BUF) {
            *head = BytesMut::with_capacity(HEAD_BUF);
        }
        h1::write_response_head(head, status, &headers, framing, keep_alive, meta.version, ctx.date);
        let access = access.map(|a| {
            let strategy = if !has_body || body.is_empty() && body.known_len().is_some() {
                "none"
            } else if body.chunks().any(|c| matches!(c, Chunk::Source(_))) {
                "stream"
            } else if body.chunks().any(|c| matches!(c, Chunk::Fd(_))) {
                "splice"
            } else if body.chunks().any(|c| matches!(c, Chunk::File(_))) {
                // Regions up to small_file_read_max go out with the memory before them (read
                // into the worker's buffer when cached, else still by sendfile).
                let small = ctx.config.small_file_read_max as u64;
                if body.chunks().all(|c| !matches!(c, Chunk::File(r) if r.len > small)) { "read" } else { "sendfile" }
            } else {
                "writev"
            };
            let bytes = head.len() as u64 + if has_body { body.len() } else { 0 };
            Box::new((a, status, bytes, strategy))
        });
        let inline = has_body
            && body_len.is_some_and(|n| n <= ctx.config.inline_body_max as u64)
            && body.chunks().all(|c| matches!(c, Chunk::Memory(_)));
        if inline {
            for c in body.chunks() {
                if let Chunk::Memory(b) = c {
                    head.extend_from_slice(b);
                }
            }
            drop(body);
            let head = split_head(ctx.heads);
            self.push_out(head);
        } else {
            let head = split_head(ctx.heads);
            self.push_out(head);
            if has_body {
                framing::frame_body(body, framing == h1::ResponseFraming::Chunked, &mut self.out);
            }
        }
        self.out.push_back(Chunk::End);
        let hand_off = upgrade.is_some();
        self.marks.push_back(Mark { closes: !keep_alive, keep, upgrade, access });
        if !keep_alive || hand_off {
            self.final_queued = true;
            self.reading = Reading::Stopped;
        }
    }

    /// Queues ready responses and writes as much as the socket takes, polling body sources as
    /// they come up.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<'_>) -> Next {
        self.queue_ready(ctx);
        loop {
            if self.out.is_empty() || !self.writable || self.disk_wait {
                break;
            }
            let report = match self.transport.as_mut() {
                Some(t) => transfer::send_chain_via(t.as_mut(), &mut self.out, &ctx.shared.stats, ctx.paths),
                None => transfer::send_chain(self.fd, &mut self.out, &ctx.shared.stats, ctx.paths, &mut self.xfer, SEND_BUDGET),
            };
            if let Some((fd, from, to)) = self.xfer.take_prefetch()
                && !self.submit_warm(fd, from, to, ctx)
            {
                self.xfer.prefetch_refused();
            }
            if report.bytes > 0 {
                self.last_progress = ctx.now;
            }
            if self.out.is_empty() {
                // Their fds may be closed now and their numbers reused by the next answer's files.
                self.xfer.forget_files();
            }
            match self.responses_done(report.ends, ctx) {
                Next::Continue => {}
                other => return other,
            }
            match report.outcome {
                Ok(Sent::All) => break,
                Ok(Sent::Blocked) => {
                    self.writable = false;
                    break;
                }
                Ok(Sent::Budget) => {
                    self.yielded = true;
                    break;
                }
                Ok(Sent::Source) => match self.expand_source(ctx) {
                    Expand::More => continue,
                    Expand::Waiting => break,
                    Expand::Failed => return Next::Close(CloseReason::Io),
                },
                Ok(Sent::SourceBlocked(fd)) => {
                    self.watch_source_fd(fd, ctx);
                    break;
                }
                Ok(Sent::DiskBusy) => {
                    self.disk_wait = true;
                    break;
                }
                Ok(Sent::Cold { fd, offset, len }) => {
                    if self.submit_warm(fd, offset, offset + len, ctx) {
                        self.disk_wait = true;
                        break;
                    }
                    // No pool (or no dup): send anyway, blocking if we must.
                    self.xfer.mark_warm(fd, offset, offset + len);
                }
                Err(SendError::Truncated) => return Next::Close(CloseReason::Truncated),
                Err(SendError::Io(e)) => {
                    self.end_body(e.raw_os_error().unwrap_or(libc::ECONNRESET));
                    return Next::Close(CloseReason::Io);
                }
            }
        }
        self.after_send(ctx)
    }

    /// Polls the source at the front of the queue and puts what it produced ahead of it.
    fn expand_source(&mut self, ctx: &mut Ctx<'_>) -> Expand {
        let mut produced = 0usize;
        let mut at = 0usize;
        loop {
            let Some(Chunk::Source(src)) = self.out.get_mut(at) else { return Expand::More };
            match src.poll(SOURCE_BATCH.saturating_sub(produced)) {
                SourcePoll::Chunk(c) => {
                    produced += c.remaining() as usize;
                    let is_memory = matches!(c, Chunk::Memory(_));
                    self.out.insert(at, c);
                    at += 1;
                    // Gather small memory pieces into one send; anything else goes right away.
                    if !is_memory || produced >= SOURCE_BATCH {
                        return Expand::More;
                    }
                }
                SourcePoll::End(_) => {
                    self.out.remove(at);
                    return Expand::More;
                }
                SourcePoll::Failed(_) => return Expand::Failed,
                SourcePoll::Pending => {
                    if at > 0 {
                        return Expand::More;
                    }
                    let shared = ctx.shared.clone();
                    let (token, conn_id) = (self.token, self.id);
                    let waker = src.waker().clone();
                    waker.attach(Box::new(move || {
                        let _ = shared.send(Msg::Wake { token, conn_id });
                    }));
                    if waker.take_early() {
                        continue;
                    }
                    return Expand::Waiting;
                }
            }
        }
    }

    /// Hands `[from, to)` of a file to the disk pool to be read in (a cold range the
    /// connection waits for, or a read-ahead); `DiskDone` reports back either way.
    fn submit_warm(&mut self, fd: RawFd, from: u64, to: u64, ctx: &mut Ctx<'_>) -> bool {
        let Some(pool) = ctx.disk else { return false };
        let Ok(own) = transfer::dup_fd(fd) else { return false };
        let shared = ctx.shared.clone();
        let (token, conn_id) = (self.token, self.id);
        let job = Box::new(move || {
            transfer::warm(std::os::fd::AsRawFd::as_raw_fd(&own), from, to - from);
            drop(own);
            let _ = shared.send(Msg::DiskDone { token, conn_id, fd, offset: from, end: to });
        });
        if pool.submit(job).is_err() {
            return false;
        }
        bump(&ctx.shared.stats.cold_offloads, 1);
        self.xfer.mark_reading(fd, from, to);
        true
    }

    /// The application wants more of a paused streamed body. The body read timeout counts
    /// from now: the time the application held the read back was not the client's to use.
    pub(crate) fn resume_body(&mut self, now: Instant) {
        if let Reading::Stream(s) = &mut self.reading {
            if s.paused {
                self.last_progress = self.last_progress.max(now);
            }
            s.paused = false;
            // Data may be waiting in the socket since we stopped reading.
            self.readable = true;
        }
    }

    /// A claimed body still being read ends here with `errno` (a body that arrived whole but
    /// was not reported yet, because its reader paused on the last piece, ends without error).
    /// Its callback runs now, once; the sink's Drop then has nothing left to report.
    fn end_body(&mut self, errno: i32) {
        match &mut self.reading {
            Reading::Stream(s) => {
                if let Some(f) = s.on_end.take() {
                    f(s.delivered, (!s.finished).then(|| body_error(errno)));
                }
            }
            Reading::ToFd(s) => s.finish(Err(body_error(errno))),
            _ => {}
        }
    }

    /// The connection closes for `reason`: a claimed body still being read learns why.
    pub(crate) fn abort_body(&mut self, reason: CloseReason) {
        self.end_body(reason.body_errno());
    }

    /// The disk pool brought a range into the page cache.
    pub(crate) fn on_disk_done(&mut self, fd: RawFd, offset: u64, end: u64) {
        self.disk_wait = false;
        self.xfer.pool_done(fd, offset, end);
    }

    /// Waits for a pipe or socket source to become readable (edge-triggered, like the socket).
    fn watch_source_fd(&mut self, fd: RawFd, ctx: &mut Ctx<'_>) {
        if self.watched_fd == Some(fd) {
            return;
        }
        self.unwatch_source_fd(ctx.registry);
        let token = mio::Token(self.token | SOURCE_TOKEN_BIT);
        if ctx.registry.register(&mut mio::unix::SourceFd(&fd), token, mio::Interest::READABLE).is_ok() {
            self.watched_fd = Some(fd);
        }
    }

    pub(crate) fn unwatch_source_fd(&mut self, registry: &mio::Registry) {
        if let Some(fd) = self.watched_fd.take() {
            // The fd may already be closed (its chunk finished); epoll forgot it then.
            let _ = registry.deregister(&mut mio::unix::SourceFd(&fd));
        }
    }

    /// `n` responses have fully left: release what they kept, close after a final one.
    fn responses_done(&mut self, n: usize, ctx: &mut Ctx<'_>) -> Next {
        for _ in 0..n {
            let Some(Mark { closes, keep, upgrade, access }) = self.marks.pop_front() else { break };
            drop(keep);
            bump(&ctx.shared.stats.responses, 1);
            if let (Some(f), Some(a)) = (ctx.hooks.access.as_ref(), access) {
                let (info, status, bytes, strategy) = *a;
                f(&AccessRecord {
                    method: &info.method,
                    target: &info.target,
                    status,
                    bytes,
                    duration: Instant::now().saturating_duration_since(info.started),
                    strategy,
                    peer: self.peer,
                });
            }
            if let Some(up) = upgrade {
                return Next::HandOff(up);
            }
            if closes {
                return self.start_linger(ctx);
            }
        }
        Next::Continue
    }

    /// For a hand-off: a descriptor of the connection's own and the bytes already read.
    pub(crate) fn take_for_hand_off(&mut self) -> std::io::Result<(std::os::fd::OwnedFd, Bytes)> {
        if self.transport.is_some() {
            return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no hand-off of a custom transport"));
        }
        let fd = transfer::dup_fd(self.fd)?;
        Ok((fd, std::mem::take(&mut self.rbuf).freeze()))
    }

    fn after_send(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.lingering.is_some() {
            return Next::Continue;
        }
        if self.watched_fd.is_some() && !matches!(self.out.front(), Some(Chunk::Fd(_))) {
            self.unwatch_source_fd(ctx.registry);
        }
        let idle = self.out.is_empty() && self.inflight.is_empty();
        if idle && (ctx.draining || (self.read_eof && self.rbuf.is_empty())) {
            // Nothing more will come (or may be accepted): a half-closed peer got its answers.
            return Next::Close(if ctx.draining { CloseReason::Shutdown } else { CloseReason::Done });
        }
        if self.read_eof && !matches!(self.reading, Reading::Head | Reading::Stopped) {
            // The peer stopped inside a body: that request is abandoned (a claimed body ends
            // with ECONNRESET), but complete requests before it are still answered.
            self.end_body(libc::ECONNRESET);
            self.reading = Reading::Stopped;
            self.rbuf.clear();
            // A request given back by the head handler was waiting for this body: dropping it
            // answers 500 and closes, so its slot does not wait forever.
            self.pending_req = None;
            if self.out.is_empty() && self.inflight.is_empty() {
                return Next::Close(CloseReason::Done);
            }
        }
        Next::Continue
    }

    /// After the final response: stop writing, and read away what the peer still sends so our
    /// close does not turn into a reset that destroys the response in flight.
    fn start_linger(&mut self, ctx: &mut Ctx<'_>) -> Next {
        self.reading = Reading::Stopped;
        match (&self.sock, self.transport.as_mut()) {
            (Some(sock), _) => {
                let _ = sock.shutdown(std::net::Shutdown::Write);
            }
            (None, Some(t)) => t.shutdown_write(),
            (None, None) => {}
        }
        if self.read_eof {
            return Next::Close(CloseReason::Done);
        }
        self.lingering = Some((ctx.now + LINGER, 0));
        self.readable = true;
        self.fill(ctx)
    }

    fn linger_read(&mut self, ctx: &mut Ctx<'_>, until: Instant, mut drained: u64) -> Next {
        while self.readable {
            self.rbuf.clear();
            match recv(self.fd, &mut self.transport, &mut self.rbuf, READ_CHUNK, &ctx.shared.stats) {
                Ok(RecvOutcome::Data { n, .. }) => {
                    drained += n as u64;
                    if drained > LINGER_MAX_BYTES {
                        return Next::Close(CloseReason::Done);
                    }
                }
                Ok(RecvOutcome::WouldBlock) => self.readable = false,
                Ok(RecvOutcome::Eof) | Err(_) => return Next::Close(CloseReason::Done),
            }
        }
        self.rbuf.clear();
        self.lingering = Some((until, drained));
        Next::Continue
    }

    /// Between requests a keep-alive connection keeps no buffers: its read buffer goes back to
    /// the worker's spares and its queues give their memory back, so thousands of idle
    /// connections cost little more than their `Conn`. (A connection about to take its small
    /// form keeps its queues: they go to the worker's spares with its `Conn` box, see
    /// `into_idle`.) Returns whether the connection can take its small form (`can_idle`, asked
    /// once here for the worker's `rest` too).
    pub(crate) fn park_if_idle(&mut self, spares: &mut Vec<BytesMut>) -> bool {
        if !self.between_requests() {
            return false;
        }
        if self.rbuf.capacity() > 0 {
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.clear();
            // What parsing consumed is still ahead of the buffer's start: take the whole buffer
            // back (no allocation; fails only while a request body still shares it).
            let _ = buf.try_reclaim(READ_CHUNK);
            if spares.len() < SPARE_READ_BUFS && (READ_CHUNK..=4 * READ_CHUNK).contains(&buf.capacity()) {
                spares.push(buf);
            }
        }
        if self.can_idle() {
            return true;
        }
        // Small queues refill from the allocator's per-thread cache on the next request.
        self.drop_queues();
        false
    }

    fn drop_queues(&mut self) {
        if self.inflight.capacity() > 0 {
            self.inflight = VecDeque::new();
        }
        if self.out.capacity() > 0 {
            self.out = VecDeque::new();
        }
        if self.marks.capacity() > 0 {
            self.marks = VecDeque::new();
        }
        if self.access.capacity() > 0 {
            self.access = VecDeque::new();
        }
    }

    /// Waiting for the next request head, with nothing read of it and nothing left to send.
    fn between_requests(&self) -> bool {
        matches!(self.reading, Reading::Head)
            && self.rbuf.is_empty()
            && self.inflight.is_empty()
            && self.out.is_empty()
            && self.head_started.is_none()
            && self.pending_req.is_none()
    }

    pub(crate) fn compute_deadline(&mut self, config: &Config) {
        self.deadline = if let Some((until, _)) = self.lingering {
            Some(until)
        } else if !self.out.is_empty() {
            Some(self.last_progress + config.send_timeout)
        } else {
            match self.reading {
                Reading::Head if !self.rbuf.is_empty() || self.head_started.is_some() => {
                    self.head_started.map(|t| t + config.header_read_timeout)
                }
                Reading::Head if self.inflight.is_empty() => Some(self.last_progress + config.idle_timeout),
                // A paused read waits for the application, not for the peer.
                Reading::Stream(ref st) if st.paused => None,
                Reading::Body { .. }
                | Reading::Chunked { .. }
                | Reading::ToFd(_)
                | Reading::Discard { .. }
                | Reading::Stream(_)
                | Reading::DiscardChunked(_) => Some(self.last_progress + config.body_read_timeout),
                _ => None,
            }
        };
    }

    /// The deadline passed: decide what to tell the peer before closing.
    pub(crate) fn on_deadline(&mut self, ctx: &mut Ctx<'_>) -> Next {
        let partial_head = matches!(self.reading, Reading::Head) && !self.rbuf.is_empty() && self.out.is_empty() && self.inflight.is_empty();
        if partial_head {
            // Best effort: a slow client learns why; no waiting for it to read.
            let mut resp = Response::plain(408);
            resp.close = true;
            let meta = Meta { is_head: false, is_connect: false, version: Version::Http11, keep_alive: false };
            self.queue_response(meta, resp, None, None, ctx);
            self.writable = true;
            let _ = match self.transport.as_mut() {
                Some(t) => transfer::send_chain_via(t.as_mut(), &mut self.out, &ctx.shared.stats, ctx.paths),
                None => transfer::send_chain(self.fd, &mut self.out, &ctx.shared.stats, ctx.paths, &mut self.xfer, SEND_BUDGET),
            };
        }
        if self.lingering.is_some() {
            return Next::Close(CloseReason::Done);
        }
        // Also when the request was answered already and the close counts as Done.
        self.end_body(libc::ETIMEDOUT);
        let idle = self.rbuf.is_empty() && self.out.is_empty() && self.inflight.is_empty();
        Next::Close(if idle { CloseReason::Done } else { CloseReason::Timeout })
    }

    /// Shutdown began: idle connections close now, busy ones after their in-flight responses.
    pub(crate) fn on_drain(&mut self) -> Next {
        let idle = self.out.is_empty() && self.inflight.is_empty() && self.lingering.is_none();
        if idle {
            return Next::Close(CloseReason::Shutdown);
        }
        if matches!(self.reading, Reading::Head) {
            self.reading = Reading::Stopped;
        }
        Next::Continue
    }

    /// Tears the connection down; requests still held by the application learn it on respond.
    pub(crate) fn shutdown(&mut self, registry: &mio::Registry) {
        self.unwatch_source_fd(registry);
        if let Some(w) = self.transport_waker.take() {
            w.detach();
        }
        self.alive.store(false, Ordering::Release);
        self.out.clear();
        self.inflight.clear();
        self.marks.clear();
    }
}
