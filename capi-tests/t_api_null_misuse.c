/* Every exported function with NULL / invalid arguments returns a code, never crashes;
 * out-pointers are left untouched on error; nothing is taken on an error return. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static atomic_int g_release_count;
static void count_release(void *ud) {
  CHECK(ud == (void *)&g_release_count);
  atomic_fetch_add(&g_release_count, 1);
}

static void dummy_handler(void *ud, zh_request *req) {
  (void)ud;
  zh_request_reject(req, 500);
}

/* Misuse of a live request: invalid arguments on a valid request. */
static atomic_int g_live_checked;
static void live_handler(void *ud, zh_request *req) {
  zh_engine *engine = *(zh_engine **)ud;
  /* documented: zh_engine_shutdown must not be called from a handler -> ZH_ERR_STATE */
  CHECK_RES(zh_engine_shutdown(engine, 0), ZH_ERR_STATE);
  /* documented: zh_engine_step from a handler -> ZH_ERR_STATE (threaded mode: always; external
   * mode: the step running this handler holds the worker, a nested one used to wait forever) */
  CHECK_RES(zh_engine_step(engine, 0), ZH_ERR_STATE);
  CHECK(zh_request_header(req, NULL) == NULL);
  const char *name = (const char *)0x1, *value = (const char *)0x1;
  size_t n = zh_request_header_count(req);
  CHECK(n >= 1);
  zh_result r = zh_request_header_at(req, n, &name, &value);
  CHECK_MSG(r == ZH_ERR_NOT_FOUND || r == ZH_ERR_RANGE, zh_result_str(r));
  CHECK(name == (const char *)0x1 && value == (const char *)0x1); /* untouched on error */
  r = zh_request_header_at(req, (size_t)-1, &name, &value);
  CHECK_MSG(r == ZH_ERR_NOT_FOUND || r == ZH_ERR_RANGE, zh_result_str(r));
  CHECK_RES(zh_request_body_bytes(req, NULL, NULL), ZH_ERR_NULL);
  CHECK_RES(zh_request_peer_addr(req, NULL, 64), ZH_ERR_NULL);
  char small[4] = {'x', 'x', 'x', 'x'};
  CHECK_RES(zh_request_peer_addr(req, small, sizeof small), ZH_ERR_RANGE);
  char buf[64];
  CHECK_OK(zh_request_peer_addr(req, buf, sizeof buf));
  CHECK(strncmp(buf, "127.0.0.1:", 10) == 0);
  /* zh_respond(req, NULL): resp is required */
  /* (not called: whether req is handed back on a NULL resp is not specified) */
  /* documented: a status outside 200..=999 is ZH_ERR_INVALID and the request is NOT handed back */
  CHECK_RES(zh_request_reject(req, 100), ZH_ERR_INVALID);
  CHECK_RES(zh_request_reject(req, 1000), ZH_ERR_INVALID);
  atomic_fetch_add(&g_live_checked, 1);
  zt_respond_text(req, 200, "ok"); /* still ours to hand back */
}

static void check_version(void) {
  const char *v = zh_version();
  CHECK(v != NULL);
  CHECK(v[0] != 0);
  /* digits '.' digits '.' digits, optional suffix starting with '-' or '+' */
  const char *p = v;
  for (int part = 0; part < 3; part++) {
    CHECK_MSG(isdigit((unsigned char)*p), v);
    while (isdigit((unsigned char)*p)) p++;
    if (part < 2) {
      CHECK_MSG(*p == '.', v);
      p++;
    }
  }
  CHECK_MSG(*p == 0 || *p == '-' || *p == '+', v);
  CHECK(zh_version() == v || strcmp(zh_version(), v) == 0); /* static, stable */
#if defined(ZH_VERSION_MAJOR) && defined(ZH_VERSION_MINOR) && defined(ZH_VERSION_PATCH)
  {
    char expect[64];
    snprintf(expect, sizeof expect, "%d.%d.%d", (int)ZH_VERSION_MAJOR, (int)ZH_VERSION_MINOR,
             (int)ZH_VERSION_PATCH);
    CHECK_MSG(strncmp(v, expect, strlen(expect)) == 0, "zh_version() disagrees with ZH_VERSION_*");
  }
#endif
}

