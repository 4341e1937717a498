/* mhd_static — a small libmicrohttpd file server for the zerohttp benchmark (bench/run.sh).
 *
 *   mhd_static ROOT PORT
 *
 * Listens on 127.0.0.1:PORT with one internal epoll thread (MHD_USE_EPOLL_INTERNAL_THREAD,
 * MHD_USE_TURBO), prints `listening on http://127.0.0.1:PORT` once ready and runs until
 * SIGTERM/SIGINT.
 *   GET /hello     -> "Hello, world!" (13 bytes) from memory (MHD_RESPMEM_PERSISTENT)
 *   GET /<path>    -> the regular file ROOT/<path>, answered with MHD_create_response_from_fd
 *                     so that libmicrohttpd sends it with sendfile(2); 404 if missing,
 *                     403 for "..", non-regular files or anything unreadable
 *   other methods  -> 405
 * Keep-alive connections stay open for 120 s of idleness; up to 10,000 connections. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char HELLO[] = "Hello, world!";
static int root_fd = -1;

static enum MHD_Result queue_status(struct MHD_Connection *c, unsigned int status) {
  static const char body[] = "error\n";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL) return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls) {
  (void)cls;
  (void)version;
  (void)upload_data;
  /* First call: the head has arrived; answer on the next call, once the (empty) body is read.
   * A response queued on the first call makes libmicrohttpd close the connection afterwards
   * (it cannot know whether a body is still coming), which would defeat keep-alive. */
  static int first_call_marker;
  if (*req_cls == NULL) {
    *req_cls = &first_call_marker;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0; /* discard any request body */
    return MHD_YES;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    return queue_status(c, MHD_HTTP_METHOD_NOT_ALLOWED);
  }
  if (strcmp(url, "/hello") == 0) {
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof HELLO - 1, (void *)HELLO,
                                                             MHD_RESPMEM_PERSISTENT);
    if (r == NULL) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
  }
  const char *rel = url;
  while (*rel == '/') rel++;
  if (*rel == '\0' || strstr(rel, "..") != NULL) return queue_status(c, MHD_HTTP_FORBIDDEN);
  int fd = openat(root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return queue_status(c, errno == ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_FORBIDDEN);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return queue_status(c, MHD_HTTP_FORBIDDEN);
  }
  /* The response owns fd from here on (closed by MHD_destroy_response, also on failure). */
  struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
  if (r == NULL) {
    close(fd);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s ROOT PORT\n", argv[0]);
    return 2;
  }
  root_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    perror(argv[1]);
    return 1;
  }
  int port = atoi(argv[2]);
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "bad port %s\n", argv[2]);
    return 2;
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by MHD's thread: only sigwait sees them */
  signal(SIGPIPE, SIG_IGN);

  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, (uint16_t)port, NULL, NULL, handler, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 10000u,
      MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "MHD_start_daemon failed on 127.0.0.1:%d\n", port);
    return 1;
  }
  printf("listening on http://127.0.0.1:%d\n", port);
  fflush(stdout);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  MHD_stop_daemon(d);
  return 0;
}
