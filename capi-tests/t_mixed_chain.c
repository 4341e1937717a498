/* A body chain of bytes + file region + lent memory + file region + bytes arrives as the exact
 * concatenation; the lent release runs exactly once per response, after it was sent, and the
 * ZH_FD_CLOSE fds are closed. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define FILE_SIZE 20000
#define ROUNDS 20

static int g_file_fd = -1;
static uint8_t g_lent[3000];
static atomic_int g_releases;
static atomic_int g_responded;
static int g_dups[ROUNDS][2];
static atomic_int g_round;

static const char PART1[] = "HEAD-PART:";
static const char PART5[] = ":END";

static void release(void *ud) {
  CHECK(ud == (void *)g_lent);
  atomic_fetch_add(&g_releases, 1);
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  int round = atomic_load(&g_round);
  CHECK(round < ROUNDS);
  int before = atomic_load(&g_releases);
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_bytes(r, PART1, strlen(PART1)));
  int fd1 = zt_dup(g_file_fd), fd2 = zt_dup(g_file_fd);
  g_dups[round][0] = fd1;
  g_dups[round][1] = fd2;
  CHECK_OK(zh_response_add_file(r, fd1, 1000, 5000, ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_lent(r, g_lent, sizeof g_lent, release, g_lent));
  CHECK_OK(zh_response_add_file(r, fd2, 15000, 2500, ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_bytes(r, PART5, strlen(PART5)));
  CHECK_EQ_INT(atomic_load(&g_releases), before); /* nothing released before respond */
  CHECK_OK(zh_respond(req, r));
  atomic_fetch_add(&g_responded, 1);
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  for (size_t i = 0; i < sizeof g_lent; i++) g_lent[i] = (uint8_t)('a' + i % 26);

  /* the expected body */
  size_t exp_len = strlen(PART1) + 5000 + sizeof g_lent + 2500 + strlen(PART5);
  uint8_t *exp = malloc(exp_len);
  CHECK(exp != NULL);
  size_t o = 0;
  memcpy(exp + o, PART1, strlen(PART1));
  o += strlen(PART1);
  zt_fill_pattern(exp + o, 5000, 1000);
  o += 5000;
  memcpy(exp + o, g_lent, sizeof g_lent);
  o += sizeof g_lent;
  zt_fill_pattern(exp + o, 2500, 15000);
  o += 2500;
  memcpy(exp + o, PART5, strlen(PART5));
  o += strlen(PART5);
  CHECK_EQ_INT(o, exp_len);

  uint16_t port = 0;
  zh_engine *e = zt_engine_start(NULL, handler, NULL, &port);
  zt_conn *c = zt_connect(port);
  for (int i = 0; i < ROUNDS; i++) {
    atomic_store(&g_round, i);
    zt_response r;
    zt_get(c, "/chain", &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.has_content_length);
    CHECK_EQ_INT(r.content_length, exp_len);
    CHECK_EQ_INT(r.body_len, exp_len);
    for (size_t k = 0; k < exp_len; k++) {
      if (r.body[k] != exp[k]) {
        fprintf(stderr, "round %d: mismatch at byte %zu: got 0x%02x want 0x%02x\n", i, k,
                r.body[k], exp[k]);
        CHECK(0);
      }
    }
    zt_response_free(&r);
    /* release runs once per response, after it is sent */
    ZT_WAIT_UNTIL(atomic_load(&g_releases) == i + 1, 5000);
    CHECK_EQ_INT(atomic_load(&g_releases), i + 1);
    ZT_WAIT_UNTIL(zt_fd_closed(g_dups[i][0]) && zt_fd_closed(g_dups[i][1]), 5000);
    CHECK_MSG(zt_fd_closed(g_dups[i][0]), "first file region fd not closed");
    CHECK_MSG(zt_fd_closed(g_dups[i][1]), "second file region fd not closed");
  }
  zt_sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&g_releases), ROUNDS); /* never twice */
  CHECK_EQ_INT(atomic_load(&g_responded), ROUNDS);

  zh_stats st;
  zt_stats(e, &st);
  zt_print_stats("mixed_chain", &st);
  CHECK(st.bytes_sendfile >= (uint64_t)ROUNDS * 7500);
  CHECK(st.bytes_writev >= (uint64_t)ROUNDS * (sizeof g_lent + strlen(PART1) + strlen(PART5)));
  CHECK_EQ_INT(st.bytes_copy, 0);
  CHECK_EQ_INT(st.responses, ROUNDS);

  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  CHECK_EQ_INT(atomic_load(&g_releases), ROUNDS);
  free(exp);
  close(g_file_fd);
  printf("mixed_chain: ok\n");
  return 0;
}
