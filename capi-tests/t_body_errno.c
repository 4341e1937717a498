/* Why a claimed request body ended early, as the errno `on_end` / `on_done` get (the table in
 * zh_body_done_fn's doc comment), and which timeout applies while a body is streamed:
 *   - a client that stalls mid-body while the engine waits for it: ETIMEDOUT after the body read
 *     timeout, for zh_request_body_read and zh_request_body_to_fd (it used to be ECONNABORTED,
 *     the one value every early end got);
 *   - malformed chunked framing: EPROTO (both claims);
 *   - a chunked body past the body limit: EMSGSIZE and a 413 (the limit used to be ignored for
 *     claimed chunked bodies);
 *   - a client that closes mid-body: ECONNRESET;
 *   - a paused reader is never timed out, however long the pause (3 timeouts here), and after
 *     the resume the client gets the whole timeout again (it used to be timed out at once,
 *     counted from its last byte before the pause).
 * Body read timeout T = 300 ms (x10 under valgrind). Runs threaded and, as external_body_errno,
 * in external-loop mode. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define LIMIT 1000u

static unsigned g_t_ms; /* the body read timeout */

static struct {
  zh_request *_Atomic req;
  atomic_int paused;       /* on_data returned ZH_PENDING (path /pause) */
  atomic_int end_calls;
  atomic_ullong delivered;
  uint64_t end_bytes;
  int end_error;
  double end_at_ms;
  int fd;                  /* the /fd claim's file */
} g;

static void reset(void) {
  atomic_store(&g.req, NULL);
  atomic_store(&g.paused, 0);
  atomic_store(&g.end_calls, 0);
  atomic_store(&g.delivered, 0);
  g.end_bytes = 0;
  g.end_error = -1;
  g.end_at_ms = 0;
}

static int32_t on_data(void *ud, zh_request *req, const uint8_t *data, size_t len) {
  (void)data;
  atomic_fetch_add(&g.delivered, len);
  if (ud != NULL && atomic_load(&g.paused) == 0) { /* /pause: hold the read on the first piece */
    atomic_store(&g.req, req);
    atomic_store(&g.paused, 1);
    return ZH_PENDING;
  }
  return 0;
}

static void on_end(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  (void)ud;
  g.end_bytes = bytes;
  g.end_error = error;
  g.end_at_ms = zt_now_ms();
  char body[32];
  snprintf(body, sizeof body, "%llu", (unsigned long long)bytes);
  zh_response *resp = NULL;
  CHECK_OK(zh_response_new(error ? 400 : 200, &resp));
  CHECK_OK(zh_response_add_bytes(resp, body, strlen(body)));
  zh_result rr = zh_respond(req, resp);
  CHECK(rr == ZH_OK || rr == ZH_ERR_CLOSED); /* after an error the connection may be gone */
  atomic_fetch_add(&g.end_calls, 1);
}

static void head_handler(void *ud, zh_request *req) {
  (void)ud;
  const char *p = zh_request_path(req);
  if (strcmp(p, "/fd") == 0) {
    CHECK_OK(zh_request_body_to_fd(req, g.fd, 0, on_end, NULL));
  } else if (strcmp(p, "/pause") == 0) {
    CHECK_OK(zh_request_body_read(req, on_data, on_end, &g));
  } else {
    CHECK_OK(zh_request_body_read(req, on_data, on_end, NULL));
  }
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  zt_respond_buffered(req);
}

static void send_head(zt_conn *c, const char *path, long long content_length) {
  char head[256];
  if (content_length >= 0)
    snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %lld\r\n\r\n", path,
             content_length);
  else
    snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path);
  CHECK(zt_send_str(c, head) == 0);
}

static void wait_end(const char *what) {
  ZT_WAIT_UNTIL(atomic_load(&g.end_calls) >= 1, 10000);
  fprintf(stderr, "%s: on_end calls %d, bytes %llu, error %d (%s)\n", what, atomic_load(&g.end_calls),
          (unsigned long long)g.end_bytes, g.end_error, g.end_error > 0 ? strerror(g.end_error) : "-");
  CHECK_MSG(atomic_load(&g.end_calls) == 1, what);
}

/* The server closed the connection (after whatever response it sent). */
static void expect_closed(zt_conn *c) {
  size_t discarded = 0;
  CHECK(zt_wait_closed(c, 10000, &discarded) == 1);
}

/* Nothing at all arrives for `ms` (x zt_time_scale(); no response, no close). */
static void expect_silent(zt_conn *c, unsigned ms) {
  zt_response r;
  int rc = zt_read_head_only(c, &r, (int)ms);
  CHECK_MSG(rc != 0 && r.timed_out && !r.eof, "the engine answered or closed during the pause");
  zt_response_free(&r);
}

