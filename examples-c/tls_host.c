/* zh_tls_host — HTTPS with OpenSSL through zerohttp's host transports, in one epoll loop.
 *
 *   zh_tls_host --listen ADDR --cert FILE --key FILE [--root DIR]
 *
 * The host owns everything on the wire; the engine only sees decrypted bytes:
 *   - the engine runs in external-loop mode (zh_config_set_threads(cfg, 0)): its zh_engine_fd
 *     sits in the host's epoll set and zh_engine_step(engine, 0) runs when it is readable or
 *     zh_engine_next_timeout_ms() has passed (handlers and transport callbacks run inside it);
 *   - the host binds and accepts TCP itself (non-blocking accept4), creates an SSL per
 *     connection and drives SSL_accept from its epoll loop (EPOLLIN|EPOLLOUT|EPOLLET) until the
 *     handshake completes;
 *   - then zh_engine_adopt_transport(engine, tls_read, tls_writev, tls_shutdown, tls_close, ...)
 *     hands the session to the engine: tls_read = SSL_read, tls_writev = SSL_write of the
 *     gathered slices (partial writes enabled), tls_shutdown = SSL_shutdown (close_notify),
 *     tls_close = remove the fd from epoll, SSL_free, close, and retire the context;
 *   - every later edge on the socket → zh_transport_ready(transport): the engine retries the
 *     read/write that returned ZH_TRANSPORT_AGAIN.
 * Lifetime: the zh_transport handle is valid until tls_close returns. tls_close takes the fd out
 * of epoll and marks the context dead; the memory is freed only after the current batch of
 * epoll events has been handled, so a stale event can never reach a freed context.
 *
 * SIGINT/SIGTERM come through a signalfd: zh_engine_shutdown(engine, 2000) (which drives the
 * engine itself: idle connections close at once), free handshakes still in progress, exit 0.
 * SIGPIPE is ignored (external-loop hosts must; SSL_write on a reset socket would raise it).
 *
 * Note: while zh_engine_shutdown runs, this host's loop does not, so a response blocked on a
 * full socket gets no zh_transport_ready and is cut when the 2 s grace period ends.
 *
 * Routes: GET/HEAD /hello → `Hello, world!`; with --root DIR, any other path is a file under DIR
 * (zh_respond_file: Range, ETag/304 by the engine; bytes are copied through the transport since
 * sendfile cannot encrypt). Access log lines go to stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "example_common.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define WRITE_GATHER 16384 /* one TLS record */

static const char HELLO[] = "Hello, world!";
static int g_root_fd = -1; /* O_PATH directory fd of --root, or -1 */

/* ---- per-connection context --------------------------------------------------------------- */

enum { KIND_LISTEN = 1, KIND_ENGINE, KIND_SIGNAL, KIND_CONN };

typedef struct tag {
  int kind; /* first member of every epoll data.ptr target */
} tag;

typedef struct conn {
  int kind; /* KIND_CONN */
  int fd;
  SSL *ssl;
  zh_transport *transport; /* NULL while handshaking */
  int dead;                /* closed: ignore further events, free at the end of the batch */
  char peer[INET6_ADDRSTRLEN + 16];
  struct conn *prev, *next; /* all live contexts (handshaking or adopted) */
  struct conn *next_dead;
  uint8_t wbuf[WRITE_GATHER];
} conn;

static int g_ep = -1;
static conn *g_conns = NULL;
static conn *g_graveyard = NULL;
static unsigned long g_open_conns = 0;

static void conn_unlink(conn *c) {
  if (c->prev) c->prev->next = c->next;
  else g_conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Closes the socket and session now; the memory goes to the graveyard (freed after the batch). */
static void conn_retire(conn *c) {
  if (c->dead) return;
  c->dead = 1;
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd);
  c->fd = -1;
  c->transport = NULL;
  conn_unlink(c);
  c->next_dead = g_graveyard;
  g_graveyard = c;
  g_open_conns--;
}

static void bury_dead(void) {
  while (g_graveyard != NULL) {
    conn *c = g_graveyard;
    g_graveyard = c->next_dead;
    free(c);
  }
}

/* ---- transport callbacks (run inside zh_engine_step, on this thread) ------------------------ */

static ptrdiff_t tls_read(void *ud, uint8_t *buf, size_t len) {
  conn *c = ud;
  if (len == 0) return 0;
  if (len > INT_MAX) len = INT_MAX;
  ERR_clear_error();
  int n = SSL_read(c->ssl, buf, (int)len);
  if (n > 0) return n;
  switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return ZH_TRANSPORT_AGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify (or EOF, with SSL_OP_IGNORE_UNEXPECTED_EOF) */
      return 0;
    default:
      return ZH_TRANSPORT_ERROR;
  }
}

