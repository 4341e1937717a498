/* zh_hello — the smallest zerohttp server: every request gets `Hello, world!`.
 *
 *   zh_hello [--listen ADDR] [--threads N]
 *
 * The body is lent to the engine from a static buffer (zh_response_add_lent with no release
 * function): it lives for the whole program, so nothing is copied and nothing is freed. */
#define _GNU_SOURCE
#include "example_common.h"

static const char HELLO[] = "Hello, world!";

static void on_request(void *userdata, zh_request *req) {
  (void)userdata;
  zh_response *resp = NULL;
  if (zh_response_new(200, &resp) != ZH_OK) {
    zh_request_reject(req, 500);
    return;
  }
  if (zh_response_add_header(resp, "Content-Type", "text/plain") != ZH_OK ||
      zh_response_add_lent(resp, HELLO, sizeof HELLO - 1, NULL, NULL) != ZH_OK) {
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  /* Takes resp on every path; ZH_ERR_CLOSED (peer gone) needs no action. */
  (void)zh_respond(req, resp);
}

int main(int argc, char **argv) {
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, NULL, &opts);
  return zh_ex_serve(&opts, on_request, NULL, NULL);
}
