/* The file a request body goes into fills up (RLIMIT_FSIZE stands in for ENOSPC: the write fails
 * with EFBIG on the same path): on_done runs exactly once with the error and the bytes that did
 * land, the blocks reserved for the rest are given back, the application can still answer, the
 * connection is closed afterwards (the rest of the body cannot be consumed), nothing leaks (fds,
 * engine connections) — by splice and by recv + pwrite (force copy). Also covers the spool path:
 * a large unclaimed body is spooled and moved into a caller's file with copy_file_range, and one
 * whose spool file fills up is answered by the engine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define LIMIT (1u << 20)
#define UPLOAD (4u << 20)

static atomic_int g_done_calls;
static uint64_t g_bytes;
static int g_error;
static int g_fd = -1;

static void on_done(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  (void)ud;
  g_bytes = bytes;
  g_error = error;
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(error ? 507 : 201, &r));
  zh_result rr = zh_respond(req, r);
  CHECK(rr == ZH_OK || rr == ZH_ERR_CLOSED);
  atomic_fetch_add(&g_done_calls, 1);
}

static void head_handler(void *ud, zh_request *req) {
  (void)ud;
  if (strcmp(zh_request_path(req), "/full") == 0) CHECK_OK(zh_request_body_to_fd(req, g_fd, 0, on_done, NULL));
  /* anything else: buffered (or spooled) for the main handler */
}

static char g_moved_path[4096];

static void handler(void *ud, zh_request *req) {
  (void)ud;
  int fd = -1;
  uint64_t len = 0;
  zh_result rc = zh_request_body_fd(req, &fd, &len);
  int out = open(g_moved_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(out >= 0);
  uint64_t copied = 0;
  CHECK_OK(zh_request_body_copy_to_fd(req, out, 0, &copied));
  close(out);
  char body[96];
  snprintf(body, sizeof body, "%s %llu %llu", rc == ZH_OK ? "spooled" : "memory", (unsigned long long)len,
           (unsigned long long)copied);
  zt_respond_text(req, 200, body);
}

/* Caps every file this process writes at LIMIT bytes (RLIMIT_FSIZE); `old` gets the limit to
 * put back. */
static void cap_file_size(struct rlimit *old) {
  CHECK(getrlimit(RLIMIT_FSIZE, old) == 0);
  struct rlimit lim = *old;
  lim.rlim_cur = LIMIT;
  CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
}

/* Sends a PUT of UPLOAD bytes to `path`; the server may stop reading part-way. */
static zt_conn *put_upload(uint16_t port, const char *path) {
  uint8_t *body = malloc(UPLOAD);
  CHECK(body != NULL);
  zt_fill_pattern(body, UPLOAD, 0);
  zt_conn *c = zt_connect(port);
  char head[256];
  snprintf(head, sizeof head, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", path, UPLOAD);
  CHECK(zt_send_str(c, head) == 0);
  zt_send_all(c, body, UPLOAD); /* may fail part-way once the server gives up: fine */
  free(body);
  return c;
}

/* The destination fills up after LIMIT bytes (RLIMIT_FSIZE), on the engine listening on `port`. */
static void fill_up(uint16_t port) {
  atomic_store(&g_done_calls, 0);
  CHECK(ftruncate(g_fd, 0) == 0);
  struct rlimit old;
  cap_file_size(&old);
  zt_conn *c = put_upload(port, "/full");
  ZT_WAIT_UNTIL(atomic_load(&g_done_calls) == 1, 5000);
  CHECK_EQ_INT(atomic_load(&g_done_calls), 1);
  CHECK_EQ_INT(g_error, EFBIG);
  CHECK(g_bytes <= LIMIT && g_bytes > 0);
  /* Every byte that reached the file is counted (also those of a write cut short by the
   * limit), and the blocks the engine reserved for the rest were given back before on_done. */
  struct stat sb;
  CHECK(fstat(g_fd, &sb) == 0);
  CHECK_EQ_INT(sb.st_size, (long long)g_bytes);
  CHECK((uint64_t)sb.st_blocks * 512 <= LIMIT + 65536);
  zt_response r;
  if (zt_read_response(c, &r, 0) == 0) {
    CHECK_EQ_INT(r.status, 507);
    zt_response_free(&r);
  }
  size_t discarded = 0;
  CHECK(zt_wait_closed(c, 5000, &discarded) == 1); /* the rest of the body cannot be consumed */
  zt_close(c);
  zt_sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&g_done_calls), 1); /* exactly once */
  CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
}

