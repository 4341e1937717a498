/* floor — the least an HTTP/1.1 keep-alive server can do per request on this kernel, for the
 * `small` and `64k` scenarios of bench/run.sh (the servers `floor-epoll` and `floor-uring`).
 *
 *   floor epoll ROOT PORT     one thread, edge-triggered epoll: per request one recv, then one
 *                             send (/hello) or send(head, MSG_MORE) + sendfile (a file)
 *   floor uring ROOT PORT     one thread, io_uring (liburing; SINGLE_ISSUER|DEFER_TASKRUN when
 *                             the kernel has them): per request one recv and one send request,
 *                             all connections' requests batched into one io_uring_enter per loop
 *                             turn; /hello only (files answer 404: io_uring has no sendfile)
 *
 * It is a measuring stick, not a server: it answers GET /hello with the same 13-byte body and
 * header set as zh_static, and GET of a file under ROOT with Date, Content-Type and
 * Content-Length, keeping every opened file open for the life of the process (an fd cache that
 * never revalidates). It does no header parsing beyond finding the path and the blank line, no
 * Range, no conditional requests, no timeouts. Whatever a real server does more is the price of
 * being one; whatever this costs is what the kernel charges for the syscalls, the TCP work the
 * loopback runs in the sender's context, and the wake-ups of the client.
 *
 * Prints `listening on http://127.0.0.1:PORT` when ready (PORT 0: any free port). Runs until
 * SIGTERM/SIGINT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef FLOOR_URING
#include <liburing.h>
#endif

#define BUF_BYTES 4096
#define MAX_FILES 32
#define HEAD_BYTES 256

static volatile sig_atomic_t g_stop;
static int g_root_fd = -1;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* ---- the Date header, formatted once a second ---------------------------------------------- */

static char g_date[40];
static time_t g_date_at;

static void refresh_date(void) {
  time_t now = time(NULL);
  if (now == g_date_at) return;
  g_date_at = now;
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(g_date, sizeof g_date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ---- requests and answers ------------------------------------------------------------------ */

struct file {
  char path[128];
  int fd;
  off_t size;
};
static struct file g_files[MAX_FILES];
static int g_nfiles;

/* The opened file for a request path under ROOT, opened on first use and kept; NULL if absent. */
static struct file *file_for(const char *path, size_t len) {
  for (int i = 0; i < g_nfiles; i++) {
    if (strlen(g_files[i].path) == len && memcmp(g_files[i].path, path, len) == 0) return &g_files[i];
  }
  if (g_nfiles == MAX_FILES || len == 0 || len >= sizeof g_files[0].path) return NULL;
  struct file *f = &g_files[g_nfiles];
  memcpy(f->path, path, len);
  f->path[len] = '\0';
  if (strstr(f->path, "..") != NULL) return NULL;
  int fd = openat(g_root_fd, f->path[0] == '/' ? f->path + 1 : f->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return NULL;
  }
  f->fd = fd;
  f->size = st.st_size;
  g_nfiles++;
  return f;
}

/* What to send for one request head. */
struct answer {
  char head[HEAD_BYTES + 16];
  size_t head_len;
  struct file *file; /* NULL: the head is the whole answer */
};

/* Looks at buf[0..len): returns the head's length once "\r\n\r\n" is there, 0 if more bytes are
 * needed, -1 for a request this peer does not serve (it then closes the connection). */
static long head_length(const char *buf, size_t len) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (end == NULL) return len >= BUF_BYTES ? -1 : 0;
  return (long)(end - buf) + 4;
}

static void answer_for(const char *head, size_t len, struct answer *a, bool files) {
  static const char hello[] = "Hello, world!";
  a->file = NULL;
  refresh_date();
  const char *path = NULL;
  size_t path_len = 0;
  if (len > 4 && memcmp(head, "GET ", 4) == 0) {
    path = head + 4;
    const char *sp = memchr(path, ' ', len - 4);
    path_len = sp ? (size_t)(sp - path) : 0;
  }
  if (path_len == 6 && memcmp(path, "/hello", 6) == 0) {
    a->head_len = (size_t)snprintf(a->head, sizeof a->head,
                                   "HTTP/1.1 200 OK\r\nDate: %s\r\ncontent-type: text/plain\r\n"
                                   "Content-Length: 13\r\n\r\n%s", g_date, hello);
    return;
  }
  struct file *f = (files && path_len > 0) ? file_for(path, path_len) : NULL;
  if (f == NULL) {
    a->head_len = (size_t)snprintf(a->head, sizeof a->head,
                                   "HTTP/1.1 404 Not Found\r\nDate: %s\r\nContent-Length: 0\r\n\r\n", g_date);
    return;
  }
  a->file = f;
  a->head_len = (size_t)snprintf(a->head, sizeof a->head,
                                 "HTTP/1.1 200 OK\r\nDate: %s\r\ncontent-type: application/octet-stream\r\n"
                                 "Content-Length: %lld\r\n\r\n", g_date, (long long)f->size);
}

static int listen_on(int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, 4096) != 0 ||
      getsockname(s, (struct sockaddr *)&sa, &sl) != 0) {
    perror("listen");
    exit(1);
  }
  printf("listening on http://127.0.0.1:%d\n", ntohs(sa.sin_port));
  fflush(stdout);
  return s;
}

