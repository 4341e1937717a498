//! The small form of a keep-alive connection between requests.
//!
//! Most connections of a busy server are idle most of the time. A whole `Conn` (queues, parser
//! state, pipes, timers: about 730 bytes) is kept only while a connection has something to do,
//! and for the last few to go idle (`slots::rest`); between requests the worker keeps just what
//! is needed to wake it up again — the socket, who it is, where its request numbering stands
//! and its keep-alive deadline.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::Conn;
use crate::engine::slots::Spares;

/// `Conn` boxes a worker keeps for reuse. Each idle-to-busy wake-up takes one; a worker whose
/// events wake more connections at once than this allocates the rest.
const SPARE_CONNS: usize = 64;
/// Queue capacity (entries) a spare `Conn` keeps; a burst of pipelining beyond it is not kept.
const SPARE_QUEUE_MAX: usize = 16;

/// An idle keep-alive connection: no buffers, no queues, nothing in flight.
pub(crate) struct IdleConn {
    pub(crate) id: u64,
    sock: mio::net::TcpStream,
    peer: SocketAddr,
    /// Shared with request handles the application may still hold (they outlive the answer).
    alive: Arc<AtomicBool>,
    /// Request numbering continues after the pause, so a late message for an earlier request
    /// can never be taken for a new one.
    next_seq: u64,
    last_progress: Instant,
    readable: bool,
    pub(crate) writable: bool,
    /// The socket's congestion control does not pace (sizes its `sendfile` calls).
    unpaced: bool,
    pub(crate) deadline: Option<Instant>,
    pub(crate) scheduled: Option<Instant>,
}

impl Conn {
    /// True when nothing but the socket and the keep-alive deadline is left to keep.
    pub(crate) fn can_idle(&self) -> bool {
        self.between_requests()
            && self.sock.is_some()
            && self.transport.is_none()
            && self.marks.is_empty()
            && self.access.is_empty()
            && self.send_seq == self.next_seq
            && self.head_wait.is_none()
            && self.spooled_ready.is_none()
            && self.lingering.is_none()
            && self.watched_fd.is_none()
            && self.xfer.pipe.is_none()
            && self.rx_pipe.is_none()
            && !self.read_eof
            && !self.peer_closing
            && !self.final_queued
            && !self.upgrade_wait
            && !self.disk_wait
            && !self.window_blocked
            && !self.yielded
    }

    /// The small form of a connection for which `can_idle` holds; its read buffer and its
    /// emptied box (queues with their capacity) go to the worker's spares.
    pub(crate) fn into_idle(mut self: Box<Self>, spares: &mut Spares) -> IdleConn {
        debug_assert!(self.can_idle());
        let _ = self.park_if_idle(&mut spares.read_bufs);
        let idle = IdleConn {
            id: self.id,
            sock: self.sock.take().expect("only socket connections go idle"),
            peer: self.peer,
            alive: self.alive.clone(),
            next_seq: self.next_seq,
            last_progress: self.last_progress,
            readable: self.readable,
            writable: self.writable,
            unpaced: self.xfer.unpaced(),
            deadline: self.deadline,
            scheduled: self.scheduled,
        };
        if spares.conns.len() < SPARE_CONNS {
            // Nothing else of the old connection is worth keeping (the next one starts fresh).
            self.trim_queues();
            spares.conns.push(self);
        }
        idle
    }

    /// Queues that grew past what a spare box keeps give their memory back (a connection
    /// left whole while idle holds no more than a spare does).
    pub(crate) fn trim_queues(&mut self) {
        if [self.inflight.capacity(), self.out.capacity(), self.marks.capacity(), self.access.capacity()].iter().any(|&c| c > SPARE_QUEUE_MAX) {
            self.drop_queues();
        }
    }

    /// `fresh` in `spare` (a box from `into_idle`, whose empty queues keep their capacity) when
    /// there is one.
    pub(crate) fn boxed(fresh: Self, spare: Option<Box<Self>>) -> Box<Self> {
        match spare {
            Some(mut conn) => {
                // The queues are empty (`can_idle`); only their memory moves over.
                let (inflight, out, marks, access) = (std::mem::take(&mut conn.inflight), std::mem::take(&mut conn.out), std::mem::take(&mut conn.marks), std::mem::take(&mut conn.access));
                *conn = fresh;
                (conn.inflight, conn.out, conn.marks, conn.access) = (inflight, out, marks, access);
                conn
            }
            None => Box::new(fresh),
        }
    }

