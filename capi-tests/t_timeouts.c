/* Idle keep-alive timeout, send timeout for a client that stops reading (its response is
 * released), and max_connections per worker. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define IDLE_MS 400
#define SEND_MS 400
#define HUGE (32u << 20)

static uint8_t *g_huge;
static atomic_int g_releases;
static int g_file_fd = -1;
static atomic_int g_dup = -1;

static void release(void *ud) {
  CHECK(ud == (void *)g_huge);
  atomic_fetch_add(&g_releases, 1);
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  if (strcmp(zh_request_path(req), "/huge") == 0) {
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    CHECK_OK(zh_response_add_lent(r, g_huge, HUGE, release, g_huge));
    int fd = zt_dup(g_file_fd);
    atomic_store(&g_dup, fd);
    CHECK_OK(zh_response_add_file(r, fd, 0, -1, ZH_FD_CLOSE));
    CHECK_OK(zh_respond(req, r));
    return;
  }
  zt_respond_text(req, 200, "ok");
}

int main(void) {
  g_huge = calloc(1, HUGE);
  CHECK(g_huge != NULL);
  g_file_fd = zt_temp_file(1 << 20);
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_timeouts(cfg, 0, IDLE_MS, SEND_MS));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zt_response r;

  /* ---- idle keep-alive connection closed after ~IDLE_MS */
  {
    zt_conn *c = zt_connect(port);
    double t0 = zt_now_ms(); /* the idle period cannot start before the request is sent */
    zt_get(c, "/a", &r);
    CHECK_EQ_INT(r.status, 200);
    zt_response_free(&r);
    int closed = zt_wait_closed(c, 5000, NULL);
    double dt = zt_now_ms() - t0;
    fprintf(stderr, "idle: closed=%d after %.1f ms (idle timeout %d)\n", closed, dt, IDLE_MS);
    CHECK_MSG(closed, "idle keep-alive connection never closed");
    CHECK(dt >= IDLE_MS - 20);
    CHECK(dt < (IDLE_MS + 1500) * zt_time_scale());
    zt_close(c);
  }
  /* ... but a connection that keeps being used stays open past IDLE_MS */
  {
    zt_conn *c = zt_connect(port);
    for (int i = 0; i < 6; i++) {
      zt_get(c, "/b", &r);
      CHECK_EQ_INT(r.status, 200);
      zt_response_free(&r);
      zt_sleep_ms(IDLE_MS / 3);
    }
    zt_close(c);
  }

  /* ---- a client that stops reading: cut off after ~SEND_MS without progress, released */
  {
    zh_stats s0;
    zt_stats(e, &s0);
    zt_conn *c = zt_connect(port);
    double t0 = zt_now_ms(); /* the engine's last progress is after this */
    CHECK(zt_send_str(c, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    uint8_t buf[4096];
    CHECK(zt_recv_some(c, buf, sizeof buf) > 0); /* it started */
    ZT_WAIT_UNTIL(atomic_load(&g_releases) == 1, 5000);
    double dt = zt_now_ms() - t0;
    fprintf(stderr, "send timeout: released=%d after %.1f ms (send timeout %d)\n",
            atomic_load(&g_releases), dt, SEND_MS);
    CHECK_MSG(atomic_load(&g_releases) == 1, "stalled response never released (send timeout)");
    CHECK(dt >= SEND_MS - 20);
    ZT_WAIT_UNTIL(zt_fd_closed(atomic_load(&g_dup)), 2000);
    CHECK_MSG(zt_fd_closed(atomic_load(&g_dup)), "file of a timed-out response not closed");
    size_t got = 0;
    CHECK_MSG(zt_wait_closed(c, 3000, &got), "timed-out connection not closed");
    CHECK(got < (size_t)HUGE);
    zt_close(c);
    zh_stats s1;
    zt_stats(e, &s1);
    zt_print_stats("after send timeout", &s1);
    CHECK(s1.errors_timeout > s0.errors_timeout);
  }
  CHECK_OK(zh_engine_shutdown(e, 500));
  zh_engine_free(e);

  /* ---- max_connections per worker: 1 worker, 2 connections; the third is closed at once */
  CHECK_OK(zh_config_set_threads(cfg, 1));
  CHECK_OK(zh_config_set_timeouts(cfg, 0, 60000, 0));
  CHECK_OK(zh_config_set_max_connections(cfg, 2));
  e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  {
    zt_conn *a = zt_connect(port), *b = zt_connect(port);
    zt_get(a, "/a", &r);
    zt_response_free(&r);
    zt_get(b, "/b", &r);
    zt_response_free(&r);
    zt_conn *third = zt_connect(port); /* the kernel accepts; the engine must close it */
    size_t got = 0;
    int closed = zt_wait_closed(third, 2000, &got);
    fprintf(stderr, "third connection over max_connections: closed=%d (%zu bytes)\n", closed, got);
    CHECK_MSG(closed, "connection over max_connections not closed");
    zt_close(third);
    /* the first two still work */
    zt_get(a, "/a2", &r);
    CHECK_EQ_INT(r.status, 200);
    zt_response_free(&r);
    zt_close(a);
    /* once one left, a new one is served */
    zh_stats s;
    ZT_WAIT_UNTIL((zt_stats(e, &s), s.connections_active <= 1), 2000);
    zt_conn *d = zt_connect(port);
    zt_get(d, "/d", &r);
    CHECK_EQ_INT(r.status, 200);
    zt_response_free(&r);
    zt_close(d);
    zt_close(b);
  }
  CHECK_OK(zh_engine_shutdown(e, 500));
  zh_engine_free(e);
  CHECK_EQ_INT(atomic_load(&g_releases), 1);
  free(g_huge);
  close(g_file_fd);
  printf("timeouts: ok\n");
  return 0;
}