/* ---- epoll --------------------------------------------------------------------------------- */

struct econn {
  int fd;
  size_t have;
  /* what is still to send when the socket buffer was full */
  const char *pend;
  size_t pend_len;
  struct file *pend_file;
  off_t pend_off;
  struct answer a;
  char buf[BUF_BYTES];
};

static void econn_close(int ep, struct econn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Sends what is pending; 1 when all is sent, 0 when the socket is full, -1 on error. */
static int econn_flush(struct econn *c) {
  while (c->pend_len > 0) {
    ssize_t n = send(c->fd, c->pend, c->pend_len, MSG_NOSIGNAL | (c->pend_file ? MSG_MORE : 0));
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->pend += n;
    c->pend_len -= (size_t)n;
  }
  while (c->pend_file != NULL && c->pend_off < c->pend_file->size) {
    ssize_t n = sendfile(c->fd, c->pend_file->fd, &c->pend_off, (size_t)(c->pend_file->size - c->pend_off));
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) return -1;
  }
  c->pend_file = NULL;
  return 1;
}

/* Reads once (edge-triggered: a short read means the socket is empty, and new bytes raise a new
 * edge), answers every complete head in the buffer. -1: close. */
static int econn_on_readable(struct econn *c) {
  for (;;) {
    if (c->pend_len > 0 || c->pend_file != NULL) return 0; /* answer the next once this is out */
    ssize_t n = recv(c->fd, c->buf + c->have, BUF_BYTES - c->have, 0);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) return -1;
    c->have += (size_t)n;
    bool short_read = c->have < BUF_BYTES;
    long h;
    while ((h = head_length(c->buf, c->have)) > 0) {
      answer_for(c->buf, (size_t)h, &c->a, true);
      memmove(c->buf, c->buf + h, c->have - (size_t)h);
      c->have -= (size_t)h;
      c->pend = c->a.head;
      c->pend_len = c->a.head_len;
      c->pend_file = c->a.file;
      c->pend_off = 0;
      int r = econn_flush(c);
      if (r <= 0) return r;
    }
    if (h < 0) return -1;
    if (short_read) return 0;
  }
}

