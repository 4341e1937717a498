/* zh_epoll_host — a plain epoll program that owns its event loop and embeds zerohttp in it.
 *
 *   zh_epoll_host [--listen ADDR] [--root DIR]
 *
 * The engine runs in external-loop mode (zh_config_set_threads(cfg, 0)): it creates no worker
 * thread. Its epoll fd (zh_engine_fd) sits in the host's own epoll set next to the host's other
 * fds, and the host calls zh_engine_step(engine, 0) when that fd is readable or when
 * zh_engine_next_timeout_ms() has passed (the engine's timers: header read, idle, send
 * timeouts). Handlers run inside zh_engine_step, on this one thread.
 *
 * Next to the engine, the host has:
 *   - a timerfd that prints a heartbeat counter to stderr every second (the host's own timer);
 *   - a signalfd for SIGINT/SIGTERM (blocked first, so they are only ever read from the fd):
 *     on either, zh_engine_shutdown(engine, 2000) — in external-loop mode it drives the loop
 *     itself until in-flight responses finish — then zh_engine_free, exit 0.
 * SIGPIPE is ignored: the header requires it of external-loop hosts (sendfile/splice on a
 * vanished peer cannot be told not to raise it, and no engine thread blocks it for us).
 *
 * Routes: GET /hello → `Hello, world!`; with --root DIR, any other path is a file under DIR
 * sent with zh_respond_file (sendfile, Range, ETag/304 by the engine; a directory → its
 * index.html; `..` segments and escaping symlinks → 403). Access log lines go to stderr
 * through zh_config_set_access_log, engine log messages through zh_config_set_log. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "example_common.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static const char HELLO[] = "Hello, world!";
static int g_root_fd = -1; /* O_PATH directory fd of --root, or -1 */

/* ---- hooks -------------------------------------------------------------------------------- */

static void on_log(void *ud, int32_t level, const char *msg) {
  (void)ud;
  fprintf(stderr, "zh_epoll_host: engine log (level %d): %s\n", (int)level, msg);
}

static void on_access(void *ud, const zh_access_record *r) {
  (void)ud;
  fprintf(stderr, "%s \"%s %s\" %u %llu %lluus %s\n", r->peer, r->method, r->target,
          (unsigned)r->status, (unsigned long long)r->bytes, (unsigned long long)r->duration_us,
          r->strategy);
}

/* ---- files under --root ------------------------------------------------------------------- */

static const char *content_type_for(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot == NULL || strchr(dot, '/') != NULL) return "application/octet-stream";
  if (strcasecmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  if (strcasecmp(dot, ".css") == 0) return "text/css; charset=utf-8";
  if (strcasecmp(dot, ".txt") == 0) return "text/plain; charset=utf-8";
  if (strcasecmp(dot, ".svg") == 0) return "image/svg+xml";
  if (strcasecmp(dot, ".json") == 0) return "application/json";
  return "application/octet-stream";
}

/* Opens `rel` beneath the root without following anything out of it (openat2). */
static int open_beneath(const char *rel) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return (int)syscall(SYS_openat2, g_root_fd, rel, &how, sizeof how);
}

/* Serves `path` (starting with '/') from the root. Hands `req` back on every path. */
static void serve_file(zh_request *req, const char *path) {
  if (g_root_fd < 0) {
    zh_request_reject(req, 404);
    return;
  }
  /* No percent-decoding in this example: '%' and ".." segments are refused outright. */
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
  int fd = open_beneath(rel);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    if (strcmp(rel, ".") == 0) snprintf(rel, sizeof rel, "index.html");
    else strcat(rel, rel[n - 1] == '/' ? "index.html" : "/index.html");
    fd = open_beneath(rel);
    if (fd >= 0 && fstat(fd, &st) != 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    zh_request_reject(req, (errno == ENOENT || errno == ENOTDIR) ? 404 : 403);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    zh_request_reject(req, 403);
    return;
  }
  zh_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.content_type = content_type_for(rel);
  info.last_modified = -1;
  info.size = -1;
  /* Takes fd and req on every path but NULL / ALREADY_USED (impossible here). */
  (void)zh_respond_file(req, fd, ZH_FD_CLOSE, &info);
}

static void on_request(void *ud, zh_request *req) {
  (void)ud;
  const char *method = zh_request_method(req);
  const char *path = zh_request_path(req);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    zh_request_reject(req, 405);
    return;
  }
  if (strcmp(path, "/hello") == 0) {
    zh_response *resp = NULL;
    if (zh_response_new(200, &resp) != ZH_OK) {
      zh_request_reject(req, 500);
      return;
    }
    zh_response_add_header(resp, "Content-Type", "text/plain");
    zh_response_add_lent(resp, HELLO, sizeof HELLO - 1, NULL, NULL); /* static: no release */
    zh_respond(req, resp);
    return;
  }
  serve_file(req, path);
}

/* ---- main: the host's own loop -------------------------------------------------------------- */

static void usage(const char *prog) {
  fprintf(stderr, "usage: %s [--listen ADDR] [--root DIR]\n", prog);
}

