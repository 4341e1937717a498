/* sendfile_limit — the ceiling for the `big` and `limit` scenarios of bench/run.sh: the least a
 * server can do to put a file into a loopback socket.
 *
 *   sendfile_limit FILE PORT [CHUNK]
 *
 * Listens on 127.0.0.1:PORT (0: any free port), prints `listening on http://127.0.0.1:PORT`, then
 * for each connection, one at a time: reads the request head (up to the blank line), writes a
 * fixed HTTP/1.1 200 header with Content-Length and `Connection: close`, loops sendfile(2) over
 * the whole FILE on the blocking socket, and closes the connection. Whatever the path, FILE is
 * the answer. No epoll, no non-blocking I/O, no per-request open: one fd, opened once.
 * CHUNK (bytes, default 0 = as much as one call takes) caps each sendfile call: on loopback,
 * calls of 256 KiB measured faster and cheaper than one call for the whole file (BENCHMARKS.md). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_head(int c) {
  char buf[8192];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    buf[have] = '\0';
    if (strstr(buf, "\r\n\r\n") != NULL) return 0;
    if (have == sizeof buf - 1) return -1;
  }
}

static int write_all(int c, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(c, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s FILE PORT [CHUNK]\n", argv[0]);
    return 2;
  }
  size_t chunk = 0x7ffff000; /* the kernel's own cap per call */
  if (argc == 4) {
    char *end = NULL;
    unsigned long long v = strtoull(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0') {
      fprintf(stderr, "CHUNK must be a number of bytes, got %s\n", argv[3]);
      return 2;
    }
    if (v > 0 && v < chunk) chunk = (size_t)v;
  }
  int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    perror(argv[1]);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(argv[2]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
    perror("bind/listen");
    return 1;
  }
  printf("listening on http://127.0.0.1:%u\n", (unsigned)ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      perror("accept4");
      return 1;
    }
    if (read_head(c) == 0) {
      char head[256];
      int n = snprintf(head, sizeof head,
                       "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %lld\r\nConnection: close\r\n\r\n",
                       (long long)st.st_size);
      if (write_all(c, head, (size_t)n) == 0) {
        off_t off = 0;
        while (off < st.st_size) {
          size_t want = (size_t)(st.st_size - off);
          if (want > chunk) want = chunk;
          ssize_t sent = sendfile(c, fd, &off, want);
          if (sent < 0 && errno == EINTR) continue;
          if (sent <= 0) break; /* peer gone */
        }
      }
    }
    close(c);
  }
}
