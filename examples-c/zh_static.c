/* zh_static — a static file server whose file bytes never pass through user space.
 *
 *   zh_static [--listen ADDR] [--threads N] [--file-cache ENTRIES] [--congestion NAME] ROOT
 *
 * Each file is answered with zh_respond_file_at(req, root_fd, path, 0, &info): the engine opens
 * the path beneath ROOT through each worker's open-file cache (--file-cache ENTRIES per worker,
 * default 1024; 0 = open, fstat and close on every request), answers Range requests (206,
 * multipart/byteranges, 416) and conditional requests (304, 412) per RFC 9110 and sends the file
 * bytes with sendfile(2). A cached file costs no open/fstat/close; it is revalidated with one
 * fstatat once a second, so a replaced or changed file is served within a second.
 * --congestion NAME gives the listener, and so every connection, that TCP congestion control
 * (zh_config_set_tcp_congestion; e.g. `cubic` or `reno` where the system's `bbr` would pace
 * each connection with timers that a client on the same host gains nothing from).
 *
 * Path handling, in order:
 *   - only GET and HEAD (anything else → 405 with `Allow: GET, HEAD`); HEAD gets the same
 *     headers as GET and no body (the engine drops the body, keeping Content-Length);
 *   - `/hello` → `Hello, world!` from memory (used by the benchmark);
 *   - the path is percent-decoded; a bad escape → 400, a NUL byte or a `..` segment → 403;
 *   - the engine opens the file relative to ROOT's directory fd with
 *     openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so a symlink that leads out of ROOT → 403
 *     (kernels without openat2: the opened file's real path must lie under ROOT);
 *   - a directory → its index.html (403 if absent); a directory path without the trailing
 *     slash → 301 to the same path plus `/`;
 *   - missing → 404; not a regular file (FIFO, device, socket) → 403;
 *   - Content-Type from the extension (passed in zh_file_info); ETag (inode-size-mtime),
 *     Last-Modified (mtime) and Accept-Ranges: bytes come from zh_respond_file.
 * The handler runs on the engine's loop (a worker thread, or the main thread with --threads 1)
 * and must not block for long: a cache miss costs one
 * openat2 and one fstat there, a hit nothing. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "example_common.h"

#define MAX_PATH_BYTES 4096

static const char HELLO[] = "Hello, world!";

static struct {
  int root_fd; /* O_PATH|O_DIRECTORY fd of ROOT, opened once, for zh_respond_file_at */
} g;

/* ---- small helpers ------------------------------------------------------------------------ */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes src into dst (capacity cap); *len gets the decoded length. Returns 0, or the
 * HTTP status to answer. */
static int percent_decode(const char *src, char *dst, size_t cap, size_t *len) {
  size_t n = 0;
  for (const char *p = src; *p != '\0'; p++) {
    char c = *p;
    if (c == '%') {
      int hi = hexval(p[1]);
      int lo = hi < 0 ? -1 : hexval(p[2]);
      if (hi < 0 || lo < 0) return 400;
      c = (char)(hi * 16 + lo);
      p += 2;
      if (c == '\0') return 403;
    }
    if (n + 1 >= cap) return 414;
    dst[n++] = c;
  }
  dst[n] = '\0';
  *len = n;
  return 0;
}

/* True when some '/'-separated segment of path is exactly "..". */
static bool has_dotdot_segment(const char *path) {
  const char *seg = path;
  for (;;) {
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    if (len == 2 && seg[0] == '.' && seg[1] == '.') return true;
    if (end == NULL) return false;
    seg = end + 1;
  }
}

#define OCTET_STREAM "application/octet-stream"

/* Content-Type from the extension of name (len bytes): the part after the last '.' of the last
 * segment, unless that '.' starts the segment (".profile" has none), ASCII case-insensitive.
 * Runs on every request, so no scan of a table with strcasecmp: the extension (at most 5 bytes
 * in the table) is lowercased once, then one switch on its length and a memcmp or two. */
