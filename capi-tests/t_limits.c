/* Configured limits: body -> 413 (+close), header section -> 431, too many headers -> 431,
 * request line -> 414, header read timeout closes a connection stuck in a partial head. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"

#define MAX_LINE 1024
#define MAX_HEAD 4096
#define MAX_HEADERS 20
#define MAX_BODY 1000

static atomic_int g_handled;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  const uint8_t *d = NULL;
  size_t l = 0;
  CHECK_OK(zh_request_body_bytes(req, &d, &l));
  CHECK(l <= MAX_BODY);
  char body[64];
  snprintf(body, sizeof body, "len=%zu", l);
  zt_respond_text(req, 200, body);
}

/* sends `req` (may fail part-way if the server closes early), reads one response */
static void expect_status(uint16_t port, const char *req, size_t len, int status, int must_close,
                          const char *what) {
  zt_conn *c = zt_connect(port);
  int before = atomic_load(&g_handled);
  (void)zt_send_all(c, req, len);
  zt_response r;
  int rc = zt_read_response(c, &r, 0);
  fprintf(stderr, "%s: rc %d status %d (want %d), eof %d timeout %d\n", what, rc, r.status, status,
          r.eof, r.timed_out);
  CHECK_MSG(r.head_complete, what);
  CHECK_EQ_INT(r.status, status);
  zt_response_free(&r);
  if (must_close) CHECK_MSG(zt_wait_closed(c, 3000, NULL), "connection not closed after limit error");
  CHECK_EQ_INT(atomic_load(&g_handled), before); /* the handler never saw it */
  zt_close(c);
}

int main(void) {
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_limits(cfg, MAX_LINE, MAX_HEAD, MAX_HEADERS, MAX_BODY));
  CHECK_OK(zh_config_set_timeouts(cfg, 300, 0, 0));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  char *buf = malloc(64 * 1024);
  CHECK(buf != NULL);
  int n;
  zt_response r;

  /* ---- within limits: exactly MAX_BODY bytes is fine */
  {
    zt_conn *c = zt_connect(port);
    n = snprintf(buf, 64 * 1024, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    memset(buf + n, 'b', MAX_BODY);
    CHECK(zt_send_all(c, buf, (size_t)n + MAX_BODY) == 0);
    CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STREQ((const char *)r.body, "len=1000");
    zt_response_free(&r);
    zt_close(c);
  }

  /* ---- body over max_body (Content-Length) -> 413 and close */
  n = snprintf(buf, 64 * 1024, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 2 * MAX_BODY);
  memset(buf + n, 'b', 2 * MAX_BODY);
  expect_status(port, buf, (size_t)n + 2 * MAX_BODY, 413, 1, "Content-Length body over limit");

  /* ---- body over max_body (chunked) -> 413 and close */
  n = snprintf(buf, 64 * 1024, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 4; i++) {
    n += snprintf(buf + n, 64 * 1024 - (size_t)n, "190\r\n"); /* 400 bytes */
    memset(buf + n, 'c', 400);
    n += 400;
    n += snprintf(buf + n, 64 * 1024 - (size_t)n, "\r\n");
  }
  n += snprintf(buf + n, 64 * 1024 - (size_t)n, "0\r\n\r\n");
  expect_status(port, buf, (size_t)n, 413, 1, "chunked body over limit");

  /* ---- Expect: 100-continue with a body over the limit: 413 at once, never 100 */
  {
    zt_conn *c = zt_connect(port);
    n = snprintf(buf, 64 * 1024, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                 "Expect: 100-continue\r\n\r\n", 50 * MAX_BODY);
    CHECK(zt_send_all(c, buf, (size_t)n) == 0);
    zt_response h;
    int rc = zt_read_head_only(c, &h, 2000);
    fprintf(stderr, "Expect + body over limit: rc %d status %d\n", rc, h.status);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(h.status, 413);
    zt_response_free(&h);
    CHECK_MSG(zt_wait_closed(c, 3000, NULL), "connection not closed after 413");
    zt_close(c);
  }

  /* ---- header section over max_header_bytes -> 431 */
  n = snprintf(buf, 64 * 1024, "GET /h HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(buf + n, 'a', 2 * MAX_HEAD);
  n += 2 * MAX_HEAD;
  n += snprintf(buf + n, 64 * 1024 - (size_t)n, "\r\n\r\n");
  expect_status(port, buf, (size_t)n, 431, 0, "header section over limit");

  /* ---- too many headers -> 431 */
  n = snprintf(buf, 64 * 1024, "GET /h HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < MAX_HEADERS + 10; i++) n += snprintf(buf + n, 64 * 1024 - (size_t)n, "X-H%d: v\r\n", i);
  n += snprintf(buf + n, 64 * 1024 - (size_t)n, "\r\n");
  expect_status(port, buf, (size_t)n, 431, 0, "too many headers");

  /* ---- request line over max_request_line -> 414 */
  n = snprintf(buf, 64 * 1024, "GET /");
  memset(buf + n, 'u', 2 * MAX_LINE);
  n += 2 * MAX_LINE;
  n += snprintf(buf + n, 64 * 1024 - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_status(port, buf, (size_t)n, 414, 0, "request line over limit");

  /* ---- header read timeout: a partial head is cut off after ~300 ms with 408 + close */
  {
    zt_conn *c = zt_connect(port);
    double t0 = zt_now_ms();
    CHECK(zt_send_str(c, "GET /slow HTTP/1.1\r\nHost: x\r\n") == 0);
    int rc = zt_read_response(c, &r, 0);
    double dt = zt_now_ms() - t0;
    fprintf(stderr, "partial head: rc %d status %d eof %d timeout %d after %.1f ms\n", rc,
            r.status, r.eof, r.timed_out, dt);
    CHECK_MSG(!r.timed_out, "partial head not timed out by the engine");
    CHECK_EQ_INT(r.status, 408); /* documented: 408 and close */
    zt_response_free(&r);
    CHECK_MSG(zt_wait_closed(c, 3000, NULL), "connection not closed after 408");
    dt = zt_now_ms() - t0;
    CHECK(dt >= 250);
    CHECK(dt < 3000 * zt_time_scale());
    zt_close(c);
  }
  /* ... and a slow but complete head inside the timeout is fine */
  {
    zt_conn *c = zt_connect(port);
    CHECK(zt_send_str(c, "GET /fine HTTP/1.1\r\n") == 0);
    zt_sleep_ms(100);
    CHECK(zt_send_str(c, "Host: x\r\n\r\n") == 0);
    CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    zt_response_free(&r);
    zt_close(c);
  }

  /* ---- malformed request -> 400 and close (errors_parse) */
  {
    static const char bad[] = "GARBAGE LINE WITHOUT VERSION\r\n\r\n";
    expect_status(port, bad, strlen(bad), 400, 1, "malformed request line");
  }

  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("limits", &st);
  CHECK(st.errors_limit >= 6);
  CHECK(st.errors_timeout >= 1);
  CHECK(st.errors_parse >= 1);
  CHECK_EQ_INT(atomic_load(&g_handled), 2);

  CHECK_OK(zh_engine_shutdown(e, 500));
  zh_engine_free(e);
  free(buf);
  printf("limits: ok\n");
  return 0;
}
