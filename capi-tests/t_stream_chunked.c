/* Streaming responses (zh_respond_stream + zh_stream_*): a producer thread adds copied bytes,
 * lent memory (release counted), a file region (sendfile counted) and ends with 2 trailers.
 *
 *   - HTTP/1.1: chunked; the exact body and both trailers arrive (parsed from the raw bytes:
 *     testutil's client drops trailers); keep-alive works after it.
 *   - HTTP/1.0: the same body close-delimited, no framing bytes, no trailers.
 *   - the lent release runs exactly once per response; the file region went by sendfile.
 *   - an invalid trailer (name or value) is ZH_ERR_HEADER and the handle stays usable.
 *   - NULL arguments are ZH_ERR_NULL everywhere (nothing taken).
 *   - zh_stream_abort: the client sees EOF and no final 0-chunk.
 *   - the client vanishes: zh_stream_is_closed turns 1, adds say ZH_ERR_CLOSED (lent memory
 *     not taken), zh_stream_end says ZH_ERR_CLOSED and still frees the handle (ASan/LSan).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "testutil.h"

#define FILE_SIZE 100000
#define FILE_OFF 1000
#define FILE_LEN 50000
#define LENT_LEN 3000

static int g_file_fd = -1;
static uint8_t g_lent[LENT_LEN];
static atomic_int g_lent_releases;
static atomic_int g_other_releases;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_producer;
static int g_have_producer;
static atomic_int g_producer_done;
static atomic_int g_file_dup = -1;

static zh_stream *_Atomic g_vanish_stream;

static const char *const TRAILER_NAMES[2] = {"X-Checksum", "X-Count"};
static const char *const TRAILER_VALUES[2] = {"abc123", "5"};

/* ------------------------------------------------------------------ raw response reader */

typedef struct {
  zt_conn *c;
  uint8_t buf[16384];
  size_t pos, len;
} rd_t;

typedef struct {
  int status, minor;
  int nh, nt;
  char *hn[64], *hv[64];
  char *tn[16], *tv[16];
  uint8_t *body;
  size_t body_len, body_cap;
  int chunked;
  int complete;        /* the whole message per its framing (incl. the last chunk) */
  int saw_last_chunk;  /* a 0-size chunk arrived */
} raw_resp;

static long rd_fill(rd_t *r) {
  if (r->pos == r->len) {
    r->pos = r->len = 0;
  } else if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len == sizeof r->buf) return -1;
  long n = zt_recv_some(r->c, r->buf + r->len, sizeof r->buf - r->len);
  if (n > 0) r->len += (size_t)n;
  return n;
}

/* A CRLF-terminated line without its CRLF (malloc'd), or NULL on EOF / error. */
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

static void body_add(raw_resp *p, const uint8_t *d, size_t n) {
  if (p->body_len + n + 1 > p->body_cap) {
    size_t nc = p->body_cap ? p->body_cap : 4096;
    while (nc < p->body_len + n + 1) nc *= 2;
    p->body = realloc(p->body, nc);
    CHECK(p->body != NULL);
    p->body_cap = nc;
  }
  memcpy(p->body + p->body_len, d, n);
  p->body_len += n;
  p->body[p->body_len] = 0;
}

/* Appends up to n body bytes; returns how many arrived before EOF. */
static size_t rd_body(rd_t *r, raw_resp *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    if (r->pos == r->len && rd_fill(r) <= 0) break;
    size_t k = r->len - r->pos;
    if (k > n - got) k = n - got;
    body_add(p, r->buf + r->pos, k);
    r->pos += k;
    got += k;
  }
  return got;
}

static void split_field(char *line, char **name, char **value) {
  char *colon = strchr(line, ':');
  CHECK_MSG(colon != NULL, "field line without colon");
  *colon = 0;
  char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  *name = strdup(line);
  *value = strdup(v);
  CHECK(*name && *value);
}

static const char *raw_header(const raw_resp *p, const char *name) {
  for (int i = 0; i < p->nh; i++)
    if (strcasecmp(p->hn[i], name) == 0) return p->hv[i];
  return NULL;
}

static const char *raw_trailer(const raw_resp *p, const char *name) {
  for (int i = 0; i < p->nt; i++)
    if (strcasecmp(p->tn[i], name) == 0) return p->tv[i];
  return NULL;
}

