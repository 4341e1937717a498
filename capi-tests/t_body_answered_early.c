/* A claimed request body whose request is answered before the body is complete — the 413 an
 * upload handler sends after the first piece, or a response queued in the head handler right
 * after zh_request_body_to_fd:
 *   - the client gets exactly that one response, the body is still read to its end (so the
 *     keep-alive connection carries on with the next request);
 *   - the callbacks that come after the response has left still get a valid `req`: accessors
 *     work and a second hand-back is refused with ZH_ERR_ALREADY_USED (zh_request_body_read and
 *     zh_request_body_to_fd promise on_end / on_done "with the request the body belongs to");
 *   - on_end / on_done run exactly once, with the whole body and error 0.
 * Regression guarded: the request was freed as soon as its response had left, and the later
 * on_data / on_end calls handed the application a dangling pointer (heap-use-after-free under
 * ASan on the first accessor call). Runs threaded and, as external_body_answered_early, in
 * external-loop mode. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define BODY (4u << 20)

typedef struct early {
  zh_request *_Atomic req;
  atomic_int data_calls, end_calls;
  atomic_ullong bytes;
  uint64_t end_bytes;
  int end_error;
  atomic_int answered;            /* the early response was handed back (ZH_OK) */
  atomic_int data_after_answer;   /* on_data calls after it, each checking the accessors */
  atomic_uint second_respond;     /* what a second hand-back from on_end / on_done returned */
  atomic_int accessor_failures;   /* an accessor gave a wrong answer after the hand-back */
  int fd;                         /* /fd: where the body goes */
} early;

static early g_e;

static void early_reset(void) {
  memset(&g_e, 0, sizeof g_e);
  g_e.fd = -1;
  atomic_store(&g_e.second_respond, 999);
}

/* Reads the request through the accessors; counts a wrong answer. */
static void touch(zh_request *req, const char *path) {
  const char *p = zh_request_path(req);
  if (p == NULL || strcmp(p, path) != 0) atomic_fetch_add(&g_e.accessor_failures, 1);
  const char *m = zh_request_method(req);
  if (m == NULL || strcmp(m, "PUT") != 0) atomic_fetch_add(&g_e.accessor_failures, 1);
  if (zh_request_header(req, "Host") == NULL) atomic_fetch_add(&g_e.accessor_failures, 1);
}

static void answer_again(zh_request *req) {
  zh_response *resp = NULL;
  CHECK_OK(zh_response_new(500, &resp));
  atomic_store(&g_e.second_respond, zh_respond(req, resp));
}

static int32_t on_data(void *ud, zh_request *req, const uint8_t *data, size_t len) {
  CHECK(ud == &g_e);
  CHECK(req == atomic_load(&g_e.req));
  (void)data;
  atomic_fetch_add(&g_e.bytes, len);
  if (atomic_fetch_add(&g_e.data_calls, 1) == 0) {
    /* The first piece decides: refused. The response leaves while the rest still comes. */
    zh_response *resp = NULL;
    CHECK_OK(zh_response_new(413, &resp));
    CHECK_OK(zh_response_add_bytes(resp, "too big", 7));
    if (zh_respond(req, resp) == ZH_OK) atomic_store(&g_e.answered, 1);
  } else {
    touch(req, "/read");
    atomic_fetch_add(&g_e.data_after_answer, 1);
  }
  return 0;
}

static void on_end(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  CHECK(ud == &g_e);
  CHECK(req == atomic_load(&g_e.req));
  touch(req, "/read");
  g_e.end_bytes = bytes;
  g_e.end_error = error;
  answer_again(req);
  atomic_fetch_add(&g_e.end_calls, 1);
}

static void on_done(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  CHECK(ud == &g_e);
  CHECK(req == atomic_load(&g_e.req));
  touch(req, "/fd");
  g_e.end_bytes = bytes;
  g_e.end_error = error;
  answer_again(req);
  atomic_fetch_add(&g_e.end_calls, 1);
}