static void check_result_str(void) {
  const char *unknown = zh_result_str(9999);
  CHECK(unknown != NULL && unknown[0] != 0);
  CHECK(zh_result_str(14) != NULL && zh_result_str(14)[0] != 0);
  CHECK(zh_result_str(UINT32_MAX) != NULL && zh_result_str(UINT32_MAX)[0] != 0);
  const char *names[14];
  for (zh_result c = 0; c <= 13; c++) {
    const char *s = zh_result_str(c);
    CHECK(s != NULL);
    CHECK(s[0] != 0);
    if (strcmp(s, unknown) == 0) {
      fprintf(stderr, "zh_result_str(%u) is the unknown-code string \"%s\"\n", (unsigned)c, s);
      CHECK(0);
    }
    for (zh_result d = 0; d < c; d++) {
      if (strcmp(s, names[d]) == 0) {
        fprintf(stderr, "codes %u and %u share the string \"%s\"\n", (unsigned)d, (unsigned)c, s);
        CHECK(0);
      }
    }
    names[c] = s;
  }
}

static void check_config(void) {
  zh_config *sentinel = (zh_config *)0x1;
  CHECK_RES(zh_config_new(NULL), ZH_ERR_NULL);
  zh_config_free(NULL);
  CHECK_RES(zh_config_set_threads(NULL, 1), ZH_ERR_NULL);
  CHECK_RES(zh_config_set_limits(NULL, 0, 0, 0, ZH_UNLIMITED), ZH_ERR_NULL);
  CHECK_RES(zh_config_set_timeouts(NULL, 0, 0, 0), ZH_ERR_NULL);
  CHECK_RES(zh_config_set_max_connections(NULL, 10), ZH_ERR_NULL);
  CHECK_RES(zh_config_set_small_file_read_max(NULL, 4096), ZH_ERR_NULL);
  CHECK_RES(zh_config_set_tcp_congestion(NULL, "reno"), ZH_ERR_NULL);

  zh_config *cfg = sentinel;
  CHECK_OK(zh_config_new(&cfg));
  CHECK(cfg != NULL && cfg != sentinel);
  CHECK_OK(zh_config_set_threads(cfg, 0)); /* external-loop mode */
  CHECK_OK(zh_config_set_threads(cfg, 1));
  CHECK_OK(zh_config_set_threads(cfg, 2));
  CHECK_OK(zh_config_set_threads(cfg, 1024));
  CHECK_RES(zh_config_set_threads(cfg, 1025), ZH_ERR_INVALID); /* documented range 0..=1024 */
  CHECK_OK(zh_config_set_limits(cfg, 0, 0, 0, ZH_UNLIMITED)); /* all defaults */
  CHECK_OK(zh_config_set_limits(cfg, 4096, 8192, 50, 1 << 20));
  CHECK_OK(zh_config_set_timeouts(cfg, 0, 0, 0));
  CHECK_OK(zh_config_set_timeouts(cfg, 500, 1000, 1000));
  CHECK_OK(zh_config_set_max_connections(cfg, 100));
  CHECK_OK(zh_config_set_small_file_read_max(cfg, 0));
  CHECK_OK(zh_config_set_small_file_read_max(cfg, 1 << 20));
  CHECK_RES(zh_config_set_small_file_read_max(cfg, (1 << 20) + 1), ZH_ERR_INVALID); /* at most 1 MiB */
  CHECK_RES(zh_config_set_tcp_congestion(cfg, ""), ZH_ERR_INVALID);
  CHECK_RES(zh_config_set_tcp_congestion(cfg, "has space"), ZH_ERR_INVALID);
  CHECK_RES(zh_config_set_tcp_congestion(cfg, "sixteen-chars-xx"), ZH_ERR_INVALID);
  CHECK_RES(zh_config_set_tcp_congestion(cfg, "no-such-cc"), ZH_ERR_UNSUPPORTED); /* kernel: ENOENT */
  CHECK_OK(zh_config_set_tcp_congestion(cfg, "reno")); /* the one every process may choose */
  CHECK_OK(zh_config_set_tcp_congestion(cfg, NULL));   /* back to the system default */
  zh_config_free(cfg);
}

/* A listener handed to an engine configured with "reno" comes out using reno (accepted
 * connections inherit it from the listener). */
