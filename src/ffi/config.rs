//! `zh_config`: engine settings built by the caller, copied by `zh_engine_new`.

use std::ffi::c_void;
use std::time::Duration;

use crate::config::Config;
use crate::ffi::result::*;
use crate::ffi::{result_of, write_out};

/// Engine settings. Not thread-safe: use one config from one thread at a time. Create with
/// `zh_config_new`, free with `zh_config_free`; `zh_engine_new` copies it, so it may be freed
/// right after.
pub struct zh_config {
    inner: Config,
    head: Option<(HeadFn, *mut c_void)>,
    hooks: crate::engine::hooks::Hooks,
}

type HeadFn = unsafe extern "C" fn(*mut c_void, *mut crate::ffi::request::zh_request);

/// Runs when a request head that announces a body is complete, before the body is read, on the
/// worker thread (must not block). Inside it the application may claim the body
/// (`zh_request_body_to_fd`) and keep `req` to answer later, answer at once (`zh_respond`,
/// `zh_request_reject`: the unread body is then drained up to 1 MiB to keep the connection, else
/// the connection closes), or do neither: then the engine buffers the body and calls the main
/// handler with the request — at a new address; `req` is invalid once this call returns.
pub type zh_head_handler_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut crate::ffi::request::zh_request)>;

impl zh_config {
    pub(crate) fn config(&self) -> &Config {
        &self.inner
    }

    pub(crate) fn head_handler(&self) -> Option<(HeadFn, *mut c_void)> {
        self.head
    }

    pub(crate) fn hooks(&self) -> crate::engine::hooks::Hooks {
        self.hooks.clone()
    }

    fn update(&mut self, change: impl FnOnce(&mut Config)) -> zh_result {
        let mut next = self.inner.clone();
        change(&mut next);
        match next.validate() {
            Ok(()) => {
                self.inner = next;
                ZH_OK
            }
            Err(e) => result_of(Err(e)),
        }
    }
}

/// Creates a config with the defaults (threads = CPUs, 8 KiB request line, 16 KiB header
/// section, 100 headers, unlimited body, timeouts 10 s header read / 60 s idle / 60 s send).
/// On success `*out` owns it: free with `zh_config_free`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_new(out: *mut *mut zh_config) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        if out.is_null() {
            return ZH_ERR_NULL;
        }
        write_out(out, Box::into_raw(Box::new(zh_config { inner: Config::default(), head: None, hooks: Default::default() })));
        ZH_OK
    })
}

/// Frees a config. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_free(cfg: *mut zh_config) {
    boundary!((), {
        if !cfg.is_null() {
            // SAFETY: non-NULL pointers passed here come from zh_config_new and are freed once.
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// Sets the number of worker threads (0..=1024; default: the number of CPUs). 0 selects
/// external-loop mode: the engine creates no thread; the host polls `zh_engine_fd()` in its own
/// loop and calls `zh_engine_step()` when it is readable or `zh_engine_next_timeout_ms()` has
/// passed. The host must then ignore or block SIGPIPE itself (`sendfile`/`splice` cannot be
/// told not to raise it).
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_threads(cfg: *mut zh_config, threads: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| c.threads = threads as usize)
    })
}

/// Sets request limits. 0 keeps the current value for `max_request_line` (→ 414),
/// `max_header_bytes` (→ 431) and `max_headers` (→ 431). `max_body_bytes` (→ 413) is the
/// largest request body accepted; `ZH_UNLIMITED` (UINT64_MAX) removes the limit.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_limits(
    cfg: *mut zh_config,
    max_request_line: usize,
    max_header_bytes: usize,
    max_headers: usize,
    max_body_bytes: u64,
) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| {
            if max_request_line != 0 {
                c.limits.max_request_line = max_request_line;
            }
            if max_header_bytes != 0 {
                c.limits.max_head_bytes = max_header_bytes;
            }
            if max_headers != 0 {
                c.limits.max_headers = max_headers;
            }
            c.max_body = if max_body_bytes == u64::MAX { None } else { Some(max_body_bytes) };
        })
    })
}

