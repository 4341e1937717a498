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
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "host_common.h"

#define PROG "zh_epoll_host"

int main(int argc, char **argv) {
  const char *listen_addr = NULL;
  int root_fd = -1;
  if (zh_host_listen_root_args(argc, argv, PROG, &listen_addr, &root_fd) != 0) return 1;

  /* Signals: SIGINT/SIGTERM only through the signalfd; SIGPIPE ignored (see the top). */
  sigset_t sigs;
  if (zh_host_block_signals(&sigs, 0) != 0) return 1;
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
  zh_engine *engine = NULL;
  zh_result rc = zh_host_engine_new(zh_host_on_request, &root_fd, zh_host_on_access, PROG, &engine);
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

  zh_host_print_listening("http", listen_addr, port);

  unsigned long long heartbeats = 0;
  int running = 1;
  int status = 0;
  while (running) {
    /* step: the engine's fd fired, or its timer is due (the wait lasted its whole timeout) */
    struct epoll_event evs[8];
    int step = 0;
    int n = zh_host_epoll_wait(ep, evs, 8, engine, "epoll_wait", &step);
    if (n < 0) {
      status = 1;
      break;
    }
    for (int i = 0; i < n; i++) {
      switch (evs[i].data.u32) {
        case EV_ENGINE:
          step = 1;
          break;
        case EV_TIMER: {
          uint64_t expirations = 0;
          if (read(timer_fd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations) {
            heartbeats += expirations;
            fprintf(stderr, PROG ": heartbeat %llu\n", heartbeats);
          }
          break;
        }
        case EV_SIGNAL:
          if (zh_host_read_signal(PROG, sig_fd)) running = 0;
          break;
      }
    }
    if (step && running && zh_host_step(engine, "zh_engine_step") != 0) {
      status = 1;
      break;
    }
  }

  if (zh_host_finish(engine, "zh_engine_shutdown") != 0) status = 1;
  close(ep);
  close(timer_fd);
  close(sig_fd);
  if (root_fd >= 0) close(root_fd);
  return status;
}