static void check_tcp_congestion(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
  CHECK(listen(fd, 16) == 0);
  int ours = dup(fd);
  CHECK(ours >= 0);

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 1));
  CHECK_OK(zh_config_set_tcp_congestion(cfg, "reno"));
  CHECK_RES(zh_config_set_tcp_congestion(cfg, "no-such-cc"), ZH_ERR_UNSUPPORTED); /* keeps "reno" */
  zh_engine *engine = NULL;
  CHECK_OK(zh_engine_new(cfg, dummy_handler, NULL, &engine));
  zh_config_free(cfg);
  CHECK_OK(zh_engine_listen_fd(engine, fd));
  char after[16] = {0};
  socklen_t len = sizeof after;
  CHECK(getsockopt(ours, IPPROTO_TCP, TCP_CONGESTION, after, &len) == 0);
  CHECK(strcmp(after, "reno") == 0);
  CHECK_OK(zh_engine_shutdown(engine, 0));
  zh_engine_free(engine);
  close(ours);
}

static zh_engine *volatile g_wake_target;
static void wake_from_signal(int sig) {
  (void)sig;
  zh_engine_wake(g_wake_target);
}

/* Unblocks SIGALRM on this thread only and waits for it. */
static void *take_one_alarm(void *arg) {
  (void)arg;
  sigset_t none;
  sigemptyset(&none);
  sigsuspend(&none);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* zh_engine_wake in external-loop mode: a wake given before a step makes it return without
 * waiting; one from a signal handler ends a step that is waiting. */
static void check_wake_external(void) {
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 0));
  zh_engine *e = NULL;
  CHECK_OK(zh_engine_new(cfg, dummy_handler, NULL, &e));
  zh_config_free(cfg);
  CHECK_OK(zh_engine_step(e, 0)); /* starts it */
  CHECK_OK(zh_engine_wake(e));
  double t0 = now_s();
  CHECK_OK(zh_engine_step(e, 60000));
  CHECK(now_s() - t0 < 10.0);

  /* The signal is taken by a helper thread (blocked here), so EINTR cannot end this thread's
   * wait: only the wake can. */
  g_wake_target = e;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = wake_from_signal;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  CHECK(pthread_sigmask(SIG_BLOCK, &alrm, NULL) == 0);
  pthread_t helper;
  CHECK(pthread_create(&helper, NULL, take_one_alarm, NULL) == 0);
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_usec = 300 * 1000;
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  t0 = now_s();
  CHECK_OK(zh_engine_step(e, 60000));
  double waited = now_s() - t0;
  CHECK(waited > 0.2 && waited < 10.0);
  CHECK(pthread_join(helper, NULL) == 0);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &alrm, NULL) == 0);
  signal(SIGALRM, SIG_DFL);
  g_wake_target = NULL;
  CHECK_OK(zh_engine_shutdown(e, 0));
  zh_engine_free(e);
}

