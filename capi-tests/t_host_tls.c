/* Runs examples-c/tls_host.c (zh_tls_host: HTTPS terminated by the host with OpenSSL, handed to
 * the engine with zh_engine_adopt_transport, one epoll loop in external-loop mode). A self-signed
 * certificate is made at test time with the `openssl` command. Checks with curl --insecure:
 * /hello (exact body), the 2 MiB big.bin byte-identical (cmp), a Range request, 404, keep-alive
 * (two URLs in one curl run: %{num_connects} = 1 then 0), several clients at once; python3's
 * http.client over ssl (when installed): 20 requests on one connection; exit 0 on SIGTERM with
 * an idle TLS connection open, and on SIGINT. The binary comes from ZH_TLS_HOST (CMakeLists.txt).
 * `openssl` and `curl` are required (scripts/ensure-deps.sh installs them). */
#define _GNU_SOURCE
#include "t_host_common.h"

static void expect_output(const char *cmd, const char *want, const char *what) {
  char *out = host_run(cmd);
  if (out == NULL) {
    fprintf(stderr, "command failed: %s\n", cmd);
    CHECK_MSG(0, what);
  }
  if (strcmp(out, want) != 0) fprintf(stderr, "%s: got [%s], want [%s]\n", what, out, want);
  CHECK_STREQ(out, want);
  free(out);
  fprintf(stderr, "%s: ok\n", what);
}