static ptrdiff_t tls_writev(void *ud, const zh_iovec *iov, size_t count) {
  conn *c = ud;
  /* Gather up to one record. After ZH_TRANSPORT_AGAIN the engine offers the same bytes again
   * (possibly more of them), which is what SSL_write's retry rule asks for; the buffer never
   * moves, and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set anyway. */
  size_t len = 0;
  for (size_t i = 0; i < count && len < sizeof c->wbuf; i++) {
    size_t take = iov[i].len;
    if (take > sizeof c->wbuf - len) take = sizeof c->wbuf - len;
    if (take > 0) memcpy(c->wbuf + len, iov[i].base, take);
    len += take;
  }
  if (len == 0) return 0;
  ERR_clear_error();
  int n = SSL_write(c->ssl, c->wbuf, (int)len);
  if (n > 0) return n;
  switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return ZH_TRANSPORT_AGAIN;
    default:
      return ZH_TRANSPORT_ERROR;
  }
}

static void tls_shutdown(void *ud) {
  conn *c = ud;
  ERR_clear_error();
  (void)SSL_shutdown(c->ssl); /* best effort: queue close_notify; no wait for the peer's */
}

static void tls_close(void *ud) {
  conn_retire((conn *)ud); /* after this the transport handle is gone: no more ready calls */
}

/* ---- hooks and routes --------------------------------------------------------------------- */

static void on_log(void *ud, int32_t level, const char *msg) {
  (void)ud;
  fprintf(stderr, "zh_tls_host: engine log (level %d): %s\n", (int)level, msg);
}

static void on_access(void *ud, const zh_access_record *r) {
  (void)ud;
  fprintf(stderr, "%s \"%s %s\" %u %llu %lluus %s\n", r->peer, r->method, r->target,
          (unsigned)r->status, (unsigned long long)r->bytes, (unsigned long long)r->duration_us,
          r->strategy);
}

static const char *content_type_for(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot == NULL || strchr(dot, '/') != NULL) return "application/octet-stream";
  if (strcasecmp(dot, ".html") == 0) return "text/html; charset=utf-8";
  if (strcasecmp(dot, ".css") == 0) return "text/css; charset=utf-8";
  if (strcasecmp(dot, ".txt") == 0) return "text/plain; charset=utf-8";
  if (strcasecmp(dot, ".svg") == 0) return "image/svg+xml";
  if (strcasecmp(dot, ".json") == 0) return "application/json";
  return "application/octet-stream";
}

static int open_beneath(const char *rel) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return (int)syscall(SYS_openat2, g_root_fd, rel, &how, sizeof how);
}

static void serve_file(zh_request *req, const char *path) {
  if (g_root_fd < 0) {
    zh_request_reject(req, 404);
    return;
  }
  if (strchr(path, '%') != NULL || strstr(path, "/../") != NULL ||
      (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0)) {
    zh_request_reject(req, 403);
    return;
  }
  char rel[4096];
  const char *p = path;
  while (*p == '/') p++;
  int n = snprintf(rel, sizeof rel, "%s", *p ? p : ".");
  if (n < 0 || (size_t)n >= sizeof rel - 16) {
    zh_request_reject(req, 414);
    return;
  }
  int fd = open_beneath(rel);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    if (strcmp(rel, ".") == 0) snprintf(rel, sizeof rel, "index.html");
    else strcat(rel, rel[n - 1] == '/' ? "index.html" : "/index.html");
    fd = open_beneath(rel);
    if (fd >= 0 && fstat(fd, &st) != 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    zh_request_reject(req, (errno == ENOENT || errno == ENOTDIR) ? 404 : 403);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    zh_request_reject(req, 403);
    return;
  }
  zh_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.content_type = content_type_for(rel);
  info.last_modified = -1;
  info.size = -1;
  (void)zh_respond_file(req, fd, ZH_FD_CLOSE, &info);
}

static void on_request(void *ud, zh_request *req) {
  (void)ud;
  const char *method = zh_request_method(req);
  const char *path = zh_request_path(req);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    zh_request_reject(req, 405);
    return;
  }
  if (strcmp(path, "/hello") == 0) {
    zh_response *resp = NULL;
    if (zh_response_new(200, &resp) != ZH_OK) {
      zh_request_reject(req, 500);
      return;
    }
    zh_response_add_header(resp, "Content-Type", "text/plain");
    zh_response_add_lent(resp, HELLO, sizeof HELLO - 1, NULL, NULL);
    zh_respond(req, resp);
    return;
  }
  serve_file(req, path);
}

