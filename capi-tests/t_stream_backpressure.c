/* Backpressure on a streaming response: 64 MiB produced by a thread that never lets the queue
 * grow past a high mark. It adds 64 KiB chunks while zh_stream_queued() <= HIGH, then waits
 * (condvar) for the zh_stream_on_drain callback (queue fell below LOW) and goes on. The client
 * reads nothing for a while, then slowly, then at full speed, decoding chunked framing itself
 * and checking every byte against the pattern.
 *
 * Asserts: the body is byte-identical (64 MiB, final 0-chunk); the drain callback fired at least
 * once and every wait of the producer ended by it (no timeout); zh_stream_queued() never
 * exceeded HIGH + one chunk; the drain callback ran on an engine thread; the producer waited at
 * least once (the slow client really pushed back). A second, smaller round checks the
 * registration can be replaced (new mark) and that ending with nothing queued works.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define TOTAL (64ull << 20)
#define CHUNK (64u << 10)
#define HIGH (1ull << 20)
#define LOW (256ull << 10)

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t gen;        /* bumped by every drain callback */
  int fired;
  pthread_t producer_thread;
  zh_stream *s;
  uint64_t total;      /* bytes to produce */
  uint64_t low, high;
  /* results, read after the join */
  uint64_t max_queued;
  int waits;
  int callback_on_producer; /* the drain callback ran on the producer thread (must not) */
  int done;
} ctx_t;

static ctx_t g_ctx;
static atomic_int g_started;