static void check_engine(void) {
  zh_engine *sentinel = (zh_engine *)0x1;
  zh_engine *e = sentinel;
  CHECK_RES(zh_engine_new(NULL, NULL, NULL, &e), ZH_ERR_NULL);
  CHECK(e == sentinel);
  CHECK_RES(zh_engine_new(NULL, dummy_handler, NULL, NULL), ZH_ERR_NULL);
  zh_engine_free(NULL);
  CHECK_RES(zh_engine_listen(NULL, "127.0.0.1:0", NULL), ZH_ERR_NULL);
  CHECK_RES(zh_engine_start(NULL), ZH_ERR_NULL);
  CHECK_RES(zh_engine_run(NULL), ZH_ERR_NULL);
  CHECK_RES(zh_engine_shutdown(NULL, 0), ZH_ERR_NULL);
  CHECK_RES(zh_engine_wake(NULL), ZH_ERR_NULL);
  zh_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  CHECK_RES(zh_engine_stats(NULL, &st), ZH_ERR_NULL);

  /* engine with a NULL config = defaults */
  e = sentinel;
  CHECK_OK(zh_engine_new(NULL, dummy_handler, NULL, &e));
  CHECK(e != NULL && e != sentinel);
  uint16_t port = 4242;
  CHECK_RES(zh_engine_listen(e, NULL, &port), ZH_ERR_NULL);
  CHECK_RES(zh_engine_listen(e, "nonsense", &port), ZH_ERR_ADDR);
  CHECK_RES(zh_engine_listen(e, "127.0.0.1:99999", &port), ZH_ERR_ADDR);
  CHECK_RES(zh_engine_listen(e, "", &port), ZH_ERR_ADDR);
  CHECK_EQ_INT(port, 4242); /* out-pointer untouched on error */
  CHECK_RES(zh_engine_wake(e), ZH_ERR_STATE); /* threaded: nothing steps it */
  CHECK_RES(zh_engine_stats(e, NULL), ZH_ERR_NULL);
  memset(&st, 0, sizeof st);
  CHECK_RES(zh_engine_stats(e, &st), ZH_ERR_INVALID); /* struct_size 0 */
  /* a valid stats call on an engine that never ran: all zero */
  zt_stats(e, &st);
  CHECK_EQ_INT(st.connections_accepted, 0);
  CHECK_EQ_INT(st.requests, 0);
  CHECK_EQ_INT(st.bytes_sendfile, 0);
  /* a smaller (older) struct_size is accepted and only that prefix is written (documented);
   * one smaller than the struct_size field itself is ZH_ERR_INVALID */
  memset(&st, 0, sizeof st);
  st.struct_size = 2;
  CHECK_RES(zh_engine_stats(e, &st), ZH_ERR_INVALID);
  {
    struct {
      zh_stats s;
      uint8_t guard[16];
    } small;
    memset(&small, 0xAB, sizeof small);
    small.s.struct_size = (uint32_t)offsetof(zh_stats, connections_active);
    CHECK_OK(zh_engine_stats(e, &small.s));
    CHECK_EQ_INT(small.s.connections_accepted, 0);
    const uint8_t *after = (const uint8_t *)&small.s + offsetof(zh_stats, connections_active);
    for (size_t i = 0; i < sizeof(zh_stats) - offsetof(zh_stats, connections_active); i++) {
      CHECK_MSG(after[i] == 0xAB, "zh_engine_stats wrote past struct_size");
    }
  }
  /* a 0-port listen and then free without start */
  port = 0;
  CHECK_OK(zh_engine_listen(e, "127.0.0.1:0", &port));
  CHECK(port != 0);
  zh_engine_free(e);

  /* listen with NULL bound_port_out is fine; start twice is a state error */
  e = NULL;
  CHECK_OK(zh_engine_new(NULL, dummy_handler, NULL, &e));
  CHECK_OK(zh_engine_listen(e, "127.0.0.1:0", NULL));
  CHECK_OK(zh_engine_start(e));
  CHECK_OK(zh_engine_start(e)); /* documented: a no-op while running */
  CHECK_OK(zh_engine_shutdown(e, 0));
  CHECK_RES(zh_engine_start(e), ZH_ERR_STATE); /* documented: after shutdown */
  zh_engine_free(e);
}

