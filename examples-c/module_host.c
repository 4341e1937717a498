/* zh_module_host — an nginx-style host: a master process and forked worker processes, each
 * worker with its own accept loop, handing accepted connections to its own zerohttp engine.
 *
 *   zh_module_host [--listen ADDR] [--root DIR] [--workers N]     (N: 1..64, default 2)
 *
 * Master: binds and listens on ADDR itself (SO_REUSEADDR, backlog 511), forks N workers, prints
 * `listening on http://ADDR` (the socket already queues connections, so it is ready), then only
 * waits for signals on a signalfd: SIGTERM/SIGINT are forwarded to every worker as SIGTERM and
 * the workers are reaped (exit 0 when all of them exited 0); a worker that dies on its own is
 * reaped, logged and replaced. The master never creates an engine: no thread exists at fork().
 *
 * Worker: creates its engine in external-loop mode (threads = 0). Why 0 and not 1: like an nginx
 * worker, each process is one single-threaded event loop; the host's epoll set holds the shared
 * listening fd (EPOLLEXCLUSIVE, so one connection wakes one worker, not all of them), the
 * engine's fd and a signalfd, and the worker calls zh_engine_step when the engine fd is readable
 * or its timer is due. Handlers run on that same thread, so the "module" code needs no locking,
 * and the process scales by adding workers, not threads. (threads = 1 would work too: the accept
 * loop would then block in accept4 on the main thread and zh_engine_adopt_fd would hand each fd
 * to the engine's own thread — at the cost of a thread hop per connection.)
 * Each accepted fd (accept4, non-blocking) goes to the engine with zh_engine_adopt_fd, which
 * owns it from then on. On SIGTERM the worker stops accepting (closes its listening fd), calls
 * zh_engine_shutdown(engine, 2000) (finishes in-flight responses), frees the engine, exits 0.
 *
 * The "module" is a handler table registered by path prefix (first match wins):
 *   /hello    → `Hello, world!`
 *   /status   → JSON: the worker's pid and index, and its engine's zh_stats counters
 *   /static/  → files under --root (zh_respond_file: sendfile, Range, ETag/304), 404 without --root
 * anything else → 404. SIGPIPE is ignored in every process (external-loop hosts must). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host_common.h"

#define PROG "zh_module_host"
#define MAX_WORKERS 64

/* Per-process state (each worker has its own copy after fork). */
static struct {
  int root_fd;        /* O_PATH directory fd of --root, or -1 */
  int worker_index;   /* 0..N-1 in workers, -1 in the master */
  zh_engine *engine;  /* this worker's engine (for /status) */
} g = {-1, -1, NULL};

/* ---- the module: handlers registered by path prefix ------------------------------------------ */

typedef void (*route_fn)(zh_request *req, const char *rest);

static void route_hello(zh_request *req, const char *rest) {
  (void)rest;
  zh_host_respond_hello(req);
}

