//! Observability hooks of one engine: a log callback and an access callback per finished
//! response. Per engine, never global: two engines log to their own hooks.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// One finished response, for access logs.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
    /// Head plus body bytes queued for the response (bodies of unknown length count the
    /// part known when it was queued).
    pub bytes: u64,
    /// From the head being parsed to the last byte being handed to the kernel.
    pub duration: Duration,
    /// The kernel path that carried the body: "writev", "sendfile", "read" (file regions
    /// no larger than `small_file_read_max`, sent with the head), "splice", "stream", "none".
    pub strategy: &'static str,
    pub peer: std::net::SocketAddr,
}

pub type LogFn = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;
pub type AccessFn = Arc<dyn Fn(&AccessRecord<'_>) + Send + Sync>;

/// The hooks an engine calls; both run on worker threads and must not block.
#[derive(Clone, Default)]
pub struct Hooks {
    pub log: Option<LogFn>,
    pub access: Option<AccessFn>,
}

impl Hooks {
    pub(crate) fn log(&self, level: LogLevel, msg: impl FnOnce() -> String) {
        if let Some(f) = &self.log {
            f(level, &msg());
        }
    }
}

/// What the connection keeps about a request for its access record.
pub(crate) struct AccessInfo {
    pub method: String,
    pub target: String,
    pub started: std::time::Instant,
}