static void check_response(void) {
  zh_response *sentinel = (zh_response *)0x1;
  zh_response *r = sentinel;
  CHECK_RES(zh_response_new(200, NULL), ZH_ERR_NULL);
  CHECK_RES(zh_response_new(42, &r), ZH_ERR_INVALID);
  CHECK(r == sentinel);
  CHECK_RES(zh_response_new(0, &r), ZH_ERR_INVALID);
  CHECK_RES(zh_response_new(99, &r), ZH_ERR_INVALID);
  CHECK_RES(zh_response_new(1000, &r), ZH_ERR_INVALID);
  CHECK_RES(zh_response_new(100, &r), ZH_ERR_INVALID); /* 1xx not allowed in v0 */
  CHECK(r == sentinel);
  zh_response_free(NULL);

  CHECK_RES(zh_response_add_header(NULL, "X-A", "b"), ZH_ERR_NULL);
  CHECK_RES(zh_response_add_bytes(NULL, "x", 1), ZH_ERR_NULL);
  atomic_store(&g_release_count, 0);
  CHECK_RES(zh_response_add_lent(NULL, "x", 1, count_release, &g_release_count), ZH_ERR_NULL);
  CHECK_EQ_INT(atomic_load(&g_release_count), 0); /* on error release is NOT called */

  r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK(r != NULL);
  CHECK_RES(zh_response_add_header(r, NULL, "b"), ZH_ERR_NULL);
  CHECK_RES(zh_response_add_header(r, "X-A", NULL), ZH_ERR_NULL);
  CHECK_RES(zh_response_add_header(r, "bad name", "v"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "", "v"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "X-A:", "v"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "X-A\r\nX-Evil", "v"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "X-A", "v\r\nX-Injected: 1"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "Content-Length", "5"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "content-length", "5"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "Transfer-Encoding", "chunked"), ZH_ERR_HEADER);
  CHECK_RES(zh_response_add_header(r, "TRANSFER-ENCODING", "chunked"), ZH_ERR_HEADER);
  CHECK_OK(zh_response_add_header(r, "X-Fine", "value with spaces"));
  CHECK_OK(zh_response_add_header(r, "X-Empty", ""));
  CHECK_RES(zh_response_add_bytes(r, NULL, 1), ZH_ERR_NULL);
  CHECK_OK(zh_response_add_bytes(r, NULL, 0)); /* documented: NULL only with len 0 */
  CHECK_OK(zh_response_add_bytes(r, "abc", 3));

  static const char lent[] = "lent data";
  CHECK_RES(zh_response_add_lent(r, NULL, 5, count_release, &g_release_count), ZH_ERR_NULL);
  CHECK_EQ_INT(atomic_load(&g_release_count), 0);
  CHECK_OK(zh_response_add_lent(r, lent, sizeof lent - 1, count_release, &g_release_count));
  CHECK_EQ_INT(atomic_load(&g_release_count), 0);
  CHECK_OK(zh_response_add_lent(r, lent, 4, NULL, NULL)); /* release may be NULL */
  /* len 0: released at once (documented) */
  CHECK_OK(zh_response_add_lent(r, lent, 0, count_release, &g_release_count));
  CHECK_EQ_INT(atomic_load(&g_release_count), 1);
  atomic_store(&g_release_count, 0);

  /* files: region checks, nothing taken on error */
  int fd = zt_temp_file(100);
  CHECK_RES(zh_response_add_file(NULL, fd, 0, -1, ZH_FD_CLOSE), ZH_ERR_NULL);
  CHECK(!zt_fd_closed(fd));
  CHECK_RES(zh_response_add_file(r, fd, 50, 100, ZH_FD_CLOSE), ZH_ERR_RANGE);
  CHECK_MSG(!zt_fd_closed(fd), "fd was closed although add_file failed");
  CHECK_RES(zh_response_add_file(r, fd, 101, -1, ZH_FD_CLOSE), ZH_ERR_RANGE);
  CHECK(!zt_fd_closed(fd));
  CHECK_RES(zh_response_add_file(r, fd, 0, 101, ZH_FD_CLOSE), ZH_ERR_RANGE);
  CHECK(!zt_fd_closed(fd));
  CHECK_RES(zh_response_add_file(r, fd, UINT64_MAX, 2, ZH_FD_CLOSE), ZH_ERR_RANGE);
  CHECK(!zt_fd_closed(fd));
  CHECK_RES(zh_response_add_file(r, fd, 0, -2, ZH_FD_CLOSE), ZH_ERR_INVALID);
  CHECK(!zt_fd_closed(fd));
  CHECK_RES(zh_response_add_file(r, fd, 0, -1, 0x80), ZH_ERR_INVALID); /* unknown flag */
  CHECK(!zt_fd_closed(fd));
  zh_result br = zh_response_add_file(r, -1, 0, -1, 0);
  CHECK_MSG(br == ZH_ERR_INVALID || br == ZH_ERR_IO, zh_result_str(br));
  int closed_fd = zt_dup(fd);
  close(closed_fd);
  br = zh_response_add_file(r, closed_fd, 0, -1, 0);
  CHECK_MSG(br == ZH_ERR_INVALID || br == ZH_ERR_IO, zh_result_str(br));
  /* a non-regular file is ZH_ERR_INVALID (documented), and not taken */
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(dir >= 0);
  CHECK_RES(zh_response_add_file(r, dir, 0, -1, ZH_FD_CLOSE), ZH_ERR_INVALID);
  CHECK(!zt_fd_closed(dir));
  close(dir);
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  CHECK_RES(zh_response_add_file(r, pfd[0], 0, -1, ZH_FD_CLOSE), ZH_ERR_INVALID); /* a pipe */
  CHECK(!zt_fd_closed(pfd[0]));
  close(pfd[0]);
  close(pfd[1]);
  /* exact end is fine; empty region at EOF is fine */
  int fd2 = zt_dup(fd);
  CHECK_OK(zh_response_add_file(r, fd2, 0, 100, ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_file(r, fd, 100, 0, 0)); /* not taken: we close it ourselves */

  /* freeing an unsent response releases its chunks: lent released once, fd2 closed */
  zh_response_free(r);
  CHECK_EQ_INT(atomic_load(&g_release_count), 1);
  CHECK_MSG(zt_fd_closed(fd2), "ZH_FD_CLOSE fd not closed by zh_response_free");
  CHECK_MSG(!zt_fd_closed(fd), "fd without ZH_FD_CLOSE was closed by zh_response_free");

  /* zh_respond always takes resp: even with a NULL request it is freed (release runs) */
  atomic_store(&g_release_count, 0);
  r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_lent(r, lent, 3, count_release, &g_release_count));
  int fd3 = zt_dup(fd);
  CHECK_OK(zh_response_add_file(r, fd3, 0, -1, ZH_FD_CLOSE));
  CHECK_RES(zh_respond(NULL, r), ZH_ERR_NULL);
  CHECK_EQ_INT(atomic_load(&g_release_count), 1);
  CHECK_MSG(zt_fd_closed(fd3), "zh_respond(NULL, resp) did not free resp");
  /* NULL/NULL: nothing to do */
  CHECK_RES(zh_respond(NULL, NULL), ZH_ERR_NULL);
  close(fd);
}

