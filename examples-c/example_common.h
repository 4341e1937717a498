/* Shared plumbing for the zerohttp C examples: flag parsing, signal handling, engine lifecycle.
 *
 * Every example:
 *   - accepts `--listen ADDR` (default 127.0.0.1:8080) and `--threads N` (default: the engine's);
 *   - prints exactly `listening on http://HOST:PORT` (the real bound port) once ready, flushed;
 *   - blocks SIGINT/SIGTERM/SIGPIPE in main BEFORE zh_engine_start, so the engine's worker
 *     threads inherit the mask, then waits for SIGINT/SIGTERM with sigwait() and shuts down
 *     cleanly (zh_engine_shutdown with a 2 s grace period, zh_engine_free, exit 0);
 *   - with `--threads 1`, serves from the main thread instead: the engine runs in external-loop
 *     mode (threads = 0) and main calls zh_engine_step until SIGINT/SIGTERM, so the process has
 *     no second thread (the disk pool's threads start only if a file turns out not to be in the
 *     page cache). A process with one thread spares the kernel a file reference count on every
 *     fd syscall: 0.5 us per 64 KiB file request measured on bench/peers/floor.c;
 *   - with ZH_EXAMPLE_STATS=1 in the environment, prints the engine's zh_stats to stderr on exit;
 *   - with ZH_ACCESS_LOG=PATH in the environment (`-` = stderr), appends one line per finished
 *     response to PATH (created 0644 if missing, opened O_APPEND; the program fails to start if
 *     it cannot be opened), through zh_config_set_access_log:
 *
 *         METHOD TARGET STATUS BYTES strategy=S us=MICROSECONDS peer=IP:PORT
 *         GET /video.webm 206 87512 strategy=sendfile us=412 peer=127.0.0.1:40312
 *
 *     BYTES counts head plus body (zh_access_record.bytes). Bytes of TARGET outside 0x21..0x7e
 *     are written as %XX; past 1024 bytes (after escaping) TARGET is cut and ends in `...`. The
 *     record carries no request headers, so a Range request shows up as its 206 and the smaller
 *     byte count. Each line is a single write(2) of at most 2 KiB: lines from several worker
 *     threads never interleave (O_APPEND on a file; PIPE_BUF atomicity on a pipe). The log is
 *     installed before the example's own configure hook, which may replace it.
 *     (zh_ex_serve only: the external-loop hosts that reuse this header have their own logs.)
 *
 * Header-only: everything here is `static inline` so unused helpers do not warn under -Werror.
 */
#ifndef ZH_EXAMPLE_COMMON_H
#define ZH_EXAMPLE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zerohttp.h"

#define ZH_EX_DEFAULT_LISTEN "127.0.0.1:8080"

typedef struct zh_ex_opts {
  const char *listen;  /* --listen ADDR */
  long threads;        /* --threads N; 0 = engine default (zh_config_set_threads not called) */
  const char *arg;     /* first positional argument (e.g. ROOT for zh_static), NULL if none */
} zh_ex_opts;

static inline void zh_ex_usage(const char *prog, const char *positional) {
  fprintf(stderr, "usage: %s [--listen ADDR] [--threads N]%s%s\n", prog,
          positional ? " " : "", positional ? positional : "");
}

/* Parses argv into opts. `positional` names the one required positional argument (NULL if the
 * program takes none). Exits with status 2 on a usage error, 0 on --help. */