/// Sets timeouts in milliseconds; 0 keeps the current value. `header_read_ms`: a whole request
/// head must arrive within it (slowloris guard, → 408 and close). `idle_ms`: an idle keep-alive
/// connection is closed after it. `send_ms`: a send without progress for this long closes the
/// connection (request bodies have their own timeout, `zh_config_set_body_read_timeout`).
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_timeouts(cfg: *mut zh_config, header_read_ms: u32, idle_ms: u32, send_ms: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| {
            if header_read_ms != 0 {
                c.header_read_timeout = Duration::from_millis(header_read_ms.into());
            }
            if idle_ms != 0 {
                c.idle_timeout = Duration::from_millis(idle_ms.into());
            }
            if send_ms != 0 {
                c.send_timeout = Duration::from_millis(send_ms.into());
            }
        })
    })
}

/// Sets how many connections one worker keeps at most (default 10000); connections beyond it
/// are closed right after accept.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_max_connections(cfg: *mut zh_config, per_worker: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| c.max_connections_per_worker = per_worker as usize)
    })
}

/// Sets how long reading a request body may make no progress before the connection is closed
/// (milliseconds, default 60000; 0 keeps the current value). It runs only while the engine
/// waits for body bytes from the client — never while a streamed reader is paused
/// (`zh_request_body_read`: that wait is the application's), and afresh after each resume. A
/// claimed body it cuts short ends with `ETIMEDOUT`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_body_read_timeout(cfg: *mut zh_config, body_read_ms: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| {
            if body_read_ms != 0 {
                c.body_read_timeout = Duration::from_millis(body_read_ms.into());
            }
        })
    })
}

/// Forces the copy path (`pread`/`read` + `send`) instead of `sendfile`/`splice`, e.g. to
/// compare paths or test fallbacks. Off by default.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_force_copy(cfg: *mut zh_config, force_copy: bool) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| c.force_copy = force_copy)
    })
}

/// Sets (or, with NULL, clears) the head handler; see `zh_head_handler_fn`. `userdata` must
/// stay valid until the engine is freed; the handler may run on several workers at once.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_head_handler(cfg: *mut zh_config, on_head: zh_head_handler_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.head = on_head.map(|f| (f, userdata));
        ZH_OK
    })
}

/// Sets the number of helper threads that read cold file ranges into the page cache, so that
/// worker threads never wait for the disk (default 2, at most 64). Before each `sendfile`
/// window the engine asks the kernel (`cachestat`) whether the range is cached; a cold range is
/// read in on a helper thread while the worker serves other connections. The threads start
/// with the first cold range, so an engine whose files stay cached never has them. 0 turns
/// this off.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_disk_threads(cfg: *mut zh_config, threads: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| c.disk_threads = threads as usize)
    })
}

/// Spools request bodies larger than `threshold` bytes to an anonymous file (`O_TMPFILE`) in
/// `dir` (NULL: the system temp directory) instead of memory, by `splice`. The main handler then
/// finds the body with `zh_request_body_fd` / `zh_request_body_copy_to_fd`. A Content-Length
/// body's space is reserved as for `zh_request_body_to_fd`: one the spool's filesystem cannot
/// hold is answered `507` before it is read (no `100 Continue`), and a spool file that fails
/// part-way answers its request `507` (disk or quota full), `413` (past the largest file) or
/// `500`, the connection's last answer. If no spool file can be made at all, the body is
/// buffered in memory as without spooling. `ZH_UNLIMITED` turns spooling off (the default).
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_spool(cfg: *mut zh_config, threshold: u64, dir: *const std::ffi::c_char) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        let dir = crate::ffi::cstr_bytes(dir)
            .map(|b| std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b)));
        cfg.update(|c| {
            c.spool_threshold = if threshold == u64::MAX { None } else { Some(threshold) };
            if let Some(d) = dir {
                c.spool_dir = d;
            }
        })
    })
}

