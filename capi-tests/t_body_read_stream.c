/* Streamed request bodies (head handler + zh_request_body_read / zh_request_body_resume):
 *   - an 8 MiB Content-Length body and a chunked body (extensions, a trailer) reach on_data in
 *     order and complete (every byte checked against the pattern, FNV-1a hash compared), then
 *     on_end runs exactly once with the total and error 0;
 *   - backpressure: on_data returns ZH_PENDING; a thread resumes 500 ms later. No on_data runs
 *     while paused, the engine reads nothing from the socket (zh_stats.bytes_received frozen)
 *     and the client's send stalls (a small SO_SNDBUF; its progress counter stops); then many
 *     short pause/resume cycles, for Content-Length and chunked bodies;
 *   - pausing on the last piece of a body; resume on a request that is not streaming;
 *   - a client that goes away mid-body (FIN, RST, and RST while the read is paused): on_end
 *     exactly once, with an error and the bytes delivered before;
 *   - misuse: NULL → ZH_ERR_NULL (nothing taken, a later claim still works), a second claim →
 *     ZH_ERR_ALREADY_USED (also body_to_fd after body_read), outside the head handler →
 *     ZH_ERR_STATE, after the request was answered in the head handler → ZH_ERR_ALREADY_USED
 *     (documented meaning: already handed back).
 * Runs threaded and, as external_body_read_stream, in external-loop mode.
 *
 * Regressions guarded (both found by this test, fixed in the engine):
 *   A. zh_request_body_read after the head handler already answered must be
 *      ZH_ERR_ALREADY_USED (it used to return ZH_OK and call back with a handed-back request).
 *   B. zh_request_body_resume called inside the head handler must not stop the body (the
 *      worker used to drive the connection again, nested, before the claim was set up). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define BIG (8u << 20)        /* Content-Length body without pauses */
#define PAUSED (16u << 20)    /* Content-Length body with pauses */
#define FIRST_PAUSE_MS 500u   /* the long pause, with the stall checks */

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

/* ---- the reader: what on_data / on_end saw ------------------------------------------------- */

typedef struct reader {
  /* set by main before the request */
  uint64_t first_pause;         /* pause once this many bytes arrived (0: never) */
  uint64_t pause_every;         /* then again every this many bytes (0: only once) */
  unsigned pause_ms;            /* how long the resumer waits for the later pauses */
  int respond;                  /* on_end answers "BYTES HASH" (else main answers) */
  const atomic_size_t *client_sent; /* the sender's progress, for the stall check (may be NULL) */
  int resume_unpaused;          /* on_data calls zh_request_body_resume once without pausing */
  /* written by the callbacks */
  zh_request *_Atomic req;
  atomic_int data_calls, end_calls;
  atomic_ullong bytes;
  uint64_t hash;
  long long first_bad;          /* offset of the first byte out of order, -1 */
  uint64_t next_pause;
  atomic_int paused;            /* 1 from on_data's ZH_PENDING until the resumer clears it */
  atomic_int pauses, resumes;
  atomic_int data_while_paused;
  atomic_int end_while_paused;
  uint64_t end_bytes;
  int end_error;
  size_t end_trailers;          /* zh_request_trailer_count in on_end */
  atomic_uint respond_result;
  /* written by the resumer during the first pause */
  unsigned long long stall_recv_delta;
  size_t stall_sent1, stall_sent2;
  double first_pause_len_ms;
  atomic_int stop;
} reader;

static reader g_rd;
static zh_engine *g_engine;

static void reader_reset(void) {
  memset(&g_rd, 0, sizeof g_rd);
  g_rd.hash = FNV_INIT;
  g_rd.first_bad = -1;
  g_rd.pause_ms = 5;
  g_rd.respond = 1;
  atomic_store(&g_rd.respond_result, 999);
}