static inline void zh_ex_parse_args(int argc, char **argv, const char *positional, zh_ex_opts *opts) {
  opts->listen = ZH_EX_DEFAULT_LISTEN;
  opts->threads = 0;
  opts->arg = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      zh_ex_usage(argv[0], positional);
      exit(0);
    } else if (strcmp(a, "--listen") == 0 || strcmp(a, "--threads") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", argv[0], a);
        exit(2);
      }
      val = argv[++i];
    } else if (strncmp(a, "--listen=", 9) == 0) {
      a = "--listen";
      val = argv[i] + 9;
    } else if (strncmp(a, "--threads=", 10) == 0) {
      a = "--threads";
      val = argv[i] + 10;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
      zh_ex_usage(argv[0], positional);
      exit(2);
    } else {
      if (positional == NULL || opts->arg != NULL) {
        fprintf(stderr, "%s: unexpected argument %s\n", argv[0], a);
        zh_ex_usage(argv[0], positional);
        exit(2);
      }
      opts->arg = a;
      continue;
    }
    if (strcmp(a, "--listen") == 0) {
      opts->listen = val;
    } else {
      char *end = NULL;
      errno = 0;
      long n = strtol(val, &end, 10);
      if (errno != 0 || end == val || *end != '\0' || n < 1 || n > 1024) {
        fprintf(stderr, "%s: --threads wants an integer in 1..1024, got %s\n", argv[0], val);
        exit(2);
      }
      opts->threads = n;
    }
  }
  if (positional != NULL && opts->arg == NULL) {
    zh_ex_usage(argv[0], positional);
    exit(2);
  }
}

static inline void zh_ex_fail(const char *what, zh_result rc) {
  fprintf(stderr, "%s failed: %s (%u)\n", what, zh_result_str(rc), (unsigned)rc);
}

/* With ZH_EXAMPLE_STATS set in the environment, the examples print the engine's counters to
 * stderr on exit: which kernel path carried the bytes (the benchmark records this line). */
static inline void zh_ex_print_stats(const zh_engine *engine) {
  zh_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = (uint32_t)sizeof st;
  zh_result rc = zh_engine_stats(engine, &st);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_stats", rc);
    return;
  }
  fprintf(stderr,
          "zh stats: connections=%llu requests=%llu responses=%llu bytes_writev=%llu "
          "bytes_sendfile=%llu bytes_splice=%llu bytes_copy=%llu syscalls_writev=%llu "
          "syscalls_sendfile=%llu fallbacks=%llu errors_parse=%llu errors_io=%llu "
          "errors_timeout=%llu\n",
          (unsigned long long)st.connections_accepted, (unsigned long long)st.requests,
          (unsigned long long)st.responses, (unsigned long long)st.bytes_writev,
          (unsigned long long)st.bytes_sendfile, (unsigned long long)st.bytes_splice,
          (unsigned long long)st.bytes_copy, (unsigned long long)st.syscalls_writev,
          (unsigned long long)st.syscalls_sendfile, (unsigned long long)st.fallbacks,
          (unsigned long long)st.errors_parse, (unsigned long long)st.errors_io,
          (unsigned long long)st.errors_timeout);
}

/* ZH_ACCESS_LOG (see the top comment): the destination fd, -1 when logging is off. */
typedef struct zh_ex_access_log {
  int fd;
  int owned; /* 1: opened from PATH, closed by zh_ex_access_log_close; 0: stderr */
} zh_ex_access_log;

/* zh_access_fn: formats one line and writes it with one write(2). Runs on worker threads. */
static inline void zh_ex_access_line(void *userdata, const zh_access_record *r) {
  const zh_ex_access_log *log = (const zh_ex_access_log *)userdata;
  /* struct_size first: a record from an older library may end before `peer`. */
  if (log == NULL || log->fd < 0 || r == NULL ||
      r->struct_size < offsetof(zh_access_record, peer) + sizeof r->peer) {
    return;
  }
  char target[1024 + 4];
  size_t t = 0;
  const unsigned char *p = (const unsigned char *)(r->target ? r->target : "-");
  for (; *p != '\0'; p++) {
    int plain = *p >= 0x21 && *p <= 0x7e;
    if (t + (plain ? 1 : 3) > 1024) break;
    if (plain) {
      target[t++] = (char)*p;
    } else {
      static const char hex[] = "0123456789ABCDEF";
      target[t++] = '%';
      target[t++] = hex[*p >> 4];
      target[t++] = hex[*p & 15];
    }
  }
  if (*p != '\0') {
    memcpy(target + t, "...", 3);
    t += 3;
  }
  target[t] = '\0';
  char line[2048];
  int n = snprintf(line, sizeof line, "%.32s %s %u %llu strategy=%.16s us=%llu peer=%.64s\n",
                   r->method ? r->method : "-", target, (unsigned)r->status,
                   (unsigned long long)r->bytes, r->strategy ? r->strategy : "-",
                   (unsigned long long)r->duration_us, r->peer ? r->peer : "-");
  if (n <= 0) return;
  if ((size_t)n >= sizeof line) n = (int)sizeof line - 1; /* cannot happen with the limits above */
  ssize_t w;
  do {
    w = write(log->fd, line, (size_t)n);
  } while (w < 0 && errno == EINTR);
  /* A failed or short write (disk full) loses this line: an access log must not stop serving. */
}