/// Sizes each worker's open-file cache for `zh_respond_file_at`: up to `entries` open files
/// (each one descriptor; 0 turns the cache off) trusted for `valid_ms` milliseconds after they
/// were last checked, then revalidated with one `fstatat` (same inode, size and mtime: kept;
/// else opened again). Files unused for 10 × `valid_ms` are closed. Defaults: 256 entries,
/// 1000 ms. Mind `RLIMIT_NOFILE`: the cache may hold `entries` × threads descriptors.
/// `ZH_ERR_INVALID`: more than 1,000,000 entries, or `valid_ms` 0 with a non-zero `entries`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_file_cache(cfg: *mut zh_config, entries: u32, valid_ms: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| {
            c.file_cache_entries = entries as usize;
            c.file_cache_valid = std::time::Duration::from_millis(u64::from(valid_ms));
        })
    })
}

/// Sets the size up to which a file region that directly follows memory in a response (the
/// head, bytes, lent memory) is read into a worker buffer and sent in that memory's `sendmsg`,
/// instead of `sendmsg(MSG_MORE)` + `sendfile`. Default 4096: measured 5–20% less server CPU
/// per request up to 4 KiB, a loss from 16 KiB (BENCHMARKS.md). The read never waits for the
/// disk (`preadv2` with `RWF_NOWAIT`): a region not wholly in the page cache goes by
/// `sendfile` as usual. Such bytes are counted in `zh_stats.bytes_copy`, the reads in
/// `syscalls_copy`. 0 = always `sendfile`: no file byte passes through user space.
/// `ZH_ERR_INVALID` above 1 MiB (1048576).
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_small_file_read_max(cfg: *mut zh_config, bytes: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.update(|c| c.small_file_read_max = bytes)
    })
}

/// Gives every listening socket the engine listens on (`zh_engine_listen`, `zh_engine_listen_fd`)
/// the TCP congestion control `name` ("cubic", "reno", "bbr" …); the connections they accept
/// inherit it. Connections handed over by `zh_engine_adopt_fd` keep their own. NULL: the system
/// default (`net.ipv4.tcp_congestion_control`), which is also the default here.
///
/// Why: with `bbr`, or any algorithm that paces, and no `fq` qdisc, the kernel paces each
/// connection with its own timer. Towards a peer on the same host (a proxy in front, a test
/// client) that buys nothing: a 1 GiB download over loopback measured about three times the
/// server CPU under `bbr` as under `cubic` on a VM (BENCHMARKS.md). Whatever sets it, the engine
/// reads each listener's algorithm once: connections that do not pace (anything but `bbr`) get
/// `sendfile` calls of up to 1 MiB instead of 256 KiB (11–17% less server CPU per 1 MiB file).
///
/// The name is tried on a scratch socket right away: `ZH_ERR_INVALID` if it is not 1–15
/// characters of `[A-Za-z0-9_-]`; `ZH_ERR_UNSUPPORTED` if the kernel refuses it (not built or
/// loaded, or, without `CAP_NET_ADMIN`, not in `net.ipv4.tcp_allowed_congestion_control`).
/// Should the kernel refuse it later, `zh_engine_listen` returns `ZH_ERR_IO`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_tcp_congestion(cfg: *mut zh_config, name: *const std::ffi::c_char) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        let name = match crate::ffi::cstr_bytes(name) {
            None => None,
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => Some(s.to_string()),
                Err(_) => return ZH_ERR_INVALID,
            },
        };
        let before = cfg.config().tcp_congestion.clone();
        let rc = cfg.update(|c| c.tcp_congestion = name.clone());
        if rc != ZH_OK {
            return rc;
        }
        if let Some(n) = &name
            && crate::transfer::probe_tcp_congestion(n).is_err()
        {
            // A refused name leaves the config as it was.
            let _ = cfg.update(|c| c.tcp_congestion = before);
            return ZH_ERR_UNSUPPORTED;
        }
        ZH_OK
    })
}

