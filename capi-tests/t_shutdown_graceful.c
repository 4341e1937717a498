/* zh_engine_shutdown(grace): idle keep-alive connections close at once, an in-flight response
 * answered later from a thread still completes, listeners stop; a request never answered can be
 * handed back afterwards: ZH_ERR_CLOSED, and everything passed in is released. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static atomic_int g_slow_seen, g_never_seen;
static zh_request *_Atomic g_never_req;
static zh_request *_Atomic g_never_req2;
static pthread_t g_slow_thread;
static atomic_uint g_slow_result = 999;
static atomic_int g_releases;
static int g_file_fd = -1;

#define STUCK (64u << 20)
static uint8_t *g_stuck_mem;
static atomic_int g_stuck_releases;
static atomic_int g_stuck_fd = -1;
static void release_stuck(void *ud) {
  CHECK(ud == (void *)g_stuck_mem);
  atomic_fetch_add(&g_stuck_releases, 1);
}

static void release(void *ud) {
  (void)ud;
  atomic_fetch_add(&g_releases, 1);
}

static void *slow_responder(void *arg) {
  zh_request *req = arg;
  zt_sleep_ms(200);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_bytes(r, "slow but complete", 17));
  atomic_store(&g_slow_result, zh_respond(req, r));
  return NULL;
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  if (strcmp(path, "/slow") == 0) {
    CHECK(pthread_create(&g_slow_thread, NULL, slow_responder, req) == 0);
    atomic_store(&g_slow_seen, 1);
  } else if (strcmp(path, "/stuck") == 0) {
    /* a big response to a client that never reads: still in flight when the grace ends */
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    CHECK_OK(zh_response_add_lent(r, g_stuck_mem, STUCK, release_stuck, g_stuck_mem));
    int fd = zt_dup(g_file_fd);
    atomic_store(&g_stuck_fd, fd);
    CHECK_OK(zh_response_add_file(r, fd, 0, -1, ZH_FD_CLOSE));
    CHECK_OK(zh_respond(req, r));
  } else if (strcmp(path, "/never") == 0) {
    atomic_store(&g_never_req, req);
    atomic_fetch_add(&g_never_seen, 1);
  } else if (strcmp(path, "/never2") == 0) {
    atomic_store(&g_never_req2, req);
    atomic_fetch_add(&g_never_seen, 1);
  } else {
    zt_respond_text(req, 200, "idle");
  }
}

typedef struct {
  zh_engine *e;
  uint32_t grace;
  zh_result result;
  double took_ms;
} shutdown_args;

static void *do_shutdown(void *arg) {
  shutdown_args *a = arg;
  double t0 = zt_now_ms();
  a->result = zh_engine_shutdown(a->e, a->grace);
  a->took_ms = zt_now_ms() - t0;
  return NULL;
}

static zh_response *resp_with_resources(int *fd_out) {
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  static const char lent[] = "never sent";
  CHECK_OK(zh_response_add_lent(r, lent, sizeof lent - 1, release, NULL));
  int fd = zt_dup(g_file_fd);
  CHECK_OK(zh_response_add_file(r, fd, 0, -1, ZH_FD_CLOSE));
  *fd_out = fd;
  return r;
}