/* Reads ZH_ACCESS_LOG. Returns 0 (log->fd = -1 when unset), or -1 after printing why. */
static inline int zh_ex_access_log_open(zh_ex_access_log *log) {
  log->fd = -1;
  log->owned = 0;
  const char *path = getenv("ZH_ACCESS_LOG");
  if (path == NULL || *path == '\0') return 0;
  if (strcmp(path, "-") == 0) {
    log->fd = STDERR_FILENO;
    return 0;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "ZH_ACCESS_LOG: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  log->fd = fd;
  log->owned = 1;
  return 0;
}

static inline void zh_ex_access_log_close(zh_ex_access_log *log) {
  if (log->owned && log->fd >= 0) close(log->fd);
  log->fd = -1;
  log->owned = 0;
}

/* Optional hook to adjust the config (limits, timeouts) before the engine is created. */
typedef zh_result (*zh_ex_configure_fn)(zh_config *cfg);

/* Blocks until SIGINT or SIGTERM (both blocked by the caller) arrives. */
static inline void zh_ex_wait_for_signal(void) {
  sigset_t wait_set;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGINT);
  sigaddset(&wait_set, SIGTERM);
  int sig = 0;
  for (;;) {
    int err = sigwait(&wait_set, &sig);
    if (err == 0) return;
    if (err != EINTR) {
      fprintf(stderr, "sigwait: %s\n", strerror(err));
      return;
    }
  }
}

static volatile sig_atomic_t zh_ex_stop_requested;
/* The engine zh_ex_step_until_signal steps, for the signal handler (NULL outside it). */
static zh_engine *volatile zh_ex_stepped_engine;

static inline void zh_ex_on_stop_signal(int sig) {
  (void)sig;
  zh_ex_stop_requested = 1;
  zh_engine *engine = zh_ex_stepped_engine;
  /* Async-signal-safe: one write to the engine's eventfd. Ends a wait that is in progress or
   * about to start, so no signal waits for a timeout. */
  if (engine != NULL) zh_engine_wake(engine);
}

/* External-loop mode on the main thread: steps the engine until SIGINT or SIGTERM. Each step
 * waits as long as it likes (the engine ends the wait itself when a timer is due); the signal
 * handler sets a flag and calls zh_engine_wake, which ends the wait whether the signal lands
 * during it or just before it, so the idle process sleeps until there is work. SIGPIPE stays
 * blocked (sendfile and splice cannot be told MSG_NOSIGNAL). Returns 0 when a signal asked to
 * stop, -1 when the engine failed. */
static inline int zh_ex_step_until_signal(zh_engine *engine) {
  zh_ex_stepped_engine = engine;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = zh_ex_on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    fprintf(stderr, "sigaction: %s\n", strerror(errno));
    zh_ex_stepped_engine = NULL;
    return -1;
  }
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  int err = pthread_sigmask(SIG_UNBLOCK, &stop_set, NULL);
  if (err != 0) {
    fprintf(stderr, "pthread_sigmask: %s\n", strerror(err));
    zh_ex_stepped_engine = NULL;
    return -1;
  }
  int status = 0;
  while (!zh_ex_stop_requested) {
    zh_result rc = zh_engine_step(engine, UINT32_MAX);
    if (rc != ZH_OK) {
      zh_ex_fail("zh_engine_step", rc);
      status = -1;
      break;
    }
  }
  /* Signals go back to being blocked (sigwait-style) before the engine may be freed, so the
   * handler never sees a freed engine. */
  pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
  zh_ex_stepped_engine = NULL;
  return status;
}

