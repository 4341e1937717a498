//! One worker: a mio event loop that owns its listeners, its connections and their timers.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::engine::conn::{CloseReason, Conn, Ctx, Dispatch, Next, SOURCE_TOKEN_BIT};
use crate::engine::shared::{Msg, WorkerShared};
use crate::engine::slots::{busy, busy_if, park, rest, Slot, Spares};
use crate::engine::request::ClaimState;
use crate::engine::{Handler, HeadHandler};
use crate::h1::DateCache;
use crate::stats::{bump, drop_by};
use crate::transfer::PathMemory;

/// The context a connection step needs, borrowed field by field from the worker (a method
/// would borrow the whole worker while one of its connections is borrowed too).
macro_rules! worker_ctx {
    ($w:ident, $date:ident, $now:ident) => {
        Ctx {
            config: &$w.config,
            registry: $w.poll.registry(),
            shared: &$w.shared,
            date: &$date,
            paths: &mut $w.paths,
            read_bufs: &mut $w.spares.read_bufs,
            heads: &mut $w.heads,
            disk: $w.disk.as_deref(),
            hooks: &$w.hooks,
            now: $now,
            draining: $w.draining.is_some(),
            head_stage: $w.head_handler.is_some(),
        }
    };
}

pub(crate) const WAKER: Token = Token(usize::MAX);
/// Listener tokens count down from here; connection tokens are slab indices.
const LISTENER_BASE: usize = usize::MAX - 1;

pub(crate) struct Worker {
    poll: Poll,
    shared: Arc<WorkerShared>,
    config: Arc<Config>,
    handler: Handler,
    head_handler: Option<HeadHandler>,
    disk: Option<Arc<crate::engine::disk::DiskPool>>,
    hooks: Arc<crate::engine::hooks::Hooks>,
    /// Each with whether its congestion control leaves the connections it accepts unpaced
    /// (they inherit it), read once when it is added.
    listeners: Vec<(mio::net::TcpListener, bool)>,
    conns: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    next_conn_id: u64,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    date: DateCache,
    /// Wall-clock seconds read once per turn, after the wait, for the `Date` header: one clock
    /// read per turn rather than one per connection driven (nginx caches its time the same way).
    unix_secs: u64,
    paths: PathMemory,
    /// Read buffers and `Conn` boxes of connections that went idle, for the next connection
    /// that wakes up: an idle keep-alive connection holds neither, a busy one costs no malloc
    /// per request.
    spares: Spares,
    /// Response heads are written here (see `conn::HEAD_BUF`).
    heads: bytes::BytesMut,
    /// Connections that used up their send budget while still writable: driven again after
    /// this turn's events, before waiting.
    posted: Vec<usize>,
    draining: Option<Instant>,
    inbox: Vec<Msg>,
    events: Events,
}

impl Worker {
    pub(crate) fn new(
        poll: Poll,
        shared: Arc<WorkerShared>,
        config: Arc<Config>,
        handler: Handler,
        head_handler: Option<HeadHandler>,
        disk: Option<Arc<crate::engine::disk::DiskPool>>,
        hooks: Arc<crate::engine::hooks::Hooks>,
    ) -> Self {
        let mut paths = PathMemory::default();
        paths.probe_cold(disk.is_some());
        paths.small_file_read_max(config.small_file_read_max);
        if config.force_copy {
            paths.refuse_sendfile();
            paths.refuse_splice();
        }
        Worker {
            poll,
            shared,
            config,
            handler,
            head_handler,
            disk,
            hooks,
            listeners: Vec::new(),
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_conn_id: 1,
            timers: BinaryHeap::new(),
            date: DateCache::new(),
            unix_secs: unix_now(),
            paths,
            spares: Spares::default(),
            heads: bytes::BytesMut::new(),
            posted: Vec::new(),
            draining: None,
            inbox: Vec::new(),
            events: Events::with_capacity(1024),
        }
    }

    /// Runs until shutdown completes (worker-thread mode).
    pub(crate) fn run(mut self) {
        self.shared.set_owner();
        while self.turn(None) {}
        self.finish();
    }

