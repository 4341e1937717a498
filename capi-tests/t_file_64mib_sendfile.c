/* A 64 MiB file served with zh_response_add_file(ZH_FD_CLOSE) arrives byte-identical and
 * goes out by sendfile (stats), never by the copy fallback. small_file_read_max is 0, so the
 * 777-byte tail goes by sendfile too (by default it would be read into the head's sendmsg). */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define FILE_SIZE (64ull << 20)

static int g_file_fd = -1;
static atomic_int g_last_dup = -1;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  int fd = zt_dup(g_file_fd);
  atomic_store(&g_last_dup, fd);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_header(r, "Content-Type", "application/octet-stream"));
  if (strcmp(path, "/whole") == 0) {
    CHECK_OK(zh_response_add_file(r, fd, 0, -1, ZH_FD_CLOSE));
  } else if (strcmp(path, "/region") == 0) {
    CHECK_OK(zh_response_add_file(r, fd, 12345, 1000000, ZH_FD_CLOSE));
  } else if (strcmp(path, "/tail") == 0) {
    CHECK_OK(zh_response_add_file(r, fd, FILE_SIZE - 777, -1, ZH_FD_CLOSE));
  } else {
    CHECK_OK(zh_response_add_file(r, fd, 0, 10, ZH_FD_CLOSE));
    zh_response_free(r);
    CHECK_MSG(zt_fd_closed(fd), "zh_response_free did not close the ZH_FD_CLOSE fd");
    CHECK_OK(zh_request_reject(req, 404));
    return;
  }
  CHECK_OK(zh_respond(req, r));
}

static void wait_fd_closed(int fd) {
  ZT_WAIT_UNTIL(zt_fd_closed(fd), 5000);
  CHECK_MSG(zt_fd_closed(fd), "ZH_FD_CLOSE fd still open after the response");
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  uint16_t port = 0;
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_small_file_read_max(cfg, 0)); /* every file byte by sendfile */
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  zt_conn *c = zt_connect(port);
  zt_response r;

  double t0 = zt_now_ms();
  zt_get(c, "/whole", &r);
  double t1 = zt_now_ms();
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.has_content_length);
  CHECK_EQ_INT(r.content_length, FILE_SIZE);
  CHECK_EQ_INT(r.body_len, FILE_SIZE);
  long long bad = zt_check_pattern(r.body, r.body_len, 0);
  if (bad >= 0) fprintf(stderr, "first mismatch at byte %lld\n", bad);
  CHECK_EQ_INT(bad, -1);
  zt_response_free(&r);
  wait_fd_closed(atomic_load(&g_last_dup));
  fprintf(stderr, "64 MiB in %.1f ms\n", t1 - t0);

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.bytes_sendfile >= FILE_SIZE), 3000);
  zt_print_stats("after /whole", &st);
  CHECK(st.bytes_sendfile >= FILE_SIZE);
  CHECK_EQ_INT(st.bytes_copy, 0);
  CHECK(st.syscalls_sendfile >= 1);
  CHECK(st.bytes_writev < 4096); /* only the head went by writev */
  CHECK_EQ_INT(st.errors_truncated, 0);

  /* a region in the middle, and the tail, on the same keep-alive connection */
  zt_get(c, "/region", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.content_length, 1000000);
  CHECK_EQ_INT(r.body_len, 1000000);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 12345), -1);
  zt_response_free(&r);
  wait_fd_closed(atomic_load(&g_last_dup));

  zt_get(c, "/tail", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, 777);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, FILE_SIZE - 777), -1);
  zt_response_free(&r);
  wait_fd_closed(atomic_load(&g_last_dup));

  zt_get(c, "/other", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);

  ZT_WAIT_UNTIL((zt_stats(e, &st), st.bytes_sendfile >= FILE_SIZE + 1000000 + 777), 3000);
  zt_print_stats("final", &st);
  CHECK_EQ_INT(st.bytes_sendfile, FILE_SIZE + 1000000 + 777);
  CHECK_EQ_INT(st.bytes_copy, 0);
  CHECK_EQ_INT(st.requests, 4);
  CHECK_EQ_INT(st.connections_accepted, 1);

  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  close(g_file_fd);
  printf("file_64mib_sendfile: ok\n");
  return 0;
}
