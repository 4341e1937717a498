/* zh_static — a static file server whose file bytes never pass through user space.
 *
 *   zh_static [--listen ADDR] [--threads N] ROOT
 *
 * Each file is answered with zh_respond_file(req, fd, ZH_FD_CLOSE, &info): the engine answers
 * Range requests (206, multipart/byteranges, 416) and conditional requests (304, 412) per
 * RFC 9110, sends the file bytes with sendfile(2) and closes the fd when done (or when the peer
 * goes away).
 *
 * Path handling, in order:
 *   - only GET and HEAD (anything else → 405 with `Allow: GET, HEAD`); HEAD gets the same
 *     headers as GET and no body (the engine drops the body, keeping Content-Length);
 *   - `/hello` → `Hello, world!` from memory (used by the benchmark);
 *   - the path is percent-decoded; a bad escape → 400, a NUL byte or a `..` segment → 403;
 *   - the file is opened relative to ROOT's directory fd with
 *     openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so a symlink that leads out of ROOT → 403
 *     (kernels without openat2: realpath() and a prefix check against ROOT);
 *   - a directory → its index.html (403 if absent); a directory path without the trailing
 *     slash → 301 to the same path plus `/`;
 *   - missing → 404; not a regular file (FIFO, device, socket) → 403;
 *   - Content-Type from the extension (passed in zh_file_info); ETag (inode-size-mtime),
 *     Last-Modified (mtime) and Accept-Ranges: bytes come from zh_respond_file.
 * The handler runs on an engine worker thread and must not block for long: one open() and one
 * fstat() per request is acceptable for this example (a production server would cache fds or
 * do the lookups on a thread pool and zh_respond from there). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "example_common.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_PATH_BYTES 4096

static const char HELLO[] = "Hello, world!";

static struct {
  int root_fd;                 /* O_PATH|O_DIRECTORY fd of ROOT, opened once */
  char root_real[PATH_MAX];    /* realpath(ROOT), for the no-openat2 fallback */
  atomic_bool no_openat2;      /* set once openat2 returned ENOSYS */
} g;

/* ---- small helpers ------------------------------------------------------------------------ */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes src into dst (capacity cap). Returns 0, or the HTTP status to answer. */
static int percent_decode(const char *src, char *dst, size_t cap) {
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

static const char *content_type_for(const char *name) {
  static const struct {
    const char *ext;
    const char *type;
  } types[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"woff2", "font/woff2"},
  };
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  const char *dot = strrchr(base, '.');
  if (dot != NULL && dot != base) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
      if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    }
  }
  return "application/octet-stream";
}

/* Opens rel (relative to ROOT, no leading '/') read-only without following anything out of
 * ROOT. Returns an fd, or -1 with errno set (EXDEV / ELOOP when the path would escape). */
