/* Several client threads at once against a 4-worker engine: keep-alive, new connections and
 * pipelined batches; bodies mix bytes, lent memory and file regions that depend on the request,
 * so a response delivered to the wrong connection or out of order is caught. The file regions
 * (1..4000 bytes) are at most the default small_file_read_max (4096), so most are read into the
 * sendmsg of the memory before them (gathered across pipelined responses, sends stopping in
 * the middle of them); every file byte is counted once, in bytes_sendfile or bytes_copy, and no
 * zero-copy path was refused (fallbacks 0). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define CLIENTS 8
#define PER_CLIENT 150
#define FILE_SIZE (1u << 20)
#define PIPE_BATCH 10

static int g_file_fd = -1;
static uint8_t g_lent[4096];
static atomic_int g_handled, g_releases, g_lent_given;

static void release(void *ud) {
  CHECK(ud == (void *)g_lent);
  atomic_fetch_add(&g_releases, 1);
}

static uint64_t file_off(unsigned tid, unsigned i) { return ((uint64_t)tid * 7919u + i * 104729u) % (FILE_SIZE - 5000); }
static size_t file_len(unsigned tid, unsigned i) { return 1 + (tid * 31u + i * 17u) % 4000; }
static size_t lent_len(unsigned tid, unsigned i) { return (tid * 13u + i * 29u) % 3000; }

/* "/m/<tid>/<i>" -> "<tid>:<i>|" + lent[0..lent_len) + file[off, off+len) + "|end" */
static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  unsigned tid = 0, i = 0;
  CHECK(sscanf(zh_request_path(req), "/m/%u/%u", &tid, &i) == 2);
  char head[32];
  int hn = snprintf(head, sizeof head, "%u:%u|", tid, i);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_bytes(r, head, (size_t)hn));
  size_t ll = lent_len(tid, i);
  if (ll > 0) {
    CHECK_OK(zh_response_add_lent(r, g_lent, ll, release, g_lent));
    atomic_fetch_add(&g_lent_given, 1);
  }
  int fd = zt_dup(g_file_fd);
  CHECK_OK(zh_response_add_file(r, fd, file_off(tid, i), (int64_t)file_len(tid, i), ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_bytes(r, "|end", 4));
  CHECK_OK(zh_respond(req, r));
}

static void check_body(unsigned tid, unsigned i, const zt_response *r) {
  CHECK_EQ_INT(r->status, 200);
  char head[32];
  int hn = snprintf(head, sizeof head, "%u:%u|", tid, i);
  size_t ll = lent_len(tid, i), fl = file_len(tid, i);
  size_t want = (size_t)hn + ll + fl + 4;
  if (r->body_len != want || memcmp(r->body, head, (size_t)hn) != 0) {
    fprintf(stderr, "client %u request %u: got %zu bytes starting \"%.20s\", want %zu starting \"%s\"\n",
            tid, i, r->body_len, (const char *)r->body, want, head);
    CHECK(0);
  }
  CHECK(memcmp(r->body + hn, g_lent, ll) == 0);
  CHECK_EQ_INT(zt_check_pattern(r->body + hn + ll, fl, file_off(tid, i)), -1);
  CHECK(memcmp(r->body + hn + ll + fl, "|end", 4) == 0);
}

typedef struct {
  unsigned tid;
  uint16_t port;
  int connections;
} client_arg;

static void *client(void *p) {
  client_arg *a = p;
  unsigned i = 0;
  zt_conn *c = NULL;
  while (i < PER_CLIENT) {
    unsigned mode = (a->tid + i / 10) % 3;
    if (!c || mode == 1) {
      zt_close(c);
      c = zt_connect(a->port);
      a->connections++;
    }
    if (mode == 2 && i + PIPE_BATCH <= PER_CLIENT) {
      char buf[PIPE_BATCH * 64];
      size_t len = 0;
      for (unsigned k = 0; k < PIPE_BATCH; k++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "GET /m/%u/%u HTTP/1.1\r\nHost: x\r\n\r\n", a->tid, i + k);
      }
      CHECK(zt_send_all(c, buf, len) == 0);
      for (unsigned k = 0; k < PIPE_BATCH; k++) {
        zt_response r;
        CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
        check_body(a->tid, i + k, &r);
        zt_response_free(&r);
      }
      i += PIPE_BATCH;
    } else {
      char path[64];
      snprintf(path, sizeof path, "/m/%u/%u", a->tid, i);
      zt_response r;
      zt_get(c, path, &r);
      check_body(a->tid, i, &r);
      zt_response_free(&r);
      i++;
    }
  }
  zt_close(c);
  return NULL;
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  for (size_t i = 0; i < sizeof g_lent; i++) g_lent[i] = (uint8_t)(i * 131 + 7);
  int fds_before = zt_count_fds();

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 4));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);

  pthread_t th[CLIENTS];
  client_arg args[CLIENTS];
  double t0 = zt_now_ms();
  for (unsigned t = 0; t < CLIENTS; t++) {
    args[t] = (client_arg){t, port, 0};
    CHECK(pthread_create(&th[t], NULL, client, &args[t]) == 0);
  }
  int conns = 0;
  for (unsigned t = 0; t < CLIENTS; t++) {
    CHECK(pthread_join(th[t], NULL) == 0);
    conns += args[t].connections;
  }
  fprintf(stderr, "%d requests over %d connections in %.1f ms\n", CLIENTS * PER_CLIENT, conns,
          zt_now_ms() - t0);
  CHECK_EQ_INT(atomic_load(&g_handled), CLIENTS * PER_CLIENT);

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.connections_active == 0), 3000);
  zt_print_stats("concurrent_clients", &st);
  CHECK_EQ_INT(st.requests, CLIENTS * PER_CLIENT);
  CHECK_EQ_INT(st.responses, CLIENTS * PER_CLIENT);
  CHECK_EQ_INT(st.connections_accepted, conns);
  CHECK_EQ_INT(st.connections_closed, conns);
  CHECK_EQ_INT(st.connections_active, 0);
  uint64_t file_bytes = 0;
  for (unsigned t = 0; t < CLIENTS; t++)
    for (unsigned i = 0; i < PER_CLIENT; i++) file_bytes += file_len(t, i);
  CHECK_EQ_INT(st.bytes_sendfile + st.bytes_copy, file_bytes);
  CHECK(st.bytes_copy > 0); /* the small-file path was taken */
  CHECK_EQ_INT(st.fallbacks, 0);
  CHECK_EQ_INT(st.errors_io, 0);
  ZT_WAIT_UNTIL(atomic_load(&g_releases) == atomic_load(&g_lent_given), 3000);
  CHECK_EQ_INT(atomic_load(&g_releases), atomic_load(&g_lent_given));

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  CHECK_EQ_INT(zt_count_fds(), fds_before);
  close(g_file_fd);
  printf("concurrent_clients: ok\n");
  return 0;
}
