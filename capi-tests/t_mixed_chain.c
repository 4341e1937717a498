/* A body chain of bytes + file region + lent memory + file region + bytes arrives as the exact
 * concatenation; the lent release runs exactly once per response, after it was sent, and the
 * ZH_FD_CLOSE fds are closed. Also: the same chain for HEAD (nothing sent, everything
 * released), a chain of more chunks than IOV_MAX, and a multi-MiB chain read by a slow client
 * (partial writev / sendfile progress). All of that with zh_config_set_small_file_read_max(0):
 * every file byte by sendfile, none through user space (bytes_copy == 0). Then the same chain
 * with the default small_file_read_max (4096): the 5000-byte region still goes by sendfile,
 * the 2500-byte one after the lent memory is read into that memory's sendmsg and counted in
 * bytes_copy / syscalls_copy. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define FILE_SIZE 20000
#define ROUNDS 20
#define MANY 2500        /* lent chunks in /many: more than IOV_MAX (1024) */
#define MANY_LEN 5
#define BIG_FILE_SIZE (8u << 20)

static int g_file_fd = -1, g_big_fd = -1;
static uint8_t g_lent[3000];
static atomic_int g_releases;
static int g_dups[ROUNDS + 1][2];
static atomic_int g_round;
static uint8_t g_many[MANY * MANY_LEN];
static atomic_int g_many_releases;
static uint8_t *g_big_mem; /* 1 MiB copied + 2 MiB lent */
static atomic_int g_big_releases;
static atomic_int g_big_dup1 = -1, g_big_dup2 = -1;

static const char PART1[] = "HEAD-PART:";
static const char PART5[] = ":END";

static void release(void *ud) {
  CHECK(ud == (void *)g_lent);
  atomic_fetch_add(&g_releases, 1);
}

static void release_many(void *ud) {
  size_t i = (size_t)(uintptr_t)ud;
  CHECK(i < MANY);
  atomic_fetch_add(&g_many_releases, 1);
}

static void release_big(void *ud) {
  CHECK(ud == (void *)g_big_mem);
  atomic_fetch_add(&g_big_releases, 1);
}

static void chain_handler(zh_request *req) {
  int round = atomic_load(&g_round);
  CHECK(round <= ROUNDS);
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
}

/* MANY lent chunks of MANY_LEN bytes; after every 250th one, a 10-byte file region */
static void many_handler(zh_request *req) {
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  for (size_t i = 0; i < MANY; i++) {
    CHECK_OK(zh_response_add_lent(r, g_many + i * MANY_LEN, MANY_LEN, release_many,
                                  (void *)(uintptr_t)i));
    if (i % 250 == 249) {
      CHECK_OK(zh_response_add_file(r, g_file_fd, (i / 250) * 100, 10, 0)); /* not taken */
    }
  }
  CHECK_OK(zh_respond(req, r));
}

