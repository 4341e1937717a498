/* Runs examples-c/libevent_host.c (zh_libevent_host, a libevent event_base driving the engine in
 * external-loop mode): /hello, files under --root (zh_respond_file), HEAD, Range, 404,
 * keep-alive, pipelining, curl and python3 http.client, then exit 0 on SIGTERM (and once more
 * on SIGINT). The binary comes from ZH_LIBEVENT_HOST (set by CMakeLists.txt). */
#define _GNU_SOURCE
#include "t_host_common.h"

int main(void) {
  const char *bin = host_binary("ZH_LIBEVENT_HOST");
  host_proc h;
  memset(&h, 0, sizeof h);
  host_make_root(&h);

  char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--root", h.root, NULL};
  host_start(&h, argv);
  host_check_http(h.port, "");
  /* the directory index */
  zt_conn *c = zt_connect(h.port);
  zt_response r;
  zt_get(c, "/", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "<h1>index</h1>\n");
  zt_response_free(&r);
  zt_get(c, "/../../etc/passwd", &r);
  CHECK(r.status == 403 || r.status == 404);
  zt_response_free(&r);
  host_check_real_clients(&h, "");
  /* An idle keep-alive connection is still open at SIGTERM: shutdown must close it at once. */
  host_stop(&h, SIGTERM);
  CHECK(zt_wait_closed(c, 2000, NULL));
  zt_close(c);

  /* SIGINT works the same; the heartbeat timer does not disturb the engine's timers. */
  host_start(&h, argv);
  zt_sleep_ms(1100);
  c = zt_connect(h.port);
  zt_get(c, "/hello", &r);
  check_hello(&r);
  zt_response_free(&r);
  zt_close(c);
  host_stop(&h, SIGINT);

  host_remove_root(&h);
  fprintf(stderr, "host_libevent: ok\n");
  return 0;
}