/* Reads one response (status line, headers, body by its framing, trailers). 0 if complete. */
static int raw_read(rd_t *r, raw_resp *p) {
  memset(p, 0, sizeof *p);
  char *sl = rd_line(r);
  if (!sl) return -1;
  int major = 0;
  CHECK_MSG(sscanf(sl, "HTTP/%d.%d %d", &major, &p->minor, &p->status) == 3, sl);
  free(sl);
  for (;;) {
    char *h = rd_line(r);
    if (!h) return -1;
    if (!h[0]) {
      free(h);
      break;
    }
    CHECK(p->nh < 64);
    split_field(h, &p->hn[p->nh], &p->hv[p->nh]);
    p->nh++;
    free(h);
  }
  const char *te = raw_header(p, "Transfer-Encoding");
  const char *cl = raw_header(p, "Content-Length");
  body_add(p, (const uint8_t *)"", 0);
  if (te) {
    CHECK_MSG(strcasecmp(te, "chunked") == 0, te);
    CHECK_MSG(cl == NULL, "both Transfer-Encoding and Content-Length");
    p->chunked = 1;
    for (;;) {
      char *szl = rd_line(r);
      if (!szl) return -1;
      char *end = NULL;
      unsigned long long n = strtoull(szl, &end, 16);
      CHECK_MSG(end != szl && (*end == 0 || *end == ';'), "bad chunk-size line");
      free(szl);
      if (n == 0) {
        p->saw_last_chunk = 1;
        for (;;) {
          char *t = rd_line(r);
          if (!t) return -1;
          if (!t[0]) {
            free(t);
            break;
          }
          CHECK(p->nt < 16);
          split_field(t, &p->tn[p->nt], &p->tv[p->nt]);
          p->nt++;
          free(t);
        }
        p->complete = 1;
        return 0;
      }
      CHECK_MSG(n < (1ull << 31), "absurd chunk size");
      if (rd_body(r, p, (size_t)n) < n) return -1;
      char *crlf = rd_line(r);
      if (!crlf) return -1;
      CHECK_MSG(crlf[0] == 0, "chunk data not followed by CRLF");
      free(crlf);
    }
  } else if (cl) {
    size_t n = (size_t)strtoull(cl, NULL, 10);
    if (rd_body(r, p, n) < n) return -1;
    p->complete = 1;
    return 0;
  } else {
    rd_body(r, p, SIZE_MAX);
    p->complete = r->c->eof;
    return p->complete ? 0 : -1;
  }
}

static void raw_free(raw_resp *p) {
  for (int i = 0; i < p->nh; i++) free(p->hn[i]), free(p->hv[i]);
  for (int i = 0; i < p->nt; i++) free(p->tn[i]), free(p->tv[i]);
  free(p->body);
  memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ server side */

static void lent_release(void *ud) {
  CHECK(ud == (void *)g_lent);
  atomic_fetch_add(&g_lent_releases, 1);
}

static void other_release(void *ud) {
  (void)ud;
  atomic_fetch_add(&g_other_releases, 1);
}

/* Body: "head;" + "bytes;" + lent + file[FILE_OFF, +FILE_LEN) + ";tail" + "!" */
static void *producer(void *arg) {
  zh_stream *s = arg;
  zt_sleep_ms(5); /* let the head go out first */
  CHECK(!zh_stream_is_closed(s));
  CHECK_OK(zh_stream_add_bytes(s, "bytes;", 6));
  int before = atomic_load(&g_lent_releases);
  CHECK_OK(zh_stream_add_lent(s, g_lent, LENT_LEN, lent_release, g_lent));
  int fd = zt_dup(g_file_fd);
  atomic_store(&g_file_dup, fd);
  CHECK_OK(zh_stream_add_file(s, fd, FILE_OFF, FILE_LEN, ZH_FD_CLOSE));
  zt_sleep_ms(5);
  CHECK_OK(zh_stream_add_bytes(s, ";tail", 5));
  CHECK(atomic_load(&g_lent_releases) <= before + 1);

  /* invalid trailers: ZH_ERR_HEADER, nothing happened, the handle stays usable */
  const char *bad_names[2] = {"X-Good", "bad name"};
  const char *bad_values[2] = {"1", "2"};
  CHECK_RES(zh_stream_end(s, bad_names, bad_values, 2), ZH_ERR_HEADER);
  const char *nl_names[1] = {"X-Split"};
  const char *nl_values[1] = {"a\r\nInjected: 1"};
  CHECK_RES(zh_stream_end(s, nl_names, nl_values, 1), ZH_ERR_HEADER);
  const char *empty_names[1] = {""};
  CHECK_RES(zh_stream_end(s, empty_names, bad_values, 1), ZH_ERR_HEADER);
  /* NULL arrays with n > 0, and a NULL element: ZH_ERR_NULL, still usable */
  CHECK_RES(zh_stream_end(s, NULL, TRAILER_VALUES, 2), ZH_ERR_NULL);
  CHECK_RES(zh_stream_end(s, TRAILER_NAMES, NULL, 2), ZH_ERR_NULL);
  const char *null_elem[2] = {"X-A", NULL};
  CHECK_RES(zh_stream_end(s, TRAILER_NAMES, null_elem, 2), ZH_ERR_NULL);
  CHECK(!zh_stream_is_closed(s));
  CHECK_OK(zh_stream_add_bytes(s, "!", 1));

  CHECK_OK(zh_stream_end(s, TRAILER_NAMES, TRAILER_VALUES, 2));
  atomic_store(&g_producer_done, 1);
  return NULL;
}

static void stream_handler(zh_request *req) {
  zh_response *head = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_response_add_header(head, "X-Stream", "1"));
  CHECK_OK(zh_response_add_bytes(head, "head;", 5));
  zh_stream *s = NULL;
  CHECK_OK(zh_respond_stream(req, head, &s));
  CHECK(s != NULL);
  pthread_mutex_lock(&g_mu);
  CHECK(!g_have_producer);
  CHECK(pthread_create(&g_producer, NULL, producer, s) == 0);
  g_have_producer = 1;
  pthread_mutex_unlock(&g_mu);
}

