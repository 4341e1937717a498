/* zh_pipe_source: each request runs a child process and streams its stdout to the client by
 * splice (pipe → socket, no copy through user space): zh_response_add_fd(fd, -1, ZH_FD_CLOSE),
 * so the body goes chunked for HTTP/1.1 (close-delimited for HTTP/1.0) and the engine closes
 * the pipe exactly once.
 *
 *   zh_pipe_source [--listen ADDR] [--threads N] [--cmd 'SHELL COMMAND']
 *   curl -i http://127.0.0.1:8080/
 *
 * Without --cmd the child is `/bin/ls -l /`; with it, `/bin/sh -c 'SHELL COMMAND'`, fixed at
 * startup (requests never choose what runs). The child gets /dev/null as stdin, the pipe as
 * stdout, the server's stderr, default signal dispositions and an empty signal mask (the
 * engine's threads block SIGPIPE; a child must not inherit that, so it dies quietly when the
 * client goes away and the engine closes the pipe). Finished children are reaped with
 * waitpid(WNOHANG) on every request and once more at exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example_common.h"
#include "zerohttp.h"

extern char **environ;

static const char *g_cmd; /* NULL: /bin/ls -l / */

static void reap_children(void) {
  int status;
  while (waitpid(-1, &status, WNOHANG) > 0) {
  }
}

/* Starts the command with its stdout on a new pipe; returns the read end (O_CLOEXEC, so later
 * children do not hold it open) or -1. */
static int spawn_command(pid_t *pid_out) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1); /* dup2 clears O_CLOEXEC on fd 1 */
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  char *ls_argv[] = {"/bin/ls", "-l", "/", NULL};
  char *sh_argv[] = {"/bin/sh", "-c", (char *)g_cmd, NULL};
  char **argv = g_cmd ? sh_argv : ls_argv;
  int err = posix_spawn(pid_out, argv[0], &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(p[1]); /* only the child writes: EOF when it exits */
  if (err != 0) {
    fprintf(stderr, "posix_spawn %s: %s\n", argv[0], strerror(err));
    close(p[0]);
    return -1;
  }
  return p[0];
}

static void handle(void *ud, zh_request *req) {
  (void)ud;
  reap_children();
  const char *method = zh_request_method(req);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    zh_request_reject(req, 405);
    return;
  }
  zh_response *resp = NULL;
  if (zh_response_new(200, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  pid_t pid = 0;
  int fd = spawn_command(&pid);
  if (fd < 0) {
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  char pidbuf[32];
  snprintf(pidbuf, sizeof pidbuf, "%ld", (long)pid);
  zh_response_add_header(resp, "Content-Type", "text/plain; charset=utf-8");
  zh_response_add_header(resp, "X-Child-Pid", pidbuf);
  /* -1: until EOF → chunked; ZH_FD_CLOSE: the engine closes the read end exactly once */
  zh_result rc = zh_response_add_fd(resp, fd, -1, ZH_FD_CLOSE);
  if (rc != ZH_OK) { /* nothing taken */
    zh_ex_fail("zh_response_add_fd", rc);
    close(fd);
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  rc = zh_respond(req, resp);
  if (rc != ZH_OK && rc != ZH_ERR_CLOSED) zh_ex_fail("zh_respond", rc);
}

int main(int argc, char **argv) {
  /* take --cmd out, leave the rest to the common parser */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (rest == NULL) return 1;
  int n = 0;
  rest[n++] = argv[0];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--cmd") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: --cmd needs a value\n", argv[0]);
        return 2;
      }
      g_cmd = argv[++i];
    } else if (strncmp(argv[i], "--cmd=", 6) == 0) {
      g_cmd = argv[i] + 6;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fprintf(stderr, "usage: %s [--listen ADDR] [--threads N] [--cmd 'SHELL COMMAND']\n", argv[0]);
      free(rest);
      return 0;
    } else {
      rest[n++] = argv[i];
    }
  }
  zh_ex_opts opts;
  zh_ex_parse_args(n, rest, NULL, &opts);
  int status = zh_ex_serve(&opts, handle, NULL, NULL);
  reap_children();
  free(rest);
  return status;
}
