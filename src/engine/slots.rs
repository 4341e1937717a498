//! A worker's connections by token: busy ones whole, idle keep-alive ones in their small form.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::time::Instant;

use bytes::BytesMut;

use crate::engine::conn::{Conn, IdleConn};

/// Memory a worker keeps from connections that went idle, for the next ones that wake up: a
/// keep-alive request then costs no malloc for its `Conn`, its queues or its read buffer.
#[derive(Default)]
pub(crate) struct Spares {
    /// Read buffers (see `Conn::park_if_idle`).
    pub(crate) read_bufs: Vec<BytesMut>,
    /// Emptied `Conn` boxes, queue capacity kept (see `Conn::into_idle`). Boxes, not `Conn`s:
    /// the box itself is what is reused (a `Slot::Busy` holds one).
    #[allow(clippy::vec_box)]
    pub(crate) conns: Vec<Box<Conn>>,
    /// Idle connections left whole, by (token, id), in the order they were listed (see
    /// `rest`). An entry goes stale when its connection closes, and is skipped when it reaches
    /// the front; a connection that was busy again in between keeps its place (it is parked
    /// then only if it is idle).
    pub(crate) resting: VecDeque<(usize, u64)>,
}

/// Idle connections a worker leaves whole. A keep-alive client usually sends its next request
/// soon, and the round trip through the small form (`park`, then `busy`) costs about a tenth of
/// a small request's user-space work (callgrind). As many as the spare boxes a worker keeps
/// (`SPARE_CONNS`): what they cost beyond the small form is one box each, with queues trimmed
/// as a spare's are (their read buffers go back to the spares as before). A worker holds at
/// most 64 resting and 64 spare boxes, so thousands of idle connections still cost little
/// more than their small form.
const RESTING_MAX: usize = 64;

pub(crate) enum Slot {
    Free,
    Busy(Box<Conn>),
    Idle(IdleConn),
}

impl Slot {
    pub(crate) fn is_used(&self) -> bool {
        !matches!(self, Slot::Free)
    }

    pub(crate) fn id(&self) -> Option<u64> {
        match self {
            Slot::Free => None,
            Slot::Busy(c) => Some(c.id),
            Slot::Idle(i) => Some(i.id),
        }
    }

    /// The connection's timer fields (id, scheduled, deadline), whatever its form.
    pub(crate) fn timer(&mut self) -> Option<(u64, &mut Option<Instant>, Option<Instant>)> {
        match self {
            Slot::Free => None,
            Slot::Busy(c) => Some((c.id, &mut c.scheduled, c.deadline)),
            Slot::Idle(i) => Some((i.id, &mut i.scheduled, i.deadline)),
        }
    }
}

/// The whole connection at `token`, rebuilt from its small form if it was idle.
pub(crate) fn busy<'a>(slots: &'a mut [Slot], token: usize, spares: &mut Spares) -> Option<&'a mut Conn> {
    let slot = slots.get_mut(token)?;
    if matches!(slot, Slot::Idle(_)) {
        if let Slot::Idle(idle) = std::mem::replace(slot, Slot::Free) {
            *slot = Slot::Busy(Conn::from_idle(idle, token, spares.conns.pop()));
        }
    }
    match slot {
        Slot::Busy(conn) => Some(conn),
        _ => None,
    }
}

/// Like `busy`, but only if the connection at `token` is still the one numbered `id` (a token
/// is reused after a close; a late message must not wake its successor).
pub(crate) fn busy_if<'a>(slots: &'a mut [Slot], token: usize, id: u64, spares: &mut Spares) -> Option<&'a mut Conn> {
    if slots.get(token)?.id()? != id {
        return None;
    }
    busy(slots, token, spares)
}

/// A connection that has nothing left to do stays whole among the worker's last `RESTING_MAX`
/// to go idle; the one listed longest ago takes its small form in its place (a connection
/// keeps its place while it rests, works and rests again: no reordering per request).
///
/// Called when a drive of the connection ends: a connection between requests gives its read
/// buffer back here whether it can rest or not (see `Conn::park_if_idle`).
pub(crate) fn rest(slots: &mut [Slot], token: usize, spares: &mut Spares) {
    let Some(Slot::Busy(conn)) = slots.get_mut(token) else { return };
    if !conn.park_if_idle(&mut spares.read_bufs) {
        return;
    }
    if !conn.resting {
        conn.resting = true;
        conn.trim_queues();
        spares.resting.push_back((token, conn.id));
    }
    while spares.resting.len() > RESTING_MAX {
        let Some((t, id)) = spares.resting.pop_front() else { break };
        if let Some(Slot::Busy(old)) = slots.get_mut(t)
            && old.id == id
        {
            old.resting = false;
            park(slots, t, spares);
        }
    }
}