static void join_producer(void) {
  ZT_WAIT_UNTIL(atomic_load(&g_producer_done), 5000);
  CHECK_MSG(atomic_load(&g_producer_done), "producer thread did not finish");
  pthread_mutex_lock(&g_mu);
  CHECK(g_have_producer);
  CHECK(pthread_join(g_producer, NULL) == 0);
  g_have_producer = 0;
  pthread_mutex_unlock(&g_mu);
  atomic_store(&g_producer_done, 0);
}

/* Every NULL argument is ZH_ERR_NULL and takes nothing; then a small valid stream. */
static void null_handler(zh_request *req) {
  zh_response *head = NULL;
  zh_stream *s = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_RES(zh_respond_stream(NULL, head, &s), ZH_ERR_NULL); /* head taken (freed) anyway */
  CHECK(s == NULL);
  CHECK_RES(zh_respond_stream(req, NULL, &s), ZH_ERR_NULL); /* req not handed back */
  CHECK_OK(zh_response_new(200, &head));
  CHECK_RES(zh_respond_stream(req, head, NULL), ZH_ERR_NULL); /* head taken, req kept */
  CHECK_STREQ(zh_request_path(req), "/null"); /* still owned */

  CHECK_RES(zh_stream_add_bytes(NULL, "a", 1), ZH_ERR_NULL);
  CHECK_RES(zh_stream_add_lent(NULL, g_lent, 1, other_release, NULL), ZH_ERR_NULL);
  CHECK_RES(zh_stream_add_file(NULL, g_file_fd, 0, 10, 0), ZH_ERR_NULL);
  CHECK_RES(zh_stream_add_fd(NULL, 0, -1, 0), ZH_ERR_NULL);
  CHECK_RES(zh_stream_on_drain(NULL, 10, other_release, NULL), ZH_ERR_NULL);
  CHECK_RES(zh_stream_end(NULL, NULL, NULL, 0), ZH_ERR_NULL);
  CHECK_EQ_INT(zh_stream_queued(NULL), 0);
  CHECK(zh_stream_is_closed(NULL));
  zh_stream_abort(NULL);

  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_respond_stream(req, head, &s));
  CHECK(s != NULL);
  CHECK_RES(zh_stream_add_bytes(s, NULL, 3), ZH_ERR_NULL);
  CHECK_OK(zh_stream_add_bytes(s, NULL, 0)); /* empty: allowed, nothing queued */
  CHECK_RES(zh_stream_add_lent(s, NULL, 4, other_release, NULL), ZH_ERR_NULL);
  CHECK_RES(zh_stream_on_drain(s, 10, NULL, NULL), ZH_ERR_NULL);
  /* invalid, not NULL: a pipe is no file region, a regular file is no fd source */
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  CHECK_RES(zh_stream_add_file(s, p[0], 0, 10, ZH_FD_CLOSE), ZH_ERR_INVALID);
  CHECK_RES(zh_stream_add_fd(s, g_file_fd, -1, ZH_FD_CLOSE), ZH_ERR_INVALID);
  CHECK_RES(zh_stream_add_file(s, g_file_fd, FILE_SIZE - 5, 10, 0), ZH_ERR_RANGE);
  CHECK_RES(zh_stream_add_file(s, g_file_fd, 0, 10, 0x80), ZH_ERR_INVALID);
  CHECK(!zt_fd_closed(p[0]) && !zt_fd_closed(g_file_fd)); /* nothing taken on error */
  close(p[0]);
  close(p[1]);
  CHECK_OK(zh_stream_add_bytes(s, "null-ok", 7));
  CHECK_OK(zh_stream_end(s, NULL, NULL, 0));
  CHECK_EQ_INT(atomic_load(&g_other_releases), 0); /* no release for refused lent memory */
}

