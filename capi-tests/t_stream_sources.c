/* Body sources beyond memory and files (added to the API after the v0 draft):
 * pipe fds (zh_response_add_fd, splice) with a known length, until EOF (chunked), and ending
 * short (abort); callback sources (bytes, ZH_PENDING + zh_source_ready from another thread,
 * file pieces, an error); HTTP/1.0 close-delimited bodies; zh_respond_stream fed from a thread
 * with bytes, lent memory, a file region and a pipe, ended with a trailer, or aborted. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define PIPE_LEN (3u << 20) /* larger than a pipe buffer */
#define PIPE_EOF_LEN 300000u
#define FILE_SIZE (1u << 20)

static int g_file_fd = -1;
static pthread_t g_thread;
static atomic_int g_thread_running;
static atomic_int g_fd_to_check = -1;

/* ------------------------------------------------------------ pipe writer */

typedef struct {
  int wfd;
  size_t len;
} writer_arg;
static writer_arg g_writer;

static void *pipe_writer(void *p) {
  writer_arg *a = p;
  uint8_t buf[65536];
  size_t off = 0;
  while (off < a->len) {
    size_t n = a->len - off < sizeof buf ? a->len - off : sizeof buf;
    zt_fill_pattern(buf, n, off);
    size_t w = 0;
    while (w < n) {
      ssize_t k = write(a->wfd, buf + w, n - w);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) goto out; /* reader gone */
      w += (size_t)k;
    }
    off += n;
  }
out:
  close(a->wfd);
  return NULL;
}

/* a pipe whose read end goes to the engine; a thread writes `len` pattern bytes, then closes */
static void respond_pipe(zh_request *req, int64_t announce, size_t actual) {
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  atomic_store(&g_fd_to_check, p[0]);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_fd(r, p[0], announce, ZH_FD_CLOSE));
  CHECK_OK(zh_respond(req, r));
  g_writer = (writer_arg){p[1], actual};
  CHECK(pthread_create(&g_thread, NULL, pipe_writer, &g_writer) == 0);
  atomic_store(&g_thread_running, 1);
}

/* ------------------------------------------------------------ callback sources */

typedef struct {
  int mode;        /* 0 bytes (+pending), 1 bytes+file pieces, 2 error after 3 pieces */
  size_t total;    /* for mode 1: exact length */
  size_t produced; /* bytes produced so far (== pattern offset) */
  int polls, pieces;
  int waiting, waiting_for, episodes, spurious; /* mode 0: PENDING bookkeeping */
  atomic_int ready_done;                        /* zh_source_ready calls completed */
  atomic_int releases;
  zh_source *_Atomic need_ready;
  int finished; /* under g_ready_mu: no zh_source_ready after this */
} cb_state;

/* serialises the helper's zh_source_ready with the source's EOF, so that it is never called
 * on a source whose release_fn may have run */
static pthread_mutex_t g_ready_mu = PTHREAD_MUTEX_INITIALIZER;
static cb_state g_cb;
#define CB_PIECES 60

static int32_t cb_eof(cb_state *s) {
  pthread_mutex_lock(&g_ready_mu);
  s->finished = 1;
  atomic_store(&s->need_ready, NULL);
  pthread_mutex_unlock(&g_ready_mu);
  return ZH_EOF;
}

