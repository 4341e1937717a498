/* Runs examples-c/libevent_host.c (zh_libevent_host, a libevent event_base driving the engine in
 * external-loop mode): /hello, files under --root (zh_respond_file), HEAD, Range, 404,
 * keep-alive, pipelining, curl and python3 http.client, then exit 0 on SIGTERM (and once more
 * on SIGINT). The binary comes from ZH_LIBEVENT_HOST (set by CMakeLists.txt). */
#define _GNU_SOURCE
#include "t_host_common.h"

int main(void) { return host_run_single_loop_test("ZH_LIBEVENT_HOST", "host_libevent"); }