static void head_handler(void *ud, zh_request *req) {
  (void)ud;
  const char *p = zh_request_path(req);
  if (strcmp(p, "/read") == 0) {
    atomic_store(&g_e.req, req);
    CHECK_OK(zh_request_body_read(req, on_data, on_end, &g_e));
  } else if (strcmp(p, "/fd") == 0) {
    atomic_store(&g_e.req, req);
    CHECK_OK(zh_request_body_to_fd(req, g_e.fd, 0, on_done, &g_e));
    /* Answered at once: the 202 leaves long before the body is in the file. */
    zh_response *resp = NULL;
    CHECK_OK(zh_response_new(202, &resp));
    CHECK_OK(zh_response_add_bytes(resp, "accepted", 8));
    if (zh_respond(req, resp) == ZH_OK) atomic_store(&g_e.answered, 1);
  }
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  zt_respond_buffered(req);
}

static void send_put(zt_conn *c, const char *path, const uint8_t *data) {
  char head[160];
  snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", path, BODY);
  CHECK(zt_send_str(c, head) == 0);
  /* The first piece alone, so the early response is queued before most of the body is sent. */
  CHECK(zt_send_all(c, data, 16384) == 0);
}

static void run(uint16_t port, const char *path, int expect_status, const uint8_t *data) {
  early_reset();
  if (strcmp(path, "/fd") == 0) g_e.fd = zt_temp_file(0);
  zt_conn *c = zt_connect(port);
  send_put(c, path, data);
  zt_response r;
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, expect_status);
  zt_response_free(&r);
  /* The response has left; the rest of the body follows in pieces. */
  for (size_t off = 16384; off < BODY; off += 256 * 1024) {
    size_t n = BODY - off < 256 * 1024 ? BODY - off : 256 * 1024;
    CHECK(zt_send_all(c, data + off, n) == 0);
  }
  ZT_WAIT_UNTIL(atomic_load(&g_e.end_calls) == 1, 5000);
  zt_sleep_ms(50); /* a second on_end would come now */
  fprintf(stderr, "%s: answered %d, on_data after the answer %d, on_end calls %d, bytes %llu, "
          "error %d, second hand-back -> %s, accessor failures %d\n",
          path, atomic_load(&g_e.answered), atomic_load(&g_e.data_after_answer),
          atomic_load(&g_e.end_calls), (unsigned long long)g_e.end_bytes, g_e.end_error,
          zh_result_str(atomic_load(&g_e.second_respond)), atomic_load(&g_e.accessor_failures));
  CHECK_EQ_INT(atomic_load(&g_e.answered), 1);
  CHECK_EQ_INT(atomic_load(&g_e.end_calls), 1);
  CHECK_EQ_INT(g_e.end_error, 0);
  CHECK_EQ_INT(g_e.end_bytes, BODY);
  CHECK_EQ_INT(atomic_load(&g_e.accessor_failures), 0);
  CHECK_RES(atomic_load(&g_e.second_respond), ZH_ERR_ALREADY_USED);
  if (strcmp(path, "/read") == 0) {
    CHECK_EQ_INT(atomic_load(&g_e.bytes), BODY);
    CHECK(atomic_load(&g_e.data_after_answer) > 0);
  } else {
    uint8_t *back = malloc(BODY);
    CHECK(back != NULL);
    CHECK_EQ_INT(pread(g_e.fd, back, BODY, 0), BODY);
    CHECK_EQ_INT(zt_check_pattern(back, BODY, 0), -1);
    free(back);
    close(g_e.fd);
  }
  /* Exactly one response came: the next one on this connection answers the next request. */
  zt_get(c, "/next", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "buffered 0");
  zt_response_free(&r);
  zt_close(c);
}

int main(void) {
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_head_handler(cfg, head_handler, NULL));
  uint16_t port = 0;
  zh_engine *engine = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  uint8_t *data = malloc(BODY);
  CHECK(data != NULL);
  zt_fill_pattern(data, BODY, 0);

  run(port, "/read", 413, data);
  run(port, "/fd", 202, data);

  CHECK_OK(zh_engine_shutdown(engine, 1000));
  zh_engine_free(engine);
  free(data);
  printf("body_answered_early: ok\n");
  return 0;
}
