/* Basic request/response: accessors, HEAD, POST bodies (Content-Length and chunked),
 * HTTP/1.0 and Connection: close, reject. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "testutil.h"

static atomic_int g_handled;
static atomic_uint g_client_port; /* local port of the client doing /hello */
static const char HELLO[] = "hello world\n";

static void check_hello_request(zh_request *req, const char *method) {
  CHECK(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
  CHECK_STREQ(zh_request_target(req), "/hello?x=1&y=two");
  CHECK_STREQ(zh_request_path(req), "/hello");
  CHECK_STREQ(zh_request_query(req), "x=1&y=two");
  CHECK_EQ_INT(zh_request_version(req), ZH_HTTP_1_1);
  CHECK_STREQ(zh_request_header(req, "X-Test"), "abc");
  CHECK_STREQ(zh_request_header(req, "x-test"), "abc");
  CHECK_STREQ(zh_request_header(req, "X-TEST"), "abc");
  CHECK_STREQ(zh_request_header(req, "host"), "localhost:1234");
  CHECK_STREQ(zh_request_header(req, "X-Multi"), "first"); /* first value */
  CHECK(zh_request_header(req, "X-Absent") == NULL);
  CHECK_EQ_INT(zh_request_header_count(req), 5);
  /* every sent header shows up exactly once through header_at (names case-insensitive) */
  static const char *want_n[5] = {"Host", "X-Test", "X-Multi", "X-Multi", "User-Agent"};
  static const char *want_v[5] = {"localhost:1234", "abc", "first", "second", "zt/1"};
  int seen[5] = {0, 0, 0, 0, 0};
  int multi_first_idx = -1, multi_second_idx = -1;
  for (size_t i = 0; i < 5; i++) {
    const char *n = NULL, *v = NULL;
    CHECK_OK(zh_request_header_at(req, i, &n, &v));
    CHECK(n != NULL && v != NULL);
    int found = 0;
    for (int k = 0; k < 5; k++) {
      if (!seen[k] && strcasecmp(n, want_n[k]) == 0 && strcmp(v, want_v[k]) == 0) {
        seen[k] = 1;
        found = 1;
        if (k == 2) multi_first_idx = (int)i;
        if (k == 3) multi_second_idx = (int)i;
        break;
      }
    }
    if (!found) fprintf(stderr, "unexpected header_at(%zu): \"%s: %s\"\n", i, n, v);
    CHECK(found);
  }
  CHECK_MSG(multi_first_idx < multi_second_idx, "repeated header values out of order");
  CHECK_EQ_INT(zh_request_body_length(req), 0);
  const uint8_t *d = NULL;
  size_t l = 99;
  CHECK_OK(zh_request_body_bytes(req, &d, &l));
  CHECK_EQ_INT(l, 0);
  char peer[64];
  CHECK_OK(zh_request_peer_addr(req, peer, sizeof peer));
  char want_peer[64];
  snprintf(want_peer, sizeof want_peer, "127.0.0.1:%u", atomic_load(&g_client_port));
  CHECK_STREQ(peer, want_peer);
}

static void handler(void *ud, zh_request *req) {
  CHECK(ud == (void *)&g_handled);
  atomic_fetch_add(&g_handled, 1);
  const char *path = zh_request_path(req);
  const char *method = zh_request_method(req);
  CHECK(path != NULL && method != NULL);
  if (strcmp(path, "/hello") == 0) {
    check_hello_request(req, method);
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    CHECK_OK(zh_response_add_header(r, "X-Reply", "yes"));
    CHECK_OK(zh_response_add_bytes(r, HELLO, strlen(HELLO)));
    CHECK_OK(zh_respond(req, r));
  } else if (strcmp(path, "/echo") == 0) {
    CHECK_STREQ(method, "POST");
    const uint8_t *d = NULL;
    size_t l = 0;
    CHECK_OK(zh_request_body_bytes(req, &d, &l));
    int64_t bl = zh_request_body_length(req);
    const char *te = zh_request_header(req, "Transfer-Encoding");
    if (te) {
      CHECK_MSG(bl == -1 || bl == (int64_t)l, "body_length of a chunked request");
    } else {
      CHECK_EQ_INT(bl, l);
    }
    CHECK(l == 0 || d != NULL);
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    if (l) CHECK_OK(zh_response_add_bytes(r, d, l));
    CHECK_OK(zh_respond(req, r));
  } else if (strcmp(path, "/v") == 0) {
    char b[32];
    snprintf(b, sizeof b, "version=%u", (unsigned)zh_request_version(req));
    zt_respond_text(req, 200, b);
  } else if (strcmp(path, "/closeme") == 0) {
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    CHECK_OK(zh_response_add_header(r, "Connection", "close"));
    CHECK_OK(zh_response_add_bytes(r, "bye", 3));
    CHECK_OK(zh_respond(req, r));
  } else if (strcmp(path, "/date") == 0) {
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    CHECK_OK(zh_response_add_header(r, "Date", "Mon, 01 Jan 2001 00:00:00 GMT"));
    CHECK_OK(zh_respond(req, r));
  } else if (strcmp(path, "/empty") == 0) {
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(204, &r));
    CHECK_OK(zh_respond(req, r));
  } else {
    CHECK_OK(zh_request_reject(req, 404));
  }
}