static int open_beneath(const char *rel) {
  if (!atomic_load_explicit(&g.no_openat2, memory_order_relaxed)) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    /* O_NONBLOCK: opening a FIFO must not block the worker thread (it is rejected after fstat);
     * it has no effect on regular files. */
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, g.root_fd, rel, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    if (errno != ENOSYS) return -1;
    atomic_store_explicit(&g.no_openat2, true, memory_order_relaxed);
  }
  /* Fallback for kernels before 5.6: resolve every symlink, then check the prefix. (There is a
   * window between realpath and open in which a path component could be swapped; openat2 has
   * no such window.) */
  char full[PATH_MAX + MAX_PATH_BYTES + 2];
  char resolved[PATH_MAX];
  int n = snprintf(full, sizeof full, "%s/%s", g.root_real, rel);
  if (n < 0 || (size_t)n >= sizeof full) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (realpath(full, resolved) == NULL) return -1;
  size_t rl = strlen(g.root_real);
  bool inside = strcmp(g.root_real, "/") == 0 ||
                (strncmp(resolved, g.root_real, rl) == 0 &&
                 (resolved[rl] == '\0' || resolved[rl] == '/'));
  if (!inside) {
    errno = EXDEV;
    return -1;
  }
  return open(resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static int status_for_errno(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      return 404;
    case EXDEV:  /* RESOLVE_BENEATH: the path (or a symlink in it) leads out of ROOT */
    case ELOOP:  /* RESOLVE_NO_MAGICLINKS, or a symlink loop */
    case EACCES:
    case EPERM:
      return 403;
    case EMFILE:
    case ENFILE:
    case EAGAIN:
      return 503;
    default:
      return 500;
  }
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

/* Hands fd (a regular file) to the engine with zh_respond_file, which answers Range (single and
 * multipart), If-None-Match / If-Modified-Since (304), If-Match / If-Unmodified-Since (412) and
 * If-Range, and writes ETag, Last-Modified and Accept-Ranges. Takes fd and req on every path. */
static void respond_file(zh_request *req, int fd, const char *name) {
  zh_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.content_type = content_type_for(name);
  info.last_modified = -1; /* from fstat */
  info.size = -1;          /* from fstat */
  zh_result rc = zh_respond_file(req, fd, ZH_FD_CLOSE, &info);
  if (rc != ZH_OK && rc != ZH_ERR_CLOSED) {
    /* The request was answered (500) and fd closed: only ZH_ERR_NULL / ZH_ERR_ALREADY_USED
     * would leave them to us, and neither can happen here. */
    fprintf(stderr, "zh_static: zh_respond_file(%s): %s\n", name, zh_result_str(rc));
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

  char decoded[MAX_PATH_BYTES];
  int status = percent_decode(path, decoded, sizeof decoded);
  if (status != 0) {
    zh_request_reject(req, (uint16_t)status);
    return;
  }
  if (has_dotdot_segment(decoded)) {
    zh_request_reject(req, 403);
    return;
  }

  /* Relative to ROOT: drop the leading slashes; "" means ROOT itself. Room for "index.html". */
  char rel[MAX_PATH_BYTES + 16];
  const char *r = decoded;
  while (*r == '/') r++;
  snprintf(rel, sizeof rel, "%s", *r ? r : ".");

  int fd = open_beneath(rel);
  if (fd < 0) {
    zh_request_reject(req, (uint16_t)status_for_errno(errno));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    zh_request_reject(req, 500);
    return;
  }

  if (S_ISDIR(st.st_mode)) {
    close(fd);
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
    size_t rlen = strlen(rel);
    if (strcmp(rel, ".") == 0) {
      snprintf(rel, sizeof rel, "index.html");
    } else {
      snprintf(rel + rlen, sizeof rel - rlen, "%sindex.html", rel[rlen - 1] == '/' ? "" : "/");
    }
    fd = open_beneath(rel);
    if (fd < 0) {
      int s = status_for_errno(errno);
      zh_request_reject(req, (uint16_t)(s == 404 ? 403 : s)); /* no index: no listing */
      return;
    }
    if (fstat(fd, &st) != 0) {
      close(fd);
      zh_request_reject(req, 500);
      return;
    }
  }

  if (!S_ISREG(st.st_mode)) {
    close(fd);
    zh_request_reject(req, 403);
    return;
  }
  respond_file(req, fd, rel);
}

int main(int argc, char **argv) {
  zh_ex_opts opts;
  zh_ex_parse_args(argc, argv, "ROOT", &opts);

  g.root_fd = open(opts.arg, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (g.root_fd < 0) {
    fprintf(stderr, "zh_static: cannot open directory %s: %s\n", opts.arg, strerror(errno));
    return 1;
  }
  if (realpath(opts.arg, g.root_real) == NULL) {
    fprintf(stderr, "zh_static: realpath(%s): %s\n", opts.arg, strerror(errno));
    return 1;
  }
  atomic_init(&g.no_openat2, false);

  int status = zh_ex_serve(&opts, on_request, NULL, NULL);
  close(g.root_fd);
  return status;
}
