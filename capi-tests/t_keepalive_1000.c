/* 1,000 sequential requests on one keep-alive connection. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "testutil.h"

#define N 1000

static atomic_int g_handled;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  const char *path = zh_request_path(req);
  CHECK(path != NULL && strncmp(path, "/k/", 3) == 0);
  char body[64];
  snprintf(body, sizeof body, "response for %s", path);
  zt_respond_text(req, 200, body);
}

int main(void) {
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  zt_conn *c = zt_connect(port);
  double t0 = zt_now_ms();
  for (int i = 0; i < N; i++) {
    char path[32], want[64];
    snprintf(path, sizeof path, "/k/%d", i);
    snprintf(want, sizeof want, "response for /k/%d", i);
    zt_response r;
    zt_get(c, path, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STREQ((const char *)r.body, want);
    CHECK_EQ_INT(r.content_length, strlen(want));
    const char *conn = zt_header(&r, "Connection");
    CHECK_MSG(conn == NULL || strcasecmp(conn, "close") != 0, "server asked to close");
    zt_response_free(&r);
  }
  double t1 = zt_now_ms();
  fprintf(stderr, "%d requests in %.1f ms\n", N, t1 - t0);
  CHECK_EQ_INT(atomic_load(&g_handled), N);

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.responses >= N), 3000);
  zt_print_stats("keepalive_1000", &st);
  CHECK_EQ_INT(st.requests, N);
  CHECK_EQ_INT(st.responses, N);
  CHECK_EQ_INT(st.connections_accepted, 1);
  CHECK_EQ_INT(st.connections_active, 1);
  CHECK_EQ_INT(st.connections_closed, 0);

  zt_close(c);
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.connections_closed == 1), 3000);
  CHECK_EQ_INT(st.connections_closed, 1);
  CHECK_EQ_INT(st.connections_active, 0);

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  printf("keepalive_1000: ok\n");
  return 0;
}
