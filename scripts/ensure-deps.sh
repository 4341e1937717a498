#!/usr/bin/env bash
# Make sure the system tools the build needs are installed; install what is missing with apt.
#
# usage: scripts/ensure-deps.sh [--bench] [--valgrind] [--pyvenv] [--browser]
#   (always)    cmake, curl, strace (the zero-copy proof test), ss (iproute2: the examples' smoke test)
#   --bench     nginx, wrk (required); lighttpd, h2o, libmicrohttpd-dev, liburing-dev (optional: a
#               failure is only a warning, bench/run.sh then reports that peer as not run)
#   --valgrind  valgrind
#   --pyvenv    python3 venv support (python3-venv), used by scripts/ensure-pyenv.sh
#   --browser   chromium (headless, for tests/browser) and fonts-liberation (text in its
#               screenshots); both required: a failed install fails
#
# Idempotent and a fast no-op when everything is there. When something is missing it runs
# `apt-get update` once, then `apt-get install -y` (as root, else through sudo, else it fails
# and says what to install). nginx/lighttpd/h2o installed here get their system service stopped
# again: Debian starts them on port 80 at install time.
set -euo pipefail

want_bench=0 want_valgrind=0 want_pyvenv=0 want_browser=0
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    --valgrind) want_valgrind=1 ;;
    --pyvenv) want_pyvenv=1 ;;
    --browser) want_browser=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "ensure-deps: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

# command -v with the sbin directories too (nginx lives in /usr/sbin; not on a user's PATH).
# ZH_DEPS_PRETEND_MISSING="cmake nginx" treats those as absent (to exercise the install path).
have() {
  case " ${ZH_DEPS_PRETEND_MISSING:-} " in *" $1 "*) [ "${_zh_installed:-0}" = 1 ] || return 1 ;; esac
  PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1
}

required=() optional=()
missing() { # missing <list-name> <command> <package>
  if ! have "$2"; then
    local -n list=$1
    list+=("$3")
  fi
}

missing required cmake cmake
missing required curl curl
missing required strace strace
missing required pkg-config pkg-config
# ss shows the examples' smoke test which congestion control a served connection uses.
missing required ss iproute2
# libevent is only for the zh_libevent_host example and its test (built when present).
if ! { have pkg-config && pkg-config --exists libevent 2>/dev/null; }; then optional+=(libevent-dev); fi
# OpenSSL is for the zh_tls_host example (host transport) and its test.
if ! { have pkg-config && pkg-config --exists openssl 2>/dev/null; }; then optional+=(libssl-dev); fi
missing optional openssl openssl
if [ "$want_bench" = 1 ]; then
  missing required nginx nginx
  missing required wrk wrk
  missing optional lighttpd lighttpd
  missing optional h2o h2o
  if ! { have pkg-config && pkg-config --exists libmicrohttpd 2>/dev/null; }; then optional+=(libmicrohttpd-dev); fi
  # liburing is for the floor-uring measuring stick (bench/peers/floor.c) only.
  [ -f /usr/include/liburing.h ] || optional+=(liburing-dev)
fi
if [ "$want_valgrind" = 1 ]; then missing required valgrind valgrind; fi
if [ "$want_pyvenv" = 1 ] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  have python3 || required+=(python3)
  required+=(python3-venv)
fi
# The fonts are a package without a command: look for its directory.
have_fonts() { [ -d /usr/share/fonts/truetype/liberation ]; }
if [ "$want_browser" = 1 ]; then
  missing required chromium chromium
  have_fonts || required+=(fonts-liberation)
fi

if [ ${#required[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
  exit 0
fi

echo "ensure-deps: missing: ${required[*]} ${optional[*]}"
if ! have apt-get; then
  echo "ensure-deps: no apt-get on this system; install these yourself: ${required[*]} ${optional[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif have sudo; then
  as_root=(sudo)
else
  echo "ensure-deps: not root and no sudo: install as root: apt-get install -y ${required[*]} ${optional[*]}" >&2
  exit 1
fi

apt_get() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 "$@"
}

apt_get update -q
installed=()
if [ ${#required[@]} -gt 0 ]; then
  apt_get install -y -q --no-install-recommends "${required[@]}"
  installed+=("${required[@]}")
fi
for pkg in "${optional[@]}"; do
  if apt_get install -y -q --no-install-recommends "$pkg"; then
    installed+=("$pkg")
  else
    echo "ensure-deps: warning: optional package $pkg could not be installed; continuing" >&2
  fi
done

_zh_installed=1

# Debian starts freshly installed daemons on port 80; benchmarks start their own instances.
for svc in nginx lighttpd h2o; do
  for pkg in "${installed[@]}"; do
    if [ "$pkg" = "$svc" ]; then
      if have service; then "${as_root[@]}" service "$svc" stop >/dev/null 2>&1 || true; fi
      if have systemctl; then "${as_root[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
      echo "ensure-deps: stopped the $svc system service"
    fi
  done
done

# Re-check: everything required must now be there.
still=()
for c in cmake curl strace pkg-config; do have "$c" || still+=("$c"); done
if [ "$want_bench" = 1 ]; then for c in nginx wrk; do have "$c" || still+=("$c"); done; fi
if [ "$want_valgrind" = 1 ]; then have valgrind || still+=(valgrind); fi
if [ "$want_pyvenv" = 1 ]; then python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || still+=(python3-venv); fi
if [ "$want_browser" = 1 ]; then
  have chromium || still+=(chromium)
  have_fonts || still+=(fonts-liberation)
fi
if [ ${#still[@]} -gt 0 ]; then
  echo "ensure-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "ensure-deps: installed: ${installed[*]}"
