/* Two engines in one process, on different ports, with different configs and handlers: they
 * serve independently (no global state), and freeing one leaves the other working. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"

static zh_request *_Atomic g_held;
static atomic_int g_releases;
static void release(void *ud) {
  (void)ud;
  atomic_fetch_add(&g_releases, 1);
}

typedef struct {
  const char *name;
  atomic_int handled;
} engine_ctx;

static void handler_a(void *ud, zh_request *req) {
  engine_ctx *ctx = ud;
  atomic_fetch_add(&ctx->handled, 1);
  if (strcmp(zh_request_path(req), "/hold") == 0) {
    atomic_store(&g_held, req);
    return;
  }
  if (strcmp(zh_request_path(req), "/peer") == 0) {
    char peer[80];
    CHECK_OK(zh_request_peer_addr(req, peer, sizeof peer));
    zt_respond_text(req, 200, peer);
    return;
  }
  char body[64];
  snprintf(body, sizeof body, "A:%s:%s", ctx->name, zh_request_path(req));
  zt_respond_text(req, 200, body);
}

static void handler_b(void *ud, zh_request *req) {
  engine_ctx *ctx = ud;
  atomic_fetch_add(&ctx->handled, 1);
  char body[64];
  snprintf(body, sizeof body, "B:%s:%s", ctx->name, zh_request_path(req));
  zt_respond_text(req, 201, body);
}

static void get_expect(zt_conn *c, const char *path, int status, const char *body) {
  zt_response r;
  zt_get(c, path, &r);
  CHECK_EQ_INT(r.status, status);
  CHECK_STREQ((const char *)r.body, body);
  zt_response_free(&r);
}

int main(void) {
  engine_ctx one = {"one", 0}, two = {"two", 0};
  zh_config *cfg2 = NULL;
  CHECK_OK(zh_config_new(&cfg2));
  CHECK_OK(zh_config_set_threads(cfg2, 2));
  CHECK_OK(zh_config_set_limits(cfg2, 0, 0, 0, 10)); /* tiny body limit, only on engine two */

  uint16_t p1 = 0, p2 = 0;
  zh_engine *e1 = zt_engine_start(NULL, handler_a, &one, &p1);
  zh_engine *e2 = zt_engine_start(cfg2, handler_b, &two, &p2);
  zh_config_free(cfg2); /* the engine copied it */
  CHECK(p1 != p2);

  zt_conn *c1 = zt_connect(p1);
  zt_conn *c2 = zt_connect(p2);
  for (int i = 0; i < 3; i++) get_expect(c1, "/x", 200, "A:one:/x");
  for (int i = 0; i < 5; i++) get_expect(c2, "/y", 201, "B:two:/y");
  /* interleaved */
  get_expect(c1, "/1", 200, "A:one:/1");
  get_expect(c2, "/2", 201, "B:two:/2");
  CHECK_EQ_INT(atomic_load(&one.handled), 4);
  CHECK_EQ_INT(atomic_load(&two.handled), 6);

  /* engine two's body limit does not apply to engine one */
  static const char post[] = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789";
  zt_response r;
  CHECK(zt_send_str(c1, post) == 0);
  CHECK_EQ_INT(zt_read_response(c1, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  zt_response_free(&r);
  zt_conn *c3 = zt_connect(p2);
  CHECK(zt_send_str(c3, post) == 0);
  CHECK_EQ_INT(zt_read_response(c3, &r, 0), 0);
  CHECK_EQ_INT(r.status, 413);
  zt_response_free(&r);
  zt_close(c3);

  zh_stats s1, s2;
  zt_stats(e1, &s1);
  zt_stats(e2, &s2);
  zt_print_stats("engine one", &s1);
  zt_print_stats("engine two", &s2);
  CHECK_EQ_INT(s1.requests, 5);
  CHECK_EQ_INT(s1.connections_accepted, 1);
  CHECK_EQ_INT(s1.errors_limit, 0);
  CHECK(s2.requests >= 6 && s2.requests <= 7); /* the 413 may or may not count as a request */
  CHECK_EQ_INT(s2.connections_accepted, 2);
  CHECK_EQ_INT(s2.errors_limit, 1);

  /* listening is allowed after start: a second (IPv6) address on engine one */
  {
    uint16_t p6 = 0;
    zh_result lr = zh_engine_listen(e1, "[::1]:0", &p6);
    if (lr == ZH_ERR_ADDR) {
      fprintf(stderr, "no IPv6 loopback here: skipping the [::1] listener\n");
    } else {
      CHECK_OK(lr);
      CHECK(p6 != 0 && p6 != p1 && p6 != p2);
      zt_conn *c6 = zt_try_connect6(p6);
      CHECK_MSG(c6 != NULL, "connect to [::1] listener added after start failed");
      char want[80];
      snprintf(want, sizeof want, "[::1]:%u", (unsigned)zt_local_port(c6));
      get_expect(c6, "/peer", 200, want);
      get_expect(c6, "/six", 200, "A:one:/six");
      zt_close(c6);
      atomic_fetch_sub(&one.handled, 2); /* keep the counts below simple */
    }
    /* the first listener still works */
    zt_conn *c7 = zt_connect(p1);
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)zt_local_port(c7));
    get_expect(c7, "/peer", 200, want);
    zt_close(c7);
    atomic_fetch_sub(&one.handled, 1);
  }

  /* shut down and free engine one; engine two is unaffected */
  /* engine one is freed without zh_engine_shutdown while a request is held and an idle
   * connection is open: free returns promptly, the held request can still be handed back */
  zt_conn *ch = zt_connect(p1);
  CHECK(zt_send_str(ch, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  ZT_WAIT_UNTIL(atomic_load(&g_held) != NULL, 3000);
  CHECK(atomic_load(&g_held) != NULL);
  double t0 = zt_now_ms();
  zh_engine_free(e1);
  double dt = zt_now_ms() - t0;
  fprintf(stderr, "zh_engine_free with live connections took %.1f ms\n", dt);
  CHECK(dt < 1000 * zt_time_scale());
  CHECK_MSG(zt_wait_closed(c1, 2000, NULL), "idle connection of a freed engine still open");
  CHECK_MSG(zt_wait_closed(ch, 2000, NULL), "connection of a freed engine still open");
  zt_close(c1);
  zt_close(ch);
  {
    zh_response *r = NULL;
    CHECK_OK(zh_response_new(200, &r));
    static const char lent[] = "x";
    CHECK_OK(zh_response_add_lent(r, lent, 1, release, NULL));
    CHECK_RES(zh_respond(atomic_load(&g_held), r), ZH_ERR_CLOSED);
    CHECK_EQ_INT(atomic_load(&g_releases), 1);
  }
  get_expect(c2, "/after", 201, "B:two:/after");
  zt_conn *c4 = zt_connect(p2);
  get_expect(c4, "/new", 201, "B:two:/new");
  zt_close(c4);
  CHECK_EQ_INT(atomic_load(&one.handled), 6);

  zt_close(c2);
  CHECK_OK(zh_engine_shutdown(e2, 500));
  zh_engine_free(e2);
  printf("two_engines: ok\n");
  return 0;
}