/* Creates the engine, listens, starts it, prints the ready line, waits for SIGINT/SIGTERM
 * (stepping the engine itself with --threads 1), then shuts down. `configure` may be NULL.
 * Returns the process exit status. */
static inline int zh_ex_serve(const zh_ex_opts *opts, zh_handler_fn handler, void *userdata,
                              zh_ex_configure_fn configure) {
  /* Block the signals before any engine thread exists: threads inherit the mask, so
   * SIGINT/SIGTERM are only ever delivered to sigwait() below, and SIGPIPE (sendfile/splice
   * on a vanished peer) never kills the process. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (err != 0) {
    fprintf(stderr, "pthread_sigmask: %s\n", strerror(err));
    return 1;
  }

  /* Outlives the engine: zh_engine_free returns before this function does. */
  zh_ex_access_log access_log;
  if (zh_ex_access_log_open(&access_log) != 0) return 1;

  zh_config *cfg = NULL;
  zh_engine *engine = NULL;
  zh_result rc = zh_config_new(&cfg);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_config_new", rc);
    zh_ex_access_log_close(&access_log);
    return 1;
  }
  if (access_log.fd >= 0) {
    rc = zh_config_set_access_log(cfg, zh_ex_access_line, &access_log);
    if (rc != ZH_OK) {
      zh_ex_fail("zh_config_set_access_log", rc);
      zh_config_free(cfg);
      zh_ex_access_log_close(&access_log);
      return 1;
    }
  }
  /* One worker: run it on this thread (external-loop mode) rather than start a thread for it. */
  const int on_main_thread = opts->threads == 1;
  if (opts->threads > 0) {
    rc = zh_config_set_threads(cfg, on_main_thread ? 0 : (uint32_t)opts->threads);
    if (rc != ZH_OK) {
      zh_ex_fail("zh_config_set_threads", rc);
      zh_config_free(cfg);
      zh_ex_access_log_close(&access_log);
      return 1;
    }
  }
  if (configure != NULL) {
    rc = configure(cfg);
    if (rc != ZH_OK) {
      zh_ex_fail("configuring the engine", rc);
      zh_config_free(cfg);
      zh_ex_access_log_close(&access_log);
      return 1;
    }
  }
  rc = zh_engine_new(cfg, handler, userdata, &engine);
  zh_config_free(cfg); /* the engine keeps its own copy */
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_new", rc);
    zh_ex_access_log_close(&access_log);
    return 1;
  }

  uint16_t port = 0;
  rc = zh_engine_listen(engine, opts->listen, &port);
  if (rc != ZH_OK) {
    fprintf(stderr, "zh_engine_listen(%s) failed: %s (%u)\n", opts->listen, zh_result_str(rc),
            (unsigned)rc);
    zh_engine_free(engine);
    zh_ex_access_log_close(&access_log);
    return 1;
  }
  rc = zh_engine_start(engine);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_start", rc);
    zh_engine_free(engine);
    zh_ex_access_log_close(&access_log);
    return 1;
  }

  /* Host part of ADDR as given ("127.0.0.1", "[::1]", "localhost"), with the real port. */
  const char *colon = strrchr(opts->listen, ':');
  int host_len = colon ? (int)(colon - opts->listen) : (int)strlen(opts->listen);
  printf("listening on http://%.*s:%u\n", host_len, opts->listen, (unsigned)port);
  fflush(stdout);

  int status = 0;
  if (on_main_thread) {
    if (zh_ex_step_until_signal(engine) != 0) status = 1;
  } else {
    zh_ex_wait_for_signal();
  }

  rc = zh_engine_shutdown(engine, 2000);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_shutdown", rc);
    status = 1;
  }
  if (getenv("ZH_EXAMPLE_STATS") != NULL) zh_ex_print_stats(engine);
  zh_engine_free(engine);
  zh_ex_access_log_close(&access_log);
  return status;
}

#endif /* ZH_EXAMPLE_COMMON_H */