/* ---- TLS setup ---------------------------------------------------------------------------- */

static void print_ssl_errors(const char *what) {
  fprintf(stderr, "zh_tls_host: %s\n", what);
  ERR_print_errors_fp(stderr);
}

/* ALPN: this server speaks HTTP/1.1 only (curl offers h2 first). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *make_ssl_ctx(const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    print_ssl_errors("SSL_CTX_new failed");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    print_ssl_errors("cannot load the certificate (--cert)");
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    print_ssl_errors("cannot load the private key (--key) or it does not match the certificate");
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* EOF without close_notify → EOF */
#endif
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return ctx;
}

/* ---- connections -------------------------------------------------------------------------- */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "0.0.0.0";
  unsigned port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
    snprintf(out, cap, "%s:%u", ip, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    snprintf(out, cap, "[%s]:%u", ip, port);
  } else {
    snprintf(out, cap, "0.0.0.0:0");
  }
}

/* Drives the handshake; on completion adopts the session into the engine. */
static void conn_handshake(zh_engine *engine, conn *c) {
  ERR_clear_error();
  int r = SSL_accept(c->ssl);
  if (r != 1) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return; /* wait for an edge */
    unsigned long err = ERR_peek_error();
    if (err != 0) {
      char buf[256];
      ERR_error_string_n(err, buf, sizeof buf);
      fprintf(stderr, "zh_tls_host: handshake with %s failed: %s\n", c->peer, buf);
    }
    conn_retire(c);
    return;
  }
  zh_transport *t = NULL;
  zh_result rc = zh_engine_adopt_transport(engine, tls_read, tls_writev, tls_shutdown, tls_close,
                                           c, c->peer, &t);
  if (rc != ZH_OK) { /* nothing taken, no callback will run */
    zh_ex_fail("zh_engine_adopt_transport", rc);
    conn_retire(c);
    return;
  }
  c->transport = t;
  /* The handshake may have pulled application data into OpenSSL's buffers, or the request may
   * already sit in the socket: let the engine try once without waiting for a new edge. */
  zh_transport_ready(t);
}

static void accept_all(zh_engine *engine, int lfd, SSL_CTX *ctx) {
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("zh_tls_host: accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    SSL *ssl = c ? SSL_new(ctx) : NULL;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
      fprintf(stderr, "zh_tls_host: out of memory for a connection\n");
      SSL_free(ssl);
      free(c);
      close(fd);
      continue;
    }
    c->kind = KIND_CONN;
    c->fd = fd;
    c->ssl = ssl;
    format_peer(&ss, c->peer, sizeof c->peer);
    c->next = g_conns;
    if (g_conns) g_conns->prev = c;
    g_conns = c;
    g_open_conns++;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.ptr = c;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      perror("zh_tls_host: epoll_ctl");
      conn_retire(c);
      continue;
    }
    conn_handshake(engine, c);
  }
}

