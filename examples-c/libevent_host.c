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
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "host_common.h"

#define PROG "zh_libevent_host"

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
  if (zh_host_step(h.engine, "zh_engine_step") != 0) {
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
  fprintf(stderr, PROG ": heartbeat %llu\n", ++h.heartbeats);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what, (void)arg;
  fprintf(stderr, PROG ": signal %d, shutting down\n", (int)sig);
  event_base_loopbreak(h.base);
}

int main(int argc, char **argv) {
  const char *listen_addr = NULL;
  int root_fd = -1;
  if (zh_host_listen_root_args(argc, argv, PROG, &listen_addr, &root_fd) != 0) return 1;
  signal(SIGPIPE, SIG_IGN); /* SIGINT/SIGTERM: libevent's evsignal events below */

  zh_result rc = zh_host_engine_new(zh_host_on_request, &root_fd, zh_host_on_access, PROG, &h.engine);
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

  zh_host_print_listening("http", listen_addr, port);

  if (event_base_dispatch(h.base) < 0) h.status = 1;

  /* Out of the loop and out of any step: shutdown drives the engine itself. */
  if (zh_host_finish(h.engine, "zh_engine_shutdown") != 0) h.status = 1;
  event_free(engine_ev);
  event_free(h.engine_timer);
  event_free(heartbeat);
  event_free(sigint);
  event_free(sigterm);
  event_base_free(h.base);
  if (root_fd >= 0) close(root_fd);
  return h.status;
}
