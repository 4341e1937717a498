/* zh_echo — answers every request with 200 and the request body echoed back.
 *
 *   zh_echo [--listen ADDR] [--threads N]
 *
 * The engine buffers the whole request body before the handler runs (no head handler is set),
 * so zh_request_body_bytes sees all of it. The response carries `X-Body-Len: N` and the body,
 * copied with zh_response_add_bytes (the request's buffer is freed when the request is handed
 * back, so it cannot be lent). Bodies are limited to 64 MiB (larger → 413 from the engine). */
#define _GNU_SOURCE
#include "example_common.h"

#define ECHO_MAX_BODY ((uint64_t)64 << 20)

static void on_request(void *userdata, zh_request *req) {
  (void)userdata;
  const uint8_t *body = NULL;
  size_t len = 0;
  zh_result rc = zh_request_body_bytes(req, &body, &len);
  if (rc != ZH_OK) {
    if (zh_request_body_length(req) > 0) {
      fprintf(stderr, "zh_echo: zh_request_body_bytes: %s\n", zh_result_str(rc));
      zh_request_reject(req, 500);
      return;
    }
    body = NULL; /* no body at all */
    len = 0;
  }

  zh_response *resp = NULL;
  if (zh_response_new(200, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  char len_str[32];
  snprintf(len_str, sizeof len_str, "%zu", len);
  const char *ctype = zh_request_header(req, "Content-Type");
  if (ctype == NULL || ctype[0] == '\0') ctype = "application/octet-stream";
  if (zh_response_add_header(resp, "X-Body-Len", len_str) != ZH_OK ||
      zh_response_add_header(resp, "Content-Type", ctype) != ZH_OK ||
      (len > 0 && zh_response_add_bytes(resp, body, len) != ZH_OK)) {
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  (void)zh_respond(req, resp);
}

static zh_result configure(zh_config *cfg) {
  /* 0 keeps the engine defaults for request line, header bytes and header count. */
  return zh_config_set_limits(cfg, 0, 0, 0, ECHO_MAX_BODY);
}

int main(int argc, char **argv) {
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, NULL, &opts);
  return zh_ex_serve(&opts, on_request, NULL, configure);
}