static void on_drain(void *ud) {
  ctx_t *c = ud;
  CHECK(c == &g_ctx);
  pthread_mutex_lock(&c->mu);
  if (pthread_equal(pthread_self(), c->producer_thread)) c->callback_on_producer = 1;
  c->gen++;
  c->fired++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void *producer(void *arg) {
  ctx_t *c = arg;
  uint8_t *buf = malloc(CHUNK);
  CHECK(buf != NULL);
  uint64_t off = 0;
  while (off < c->total) {
    pthread_mutex_lock(&c->mu);
    uint64_t gen0 = c->gen;
    pthread_mutex_unlock(&c->mu);
    uint64_t q = zh_stream_queued(c->s);
    if (q > c->max_queued) c->max_queued = q;
    if (q > c->high) {
      /* wait for the drain callback (a bump of gen after gen0 was read) */
      c->waits++;
      struct timespec dl;
      clock_gettime(CLOCK_REALTIME, &dl);
      dl.tv_sec += (time_t)(10 * zt_time_scale());
      pthread_mutex_lock(&c->mu);
      int rc = 0;
      while (c->gen == gen0 && rc == 0) rc = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
      int woke = c->gen != gen0;
      pthread_mutex_unlock(&c->mu);
      if (!woke) {
        fprintf(stderr, "producer: no drain callback within 10 s (queued=%llu, sent %llu)\n",
                (unsigned long long)zh_stream_queued(c->s), (unsigned long long)off);
        CHECK_MSG(0, "drain callback never came");
      }
      continue;
    }
    size_t n = c->total - off < CHUNK ? (size_t)(c->total - off) : CHUNK;
    zt_fill_pattern(buf, n, off);
    CHECK_OK(zh_stream_add_bytes(c->s, buf, n));
    off += n;
    q = zh_stream_queued(c->s);
    if (q > c->max_queued) c->max_queued = q;
    if (q > c->high + CHUNK) {
      fprintf(stderr, "queued %llu > high %llu + chunk\n", (unsigned long long)q,
              (unsigned long long)c->high);
      CHECK(0);
    }
  }
  free(buf);
  CHECK_OK(zh_stream_end(c->s, NULL, NULL, 0));
  pthread_mutex_lock(&c->mu);
  c->done = 1;
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static void handler(void *ud, zh_request *req) {
  ctx_t *c = ud;
  zh_response *head = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_response_add_header(head, "Content-Type", "application/octet-stream"));
  zh_stream *s = NULL;
  CHECK_OK(zh_respond_stream(req, head, &s));
  /* a first registration, replaced by the real one */
  CHECK_OK(zh_stream_on_drain(s, 1, on_drain, NULL));
  CHECK_OK(zh_stream_on_drain(s, c->low, on_drain, c));
  c->s = s;
  CHECK(pthread_create(&c->producer_thread, NULL, producer, c) == 0);
  atomic_store(&g_started, 1);
}

/* ------------------------------------------------------------------ streaming chunked reader */

typedef struct {
  zt_conn *c;
  uint8_t buf[65536];
  size_t pos, len;
  size_t read_size; /* at most this many bytes per recv (slow phase) */
  unsigned sleep_ms;/* after each recv (slow phase) */
} rd_t;

static long rd_fill(rd_t *r) {
  if (r->pos == r->len) {
    r->pos = r->len = 0;
  } else if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  size_t room = sizeof r->buf - r->len;
  if (room == 0) return -1;
  if (r->read_size && room > r->read_size) room = r->read_size;
  long n = zt_recv_some(r->c, r->buf + r->len, room);
  if (n > 0) r->len += (size_t)n;
  if (r->sleep_ms) zt_sleep_ms(r->sleep_ms);
  return n;
}

static char *rd_line(rd_t *r) {
  for (;;) {
    uint8_t *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
    if (nl) {
      size_t n = (size_t)(nl - (r->buf + r->pos));
      CHECK_MSG(n > 0 && nl[-1] == '\r', "line not terminated by CRLF");
      char *line = malloc(n);
      CHECK(line != NULL);
      memcpy(line, r->buf + r->pos, n - 1);
      line[n - 1] = 0;
      r->pos += n + 1;
      return line;
    }
    if (rd_fill(r) <= 0) return NULL;
  }
}

int main(void) {
  memset(&g_ctx, 0, sizeof g_ctx);
  pthread_mutex_init(&g_ctx.mu, NULL);
  pthread_cond_init(&g_ctx.cv, NULL);
  g_ctx.total = TOTAL;
  g_ctx.low = LOW;
  g_ctx.high = HIGH;

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 1));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, &g_ctx, &port);
  zh_config_free(cfg);

  double t0 = zt_now_ms();
  zt_conn *c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
  ZT_WAIT_UNTIL(atomic_load(&g_started), 5000);
  CHECK(atomic_load(&g_started));

  /* phase 1: read nothing; the producer must stop at the high mark */
  zt_sleep_ms(300);
  uint64_t q = zh_stream_queued(g_ctx.s);
  pthread_mutex_lock(&g_ctx.mu);
  int waits_idle = g_ctx.waits, done_idle = g_ctx.done;
  pthread_mutex_unlock(&g_ctx.mu);
  fprintf(stderr, "after 300 ms of no reading: queued=%llu producer waits=%d\n",
          (unsigned long long)q, waits_idle);
  CHECK_MSG(!done_idle, "64 MiB produced with nobody reading: no backpressure");
  CHECK_MSG(waits_idle >= 1, "the producer never had to wait");
  CHECK(q <= HIGH + CHUNK);

  rd_t *rd = calloc(1, sizeof *rd);
  CHECK(rd != NULL);
  rd->c = c;
  rd->read_size = 4096;
  rd->sleep_ms = 1;

  char *line = rd_line(rd);
  CHECK(line != NULL);
  CHECK_MSG(strncmp(line, "HTTP/1.1 200", 12) == 0, line);
  free(line);
  int chunked = 0;
  for (;;) {
    line = rd_line(rd);
    CHECK(line != NULL);
    if (!line[0]) {
      free(line);
      break;
    }
    if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked")) chunked = 1;
    CHECK_MSG(strncasecmp(line, "Content-Length:", 15) != 0, "a stream has no Content-Length");
    free(line);
  }
  CHECK(chunked);

  uint64_t off = 0;
  int last = 0;
  while (!last) {
    if (off >= (2u << 20)) { /* phase 3: full speed after 2 MiB */
      rd->read_size = 0;
      rd->sleep_ms = 0;
    }
    line = rd_line(rd);
    CHECK_MSG(line != NULL, "connection ended inside the body");
    char *end = NULL;
    unsigned long long n = strtoull(line, &end, 16);
    CHECK_MSG(end != line && (*end == 0 || *end == ';'), line);
    free(line);
    if (n == 0) {
      last = 1;
      line = rd_line(rd); /* no trailers: the empty line */
      CHECK(line != NULL);
      CHECK_MSG(line[0] == 0, "unexpected trailer");
      free(line);
      break;
    }
    CHECK(off + n <= TOTAL);
    while (n > 0) {
      if (rd->pos == rd->len) CHECK_MSG(rd_fill(rd) > 0, "connection ended inside a chunk");
      size_t k = rd->len - rd->pos;
      if (k > n) k = (size_t)n;
      long long bad = zt_check_pattern(rd->buf + rd->pos, k, off);
      if (bad >= 0) {
        fprintf(stderr, "mismatch at body offset %llu\n", (unsigned long long)off + (uint64_t)bad);
        CHECK(0);
      }
      rd->pos += k;
      off += k;
      n -= k;
    }
    line = rd_line(rd);
    CHECK(line != NULL && line[0] == 0);
    free(line);
  }
  double took = zt_now_ms() - t0;
  CHECK_EQ_INT(off, TOTAL);

  CHECK(pthread_join(g_ctx.producer_thread, NULL) == 0);
  fprintf(stderr, "64 MiB in %.0f ms: drain callbacks=%d producer waits=%d max queued=%llu\n", took,
          g_ctx.fired, g_ctx.waits, (unsigned long long)g_ctx.max_queued);
  CHECK(g_ctx.done);
  CHECK(g_ctx.fired >= 1);
  CHECK(g_ctx.waits >= 1);
  CHECK(g_ctx.fired >= g_ctx.waits); /* every wait was ended by a callback */
  CHECK(g_ctx.max_queued <= HIGH + CHUNK);
  CHECK_MSG(!g_ctx.callback_on_producer, "drain callback ran on the producer thread");

  /* keep-alive: a second, small stream with another mark on the same connection */
  g_ctx.total = 3 * CHUNK + 17;
  g_ctx.low = 2 * CHUNK;
  g_ctx.high = 2 * CHUNK;
  g_ctx.done = 0;
  g_ctx.max_queued = 0;
  atomic_store(&g_started, 0);
  zt_response r;
  CHECK_EQ_INT(rd->len - rd->pos, 0); /* nothing after the first response */
  zt_get(c, "/small", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked);
  CHECK_EQ_INT(r.body_len, 3 * CHUNK + 17);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  CHECK(pthread_join(g_ctx.producer_thread, NULL) == 0);
  CHECK(g_ctx.done);
  CHECK(g_ctx.max_queued <= 3 * CHUNK);

  free(rd);
  zt_close(c);
  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("end", &st);
  CHECK(st.bytes_writev >= TOTAL);
  CHECK_EQ_INT(st.errors_io, 0);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  pthread_cond_destroy(&g_ctx.cv);
  pthread_mutex_destroy(&g_ctx.mu);
  printf("t_stream_backpressure: ok\n");
  return 0;
}