/// Puts the connection at `token` into its small form if it has nothing left to do.
pub(crate) fn park(slots: &mut [Slot], token: usize, spares: &mut Spares) {
    let Some(slot) = slots.get_mut(token) else { return };
    if !matches!(slot, Slot::Busy(conn) if conn.can_idle()) {
        return;
    }
    if let Slot::Busy(conn) = std::mem::replace(slot, Slot::Free) {
        *slot = Slot::Idle(conn.into_idle(spares));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` accepted connections in their whole form, tokens 0..n, ids 100.. (the clients are
    /// returned so the sockets stay open).
    fn busy_slots(n: usize) -> (Vec<Slot>, Vec<std::net::TcpStream>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let now = Instant::now();
        let mut slots = Vec::new();
        let mut clients = Vec::new();
        for token in 0..n {
            clients.push(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (server, peer) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let conn = Conn::new(100 + token as u64, token, mio::net::TcpStream::from_std(server), peer, now);
            slots.push(Slot::Busy(Box::new(conn)));
        }
        (slots, clients)
    }

    fn is_idle(slot: &Slot) -> bool {
        matches!(slot, Slot::Idle(_))
    }

    #[test]
    fn the_last_connections_to_go_idle_stay_whole() {
        let (mut slots, _clients) = busy_slots(RESTING_MAX + 2);
        let mut spares = Spares::default();
        for t in 0..slots.len() {
            rest(&mut slots, t, &mut spares);
        }
        assert!(is_idle(&slots[0]) && is_idle(&slots[1]), "the two that went idle first take their small form");
        assert!(slots[2..].iter().all(|s| matches!(s, Slot::Busy(c) if c.resting)));
        assert_eq!(spares.resting.len(), RESTING_MAX);
        assert_eq!(spares.conns.len(), 2, "their boxes wait for the next wake-up");

        // Resting again does not list a connection twice.
        rest(&mut slots, 5, &mut spares);
        assert_eq!(spares.resting.len(), RESTING_MAX);
        // A parked one that wakes up is whole again and can rest again, at the back.
        assert!(busy(&mut slots, 0, &mut spares).is_some_and(|c| !c.resting));
        rest(&mut slots, 0, &mut spares);
        assert_eq!(spares.resting.back(), Some(&(0, 100)));
        assert!(is_idle(&slots[2]), "which pushes out the oldest resting one");
    }

    #[test]
    fn a_connection_busy_again_when_its_turn_comes_stays_whole() {
        let (mut slots, _clients) = busy_slots(RESTING_MAX + 1);
        let mut spares = Spares::default();
        rest(&mut slots, 0, &mut spares);
        // Connection 0 has something to do again (here: its peer is leaving, read on to EOF).
        let Slot::Busy(c) = &mut slots[0] else { panic!("resting connections are whole") };
        c.peer_closing = true;
        for t in 1..slots.len() {
            rest(&mut slots, t, &mut spares);
        }
        let Slot::Busy(c) = &mut slots[0] else { panic!("a connection with work in hand was parked") };
        assert!(!c.resting, "its entry is gone");
        // Idle again, it rests again and is listed again.
        c.peer_closing = false;
        rest(&mut slots, 0, &mut spares);
        assert_eq!(spares.resting.back(), Some(&(0, 100)));
        assert!(is_idle(&slots[1]));
    }

    #[test]
    fn an_entry_of_a_closed_connection_parks_nothing() {
        let (mut slots, _clients) = busy_slots(RESTING_MAX + 1);
        let mut spares = Spares::default();
        rest(&mut slots, 0, &mut spares);
        // Connection 0 closes and its token goes to a new connection (id 999), which is busy.
        let (mut fresh, _c) = busy_slots(1);
        let Slot::Busy(mut c) = fresh.remove(0) else { unreachable!() };
        c.id = 999;
        c.peer_closing = true;
        slots[0] = Slot::Busy(c);
        for t in 1..slots.len() {
            rest(&mut slots, t, &mut spares);
        }
        assert!(matches!(&slots[0], Slot::Busy(c) if c.id == 999 && !c.resting), "the successor is untouched");
        assert!(slots[1..].iter().all(|s| matches!(s, Slot::Busy(c) if c.resting)));
    }
}