static int32_t cb_poll(void *ud, zh_chunk_out *out) {
  cb_state *s = ud;
  CHECK(s == &g_cb);
  CHECK(out != NULL && out->buf != NULL && out->buf_cap > 0 && out->source != NULL);
  s->polls++;
  if (s->mode == 2 && s->polls > 3) return -1;
  if (s->mode == 0) {
    if (s->waiting) {
      if (atomic_load(&s->ready_done) < s->waiting_for) {
        /* polled again before our zh_source_ready: fine, but say PENDING again */
        s->spurious++;
        atomic_store(&s->need_ready, out->source);
        return ZH_PENDING;
      }
      s->waiting = 0;
    } else if (s->pieces % 7 == 3 && s->pieces < CB_PIECES - 5) {
      /* nothing now: the helper thread calls zh_source_ready a moment later */
      s->waiting = 1;
      s->waiting_for = atomic_load(&s->ready_done) + 1;
      s->episodes++;
      s->pieces++; /* do not wait twice at the same piece */
      atomic_store(&s->need_ready, out->source);
      return ZH_PENDING;
    }
    if (s->pieces >= CB_PIECES) return cb_eof(s);
    s->pieces++;
  }
  if (s->mode == 1) {
    if (s->produced == s->total) return cb_eof(s);
    size_t left = s->total - s->produced;
    if (s->polls % 2 == 0) {
      size_t n = left < 20000 ? left : 20000;
      out->kind = ZH_CHUNK_FILE;
      out->fd = zt_dup(g_file_fd);
      out->offset = s->produced;
      out->fd_len = (int64_t)n;
      out->flags = ZH_FD_CLOSE;
      s->produced += n;
      return ZH_POLL_READY;
    }
    size_t n = left < 3000 ? left : 3000;
    if (n > out->buf_cap) n = out->buf_cap;
    zt_fill_pattern(out->buf, n, s->produced);
    out->kind = ZH_CHUNK_BYTES;
    out->len = n;
    s->produced += n;
    return ZH_POLL_READY;
  }
  size_t n = 1000 + (size_t)s->polls * 37;
  if (n > out->buf_cap) n = out->buf_cap;
  zt_fill_pattern(out->buf, n, s->produced);
  out->kind = ZH_CHUNK_BYTES;
  out->len = n;
  s->produced += n;
  return ZH_POLL_READY;
}

static void cb_release(void *ud) {
  CHECK(ud == &g_cb);
  atomic_fetch_add(&g_cb.releases, 1);
}

static atomic_int g_helper_stop;
static void *ready_helper(void *p) {
  (void)p;
  while (!atomic_load(&g_helper_stop)) {
    if (atomic_load(&g_cb.need_ready) == NULL) {
      zt_sleep_ms(1);
      continue;
    }
    zt_sleep_ms(2);
    pthread_mutex_lock(&g_ready_mu);
    zh_source *src = atomic_exchange(&g_cb.need_ready, NULL);
    if (src && !g_cb.finished) {
      CHECK_OK(zh_source_ready(src));
      atomic_fetch_add(&g_cb.ready_done, 1);
    }
    pthread_mutex_unlock(&g_ready_mu);
  }
  return NULL;
}

static void respond_cb(zh_request *req, int mode, int64_t len) {
  pthread_mutex_lock(&g_ready_mu);
  memset(&g_cb, 0, sizeof g_cb);
  pthread_mutex_unlock(&g_ready_mu);
  g_cb.mode = mode;
  g_cb.total = len > 0 ? (size_t)len : 0;
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_callback(r, cb_poll, cb_release, &g_cb, len));
  CHECK_OK(zh_respond(req, r));
}

/* ------------------------------------------------------------ streams */

static atomic_int g_lent_releases;
static const char LENT[] = "<lent memory>";
static void lent_release(void *ud) {
  CHECK(ud == (void *)LENT);
  atomic_fetch_add(&g_lent_releases, 1);
}

typedef struct {
  zh_stream *s;
  int abort;
  int fd_dup;
} stream_arg;
static stream_arg g_stream;

static void *stream_producer(void *p) {
  stream_arg *a = p;
  zt_sleep_ms(20);
  CHECK(!zh_stream_is_closed(a->s));
  CHECK_OK(zh_stream_add_bytes(a->s, "part1|", 6));
  if (a->abort) {
    zt_sleep_ms(20);
    zh_stream_abort(a->s);
    return NULL;
  }
  CHECK_OK(zh_stream_add_lent(a->s, LENT, strlen(LENT), lent_release, (void *)LENT));
  CHECK_OK(zh_stream_add_file(a->s, a->fd_dup, 777, 10000, ZH_FD_CLOSE));
  int pp[2];
  CHECK(pipe2(pp, O_CLOEXEC) == 0);
  uint8_t buf[4096];
  zt_fill_pattern(buf, sizeof buf, 5);
  CHECK(write(pp[1], buf, sizeof buf) == (ssize_t)sizeof buf);
  close(pp[1]);
  CHECK_OK(zh_stream_add_fd(a->s, pp[0], -1, ZH_FD_CLOSE));
  zt_sleep_ms(10);
  CHECK_OK(zh_stream_add_bytes(a->s, "|end", 4));
  const char *names[] = {"X-Trailer"};
  const char *values[] = {"done"};
  CHECK_OK(zh_stream_end(a->s, names, values, 1));
  return NULL;
}