static int run_epoll(int lfd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[512];
  while (!g_stop) {
    int n = epoll_wait(ep, evs, 512, 1000);
    for (int i = 0; i < n; i++) {
      struct econn *c = evs[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct econn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      int r = 0;
      if (evs[i].events & EPOLLOUT) r = (c->pend_len > 0 || c->pend_file) ? econn_flush(c) : 1;
      if (r >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) r = econn_on_readable(c);
      if (r < 0) econn_close(ep, c);
    }
  }
  return 0;
}

/* ---- io_uring ------------------------------------------------------------------------------ */

#ifdef FLOOR_URING
enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

struct uconn {
  int fd;
  size_t have;
  size_t sent;
  struct answer a;
  char buf[BUF_BYTES];
};

#define UD(op, ptr) ((uint64_t)(uintptr_t)(ptr) | (uint64_t)(op))
#define UD_OP(ud) ((int)((ud) & 3))
#define UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)3))

static struct io_uring_sqe *sqe_get(struct io_uring *ring) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  if (sqe == NULL) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
  }
  return sqe;
}

static void queue_recv(struct io_uring *ring, struct uconn *c) {
  struct io_uring_sqe *sqe = sqe_get(ring);
  io_uring_prep_recv(sqe, c->fd, c->buf + c->have, BUF_BYTES - c->have, 0);
  io_uring_sqe_set_data64(sqe, UD(OP_RECV, c));
}

static void queue_send(struct io_uring *ring, struct uconn *c) {
  struct io_uring_sqe *sqe = sqe_get(ring);
  io_uring_prep_send(sqe, c->fd, c->a.head + c->sent, c->a.head_len - c->sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, UD(OP_SEND, c));
}

static void uconn_close(struct uconn *c) {
  close(c->fd);
  free(c);
}

/* After bytes arrived or a send finished: answer the next complete head, else read more. */
static void uconn_next(struct io_uring *ring, struct uconn *c) {
  long h = head_length(c->buf, c->have);
  if (h < 0) {
    uconn_close(c);
    return;
  }
  if (h == 0) {
    queue_recv(ring, c);
    return;
  }
  answer_for(c->buf, (size_t)h, &c->a, false);
  memmove(c->buf, c->buf + h, c->have - (size_t)h);
  c->have -= (size_t)h;
  c->sent = 0;
  queue_send(ring, c);
}

static int run_uring(int lfd) {
  struct io_uring ring;
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
  int r = io_uring_queue_init_params(4096, &ring, &p);
  if (r < 0) {
    memset(&p, 0, sizeof p);
    r = io_uring_queue_init_params(4096, &ring, &p);
  }
  if (r < 0) {
    fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
    return 1;
  }
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, NULL));
  struct __kernel_timespec ts = {.tv_sec = 1};
  while (!g_stop) {
    struct io_uring_cqe *cqe;
    r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    if (r < 0 && r != -ETIME && r != -EINTR) {
      fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
      return 1;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      int res = cqe->res;
      if (UD_OP(ud) == OP_ACCEPT) {
        if (res >= 0) {
          int one = 1;
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct uconn *c = calloc(1, sizeof *c);
          c->fd = res;
          queue_recv(&ring, c);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
          sqe = sqe_get(&ring);
          io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
          io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, NULL));
        }
        continue;
      }
      struct uconn *c = UD_PTR(ud);
      if (UD_OP(ud) == OP_RECV) {
        if (res <= 0) {
          uconn_close(c);
          continue;
        }
        c->have += (size_t)res;
        uconn_next(&ring, c);
      } else {
        if (res < 0) {
          uconn_close(c);
          continue;
        }
        c->sent += (size_t)res;
        if (c->sent < c->a.head_len) queue_send(&ring, c);
        else uconn_next(&ring, c);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  return 0;
}
#endif

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "epoll") != 0 && strcmp(argv[1], "uring") != 0)) {
    fprintf(stderr, "usage: %s epoll|uring ROOT PORT\n", argv[0]);
    return 2;
  }
  g_root_fd = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (g_root_fd < 0) {
    perror(argv[2]);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int lfd = listen_on(atoi(argv[3]));
  if (strcmp(argv[1], "epoll") == 0) return run_epoll(lfd);
#ifdef FLOOR_URING
  return run_uring(lfd);
#else
  fprintf(stderr, "%s: built without liburing (build with -DFLOOR_URING -luring)\n", argv[0]);
  return 1;
#endif
}