/* 1 MiB bytes + file [3, 3 MiB + 10) + 2 MiB lent + file [5 MiB + 1, +1 MiB) + "tail" */
static void big_handler(zh_request *req) {
  zh_response *r = NULL;
  CHECK_OK(zh_response_new(200, &r));
  CHECK_OK(zh_response_add_bytes(r, g_big_mem, 1u << 20));
  int d1 = zt_dup(g_big_fd), d2 = zt_dup(g_big_fd);
  atomic_store(&g_big_dup1, d1);
  atomic_store(&g_big_dup2, d2);
  CHECK_OK(zh_response_add_file(r, d1, 3, (3u << 20) + 7, ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_lent(r, g_big_mem + (1u << 20), 2u << 20, release_big, g_big_mem));
  CHECK_OK(zh_response_add_file(r, d2, (5u << 20) + 1, 1u << 20, ZH_FD_CLOSE));
  CHECK_OK(zh_response_add_bytes(r, "tail", 4));
  CHECK_OK(zh_respond(req, r));
}

static void handler(void *ud, zh_request *req) {
  (void)ud;
  const char *path = zh_request_path(req);
  if (strcmp(path, "/chain") == 0) chain_handler(req);
  else if (strcmp(path, "/many") == 0) many_handler(req);
  else if (strcmp(path, "/big") == 0) big_handler(req);
  else CHECK_OK(zh_request_reject(req, 404));
}

static void compare(const uint8_t *got, const uint8_t *want, size_t len, const char *what) {
  for (size_t k = 0; k < len; k++) {
    if (got[k] != want[k]) {
      fprintf(stderr, "%s: mismatch at byte %zu of %zu: got 0x%02x want 0x%02x\n", what, k, len,
              got[k], want[k]);
      CHECK(0);
    }
  }
}

/* One GET /chain as round `i`: the body byte for byte, then the chain's release (once) and both
 * of its file descriptors closed. */
static void get_chain_round(zt_conn *c, int i, const uint8_t *exp, size_t exp_len, const char *what) {
  atomic_store(&g_round, i);
  zt_response r;
  zt_get(c, "/chain", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.has_content_length);
  CHECK_EQ_INT(r.content_length, exp_len);
  CHECK_EQ_INT(r.body_len, exp_len);
  compare(r.body, exp, exp_len, what);
  zt_response_free(&r);
  /* release runs once per response, after it is sent */
  ZT_WAIT_UNTIL(atomic_load(&g_releases) == i + 1, 5000);
  CHECK_EQ_INT(atomic_load(&g_releases), i + 1);
  ZT_WAIT_UNTIL(zt_fd_closed(g_dups[i][0]) && zt_fd_closed(g_dups[i][1]), 5000);
  CHECK_MSG(zt_fd_closed(g_dups[i][0]), "first file region fd not closed");
  CHECK_MSG(zt_fd_closed(g_dups[i][1]), "second file region fd not closed");
}

int main(void) {
  g_file_fd = zt_temp_file(FILE_SIZE);
  g_big_fd = zt_temp_file(BIG_FILE_SIZE);
  for (size_t i = 0; i < sizeof g_lent; i++) g_lent[i] = (uint8_t)('a' + i % 26);
  for (size_t i = 0; i < sizeof g_many; i++) g_many[i] = (uint8_t)(i * 7 + i / 5);
  g_big_mem = malloc(3u << 20);
  CHECK(g_big_mem != NULL);
  for (size_t i = 0; i < (3u << 20); i++) g_big_mem[i] = (uint8_t)(i ^ (i >> 9) ^ 0x5a);

  /* the expected body of /chain */
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
  zh_config *cfg = NULL;
  CHECK_OK(zh_config_new(&cfg));
  CHECK_OK(zh_config_set_small_file_read_max(cfg, 0)); /* always sendfile */
  zh_engine *e = zt_engine_start(cfg, handler, NULL, &port);
  zh_config_free(cfg);
  zt_conn *c = zt_connect(port);
  for (int i = 0; i < ROUNDS; i++) get_chain_round(c, i, exp, exp_len, "/chain");
  zt_sleep_ms(50);
  CHECK_EQ_INT(atomic_load(&g_releases), ROUNDS); /* never twice */

  /* HEAD: same length, no body; the chain is released all the same */
  {
    atomic_store(&g_round, ROUNDS);
    CHECK(zt_send_str(c, "HEAD /chain HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    zt_response r;
    CHECK_EQ_INT(zt_read_response(c, &r, 1), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.content_length, exp_len);
    zt_response_free(&r);
    ZT_WAIT_UNTIL(atomic_load(&g_releases) == ROUNDS + 1, 5000);
    CHECK_MSG(atomic_load(&g_releases) == ROUNDS + 1, "lent memory of a HEAD response not released");
    ZT_WAIT_UNTIL(zt_fd_closed(g_dups[ROUNDS][0]) && zt_fd_closed(g_dups[ROUNDS][1]), 5000);
    CHECK_MSG(zt_fd_closed(g_dups[ROUNDS][0]) && zt_fd_closed(g_dups[ROUNDS][1]),
              "file fds of a HEAD response not closed");
    /* no body bytes leaked after the HEAD response */
    zt_get(c, "/nothing", &r);
    CHECK_EQ_INT(r.status, 404);
    zt_response_free(&r);
  }

  zh_stats st;
  ZT_WAIT_UNTIL((zt_stats(e, &st), st.responses >= ROUNDS + 2), 3000);
  zt_print_stats("after /chain", &st);
  CHECK(st.bytes_sendfile >= (uint64_t)ROUNDS * 7500);
  CHECK(st.bytes_sendfile < (uint64_t)(ROUNDS + 1) * 7500); /* HEAD sent no file bytes */
  CHECK(st.bytes_writev >= (uint64_t)ROUNDS * (sizeof g_lent + strlen(PART1) + strlen(PART5)));
  CHECK_EQ_INT(st.bytes_copy, 0);
  CHECK_EQ_INT(st.responses, ROUNDS + 2);

  /* more chunks than IOV_MAX */
  {
    size_t many_len = MANY * MANY_LEN + (MANY / 250) * 10;
    uint8_t *want = malloc(many_len);
    CHECK(want != NULL);
    size_t w = 0;
    for (size_t i = 0; i < MANY; i++) {
      memcpy(want + w, g_many + i * MANY_LEN, MANY_LEN);
      w += MANY_LEN;
      if (i % 250 == 249) {
        zt_fill_pattern(want + w, 10, (i / 250) * 100);
        w += 10;
      }
    }
    CHECK_EQ_INT(w, many_len);
    for (int rep = 0; rep < 3; rep++) {
      zt_response r;
      zt_get(c, "/many", &r);
      CHECK_EQ_INT(r.status, 200);
      CHECK_EQ_INT(r.body_len, many_len);
      compare(r.body, want, many_len, "/many");
      zt_response_free(&r);
      ZT_WAIT_UNTIL(atomic_load(&g_many_releases) == (rep + 1) * MANY, 5000);
      CHECK_EQ_INT(atomic_load(&g_many_releases), (rep + 1) * MANY);
    }
    free(want);
    CHECK_MSG(!zt_fd_closed(g_file_fd), "a file added without ZH_FD_CLOSE was closed");
  }

  /* multi-MiB chain, slow reader: the engine must resume partial writes at the right offset */
  {
    size_t big_len = (1u << 20) + (3u << 20) + 7 + (2u << 20) + (1u << 20) + 4;
    uint8_t *want = malloc(big_len);
    CHECK(want != NULL);
    size_t w = 0;
    memcpy(want + w, g_big_mem, 1u << 20);
    w += 1u << 20;
    zt_fill_pattern(want + w, (3u << 20) + 7, 3);
    w += (3u << 20) + 7;
    memcpy(want + w, g_big_mem + (1u << 20), 2u << 20);
    w += 2u << 20;
    zt_fill_pattern(want + w, 1u << 20, (5u << 20) + 1);
    w += 1u << 20;
    memcpy(want + w, "tail", 4);
    w += 4;
    CHECK_EQ_INT(w, big_len);

    CHECK(zt_send_str(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    zt_response h;
    CHECK_EQ_INT(zt_read_head_only(c, &h, 5000), 0);
    CHECK_EQ_INT(h.status, 200);
    CHECK_EQ_INT(h.content_length, big_len);
    zt_response_free(&h);
    uint8_t *got = malloc(big_len);
    CHECK(got != NULL);
    size_t have = 0;
    unsigned reads = 0;
    while (have < big_len) {
      size_t want_n = big_len - have < 7000 ? big_len - have : 7000; /* odd-sized reads */
      long k = zt_recv_some(c, got + have, want_n);
      CHECK_MSG(k > 0, "connection ended in the middle of /big");
      have += (size_t)k;
      if (++reads % 40 == 0) zt_sleep_ms(2);
    }
    CHECK_EQ_INT(atomic_load(&g_big_releases) <= 1, 1);
    compare(got, want, big_len, "/big (slow reader)");
    free(got);
    free(want);
    ZT_WAIT_UNTIL(atomic_load(&g_big_releases) == 1, 5000);
    CHECK_EQ_INT(atomic_load(&g_big_releases), 1);
    ZT_WAIT_UNTIL(zt_fd_closed(atomic_load(&g_big_dup1)) && zt_fd_closed(atomic_load(&g_big_dup2)),
                  5000);
    CHECK(zt_fd_closed(atomic_load(&g_big_dup1)) && zt_fd_closed(atomic_load(&g_big_dup2)));
    /* the connection is still in sync */
    zt_response r;
    zt_get(c, "/nothing", &r);
    CHECK_EQ_INT(r.status, 404);
    zt_response_free(&r);
  }

  zt_stats(e, &st);
  zt_print_stats("final", &st);
  CHECK_EQ_INT(st.bytes_copy, 0);
  CHECK_EQ_INT(st.errors_io, 0);

  zt_close(c);
  CHECK_OK(zh_engine_shutdown(e, 1000));
  zh_engine_free(e);
  CHECK_EQ_INT(atomic_load(&g_releases), ROUNDS + 1);
  CHECK_EQ_INT(atomic_load(&g_many_releases), 3 * MANY);
  CHECK_EQ_INT(atomic_load(&g_big_releases), 1);

  /* The default small_file_read_max (4096): the 2500-byte region after the lent memory joins
   * that memory's sendmsg (read, counted as copied); the 5000-byte one still goes by sendfile. */
  {
    enum { SMALL_ROUNDS = 5 };
    atomic_store(&g_releases, 0);
    e = zt_engine_start(NULL, handler, NULL, &port);
    c = zt_connect(port);
    for (int i = 0; i < SMALL_ROUNDS; i++) get_chain_round(c, i, exp, exp_len, "/chain (default small_file_read_max)");
    ZT_WAIT_UNTIL((zt_stats(e, &st), st.responses >= SMALL_ROUNDS), 3000);
    zt_print_stats("after /chain, default small_file_read_max", &st);
    CHECK_EQ_INT(st.responses, SMALL_ROUNDS);
    CHECK_EQ_INT(st.bytes_sendfile, (uint64_t)SMALL_ROUNDS * 5000);
    CHECK_EQ_INT(st.bytes_copy, (uint64_t)SMALL_ROUNDS * 2500);
    CHECK(st.syscalls_copy >= SMALL_ROUNDS); /* one preadv2 per 2500-byte region */
    CHECK_EQ_INT(st.errors_io, 0);
    zt_close(c);
    CHECK_OK(zh_engine_shutdown(e, 1000));
    zh_engine_free(e);
    CHECK_EQ_INT(atomic_load(&g_releases), SMALL_ROUNDS);
  }
  free(exp);
  free(g_big_mem);
  close(g_file_fd);
  close(g_big_fd);
  printf("mixed_chain: ok\n");
  return 0;
}
