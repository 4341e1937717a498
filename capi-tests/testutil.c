#define _GNU_SOURCE
#define ZT_NO_ENGINE_WRAP /* this file calls the real zh_engine_shutdown / zh_engine_free */
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ checks */

static void zt_die(void) {
  fflush(stdout);
  fflush(stderr);
  _Exit(1);
}

void zt_fail(const char *file, int line, const char *expr, const char *detail) {
  fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr, detail ? " -- " : "",
          detail ? detail : "");
  zt_die();
}

void zt_fail_int(const char *file, int line, const char *a_expr, const char *b_expr,
                 long long a, long long b) {
  fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s  (%lld vs %lld)\n", file, line, a_expr,
          b_expr, a, b);
  zt_die();
}

void zt_fail_res(const char *file, int line, const char *expr, zh_result got, zh_result want) {
  const char *gs = zh_result_str(got);
  const char *ws = zh_result_str(want);
  fprintf(stderr, "%s:%d: CHECK result failed: %s\n    got  %u (%s)\n    want %u (%s)\n", file,
          line, expr, (unsigned)got, gs ? gs : "(null)", (unsigned)want, ws ? ws : "(null)");
  zt_die();
}

int zt_streq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

void zt_fail_str(const char *file, int line, const char *a_expr, const char *b_expr,
                 const char *a, const char *b) {
  fprintf(stderr, "%s:%d: CHECK_STREQ failed: %s == %s\n    left:  %s%s%s\n    right: %s%s%s\n",
          file, line, a_expr, b_expr, a ? "\"" : "", a ? a : "NULL", a ? "\"" : "",
          b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
  zt_die();
}

/* ------------------------------------------------------------------ time */

double zt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

double zt_time_scale(void) {
  const char *v = getenv("ZH_UNDER_VALGRIND");
  return (v && *v && strcmp(v, "0") != 0) ? 10.0 : 1.0;
}

void zt_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------ client */

static zt_conn *try_connect(uint16_t port, int v6) {
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  struct timeval tv = {(time_t)(10 * zt_time_scale()), 0};
  CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
  int one = 1;
  CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  struct sockaddr_in sa;
  struct sockaddr_in6 sa6;
  memset(&sa, 0, sizeof sa);
  memset(&sa6, 0, sizeof sa6);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa6.sin6_family = AF_INET6;
  sa6.sin6_port = htons(port);
  sa6.sin6_addr = in6addr_loopback;
  int rc = v6 ? connect(fd, (struct sockaddr *)&sa6, sizeof sa6)
              : connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  zt_conn *c = calloc(1, sizeof *c);
  CHECK(c != NULL);
  c->fd = fd;
  c->cap = 64 * 1024;
  c->buf = malloc(c->cap);
  CHECK(c->buf != NULL);
  return c;
}

zt_conn *zt_try_connect(uint16_t port) { return try_connect(port, 0); }
zt_conn *zt_try_connect6(uint16_t port) { return try_connect(port, 1); }

zt_conn *zt_connect(uint16_t port) {
  zt_conn *c = zt_try_connect(port);
  if (!c) {
    fprintf(stderr, "connect to 127.0.0.1:%u failed: %s\n", (unsigned)port, strerror(errno));
    CHECK(c != NULL);
  }
  return c;
}

void zt_close(zt_conn *c) {
  if (!c) return;
  close(c->fd);
  free(c->buf);
  free(c);
}

void zt_abort(zt_conn *c) {
  if (!c) return;
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  zt_close(c);
}

uint16_t zt_local_port(const zt_conn *c) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK(getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int zt_send_all(zt_conn *c, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int zt_send_str(zt_conn *c, const char *s) { return zt_send_all(c, s, strlen(s)); }

/* Reads more bytes into the buffer. Returns >0 bytes read, 0 on EOF, -1 on error/timeout. */
static long conn_fill(zt_conn *c) {
  if (c->pos > 0 && c->pos == c->len) c->pos = c->len = 0;
  if (c->len == c->cap) {
    if (c->pos > 0) {
      memmove(c->buf, c->buf + c->pos, c->len - c->pos);
      c->len -= c->pos;
      c->pos = 0;
    } else {
      c->cap *= 2;
      c->buf = realloc(c->buf, c->cap);
      CHECK(c->buf != NULL);
    }
  }
  for (;;) {
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      c->err = errno;
      if (errno == ECONNRESET) c->eof = 1;
      return -1;
    }
    if (n == 0) {
      c->eof = 1;
      return 0;
    }
    c->len += (size_t)n;
    return (long)n;
  }
}

/* Reads one CRLF-terminated line (without CRLF) into a malloc'd string; NULL on EOF/error. */
static char *conn_line(zt_conn *c, size_t max) {
  size_t scanned = 0;
  for (;;) {
    size_t avail = c->len - c->pos;
    for (size_t i = scanned; i + 1 < avail; i++) {
      if (c->buf[c->pos + i] == '\r' && c->buf[c->pos + i + 1] == '\n') {
        char *s = malloc(i + 1);
        CHECK(s != NULL);
        memcpy(s, c->buf + c->pos, i);
        s[i] = 0;
        c->pos += i + 2;
        return s;
      }
    }
    scanned = avail > 0 ? avail - 1 : 0;
    if (avail > max) return NULL;
    if (conn_fill(c) <= 0) return NULL;
  }
}

/* Reads exactly n bytes into dst. Returns number of bytes read (< n on EOF/error). */
static size_t conn_read_exact(zt_conn *c, uint8_t *dst, size_t n) {
  size_t got = 0;
  size_t avail = c->len - c->pos;
  if (avail > 0) {
    size_t k = avail < n ? avail : n;
    memcpy(dst, c->buf + c->pos, k);
    c->pos += k;
    got += k;
  }
  while (got < n) {
    ssize_t r = recv(c->fd, dst + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      c->err = errno;
      if (errno == ECONNRESET) c->eof = 1;
      break;
    }
    if (r == 0) {
      c->eof = 1;
      break;
    }
    got += (size_t)r;
  }
  return got;
}

static void body_append(zt_response *r, size_t *cap, const uint8_t *p, size_t n) {
  if (r->body_len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 4096;
    while (nc < r->body_len + n + 1) nc *= 2;
    r->body = realloc(r->body, nc);
    CHECK(r->body != NULL);
    *cap = nc;
  }
  memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  r->body[r->body_len] = 0;
}

static void response_reset(zt_response *r) {
  zt_response_free(r);
  memset(r, 0, sizeof *r);
}

static void mark_incomplete(zt_conn *c, zt_response *r) {
  if (c->err == EAGAIN || c->err == EWOULDBLOCK) {
    r->timed_out = 1;
  } else {
    r->eof = 1;
  }
}

static int read_head(zt_conn *c, zt_response *r) {
  char *line = conn_line(c, 64 * 1024);
  if (!line) return -1;
  int major = 0, minor = 0, status = 0, off = 0;
  if (sscanf(line, "HTTP/%d.%d %d%n", &major, &minor, &status, &off) < 3 || major != 1) {
    fprintf(stderr, "zt_read_response: bad status line: \"%s\"\n", line);
    free(line);
    CHECK_MSG(0, "malformed status line");
  }
  r->status = status;
  r->version_minor = minor;
  const char *reason = line + off;
  while (*reason == ' ') reason++;
  r->reason = strdup(reason);
  free(line);
  size_t hcap = 0;
  for (;;) {
    char *h = conn_line(c, 64 * 1024);
    if (!h) return -1;
    if (h[0] == 0) {
      free(h);
      break;
    }
    char *colon = strchr(h, ':');
    if (!colon) {
      fprintf(stderr, "zt_read_response: bad header line: \"%s\"\n", h);
      free(h);
      CHECK_MSG(0, "malformed header line");
    }
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = 0;
    if (r->nheaders == hcap) {
      hcap = hcap ? hcap * 2 : 16;
      r->names = realloc(r->names, hcap * sizeof(char *));
      r->values = realloc(r->values, hcap * sizeof(char *));
      CHECK(r->names && r->values);
    }
    r->names[r->nheaders] = strdup(h);
    r->values[r->nheaders] = strdup(v);
    r->nheaders++;
    free(h);
  }
  r->head_complete = 1;
  const char *te = zt_header(r, "Transfer-Encoding");
  const char *cl = zt_header(r, "Content-Length");
  if (te && strcasestr(te, "chunked")) r->chunked = 1;
  if (cl) {
    char *end = NULL;
    r->has_content_length = 1;
    r->content_length = strtoull(cl, &end, 10);
    CHECK_MSG(end && *end == 0 && end != cl, "unparsable Content-Length");
  }
  return 0;
}

int zt_read_response(zt_conn *c, zt_response *r, int is_head) {
  memset(r, 0, sizeof *r);
  double t0 = zt_now_ms();
  c->err = 0;
  int interim = 0;
  for (;;) {
    if (read_head(c, r) != 0) {
      r->interim = interim;
      mark_incomplete(c, r);
      r->elapsed_ms = zt_now_ms() - t0;
      return -1;
    }
    if (r->status >= 100 && r->status < 200 && r->status != 101) {
      response_reset(r);
      interim++;
      continue;
    }
    break;
  }
  r->interim = interim;
  size_t cap = 0;
  int ok = 1;
  if (is_head || r->status == 204 || r->status == 304) {
    /* no body */
  } else if (r->chunked) {
    for (;;) {
      char *sl = conn_line(c, 4096);
      if (!sl) {
        ok = 0;
        break;
      }
      char *end = NULL;
      unsigned long long n = strtoull(sl, &end, 16);
      int valid = end != sl && (*end == 0 || *end == ';' || *end == ' ');
      free(sl);
      CHECK_MSG(valid, "malformed chunk-size line");
      if (n == 0) {
        /* trailers until empty line */
        for (;;) {
          char *t = conn_line(c, 64 * 1024);
          if (!t) {
            ok = 0;
            break;
          }
          int empty = t[0] == 0;
          free(t);
          if (empty) break;
        }
        break;
      }
      CHECK_MSG(n < (1ULL << 32), "absurd chunk size");
      size_t need = r->body_len + (size_t)n + 1;
      if (need > cap) {
        size_t nc = cap ? cap : 4096;
        while (nc < need) nc *= 2;
        r->body = realloc(r->body, nc);
        CHECK(r->body != NULL);
        cap = nc;
      }
      size_t got = conn_read_exact(c, r->body + r->body_len, (size_t)n);
      r->body_len += got;
      r->body[r->body_len] = 0;
      if (got < n) {
        ok = 0;
        break;
      }
      char *crlf = conn_line(c, 2);
      if (!crlf) {
        ok = 0;
        break;
      }
      int empty = crlf[0] == 0;
      free(crlf);
      CHECK_MSG(empty, "chunk data not followed by CRLF");
    }
  } else if (r->has_content_length) {
    CHECK_MSG(r->content_length <= (1ULL << 30), "Content-Length above 1 GiB");
    size_t n = (size_t)r->content_length;
    r->body = malloc(n + 1);
    CHECK(r->body != NULL);
    r->body_len = conn_read_exact(c, r->body, n);
    r->body[r->body_len] = 0;
    if (r->body_len < n) ok = 0;
  } else {
    /* read to close */
    for (;;) {
      size_t avail = c->len - c->pos;
      if (avail > 0) {
        body_append(r, &cap, c->buf + c->pos, avail);
        c->pos += avail;
      }
      long k = conn_fill(c);
      if (k == 0) break;
      if (k < 0) {
        if (c->eof) break; /* reset after data: treat as close */
        ok = 0;
        break;
      }
    }
    if (!r->body) body_append(r, &cap, (const uint8_t *)"", 0);
  }
  if (!r->body) {
    r->body = malloc(1);
    CHECK(r->body != NULL);
    r->body[0] = 0;
  }
  r->elapsed_ms = zt_now_ms() - t0;
  if (!ok) {
    mark_incomplete(c, r);
    return -1;
  }
  r->complete = 1;
  return 0;
}

int zt_read_head_only(zt_conn *c, zt_response *r, int timeout_ms) {
  memset(r, 0, sizeof *r);
  double t0 = zt_now_ms();
  if (c->len == c->pos) {
    struct pollfd p = {c->fd, POLLIN, 0};
    int pr;
    do {
      pr = poll(&p, 1, (int)(timeout_ms * zt_time_scale()));
    } while (pr < 0 && errno == EINTR);
    if (pr <= 0) {
      r->timed_out = 1;
      r->elapsed_ms = zt_now_ms() - t0;
      return -1;
    }
  }
  c->err = 0;
  int rc = read_head(c, r);
  if (rc != 0) mark_incomplete(c, r);
  r->elapsed_ms = zt_now_ms() - t0;
  return rc;
}

void zt_response_free(zt_response *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->names[i]);
    free(r->values[i]);
  }
  free(r->names);
  free(r->values);
  free(r->reason);
  free(r->body);
  r->names = r->values = NULL;
  r->reason = NULL;
  r->body = NULL;
  r->nheaders = 0;
  r->body_len = 0;
}

