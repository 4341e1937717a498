/* A handler keeps the request and another thread answers 50 ms later; responding twice
 * returns ZH_ERR_ALREADY_USED and still frees the second response. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static pthread_t g_thread;
static atomic_int g_thread_started;
static atomic_uint g_thread_result = 999;
static atomic_int g_twice_checked;
static atomic_int g_releases;
static int g_file_fd = -1;
static zh_request *_Atomic g_waiting;

static void release(void *ud) {
  (void)ud;
  atomic_fetch_add(&g_releases, 1);
}

static void *late_responder(void *arg) {
  zh_request *req = arg;
  zt_sleep_ms(50);
  /* accessors are safe from any thread while the request is owned */
  CHECK_STREQ(zh_request_path(req), "/later");
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_bytes(r, "late", 4));
  atomic_store(&g_thread_result, zh_respond(req, r));
  return NULL;
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  if (strcmp(path, "/later") == 0) {
    atomic_store(&g_thread_started, 1);
    CHECK(pthread_create(&g_thread, NULL, late_responder, req) == 0);
    return; /* without responding */
  }
  if (strcmp(path, "/twice") == 0) {
    zh_response *r1 = NULL, *r2 = NULL;
    CHECK_OK(zh_response_new(200, &r1));
    CHECK_OK(zh_response_add_bytes(r1, "first", 5));
    CHECK_OK(zh_response_new(500, &r2));
    static const char second[] = "second";
    CHECK_OK(zh_response_add_lent(r2, second, 6, release, NULL));
    int fd = zt_dup(g_file_fd);
    CHECK_OK(zh_response_add_file(r2, fd, 0, -1, ZH_FD_CLOSE));
    CHECK_OK(zh_respond(req, r1));
    CHECK_RES(zh_respond(req, r2), ZH_ERR_ALREADY_USED);
    /* r2 was taken and freed anyway */
    CHECK_EQ_INT(atomic_load(&g_releases), 1);
    CHECK_MSG(zt_fd_closed(fd), "second response's file not closed after ZH_ERR_ALREADY_USED");
    CHECK_RES(zh_request_reject(req, 404), ZH_ERR_ALREADY_USED);
    atomic_store(&g_twice_checked, 1);
    return;
  }
  if (strcmp(path, "/wait") == 0) { /* held until some /wake arrives (on another connection) */
    atomic_store(&g_waiting, req);
    return;
  }
  if (strcmp(path, "/wake") == 0) {
    zh_request *w = atomic_exchange(&g_waiting, NULL);
    CHECK(w != NULL);
    zt_respond_text(w, 200, "woken");     /* another connection's request, from this handler */
    zt_respond_text(req, 200, "waker");
    return;
  }
  zt_respond_text(req, 200, "now");
}

int main(void) {
  g_file_fd = zt_temp_file(1000);
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  zt_conn *c = zt_connect(port);
  zt_response r;

  for (int round = 0; round < 3; round++) {
    atomic_store(&g_thread_started, 0);
    atomic_store(&g_thread_result, 999);
    double t0 = zt_now_ms();
    zt_get(c, "/later", &r);
    double dt = zt_now_ms() - t0;
    CHECK_EQ_INT(r.status, 200);
    CHECK_STREQ((const char *)r.body, "late");
    zt_response_free(&r);
    fprintf(stderr, "late response after %.1f ms\n", dt);
    CHECK_MSG(dt >= 49.0, "response arrived before the thread answered");
    CHECK(atomic_load(&g_thread_started) == 1);
    CHECK(pthread_join(g_thread, NULL) == 0);
    CHECK_RES(atomic_load(&g_thread_result), ZH_OK);
    /* the same keep-alive connection still works, immediately answered */
    zt_get(c, "/now", &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STREQ((const char *)r.body, "now");
    zt_response_free(&r);
  }

  zt_get(c, "/twice", &r);
  CHECK_EQ_INT(atomic_load(&g_twice_checked), 1);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "first");
  zt_response_free(&r);
  /* nothing from the second response leaked onto the wire */
  zt_get(c, "/now", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "now");
  zt_response_free(&r);

  /* a handler answers a request of another connection (possibly on another worker) */
  for (int i = 0; i < 20; i++) {
    zt_conn *w = zt_connect(port);
    CHECK(zt_send_str(w, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    ZT_WAIT_UNTIL(atomic_load(&g_waiting) != NULL, 3000);
    CHECK(atomic_load(&g_waiting) != NULL);
    zt_get(c, "/wake", &r);
    CHECK_STREQ((const char *)r.body, "waker");
    zt_response_free(&r);
    CHECK_EQ_INT(zt_read_response(w, &r, 0), 0);
    CHECK_STREQ((const char *)r.body, "woken");
    zt_response_free(&r);
    zt_close(w);
  }

  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("respond_later_thread", &st);
  CHECK_EQ_INT(st.requests, 8 + 40);
  CHECK_EQ_INT(st.connections_accepted, 1 + 20);

  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  CHECK_EQ_INT(atomic_load(&g_releases), 1);
  close(g_file_fd);
  printf("respond_later_thread: ok\n");
  return 0;
}
