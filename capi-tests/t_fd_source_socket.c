/* Socket sources (zh_response_add_fd on a socket): proxied by splice through the engine's own
 * pipe pair.
 *
 *   /unix      a socketpair; a thread writes BODY_LEN bytes into the other end; known length
 *   /tcp       a TCP connection to a local "upstream" thread that writes BODY_LEN bytes and
 *              closes; len -1 → chunked (HTTP/1.1), close-delimited (HTTP/1.0)
 *   /tcpknown  the same upstream, known length
 *   /short     a socketpair delivering 1000 of 5000 promised bytes: aborted, errors_truncated
 * Each body is byte-identical; bytes_splice >= body length, bytes_copy == 0; ZH_FD_CLOSE
 * sockets are gone after the response; no fd leaks at the end.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define BODY_LEN (3u << 20)

static uint8_t *g_body;
static pthread_t g_writer;
static atomic_int g_have_writer;
static int g_listen_fd = -1;
static uint16_t g_upstream_port;
static atomic_int g_upstream_served;
static atomic_int g_fd = -1;
static ino_t g_ino;

static int fd_gone(int fd, ino_t ino) {
  struct stat sb;
  if (fstat(fd, &sb) != 0) return errno == EBADF;
  return sb.st_ino != ino;
}

static ino_t ino_of(int fd) {
  struct stat sb;
  CHECK(fstat(fd, &sb) == 0);
  return sb.st_ino;
}

static int send_all(int fd, const uint8_t *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

typedef struct {
  int fd;
  size_t len;
} writer_arg;

static void *sock_writer(void *arg) {
  writer_arg *a = arg;
  /* 100 KiB pieces: the engine sees EAGAIN on its source now and then */
  for (size_t off = 0; off < a->len;) {
    size_t n = a->len - off < 100000 ? a->len - off : 100000;
    if (send_all(a->fd, g_body + off, n) != 0) break;
    off += n;
  }
  close(a->fd);
  free(a);
  return NULL;
}

/* The upstream: accepts one connection per request, sends BODY_LEN bytes, closes. Ends when
 * the listener is shut down. */
static void *upstream(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      break; /* shutdown() of the listener */
    }
    (void)send_all(fd, g_body, BODY_LEN);
    close(fd);
    atomic_fetch_add(&g_upstream_served, 1);
  }
  return NULL;
}

static int connect_upstream(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(g_upstream_port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  return fd;
}

static int pair_with_writer(size_t len) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  writer_arg *a = malloc(sizeof *a);
  CHECK(a != NULL);
  *a = (writer_arg){sv[1], len};
  CHECK(!atomic_load(&g_have_writer));
  CHECK(pthread_create(&g_writer, NULL, sock_writer, a) == 0);
  atomic_store(&g_have_writer, 1);
  return sv[0];
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  int fd;
  int64_t len;
  if (strcmp(path, "/unix") == 0) {
    fd = pair_with_writer(BODY_LEN);
    len = BODY_LEN;
  } else if (strcmp(path, "/tcp") == 0) {
    fd = connect_upstream(); /* loopback: the connect does not wait */
    len = -1;
  } else if (strcmp(path, "/tcpknown") == 0) {
    fd = connect_upstream();
    len = BODY_LEN;
  } else if (strcmp(path, "/short") == 0) {
    fd = pair_with_writer(1000);
    len = 5000;
  } else {
    CHECK_OK(zh_request_reject(req, 404));
    return;
  }
  g_ino = ino_of(fd);
  atomic_store(&g_fd, fd);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_fd(r, fd, len, ZH_FD_CLOSE));
  CHECK_OK(zh_respond(req, r));
}

/* ------------------------------------------------------------------ client side */

static void join_writer(void) {
  if (atomic_load(&g_have_writer)) {
    CHECK(pthread_join(g_writer, NULL) == 0);
    atomic_store(&g_have_writer, 0);
  }
}

static zh_stats settled(zh_engine *e, uint64_t responses) {
  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.responses >= responses), 3000);
  zt_stats(e, &st);
  return st;
}