static void check_request_accessors_null(void) {
  CHECK(zh_request_method(NULL) == NULL);
  CHECK(zh_request_target(NULL) == NULL);
  CHECK(zh_request_path(NULL) == NULL);
  CHECK(zh_request_query(NULL) == NULL);
  CHECK_EQ_INT(zh_request_version(NULL), 0);
  CHECK(zh_request_header(NULL, "Host") == NULL);
  CHECK(zh_request_header(NULL, NULL) == NULL);
  CHECK_EQ_INT(zh_request_header_count(NULL), 0);
  const char *n = (const char *)0x1, *v = (const char *)0x1;
  CHECK_RES(zh_request_header_at(NULL, 0, &n, &v), ZH_ERR_NULL);
  CHECK(n == (const char *)0x1 && v == (const char *)0x1);
  int64_t bl = zh_request_body_length(NULL);
  CHECK_MSG(bl == 0 || bl == -1, "zh_request_body_length(NULL)");
  const uint8_t *d = (const uint8_t *)0x1;
  size_t l = 77;
  CHECK_RES(zh_request_body_bytes(NULL, &d, &l), ZH_ERR_NULL);
  CHECK(d == (const uint8_t *)0x1 && l == 77);
  char buf[64];
  CHECK_RES(zh_request_peer_addr(NULL, buf, sizeof buf), ZH_ERR_NULL);
  CHECK_RES(zh_request_reject(NULL, 404), ZH_ERR_NULL);
}

static void check_live_request(void) {
  uint16_t port = 0;
  static zh_engine *engine_slot; /* the handler reads the engine through its userdata */
  zh_engine *e = NULL;
  CHECK_OK(zh_engine_new(NULL, live_handler, &engine_slot, &e));
  engine_slot = e;
  CHECK_OK(zh_engine_listen(e, "127.0.0.1:0", &port));
  CHECK_OK(zh_engine_start(e));
  zt_conn *c = zt_connect(port);
  zt_response resp;
  zt_get(c, "/misuse", &resp);
  CHECK_EQ_INT(resp.status, 200);
  CHECK_STREQ((const char *)resp.body, "ok");
  zt_response_free(&resp);
  CHECK_EQ_INT(atomic_load(&g_live_checked), 1);
  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  /* shutdown twice is harmless */
  zh_result r2 = zh_engine_shutdown(e, 0);
  CHECK_MSG(r2 == ZH_OK || r2 == ZH_ERR_STATE, zh_result_str(r2));
  /* stats still readable after shutdown */
  zh_stats st;
  zt_stats(e, &st);
  CHECK_EQ_INT(st.requests, 1);
  zh_engine_free(e);
}

int main(void) {
  check_version();
  check_result_str();
  check_config();
  check_tcp_congestion();
  check_wake_external();
  check_engine();
  check_response();
  check_request_accessors_null();
  check_live_request();
  printf("api_null_misuse: ok\n");
  return 0;
}