static const char HELLO_REQ_FMT[] =
    "%s /hello?x=1&y=two HTTP/1.1\r\n"
    "Host: localhost:1234\r\n"
    "X-Test: abc\r\n"
    "X-Multi: first\r\n"
    "X-Multi: second\r\n"
    "User-Agent: zt/1\r\n"
    "\r\n";

static void check_date(const char *date) {
  CHECK_MSG(date != NULL, "Date header missing");
  /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
  CHECK_EQ_INT(strlen(date), 29);
  CHECK(strcmp(date + 25, " GMT") == 0);
  CHECK(date[3] == ',');
}

int main(void) {
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, &g_handled, &port);
  zt_response r;
  char req[1024];

  /* ---- GET with accessors, then HEAD, then GET again on the same keep-alive connection */
  zt_conn *c = zt_connect(port);
  atomic_store(&g_client_port, zt_local_port(c));
  snprintf(req, sizeof req, HELLO_REQ_FMT, "GET");
  CHECK(zt_send_str(c, req) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.version_minor, 1);
  CHECK(r.has_content_length);
  CHECK_EQ_INT(r.content_length, strlen(HELLO));
  CHECK_STREQ((const char *)r.body, HELLO);
  CHECK_STREQ(zt_header(&r, "X-Reply"), "yes");
  check_date(zt_header(&r, "Date"));
  CHECK(zt_header(&r, "Transfer-Encoding") == NULL);
  zt_response_free(&r);

  snprintf(req, sizeof req, HELLO_REQ_FMT, "HEAD");
  CHECK(zt_send_str(c, req) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 1), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ(zt_header(&r, "Content-Length"), "12"); /* what GET would have sent */
  CHECK_EQ_INT(r.body_len, 0);
  zt_response_free(&r);
  /* if HEAD had leaked body bytes, this next response would not parse */
  zt_get(c, "/v", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "version=11");
  zt_response_free(&r);
  /* a Date set by the handler replaces the engine's (documented) */
  zt_get(c, "/date", &r);
  CHECK_EQ_INT(r.status, 200);
  {
    int dates = 0;
    for (size_t i = 0; i < r.nheaders; i++) dates += strcasecmp(r.names[i], "Date") == 0;
    CHECK_EQ_INT(dates, 1);
    CHECK_STREQ(zt_header(&r, "Date"), "Mon, 01 Jan 2001 00:00:00 GMT");
    CHECK_STREQ(zt_header(&r, "Content-Length"), "0");
  }
  zt_response_free(&r);
  /* 204: no body, no chunked framing */
  zt_get(c, "/empty", &r);
  CHECK_EQ_INT(r.status, 204);
  CHECK(zt_header(&r, "Transfer-Encoding") == NULL);
  zt_response_free(&r);

  /* ---- POST with Content-Length */
  static const char body[] = "hello body!";
  snprintf(req, sizeof req,
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
  CHECK(zt_send_str(c, req) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, strlen(body));
  CHECK(memcmp(r.body, body, strlen(body)) == 0);
  zt_response_free(&r);

  /* ---- chunked POST, split over several sends */
  CHECK(zt_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
  zt_sleep_ms(20);
  CHECK(zt_send_str(c, "5\r\nhello\r\n") == 0);
  zt_sleep_ms(20);
  CHECK(zt_send_str(c, "6;ext=1\r\n worl") == 0);
  zt_sleep_ms(20);
  CHECK(zt_send_str(c, "d\r\n0\r\n\r\n") == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, 11);
  CHECK(memcmp(r.body, "hello world", 11) == 0);
  zt_response_free(&r);

  /* ---- Expect: 100-continue: the engine asks for the body it is about to buffer */
  {
    CHECK(zt_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                         "Expect: 100-continue\r\n\r\n") == 0);
    zt_response h;
    int rc = zt_read_head_only(c, &h, 2000);
    fprintf(stderr, "Expect: 100-continue -> rc %d status %d after %.1f ms\n", rc, h.status,
            h.elapsed_ms);
    CHECK_MSG(rc == 0, "no interim response to Expect: 100-continue within 2 s");
    CHECK_EQ_INT(h.status, 100);
    zt_response_free(&h);
    CHECK(zt_send_str(c, "hello world") == 0);
    CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.interim, 0); /* exactly one 100, already consumed */
    CHECK_STREQ((const char *)r.body, "hello world");
    zt_response_free(&r);
  }

  /* ---- larger POST (1 MiB pattern) sent in pieces */
  {
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    CHECK(big != NULL);
    zt_fill_pattern(big, n, 7);
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    CHECK(zt_send_str(c, req) == 0);
    for (size_t off = 0; off < n; off += 100000) {
      size_t k = n - off < 100000 ? n - off : 100000;
      CHECK(zt_send_all(c, big + off, k) == 0);
    }
    CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.body_len, n);
    CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 7), -1);
    zt_response_free(&r);
    free(big);
  }

  /* ---- 404 via zh_request_reject; the connection stays usable */
  zt_get(c, "/missing", &r);
  CHECK_EQ_INT(r.status, 404);
  CHECK(r.has_content_length);
  zt_response_free(&r);
  zt_get(c, "/v", &r);
  CHECK_EQ_INT(r.status, 200);
  zt_response_free(&r);
  zt_close(c);

  /* ---- HTTP/1.0: response, then the server closes */
  c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /v HTTP/1.0\r\n\r\n") == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "version=10");
  zt_response_free(&r);
  CHECK_MSG(zt_wait_closed(c, 3000, NULL), "HTTP/1.0 connection not closed after response");
  zt_close(c);

  /* ---- HTTP/1.1 with Connection: close from the client */
  c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  zt_response_free(&r);
  CHECK_MSG(zt_wait_closed(c, 3000, NULL), "Connection: close (request) not honoured");
  zt_close(c);

  /* ---- Connection: close set by the handler on the response */
  c = zt_connect(port);
  zt_get(c, "/closeme", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "bye");
  zt_response_free(&r);
  CHECK_MSG(zt_wait_closed(c, 3000, NULL), "Connection: close (response) not honoured");
  zt_close(c);

  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("hello_basic", &st);
  CHECK_EQ_INT(st.requests, atomic_load(&g_handled));
  CHECK_EQ_INT(st.connections_accepted, 4);

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  printf("hello_basic: ok (%d requests)\n", atomic_load(&g_handled));
  return 0;
}
