/* zh_respond_file_at and the open-file cache from C: a cached file costs one open (counted in
 * zh_stats), Range works on the cached descriptor, failures leave the request to the caller
 * with ZH_ERR_NOT_FOUND / ZH_ERR_FORBIDDEN / ZH_ERR_IS_DIRECTORY, misuse gets its code, a file
 * replaced on disk is served after the validity interval, and the cache's descriptors are
 * closed when the engine shuts down. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static int g_dir = -1;
static char g_root[256];
static atomic_int g_misuse_checked;

static void path_of(char *out, size_t cap, const char *rel) {
  snprintf(out, cap, "%s/%s", g_root, rel);
}

static void write_file(const char *rel, const char *text) {
  char p[512], tmp[520];
  path_of(p, sizeof p, rel);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  FILE *f = fopen(tmp, "wb");
  CHECK(f != NULL);
  CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
  CHECK(fclose(f) == 0);
  CHECK(rename(tmp, p) == 0); /* a new inode, as deploy tools do */
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  if (atomic_exchange(&g_misuse_checked, 1) == 0) {
    CHECK_RES(zh_respond_file_at(NULL, g_dir, "a.txt", 0, NULL), ZH_ERR_NULL);
    CHECK_RES(zh_respond_file_at(req, g_dir, NULL, 0, NULL), ZH_ERR_NULL);
    CHECK_RES(zh_respond_file_at(req, -1, "a.txt", 0, NULL), ZH_ERR_INVALID);
    CHECK_RES(zh_respond_file_at(req, g_dir, "a.txt", 0x80, NULL), ZH_ERR_INVALID);
    zh_file_info bad;
    memset(&bad, 0, sizeof bad);
    bad.struct_size = sizeof bad;
    bad.last_modified = -1;
    bad.size = 1 << 20; /* larger than the file */
    CHECK_RES(zh_respond_file_at(req, g_dir, "a.txt", 0, &bad), ZH_ERR_RANGE);
  }
  zh_result rc = zh_respond_file_at(req, g_dir, path, 0, NULL);
  switch (rc) {
    case ZH_OK:
      return;
    case ZH_ERR_NOT_FOUND:
      zt_respond_text(req, 404, "missing");
      return;
    case ZH_ERR_FORBIDDEN:
      zt_respond_text(req, 403, "forbidden");
      return;
    case ZH_ERR_IS_DIRECTORY:
      zt_respond_text(req, 301, "directory");
      return;
    default:
      fprintf(stderr, "zh_respond_file_at(%s): %s\n", path, zh_result_str(rc));
      zt_respond_text(req, 500, "error");
  }
}

/* Whether any descriptor of this process points at `path`. */
static int is_open(const char *path) {
  for (int fd = 0; fd < 4096; fd++) {
    char link[64], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strcmp(target, path) == 0) return 1;
  }
  return 0;
}

static int status_of(zt_conn *c, const char *path, zt_response *r) {
  zt_get(c, path, r);
  return r->status;
}

int main(void) {
  snprintf(g_root, sizeof g_root, "/tmp/zt-file-at-%d", (int)getpid());
  char p[512], secret[512];
  CHECK(mkdir(g_root, 0755) == 0);
  path_of(p, sizeof p, "sub");
  CHECK(mkdir(p, 0755) == 0);
  write_file("a.txt", "version one");
  snprintf(secret, sizeof secret, "%s.secret", g_root);
  FILE *f = fopen(secret, "w");
  CHECK(f != NULL && fputs("outside", f) >= 0 && fclose(f) == 0);
  path_of(p, sizeof p, "escape");
  CHECK(symlink(secret, p) == 0);
  path_of(p, sizeof p, "fifo");
  CHECK(mkfifo(p, 0644) == 0);
  g_dir = open(g_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  CHECK(g_dir >= 0);

  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_threads(cfg, 1));
  CHECK_RES(zh_config_set_file_cache(cfg, 8, 0), ZH_ERR_INVALID);
  CHECK_RES(zh_config_set_file_cache(NULL, 8, 100), ZH_ERR_NULL);
  CHECK_OK(zh_config_set_file_cache(cfg, 8, 300));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);

  zt_conn *c = zt_connect(port);
  zt_response r;
  for (int i = 0; i < 5; i++) {
    CHECK_EQ_INT(status_of(c, "/a.txt", &r), 200);
    CHECK_STREQ((const char *)r.body, "version one");
    CHECK(zt_header(&r, "ETag") != NULL);
    zt_response_free(&r);
  }
  CHECK_OK(zt_send_str(c, "GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=8-10\r\n\r\n"));
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 206);
  CHECK_STREQ((const char *)r.body, "one");
  zt_response_free(&r);
  zh_stats st;
  zt_stats(e, &st);
  /* One open (by the first handler call's ZH_ERR_RANGE check of "a.txt", the same entry as
   * "/a.txt"), then six hits: five GETs and the Range request. */
  CHECK_EQ_INT(st.file_opens, 1);
  CHECK_EQ_INT(st.file_cache_hits, 6);

  /* Failures: the request stays ours (the handler answers them). */
  CHECK_EQ_INT(status_of(c, "/missing", &r), 404);
  zt_response_free(&r);
  CHECK_EQ_INT(status_of(c, "/escape", &r), 403);
  zt_response_free(&r);
  CHECK_EQ_INT(status_of(c, "/../x", &r), 403);
  zt_response_free(&r);
  CHECK_EQ_INT(status_of(c, "/fifo", &r), 403);
  zt_response_free(&r);
  CHECK_EQ_INT(status_of(c, "/sub", &r), 301);
  zt_response_free(&r);
  CHECK(atomic_load(&g_misuse_checked));

  /* Replaced on disk: served after the 300 ms validity interval. */
  write_file("a.txt", "version two!");
  zt_sleep_ms(400);
  CHECK_EQ_INT(status_of(c, "/a.txt", &r), 200);
  CHECK_STREQ((const char *)r.body, "version two!");
  zt_response_free(&r);
  zt_close(c);

  path_of(p, sizeof p, "a.txt");
  CHECK(is_open(p));
  CHECK_OK(zh_engine_shutdown(e, 2000));
  CHECK_MSG(!is_open(p), "the cache's descriptors close when the engine shuts down");
  zh_engine_free(e);

  close(g_dir);
  unlink(p);
  path_of(p, sizeof p, "escape");
  unlink(p);
  path_of(p, sizeof p, "fifo");
  unlink(p);
  path_of(p, sizeof p, "sub");
  rmdir(p);
  unlink(secret);
  rmdir(g_root);
  fprintf(stderr, "file_at: ok\n");
  return 0;
}