/* Binds ADDR ("host:port", "[v6]:port"), non-blocking. Returns the fd or -1. */
static int bind_listen(const char *addr, char *host_out, size_t host_cap, unsigned *port_out) {
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof host) {
    fprintf(stderr, "zh_tls_host: --listen wants HOST:PORT, got %s\n", addr);
    return -1;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  snprintf(host_out, host_cap, "%s", host);
  char *h = host;
  size_t hl = strlen(h);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h[hl - 1] = '\0';
    h++;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gr = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
  if (gr != 0) {
    fprintf(stderr, "zh_tls_host: cannot resolve %s: %s\n", addr, gai_strerror(gr));
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "zh_tls_host: cannot listen on %s: %s\n", addr, strerror(errno));
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(const char *prog) {
  fprintf(stderr, "usage: %s --listen ADDR --cert FILE --key FILE [--root DIR]\n", prog);
}

int main(int argc, char **argv) {
  const char *listen_addr = ZH_EX_DEFAULT_LISTEN;
  const char *root = NULL, *cert = NULL, *key = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(argv[0]);
      return 0;
    }
    if (i + 1 >= argc) {
      usage(argv[0]);
      return 2;
    }
    if (strcmp(a, "--listen") == 0) listen_addr = argv[++i];
    else if (strcmp(a, "--root") == 0) root = argv[++i];
    else if (strcmp(a, "--cert") == 0) cert = argv[++i];
    else if (strcmp(a, "--key") == 0) key = argv[++i];
    else {
      usage(argv[0]);
      return 2;
    }
  }
  if (cert == NULL || key == NULL) {
    usage(argv[0]);
    return 2;
  }
  if (root != NULL) {
    g_root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g_root_fd < 0) {
      fprintf(stderr, "zh_tls_host: cannot open directory %s: %s\n", root, strerror(errno));
      return 1;
    }
  }
  SSL_CTX *ssl_ctx = make_ssl_ctx(cert, key);
  if (ssl_ctx == NULL) return 1;

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
    perror("sigprocmask");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  if (sig_fd < 0 || g_ep < 0) {
    perror("signalfd/epoll_create1");
    return 1;
  }

  char host[256];
  unsigned port = 0;
  int lfd = bind_listen(listen_addr, host, sizeof host, &port);
  if (lfd < 0) return 1;

  zh_config *cfg = NULL;
  zh_engine *engine = NULL;
  zh_result rc = zh_config_new(&cfg);
  if (rc == ZH_OK) rc = zh_config_set_threads(cfg, 0);
  if (rc == ZH_OK) rc = zh_config_set_access_log(cfg, on_access, NULL);
  if (rc == ZH_OK) rc = zh_config_set_log(cfg, on_log, NULL);
  if (rc == ZH_OK) rc = zh_engine_new(cfg, on_request, NULL, &engine);
  zh_config_free(cfg);
  if (rc != ZH_OK) {
    zh_ex_fail("creating the engine", rc);
    return 1;
  }
  int32_t engine_fd = -1;
  rc = zh_engine_fd(engine, &engine_fd);
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_fd", rc);
    zh_engine_free(engine);
    return 1;
  }

  static tag t_listen = {KIND_LISTEN}, t_engine = {KIND_ENGINE}, t_signal = {KIND_SIGNAL};
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = &t_engine;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, engine_fd, &ev);
  ev.data.ptr = &t_signal;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, sig_fd, &ev);
  ev.data.ptr = &t_listen;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev);

  printf("listening on https://%s:%u\n", host, port);
  fflush(stdout);

  int running = 1;
  int status = 0;
  while (running) {
    int64_t t = zh_engine_next_timeout_ms(engine);
    int timeout = t < 0 ? -1 : (t > 3600000 ? 3600000 : (int)t);
    struct timespec before;
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct epoll_event evs[64];
    int n = epoll_wait(g_ep, evs, 64, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      status = 1;
      break;
    }
    int step = 0;
    for (int i = 0; i < n; i++) {
      tag *tg = evs[i].data.ptr;
      switch (tg->kind) {
        case KIND_ENGINE:
          step = 1;
          break;
        case KIND_LISTEN:
          accept_all(engine, lfd, ssl_ctx);
          break;
        case KIND_SIGNAL: {
          struct signalfd_siginfo si;
          if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
            fprintf(stderr, "zh_tls_host: signal %u, shutting down\n", si.ssi_signo);
            running = 0;
          }
          break;
        }
        case KIND_CONN: {
          conn *c = (conn *)tg;
          if (c->dead) break; /* closed earlier in this batch */
          if (c->transport == NULL) conn_handshake(engine, c);
          else zh_transport_ready(c->transport); /* the engine retries inside the next step */
          break;
        }
      }
    }
    if (!step && timeout >= 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double waited = (double)(now.tv_sec - before.tv_sec) * 1e3 +
                      (double)(now.tv_nsec - before.tv_nsec) / 1e6;
      step = waited >= (double)timeout;
    }
    if (step && running) {
      rc = zh_engine_step(engine, 0);
      if (rc != ZH_OK) {
        zh_ex_fail("zh_engine_step", rc);
        status = 1;
        running = 0;
      }
    }
    bury_dead(); /* tls_close ran inside the step (or a handshake failed): now safe to free */
  }

  epoll_ctl(g_ep, EPOLL_CTL_DEL, lfd, NULL);
  close(lfd);
  rc = zh_engine_shutdown(engine, 2000); /* closes adopted sessions through tls_close */
  if (rc != ZH_OK) {
    zh_ex_fail("zh_engine_shutdown", rc);
    status = 1;
  }
  if (getenv("ZH_EXAMPLE_STATS") != NULL) zh_ex_print_stats(engine);
  zh_engine_free(engine); /* any transport still open gets tls_close here */
  /* What is left never reached the engine: handshakes in progress. */
  while (g_conns != NULL) {
    if (g_conns->transport != NULL) {
      fprintf(stderr, "zh_tls_host: a transport outlived zh_engine_free (not closed by the engine)\n");
    }
    conn_retire(g_conns);
  }
  bury_dead();
  SSL_CTX_free(ssl_ctx);
  close(g_ep);
  close(sig_fd);
  if (g_root_fd >= 0) close(g_root_fd);
  return status;
}