static void abort_handler(zh_request *req) {
  zh_response *head = NULL;
  zh_stream *s = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_respond_stream(req, head, &s));
  CHECK_OK(zh_stream_add_bytes(s, "partial", 7));
  zh_stream_abort(s);
}

static void vanish_handler(zh_request *req) {
  zh_response *head = NULL;
  zh_stream *s = NULL;
  CHECK_OK(zh_response_new(200, &head));
  CHECK_OK(zh_respond_stream(req, head, &s));
  CHECK_OK(zh_stream_add_bytes(s, "first", 5));
  atomic_store(&g_vanish_stream, s);
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  if (strcmp(path, "/stream") == 0) stream_handler(req);
  else if (strcmp(path, "/null") == 0) null_handler(req);
  else if (strcmp(path, "/abort") == 0) abort_handler(req);
  else if (strcmp(path, "/vanish") == 0) vanish_handler(req);
  else CHECK_OK(zh_request_reject(req, 404));
}

/* ------------------------------------------------------------------ client side */

static uint8_t *g_expected;
static size_t g_expected_len;

static void build_expected(void) {
  g_expected_len = 5 + 6 + LENT_LEN + FILE_LEN + 5 + 1;
  g_expected = malloc(g_expected_len);
  CHECK(g_expected != NULL);
  size_t o = 0;
  memcpy(g_expected + o, "head;bytes;", 11);
  o += 11;
  memcpy(g_expected + o, g_lent, LENT_LEN);
  o += LENT_LEN;
  zt_fill_pattern(g_expected + o, FILE_LEN, FILE_OFF);
  o += FILE_LEN;
  memcpy(g_expected + o, ";tail!", 6);
  o += 6;
  CHECK_EQ_INT(o, g_expected_len);
}

static void check_body(const uint8_t *got, size_t len) {
  CHECK_EQ_INT(len, g_expected_len);
  for (size_t i = 0; i < len; i++) {
    if (got[i] != g_expected[i]) {
      fprintf(stderr, "body mismatch at %zu: got 0x%02x want 0x%02x\n", i, got[i], g_expected[i]);
      CHECK(0);
    }
  }
}