static int32_t on_data(void *ud, zh_request *req, const uint8_t *data, size_t len) {
  reader *r = ud;
  CHECK(r == &g_rd);
  CHECK(req == atomic_load(&r->req));
  CHECK(data != NULL && len > 0);
  if (atomic_load(&r->paused)) atomic_fetch_add(&r->data_while_paused, 1);
  atomic_fetch_add(&r->data_calls, 1);
  uint64_t off = atomic_load(&r->bytes);
  if (r->first_bad < 0) {
    long long bad = zt_check_pattern(data, len, off);
    if (bad >= 0) r->first_bad = (long long)off + bad;
  }
  r->hash = fnv1a(r->hash, data, len);
  atomic_store(&r->bytes, off + len);
  if (r->resume_unpaused) {
    r->resume_unpaused = 0;
    CHECK_OK(zh_request_body_resume(req)); /* nothing is paused: a no-op */
  }
  if (r->next_pause != 0 && off + len >= r->next_pause) {
    r->next_pause = r->pause_every ? off + len + r->pause_every : 0;
    atomic_store(&r->paused, 1);
    atomic_fetch_add(&r->pauses, 1);
    return ZH_PENDING;
  }
  return 0;
}

static void on_end(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  reader *r = ud;
  CHECK(r == &g_rd);
  CHECK(req == atomic_load(&r->req));
  if (atomic_load(&r->paused)) atomic_fetch_add(&r->end_while_paused, 1);
  r->end_bytes = bytes;
  r->end_error = error;
  r->end_trailers = zh_request_trailer_count(req);
  if (r->respond) {
    char body[64];
    snprintf(body, sizeof body, "%llu %016llx", (unsigned long long)bytes, (unsigned long long)r->hash);
    zh_response *resp = NULL;
    CHECK_OK(zh_response_new(error ? 400 : 200, &resp));
    CHECK_OK(zh_response_add_bytes(resp, body, strlen(body)));
    atomic_store(&r->respond_result, zh_respond(req, resp));
  }
  atomic_fetch_add(&r->end_calls, 1);
}

/* Callbacks for a claim that should not have been accepted: they never touch `req`. */
static atomic_int g_stray_data, g_stray_end;
static int32_t stray_data(void *ud, zh_request *req, const uint8_t *data, size_t len) {
  (void)ud, (void)req, (void)data, (void)len;
  atomic_fetch_add(&g_stray_data, 1);
  return 0;
}
static void stray_end(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  (void)ud, (void)req, (void)bytes, (void)error;
  atomic_fetch_add(&g_stray_end, 1);
}

static void never_done(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  (void)ud, (void)req, (void)bytes, (void)error;
  CHECK_MSG(0, "a refused body_to_fd claim ran its callback");
}

static atomic_uint g_after_respond = 999;

static void head_handler(void *ud, zh_request *req) {
  (void)ud;
  const char *p = zh_request_path(req);
  if (strcmp(p, "/read") == 0) {
    atomic_store(&g_rd.req, req);
    g_rd.next_pause = g_rd.first_pause;
    CHECK_OK(zh_request_body_read(req, on_data, on_end, &g_rd));
  } else if (strcmp(p, "/misuse") == 0) {
    atomic_store(&g_rd.req, req);
    CHECK_RES(zh_request_body_read(NULL, on_data, on_end, &g_rd), ZH_ERR_NULL);
    CHECK_RES(zh_request_body_read(req, NULL, on_end, &g_rd), ZH_ERR_NULL);
    CHECK_RES(zh_request_body_read(req, on_data, NULL, &g_rd), ZH_ERR_NULL);
    CHECK_RES(zh_request_body_resume(NULL), ZH_ERR_NULL);
    /* nothing was taken: the claim is still open */
    CHECK_OK(zh_request_body_read(req, on_data, on_end, &g_rd));
    CHECK_RES(zh_request_body_read(req, on_data, on_end, &g_rd), ZH_ERR_ALREADY_USED);
    int fd = zt_temp_file(0);
    CHECK_RES(zh_request_body_to_fd(req, fd, 0, never_done, NULL), ZH_ERR_ALREADY_USED);
    close(fd);
    /* resuming a read that is not paused is harmless, also from here (regression B) */
    CHECK_OK(zh_request_body_resume(req));
    g_rd.resume_unpaused = 1; /* and once from on_data */
  } else if (strcmp(p, "/answered") == 0) {
    CHECK_OK(zh_request_reject(req, 403));
    /* `req` was handed back; it stays valid until this handler returns (the response cannot
     * leave before), so asking is safe. Documented: ZH_ERR_ALREADY_USED = already handed back. */
    atomic_store(&g_after_respond, zh_request_body_read(req, stray_data, stray_end, NULL));
  }
  /* anything else: buffered for the main handler */
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  /* the head stage is over */
  CHECK_RES(zh_request_body_read(req, on_data, on_end, &g_rd), ZH_ERR_STATE);
  CHECK_OK(zh_request_body_resume(req)); /* nothing to resume: a no-op */
  zt_respond_buffered(req);
}