const char *zt_header(const zt_response *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++) {
    if (strcasecmp(r->names[i], name) == 0) return r->values[i];
  }
  return NULL;
}

void zt_get(zt_conn *c, const char *path, zt_response *r) {
  char req[4096];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
  CHECK(n > 0 && (size_t)n < sizeof req);
  CHECK(zt_send_all(c, req, (size_t)n) == 0);
  int rc = zt_read_response(c, r, 0);
  if (rc != 0) {
    fprintf(stderr, "GET %s: incomplete response (status %d, eof %d, timed_out %d, %zu body bytes)\n",
            path, r->status, r->eof, r->timed_out, r->body_len);
  }
  CHECK(rc == 0);
}

long zt_recv_some(zt_conn *c, void *dst, size_t max) {
  size_t avail = c->len - c->pos;
  if (avail > 0) {
    size_t k = avail < max ? avail : max;
    memcpy(dst, c->buf + c->pos, k);
    c->pos += k;
    return (long)k;
  }
  for (;;) {
    ssize_t n = recv(c->fd, dst, max, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      c->err = errno;
      if (errno == ECONNRESET) c->eof = 1;
      return -1;
    }
    if (n == 0) c->eof = 1;
    return (long)n;
  }
}

int zt_wait_closed(zt_conn *c, int timeout_ms, size_t *discarded) {
  size_t seen = c->len - c->pos;
  c->pos = c->len = 0;
  double deadline = zt_now_ms() + timeout_ms * zt_time_scale();
  int closed = 0;
  if (c->eof) closed = 1;
  while (!closed) {
    double left = deadline - zt_now_ms();
    if (left <= 0) break;
    struct pollfd p = {c->fd, POLLIN, 0};
    int pr = poll(&p, 1, (int)left + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    uint8_t tmp[65536];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      seen += (size_t)n;
      continue;
    }
    if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
      closed = 1;
      c->eof = 1;
    }
  }
  if (discarded) *discarded = seen;
  return closed;
}

