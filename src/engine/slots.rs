//! A worker's connections by token: busy ones whole, idle keep-alive ones in their small form.
#![forbid(unsafe_code)]

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
}

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
