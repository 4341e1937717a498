/* Shared by the t_host_*.c tests: run a built host example (path in an environment variable set
 * by capi-tests/CMakeLists.txt with $<TARGET_FILE:...>), read its `listening on` line, talk to
 * it with the testutil client (and curl / python3 http.client when installed), stop it with a
 * signal and check its exit status. Header-only (static inline, so a test that does not use a
 * helper gets no warning). */
#ifndef ZH_T_HOST_COMMON_H
#define ZH_T_HOST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define HOST_BIG_SIZE ((size_t)(2u << 20) + 17u) /* big.bin: pattern bytes */

typedef struct host_proc {
  pid_t pid;
  uint16_t port;
  char root[512];
} host_proc;

/* Path of the example binary from env `var`; exits 77 (ctest: skipped unless told otherwise)
 * with a message when unset. */
static inline const char *host_binary(const char *var) {
  const char *bin = getenv(var);
  if (bin == NULL || *bin == '\0') {
    fprintf(stderr, "%s is not set: run this test through ctest (capi-tests/CMakeLists.txt)\n", var);
    exit(77);
  }
  CHECK_MSG(access(bin, X_OK) == 0, bin);
  return bin;
}

static inline void host_write_file(const char *dir, const char *name, const void *data, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    CHECK(n > 0);
    p += n;
    len -= (size_t)n;
  }
  close(fd);
}

