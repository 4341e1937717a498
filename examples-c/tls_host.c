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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "host_common.h"

#define PROG "zh_tls_host"
#define WRITE_GATHER 16384 /* one TLS record */

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

/* ---- TLS setup ---------------------------------------------------------------------------- */

static void print_ssl_errors(const char *what) {
  fprintf(stderr, PROG ": %s\n", what);
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
      fprintf(stderr, PROG ": handshake with %s failed: %s\n", c->peer, buf);
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
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror(PROG ": accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    SSL *ssl = c ? SSL_new(ctx) : NULL;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
      fprintf(stderr, PROG ": out of memory for a connection\n");
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
      perror(PROG ": epoll_ctl");
      conn_retire(c);
      continue;
    }
    conn_handshake(engine, c);
  }
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *listen_addr = ZH_EX_DEFAULT_LISTEN;
  const char *root = NULL, *cert = NULL, *key = NULL;
  const char *usage_args = "--listen ADDR --cert FILE --key FILE [--root DIR]";
  const zh_host_flag flags[] = {{"--listen", &listen_addr, NULL, 0, 0},
                                {"--root", &root, NULL, 0, 0},
                                {"--cert", &cert, NULL, 0, 0},
                                {"--key", &key, NULL, 0, 0}};
  zh_host_parse_flags(argc, argv, PROG, usage_args, flags, 4);
  if (cert == NULL || key == NULL) {
    fprintf(stderr, "usage: %s %s\n", argv[0], usage_args);
    return 2;
  }
  int root_fd = -1;
  if (zh_host_open_root(PROG, root, &root_fd) != 0) return 1;
  SSL_CTX *ssl_ctx = make_ssl_ctx(cert, key);
  if (ssl_ctx == NULL) return 1;

  sigset_t sigs;
  if (zh_host_block_signals(&sigs, 0) != 0) return 1;
  int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  if (sig_fd < 0 || g_ep < 0) {
    perror("signalfd/epoll_create1");
    return 1;
  }

  unsigned port = 0;
  int lfd = zh_host_bind_listen(PROG, listen_addr, 1024, &port);
  if (lfd < 0) return 1;

  zh_engine *engine = NULL;
  zh_result rc = zh_host_engine_new(zh_host_on_request, &root_fd, zh_host_on_access, PROG, &engine);
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

  zh_host_print_listening("https", listen_addr, port);

  int running = 1;
  int status = 0;
  while (running) {
    /* step: the engine's fd fired, or its timer is due (the wait lasted its whole timeout) */
    struct epoll_event evs[64];
    int step = 0;
    int n = zh_host_epoll_wait(g_ep, evs, 64, engine, "epoll_wait", &step);
    if (n < 0) {
      status = 1;
      break;
    }
    for (int i = 0; i < n; i++) {
      tag *tg = evs[i].data.ptr;
      switch (tg->kind) {
        case KIND_ENGINE:
          step = 1;
          break;
        case KIND_LISTEN:
          accept_all(engine, lfd, ssl_ctx);
          break;
        case KIND_SIGNAL:
          if (zh_host_read_signal(PROG, sig_fd)) running = 0;
          break;
        case KIND_CONN: {
          conn *c = (conn *)tg;
          if (c->dead) break; /* closed earlier in this batch */
          if (c->transport == NULL) conn_handshake(engine, c);
          else zh_transport_ready(c->transport); /* the engine retries inside the next step */
          break;
        }
      }
    }
    if (step && running && zh_host_step(engine, "zh_engine_step") != 0) {
      status = 1;
      running = 0;
    }
    bury_dead(); /* tls_close ran inside the step (or a handshake failed): now safe to free */
  }

  epoll_ctl(g_ep, EPOLL_CTL_DEL, lfd, NULL);
  close(lfd);
  /* Shutdown closes adopted sessions through tls_close; free gives tls_close to any left. */
  if (zh_host_finish(engine, "zh_engine_shutdown") != 0) status = 1;
  /* What is left never reached the engine: handshakes in progress. */
  while (g_conns != NULL) {
    if (g_conns->transport != NULL) {
      fprintf(stderr, PROG ": a transport outlived zh_engine_free (not closed by the engine)\n");
    }
    conn_retire(g_conns);
  }
  bury_dead();
  SSL_CTX_free(ssl_ctx);
  close(g_ep);
  close(sig_fd);
  if (root_fd >= 0) close(root_fd);
  return status;
}