int main(void) {
  g_file_fd = zt_temp_file(4096);
  g_stuck_mem = calloc(1, STUCK);
  CHECK(g_stuck_mem != NULL);
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  zt_response r;

  /* A: idle keep-alive after one request */
  zt_conn *a = zt_connect(port);
  zt_get(a, "/idle", &r);
  CHECK_EQ_INT(r.status, 200);
  zt_response_free(&r);
  /* B: in flight, answered 200 ms later from a thread */
  zt_conn *b = zt_connect(port);
  CHECK(zt_send_str(b, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  /* C, D: never answered by the application */
  zt_conn *cc = zt_connect(port);
  CHECK(zt_send_str(cc, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  zt_conn *d = zt_connect(port);
  CHECK(zt_send_str(d, "GET /never2 HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  /* E: a response the client never reads */
  zt_conn *stuck = zt_connect(port);
  CHECK(zt_send_str(stuck, "GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  ZT_WAIT_UNTIL(atomic_load(&g_stuck_fd) >= 0, 3000);
  CHECK(atomic_load(&g_stuck_fd) >= 0);
  ZT_WAIT_UNTIL(atomic_load(&g_slow_seen) && atomic_load(&g_never_seen) == 2, 3000);
  CHECK(atomic_load(&g_slow_seen) && atomic_load(&g_never_seen) == 2);

  shutdown_args sa = {e, 2000, 999, 0};
  pthread_t st;
  double t0 = zt_now_ms();
  CHECK(pthread_create(&st, NULL, do_shutdown, &sa) == 0);

  /* the idle connection closes at once (well before the slow response is due) */
  int a_closed = zt_wait_closed(a, 1500, NULL);
  double a_ms = zt_now_ms() - t0;
  fprintf(stderr, "idle connection closed=%d after %.1f ms\n", a_closed, a_ms);
  CHECK_MSG(a_closed, "idle keep-alive connection not closed by shutdown");
  CHECK_MSG(a_ms < 1000 * zt_time_scale(), "idle keep-alive connection closed late");
  zt_close(a);

  /* the in-flight response completes */
  CHECK_EQ_INT(zt_read_response(b, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "slow but complete");
  fprintf(stderr, "slow response complete after %.1f ms\n", zt_now_ms() - t0);
  zt_response_free(&r);
  CHECK(pthread_join(g_slow_thread, NULL) == 0);
  CHECK_RES(atomic_load(&g_slow_result), ZH_OK);
  /* ... and then its connection closes (shutting down) */
  CHECK_MSG(zt_wait_closed(b, 3000, NULL), "in-flight connection not closed after its response");
  zt_close(b);

  CHECK(pthread_join(st, NULL) == 0);
  fprintf(stderr, "zh_engine_shutdown -> %s after %.1f ms\n", zh_result_str(sa.result), sa.took_ms);
  CHECK_RES(sa.result, ZH_OK);
  CHECK_MSG(sa.took_ms < 2000 + 1500 * zt_time_scale(), "shutdown took much longer than its grace period");

  /* C got no response and was closed */
  size_t seen = 0;
  CHECK_MSG(zt_wait_closed(cc, 2000, &seen), "unanswered connection still open after shutdown");
  fprintf(stderr, "unanswered connection: %zu bytes before close\n", seen);
  zt_close(cc);

  /* the stuck transfer was cut off at the end of the grace period, and released */
  CHECK_MSG(atomic_load(&g_stuck_releases) == 1, "lent memory of an in-flight response not released by shutdown");
  CHECK_MSG(zt_fd_closed(atomic_load(&g_stuck_fd)), "file of an in-flight response not closed by shutdown");
  {
    size_t got = 0;
    CHECK_MSG(zt_wait_closed(stuck, 3000, &got), "stuck connection still open after shutdown");
    fprintf(stderr, "stuck client got %zu bytes before the close\n", got);
    CHECK(got < (size_t)STUCK + 4096);
    zt_close(stuck);
  }

  /* the listener is gone */
  zt_conn *late = zt_try_connect(port);
  if (late) {
    zt_close(late);
    CHECK_MSG(0, "listener still accepting connections after zh_engine_shutdown");
  }
  CHECK_EQ_INT(errno, ECONNREFUSED);

  /* respond on the never-answered request after shutdown: ZH_ERR_CLOSED, everything freed */
  int fd = -1;
  zh_response *resp = resp_with_resources(&fd);
  CHECK_RES(zh_respond(atomic_load(&g_never_req), resp), ZH_ERR_CLOSED);
  CHECK_EQ_INT(atomic_load(&g_releases), 1);
  CHECK_MSG(zt_fd_closed(fd), "file fd not closed by zh_respond -> ZH_ERR_CLOSED");

  zh_stats s;
  zt_stats(e, &s);
  zt_print_stats("after shutdown", &s);
  CHECK_EQ_INT(s.connections_active, 0);
  CHECK_EQ_INT(s.connections_accepted, 5);

  /* the engine is freed while the application still owns /never2: the request stays valid
   * until handed back ("the engine never frees a request behind the application's back") */
  zh_engine_free(e);
  zt_close(d);
  resp = resp_with_resources(&fd);
  CHECK_RES(zh_respond(atomic_load(&g_never_req2), resp), ZH_ERR_CLOSED);
  CHECK_EQ_INT(atomic_load(&g_releases), 2);
  CHECK(zt_fd_closed(fd));

  CHECK_EQ_INT(atomic_load(&g_stuck_releases), 1);
  free(g_stuck_mem);
  close(g_file_fd);
  printf("shutdown_graceful: ok\n");
  return 0;
}