static const char *content_type_for(const char *name, size_t len) {
  const char *end = name + len;
  const char *ext = end;
  while (ext > name && ext[-1] != '.' && ext[-1] != '/') ext--;
  if (ext == name || ext[-1] != '.') return OCTET_STREAM; /* no dot in the last segment */
  const char *dot = ext - 1;
  if (dot == name || dot[-1] == '/') return OCTET_STREAM; /* a leading dot */
  size_t n = (size_t)(end - ext);
  if (n == 0 || n > 5) return OCTET_STREAM;
  char e[5];
  for (size_t i = 0; i < n; i++) {
    char c = ext[i];
    e[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
  }
#define IS(lit) (memcmp(e, lit, sizeof lit - 1) == 0)
  switch (n) {
    case 2:
      if (IS("js")) return "text/javascript; charset=utf-8";
      break;
    case 3:
      if (IS("htm")) return "text/html; charset=utf-8";
      if (IS("css")) return "text/css; charset=utf-8";
      if (IS("mjs")) return "text/javascript; charset=utf-8";
      if (IS("txt")) return "text/plain; charset=utf-8";
      if (IS("png")) return "image/png";
      if (IS("jpg")) return "image/jpeg";
      if (IS("gif")) return "image/gif";
      if (IS("svg")) return "image/svg+xml";
      if (IS("ico")) return "image/x-icon";
      if (IS("pdf")) return "application/pdf";
      if (IS("mp4")) return "video/mp4";
      break;
    case 4:
      if (IS("html")) return "text/html; charset=utf-8";
      if (IS("json")) return "application/json";
      if (IS("jpeg")) return "image/jpeg";
      if (IS("wasm")) return "application/wasm";
      if (IS("webm")) return "video/webm";
      break;
    case 5:
      if (IS("woff2")) return "font/woff2";
      break;
  }
#undef IS
  return OCTET_STREAM;
}

/* Sends a short text/plain response with one extra header (name may be NULL). */
static void respond_text(zh_request *req, uint16_t status, const char *hname, const char *hvalue,
                         const char *text) {
  zh_response *resp = NULL;
  if (zh_response_new(status, &resp) != ZH_OK) {
    zh_request_reject(req, status);
    return;
  }
  if ((hname != NULL && zh_response_add_header(resp, hname, hvalue) != ZH_OK) ||
      zh_response_add_header(resp, "Content-Type", "text/plain; charset=utf-8") != ZH_OK ||
      zh_response_add_bytes(resp, text, strlen(text)) != ZH_OK) {
    zh_response_free(resp);
    zh_request_reject(req, 500);
    return;
  }
  (void)zh_respond(req, resp);
}

static void respond_hello(zh_request *req) {
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
  (void)zh_respond(req, resp);
}

/* Answers with the file at rel beneath ROOT (zh_respond_file_at: Range single and multipart,
 * If-None-Match / If-Modified-Since → 304, If-Match / If-Unmodified-Since → 412, If-Range, ETag,
 * Last-Modified, Accept-Ranges). Returns ZH_OK when the request was answered; otherwise the
 * request is still ours and the result says why (ZH_ERR_NOT_FOUND, ZH_ERR_FORBIDDEN,
 * ZH_ERR_IS_DIRECTORY, ZH_ERR_IO). */
static zh_result respond_file(zh_request *req, const char *rel, size_t rlen) {
  zh_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.content_type = content_type_for(rel, rlen);
  info.last_modified = -1; /* from fstat */
  info.size = -1;          /* from fstat */
  zh_result rc = zh_respond_file_at(req, g.root_fd, rel, 0, &info);
  return rc == ZH_ERR_CLOSED ? ZH_OK : rc; /* CLOSED: handed back, the peer is gone */
}

static uint16_t status_for(zh_result rc) {
  switch (rc) {
    case ZH_ERR_NOT_FOUND: return 404;
    case ZH_ERR_FORBIDDEN: return 403;
    case ZH_ERR_IO: return 503; /* out of descriptors and the like: try again */
    default: return 500;
  }
}

/* ---- the handler -------------------------------------------------------------------------- */

static void on_request(void *userdata, zh_request *req) {
  (void)userdata;
  const char *method = zh_request_method(req);
  const char *path = zh_request_path(req);
  if (method == NULL || path == NULL) {
    zh_request_reject(req, 400);
    return;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    respond_text(req, 405, "Allow", "GET, HEAD", "Method Not Allowed\n");
    return;
  }
  if (strcmp(path, "/hello") == 0) {
    respond_hello(req);
    return;
  }
  if (path[0] != '/') {
    zh_request_reject(req, 400);
    return;
  }

  /* Decoded in place of the relative path: room past MAX_PATH_BYTES to append "/index.html". */
  char decoded[MAX_PATH_BYTES + 16];
  size_t dlen = 0;
  int status = percent_decode(path, decoded, MAX_PATH_BYTES, &dlen);
  if (status != 0) {
    zh_request_reject(req, (uint16_t)status);
    return;
  }
  if (has_dotdot_segment(decoded)) {
    zh_request_reject(req, 403);
    return;
  }

  /* Relative to ROOT: drop the leading slashes; "" means ROOT itself ("."). No copy. */
  char *rel = decoded;
  while (*rel == '/') rel++;
  size_t rlen = dlen - (size_t)(rel - decoded);
  if (rlen == 0) {
    rel = decoded;
    memcpy(rel, ".", 2);
    rlen = 1;
  }

  zh_result rc = respond_file(req, rel, rlen);
  if (rc == ZH_OK) return;
  if (rc != ZH_ERR_IS_DIRECTORY) {
    zh_request_reject(req, status_for(rc));
    return;
  }
  size_t plen = strlen(path);
  if (path[plen - 1] != '/') {
    /* Redirect "/dir" to "/dir/" (raw, still percent-encoded path; keep the query). */
    const char *query = zh_request_query(req);
    char location[2 * MAX_PATH_BYTES + 8];
    int n = snprintf(location, sizeof location, "%s/%s%s", path, query ? "?" : "",
                     query ? query : "");
    if (n < 0 || (size_t)n >= sizeof location) {
      zh_request_reject(req, 414);
      return;
    }
    respond_text(req, 301, "Location", location, "Moved Permanently\n");
    return;
  }
  if (rlen == 1 && rel[0] == '.') {
    rlen = 0; /* ROOT itself: "index.html", not "./index.html" */
  } else if (rel[rlen - 1] != '/') {
    rel[rlen++] = '/';
  }
  memcpy(rel + rlen, "index.html", sizeof "index.html"); /* fits: rlen < MAX_PATH_BYTES */
  rlen += sizeof "index.html" - 1;
  rc = respond_file(req, rel, rlen);
  if (rc == ZH_OK) return;
  /* No index: no listing. A directory named index.html is not served either. */
  zh_request_reject(req, rc == ZH_ERR_NOT_FOUND || rc == ZH_ERR_IS_DIRECTORY ? 403 : status_for(rc));
}

static long g_file_cache = 1024;
static const char *g_congestion = NULL; /* --congestion NAME; NULL = the system's */

static zh_result configure(zh_config *cfg) {
  zh_result rc = zh_config_set_file_cache(cfg, (uint32_t)g_file_cache, 1000);
  if (rc != ZH_OK || g_congestion == NULL) return rc;
  rc = zh_config_set_tcp_congestion(cfg, g_congestion);
  if (rc != ZH_OK)
    fprintf(stderr, "zh_static: --congestion %s: %s (see net.ipv4.tcp_%s_congestion_control)\n",
            g_congestion, zh_result_str(rc), geteuid() == 0 ? "available" : "allowed");
  return rc;
}

/* The value of "--NAME VALUE" / "--NAME=VALUE" at argv[*i] (advancing *i past a separate
 * value), or NULL if argv[*i] is another argument. */
static const char *take_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    fprintf(stderr, "zh_static: %s needs a value\n", name);
    exit(2);
  }
  return argv[++*i];
}

/* Takes zh_static's own flags out of argv (the shared parser does not know them):
 * "--file-cache N" and "--congestion NAME". */
static int take_own_flags(int argc, char **argv) {
  int out = 1;
  for (int i = 1; i < argc; i++) {
    const char *val = NULL;
    if ((val = take_value(argc, argv, &i, "--congestion")) != NULL) {
      g_congestion = val;
      continue;
    }
    if ((val = take_value(argc, argv, &i, "--file-cache")) == NULL) {
      argv[out++] = argv[i];
      continue;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || n < 0 || n > 1000000) {
      fprintf(stderr, "zh_static: --file-cache wants an integer in 0..1000000, got %s\n", val);
      exit(2);
    }
    g_file_cache = n;
  }
  argv[out] = NULL;
  return out;
}

int main(int argc, char **argv) {
  argc = take_own_flags(argc, argv);
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, "ROOT", &opts);

  g.root_fd = open(opts.arg, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (g.root_fd < 0) {
    fprintf(stderr, "zh_static: cannot open directory %s: %s\n", opts.arg, strerror(errno));
    return 1;
  }

  int status = zh_ex_serve(&opts, on_request, NULL, configure);
  close(g.root_fd);
  return status;
}