    /// The whole connection again, as it was when it went idle; built in `spare` (a box from
    /// `into_idle`, whose empty queues keep their capacity) when there is one.
    pub(crate) fn from_idle(idle: IdleConn, token: usize, spare: Option<Box<Self>>) -> Box<Self> {
        let fd = idle.sock.as_raw_fd();
        let fresh = Self::with_io(idle.id, token, Some(idle.sock), fd, None, idle.peer, idle.last_progress, idle.alive);
        let mut conn = Self::boxed(fresh, spare);
        conn.next_seq = idle.next_seq;
        conn.send_seq = idle.next_seq;
        conn.readable = idle.readable;
        conn.writable = idle.writable;
        conn.xfer.set_unpaced(idle.unpaced);
        conn.deadline = idle.deadline;
        conn.scheduled = idle.scheduled;
        conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::conn::Reading;
    use crate::engine::slots::Slot;
    use std::time::Duration;

    fn accepted() -> (mio::net::TcpStream, std::net::TcpStream, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (mio::net::TcpStream::from_std(server), client, peer)
    }

    #[test]
    fn an_idle_slot_is_a_fraction_of_a_connection() {
        // What 5,000 idle connections cost is mostly this (plus the shared `alive` flag).
        assert!(std::mem::size_of::<Slot>() <= 128, "Slot is {} bytes", std::mem::size_of::<Slot>());
        assert!(std::mem::size_of::<Conn>() >= 4 * std::mem::size_of::<Slot>());
    }

    #[test]
    fn a_connection_comes_back_from_idle_as_it_went() {
        let (sock, _client, peer) = accepted();
        let fd = sock.as_raw_fd();
        let now = Instant::now();
        let mut conn = Box::new(Conn::new(7, 3, sock, peer, now));
        conn.next_seq = 5;
        conn.send_seq = 5;
        conn.writable = true;
        conn.set_unpaced(true);
        conn.deadline = Some(now + Duration::from_secs(9));
        conn.scheduled = conn.deadline;
        assert!(conn.can_idle());
        let alive = conn.alive.clone();

        let mut spares = Spares::default();
        let idle = conn.into_idle(&mut spares);
        assert_eq!(idle.id, 7);
        assert_eq!(spares.conns.len(), 1, "the box is kept for the next wake-up");
        let back = Conn::from_idle(idle, 3, spares.conns.pop());
        assert_eq!((back.id, back.token, back.fd, back.peer), (7, 3, fd, peer));
        assert_eq!((back.next_seq, back.send_seq), (5, 5));
        assert!(back.writable && !back.readable);
        assert!(back.xfer.unpaced(), "sendfile calls stay sized for the socket's congestion control");
        assert_eq!(back.deadline, Some(now + Duration::from_secs(9)));
        assert_eq!(back.scheduled, back.deadline);
        assert_eq!(back.last_progress, now);
        assert!(Arc::ptr_eq(&back.alive, &alive), "request handles keep seeing the same connection");
    }

    #[test]
    fn a_new_connection_takes_a_spare_box() {
        let (sock, _client, peer) = accepted();
        let mut spares = Spares::default();
        let conn = Box::new(Conn::new(1, 0, sock, peer, Instant::now()));
        let _idle = conn.into_idle(&mut spares);
        let spare = spares.conns.pop().expect("the box is kept");
        let spare_at: *const Conn = &*spare;
        let (sock, _client2, peer) = accepted();
        let fresh = Conn::boxed(Conn::new(2, 1, sock, peer, Instant::now()), Some(spare));
        assert!(std::ptr::eq(&*fresh, spare_at), "built in the spare box, not a new one");
        assert_eq!((fresh.id, fresh.token), (2, 1));
    }

    #[test]
    fn a_resting_connection_keeps_no_more_queue_than_a_spare() {
        let (sock, _client, peer) = accepted();
        let mut conn = Box::new(Conn::new(1, 0, sock, peer, Instant::now()));
        conn.out.reserve(1000);
        conn.marks.reserve(4);
        let mut slots = vec![Slot::Busy(conn)];
        let mut spares = Spares::default();
        crate::engine::slots::rest(&mut slots, 0, &mut spares);
        let Slot::Busy(conn) = &slots[0] else { panic!("a resting connection stays whole") };
        assert!(conn.resting);
        assert!(conn.out.capacity() <= SPARE_QUEUE_MAX, "out kept {} entries", conn.out.capacity());
    }

    #[test]
    fn a_connection_with_anything_in_hand_stays_whole() {
        let (sock, _client, peer) = accepted();
        let mut conn = Conn::new(1, 0, sock, peer, Instant::now());
        conn.rbuf.extend_from_slice(b"GET / HT");
        assert!(!conn.can_idle(), "a partial head");
        conn.rbuf.clear();
        conn.next_seq = 1;
        assert!(!conn.can_idle(), "a request in flight");
        conn.send_seq = 1;
        conn.peer_closing = true;
        assert!(!conn.can_idle(), "the peer is leaving: read on to EOF");
        conn.peer_closing = false;
        conn.reading = Reading::Stopped;
        assert!(!conn.can_idle(), "no more requests");
        conn.reading = Reading::Head;
        assert!(conn.can_idle());
    }
}