int main(int argc, char **argv) {
  const char *listen_addr = ZH_EX_DEFAULT_LISTEN;
  const char *root = NULL;
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], "--listen") == 0 || strcmp(argv[i], "--root") == 0) && i + 1 < argc) {
      if (argv[i][2] == 'l') listen_addr = argv[++i];
      else root = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(argv[0]);
      return 0;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (root != NULL) {
    g_root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g_root_fd < 0) {
      fprintf(stderr, "zh_epoll_host: cannot open directory %s: %s\n", root, strerror(errno));
      return 1;
    }
  }

  /* Signals: SIGINT/SIGTERM only through the signalfd; SIGPIPE ignored (see the top). */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
    perror("sigprocmask");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sig_fd < 0 || timer_fd < 0 || ep < 0) {
    perror("signalfd/timerfd/epoll_create1");
    return 1;
  }
  struct itimerspec every_second = {{1, 0}, {1, 0}};
  timerfd_settime(timer_fd, 0, &every_second, NULL);

  /* The engine, in external-loop mode. */
  zh_config *cfg = NULL;
  zh_engine *engine = NULL;
  zh_result rc = zh_config_new(&cfg);
  if (rc == ZH_OK) rc = zh_config_set_threads(cfg, 0);
  if (rc == ZH_OK) rc = zh_config_set_access_log(cfg, on_access, NULL);
  if (rc == ZH_OK) rc = zh_config_set_log(cfg, on_log, NULL);
  if (rc == ZH_OK) rc = zh_engine_new(cfg, on_request, NULL, &engine);
  zh_config_free(cfg);
  if (rc != ZH_OK) {
    zh_ex_fail("creating the engine", rc);
    return 1;
  }
  uint16_t port = 0;
  rc = zh_engine_listen(engine, listen_addr, &port);
  if (rc != ZH_OK) {
    fprintf(stderr, "zh_engine_listen(%s): %s\n", listen_addr, zh_result_str(rc));
    zh_engine_free(engine);
    return 1;
  }
  int32_t engine_fd = -1;
  rc = zh_engine_fd(engine, &engine_fd);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_fd", rc);
    zh_engine_free(engine);
    return 1;
  }

  /* One epoll set for everything the host owns; data.u32 says which fd fired. */
  enum { EV_ENGINE = 1, EV_TIMER = 2, EV_SIGNAL = 3 };
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.u32 = EV_ENGINE;
  epoll_ctl(ep, EPOLL_CTL_ADD, engine_fd, &ev);
  ev.data.u32 = EV_TIMER;
  epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev);
  ev.data.u32 = EV_SIGNAL;
  epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);

  const char *colon = strrchr(listen_addr, ':');
  int host_len = colon ? (int)(colon - listen_addr) : (int)strlen(listen_addr);
  printf("listening on http://%.*s:%u\n", host_len, listen_addr, (unsigned)port);
  fflush(stdout);

  unsigned long long heartbeats = 0;
  int running = 1;
  int status = 0;
  while (running) {
    int64_t t = zh_engine_next_timeout_ms(engine); /* -1: no engine timer pending */
    int timeout = t < 0 ? -1 : (t > 3600000 ? 3600000 : (int)t);
    struct timespec before;
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      status = 1;
      break;
    }
    int step = 0;
    for (int i = 0; i < n; i++) {
      switch (evs[i].data.u32) {
        case EV_ENGINE:
          step = 1;
          break;
        case EV_TIMER: {
          uint64_t expirations = 0;
          if (read(timer_fd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations) {
            heartbeats += expirations;
            fprintf(stderr, "zh_epoll_host: heartbeat %llu\n", heartbeats);
          }
          break;
        }
        case EV_SIGNAL: {
          struct signalfd_siginfo si;
          if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
            fprintf(stderr, "zh_epoll_host: signal %u, shutting down\n", si.ssi_signo);
            running = 0;
          }
          break;
        }
      }
    }
    if (!step && timeout >= 0) {
      /* The engine's timer is due when the wait lasted its whole timeout. */
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double waited = (double)(now.tv_sec - before.tv_sec) * 1e3 +
                      (double)(now.tv_nsec - before.tv_nsec) / 1e6;
      step = waited >= (double)timeout;
    }
    if (step && running) {
      rc = zh_engine_step(engine, 0); /* never blocks: the host's epoll_wait did the waiting */
      if (rc != ZH_OK) {
        zh_ex_fail("zh_engine_step", rc);
        status = 1;
        break;
      }
    }
  }

  /* Outside any step: shutdown drives the loop itself until in-flight responses are done. */
  rc = zh_engine_shutdown(engine, 2000);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_shutdown", rc);
    status = 1;
  }
  if (getenv("ZH_EXAMPLE_STATS") != NULL) zh_ex_print_stats(engine);
  zh_engine_free(engine);
  close(ep);
  close(timer_fd);
  close(sig_fd);
  if (g_root_fd >= 0) close(g_root_fd);
  return status;
}
