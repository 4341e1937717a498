/* Shared parts of the host examples (epoll_host.c, libevent_host.c, module_host.c, tls_host.c):
 * the programs that own their event loop and embed the engine in external-loop mode. What is
 * here is the same in every host; each host file keeps only its loop.
 *
 *   - flags: `--name VALUE` pairs from a table (zh_host_parse_flags): -h/--help prints the usage
 *     and exits 0; an unknown argument or a flag without its value prints it and exits 2;
 *   - signals: SIGINT/SIGTERM blocked for a signalfd (or libevent), SIGPIPE ignored — the header
 *     requires it of external-loop hosts (sendfile/splice on a vanished peer raise it and no
 *     engine thread blocks it);
 *   - the engine: threads = 0, access log and engine log on stderr; the shutdown at the end
 *     (2 s grace; ZH_EXAMPLE_STATS=1 prints the counters, as example_common.h does);
 *   - the handlers: GET/HEAD only (405), /hello, files under --root by zh_respond_file, opened
 *     with openat2(RESOLVE_BENEATH) so nothing outside the root is reachable;
 *   - a listening socket bound by the host itself (module_host, tls_host) and the ready line
 *     `listening on SCHEME://HOST:PORT`.
 *
 * Header-only: everything is `static inline`, so a host that does not use a helper gets no
 * warning under -Werror. */
#ifndef ZH_HOST_COMMON_H
#define ZH_HOST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "example_common.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* ---- flags --------------------------------------------------------------------------------- */

/* One `--name VALUE` flag: a string (`str`) or an integer in min..max (`num`). */
typedef struct zh_host_flag {
  const char *name;
  const char **str;
  int *num;
  int min, max;
} zh_host_flag;

/* Parses argv against `flags`. `usage_args` is what the usage line shows after the program
 * name. Exits 0 after -h/--help, 2 on an unknown argument, a flag without its value or an
 * integer out of range (`PROG: --name wants MIN..MAX`). */
static inline void zh_host_parse_flags(int argc, char **argv, const char *prog,
                                       const char *usage_args, const zh_host_flag *flags,
                                       size_t nflags) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fprintf(stderr, "usage: %s %s\n", argv[0], usage_args);
      exit(0);
    }
    const zh_host_flag *f = NULL;
    for (size_t k = 0; k < nflags && i + 1 < argc; k++)
      if (strcmp(a, flags[k].name) == 0) f = &flags[k];
    if (f == NULL) {
      fprintf(stderr, "usage: %s %s\n", argv[0], usage_args);
      exit(2);
    }
    const char *val = argv[++i];
    if (f->str != NULL) {
      *f->str = val;
      continue;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || n < f->min || n > f->max) {
      fprintf(stderr, "%s: %s wants %d..%d\n", prog, f->name, f->min, f->max);
      exit(2);
    }
    *f->num = (int)n;
  }
}

/* The flags of the single-loop hosts, `[--listen ADDR] [--root DIR]`; opens the root into
 * *root_fd (-1 without --root). 0, or -1 after a message. */
static inline int zh_host_listen_root_args(int argc, char **argv, const char *prog,
                                           const char **listen_addr, int *root_fd);

/* ---- signals ------------------------------------------------------------------------------- */

/* Blocks SIGINT, SIGTERM and `extra` (0: none) in `*set` — from now on they are only read
 * (signalfd(-1, set, ...), or libevent) — and ignores SIGPIPE. Blocked before any fork or
 * thread, so children inherit the mask. -1 (after perror) if sigprocmask failed. */
