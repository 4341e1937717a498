//! zerohttp: an HTTP/1.1 server connection engine whose response bodies are chains of chunks
//! that need not be memory (file regions go out by `sendfile`). See `DESIGN.md` in the
//! project's shared folder for the layer contract: ffi → engine → h1 → body → transfer.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod body;
pub mod config;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod h1;
pub mod stats;
pub mod static_file;
pub mod transfer;
