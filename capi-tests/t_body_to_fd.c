/* Request bodies straight into a file (head handler + zh_request_body_to_fd, added to the API
 * after the v0 draft): Content-Length and chunked uploads land byte-identical at the given
 * offset; misuse is refused without taking anything; a head handler may answer at once (the
 * small unread body is drained and the connection kept); a client that vanishes mid-upload
 * gets on_done with an error; requests the head handler leaves alone are buffered as usual. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define UPLOAD (8u << 20)
#define OFFSET 100

typedef struct {
  int fd;
  atomic_int done_calls;
  uint64_t bytes;
  int error;
  atomic_uint respond_result;
} upload;

static upload g_up;
static atomic_int g_main_calls, g_head_calls;

static int temp_fd(void) {
  const char *dir = getenv("TMPDIR");
  char p[4096];
  snprintf(p, sizeof p, "%s/zh-capi-up-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkostemp(p, O_CLOEXEC);
  CHECK(fd >= 0);
  unlink(p);
  return fd;
}

static void on_done(void *ud, zh_request *req, uint64_t bytes, int32_t error) {
  upload *u = ud;
  CHECK(u == &g_up);
  u->bytes = bytes;
  u->error = error;
  char body[64];
  snprintf(body, sizeof body, "stored %llu", (unsigned long long)bytes);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(201, &r));
  CHECK_OK(zh_response_add_bytes(r, body, strlen(body)));
  atomic_store(&u->respond_result, zh_respond(req, r));
  atomic_fetch_add(&u->done_calls, 1);
}

static void head_handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_head_calls, 1);
  const char *p = zh_request_path(req);
  if (strncmp(p, "/upload", 7) == 0) {
    /* misuse first: a pipe is not a regular file; nothing is taken */
    int pp[2];
    CHECK(pipe(pp) == 0);
    CHECK_RES(zh_request_body_to_fd(req, pp[1], 0, on_done, &g_up), ZH_ERR_INVALID);
    CHECK(!zt_fd_closed(pp[1]));
    close(pp[0]);
    close(pp[1]);
    CHECK_RES(zh_request_body_to_fd(req, g_up.fd, OFFSET, NULL, &g_up), ZH_ERR_NULL);
    CHECK_OK(zh_request_body_to_fd(req, g_up.fd, OFFSET, on_done, &g_up));
    CHECK_RES(zh_request_body_to_fd(req, g_up.fd, OFFSET, on_done, &g_up), ZH_ERR_ALREADY_USED);
    return; /* answered from on_done */
  }
  if (strcmp(p, "/deny") == 0) {
    CHECK_OK(zh_request_reject(req, 401)); /* without reading the (small) body */
    return;
  }
  /* anything else: do nothing, the engine buffers the body for the main handler */
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  atomic_fetch_add(&g_main_calls, 1);
  /* the head stage is over: claiming the body is a state error */
  int fd = temp_fd();
  CHECK_RES(zh_request_body_to_fd(req, fd, 0, on_done, &g_up), ZH_ERR_STATE);
  close(fd);
  zt_respond_buffered(req);
}

static void reset_upload(void) {
  g_up.fd = temp_fd();
  atomic_store(&g_up.done_calls, 0);
  g_up.bytes = 0;
  g_up.error = 0;
  atomic_store(&g_up.respond_result, 999);
}

static void check_file(int fd, size_t len) {
  uint8_t *buf = malloc(len + OFFSET + 1);
  CHECK(buf != NULL);
  ssize_t n = pread(fd, buf, len + OFFSET + 1, 0);
  CHECK_EQ_INT(n, (ssize_t)(len + OFFSET));
  for (size_t i = 0; i < OFFSET; i++) CHECK(buf[i] == 0); /* the gap before the offset */
  CHECK_EQ_INT(zt_check_pattern(buf + OFFSET, len, 0), -1);
  free(buf);
}