/* ---- client side -------------------------------------------------------------------------- */

typedef struct sender {
  zt_conn *c;
  const uint8_t *buf;
  size_t len;
  size_t piece;
  atomic_size_t sent;
  int rc;
  pthread_t th;
} sender;

static void *sender_main(void *arg) {
  sender *s = arg;
  for (size_t off = 0; off < s->len; off += s->piece) {
    size_t n = s->len - off < s->piece ? s->len - off : s->piece;
    if (zt_send_all(s->c, s->buf + off, n) != 0) {
      s->rc = -1;
      return NULL;
    }
    atomic_store(&s->sent, off + n);
  }
  return NULL;
}

static void sender_start(sender *s, zt_conn *c, const uint8_t *buf, size_t len) {
  memset(s, 0, sizeof *s);
  s->c = c;
  s->buf = buf;
  s->len = len;
  s->piece = 16384;
  CHECK(pthread_create(&s->th, NULL, sender_main, s) == 0);
}

/* Resumes every pause: the first after FIRST_PAUSE_MS (sampling the engine's bytes_received and
 * the client's progress in between), the later ones after pause_ms. */
static void *resumer_main(void *arg) {
  reader *r = arg;
  while (!atomic_load(&r->stop)) {
    if (!atomic_load(&r->paused)) {
      zt_sleep_ms(1);
      continue;
    }
    if (atomic_load(&r->resumes) == 0) {
      double t0 = zt_now_ms();
      zt_sleep_ms(100); /* whatever was in flight has landed in the socket buffers by now */
      zh_stats a, b;
      zt_stats(g_engine, &a);
      r->stall_sent1 = r->client_sent ? atomic_load(r->client_sent) : 0;
      zt_sleep_ms(FIRST_PAUSE_MS - 100);
      zt_stats(g_engine, &b);
      r->stall_sent2 = r->client_sent ? atomic_load(r->client_sent) : 0;
      r->stall_recv_delta = b.bytes_received - a.bytes_received;
      r->first_pause_len_ms = zt_now_ms() - t0;
    } else {
      zt_sleep_ms(r->pause_ms);
    }
    zh_request *req = atomic_load(&r->req);
    atomic_fetch_add(&r->resumes, 1);
    atomic_store(&r->paused, 0); /* before resuming: on_data from here on is legitimate */
    CHECK_OK(zh_request_body_resume(req));
  }
  return NULL;
}

static uint64_t hash_of(const uint8_t *p, size_t n) { return fnv1a(FNV_INIT, p, n); }

/* Reads the response to a /read request answered from on_end and checks it and the reader. */
static void expect_complete(zt_conn *c, const uint8_t *data, size_t len, const char *what) {
  zt_response r;
  if (zt_read_response(c, &r, 0) != 0) {
    fprintf(stderr, "%s: no complete response (status %d, eof %d, timed out %d); reader: %d on_data "
            "calls, %llu bytes, %d on_end calls, paused %d, %d pauses, %d resumes\n",
            what, r.status, r.eof, r.timed_out, atomic_load(&g_rd.data_calls),
            (unsigned long long)atomic_load(&g_rd.bytes), atomic_load(&g_rd.end_calls),
            atomic_load(&g_rd.paused), atomic_load(&g_rd.pauses), atomic_load(&g_rd.resumes));
    CHECK_MSG(0, what);
  }
  char want[64];
  snprintf(want, sizeof want, "%llu %016llx", (unsigned long long)len, (unsigned long long)hash_of(data, len));
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, want);
  zt_response_free(&r);
  ZT_WAIT_UNTIL(atomic_load(&g_rd.end_calls) == 1, 2000);
  CHECK_EQ_INT(atomic_load(&g_rd.end_calls), 1);
  CHECK_EQ_INT(g_rd.end_error, 0);
  CHECK_EQ_INT(g_rd.end_bytes, len);
  CHECK_EQ_INT(atomic_load(&g_rd.bytes), len);
  CHECK_EQ_INT(g_rd.first_bad, -1);
  CHECK_RES(atomic_load(&g_rd.respond_result), ZH_OK);
  CHECK_EQ_INT(atomic_load(&g_rd.data_while_paused), 0);
  fprintf(stderr, "%s: %zu bytes in %d on_data calls, %d pauses\n", what, len,
          atomic_load(&g_rd.data_calls), atomic_load(&g_rd.pauses));
}

