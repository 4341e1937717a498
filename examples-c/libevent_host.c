/* zh_libevent_host — zerohttp embedded in a libevent event_base: the same host as zh_epoll_host,
 * with libevent owning the loop.
 *
 *   zh_libevent_host [--listen ADDR] [--root DIR]
 *
 * The engine runs in external-loop mode (zh_config_set_threads(cfg, 0)), so it creates no worker
 * thread. The host registers with its event_base:
 *   - a persistent EV_READ event on zh_engine_fd(): readable → zh_engine_step(engine, 0);
 *   - a one-shot timer for the engine's own timers, re-armed after every step from
 *     zh_engine_next_timeout_ms() (deleted when it says -1);
 *   - its own persistent 1 s timer printing a heartbeat counter to stderr;
 *   - evsignal events for SIGINT/SIGTERM: event_base_loopbreak(), then — outside the loop and
 *     outside any step — zh_engine_shutdown(engine, 2000) (which drives the engine itself until
 *     in-flight responses are done), zh_engine_free, exit 0.
 * SIGPIPE is ignored: the header requires it of external-loop hosts.
 *
 * Routes (as in zh_epoll_host): GET /hello → `Hello, world!`; with --root DIR any other path is
 * a file under DIR sent with zh_respond_file. Access log to stderr (zh_config_set_access_log). */
#define _GNU_SOURCE
#include <event2/event.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
  fprintf(stderr, "zh_libevent_host: engine log (level %d): %s\n", (int)level, msg);
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

/* ---- main: libevent owns the loop ------------------------------------------------------- */

static struct {
  zh_engine *engine;
  struct event_base *base;
  struct event *engine_timer; /* the engine's timers (one-shot, re-armed after each step) */
  unsigned long long heartbeats;
  int status;
} h;

/* Re-arms the engine timer from zh_engine_next_timeout_ms (-1: nothing pending). */
static void arm_engine_timer(void) {
  int64_t t = zh_engine_next_timeout_ms(h.engine);
  if (t < 0) {
    evtimer_del(h.engine_timer);
    return;
  }
  struct timeval tv = {(time_t)(t / 1000), (suseconds_t)((t % 1000) * 1000)};
  evtimer_add(h.engine_timer, &tv);
}

static void step_engine(void) {
  zh_result rc = zh_engine_step(h.engine, 0); /* never blocks: libevent did the waiting */
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_step", rc);
    h.status = 1;
    event_base_loopbreak(h.base);
    return;
  }
  arm_engine_timer();
}

static void on_engine_fd(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  step_engine();
}

static void on_engine_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  step_engine();
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  fprintf(stderr, "zh_libevent_host: heartbeat %llu\n", ++h.heartbeats);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what, (void)arg;
  fprintf(stderr, "zh_libevent_host: signal %d, shutting down\n", (int)sig);
  event_base_loopbreak(h.base);
}

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
      fprintf(stderr, "zh_libevent_host: cannot open directory %s: %s\n", root, strerror(errno));
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);

  zh_config *cfg = NULL;
  zh_result rc = zh_config_new(&cfg);
  if (rc == ZH_OK) rc = zh_config_set_threads(cfg, 0);
  if (rc == ZH_OK) rc = zh_config_set_access_log(cfg, on_access, NULL);
  if (rc == ZH_OK) rc = zh_config_set_log(cfg, on_log, NULL);
  if (rc == ZH_OK) rc = zh_engine_new(cfg, on_request, NULL, &h.engine);
  zh_config_free(cfg);
  if (rc != ZH_OK) {
    zh_ex_fail("creating the engine", rc);
    return 1;
  }
  uint16_t port = 0;
  rc = zh_engine_listen(h.engine, listen_addr, &port);
  int32_t engine_fd = -1;
  if (rc == ZH_OK) rc = zh_engine_fd(h.engine, &engine_fd);
  if (rc != ZH_OK) {
    fprintf(stderr, "zh_engine_listen(%s) / zh_engine_fd: %s\n", listen_addr, zh_result_str(rc));
    zh_engine_free(h.engine);
    return 1;
  }

  h.base = event_base_new();
  if (h.base == NULL) {
    fprintf(stderr, "event_base_new failed\n");
    zh_engine_free(h.engine);
    return 1;
  }
  struct event *engine_ev = event_new(h.base, engine_fd, EV_READ | EV_PERSIST, on_engine_fd, NULL);
  h.engine_timer = evtimer_new(h.base, on_engine_timer, NULL);
  struct event *heartbeat = event_new(h.base, -1, EV_PERSIST, on_heartbeat, NULL);
  struct event *sigint = evsignal_new(h.base, SIGINT, on_signal, NULL);
  struct event *sigterm = evsignal_new(h.base, SIGTERM, on_signal, NULL);
  struct timeval one_second = {1, 0};
  event_add(engine_ev, NULL);
  event_add(heartbeat, &one_second);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  arm_engine_timer();

  const char *colon = strrchr(listen_addr, ':');
  int host_len = colon ? (int)(colon - listen_addr) : (int)strlen(listen_addr);
  printf("listening on http://%.*s:%u\n", host_len, listen_addr, (unsigned)port);
  fflush(stdout);

  if (event_base_dispatch(h.base) < 0) h.status = 1;

  /* Out of the loop and out of any step: shutdown drives the engine itself. */
  rc = zh_engine_shutdown(h.engine, 2000);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_shutdown", rc);
    h.status = 1;
  }
  if (getenv("ZH_EXAMPLE_STATS") != NULL) zh_ex_print_stats(h.engine);
  zh_engine_free(h.engine);
  event_free(engine_ev);
  event_free(h.engine_timer);
  event_free(heartbeat);
  event_free(sigint);
  event_free(sigterm);
  event_base_free(h.base);
  if (g_root_fd >= 0) close(g_root_fd);
  return h.status;
}