static void respond_stream(zh_request *req, int abort_it) {
  zh_response *head = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_response_add_header(head, "X-Streamed", "yes"));
  CHECK_OK(zh_response_add_bytes(head, "pre|", 4)); /* chunks added before streaming */
  zh_stream *s = NULL;
  CHECK_OK(zh_respond_stream(req, head, &s));
  CHECK(s != NULL);
  g_stream = (stream_arg){s, abort_it, abort_it ? -1 : zt_dup(g_file_fd)};
  atomic_store(&g_fd_to_check, g_stream.fd_dup);
  CHECK(pthread_create(&g_thread, NULL, stream_producer, &g_stream) == 0);
  atomic_store(&g_thread_running, 1);
}

/* ------------------------------------------------------------ handler */

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *p = zh_request_path(req);
  if (strcmp(p, "/pipe-len") == 0) respond_pipe(req, PIPE_LEN, PIPE_LEN);
  else if (strcmp(p, "/pipe-eof") == 0) respond_pipe(req, -1, PIPE_EOF_LEN);
  else if (strcmp(p, "/pipe-short") == 0) respond_pipe(req, 100000, 5000);
  else if (strcmp(p, "/cb") == 0) respond_cb(req, 0, -1);
  else if (strcmp(p, "/cb-file") == 0) respond_cb(req, 1, 500000);
  else if (strcmp(p, "/cb-error") == 0) respond_cb(req, 2, -1);
  else if (strcmp(p, "/stream") == 0) respond_stream(req, 0);
  else if (strcmp(p, "/stream-abort") == 0) respond_stream(req, 1);
  else CHECK_OK(zh_request_reject(req, 404));
}

static void join_thread(void) {
  if (atomic_exchange(&g_thread_running, 0)) CHECK(pthread_join(g_thread, NULL) == 0);
}

