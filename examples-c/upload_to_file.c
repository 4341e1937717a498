/* zh_upload [--listen ADDR] [--threads N] DIR
 *
 * Stores PUT bodies as files in DIR, by splice: the head handler opens DIR/NAME and claims the
 * body with zh_request_body_to_fd, so the payload goes socket -> pipe -> file without passing
 * through this process's memory. When the body is complete, on_done answers 201 with the byte
 * count (or 507 / 413 when the body does not fit, 500 for other errors). GET/other methods get
 * 405; names must be a single path segment of [A-Za-z0-9._-] (no "..").
 *
 * With ZH_FORCE_COPY=1 in the environment the body is received with recv + pwrite instead (the
 * baseline for benchmarks).
 *
 *   build/examples-c/zh_upload /tmp/up &
 *   curl -T big.iso http://127.0.0.1:8080/big.iso
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

#include "example_common.h"

static int g_dir_fd = -1;

static int valid_name(const char *name) {
  if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
  for (const char *p = name; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static void answer(zh_request *req, uint16_t status, const char *text) {
  zh_response *resp = NULL;
  if (zh_response_new(status, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  zh_response_add_header(resp, "Content-Type", "text/plain");
  zh_response_add_bytes(resp, text, strlen(text));
  zh_respond(req, resp);
}

/* Runs once per claimed body, on the worker thread. */
static void on_done(void *ud, zh_request *req, uint64_t bytes, int error) {
  int fd = (int)(intptr_t)ud;
  close(fd);
  char msg[128];
  if (error == 0) {
    snprintf(msg, sizeof msg, "%llu\n", (unsigned long long)bytes);
    answer(req, 201, msg);
  } else {
    snprintf(msg, sizeof msg, "upload failed: %s\n", strerror(error));
    /* No room (the engine reserves the range first, so this usually comes before the body). */
    uint16_t status = (error == ENOSPC || error == EDQUOT) ? 507 : error == EFBIG ? 413 : 500;
    answer(req, status, msg);
  }
}

/* Runs when a head with a body is complete, before the body is read. */
static void on_head(void *ud, zh_request *req) {
  (void)ud;
  if (strcmp(zh_request_method(req), "PUT") != 0) {
    zh_request_reject(req, 405);
    return;
  }
  const char *name = zh_request_path(req) + 1;
  if (!valid_name(name)) {
    zh_request_reject(req, 403);
    return;
  }
  int fd = openat(g_dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    zh_request_reject(req, 500);
    return;
  }
  if (zh_request_body_to_fd(req, fd, 0, on_done, (void *)(intptr_t)fd) != ZH_OK) {
    close(fd);
    zh_request_reject(req, 500);
  }
  /* Claimed: the request stays ours until on_done answers it. */
}

/* Requests without a body (GET, an empty PUT) come here. */
static void on_request(void *ud, zh_request *req) {
  (void)ud;
  if (strcmp(zh_request_method(req), "PUT") == 0) {
    const char *name = zh_request_path(req) + 1;
    if (!valid_name(name)) {
      zh_request_reject(req, 403);
      return;
    }
    int fd = openat(g_dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      zh_request_reject(req, 500);
      return;
    }
    close(fd);
    answer(req, 201, "0\n");
    return;
  }
  zh_response *resp = NULL;
  if (zh_response_new(405, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  zh_response_add_header(resp, "Allow", "PUT");
  zh_respond(req, resp);
}

static zh_result configure(zh_config *cfg) {
  /* ZH_FORCE_COPY=1: the read + write baseline (recv + pwrite) the benchmark compares against. */
  const char *copy = getenv("ZH_FORCE_COPY");
  if (copy != NULL && strcmp(copy, "1") == 0) {
    zh_result rc = zh_config_set_force_copy(cfg, true);
    if (rc != ZH_OK) return rc;
  }
  return zh_config_set_head_handler(cfg, on_head, NULL);
}

int main(int argc, char **argv) {
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, "DIR", &opts);
  if (opts.arg == NULL) {
    zh_ex_usage(argv[0], "DIR");
    return 2;
  }
  g_dir_fd = open(opts.arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_dir_fd < 0) {
    fprintf(stderr, "%s: %s: %s\n", argv[0], opts.arg, strerror(errno));
    return 1;
  }
  int status = zh_ex_serve(&opts, on_request, NULL, configure);
  close(g_dir_fd);
  return status;
}