/* ------------------------------------------------------------------ files & fds */

void zt_fill_pattern(uint8_t *dst, size_t len, uint64_t offset) {
  for (size_t i = 0; i < len; i++) dst[i] = zt_pattern_byte(offset + i);
}

long long zt_check_pattern(const uint8_t *buf, size_t len, uint64_t offset) {
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != zt_pattern_byte(offset + i)) return (long long)i;
  }
  return -1;
}

int zt_temp_file(uint64_t size) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  char path[4096];
  snprintf(path, sizeof path, "%s/zh-capi-test-XXXXXX", dir);
  int fd = mkostemp(path, O_CLOEXEC);
  CHECK_MSG(fd >= 0, "mkostemp failed");
  CHECK(unlink(path) == 0);
  size_t bs = 1 << 20;
  uint8_t *blk = malloc(bs);
  CHECK(blk != NULL);
  uint64_t off = 0;
  while (off < size) {
    size_t n = (size - off) < bs ? (size_t)(size - off) : bs;
    zt_fill_pattern(blk, n, off);
    size_t w = 0;
    while (w < n) {
      ssize_t k = pwrite(fd, blk + w, n - w, (off_t)(off + w));
      CHECK(k > 0);
      w += (size_t)k;
    }
    off += n;
  }
  free(blk);
  struct stat st;
  CHECK(fstat(fd, &st) == 0);
  CHECK_EQ_INT(st.st_size, size);
  return fd;
}

