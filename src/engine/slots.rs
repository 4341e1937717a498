//! A worker's connections by token: busy ones whole, idle keep-alive ones in their small form.
#![forbid(unsafe_code)]

use std::time::Instant;

use bytes::BytesMut;

use crate::engine::conn::{Conn, IdleConn};

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
pub(crate) fn busy(slots: &mut [Slot], token: usize) -> Option<&mut Conn> {
    let slot = slots.get_mut(token)?;
    if matches!(slot, Slot::Idle(_)) {
        if let Slot::Idle(idle) = std::mem::replace(slot, Slot::Free) {
            *slot = Slot::Busy(Conn::from_idle(idle, token));
        }
    }
    match slot {
        Slot::Busy(conn) => Some(conn),
        _ => None,
    }
}

/// Like `busy`, but only if the connection at `token` is still the one numbered `id` (a token
/// is reused after a close; a late message must not wake its successor).
pub(crate) fn busy_if(slots: &mut [Slot], token: usize, id: u64) -> Option<&mut Conn> {
    if slots.get(token)?.id()? != id {
        return None;
    }
    busy(slots, token)
}

/// Puts the connection at `token` into its small form if it has nothing left to do.
pub(crate) fn park(slots: &mut [Slot], token: usize, spares: &mut Vec<BytesMut>) {
    let Some(slot) = slots.get_mut(token) else { return };
    if !matches!(slot, Slot::Busy(conn) if conn.can_idle()) {
        return;
    }
    if let Slot::Busy(conn) = std::mem::replace(slot, Slot::Free) {
        *slot = Slot::Idle(conn.into_idle(spares));
    }
}
