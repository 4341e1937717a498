/* 1,000 file responses with ZH_FD_CLOSE, over keep-alive and over new connections: no fd
 * leaks while running, and after shutdown + free the fd count is back to where it was. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define FILE_SIZE 10000
#define HALF 500

static int g_file_fd = -1;
static atomic_int g_handled;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  int fd = zt_dup(g_file_fd);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_file(r, fd, 100, 5000, ZH_FD_CLOSE));
  CHECK_OK(zh_respond(req, r));
}

static void check_resp(zt_response *r) {
  CHECK_EQ_INT(r->status, 200);
  CHECK_EQ_INT(r->body_len, 5000);
  CHECK_EQ_INT(zt_check_pattern(r->body, r->body_len, 100), -1);
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  int fds_before = zt_count_fds();

  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  int fds_engine = zt_count_fds();
  fprintf(stderr, "fds: before %d, engine started %d\n", fds_before, fds_engine);

  /* over one keep-alive connection */
  zt_conn *c = zt_connect(port);
  for (int i = 0; i < HALF; i++) {
    zt_response r;
    zt_get(c, "/f", &r);
    check_resp(&r);
    zt_response_free(&r);
  }
  /* client socket + server-side connection + at most a few in-flight closes */
  int fds_mid = zt_count_fds();
  ZT_WAIT_UNTIL((fds_mid = zt_count_fds()) <= fds_engine + 2, 2000);
  fprintf(stderr, "fds after keep-alive half: %d\n", fds_mid);
  CHECK_MSG(fds_mid <= fds_engine + 2, "fds grow with keep-alive file responses");
  zt_close(c);

  /* over a new connection each */
  for (int i = 0; i < HALF; i++) {
    c = zt_connect(port);
    zt_response r;
    zt_get(c, "/f", &r);
    check_resp(&r);
    zt_response_free(&r);
    zt_close(c);
  }
  ZT_WAIT_UNTIL((fds_mid = zt_count_fds()) <= fds_engine, 3000);
  fprintf(stderr, "fds after new-connection half: %d\n", fds_mid);
  CHECK_MSG(fds_mid <= fds_engine, "fds grow with new connections");
  CHECK_EQ_INT(atomic_load(&g_handled), 2 * HALF);

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.connections_closed >= HALF + 1), 3000);
  zt_print_stats("no_fd_leak", &st);
  CHECK_EQ_INT(st.requests, 2 * HALF);
  CHECK_EQ_INT(st.connections_accepted, HALF + 1);
  CHECK_EQ_INT(st.connections_closed, HALF + 1);
  CHECK_EQ_INT(st.connections_active, 0);
  CHECK(st.bytes_sendfile >= 2ull * HALF * 5000);

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  int fds_after = zt_count_fds();
  fprintf(stderr, "fds after free: %d\n", fds_after);
  CHECK_EQ_INT(fds_after, fds_before);
  close(g_file_fd);
  printf("no_fd_leak: ok\n");
  return 0;
}