int zt_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  CHECK(d != NULL);
  int self = dirfd(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (atoi(e->d_name) == self) continue;
    n++;
  }
  closedir(d);
  return n;
}

int zt_fd_closed(int fd) {
  errno = 0;
  return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

int zt_dup(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  CHECK(d >= 0);
  return d;
}

/* ------------------------------------------------------------------ engine */

int zt_external_mode(void) {
  const char *v = getenv("ZH_TEST_EXTERNAL");
  return v && *v && strcmp(v, "0") != 0;
}

/* One host thread per engine started by zt_engine_start in external-loop mode. The thread
 * only reads its own zt_host (immutable after creation); the registry holds the pointers. */
typedef struct zt_host {
  zh_engine *engine;
  pthread_t thread;
  int stop_fd; /* eventfd: written to ask the host thread to leave its loop */
} zt_host;

#define ZT_MAX_HOSTS 64
static zt_host *zt_hosts[ZT_MAX_HOSTS];
static pthread_mutex_t zt_hosts_lock = PTHREAD_MUTEX_INITIALIZER;

static void *zt_host_main(void *arg) {
  const zt_host *h = arg;
  int32_t efd = -1;
  CHECK_OK(zh_engine_fd(h->engine, &efd));
  CHECK(efd >= 0);
  for (;;) {
    int64_t t = zh_engine_next_timeout_ms(h->engine);
    int timeout = t < 0 ? -1 : (t > 60000 ? 60000 : (int)t);
    struct pollfd p[2] = {{efd, POLLIN, 0}, {h->stop_fd, POLLIN, 0}};
    int n = poll(p, 2, timeout);
    if (n < 0) {
      CHECK_MSG(errno == EINTR, "poll on the engine fd failed");
      continue;
    }
    if (p[1].revents) break; /* the test stops the engine: leave before shutdown runs */
    zh_result rc = zh_engine_step(h->engine, 0);
    if (rc == ZH_ERR_CLOSED) break; /* a shutdown has completed */
    CHECK_OK(rc);
  }
  return NULL;
}

static void zt_host_start(zh_engine *e) {
  zt_host *h = calloc(1, sizeof *h);
  CHECK(h != NULL);
  h->engine = e;
  h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  CHECK(h->stop_fd >= 0);
  pthread_mutex_lock(&zt_hosts_lock);
  int slot = -1;
  for (int i = 0; i < ZT_MAX_HOSTS && slot < 0; i++) {
    if (zt_hosts[i] == NULL) slot = i;
  }
  CHECK_MSG(slot >= 0, "too many external-loop engines at once");
  zt_hosts[slot] = h;
  CHECK(pthread_create(&h->thread, NULL, zt_host_main, h) == 0);
  pthread_mutex_unlock(&zt_hosts_lock);
}

/* Stops and joins the host thread of `e`, if there is one. */
static void zt_host_stop(zh_engine *e) {
  if (!e) return;
  zt_host *h = NULL;
  pthread_mutex_lock(&zt_hosts_lock);
  for (int i = 0; i < ZT_MAX_HOSTS; i++) {
    if (zt_hosts[i] != NULL && zt_hosts[i]->engine == e) {
      h = zt_hosts[i];
      zt_hosts[i] = NULL;
      break;
    }
  }
  pthread_mutex_unlock(&zt_hosts_lock);
  if (!h) return;
  uint64_t one = 1;
  CHECK(write(h->stop_fd, &one, sizeof one) == (ssize_t)sizeof one);
  CHECK(pthread_join(h->thread, NULL) == 0);
  close(h->stop_fd);
  free(h);
}

zh_result zt_engine_shutdown(zh_engine *engine, uint32_t grace_ms) {
  zt_host_stop(engine);
  return zh_engine_shutdown(engine, grace_ms);
}

void zt_engine_free(zh_engine *engine) {
  zt_host_stop(engine);
  zh_engine_free(engine);
}

zh_engine *zt_engine_start(const zh_config *cfg, zh_handler_fn handler, void *ud,
                           uint16_t *port_out) {
  int external = zt_external_mode();
  zh_config *own = NULL;
  if (external) {
    /* External-loop hosts must ignore or block SIGPIPE themselves (see zerohttp.h). */
    signal(SIGPIPE, SIG_IGN);
    static int announced;
    if (!announced) {
      announced = 1;
      fprintf(stderr, "[testutil] external-loop mode (ZH_TEST_EXTERNAL): threads = 0, "
                      "engines driven by a host thread (poll + zh_engine_step)\n");
    }
    if (cfg == NULL) {
      CHECK_OK(zh_config_new(&own));
      cfg = own;
    }
    /* The test's own config (created by zh_config_new, so not really const). */
    CHECK_OK(zh_config_set_threads((zh_config *)cfg, 0));
  }
  zh_engine *e = NULL;
  CHECK_OK(zh_engine_new(cfg, handler, ud, &e));
  CHECK(e != NULL);
  zh_config_free(own);
  uint16_t port = 0;
  CHECK_OK(zh_engine_listen(e, "127.0.0.1:0", &port));
  CHECK(port != 0);
  CHECK_OK(zh_engine_start(e));
  if (external) zt_host_start(e);
  if (port_out) *port_out = port;
  return e;
}

void zt_stats(const zh_engine *engine, zh_stats *out) {
  memset(out, 0, sizeof *out);
  out->struct_size = (uint32_t)sizeof *out;
  CHECK_OK(zh_engine_stats(engine, out));
}

void zt_print_stats(const char *label, const zh_stats *s) {
  fprintf(stderr,
          "[%s] accepted=%llu active=%llu closed=%llu requests=%llu responses=%llu rx=%llu "
          "writev=%llu sendfile=%llu splice=%llu cfr=%llu copy=%llu | sc_writev=%llu "
          "sc_sendfile=%llu sc_copy=%llu sc_read=%llu fallbacks=%llu | err parse=%llu io=%llu "
          "timeout=%llu truncated=%llu limit=%llu\n",
          label, (unsigned long long)s->connections_accepted,
          (unsigned long long)s->connections_active, (unsigned long long)s->connections_closed,
          (unsigned long long)s->requests, (unsigned long long)s->responses,
          (unsigned long long)s->bytes_received, (unsigned long long)s->bytes_writev,
          (unsigned long long)s->bytes_sendfile, (unsigned long long)s->bytes_splice,
          (unsigned long long)s->bytes_copy_file_range, (unsigned long long)s->bytes_copy,
          (unsigned long long)s->syscalls_writev, (unsigned long long)s->syscalls_sendfile,
          (unsigned long long)s->syscalls_copy, (unsigned long long)s->syscalls_read,
          (unsigned long long)s->fallbacks, (unsigned long long)s->errors_parse,
          (unsigned long long)s->errors_io, (unsigned long long)s->errors_timeout,
          (unsigned long long)s->errors_truncated, (unsigned long long)s->errors_limit);
}

void zt_respond_text(zh_request *req, uint16_t status, const char *body) {
  zh_response *resp = NULL;
  CHECK_OK(zh_response_new(status, &resp));
  CHECK(resp != NULL);
  CHECK_OK(zh_response_add_header(resp, "Content-Type", "text/plain"));
  if (body && *body) CHECK_OK(zh_response_add_bytes(resp, body, strlen(body)));
  CHECK_OK(zh_respond(req, resp));
}

void zt_respond_buffered(zh_request *req) {
  const uint8_t *d = NULL;
  size_t l = 0;
  CHECK_OK(zh_request_body_bytes(req, &d, &l));
  char body[64];
  snprintf(body, sizeof body, "buffered %zu", l);
  zt_respond_text(req, 200, body);
}