static inline int zh_host_block_signals(sigset_t *set, int extra) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  if (extra != 0) sigaddset(set, extra);
  if (sigprocmask(SIG_BLOCK, set, NULL) != 0) {
    perror("sigprocmask");
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

/* Reads one signal from a non-blocking signalfd: 1 (after `PROG: signal N, shutting down` on
 * stderr) when there was one. */
static inline int zh_host_read_signal(const char *prog, int sig_fd) {
  struct signalfd_siginfo si;
  if (read(sig_fd, &si, sizeof si) != (ssize_t)sizeof si) return 0;
  fprintf(stderr, "%s: signal %u, shutting down\n", prog, si.ssi_signo);
  return 1;
}

/* ---- the engine ---------------------------------------------------------------------------- */

/* Engine log messages on stderr; `ud` is the program name. */
static inline void zh_host_on_log(void *ud, int32_t level, const char *msg) {
  fprintf(stderr, "%s: engine log (level %d): %s\n", (const char *)ud, (int)level, msg);
}

/* One access log line per response on stderr. */
static inline void zh_host_on_access(void *ud, const zh_access_record *r) {
  (void)ud;
  fprintf(stderr, "%s \"%s %s\" %u %llu %lluus %s\n", r->peer, r->method, r->target,
          (unsigned)r->status, (unsigned long long)r->bytes, (unsigned long long)r->duration_us,
          r->strategy);
}

/* An engine in external-loop mode (threads = 0): `handler(ud, req)`, `access` (NULL: none) and
 * the engine log on stderr prefixed with `log_prog` (NULL: none). */
static inline zh_result zh_host_engine_new(zh_handler_fn handler, void *ud, zh_access_fn access,
                                           const char *log_prog, zh_engine **out) {
  zh_config *cfg = NULL;
  zh_result rc = zh_config_new(&cfg);
  if (rc == ZH_OK) rc = zh_config_set_threads(cfg, 0);
  if (rc == ZH_OK && access != NULL) rc = zh_config_set_access_log(cfg, access, NULL);
  if (rc == ZH_OK && log_prog != NULL) rc = zh_config_set_log(cfg, zh_host_on_log, (void *)log_prog);
  if (rc == ZH_OK) rc = zh_engine_new(cfg, handler, ud, out);
  zh_config_free(cfg);
  return rc;
}

/* The poll timeout for the host's loop: the engine's next timer (-1: none), at most an hour. */
static inline int zh_host_timeout_ms(const zh_engine *engine) {
  int64_t t = zh_engine_next_timeout_ms(engine);
  return t < 0 ? -1 : (t > 3600000 ? 3600000 : (int)t);
}

/* One epoll_wait of the host's set, bounded by the engine's next timer. Returns the number of
 * events (0 after EINTR too), or -1 after perror(`what`). `*timer_due` (may be NULL) is set when
 * the wait lasted its whole timeout: the engine's timer is then due though its fd did not fire. */
static inline int zh_host_epoll_wait(int ep, struct epoll_event *evs, int max,
                                     const zh_engine *engine, const char *what, int *timer_due) {
  int timeout = zh_host_timeout_ms(engine);
  struct timespec before, now;
  clock_gettime(CLOCK_MONOTONIC, &before);
  int n = epoll_wait(ep, evs, max, timeout);
  if (timer_due != NULL) *timer_due = 0;
  if (n < 0) {
    if (errno == EINTR) return 0;
    perror(what);
    return -1;
  }
  if (timer_due != NULL && timeout >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    double waited = (double)(now.tv_sec - before.tv_sec) * 1e3 +
                    (double)(now.tv_nsec - before.tv_nsec) / 1e6;
    *timer_due = waited >= (double)timeout;
  }
  return n;
}

/* zh_engine_step(engine, 0): never blocks — the host's own wait did the waiting. 0, or 1 after
 * a message naming `what` when it failed (the host then leaves its loop). */
static inline int zh_host_step(zh_engine *engine, const char *what) {
  zh_result rc = zh_engine_step(engine, 0);
  if (rc == ZH_OK) return 0;
  zh_ex_fail(what, rc);
  return 1;
}

/* Outside any step: zh_engine_shutdown (2 s grace; in external-loop mode it drives the loop
 * itself until in-flight responses are done), the counters with ZH_EXAMPLE_STATS, then
 * zh_engine_free. Returns 0, or 1 when the shutdown failed (`what` names it). */
static inline int zh_host_finish(zh_engine *engine, const char *what) {
  int status = 0;
  zh_result rc = zh_engine_shutdown(engine, 2000);
  if (rc != ZH_OK) {
    zh_ex_fail(what, rc);
    status = 1;
  }
  if (getenv("ZH_EXAMPLE_STATS") != NULL) zh_ex_print_stats(engine);
  zh_engine_free(engine);
  return status;
}

/* ---- listening ----------------------------------------------------------------------------- */

/* Prints `listening on SCHEME://HOST:PORT` (HOST as given in ADDR, the real port), flushed. */
static inline void zh_host_print_listening(const char *scheme, const char *addr, unsigned port) {
  const char *colon = strrchr(addr, ':');
  int host_len = colon ? (int)(colon - addr) : (int)strlen(addr);
  printf("listening on %s://%.*s:%u\n", scheme, host_len, addr, port);
  fflush(stdout);
}

/* Whether PORT (the text after the last ':' of ADDR) is a decimal port 0..65535 (0: any free
 * port). Checked here because getaddrinfo does not: glibc reads a numeric service with strtoul
 * and keeps the low 16 bits, so "70000" would bind 4464 and "65536" a random port. */
static inline int zh_host_port_ok(const char *port) {
  size_t n = strlen(port);
  if (n == 0 || n > 5 || strspn(port, "0123456789") != n) return 0;
  return strtoul(port, NULL, 10) <= 65535;
}

/* Binds and listens on ADDR ("127.0.0.1:8080", "[::1]:0", ":8080" for every address; SO_REUSEADDR,
 * non-blocking, close-on-exec). Returns the fd and the bound port, or -1 after a message (also
 * for a port that is not a number in 0..65535). */
static inline int zh_host_bind_listen(const char *prog, const char *addr, int backlog,
                                      unsigned *port_out) {
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
    fprintf(stderr, "%s: --listen wants HOST:PORT, got %s\n", prog, addr);
    return -1;
  }
  if (!zh_host_port_ok(colon + 1)) {
    fprintf(stderr, "%s: --listen: port must be a number in 0..65535, got '%s' (in %s)\n", prog,
            colon + 1, addr);
    return -1;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  char *h = host;
  size_t hl = strlen(h);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h[hl - 1] = '\0';
    h++;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gr = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
  if (gr != 0) {
    fprintf(stderr, "%s: cannot resolve %s: %s\n", prog, addr, gai_strerror(gr));
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, addr, strerror(errno));
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* GET and HEAD go on (1); anything else is answered 405 here (0). */
static inline int zh_host_get_or_head(zh_request *req) {
  const char *method = zh_request_method(req);
  if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) return 1;
  zh_request_reject(req, 405);
  return 0;
}

/* 200 `Hello, world!` (text/plain, static memory lent to the engine). */
static inline void zh_host_respond_hello(zh_request *req) {
  static const char hello[] = "Hello, world!";
  zh_response *resp = NULL;
  if (zh_response_new(200, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  zh_response_add_header(resp, "Content-Type", "text/plain");
  zh_response_add_lent(resp, hello, sizeof hello - 1, NULL, NULL);
  zh_respond(req, resp);
}

/* Opens --root as an O_PATH directory into *fd_out (-1 without --root). 0, or -1 after a
 * message. */
static inline int zh_host_open_root(const char *prog, const char *root, int *fd_out) {
  *fd_out = -1;
  if (root == NULL) return 0;
  *fd_out = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*fd_out >= 0) return 0;
  fprintf(stderr, "%s: cannot open directory %s: %s\n", prog, root, strerror(errno));
  return -1;
}

static inline int zh_host_listen_root_args(int argc, char **argv, const char *prog,
                                           const char **listen_addr, int *root_fd) {
  const char *root = NULL;
  *listen_addr = ZH_EX_DEFAULT_LISTEN;
  const zh_host_flag flags[] = {{"--listen", listen_addr, NULL, 0, 0}, {"--root", &root, NULL, 0, 0}};
  zh_host_parse_flags(argc, argv, prog, "[--listen ADDR] [--root DIR]", flags, 2);
  return zh_host_open_root(prog, root, root_fd);
}

static inline const char *zh_host_content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot == NULL || strchr(dot, '/') != NULL) return "application/octet-stream";
  if (strcasecmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  if (strcasecmp(dot, ".css") == 0) return "text/css; charset=utf-8";
  if (strcasecmp(dot, ".txt") == 0) return "text/plain; charset=utf-8";
  if (strcasecmp(dot, ".svg") == 0) return "image/svg+xml";
  if (strcasecmp(dot, ".json") == 0) return "application/json";
  return "application/octet-stream";
}

/* Opens `rel` beneath `root_fd` without following anything out of it (openat2). */
static inline int zh_host_open_beneath(int root_fd, const char *rel) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
}