static void stall(uint16_t port, const char *path) {
  reset();
  zt_conn *c = zt_connect(port);
  send_head(c, path, 100);
  CHECK(zt_send_str(c, "0123456789") == 0);
  double t0 = zt_now_ms();
  wait_end(path);
  CHECK_EQ_INT(g.end_error, ETIMEDOUT);
  CHECK_EQ_INT(g.end_bytes, 10);
  CHECK(g.end_at_ms - t0 >= 0.8 * g_t_ms);
  expect_closed(c);
  zt_close(c);
}

static void malformed(uint16_t port, const char *path) {
  reset();
  zt_conn *c = zt_connect(port);
  send_head(c, path, -1);
  CHECK(zt_send_str(c, "5\r\nhello\r\nzz\r\n") == 0);
  wait_end(path);
  CHECK_EQ_INT(g.end_error, EPROTO);
  CHECK(g.end_bytes <= 5); /* "hello" may or may not have been taken before the bad line */
  expect_closed(c);
  zt_close(c);
}

static void too_large(uint16_t port, const char *path) {
  reset();
  zt_conn *c = zt_connect(port);
  send_head(c, path, -1);
  static char piece[600];
  memset(piece, 'x', sizeof piece);
  for (int i = 0; i < 2; i++) {
    CHECK(zt_send_str(c, "258\r\n") == 0); /* 600 */
    CHECK(zt_send_all(c, piece, sizeof piece) == 0);
    CHECK(zt_send_str(c, "\r\n") == 0);
  }
  CHECK(zt_send_str(c, "0\r\n\r\n") == 0);
  wait_end(path);
  CHECK_EQ_INT(g.end_error, EMSGSIZE);
  CHECK(g.end_bytes >= 600 && g.end_bytes <= LIMIT);
  /* on_end's own answer (400), then the engine's 413, then the close */
  int saw_413 = 0;
  zt_response r;
  while (zt_read_response(c, &r, 0) == 0) {
    if (r.status == 413) saw_413 = 1;
    zt_response_free(&r);
  }
  zt_response_free(&r);
  CHECK_MSG(saw_413, "no 413 for a chunked body past the limit");
  zt_close(c);
}

static void client_leaves(uint16_t port, const char *path) {
  reset();
  zt_conn *c = zt_connect(port);
  send_head(c, path, 100);
  CHECK(zt_send_str(c, "0123456789") == 0);
  zt_sleep_ms(50);
  CHECK(shutdown(c->fd, SHUT_WR) == 0);
  wait_end(path);
  CHECK_EQ_INT(g.end_error, ECONNRESET);
  CHECK_EQ_INT(g.end_bytes, 10);
  zt_close(c);
}

static void paused(uint16_t port) {
  reset();
  zt_conn *c = zt_connect(port);
  send_head(c, "/pause", 20);
  CHECK(zt_send_str(c, "0123456789") == 0);
  ZT_WAIT_UNTIL(atomic_load(&g.paused), 10000);
  CHECK(atomic_load(&g.paused));
  /* The application holds the read for 3 timeouts: the engine waits for it, not for the client. */
  expect_silent(c, 3 * 300);
  CHECK_EQ_INT(atomic_load(&g.end_calls), 0);
  CHECK_OK(zh_request_body_resume(atomic_load(&g.req)));
  /* The client had nothing to send during the pause; it still gets a whole timeout now. */
  zt_sleep_ms(g_t_ms / 4);
  CHECK(zt_send_str(c, "abcdefghij") == 0);
  wait_end("paused 3 timeouts, then the rest");
  CHECK_EQ_INT(g.end_error, 0);
  CHECK_EQ_INT(g.end_bytes, 20);
  zt_response r;
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "20");
  zt_response_free(&r);
  zt_close(c);
}

int main(void) {
  g_t_ms = (unsigned)(300 * zt_time_scale());
  g.fd = zt_temp_file(0);
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_head_handler(cfg, head_handler, NULL));
  CHECK_OK(zh_config_set_body_read_timeout(cfg, g_t_ms));
  CHECK_OK(zh_config_set_limits(cfg, 0, 0, 0, LIMIT));
  uint16_t port = 0;
  zh_engine *engine = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);

  stall(port, "/read");
  stall(port, "/fd");
  malformed(port, "/read");
  malformed(port, "/fd");
  too_large(port, "/read");
  too_large(port, "/fd");
  client_leaves(port, "/read");
  client_leaves(port, "/fd");
  paused(port);

  zh_stats st;
  zt_stats(engine, &st);
  CHECK(st.errors_timeout >= 2);
  CHECK_OK(zh_engine_shutdown(engine, 1000));
  zh_engine_free(engine);
  close(g.fd);
  printf("body_errno: ok\n");
  return 0;
}