static void fetch(zh_engine *e, zt_conn *c, const char *path, const char *version, int want_chunked) {
  zh_stats st0 = settled(e, 0);
  char req[128];
  snprintf(req, sizeof req, "GET %s HTTP/%s\r\nHost: t\r\n\r\n", path, version);
  CHECK(zt_send_str(c, req) == 0);
  zt_response r;
  CHECK_MSG(zt_read_response(c, &r, 0) == 0, path);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.chunked, want_chunked);
  CHECK_EQ_INT(r.has_content_length, strcmp(path, "/tcp") != 0);
  if (r.has_content_length) CHECK_EQ_INT(r.content_length, BODY_LEN);
  CHECK_EQ_INT(r.body_len, BODY_LEN);
  long long bad = zt_check_pattern(r.body, r.body_len, 0);
  if (bad >= 0) fprintf(stderr, "%s: mismatch at %lld\n", path, bad);
  CHECK_EQ_INT(bad, -1);
  zt_response_free(&r);
  zh_stats st = settled(e, st0.responses + 1);
  fprintf(stderr, "%s HTTP/%s: splice +%llu (%llu calls), copy +%llu\n", path, version,
          (unsigned long long)(st.bytes_splice - st0.bytes_splice),
          (unsigned long long)(st.syscalls_splice - st0.syscalls_splice),
          (unsigned long long)(st.bytes_copy - st0.bytes_copy));
  CHECK(st.bytes_splice - st0.bytes_splice >= BODY_LEN);
  CHECK_EQ_INT(st.bytes_copy - st0.bytes_copy, 0);
  CHECK_EQ_INT(st.fallbacks - st0.fallbacks, 0);
  ZT_WAIT_UNTIL(fd_gone(atomic_load(&g_fd), g_ino), 3000);
  CHECK_MSG(fd_gone(atomic_load(&g_fd), g_ino), "ZH_FD_CLOSE socket still open after the response");
}

int main(void) {
  g_body = malloc(BODY_LEN);
  CHECK(g_body != NULL);
  zt_fill_pattern(g_body, BODY_LEN, 0);
  int fds_at_start = zt_count_fds();

  /* upstream */
  g_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(g_listen_fd >= 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(g_listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(listen(g_listen_fd, 16) == 0);
  socklen_t sl = sizeof sa;
  CHECK(getsockname(g_listen_fd, (struct sockaddr *)&sa, &sl) == 0);
  g_upstream_port = ntohs(sa.sin_port);
  pthread_t up;
  CHECK(pthread_create(&up, NULL, upstream, NULL) == 0);

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 1));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);

  zt_conn *c = zt_connect(port);
  fetch(e, c, "/unix", "1.1", 0);
  join_writer();
  fetch(e, c, "/tcp", "1.1", 1);
  fetch(e, c, "/tcpknown", "1.1", 0);
  fetch(e, c, "/unix", "1.1", 0); /* the engine pipe is reused on the same connection */
  join_writer();
  zt_close(c);
  c = zt_connect(port);
  fetch(e, c, "/tcp", "1.0", 0); /* close-delimited */
  zt_close(c);
  CHECK_EQ_INT(atomic_load(&g_upstream_served), 3);

  /* fewer bytes than promised: aborted, counted, closed */
  c = zt_connect(port);
  zh_stats st0 = settled(e, 0), st;
  CHECK(zt_send_str(c, "GET /short HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
  zt_response r;
  CHECK_EQ_INT(zt_read_response(c, &r, 0), -1);
  CHECK(r.eof && !r.timed_out && r.head_complete);
  CHECK_EQ_INT(r.content_length, 5000);
  CHECK(r.body_len <= 1000);
  CHECK_EQ_INT(zt_check_pattern(r.body, r.body_len, 0), -1);
  zt_response_free(&r);
  zt_close(c);
  join_writer();
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.errors_truncated > st0.errors_truncated), 3000);
  CHECK_MSG(st.errors_truncated > st0.errors_truncated, "short socket source: errors_truncated");
  ZT_WAIT_UNTIL(fd_gone(atomic_load(&g_fd), g_ino), 3000);
  CHECK_MSG(fd_gone(atomic_load(&g_fd), g_ino), "ZH_FD_CLOSE socket not closed after an abort");
  zt_print_stats("end", &st);

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  shutdown(g_listen_fd, SHUT_RDWR);
  CHECK(pthread_join(up, NULL) == 0);
  close(g_listen_fd);
  CHECK_EQ_INT(zt_count_fds(), fds_at_start);
  free(g_body);
  printf("t_fd_source_socket: ok\n");
  return 0;
}