/// Log levels passed to a `zh_log_fn`.
pub const ZH_LOG_ERROR: i32 = 1;
pub const ZH_LOG_WARN: i32 = 2;
pub const ZH_LOG_INFO: i32 = 3;
pub const ZH_LOG_DEBUG: i32 = 4;

/// Receives the engine's log messages (`msg` valid for the call), on worker threads; must not
/// block.
pub type zh_log_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, level: i32, msg: *const std::ffi::c_char)>;

/// One finished response, for an access log. Strings are NUL-terminated and valid for the call.
#[repr(C)]
pub struct zh_access_record {
    pub struct_size: u32,
    pub status: u16,
    pub method: *const std::ffi::c_char,
    pub target: *const std::ffi::c_char,
    /// Head plus body bytes of the response (the known part, for bodies of unknown length).
    pub bytes: u64,
    /// From the request head to the last byte handed to the kernel.
    pub duration_us: u64,
    /// The path that carried the body: "writev", "sendfile", "read" (file regions no larger than the
    /// small-file read limit, sent with the head), "splice", "stream" or "none".
    pub strategy: *const std::ffi::c_char,
    /// "ip:port" of the client.
    pub peer: *const std::ffi::c_char,
}

/// Receives one record per finished response, on worker threads; must not block.
pub type zh_access_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, record: *const zh_access_record)>;

struct Ud(*mut c_void);
// SAFETY: the log/access registrations document that the callbacks run on worker threads with
// their userdata; the engine never dereferences it.
unsafe impl Send for Ud {}
// SAFETY: see Send.
unsafe impl Sync for Ud {}

/// Sets (NULL: clears) the log callback of engines made from this config. Per engine: two
/// engines can log to different places. `userdata` must stay valid until the engine is freed.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_log(cfg: *mut zh_config, on_log: zh_log_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.hooks.log = on_log.map(|f| {
            let ud = Ud(userdata);
            std::sync::Arc::new(move |level: crate::engine::hooks::LogLevel, msg: &str| {
                let ud = &ud;
                let text = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
                // SAFETY: the caller's callback with its userdata and a string valid for the call.
                unsafe { f(ud.0, level as i32, text.as_ptr()) }
            }) as crate::engine::hooks::LogFn
        });
        ZH_OK
    })
}

/// Sets (NULL: clears) the access callback: one `zh_access_record` per finished response.
/// `userdata` must stay valid until the engine is freed.
#[unsafe(no_mangle)]
pub extern "C" fn zh_config_set_access_log(cfg: *mut zh_config, on_access: zh_access_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cfg = try_mut!(cfg);
        cfg.hooks.access = on_access.map(|f| {
            let ud = Ud(userdata);
            std::sync::Arc::new(move |r: &crate::engine::hooks::AccessRecord<'_>| {
                let ud = &ud;
                let c = |s: &str| std::ffi::CString::new(s.replace('\0', " ")).unwrap_or_default();
                let (method, target, strategy, peer) = (c(r.method), c(r.target), c(r.strategy), c(&r.peer.to_string()));
                let rec = zh_access_record {
                    struct_size: std::mem::size_of::<zh_access_record>() as u32,
                    status: r.status,
                    method: method.as_ptr(),
                    target: target.as_ptr(),
                    bytes: r.bytes,
                    duration_us: r.duration.as_micros().min(u64::MAX as u128) as u64,
                    strategy: strategy.as_ptr(),
                    peer: peer.as_ptr(),
                };
                // SAFETY: the caller's callback with its userdata and a record valid for the call.
                unsafe { f(ud.0, &rec) }
            }) as crate::engine::hooks::AccessFn
        });
        ZH_OK
    })
}
