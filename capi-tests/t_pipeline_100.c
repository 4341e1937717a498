/* 100 pipelined requests in one send(); responses come back in request order even though odd
 * requests are answered from another thread after a random delay (i.e. out of order). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"

#define N 100

typedef struct pending {
  zh_request *req;
  int idx;
  double due_ms;
} pending;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static pending g_queue[N];
static int g_queued;        /* entries ever queued */
static int g_deferred_done; /* entries answered by the responder thread */
static int g_answer_order[N + 8];
static int g_answered;
static atomic_int g_handled;
static unsigned g_seed = 12345;

static void respond_idx(zh_request *req, int idx) {
  char body[32];
  snprintf(body, sizeof body, "/r/%d", idx);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  char hv[16];
  snprintf(hv, sizeof hv, "%d", idx);
  CHECK_OK(zh_response_add_header(r, "X-Idx", hv));
  CHECK_OK(zh_response_add_bytes(r, body, strlen(body)));
  pthread_mutex_lock(&g_mu);
  g_answer_order[g_answered++] = idx;
  pthread_mutex_unlock(&g_mu);
  CHECK_OK(zh_respond(req, r));
}

static atomic_int g_phase;
static zh_request *_Atomic g_pair_held;

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_handled, 1);
  const char *path = zh_request_path(req);
  CHECK(path != NULL && strncmp(path, "/r/", 3) == 0);
  int idx = atoi(path + 3);
  CHECK(idx >= 0 && idx < N);
  if (atomic_load(&g_phase) == 2) {
    /* even requests wait; the next (odd) one answers itself first, then its predecessor —
     * from inside the handler, on the worker thread, out of order */
    if (idx % 2 == 0) {
      CHECK(atomic_exchange(&g_pair_held, req) == NULL);
      return;
    }
    zh_request *prev = atomic_exchange(&g_pair_held, NULL);
    CHECK_MSG(prev != NULL, "odd request dispatched before its even predecessor");
    respond_idx(req, idx);
    respond_idx(prev, idx - 1);
    return;
  }
  if (idx % 2 == 0) {
    respond_idx(req, idx);
    return;
  }
  pthread_mutex_lock(&g_mu);
  g_seed = g_seed * 1103515245u + 12345u;
  double delay = 1.0 + (double)((g_seed >> 16) % 30); /* 1..30 ms */
  g_queue[g_queued].req = req;
  g_queue[g_queued].idx = idx;
  g_queue[g_queued].due_ms = zt_now_ms() + delay;
  g_queued++;
  pthread_cond_signal(&g_cv);
  pthread_mutex_unlock(&g_mu);
}

/* Answers queued (odd) requests when due, earliest due first. */
static void *responder(void *arg) {
  (void)arg;
  double deadline = zt_now_ms() + 20000;
  pthread_mutex_lock(&g_mu);
  while (g_deferred_done < N / 2 && zt_now_ms() < deadline) {
    int best = -1;
    for (int i = 0; i < g_queued; i++) {
      if (g_queue[i].req && (best < 0 || g_queue[i].due_ms < g_queue[best].due_ms)) best = i;
    }
    if (best < 0 || g_queue[best].due_ms > zt_now_ms()) {
      pthread_mutex_unlock(&g_mu);
      zt_sleep_ms(1);
      pthread_mutex_lock(&g_mu);
      continue;
    }
    zh_request *req = g_queue[best].req;
    int idx = g_queue[best].idx;
    g_queue[best].req = NULL;
    g_deferred_done++;
    pthread_mutex_unlock(&g_mu);
    respond_idx(req, idx);
    pthread_mutex_lock(&g_mu);
  }
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

int main(void) {
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, responder, NULL) == 0);

  /* all 100 requests in one buffer */
  size_t cap = N * 64, len = 0;
  char *all = malloc(cap);
  CHECK(all != NULL);
  for (int i = 0; i < N; i++) {
    len += (size_t)snprintf(all + len, cap - len, "GET /r/%d HTTP/1.1\r\nHost: p\r\n\r\n", i);
  }
  CHECK(len < cap);
  zt_conn *c = zt_connect(port);
  CHECK(zt_send_all(c, all, len) == 0);
  free(all);

  for (int i = 0; i < N; i++) {
    zt_response r;
    int rc = zt_read_response(c, &r, 0);
    if (rc != 0) fprintf(stderr, "response %d incomplete (eof %d timeout %d)\n", i, r.eof, r.timed_out);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.status, 200);
    char want[32];
    snprintf(want, sizeof want, "/r/%d", i);
    if (strcmp((const char *)r.body, want) != 0) {
      fprintf(stderr, "response #%d carries body \"%s\" (want \"%s\")\n", i, (const char *)r.body,
              want);
      CHECK(0);
    }
    char hv[16];
    snprintf(hv, sizeof hv, "%d", i);
    CHECK_STREQ(zt_header(&r, "X-Idx"), hv);
    zt_response_free(&r);
  }
  CHECK(pthread_join(th, NULL) == 0);
  CHECK_EQ_INT(atomic_load(&g_handled), N);
  CHECK_EQ_INT(g_deferred_done, N / 2);

  /* how out of order were the answers actually given? (informational) */
  int inversions = 0;
  for (int i = 1; i < g_answered; i++) inversions += g_answer_order[i] < g_answer_order[i - 1];
  fprintf(stderr, "answers given out of order at %d points\n", inversions);

  /* phase 2: pairs answered in reverse order from inside the handler */
  pthread_mutex_lock(&g_mu);
  g_answered = 0;
  pthread_mutex_unlock(&g_mu);
  atomic_store(&g_phase, 2);
  {
    size_t cap2 = N * 64, len2 = 0;
    char *all2 = malloc(cap2);
    CHECK(all2 != NULL);
    for (int i = 0; i < N; i++) {
      len2 += (size_t)snprintf(all2 + len2, cap2 - len2, "GET /r/%d HTTP/1.1\r\nHost: p\r\n\r\n", i);
    }
    CHECK(zt_send_all(c, all2, len2) == 0);
    free(all2);
    for (int i = 0; i < N; i++) {
      zt_response r2;
      int rc = zt_read_response(c, &r2, 0);
      if (rc != 0) fprintf(stderr, "phase 2: response %d incomplete (eof %d timeout %d)\n", i, r2.eof, r2.timed_out);
      CHECK_EQ_INT(rc, 0);
      char want[32];
      snprintf(want, sizeof want, "/r/%d", i);
      CHECK_STREQ((const char *)r2.body, want);
      zt_response_free(&r2);
    }
  }
  atomic_store(&g_phase, 0);

  /* the connection is still usable after the pipeline */
  zt_response r;
  zt_get(c, "/r/0", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "/r/0");
  zt_response_free(&r);

  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("pipeline_100", &st);
  CHECK_EQ_INT(st.requests, 2 * N + 1);
  CHECK_EQ_INT(st.connections_accepted, 1);

  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  printf("pipeline_100: ok\n");
  return 0;
}