int main(void) {
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_head_handler(cfg, head_handler, NULL));
  uint16_t port = 0;
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  zt_conn *c = zt_connect(port);
  zt_response r;
  uint8_t *data = malloc(UPLOAD);
  CHECK(data != NULL);
  zt_fill_pattern(data, UPLOAD, 0);
  char head[256];

  /* ---- Content-Length upload, 8 MiB, sent in pieces */
  reset_upload();
  snprintf(head, sizeof head, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", UPLOAD);
  CHECK(zt_send_str(c, head) == 0);
  for (size_t off = 0; off < UPLOAD; off += 1u << 20) CHECK(zt_send_all(c, data + off, 1u << 20) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 201);
  CHECK_STREQ((const char *)r.body, "stored 8388608");
  zt_response_free(&r);
  CHECK_EQ_INT(atomic_load(&g_up.done_calls), 1);
  CHECK_EQ_INT(g_up.error, 0);
  CHECK_RES(atomic_load(&g_up.respond_result), ZH_OK);
  check_file(g_up.fd, UPLOAD);
  CHECK_MSG(!zt_fd_closed(g_up.fd), "the engine closed a borrowed fd");
  close(g_up.fd);
  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("after CL upload", &st);
  fprintf(stderr, "body_bytes_spliced=%llu body_bytes_copied=%llu\n",
          (unsigned long long)st.body_bytes_spliced, (unsigned long long)st.body_bytes_copied);
  CHECK(st.body_bytes_spliced + st.body_bytes_copied >= UPLOAD);
  CHECK_MSG(st.body_bytes_spliced > 0, "Content-Length body did not go by splice");

  /* ---- chunked upload, de-framed into the file */
  reset_upload();
  CHECK(zt_send_str(c, "PUT /upload-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
  size_t sent = 0;
  static const size_t sizes[] = {1, 4095, 70000, 12345, 300000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char line[32];
    snprintf(line, sizeof line, "%zx\r\n", sizes[i]);
    CHECK(zt_send_str(c, line) == 0);
    CHECK(zt_send_all(c, data + sent, sizes[i]) == 0);
    CHECK(zt_send_str(c, "\r\n") == 0);
    sent += sizes[i];
  }
  CHECK(zt_send_str(c, "0\r\n\r\n") == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 201);
  zt_response_free(&r);
  CHECK_EQ_INT(g_up.bytes, sent);
  CHECK_EQ_INT(g_up.error, 0);
  check_file(g_up.fd, sent);
  close(g_up.fd);

  /* ---- the head handler answers at once; the small unread body is drained, connection kept */
  snprintf(head, sizeof head, "POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", 65536u);
  CHECK(zt_send_str(c, head) == 0);
  CHECK(zt_send_all(c, data, 65536) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 401);
  zt_response_free(&r);

  /* ---- left alone by the head handler: buffered for the main handler (same connection) */
  snprintf(head, sizeof head, "POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  CHECK(zt_send_str(c, head) == 0);
  CHECK(zt_send_all(c, data, 5000) == 0);
  CHECK_EQ_INT(zt_read_response(c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STREQ((const char *)r.body, "buffered 5000");
  zt_response_free(&r);
  /* a request without a body never reaches the head handler */
  int heads = atomic_load(&g_head_calls);
  zt_get(c, "/nobody", &r);
  CHECK_STREQ((const char *)r.body, "buffered 0");
  zt_response_free(&r);
  CHECK_EQ_INT(atomic_load(&g_head_calls), heads);
  zt_close(c);

  /* ---- the client vanishes mid-upload: on_done once, with an error */
  reset_upload();
  c = zt_connect(port);
  snprintf(head, sizeof head, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", UPLOAD);
  CHECK(zt_send_str(c, head) == 0);
  CHECK(zt_send_all(c, data, 1u << 20) == 0);
  zt_sleep_ms(50);
  zt_close(c);
  ZT_WAIT_UNTIL(atomic_load(&g_up.done_calls) == 1, 5000);
  fprintf(stderr, "vanished client: on_done calls %d, bytes %llu, error %d, respond -> %s\n",
          atomic_load(&g_up.done_calls), (unsigned long long)g_up.bytes, g_up.error,
          zh_result_str(atomic_load(&g_up.respond_result)));
  CHECK_EQ_INT(atomic_load(&g_up.done_calls), 1);
  CHECK(g_up.error != 0);
  CHECK(g_up.bytes < UPLOAD);
  {
    /* `bytes` reports what was written: it matches the file */
    struct stat sb;
    CHECK(fstat(g_up.fd, &sb) == 0);
    uint64_t in_file = sb.st_size > OFFSET ? (uint64_t)sb.st_size - OFFSET : 0;
    fprintf(stderr, "vanished client: %llu body bytes in the file, on_done says %llu\n",
            (unsigned long long)in_file, (unsigned long long)g_up.bytes);
    CHECK_EQ_INT(g_up.bytes, in_file);
  }
  zh_result rr = atomic_load(&g_up.respond_result);
  CHECK(rr == ZH_OK || rr == ZH_ERR_CLOSED);
  zt_sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&g_up.done_calls), 1);
  close(g_up.fd);

  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  free(data);
  printf("body_to_fd: ok\n");
  return 0;
}