static void route_status(zh_request *req, const char *rest) {
  (void)rest;
  zh_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = (uint32_t)sizeof st;
  if (zh_engine_stats(g.engine, &st) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  char body[1024];
  int n = snprintf(body, sizeof body,
                   "{\"pid\": %ld, \"worker\": %d, \"connections_accepted\": %llu, "
                   "\"connections_active\": %llu, \"requests\": %llu, \"responses\": %llu, "
                   "\"bytes_writev\": %llu, \"bytes_sendfile\": %llu, \"bytes_copy\": %llu, "
                   "\"errors_io\": %llu}\n",
                   (long)getpid(), g.worker_index, (unsigned long long)st.connections_accepted,
                   (unsigned long long)st.connections_active, (unsigned long long)st.requests,
                   (unsigned long long)st.responses, (unsigned long long)st.bytes_writev,
                   (unsigned long long)st.bytes_sendfile, (unsigned long long)st.bytes_copy,
                   (unsigned long long)st.errors_io);
  zh_response *resp = NULL;
  if (zh_response_new(200, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  if (zh_response_add_header(resp, "Content-Type", "application/json") != ZH_OK ||
      zh_response_add_bytes(resp, body, (size_t)n) != ZH_OK) {
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  zh_respond(req, resp);
}

/* `rest`: the path after "/static/". Files only (no directory index), confined to the root by
 * openat2(RESOLVE_BENEATH); '%' and ".." segments are refused (no percent-decoding here). */
static void route_static(zh_request *req, const char *rest) {
  if (g.root_fd < 0 || *rest == '\0') {
    zh_request_reject(req, 404);
    return;
  }
  if (strchr(rest, '%') != NULL || strncmp(rest, "../", 3) == 0 || strstr(rest, "/../") != NULL ||
      strcmp(rest, "..") == 0 || (strlen(rest) >= 3 && strcmp(rest + strlen(rest) - 3, "/..") == 0)) {
    zh_request_reject(req, 403);
    return;
  }
  zh_host_respond_opened(req, zh_host_open_beneath(g.root_fd, rest), rest); /* takes fd and req */
}

/* The module's handler table. A prefix ending in '/' matches everything below it; any other
 * prefix matches the exact path or the path followed by '/'. */
static const struct {
  const char *prefix;
  route_fn fn;
} g_routes[] = {
    {"/hello", route_hello},
    {"/status", route_status},
    {"/static/", route_static},
};

static void on_request(void *ud, zh_request *req) {
  (void)ud;
  if (!zh_host_get_or_head(req)) return;
  const char *path = zh_request_path(req);
  for (size_t i = 0; i < sizeof g_routes / sizeof g_routes[0]; i++) {
    const char *prefix = g_routes[i].prefix;
    size_t len = strlen(prefix);
    if (strncmp(path, prefix, len) != 0) continue;
    if (prefix[len - 1] == '/' || path[len] == '\0' || path[len] == '/') {
      g_routes[i].fn(req, path + len);
      return;
    }
  }
  zh_request_reject(req, 404);
}

/* ---- worker process ---------------------------------------------------------------------------- */

static void on_access(void *ud, const zh_access_record *r) {
  (void)ud;
  fprintf(stderr, "[worker %d pid %ld] %s \"%s %s\" %u %llu %s\n", g.worker_index,
          (long)getpid(), r->peer, r->method, r->target, (unsigned)r->status,
          (unsigned long long)r->bytes, r->strategy);
}

static int worker_main(int listen_fd) {
  /* SIGINT/SIGTERM are still blocked (inherited from the master): read them from a signalfd.
   * SIGINT too, so that Ctrl-C in a terminal (sent to the whole process group) ends up in the
   * same clean path as the master's forwarded SIGTERM. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (sig_fd < 0 || ep < 0) {
    perror("worker: signalfd/epoll_create1");
    return 1;
  }

  zh_result rc = zh_host_engine_new(on_request, NULL,
                                    getenv("ZH_MODULE_ACCESS_LOG") != NULL ? on_access : NULL,
                                    NULL, &g.engine);
  if (rc != ZH_OK) {
    zh_ex_fail("worker: creating the engine", rc);
    return 1;
  }
  int32_t engine_fd = -1;
  rc = zh_engine_fd(g.engine, &engine_fd);
  if (rc != ZH_OK) {
    zh_ex_fail("worker: zh_engine_fd", rc);
    zh_engine_free(g.engine);
    return 1;
  }

  enum { EV_LISTEN = 1, EV_ENGINE = 2, EV_SIGNAL = 3 };
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  /* EPOLLEXCLUSIVE: a new connection wakes one of the workers waiting on it, not all. */
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.u32 = EV_LISTEN;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
    ev.events = EPOLLIN; /* kernels before 4.5 */
    epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
  }
  ev.events = EPOLLIN;
  ev.data.u32 = EV_ENGINE;
  epoll_ctl(ep, EPOLL_CTL_ADD, engine_fd, &ev);
  ev.data.u32 = EV_SIGNAL;
  epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);

  int status = 0;
  for (int running = 1; running;) {
    struct epoll_event evs[8];
    int n = zh_host_epoll_wait(ep, evs, 8, g.engine, "worker: epoll_wait", NULL);
    if (n < 0) {
      status = 1;
      break;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == EV_SIGNAL) {
        running = 0;
      } else if (evs[i].data.u32 == EV_LISTEN) {
        /* The host's own accept loop: take a bounded batch, leave the rest to other workers. */
        for (int k = 0; k < 32; k++) {
          int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
              perror("worker: accept4");
            break;
          }
          /* The engine owns fd from here on (it closes it even on ZH_ERR_STATE). A host that
           * sniffed the first bytes (say, to route TLS elsewhere) would pass them here. */
          rc = zh_engine_adopt_fd(g.engine, fd, NULL, 0);
          if (rc == ZH_ERR_INVALID || rc == ZH_ERR_NULL) close(fd);
          if (rc != ZH_OK) zh_ex_fail("worker: zh_engine_adopt_fd", rc);
        }
      }
    }
    /* Step after every wake-up: the engine fd was readable, an adopted fd is queued for it, or
     * its timer is due. zh_engine_step(…, 0) never blocks; with nothing to do it returns at once. */
    if (running && zh_host_step(g.engine, "worker: zh_engine_step") != 0) {
      status = 1;
      break;
    }
  }

  /* Stop accepting (the other workers and the master still hold the socket), then finish. */
  epoll_ctl(ep, EPOLL_CTL_DEL, listen_fd, NULL);
  close(listen_fd);
  if (zh_host_finish(g.engine, "worker: zh_engine_shutdown") != 0) status = 1;
  close(ep);
  close(sig_fd);
  return status;
}