int main(void) {
  signal(SIGXFSZ, SIG_IGN); /* the failing write must be an error, not a dead process */
  const char *dir = getenv("TMPDIR");
  char p[4096];
  snprintf(p, sizeof p, "%s/zh-capi-full-XXXXXX", dir && *dir ? dir : "/tmp");
  g_fd = mkostemp(p, O_CLOEXEC);
  CHECK(g_fd >= 0);
  unlink(p);
  snprintf(g_moved_path, sizeof g_moved_path, "%s/zh-capi-moved-%d", dir && *dir ? dir : "/tmp", (int)getpid());

  int fds0 = zt_count_fds();
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_head_handler(cfg, head_handler, NULL));
  CHECK_OK(zh_config_set_spool(cfg, 64 * 1024, NULL));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);

  /* 1. spool: a 3 MiB unclaimed body, moved into a caller file by copy_file_range */
  {
    size_t n = 3u << 20;
    uint8_t *body = malloc(n);
    CHECK(body != NULL);
    zt_fill_pattern(body, n, 0);
    zt_conn *c = zt_connect(port);
    char head[256];
    snprintf(head, sizeof head, "PUT /spool HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    CHECK(zt_send_str(c, head) == 0);
    CHECK(zt_send_all(c, body, n) == 0);
    zt_response r;
    CHECK(zt_read_response(c, &r, 0) == 0);
    CHECK_EQ_INT(r.status, 200);
    char want[96];
    snprintf(want, sizeof want, "spooled %zu %zu", n, n);
    CHECK_STREQ((const char *)r.body, want);
    zt_response_free(&r);
    zt_close(c);
    int mf = open(g_moved_path, O_RDONLY | O_CLOEXEC);
    CHECK(mf >= 0);
    uint8_t *back = malloc(n);
    CHECK(pread(mf, back, n, 0) == (ssize_t)n);
    CHECK(zt_check_pattern(back, n, 0) < 0);
    close(mf);
    unlink(g_moved_path);
    free(back);
    free(body);
    zh_stats st;
    zt_stats(e, &st);
    CHECK(st.bytes_copy_file_range >= n);
    CHECK(st.body_bytes_spliced > 0);
  }

  /* 2. an unclaimed body whose spool file fills up part-way (EFBIG from RLIMIT_FSIZE): the
   * engine answers it (413 past the largest file; 507 for a full disk), not a silent close, and
   * the handler never runs. */
  {
    struct rlimit old;
    cap_file_size(&old);
    zt_conn *c = put_upload(port, "/spool");
    zt_response r;
    CHECK(zt_read_response(c, &r, 0) == 0);
    CHECK_EQ_INT(r.status, 413);
    zt_response_free(&r);
    size_t discarded = 0;
    CHECK(zt_wait_closed(c, 5000, &discarded) == 1);
    zt_close(c);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
  }

  /* 3. the destination fills up: body by splice, then by recv + pwrite (force copy) */
  fill_up(port);
  {
    zh_config *ccfg = NULL;
    CHECK_OK(zh_config_new(&ccfg));
    CHECK_OK(zh_config_set_head_handler(ccfg, head_handler, NULL));
    CHECK_OK(zh_config_set_force_copy(ccfg, true));
    uint16_t cport = 0;
    zh_engine *ce = zt_engine_start(ccfg, handler, NULL, &cport);
    zh_config_free(ccfg);
    fill_up(cport);
    zh_stats cst;
    zt_stats(ce, &cst);
    CHECK_EQ_INT(cst.body_bytes_spliced, 0);
    CHECK_OK(zh_engine_shutdown(ce, 1000));
    zh_engine_free(ce);
  }

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.connections_active == 0), 3000);
  CHECK_EQ_INT(st.connections_active, 0);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  close(g_fd);
  CHECK_EQ_INT(zt_count_fds(), fds0 - 1); /* g_fd was open when fds0 was counted */
  printf("body_to_fd_full: ok\n");
  return 0;
}