    /// One turn of the loop: apply queued messages, wait for events at most `max_wait` (and
    /// never past the next timer), handle them, fire due timers. False once shutdown is
    /// complete (then call `finish`).
    pub(crate) fn turn(&mut self, max_wait: Option<Duration>) -> bool {
        self.process_inbox();
        if let Some(until) = self.draining {
            if self.live == 0 || Instant::now() >= until {
                return false;
            }
        }
        let timeout = match (self.poll_timeout(), max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, timeout);
        if let Err(e) = polled {
            self.events = events;
            return e.kind() == io::ErrorKind::Interrupted;
        }
        let now = Instant::now();
        self.unix_secs = unix_now();
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => self.accept(LISTENER_BASE - t, now),
                Token(t) if t & SOURCE_TOKEN_BIT != 0 => {
                    let t = t & !SOURCE_TOKEN_BIT;
                    if self.conns.get(t).is_some_and(Slot::is_used) {
                        self.drive(t, now);
                    }
                }
                Token(t) => {
                    // An idle connection told only that it can write stays small.
                    let quiet = !(event.is_readable() || event.is_read_closed() || event.is_error());
                    if quiet && let Some(Slot::Idle(idle)) = self.conns.get_mut(t) {
                        idle.writable = true;
                        continue;
                    }
                    if let Some(conn) = busy(&mut self.conns, t, &mut self.spares) {
                        conn.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                        conn.peer_closing |= event.is_read_closed() || event.is_error();
                        conn.writable |= event.is_writable() || event.is_write_closed() || event.is_error();
                        self.drive(t, now);
                    }
                }
            }
        }
        self.events = events;
        self.drive_posted(now);
        let now = Instant::now();
        self.fire_timers(now);
        if self.config.file_cache_entries > 0 {
            self.shared.file_cache().sweep_if_due(now);
        }
        // Answers given during this turn (handlers, release callbacks) go out before waiting.
        self.process_inbox();
        true
    }

    /// Milliseconds until a timer needs a turn (-1: none).
    pub(crate) fn next_timeout_ms(&self) -> i64 {
        match self.poll_timeout() {
            Some(d) => d.as_millis().min(i64::MAX as u128) as i64,
            None => -1,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<WorkerShared> {
        &self.shared
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.posted.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let sweep = if self.config.file_cache_entries > 0 { self.shared.file_cache().next_sweep() } else { None };
        let next = [timer, self.draining, sweep].into_iter().flatten().min();
        next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn process_inbox(&mut self) {
        let mut inbox = std::mem::take(&mut self.inbox);
        loop {
            self.shared.take(&mut inbox);
            if inbox.is_empty() {
                break;
            }
            let now = Instant::now();
            // Messages may have waited since the last turn (in external-loop mode the host can
            // be away for long): the answers they carry get today's `Date`.
            self.unix_secs = unix_now();
            for msg in inbox.drain(..) {
                self.handle_msg(msg, now);
            }
        }
        self.inbox = inbox;
    }

    fn handle_msg(&mut self, msg: Msg, now: Instant) {
        match msg {
            Msg::Respond { token, conn_id, seq, resp, keep } => {
                if let Some(conn) = busy_if(&mut self.conns, token, conn_id, &mut self.spares) {
                    conn.on_response(seq, resp, keep);
                    self.drive(token, now);
                }
            }
            Msg::ResumeBody { token, conn_id } => {
                if let Some(conn) = busy_if(&mut self.conns, token, conn_id, &mut self.spares) {
                    conn.resume_body(now);
                    self.drive(token, now);
                }
            }
            Msg::DiskDone { token, conn_id, fd, offset, end } => {
                if let Some(conn) = busy_if(&mut self.conns, token, conn_id, &mut self.spares) {
                    conn.on_disk_done(fd, offset, end);
                    self.drive(token, now);
                }
            }
            Msg::Wake { token, conn_id } => {
                if self.conns.get(token).and_then(Slot::id) == Some(conn_id) {
                    self.drive(token, now);
                }
            }
            Msg::AddListener(mut listener) => {
                if self.draining.is_some() {
                    return;
                }
                let token = Token(LISTENER_BASE - self.listeners.len());
                if self.poll.registry().register(&mut listener, token, Interest::READABLE).is_ok() {
                    let unpaced = !crate::transfer::paces(listener.as_raw_fd());
                    self.listeners.push((listener, unpaced));
                    // Connections may already be waiting in the backlog.
                    self.accept(self.listeners.len() - 1, now);
                }
            }
            Msg::Shutdown { grace } => self.begin_drain(now + grace, now),
            Msg::AdoptTransport { transport, peer, waker } => {
                if self.draining.is_some() {
                    return;
                }
                bump(&self.shared.stats.connections_accepted, 1);
                let token = self.free.pop().unwrap_or_else(|| {
                    self.conns.push(Slot::Free);
                    self.conns.len() - 1
                });
                let id = self.next_conn_id;
                self.next_conn_id += 1;
                let shared = self.shared.clone();
                waker.attach(Box::new(move || {
                    let _ = shared.send(Msg::TransportReady { token, conn_id: id });
                }));
                let _ = waker.take_early();
                self.conns[token] = Slot::Busy(Box::new(Conn::over_transport(id, token, transport, waker, peer, now)));
                self.live += 1;
                bump(&self.shared.stats.connections_active, 1);
                self.drive(token, now);
            }
            Msg::TransportReady { token, conn_id } => {
                if let Some(conn) = busy_if(&mut self.conns, token, conn_id, &mut self.spares) {
                    conn.readable = true;
                    conn.writable = true;
                    self.drive(token, now);
                }
            }
            Msg::Adopt { stream, peer, initial } => {
                if self.draining.is_some() {
                    return;
                }
                bump(&self.shared.stats.connections_accepted, 1);
                let _ = stream.set_nodelay(true);
                // The host made this socket: ask it what it paces with (one getsockopt).
                let unpaced = !crate::transfer::paces(stream.as_raw_fd());
                if let Some(token) = self.add_conn(stream, peer, unpaced, now) {
                    if let Some(conn) = busy(&mut self.conns, token, &mut self.spares) {
                        conn.prefill(&initial);
                    }
                    self.drive(token, now);
                }
            }
        }
    }

    fn begin_drain(&mut self, until: Instant, now: Instant) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(until);
        for (mut l, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        for t in 0..self.conns.len() {
            let next = match busy(&mut self.conns, t, &mut self.spares) {
                Some(conn) => conn.on_drain(),
                None => continue,
            };
            match next {
                Next::Close(reason) => self.close(t, reason),
                Next::HandOff(up) => self.hand_off(t, up),
                Next::Continue => self.drive(t, now),
            }
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let Some((listener, unpaced)) = self.listeners.get(index) else { return };
            let unpaced = *unpaced;
            match listener.accept() {
                Ok((sock, peer)) => {
                    bump(&self.shared.stats.connections_accepted, 1);
                    if self.live >= self.config.max_connections_per_worker {
                        bump(&self.shared.stats.connections_closed, 1);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    // Nothing has arrived yet: the connection waits in its small form.
                    if let Some(token) = self.add_conn(sock, peer, unpaced, now) {
                        park(&mut self.conns, token, &mut self.spares);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of fds or memory: leave the rest in the backlog; the next readiness
                // event (or connection) retries.
                Err(e) => {
                    self.hooks.log(crate::engine::hooks::LogLevel::Error, || format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    /// `unpaced`: the socket's congestion control does not pace (see `transfer::paces`).
    fn add_conn(&mut self, sock: mio::net::TcpStream, peer: std::net::SocketAddr, unpaced: bool, now: Instant) -> Option<usize> {
        let token = self.free.pop().unwrap_or_else(|| {
            self.conns.push(Slot::Free);
            self.conns.len() - 1
        });
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        // A spare box: the connection takes its small form at once and gives it back, and a
        // new box per connection would leave the spares growing while connections rest.
        let mut conn = Conn::boxed(Conn::new(id, token, sock, peer, now), self.spares.conns.pop());
        conn.set_unpaced(unpaced);
        if self
            .poll
            .registry()
            .register(conn.sock.as_mut().expect("a socket connection"), Token(token), Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            self.free.push(token);
            bump(&self.shared.stats.connections_closed, 1);
            return None;
        }
        self.conns[token] = Slot::Busy(conn);
        self.live += 1;
        bump(&self.shared.stats.connections_active, 1);
        self.schedule(token);
        Some(token)
    }

    /// Runs a connection as far as it can go: read, parse, call handlers, write.
    fn drive(&mut self, token: usize, now: Instant) {
        let date: [u8; 29] = self.date.get(self.unix_secs).try_into().unwrap_or([b' '; 29]);
        loop {
            let Some(conn) = busy(&mut self.conns, token, &mut self.spares) else { return };
            let mut ctx = worker_ctx!(self, date, now);
            if let Next::Close(reason) = conn.fill(&mut ctx) {
                self.close(token, reason);
                return;
            }
            let request = conn.next_request(&mut ctx);
            match request {
                Some(Dispatch::Head(req, claim)) => {
                    let head = self.head_handler.clone().expect("head stage only with a head handler");
                    let back = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| head(req))).unwrap_or(None);
                    let claimed = match std::mem::replace(&mut *claim.lock().unwrap_or_else(|e| e.into_inner()), ClaimState::Closed) {
                        ClaimState::Claimed(c) => Some(c),
                        _ => None,
                    };
                    self.process_inbox_for(token, now);
                    let Some(conn) = busy(&mut self.conns, token, &mut self.spares) else { return };
                    let mut ctx = worker_ctx!(self, date, now);
                    conn.after_head(back, claimed, &mut ctx);
                    continue;
                }
                Some(Dispatch::Full(req)) => {
                    let handler = self.handler.clone();
                    // A panicking handler drops the request while unwinding, which queues a 500.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(req)));
                    // Responses given inside the handler are applied before anything else.
                    self.process_inbox_for(token, now);
                    continue;
                }
                None => {
                    let next = conn.flush(&mut ctx);
                    match next {
                        Next::Close(reason) => {
                            self.close(token, reason);
                            return;
                        }
                        Next::HandOff(up) => {
                            self.hand_off(token, up);
                            return;
                        }
                        Next::Continue => {}
                    }
                    // Sending may have freed pipeline slots or revealed more input.
                    let again = (conn.readable && conn.wants_input(&self.config)) || conn.can_parse_more(&self.config);
                    if !again {
                        break;
                    }
                }
            }
        }
        if let Some(Slot::Busy(conn)) = self.conns.get(token)
            && conn.yielded
            && !self.posted.contains(&token)
        {
            self.posted.push(token);
        }
        self.schedule(token);
        rest(&mut self.conns, token, &mut self.spares);
    }

    /// Gives each connection that yielded its send budget another turn, in order.
    fn drive_posted(&mut self, now: Instant) {
        let batch = std::mem::take(&mut self.posted);
        for &token in &batch {
            let Some(Slot::Busy(conn)) = self.conns.get_mut(token) else { continue };
            if std::mem::take(&mut conn.yielded) {
                conn.writable = true;
                self.drive(token, now);
            }
        }
    }

    /// Applies queued messages; a response for `token` itself is applied without recursing.
    fn process_inbox_for(&mut self, token: usize, now: Instant) {
        let mut inbox = std::mem::take(&mut self.inbox);
        self.shared.take(&mut inbox);
        for msg in inbox.drain(..) {
            match msg {
                // Messages for the connection being driven are applied without driving it
                // again: the caller's loop is in the middle of it (a nested drive would run
                // before the head handler's claim is set up, and never deliver the body).
                Msg::Respond { token: t, conn_id, seq, resp, keep } if t == token => {
                    if let Some(conn) = self.own_conn(t, conn_id) {
                        conn.on_response(seq, resp, keep);
                    }
                }
                Msg::ResumeBody { token: t, conn_id } if t == token => {
                    if let Some(conn) = self.own_conn(t, conn_id) {
                        conn.resume_body(now);
                    }
                }
                Msg::DiskDone { token: t, conn_id, fd, offset, end } if t == token => {
                    if let Some(conn) = self.own_conn(t, conn_id) {
                        conn.on_disk_done(fd, offset, end);
                    }
                }
                Msg::TransportReady { token: t, conn_id } if t == token => {
                    if let Some(conn) = self.own_conn(t, conn_id) {
                        conn.readable = true;
                        conn.writable = true;
                    }
                }
                Msg::Wake { token: t, .. } if t == token => {}
                other => self.handle_msg(other, now),
            }
        }
        self.inbox = inbox;
    }

    /// The connection at `token` if it is still the one with `conn_id`.
    fn own_conn(&mut self, token: usize, conn_id: u64) -> Option<&mut Conn> {
        busy_if(&mut self.conns, token, conn_id, &mut self.spares)
    }

    fn schedule(&mut self, token: usize) {
        let Some(Slot::Busy(conn)) = self.conns.get_mut(token) else { return };
        conn.compute_deadline(&self.config);
        if let Some(d) = conn.deadline {
            if conn.scheduled.is_none_or(|s| d < s) {
                conn.scheduled = Some(d);
                self.timers.push(Reverse((d, token, conn.id)));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, token, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some((conn_id, scheduled, deadline)) = self.conns.get_mut(token).and_then(Slot::timer) else { continue };
            if conn_id != id || *scheduled != Some(t) {
                continue;
            }
            *scheduled = None;
            match deadline {
                Some(d) if d <= now => {
                    let date = self.date.get(self.unix_secs).to_vec();
                    let Some(conn) = busy(&mut self.conns, token, &mut self.spares) else { continue };
                    let mut ctx = worker_ctx!(self, date, now);
                    if let Next::Close(reason) = conn.on_deadline(&mut ctx) {
                        self.close(token, reason);
                    }
                }
                Some(d) => {
                    *scheduled = Some(d);
                    self.timers.push(Reverse((d, token, id)));
                }
                None => {}
            }
        }
    }

    /// Gives a connection whose 101 (or CONNECT 2xx) has left to the application: its own
    /// descriptor plus the bytes already read; the engine forgets the connection.
    fn hand_off(&mut self, token: usize, up: crate::engine::response::Upgrade) {
        let taken = match busy(&mut self.conns, token, &mut self.spares) {
            Some(conn) => conn.take_for_hand_off(),
            None => return,
        };
        self.close(token, CloseReason::Done);
        if let Ok((fd, rest)) = taken {
            up.complete(fd, rest);
        }
        // On a failed dup `up` is dropped here, which reports the failed hand-off.
    }

    fn close(&mut self, token: usize, reason: CloseReason) {
        let mut conn = match self.conns.get_mut(token).map(|slot| std::mem::replace(slot, Slot::Free)) {
            Some(Slot::Busy(conn)) => conn,
            Some(Slot::Idle(idle)) => Conn::from_idle(idle, token, None),
            _ => return,
        };
        if let Some(sock) = conn.sock.as_mut() {
            let _ = self.poll.registry().deregister(sock);
        }
        conn.shutdown(self.poll.registry());
        // A claimed body still being read hears why (ETIMEDOUT, ECANCELED …); the connection
        // is already marked gone, so answering from that callback gets ZH_ERR_CLOSED.
        conn.abort_body(reason);
        if reason != CloseReason::Done && reason != CloseReason::Shutdown {
            self.hooks.log(crate::engine::hooks::LogLevel::Info, || format!("connection from {} closed: {reason:?}", conn.peer()));
        }
        let stats = &self.shared.stats;
        match reason {
            CloseReason::Io => bump(&stats.errors_io, 1),
            CloseReason::Timeout => bump(&stats.errors_timeout, 1),
            CloseReason::Truncated => bump(&stats.errors_truncated, 1),
            CloseReason::Done | CloseReason::Shutdown => {}
        }
        bump(&stats.connections_closed, 1);
        drop_by(&stats.connections_active, 1);
        self.live -= 1;
        self.free.push(token);
        drop(conn);
    }

    pub(crate) fn finish(&mut self) {
        for t in 0..self.conns.len() {
            if self.conns[t].is_used() {
                self.close(t, CloseReason::Shutdown);
            }
        }
        for (mut l, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        // Whatever arrives from now on is refused by the queue itself; drop what is there.
        let leftover = self.shared.close();
        drop(leftover);
        // Cached files close with the worker, not whenever the engine handle is freed.
        self.shared.file_cache().clear();
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
