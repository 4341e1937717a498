//! The only place that issues data syscalls. Given a chain of chunks and a destination socket,
//! it picks the strategy per chunk (`sendmsg` gathering memory, `sendfile` for file regions),
//! performs non-blocking steps until the chain is drained or the socket would block, counts
//! bytes and syscalls per strategy, and falls back to a copy where the kernel refuses a path.
//!
//! All `unsafe` syscalls of the engine live here (and pointer handling in `src/ffi`); every
//! block carries a `// SAFETY:` comment.

mod congestion;
mod custom;
mod open;
mod os;
mod recv;
mod reserve;
mod residency;
mod send;
mod sink;
mod splice;
mod spool;
mod stat;
mod warm_memo;

pub use congestion::{choosable as choosable_tcp_congestion, paces, probe_tcp_congestion, set_tcp_congestion, system_default as default_tcp_congestion, tcp_congestion};
pub use custom::{recv_via, send_chain_via, Transport};
pub use open::{open_beneath, relative, stat_at};
pub use os::{block_sigpipe, fd_kind, file_size, reuseport_listener, set_nonblocking, stream_socket_state};
pub use recv::{recv_into, RecvOutcome};
pub use residency::{dup_fd, evict, probe, warm, Residency};
pub use send::{send_chain, ConnPaths, PathMemory, SendError, SendReport, Sent};
pub use reserve::Reservation;
pub use sink::{pipe_is_clean, pread_into, pwrite_all, pwrite_counted, splice_to_file, SinkStep};
pub use splice::PipePair;
pub use spool::{copy_to_fd, spool_file};
pub use stat::{file_stat, FileStat};