static void expect_fd_closed(void) {
  int fd = atomic_load(&g_fd_to_check);
  if (fd < 0) return;
  ZT_WAIT_UNTIL(zt_fd_closed(fd), 5000);
  CHECK_MSG(zt_fd_closed(fd), "ZH_FD_CLOSE source fd not closed");
  atomic_store(&g_fd_to_check, -1);
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  pthread_t helper;
  CHECK(pthread_create(&helper, NULL, ready_helper, NULL) == 0);
  zt_conn *c = zt_connect(port);
  zt_response r;

  /* pipe, known length: Content-Length, spliced */
  zt_get(c, "/pipe-len", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.has_content_length && !r.chunked);
  CHECK_EQ_INT(r.body_len, PIPE_LEN);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  join_thread();
  expect_fd_closed();
  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("after /pipe-len", &st);
  CHECK(st.bytes_splice + st.bytes_copy >= PIPE_LEN);

  /* pipe until EOF: chunked */
  zt_get(c, "/pipe-eof", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked);
  CHECK_EQ_INT(r.body_len, PIPE_EOF_LEN);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  join_thread();
  expect_fd_closed();

  /* callback: bytes, with ZH_PENDING woken by zh_source_ready from another thread */
  zt_get(c, "/cb", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked);
  CHECK_EQ_INT(r.body_len, g_cb.produced);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  ZT_WAIT_UNTIL(atomic_load(&g_cb.releases) == 1, 3000);
  CHECK_EQ_INT(atomic_load(&g_cb.releases), 1);
  fprintf(stderr, "/cb: %zu bytes, %d polls, %d PENDING episodes, %d re-polls while pending, %d ready calls\n",
          g_cb.produced, g_cb.polls, g_cb.episodes, g_cb.spurious, atomic_load(&g_cb.ready_done));
  CHECK(g_cb.episodes >= 5);
  CHECK(atomic_load(&g_cb.ready_done) >= g_cb.episodes);
  CHECK_MSG(g_cb.spurious < 20 * g_cb.episodes, "poll_fn called in a loop while it said ZH_PENDING");

  /* callback with a known length, mixing bytes and file pieces */
  zt_get(c, "/cb-file", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.has_content_length);
  CHECK_EQ_INT(r.content_length, 500000);
  CHECK_EQ_INT(r.body_len, 500000);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  ZT_WAIT_UNTIL(atomic_load(&g_cb.releases) == 1, 3000);
  CHECK_EQ_INT(atomic_load(&g_cb.releases), 1);

  /* stream from a thread: bytes, lent, file, pipe, trailer */
  zt_get(c, "/stream", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked);
  CHECK_STREQ(zt_header(&r, "X-Streamed"), "yes");
  {
    size_t want_len = 4 + 6 + strlen(LENT) + 10000 + 4096 + 4;
    CHECK_EQ_INT(r.body_len, want_len);
    size_t o = 0;
    CHECK(memcmp(r.body + o, "pre|part1|", 10) == 0);
    o += 10;
    CHECK(memcmp(r.body + o, LENT, strlen(LENT)) == 0);
    o += strlen(LENT);
    CHECK_EQ_INT(zt_check_pattern(r.body + o, 10000, 777), -1);
    o += 10000;
    CHECK_EQ_INT(zt_check_pattern(r.body + o, 4096, 5), -1);
    o += 4096;
    CHECK(memcmp(r.body + o, "|end", 4) == 0);
  }
  zt_response_free(&r);
  join_thread();
  expect_fd_closed();
  ZT_WAIT_UNTIL(atomic_load(&g_lent_releases) == 1, 3000);
  CHECK_EQ_INT(atomic_load(&g_lent_releases), 1);

  /* still in sync after all that */
  zt_get(c, "/nothing", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);
  zt_close(c);

  /* HTTP/1.0 + unknown length: close-delimited */
  c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /cb HTTP/1.0\r\n\r\n") == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK(!r.chunked && !r.has_content_length);
  CHECK_EQ_INT(r.body_len, g_cb.produced);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  zt_close(c);
  ZT_WAIT_UNTIL(atomic_load(&g_cb.releases) == 1, 3000);
  CHECK_EQ_INT(atomic_load(&g_cb.releases), 1);

  /* failures: each aborts its connection, no hang, everything released */
  static const char *const failing[] = {"/pipe-short", "/cb-error", "/stream-abort"};
  for (size_t i = 0; i < 3; i++) {
    c = zt_connect(port);
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", failing[i]);
    CHECK(zt_send_str(c, req) == 0);
    int rc = zt_read_response(c, &r, 0);
    fprintf(stderr, "%s: rc %d status %d got %zu eof %d timeout %d\n", failing[i], rc, r.status,
            r.body_len, r.eof, r.timed_out);
    CHECK_MSG(!r.timed_out, "hung instead of aborting");
    CHECK_MSG(rc != 0 && r.eof, "failed body source did not abort the connection");
    zt_response_free(&r);
    zt_close(c);
    join_thread();
    expect_fd_closed();
    if (i == 1) {
      ZT_WAIT_UNTIL(atomic_load(&g_cb.releases) == 1, 3000);
      CHECK_EQ_INT(atomic_load(&g_cb.releases), 1);
    }
  }

  atomic_store(&g_helper_stop, 1);
  CHECK(pthread_join(helper, NULL) == 0);
  zt_stats(e, &st);
  zt_print_stats("stream_sources", &st);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  CHECK_EQ_INT(atomic_load(&g_lent_releases), 1);
  close(g_file_fd);
  printf("stream_sources: ok\n");
  return 0;
}
