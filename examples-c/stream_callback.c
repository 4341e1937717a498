/* zh_stream_callback: a body produced on the fly by a callback source
 * (zh_response_add_callback) whose length is not known up front, so it goes chunked for
 * HTTP/1.1 (close-delimited for HTTP/1.0).
 *
 *   zh_stream_callback [--listen ADDR] [--threads N]
 *   curl -i 'http://127.0.0.1:8080/?lines=5'
 *
 * GET /?lines=N answers N lines of text (default 100, at most 10000000), each made only when
 * the connection can take more: the engine calls poll_fn with a buffer of its own, poll_fn
 * fills it with as many lines as fit and returns ZH_POLL_READY, then ZH_EOF after the last.
 * release_fn frees the per-request state exactly once, whether the body was sent, the client
 * went away, or the response was dropped.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "zerohttp.h"

#define DEFAULT_LINES 100
#define MAX_LINES 10000000UL

typedef struct {
  unsigned long n;    /* lines to produce */
  unsigned long next; /* next line number, 1-based */
  char line[128];     /* the current line, possibly partly copied */
  size_t line_len, line_off;
} lines_src;

/* Parses lines=N from the query: DEFAULT_LINES when absent, -1 when not a number in
 * 0..MAX_LINES. */
static long lines_param(const char *query) {
  for (const char *p = query; p != NULL; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
    if (strncmp(p, "lines=", 6) == 0) {
      const char *v = p + 6;
      if (*v < '0' || *v > '9') return -1;
      char *end = NULL;
      unsigned long n = strtoul(v, &end, 10);
      if ((*end != '\0' && *end != '&') || n > MAX_LINES) return -1;
      return (long)n;
    }
  }
  return DEFAULT_LINES;
}

static int32_t lines_poll(void *ud, zh_chunk_out *out) {
  lines_src *s = ud;
  size_t used = 0;
  while (used < out->buf_cap) {
    if (s->line_off == s->line_len) { /* make the next line */
      if (s->next > s->n) break;
      int k = snprintf(s->line, sizeof s->line, "line %lu of %lu: %s\n", s->next, s->n,
                       (s->next % 15 == 0) ? "FizzBuzz" : (s->next % 5 == 0) ? "Buzz"
                       : (s->next % 3 == 0) ? "Fizz" : "-");
      s->line_len = (size_t)k;
      s->line_off = 0;
      s->next++;
    }
    size_t k = s->line_len - s->line_off;
    if (k > out->buf_cap - used) k = out->buf_cap - used;
    memcpy(out->buf + used, s->line + s->line_off, k);
    s->line_off += k;
    used += k;
  }
  if (used == 0) return ZH_EOF;
  out->kind = ZH_CHUNK_BYTES;
  out->len = used;
  return ZH_POLL_READY;
}

static void lines_release(void *ud) { free(ud); }

static void handle(void *ud, zh_request *req) {
  (void)ud;
  const char *method = zh_request_method(req);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    zh_request_reject(req, 405);
    return;
  }
  long n = lines_param(zh_request_query(req));
  if (n < 0) {
    zh_request_reject(req, 400);
    return;
  }
  lines_src *s = calloc(1, sizeof *s);
  zh_response *resp = NULL;
  if (s == NULL || zh_response_new(200, &resp) != ZH_OK) {
    free(s);
    zh_request_reject(req, 500);
    return;
  }
  s->n = (unsigned long)n;
  s->next = 1;
  zh_response_add_header(resp, "Content-Type", "text/plain; charset=utf-8");
  /* -1: length unknown → Transfer-Encoding: chunked (HTTP/1.1) */
  zh_result rc = zh_response_add_callback(resp, lines_poll, lines_release, s, -1);
  if (rc != ZH_OK) { /* nothing taken: s is still ours */
    free(s);
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  rc = zh_respond(req, resp); /* from here release_fn owns s */
  if (rc != ZH_OK && rc != ZH_ERR_CLOSED) zh_ex_fail("zh_respond", rc);
}

int main(int argc, char **argv) {
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, NULL, &opts);
  return zh_ex_serve(&opts, handle, NULL, NULL);
}