int main(void) {
  const char *bin = host_binary("ZH_TLS_HOST");
  CHECK_MSG(system("command -v openssl >/dev/null 2>&1") == 0,
            "the openssl command is required (Debian: apt-get install openssl)");
  CHECK_MSG(system("command -v curl >/dev/null 2>&1") == 0,
            "curl is required (Debian: apt-get install curl)");

  host_proc h;
  memset(&h, 0, sizeof h);
  host_make_root(&h);

  char cert[600], key[600], cmd[8192];
  snprintf(cert, sizeof cert, "%s/cert.pem", h.root);
  snprintf(key, sizeof key, "%s/key.pem", h.root);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
           "-subj /CN=localhost >/dev/null 2>&1 && echo made",
           key, cert);
  expect_output(cmd, "made\n", "self-signed certificate");

  char *argv[] = {(char *)bin, "--listen", "127.0.0.1:0", "--cert", cert, "--key", key,
                  "--root", h.root, NULL};
  host_start_scheme(&h, argv, "https");
  unsigned port = h.port;
  const char *curl = "curl --insecure -sS --max-time 10";

  snprintf(cmd, sizeof cmd, "%s https://127.0.0.1:%u/hello", curl, port);
  expect_output(cmd, "Hello, world!", "curl /hello");

  snprintf(cmd, sizeof cmd, "%s https://127.0.0.1:%u/big.bin | cmp - %s/big.bin && echo same",
           curl, port, h.root);
  expect_output(cmd, "same\n", "curl big.bin (2 MiB) byte-identical");

  snprintf(cmd, sizeof cmd,
           "%s -r 1000-1999 -o %s/range.out -w '%%{http_code}' https://127.0.0.1:%u/big.bin && "
           "cmp %s/range.out <(tail -c +1001 %s/big.bin | head -c 1000) && echo ' same'",
           curl, h.root, port, h.root, h.root);
  char bash_cmd[8600];
  snprintf(bash_cmd, sizeof bash_cmd, "bash -c \"%s\"", cmd);
  expect_output(bash_cmd, "206 same\n", "curl Range 1000-1999");

  snprintf(cmd, sizeof cmd, "%s -o /dev/null -w '%%{http_code}' https://127.0.0.1:%u/no/such",
           curl, port);
  expect_output(cmd, "404", "curl 404");

  /* keep-alive: the second transfer reuses the first one's TLS connection */
  snprintf(cmd, sizeof cmd,
           "%s -w '%%{num_connects} %%{http_code}\\n' -o /dev/null -o /dev/null "
           "https://127.0.0.1:%u/hello https://127.0.0.1:%u/big.bin",
           curl, port, port);
  expect_output(cmd, "1 200\n0 200\n", "curl keep-alive (num_connects 1 then 0)");

  /* several TLS clients at once, each with big files */
  snprintf(cmd, sizeof cmd,
           "for i in 1 2 3 4 5 6; do (%s https://127.0.0.1:%u/big.bin | cmp - %s/big.bin && "
           "echo ok) & done; wait",
           curl, port, h.root);
  expect_output(cmd, "ok\nok\nok\nok\nok\nok\n", "6 concurrent curl big.bin");

  if (system("command -v python3 >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd,
             "python3 - <<'EOF'\n"
             "import http.client, ssl\n"
             "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
             "ctx.verify_mode = ssl.CERT_NONE\n"
             "c = http.client.HTTPSConnection('127.0.0.1', %u, timeout=10, context=ctx)\n"
             "big = open('%s/big.bin', 'rb').read()\n"
             "for i in range(10):\n"
             "    c.request('GET', '/hello'); r = c.getresponse(); b = r.read()\n"
             "    assert r.status == 200 and b == b'Hello, world!', (r.status, b)\n"
             "    c.request('GET', '/big.bin'); r = c.getresponse(); b = r.read()\n"
             "    assert r.status == 200 and b == big, (r.status, len(b))\n"
             "c.request('HEAD', '/big.bin'); r = c.getresponse(); r.read()\n"
             "assert r.status == 200 and int(r.getheader('Content-Length')) == len(big)\n"
             "c.request('GET', '/nope'); r = c.getresponse(); r.read(); assert r.status == 404\n"
             "print('python ok')\n"
             "EOF",
             port, h.root);
    expect_output(cmd, "python ok\n", "python3 http.client over TLS, one connection");
  } else {
    fprintf(stderr, "python3 not installed: http.client checks skipped\n");
  }

  /* An idle TLS connection (handshake done, nothing sent) and a raw TCP connection with no
   * handshake are open at SIGTERM: the host must still exit 0 promptly. */
  zt_conn *raw = zt_connect(h.port);
  FILE *idle = NULL;
  if (system("command -v python3 >/dev/null 2>&1") == 0) {
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import socket, ssl, sys\n"
             "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
             "ctx.verify_mode = ssl.CERT_NONE\n"
             "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', %u)))\n"
             "print('up', flush=True)\n"
             "try:\n"
             "    d = s.recv(1)\n"
             "except Exception:\n"
             "    d = b''\n"
             "print('closed' if d == b'' else 'data')\"",
             port);
    idle = popen(cmd, "r");
    CHECK(idle != NULL);
    char line[64] = "";
    CHECK(fgets(line, sizeof line, idle) != NULL);
    CHECK_STREQ(line, "up\n");
    zt_sleep_ms(100); /* let the host adopt it */
  }
  host_stop(&h, SIGTERM);
  if (idle != NULL) {
    char line[64] = "";
    CHECK(fgets(line, sizeof line, idle) != NULL);
    CHECK_STREQ(line, "closed\n");
    CHECK(pclose(idle) == 0);
    fprintf(stderr, "idle TLS connection closed at shutdown: ok\n");
  }
  CHECK(zt_wait_closed(raw, 2000, NULL));
  zt_close(raw);

  /* SIGINT works the same. */
  host_start_scheme(&h, argv, "https");
  port = h.port;
  snprintf(cmd, sizeof cmd, "%s https://127.0.0.1:%u/hello", curl, port);
  expect_output(cmd, "Hello, world!", "curl /hello after restart");
  host_stop(&h, SIGINT);

  char path[1024];
  const char *extra[] = {"cert.pem", "key.pem", "range.out"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", h.root, extra[i]);
    unlink(path);
  }
  host_remove_root(&h);
  fprintf(stderr, "host_tls: ok\n");
  return 0;
}