/* ---- master process ---------------------------------------------------------------------------- */

static pid_t spawn_worker(int index, int listen_fd, int sig_fd) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid != 0) return pid; /* master (or -1) */
  close(sig_fd);            /* the master's; the worker makes its own */
  g.worker_index = index;
  _exit(worker_main(listen_fd));
}

int main(int argc, char **argv) {
  const char *listen_addr = ZH_EX_DEFAULT_LISTEN;
  const char *root = NULL;
  int workers = 2;
  const zh_host_flag flags[] = {{"--listen", &listen_addr, NULL, 0, 0},
                                {"--root", &root, NULL, 0, 0},
                                {"--workers", NULL, &workers, 1, MAX_WORKERS}};
  zh_host_parse_flags(argc, argv, PROG, "[--listen ADDR] [--root DIR] [--workers N]", flags, 3);
  if (zh_host_open_root(PROG, root, &g.root_fd) != 0) return 1;

  /* Blocked before fork, so workers inherit the mask and read them from their own signalfd. */
  sigset_t sigs;
  zh_host_block_signals(&sigs, SIGCHLD);
  int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
  if (sig_fd < 0) {
    perror("signalfd");
    return 1;
  }

  unsigned port = 0;
  int listen_fd = zh_host_bind_listen(PROG, listen_addr, 511, &port);
  if (listen_fd < 0) return 1;

  pid_t pids[MAX_WORKERS];
  for (int i = 0; i < workers; i++) {
    pids[i] = spawn_worker(i, listen_fd, sig_fd);
    if (pids[i] < 0) {
      perror("fork");
      return 1;
    }
  }
  zh_host_print_listening("http", listen_addr, port);
  fprintf(stderr, PROG ": master %ld, %d workers\n", (long)getpid(), workers);

  int stopping = 0, alive = workers, status = 0;
  while (alive > 0) {
    struct signalfd_siginfo si;
    ssize_t r = read(sig_fd, &si, sizeof si);
    if (r != (ssize_t)sizeof si) {
      if (r < 0 && errno == EINTR) continue;
      perror("read(signalfd)");
      status = 1;
      break;
    }
    if (si.ssi_signo == SIGCHLD) {
      int ws;
      pid_t pid;
      while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
        for (int i = 0; i < workers; i++) {
          if (pids[i] != pid) continue;
          int clean = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
          if (stopping) {
            if (!clean) status = 1;
            pids[i] = 0;
            alive--;
          } else {
            /* A worker died on its own: log it and start a new one, like nginx does. */
            fprintf(stderr, PROG ": worker %d (pid %ld) %s %d, restarting it\n", i,
                    (long)pid, WIFEXITED(ws) ? "exited with" : "killed by signal",
                    WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
            pids[i] = spawn_worker(i, listen_fd, sig_fd);
            if (pids[i] < 0) {
              pids[i] = 0;
              alive--;
              status = 1;
            }
          }
        }
      }
    } else if (!stopping) {
      /* SIGTERM or SIGINT: pass SIGTERM on to every worker, then reap them above. */
      stopping = 1;
      fprintf(stderr, PROG ": signal %u, stopping %d workers\n", si.ssi_signo, alive);
      close(listen_fd);
      listen_fd = -1;
      for (int i = 0; i < workers; i++)
        if (pids[i] > 0) kill(pids[i], SIGTERM);
    }
  }
  if (listen_fd >= 0) close(listen_fd);
  close(sig_fd);
  if (g.root_fd >= 0) close(g.root_fd);
  return status;
}
