//! One error type for the whole engine; `src/ffi` maps each variant to a stable `zh_result`.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

/// Everything that can go wrong in a call into the engine.
#[derive(Debug)]
pub enum Error {
    /// An argument is outside what the call accepts.
    Invalid(&'static str),
    /// The request was already handed back (responded to or rejected).
    AlreadyUsed,
    /// The connection (or the engine) is gone; whatever was passed in has been released.
    Closed,
    /// An OS call failed.
    Io(io::Error),
    /// Index or file region out of range.
    Range(&'static str),
    /// The call is not allowed in the engine's current state.
    State(&'static str),
    /// An address could not be parsed.
    Addr(String),
    /// A header name or value is invalid, or reserved for the engine.
    Header(&'static str),
    /// Not supported (yet).
    Unsupported(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(why) => write!(f, "invalid argument: {why}"),
            Error::AlreadyUsed => f.write_str("request already handed back"),
            Error::Closed => f.write_str("connection closed"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Range(why) => write!(f, "out of range: {why}"),
            Error::State(why) => write!(f, "wrong state: {why}"),
            Error::Addr(a) => write!(f, "bad address: {a}"),
            Error::Header(why) => write!(f, "bad header: {why}"),
            Error::Unsupported(why) => write!(f, "unsupported: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