static void wait_file_dup_closed(void) {
  int fd = atomic_load(&g_file_dup);
  CHECK(fd >= 0);
  ZT_WAIT_UNTIL(zt_fd_closed(fd), 5000);
  CHECK_MSG(zt_fd_closed(fd), "ZH_FD_CLOSE file region fd not closed");
  atomic_store(&g_file_dup, -1);
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  for (size_t i = 0; i < LENT_LEN; i++) g_lent[i] = (uint8_t)('A' + (i * 7) % 26);
  build_expected();

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 2));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  zh_stats st0, st;
  zt_stats(e, &st0);

  /* 1. HTTP/1.1, twice on one keep-alive connection: chunked, exact body, 2 trailers */
  zt_conn *c = zt_connect(port);
  rd_t *rd = calloc(1, sizeof *rd);
  CHECK(rd != NULL);
  rd->c = c;
  for (int round = 0; round < 2; round++) {
    CHECK(zt_send_str(c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    raw_resp p;
    CHECK_EQ_INT(raw_read(rd, &p), 0);
    CHECK_EQ_INT(p.status, 200);
    CHECK_EQ_INT(p.minor, 1);
    CHECK(p.chunked && p.saw_last_chunk && p.complete);
    CHECK_STREQ(raw_header(&p, "X-Stream"), "1");
    CHECK(raw_header(&p, "Content-Length") == NULL);
    check_body(p.body, p.body_len);
    CHECK_EQ_INT(p.nt, 2);
    CHECK_STREQ(raw_trailer(&p, "X-Checksum"), "abc123");
    CHECK_STREQ(raw_trailer(&p, "X-Count"), "5");
    CHECK(raw_trailer(&p, "X-Good") == NULL); /* the refused end sent nothing */
    raw_free(&p);
    join_producer();
    ZT_WAIT_UNTIL(atomic_load(&g_lent_releases) == round + 1, 5000);
    CHECK_EQ_INT(atomic_load(&g_lent_releases), round + 1);
    wait_file_dup_closed();
  }
  free(rd);
  zt_close(c);
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.bytes_sendfile - st0.bytes_sendfile >= 2 * FILE_LEN), 3000);
  zt_print_stats("after 2 x HTTP/1.1 stream", &st);
  CHECK_EQ_INT(st.bytes_sendfile - st0.bytes_sendfile, 2 * FILE_LEN);
  CHECK(st.syscalls_sendfile > st0.syscalls_sendfile);
  CHECK_EQ_INT(st.bytes_copy - st0.bytes_copy, 0);

  /* 2. HTTP/1.0: same body, close-delimited, no chunk framing, no trailers */
  c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /stream HTTP/1.0\r\n\r\n") == 0);
  zt_response r;
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK(zt_header(&r, "Transfer-Encoding") == NULL);
  CHECK(zt_header(&r, "Content-Length") == NULL);
  CHECK(!r.chunked);
  check_body(r.body, r.body_len); /* exact: no "0\r\n", no trailer text */
  zt_response_free(&r);
  zt_close(c);
  join_producer();
  ZT_WAIT_UNTIL(atomic_load(&g_lent_releases) == 3, 5000);
  CHECK_EQ_INT(atomic_load(&g_lent_releases), 3);
  wait_file_dup_closed();
  zt_stats(e, &st);
  CHECK_EQ_INT(st.bytes_sendfile - st0.bytes_sendfile, 3 * FILE_LEN);

  /* 3. NULL arguments */
  c = zt_connect(port);
  zt_get(c, "/null", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked);
  CHECK_EQ_INT(r.body_len, 7);
  CHECK(memcmp(r.body, "null-ok", 7) == 0);
  zt_response_free(&r);

  /* 4. zh_stream_abort: EOF, no final chunk */
  CHECK(zt_send_str(c, "GET /abort HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
  rd = calloc(1, sizeof *rd);
  CHECK(rd != NULL);
  rd->c = c;
  raw_resp p;
  CHECK_EQ_INT(raw_read(rd, &p), -1);
  CHECK_EQ_INT(p.status, 200);
  CHECK_MSG(!p.saw_last_chunk, "an aborted stream must not end with a 0-size chunk");
  CHECK(!p.complete);
  CHECK(p.body_len <= 7);
  CHECK(c->eof);
  raw_free(&p);
  free(rd);
  zt_close(c);

  /* 5. the client vanishes while the stream is open */
  c = zt_connect(port);
  CHECK(zt_send_str(c, "GET /vanish HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
  ZT_WAIT_UNTIL(atomic_load(&g_vanish_stream) != NULL, 5000);
  zh_stream *vs = atomic_load(&g_vanish_stream);
  CHECK(vs != NULL);
  CHECK_MSG(zt_read_head_only(c, &r, 5000) == 0, "no head for /vanish");
  zt_response_free(&r);
  CHECK(!zh_stream_is_closed(vs));
  zt_abort(c);
  /* Noticed without any further write: the engine watches the socket while a stream waits
   * for its producer (an RST, so no graceful-FIN ambiguity). */
  double t0 = zt_now_ms();
  ZT_WAIT_UNTIL(zh_stream_is_closed(vs), 3000);
  CHECK_MSG(zh_stream_is_closed(vs), "a vanished (RST) client was not noticed while the stream idled");
  fprintf(stderr, "vanished client noticed after %.0f ms\n", zt_now_ms() - t0);
  CHECK_RES(zh_stream_add_bytes(vs, "late", 4), ZH_ERR_CLOSED);
  CHECK_RES(zh_stream_add_lent(vs, g_lent, 10, other_release, NULL), ZH_ERR_CLOSED);
  int fd = zt_dup(g_file_fd);
  CHECK_RES(zh_stream_add_file(vs, fd, 0, 10, ZH_FD_CLOSE), ZH_ERR_CLOSED);
  CHECK_MSG(!zt_fd_closed(fd), "refused ZH_FD_CLOSE fd was closed (nothing should be taken)");
  close(fd);
  CHECK(zh_stream_queued(vs) == 0);
  CHECK_RES(zh_stream_end(vs, TRAILER_NAMES, TRAILER_VALUES, 2), ZH_ERR_CLOSED); /* frees vs */
  zt_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&g_other_releases), 0);

  /* the engine still serves */
  c = zt_connect(port);
  zt_get(c, "/nothing", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);
  zt_close(c);

  zt_sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&g_lent_releases), 3); /* never twice */
  zt_stats(e, &st);
  zt_print_stats("end", &st);
  CHECK(zh_engine_shutdown(e, 1000) == ZH_OK);
  zh_engine_free(e);
  close(g_file_fd);
  free(g_expected);
  printf("t_stream_chunked: ok\n");
  return 0;
}