/* A root with big.bin (pattern), hello.txt and index.html. */
static inline void host_make_root(host_proc *h) {
  const char *tmp = getenv("TMPDIR");
  snprintf(h->root, sizeof h->root, "%s/zh-host-root-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(h->root) != NULL);
  uint8_t *big = malloc(HOST_BIG_SIZE);
  CHECK(big != NULL);
  zt_fill_pattern(big, HOST_BIG_SIZE, 0);
  host_write_file(h->root, "big.bin", big, HOST_BIG_SIZE);
  free(big);
  host_write_file(h->root, "hello.txt", "a file\n", 7);
  host_write_file(h->root, "index.html", "<h1>index</h1>\n", 15);
}

static inline void host_remove_root(host_proc *h) {
  const char *names[] = {"big.bin", "hello.txt", "index.html"};
  for (size_t i = 0; i < 3; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", h->root, names[i]);
    unlink(path);
  }
  rmdir(h->root);
}

/* Starts `argv` (argv[0] = binary) with stdout on a pipe and waits up to 10 s for
 * `listening on SCHEME://127.0.0.1:PORT` (`scheme`: "http" or "https"). stderr is inherited
 * (ctest shows it). */
static inline void host_start_scheme(host_proc *h, char *const argv[], const char *scheme) {
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    execv(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  h->pid = pid;
  char line[512];
  size_t len = 0;
  double deadline = zt_now_ms() + 10000 * zt_time_scale();
  for (;;) {
    CHECK_MSG(zt_now_ms() < deadline, "no `listening on` line within 10 s");
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0) continue;
    ssize_t n = read(p[0], line + len, sizeof line - 1 - len);
    CHECK_MSG(n > 0, "the example exited before printing `listening on`");
    len += (size_t)n;
    line[len] = '\0';
    char *nl = strchr(line, '\n');
    if (nl == NULL) continue;
    *nl = '\0';
    char want[64];
    snprintf(want, sizeof want, "listening on %s://127.0.0.1:%%u", scheme);
    unsigned port = 0;
    CHECK_MSG(sscanf(line, want, &port) == 1, line);
    CHECK(port > 0 && port < 65536);
    h->port = (uint16_t)port;
    break;
  }
  close(p[0]); /* later writes to stdout would get EPIPE; the examples print nothing more there */
  fprintf(stderr, "started %s (pid %ld) on port %u\n", argv[0], (long)pid, (unsigned)h->port);
}

static inline void host_start(host_proc *h, char *const argv[]) { host_start_scheme(h, argv, "http"); }

/* Sends `sig`, waits up to 5 s; CHECK-fails unless the process exited with status 0. */
static inline void host_stop(host_proc *h, int sig) {
  CHECK(kill(h->pid, sig) == 0);
  double deadline = zt_now_ms() + 5000 * zt_time_scale();
  int ws = 0;
  for (;;) {
    pid_t r = waitpid(h->pid, &ws, WNOHANG);
    CHECK(r >= 0);
    if (r == h->pid) break;
    if (zt_now_ms() > deadline) {
      kill(h->pid, SIGKILL);
      waitpid(h->pid, &ws, 0);
      CHECK_MSG(0, "the example did not exit within 5 s of the signal");
    }
    zt_sleep_ms(5);
  }
  if (!WIFEXITED(ws)) fprintf(stderr, "killed by signal %d\n", WTERMSIG(ws));
  CHECK(WIFEXITED(ws));
  CHECK_EQ_INT(WEXITSTATUS(ws), 0);
}

static inline void check_hello(const zt_response *r) {
  CHECK_EQ_INT(r->status, 200);
  CHECK_EQ_INT(r->body_len, 13);
  CHECK_STREQ((const char *)r->body, "Hello, world!");
}

static inline void check_big(const zt_response *r) {
  CHECK_EQ_INT(r->status, 200);
  CHECK_EQ_INT(r->body_len, HOST_BIG_SIZE);
  CHECK_EQ_INT(zt_check_pattern(r->body, r->body_len, 0), -1);
}

/* /hello, a file (byte-identical), HEAD, 404, keep-alive (200 requests on one connection),
 * pipelining (30 requests in one write, answers in order). `files` is the URL prefix under
 * which the root is served ("" or "/static"). */
static inline void host_check_http(uint16_t port, const char *files) {
  char big[256], small[256], req[16384];
  snprintf(big, sizeof big, "%s/big.bin", files);
  snprintf(small, sizeof small, "%s/hello.txt", files);
  zt_response r;

  zt_conn *c = zt_connect(port);
  zt_get(c, "/hello", &r);
  check_hello(&r);
  zt_response_free(&r);
  zt_get(c, big, &r);
  check_big(&r);
  CHECK(zt_header(&r, "ETag") != NULL);
  zt_response_free(&r);
  zt_get(c, small, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "a file\n");
  zt_response_free(&r);
  zt_get(c, "/no/such/thing", &r);
  CHECK_EQ_INT(r.status, 404);
  zt_response_free(&r);
  snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n", big);
  CHECK(zt_send_str(c, req) == 0);
  CHECK(zt_read_response(c, &r, 1) == 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.content_length, HOST_BIG_SIZE);
  zt_response_free(&r);
  /* Range: the engine's zh_respond_file does it. */
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-1999\r\n\r\n", big);
  CHECK(zt_send_str(c, req) == 0);
  CHECK(zt_read_response(c, &r, 0) == 0);
  CHECK_EQ_INT(r.status, 206);
  CHECK_EQ_INT(r.body_len, 1000);
  CHECK_EQ_INT(zt_check_pattern(r.body, 1000, 1000), -1);
  zt_response_free(&r);

  /* keep-alive */
  for (int i = 0; i < 200; i++) {
    zt_get(c, (i % 10 == 9) ? small : "/hello", &r);
    if (i % 10 == 9) CHECK_STREQ((const char *)r.body, "a file\n");
    else check_hello(&r);
    CHECK(zt_header(&r, "Connection") == NULL || strcasecmp(zt_header(&r, "Connection"), "close") != 0);
    zt_response_free(&r);
  }

  /* pipelining: 30 requests in one write */
  size_t off = 0;
  for (int i = 0; i < 30; i++) {
    const char *path = (i % 3 == 0) ? "/hello" : (i % 3 == 1) ? small : big;
    off += (size_t)snprintf(req + off, sizeof req - off, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  }
  CHECK(zt_send_all(c, req, off) == 0);
  for (int i = 0; i < 30; i++) {
    CHECK(zt_read_response(c, &r, 0) == 0);
    if (i % 3 == 0) check_hello(&r);
    else if (i % 3 == 1) CHECK_STREQ((const char *)r.body, "a file\n");
    else check_big(&r);
    zt_response_free(&r);
  }

  /* Connection: close is honoured */
  CHECK(zt_send_str(c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 0);
  CHECK(zt_read_response(c, &r, 0) == 0);
  check_hello(&r);
  zt_response_free(&r);
  CHECK(zt_wait_closed(c, 5000, NULL));
  zt_close(c);
}

/* Runs `cmd` through the shell and returns its stdout (malloc'd), or NULL when it failed. */
static inline char *host_run(const char *cmd) {
  FILE *f = popen(cmd, "r");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  CHECK(out != NULL);
  size_t n;
  while ((n = fread(out + len, 1, cap - 1 - len, f)) > 0) {
    len += n;
    if (len == cap - 1) break;
  }
  out[len] = '\0';
  int st = pclose(f);
  if (st != 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* Real clients: curl (byte-compared with cmp) and Python's http.client on one keep-alive
 * connection. Each is skipped with a message when not installed. */
static inline void host_check_real_clients(const host_proc *h, const char *files) {
  char cmd[4096];
  if (system("command -v curl >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 10 http://127.0.0.1:%u/hello", (unsigned)h->port);
    char *out = host_run(cmd);
    CHECK_MSG(out != NULL, "curl /hello failed");
    CHECK_STREQ(out, "Hello, world!");
    free(out);
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 10 http://127.0.0.1:%u%s/big.bin | cmp - %s/big.bin && echo same",
             (unsigned)h->port, files, h->root);
    out = host_run(cmd);
    CHECK_MSG(out != NULL, "curl big.bin differs from the file");
    CHECK_STREQ(out, "same\n");
    free(out);
    fprintf(stderr, "curl: ok\n");
  } else {
    fprintf(stderr, "curl not installed: curl checks skipped\n");
  }
  if (system("command -v python3 >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd,
             "python3 - <<'EOF'\n"
             "import http.client\n"
             "c = http.client.HTTPConnection('127.0.0.1', %u, timeout=10)\n"
             "big = open('%s/big.bin', 'rb').read()\n"
             "for i in range(5):\n"
             "    c.request('GET', '/hello'); r = c.getresponse(); b = r.read()\n"
             "    assert r.status == 200 and b == b'Hello, world!', (r.status, b)\n"
             "    c.request('GET', '%s/big.bin'); r = c.getresponse(); b = r.read()\n"
             "    assert r.status == 200 and b == big, (r.status, len(b))\n"
             "c.request('GET', '/nope'); r = c.getresponse(); r.read(); assert r.status == 404\n"
             "print('python ok')\n"
             "EOF",
             (unsigned)h->port, h->root, files);
    char *out = host_run(cmd);
    CHECK_MSG(out != NULL, "python http.client check failed");
    CHECK_STREQ(out, "python ok\n");
    free(out);
    fprintf(stderr, "python3 http.client: ok\n");
  } else {
    fprintf(stderr, "python3 not installed: http.client checks skipped\n");
  }
}

/* The whole test of a single-loop host (zh_epoll_host, zh_libevent_host: `--listen --root`, files
 * at the top level, a directory index): the HTTP checks, real clients, then exit 0 on SIGTERM
 * with an idle keep-alive connection open (closed by the shutdown at once), and once more on
 * SIGINT after the host's 1 s heartbeat timer fired (it must not disturb the engine's timers).
 * `var` names the environment variable with the binary; returns main's status. */
static inline int host_run_single_loop_test(const char *var, const char *name) {
  const char *bin = host_binary(var);
  host_proc h;
  memset(&h, 0, sizeof h);
  host_make_root(&h);

  char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--root", h.root, NULL};
  host_start(&h, argv);
  host_check_http(h.port, "");
  /* the directory index */
  zt_conn *c = zt_connect(h.port);
  zt_response r;
  zt_get(c, "/", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "<h1>index</h1>\n");
  zt_response_free(&r);
  zt_get(c, "/../../etc/passwd", &r);
  CHECK(r.status == 403 || r.status == 404);
  zt_response_free(&r);
  host_check_real_clients(&h, "");
  host_stop(&h, SIGTERM);
  CHECK(zt_wait_closed(c, 2000, NULL));
  zt_close(c);

  host_start(&h, argv);
  zt_sleep_ms(1100);
  c = zt_connect(h.port);
  zt_get(c, "/hello", &r);
  check_hello(&r);
  zt_response_free(&r);
  zt_close(c);
  host_stop(&h, SIGINT);

  host_remove_root(&h);
  fprintf(stderr, "%s: ok\n", name);
  return 0;
}

#endif
