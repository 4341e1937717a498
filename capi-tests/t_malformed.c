/* Requests that must be refused or handled with care (RFC 9112 framing rules): the handler never
 * sees a mis-framed request, and the connection is closed where the RFC says MUST close.
 * Also: a client that half-closes after pipelining still gets all its answers. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "testutil.h"

static atomic_int g_handled;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  const uint8_t *d = NULL;
  size_t l = 0;
  CHECK_OK(zh_request_body_bytes(req, &d, &l));
  char body[96];
  snprintf(body, sizeof body, "%s len=%zu", zh_request_path(req), l);
  zt_respond_text(req, 200, body);
}

/* one request on a fresh connection; returns the status (0 if none) and whether it closed */
static int one_shot(uint16_t port, const char *req, int *closed) {
  zt_conn *c = zt_connect(port);
  (void)zt_send_str(c, req);
  zt_response r;
  int rc = zt_read_response(c, &r, 0);
  int status = r.head_complete ? r.status : 0;
  CHECK_MSG(!r.timed_out, "no answer within the timeout");
  (void)rc;
  zt_response_free(&r);
  *closed = zt_wait_closed(c, 2000, NULL);
  zt_close(c);
  return status;
}

int main(void) {
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  int closed = 0, st;

  /* Content-Length and Transfer-Encoding together: reject, or use chunked — and close (MUST) */
  int before = atomic_load(&g_handled);
  st = one_shot(port,
                "POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\n\r\n",
                &closed);
  fprintf(stderr, "CL + TE: status %d closed %d\n", st, closed);
  CHECK(st == 400 || st == 200);
  CHECK_MSG(closed, "connection kept open after a request with both Content-Length and Transfer-Encoding");
  if (st == 200) CHECK_EQ_INT(atomic_load(&g_handled), before + 1);

  /* two different Content-Length values: 400 and close */
  before = atomic_load(&g_handled);
  st = one_shot(port, "POST /cl2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", &closed);
  fprintf(stderr, "two Content-Lengths: status %d closed %d\n", st, closed);
  CHECK_EQ_INT(st, 400);
  CHECK(closed);
  CHECK_EQ_INT(atomic_load(&g_handled), before);

  /* invalid Content-Length */
  st = one_shot(port, "POST /clneg HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", &closed);
  fprintf(stderr, "Content-Length -1: status %d closed %d\n", st, closed);
  CHECK_EQ_INT(st, 400);
  CHECK(closed);

  /* a transfer coding the server does not know: 501 (or 400), and close */
  st = one_shot(port, "POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxxxx", &closed);
  fprintf(stderr, "Transfer-Encoding gzip: status %d closed %d\n", st, closed);
  CHECK(st == 501 || st == 400);
  CHECK(closed);

  /* whitespace between field name and colon: MUST be rejected with 400 */
  st = one_shot(port, "GET /ws HTTP/1.1\r\nHost : x\r\n\r\n", &closed);
  fprintf(stderr, "space before colon: status %d closed %d\n", st, closed);
  CHECK_EQ_INT(st, 400);

  /* bad chunk size */
  st = one_shot(port, "POST /badchunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", &closed);
  fprintf(stderr, "bad chunk size: status %d closed %d\n", st, closed);
  CHECK_EQ_INT(st, 400);
  CHECK(closed);

  /* HTTP/2.0 in an HTTP/1 request line: 505 (or 400) */
  st = one_shot(port, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", &closed);
  fprintf(stderr, "HTTP/2.0: status %d closed %d\n", st, closed);
  CHECK(st == 505 || st == 400);

  /* HTTP/1.1 without Host: 400 (RFC 9112 §3.2 MUST) */
  st = one_shot(port, "GET /nohost HTTP/1.1\r\n\r\n", &closed);
  fprintf(stderr, "no Host: status %d closed %d\n", st, closed);
  CHECK_EQ_INT(st, 400);

  /* pipelined requests followed by a half-close: all answered, then the server closes */
  {
    zt_conn *c = zt_connect(port);
    char buf[1024];
    size_t len = 0;
    for (int i = 0; i < 5; i++) {
      len += (size_t)snprintf(buf + len, sizeof buf - len,
                              "POST /hc%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", i);
    }
    CHECK(zt_send_all(c, buf, len) == 0);
    CHECK(shutdown(c->fd, SHUT_WR) == 0);
    for (int i = 0; i < 5; i++) {
      zt_response r;
      int rc = zt_read_response(c, &r, 0);
      if (rc != 0) fprintf(stderr, "half-close: response %d missing (eof %d)\n", i, r.eof);
      CHECK_EQ_INT(rc, 0);
      char want[32];
      snprintf(want, sizeof want, "/hc%d len=3", i);
      CHECK_STREQ((const char *)r.body, want);
      zt_response_free(&r);
    }
    CHECK_MSG(zt_wait_closed(c, 3000, NULL), "half-closed connection not closed after its answers");
    zt_close(c);
  }

  /* the engine is fine afterwards */
  zt_conn *c = zt_connect(port);
  zt_response r;
  zt_get(c, "/ok", &r);
  CHECK_EQ_INT(r.status, 200);
  zt_response_free(&r);
  zt_close(c);

  zh_stats s;
  zt_stats(e, &s);
  zt_print_stats("malformed", &s);
  CHECK(s.errors_parse >= 5);
  CHECK_OK(zh_engine_shutdown(e, 500));
  zh_engine_free(e);
  printf("malformed: ok\n");
  return 0;
}