/* A chunked framing of data[0..len) in pieces of the given sizes (cycled), with a chunk
 * extension on the first chunk and one trailer field. Returns a malloc'd buffer. */
static uint8_t *frame_chunked(const uint8_t *data, size_t len, const size_t *sizes, size_t nsizes,
                              size_t *out_len) {
  size_t chunks = 0;
  for (size_t off = 0, i = 0; off < len; i++, chunks++) off += sizes[i % nsizes];
  size_t cap = len + 32 * (chunks + 2) + 64, n = 0;
  uint8_t *out = malloc(cap);
  CHECK(out != NULL);
  size_t off = 0;
  for (size_t i = 0; off < len; i++) {
    size_t k = sizes[i % nsizes];
    if (k > len - off) k = len - off;
    n += (size_t)snprintf((char *)out + n, cap - n, i == 0 ? "%zx;name=value\r\n" : "%zx\r\n", k);
    memcpy(out + n, data + off, k);
    n += k;
    memcpy(out + n, "\r\n", 2);
    n += 2;
    off += k;
  }
  n += (size_t)snprintf((char *)out + n, cap - n, "0\r\nX-Checksum: done\r\n\r\n");
  CHECK(n < cap);
  *out_len = n;
  return out;
}

static void send_head(zt_conn *c, const char *path, long long content_length) {
  char head[256];
  if (content_length >= 0)
    snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %lld\r\n\r\n", path,
             content_length);
  else
    snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path);
  CHECK(zt_send_str(c, head) == 0);
}

/* Sends `wire` (the body as framed on the wire) from a thread while a resumer thread ends every
 * pause, then checks the decoded body data[0..len) arrived whole and every pause was resumed. */
static void run_paused(zt_conn *c, const uint8_t *wire, size_t wire_len, const uint8_t *data,
                       size_t len, const char *what) {
  sender s;
  sender_start(&s, c, wire, wire_len);
  g_rd.client_sent = &s.sent;
  pthread_t resumer;
  CHECK(pthread_create(&resumer, NULL, resumer_main, &g_rd) == 0);
  expect_complete(c, data, len, what);
  atomic_store(&g_rd.stop, 1);
  CHECK(pthread_join(resumer, NULL) == 0);
  CHECK(pthread_join(s.th, NULL) == 0);
  CHECK_EQ_INT(s.rc, 0);
  g_rd.client_sent = NULL;
  CHECK_EQ_INT(atomic_load(&g_rd.resumes), atomic_load(&g_rd.pauses));
}

/* A client that leaves mid-body (FIN, or RST; optionally while the read is paused): on_end runs
 * exactly once, with an error and the bytes delivered before, each of them in order. */
static void check_vanished(uint16_t port, const uint8_t *data, int rst, int while_paused) {
  const char *what = while_paused ? "RST while paused" : rst ? "RST mid-body" : "FIN mid-body";
  reader_reset();
  if (while_paused) g_rd.first_pause = 64 * 1024; /* held for FIRST_PAUSE_MS by the resumer */
  pthread_t resumer;
  CHECK(pthread_create(&resumer, NULL, resumer_main, &g_rd) == 0);
  zt_conn *c = zt_connect(port);
  send_head(c, "/read", BIG);
  CHECK(zt_send_all(c, data, 1u << 20) == 0);
  if (while_paused) ZT_WAIT_UNTIL(atomic_load(&g_rd.paused), 5000);
  else ZT_WAIT_UNTIL(atomic_load(&g_rd.bytes) > 0, 5000);
  zt_sleep_ms(50);
  if (rst) zt_abort(c);
  else zt_close(c);
  ZT_WAIT_UNTIL(atomic_load(&g_rd.end_calls) >= 1, 5000);
  zt_sleep_ms(100); /* a second on_end would come now */
  atomic_store(&g_rd.stop, 1);
  CHECK(pthread_join(resumer, NULL) == 0);
  fprintf(stderr, "%s: on_end calls %d, bytes %llu (delivered %llu), error %d (%s), respond -> %s, "
          "on_end while paused: %d, on_data while paused: %d\n",
          what, atomic_load(&g_rd.end_calls), (unsigned long long)g_rd.end_bytes,
          (unsigned long long)atomic_load(&g_rd.bytes), g_rd.end_error, strerror(g_rd.end_error),
          zh_result_str(atomic_load(&g_rd.respond_result)), atomic_load(&g_rd.end_while_paused),
          atomic_load(&g_rd.data_while_paused));
  CHECK_EQ_INT(atomic_load(&g_rd.end_calls), 1);
  CHECK(g_rd.end_error != 0);
  CHECK(g_rd.end_bytes < BIG);
  CHECK_EQ_INT(g_rd.end_bytes, atomic_load(&g_rd.bytes));
  CHECK(g_rd.end_bytes > 0);
  CHECK_EQ_INT(g_rd.first_bad, -1);
  CHECK_EQ_INT(atomic_load(&g_rd.data_while_paused), 0);
  zh_result rr = atomic_load(&g_rd.respond_result);
  CHECK(rr == ZH_OK || rr == ZH_ERR_CLOSED);
}