/* Answers `req` with what opening `name` gave: fd < 0 → 404 (ENOENT, ENOTDIR) or 403 by errno;
 * not a regular file → 403; else zh_respond_file (sendfile, Range, ETag/304 by the engine), the
 * type from the name. Takes `fd` and hands `req` back on every path. */
static inline void zh_host_respond_opened(zh_request *req, int fd, const char *name) {
  if (fd < 0) {
    zh_request_reject(req, (errno == ENOENT || errno == ENOTDIR) ? 404 : 403);
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    zh_request_reject(req, 403);
    return;
  }
  zh_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.content_type = zh_host_content_type(name);
  info.last_modified = -1;
  info.size = -1;
  /* Takes fd and req on every path but NULL / ALREADY_USED (impossible here). */
  (void)zh_respond_file(req, fd, ZH_FD_CLOSE, &info);
}

/* Serves `path` (starting with '/') from the root (-1: none → 404); a directory → its
 * index.html. No percent-decoding here: '%' and ".." segments are refused outright (403). */
static inline void zh_host_serve_file(zh_request *req, int root_fd, const char *path) {
  if (root_fd < 0) {
    zh_request_reject(req, 404);
    return;
  }
  if (strchr(path, '%') != NULL || strstr(path, "/../") != NULL ||
      (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0)) {
    zh_request_reject(req, 403);
    return;
  }
  char rel[4096];
  const char *p = path;
  while (*p == '/') p++;
  int n = snprintf(rel, sizeof rel, "%s", *p ? p : ".");
  if (n < 0 || (size_t)n >= sizeof rel - 16) {
    zh_request_reject(req, 414);
    return;
  }
  int fd = zh_host_open_beneath(root_fd, rel);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    if (strcmp(rel, ".") == 0) snprintf(rel, sizeof rel, "index.html");
    else strcat(rel, rel[n - 1] == '/' ? "index.html" : "/index.html");
    fd = zh_host_open_beneath(root_fd, rel);
  }
  zh_host_respond_opened(req, fd, rel);
}

/* The handler of the single-loop hosts: GET/HEAD /hello, else a file under the root.
 * `ud` points to the root's fd (-1: no --root). */
static inline void zh_host_on_request(void *ud, zh_request *req) {
  if (!zh_host_get_or_head(req)) return;
  const char *path = zh_request_path(req);
  if (strcmp(path, "/hello") == 0) zh_host_respond_hello(req);
  else zh_host_serve_file(req, *(const int *)ud, path);
}

#endif /* ZH_HOST_COMMON_H */
