/* Shared helpers for the zerohttp C API tests.
 *
 * - CHECK* macros that stay active under NDEBUG. On failure they print file:line, the
 *   expression (and for results, zh_result_str of the code), then terminate the process
 *   with status 1. They may be used from handler / worker threads too (they call _Exit so
 *   that no atexit handler or thread-local destructor races the still-running engine).
 * - A tiny blocking HTTP/1.1 client over 127.0.0.1 with 10 s send/receive timeouts, so a
 *   library bug can never hang a test.
 * - Temp files filled with a position-dependent pattern, fd counting, engine start-up.
 */
#ifndef ZH_TESTUTIL_H
#define ZH_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "zerohttp.h"

/* ------------------------------------------------------------------ checks */

void zt_fail(const char *file, int line, const char *expr, const char *detail);
void zt_fail_int(const char *file, int line, const char *a_expr, const char *b_expr,
                 long long a, long long b);
void zt_fail_res(const char *file, int line, const char *expr, zh_result got, zh_result want);

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) zt_fail(__FILE__, __LINE__, #cond, NULL);                                \
  } while (0)

#define CHECK_MSG(cond, msg)                                                              \
  do {                                                                                    \
    if (!(cond)) zt_fail(__FILE__, __LINE__, #cond, (msg));                               \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                \
  do {                                                                                    \
    long long zt_a_ = (long long)(a), zt_b_ = (long long)(b);                             \
    if (zt_a_ != zt_b_) zt_fail_int(__FILE__, __LINE__, #a, #b, zt_a_, zt_b_);            \
  } while (0)

/* expr must evaluate to the expected zh_result code */
#define CHECK_RES(expr, want)                                                             \
  do {                                                                                    \
    zh_result zt_r_ = (expr);                                                             \
    zh_result zt_w_ = (zh_result)(want);                                                  \
    if (zt_r_ != zt_w_) zt_fail_res(__FILE__, __LINE__, #expr, zt_r_, zt_w_);             \
  } while (0)

#define CHECK_OK(expr) CHECK_RES(expr, ZH_OK)

#define CHECK_STREQ(a, b)                                                                 \
  do {                                                                                    \
    const char *zt_sa_ = (a), *zt_sb_ = (b);                                              \
    if (!zt_streq(zt_sa_, zt_sb_)) zt_fail_str(__FILE__, __LINE__, #a, #b, zt_sa_, zt_sb_); \
  } while (0)

int zt_streq(const char *a, const char *b); /* both NULL counts as equal */
void zt_fail_str(const char *file, int line, const char *a_expr, const char *b_expr,
                 const char *a, const char *b);

/* Poll `cond` every millisecond until it holds or `ms` (times zt_time_scale()) milliseconds
 * passed. Check it after. */
#define ZT_WAIT_UNTIL(cond, ms)                                                           \
  do {                                                                                    \
    double zt_deadline_ = zt_now_ms() + (double)(ms) * zt_time_scale();                   \
    while (!(cond) && zt_now_ms() < zt_deadline_) zt_sleep_ms(1);                         \
  } while (0)

/* ------------------------------------------------------------------ time */

double zt_now_ms(void); /* CLOCK_MONOTONIC in milliseconds */
/* Multiplier for upper time bounds: 10 under valgrind (env ZH_UNDER_VALGRIND set by
 * cmake/ZhTesting.cmake), else 1. Lower bounds (e.g. "took at least 50 ms") are not scaled. */
double zt_time_scale(void);
void zt_sleep_ms(unsigned ms);

/* ------------------------------------------------------------------ client */

typedef struct zt_conn {
  int fd;
  uint8_t *buf; /* buffered, not yet consumed bytes are buf[pos..len) */
  size_t pos, len, cap;
  int eof;       /* peer closed (read returned 0) */
  int err;       /* errno of the last failed recv (EAGAIN/EWOULDBLOCK = timeout) */
} zt_conn;

typedef struct zt_response {
  int status;
  int version_minor;  /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
  char *reason;
  size_t nheaders;
  char **names;
  char **values;
  uint8_t *body;
  size_t body_len;
  int has_content_length;
  uint64_t content_length;
  int chunked;
  int interim;        /* number of 1xx interim responses skipped before this one */
  int head_complete;  /* status line + headers were read */
  int complete;       /* the whole message was read according to its framing */
  int eof;            /* the connection closed before the message was complete */
  int timed_out;      /* the 10 s receive timeout fired */
  double elapsed_ms;  /* time spent inside zt_read_response */
} zt_response;

/* Connects to [::1]:port; NULL (errno set) when connect() fails. */
zt_conn *zt_try_connect6(uint16_t port);
/* Connects to 127.0.0.1:port (TCP_NODELAY, SO_RCVTIMEO/SO_SNDTIMEO 10 s x zt_time_scale()).
 * CHECK-fails on error. */
zt_conn *zt_connect(uint16_t port);
/* Like zt_connect but returns NULL (errno set) when connect() fails. */
zt_conn *zt_try_connect(uint16_t port);
void zt_close(zt_conn *c); /* NULL ok */
/* Closes with SO_LINGER 0 (RST). */
void zt_abort(zt_conn *c);
/* Local port of the client socket (to compare with zh_request_peer_addr). */
uint16_t zt_local_port(const zt_conn *c);

/* 0 on success, -1 on error (errno set); never raises SIGPIPE. */
int zt_send_all(zt_conn *c, const void *data, size_t len);
int zt_send_str(zt_conn *c, const char *s);
/* Reads one response (skips 1xx interim responses). is_head: the request was HEAD (no body).
 * Returns 0 when complete, -1 otherwise (r->eof / r->timed_out tell why). r must be freed. */
int zt_read_response(zt_conn *c, zt_response *r, int is_head);
void zt_response_free(zt_response *r);
/* Reads only a status line + headers (of any status, 1xx included; no body), waiting at most
 * timeout_ms (x zt_time_scale()) for the first byte. Returns 0 if a head was read. */
int zt_read_head_only(zt_conn *c, zt_response *r, int timeout_ms);
/* Case-insensitive header lookup (first match), NULL if absent. */
const char *zt_header(const zt_response *r, const char *name);
/* Sends "GET <path> HTTP/1.1" with Host and reads the response; CHECK-fails unless complete. */
void zt_get(zt_conn *c, const char *path, zt_response *r);
/* Reads at most `max` bytes (blocking until at least one byte, EOF or timeout). Returns count,
 * 0 on EOF, -1 on error/timeout. Consumes buffered bytes first. */
long zt_recv_some(zt_conn *c, void *dst, size_t max);
/* Reads and discards until the peer closes (EOF or reset) or `timeout_ms` passes.
 * Returns 1 if closed, 0 on timeout. *discarded (may be NULL) gets the number of bytes seen.
 * timeout_ms is multiplied by zt_time_scale(). */
int zt_wait_closed(zt_conn *c, int timeout_ms, size_t *discarded);

/* ------------------------------------------------------------------ files & fds */

/* Byte at file offset `off` of every pattern file. */
static inline uint8_t zt_pattern_byte(uint64_t off) {
  return (uint8_t)((off * 0x9E3779B97F4A7C15ULL) >> 56);
}
void zt_fill_pattern(uint8_t *dst, size_t len, uint64_t offset);
/* Returns -1 if buf == pattern[offset..offset+len), else the index of the first mismatch. */
long long zt_check_pattern(const uint8_t *buf, size_t len, uint64_t offset);
/* Creates an unlinked temp file (O_RDWR) of `size` bytes filled with the pattern. */
int zt_temp_file(uint64_t size);
/* Number of open fds of this process (from /proc/self/fd, not counting the dir fd). */
int zt_count_fds(void);
/* 1 if fd is not open (fcntl(F_GETFD) fails with EBADF). */
int zt_fd_closed(int fd);
/* dup() that CHECK-fails on error. */
int zt_dup(int fd);

/* ------------------------------------------------------------------ engine */

/* zh_engine_new(cfg, handler, ud) -> zh_engine_listen("127.0.0.1:0", port_out) -> start.
 * CHECK-fails on any error. cfg may be NULL.
 *
 * External-loop mode (environment ZH_TEST_EXTERNAL=1, see zt_external_mode): the same call
 * sets threads = 0 on `cfg` (or on a fresh config when cfg is NULL), ignores SIGPIPE
 * process-wide (the header requires it of external-loop hosts), and starts a "host" pthread
 * that loops poll(zh_engine_fd, POLLIN, zh_engine_next_timeout_ms) + zh_engine_step(e, 0).
 * Tests keep calling zh_engine_shutdown / zh_engine_free: in this header those names are
 * macros for zt_engine_shutdown / zt_engine_free, which stop and join the host thread first
 * (zh_engine_shutdown must not run while a step runs; in external-loop mode it drives the
 * loop itself from the calling thread), then call the real function. */
zh_engine *zt_engine_start(const zh_config *cfg, zh_handler_fn handler, void *ud,
                           uint16_t *port_out);
/* 1 when ZH_TEST_EXTERNAL is set to something other than "" or "0". */
int zt_external_mode(void);
/* Stops this engine's host thread (if it has one), then zh_engine_shutdown. */
zh_result zt_engine_shutdown(zh_engine *engine, uint32_t grace_ms);
/* Stops this engine's host thread (if it has one), then zh_engine_free. NULL is ignored. */
void zt_engine_free(zh_engine *engine);
#ifndef ZT_NO_ENGINE_WRAP
#define zh_engine_shutdown zt_engine_shutdown
#define zh_engine_free zt_engine_free
#endif
/* zh_engine_stats with struct_size set; CHECK-fails on error. */
void zt_stats(const zh_engine *engine, zh_stats *out);
void zt_print_stats(const char *label, const zh_stats *s);

/* Responds with `status` and a copied body (string); CHECK-fails unless ZH_OK. */
void zt_respond_text(zh_request *req, uint16_t status, const char *body);
/* Responds 200 "buffered N", N = the length of the request's buffered body
 * (zh_request_body_bytes must succeed); CHECK-fails unless ZH_OK. */
void zt_respond_buffered(zh_request *req);

#endif