int main(void) {
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_head_handler(cfg, head_handler, NULL));
  uint16_t port = 0;
  g_engine = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  uint8_t *data = malloc(PAUSED);
  CHECK(data != NULL);
  zt_fill_pattern(data, PAUSED, 0);
  zt_response r;

  /* ---- 1. Content-Length, 8 MiB, no pause */
  reader_reset();
  zt_conn *c = zt_connect(port);
  send_head(c, "/read", BIG);
  for (size_t off = 0; off < BIG; off += 1u << 20) CHECK(zt_send_all(c, data + off, 1u << 20) == 0);
  expect_complete(c, data, BIG, "Content-Length 8 MiB");

  /* ---- 2. chunked (extension, trailer), same connection */
  {
    static const size_t sizes[] = {1, 4095, 70000, 12345, 300000, 1u << 20, 7};
    size_t len = 3u << 20, framed_len = 0;
    uint8_t *framed = frame_chunked(data, len, sizes, sizeof sizes / sizeof sizes[0], &framed_len);
    reader_reset();
    send_head(c, "/read", -1);
    CHECK(zt_send_all(c, framed, framed_len) == 0);
    expect_complete(c, data, len, "chunked 3 MiB");
    /* The trailer field is visible from on_end on (zh_request_body_read's contract). */
    CHECK_EQ_INT((int)g_rd.end_trailers, 1);
    free(framed);
  }

  /* ---- 3. backpressure, Content-Length 16 MiB: a long pause, then many short ones */
  {
    reader_reset();
    g_rd.first_pause = 256 * 1024;
    g_rd.pause_every = 1u << 20;
    zt_conn *pc = zt_connect(port);
    int sndbuf = 32 * 1024; /* the client stalls soon after the engine stops reading */
    CHECK(setsockopt(pc->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
    send_head(pc, "/read", PAUSED);
    run_paused(pc, data, PAUSED, data, PAUSED, "Content-Length 16 MiB with pauses");
    fprintf(stderr, "first pause %.0f ms: engine bytes_received +%llu, client sent %zu then %zu of %u\n",
            g_rd.first_pause_len_ms, g_rd.stall_recv_delta, g_rd.stall_sent1, g_rd.stall_sent2,
            PAUSED);
    CHECK(g_rd.first_pause_len_ms >= FIRST_PAUSE_MS);
    CHECK_EQ_INT(g_rd.stall_recv_delta, 0); /* the engine stopped reading the socket */
    /* ... so the client's send stalled: its counter may still creep while the kernel shuffles
     * buffer space (tens of KiB seen), but nowhere near the 16 MiB it sends when unpaused. */
    CHECK(g_rd.stall_sent2 - g_rd.stall_sent1 < (1u << 20));
    CHECK(g_rd.stall_sent2 < PAUSED / 2);
    CHECK(atomic_load(&g_rd.pauses) >= 10);
    zt_close(pc);
  }

  /* ---- 4. backpressure, chunked 4 MiB in 64 KiB chunks */
  {
    static const size_t sizes[] = {65536};
    size_t len = 4u << 20, framed_len = 0;
    uint8_t *framed = frame_chunked(data, len, sizes, 1, &framed_len);
    reader_reset();
    g_rd.first_pause = 100 * 1024;
    g_rd.pause_every = 512 * 1024;
    g_rd.pause_ms = 20;
    send_head(c, "/read", -1);
    run_paused(c, framed, framed_len, data, len, "chunked 4 MiB with pauses");
    CHECK(atomic_load(&g_rd.pauses) >= 5);
    free(framed);
  }

  /* ---- 5. a pause on the last piece; main answers after resuming (from this thread) */
  for (int chunked = 0; chunked < 2; chunked++) {
    reader_reset();
    g_rd.first_pause = 1; /* the first piece pauses; it is the whole body */
    g_rd.respond = 0;
    if (chunked) {
      static const size_t sizes[] = {1000};
      size_t framed_len = 0;
      uint8_t *framed = frame_chunked(data, 1000, sizes, 1, &framed_len);
      send_head(c, "/read", -1);
      CHECK(zt_send_all(c, framed, framed_len) == 0);
      free(framed);
    } else {
      send_head(c, "/read", 1000);
      CHECK(zt_send_all(c, data, 1000) == 0);
    }
    ZT_WAIT_UNTIL(atomic_load(&g_rd.paused), 5000);
    CHECK(atomic_load(&g_rd.paused));
    zt_sleep_ms(100);
    int ended_while_paused = atomic_load(&g_rd.end_calls);
    zh_request *req = atomic_load(&g_rd.req);
    atomic_store(&g_rd.paused, 0);
    CHECK_OK(zh_request_body_resume(req)); /* the request is still ours: valid either way */
    ZT_WAIT_UNTIL(atomic_load(&g_rd.end_calls) == 1, 5000);
    fprintf(stderr, "pause on the last piece (%s): on_end %s the resume\n",
            chunked ? "chunked" : "Content-Length", ended_while_paused ? "came before" : "waited for");
    CHECK_EQ_INT(ended_while_paused, 0); /* on_end waits for the resume, whatever the framing */
    CHECK_EQ_INT(atomic_load(&g_rd.end_calls), 1);
    CHECK_EQ_INT(g_rd.end_error, 0);
    CHECK_EQ_INT(g_rd.end_bytes, 1000);
    CHECK_EQ_INT(g_rd.first_bad, -1);
    zt_respond_text(req, 200, "late"); /* from another thread, after on_end */
    CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STREQ((const char *)r.body, "late");
    zt_response_free(&r);
  }

  /* ---- 6. misuse in the head handler, then the body is read normally */
  reader_reset();
  send_head(c, "/misuse", 5000);
  CHECK(zt_send_all(c, data, 5000) == 0);
  expect_complete(c, data, 5000, "after misuse");

  /* ---- 7. not claimed in the head handler: the main handler gets it buffered (ZH_ERR_STATE) */
  send_head(c, "/late", 5000);
  CHECK(zt_send_all(c, data, 5000) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "buffered 5000");
  zt_response_free(&r);

  /* ---- 8. answered in the head handler, then a claim: refused, the request is handed back */
  send_head(c, "/answered", 1000);
  CHECK(zt_send_all(c, data, 1000) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 403);
  zt_response_free(&r);
  zt_get(c, "/after", &r); /* the connection survives (the small body was drained) */
  CHECK_STREQ((const char *)r.body, "buffered 0");
  zt_response_free(&r);
  fprintf(stderr, "body_read after the head handler answered -> %s (stray on_data %d, on_end %d)\n",
          zh_result_str(atomic_load(&g_after_respond)), atomic_load(&g_stray_data),
          atomic_load(&g_stray_end));
  CHECK_RES(atomic_load(&g_after_respond), ZH_ERR_ALREADY_USED);
  CHECK_EQ_INT(atomic_load(&g_stray_data) + atomic_load(&g_stray_end), 0);
  zt_close(c);

  /* ---- 9. the client goes away mid-body */
  check_vanished(port, data, 0, 0);
  check_vanished(port, data, 1, 0);
  check_vanished(port, data, 1, 1);

  CHECK_OK(zh_engine_shutdown(g_engine, 1000));
  zh_engine_free(g_engine);
  free(data);
  printf("body_read_stream: ok\n");
  return 0;
}
