# zerohttp — the two commands you need:
#
#   make serve   builds the library and the C examples, then serves build/www (a copy of
#                examples-c/www plus a 256 MiB big.bin, generated once) with
#                build/examples-c/zh_static on http://127.0.0.1:8080/  (SERVE_ADDR=... moves it)
#   make test    everything CI runs (.ci/run): cargo tests incl. header freshness, the header as
#                C11/C++, C API tests (ctest), the RFC conformance suite, the strace zero-copy
#                proof, the examples' smoke test, the installed package (find_package/pkg-config)
#                used by a consumer, headless chromium against zh_static (test-browser), Python
#                tests, then the C tests under ASan+UBSan (ZH_ASAN=0 skips) and valgrind
#                (ZH_VALGRIND=1 adds).
#                `make -k test` keeps going past a failed step to show every failure.
#
# Missing tools (cmake, curl; nginx/wrk for bench) are apt-installed by scripts/ensure-deps.sh.
# Other targets: lib, header, examples, install (PREFIX=/usr/local), bench (bench/README.md;
# bench/thresholds.sh measures the small-response thresholds), clean, help, and each test-* step
# alone (test-cargo, test-ctest, test-browser, test-python, ...).   Needs: cargo, gcc/g++.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Steps run in the order listed; parallelism lives inside cargo/cmake/ctest.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
CMAKE ?= cmake
CTEST ?= ctest
JOBS ?= 2
ZH_ASAN ?= 1
ZH_VALGRIND ?= 0
SERVE_ADDR ?= 127.0.0.1:8080
BIG_MIB ?= 256
BENCH_ARGS ?=
PREFIX ?= /usr/local

LIB_DIR := $(CURDIR)/target/release
SONAME := libzerohttp.so.0
CMAKE_COMMON := -DZEROHTTP_LIB_DIR=$(LIB_DIR)
PY_TESTS := $(wildcard bindings/python/tests/test_*.py bindings/python/tests/*_test.py)

banner = @printf '\n==== %s ====\n' '$(1)'
# A build dir outside /build of .gitignore ignores itself (as cargo does for target/).
selfignore = @mkdir -p $(1) && echo '*' > $(1)/.gitignore

.PHONY: help deps deps-bench deps-valgrind lib header header-check cmake-build examples \
        install test test-cargo test-abi test-ctest test-zerocopy test-examples test-package test-python test-asan test-valgrind serve www bench clean

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST))

# ---- building ---------------------------------------------------------------------------------

deps:
	$(call banner,deps: scripts/ensure-deps.sh)
	scripts/ensure-deps.sh

deps-bench:
	$(call banner,deps: scripts/ensure-deps.sh --bench)
	scripts/ensure-deps.sh --bench

deps-valgrind:
	$(call banner,deps: scripts/ensure-deps.sh --valgrind)
	scripts/ensure-deps.sh --valgrind

# libzerohttp.so (SONAME libzerohttp.so.0, see build.rs) and libzerohttp.a in target/release.
# The .so.0 link is the name programs look up at run time (through their RPATH).
lib:
	$(call banner,lib: cargo build --release)
	$(CARGO) build --release
	ln -sfn libzerohttp.so $(LIB_DIR)/$(SONAME)

# Regenerate include/zerohttp.h from src/ffi (cbindgen, config cbindgen.toml).
header:
	$(call banner,header: regenerate include/zerohttp.h)
	ZH_UPDATE_HEADER=1 $(CARGO) test --release --test header_fresh -- --nocapture
	scripts/check-header.sh

header-check:
	$(call banner,header-check: include/zerohttp.h as C11 / C99 / C++ with -Werror -pedantic)
	scripts/check-header.sh

cmake-build:
	$(call banner,cmake: configure + build in build/)
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release -DZH_SANITIZE=OFF -DZH_VALGRIND=OFF $(CMAKE_COMMON)
	$(CMAKE) --build build -j$(JOBS)

# C examples: executables end up in build/examples-c/.
examples: deps lib cmake-build
	@echo "examples: $$(ls build/examples-c 2>/dev/null | grep -v -e '^CMakeFiles$$' -e '\.cmake$$' -e '^Makefile$$' | tr '\n' ' ')"

# ---- testing ----------------------------------------------------------------------------------

test: deps lib test-cargo test-abi header-check cmake-build test-ctest test-conformance test-zerocopy test-examples test-package \
      test-browser test-python test-asan test-valgrind
	$(call banner,make test: all steps passed)

# Headless chromium (installed by ensure-deps --browser; missing = failure) loads a page from
# zh_static: a <video> (Range → 206), a seek, a 48 MiB fetch and download. Asserts on the page
# state and zh_static's ZH_ACCESS_LOG; screenshot + logs in build/artifacts/browser/.
.PHONY: test-browser
test-browser:
	$(call banner,test: headless chromium against zh_static (tests/browser/browser_test.py))
	scripts/ensure-deps.sh --browser
	python3 tests/browser/browser_test.py --zh-static $(CURDIR)/build/examples-c/zh_static

test-cargo:
	$(call banner,test: cargo test --release (unit + integration + header freshness))
	env -u ZH_UPDATE_HEADER $(CARGO) test --release

test-ctest:
	$(call banner,test: ctest (C API tests) in build/)
	$(CTEST) --test-dir build --no-tests=error --output-on-failure -j$(JOBS)

# Raw-bytes RFC 9112/9110 cases against build/examples-c/zh_echo (built by cmake-build).
test-abi:
	$(call banner,test: ABI (versions agree, SONAME, only zh_* exported))
	python3 tests/abi/abi_check.py $(CURDIR)/target/release

test-conformance:
	$(call banner,test: HTTP/1.1 conformance suite (tests/conformance/run.py against zh_echo))
	ZH_ECHO=$(CURDIR)/build/examples-c/zh_echo python3 tests/conformance/run.py

test-zerocopy:
	$(call banner,test: zero-copy proof (zh_static under strace: no byte of a 32 MiB file read into user space; a 1000-byte one by one preadv2))
	python3 tests/zero_copy/strace_proof.py $(CURDIR)/build/examples-c/zh_static

# examples-c/smoke-test.sh (written with the examples) runs each example against curl.
test-examples:
	$(call banner,test: C examples smoke test (examples-c/smoke-test.sh))
	if [ -f examples-c/smoke-test.sh ]; then bash examples-c/smoke-test.sh $(CURDIR)/build/examples-c; \
	else echo "skipped: examples-c/smoke-test.sh does not exist yet"; fi

# Install into build/prefix, then build consumers from outside the tree: cmake/package-test
# (find_package, shared + static), pkg-config, and examples-c standalone.
test-package: cmake-build
	$(call banner,test: installed package (build/prefix) used by outside projects)
	rm -rf build/prefix build/package-test build/package-examples
	$(CMAKE) --install build --prefix $(CURDIR)/build/prefix
	$(CMAKE) -S cmake/package-test -B build/package-test -DCMAKE_PREFIX_PATH=$(CURDIR)/build/prefix
	$(CMAKE) --build build/package-test -j$(JOBS)
	$(CTEST) --test-dir build/package-test --no-tests=error --output-on-failure
	if command -v pkg-config >/dev/null; then \
	  PKG_CONFIG_PATH=$(CURDIR)/build/prefix/lib/pkgconfig; export PKG_CONFIG_PATH; \
	  $${CC:-cc} -Wall -Wextra -Werror cmake/package-test/use_zerohttp.c -o build/package-test/use_pc \
	    $$(pkg-config --cflags --libs zerohttp) -Wl,-rpath,$(CURDIR)/build/prefix/lib; \
	  build/package-test/use_pc; \
	else echo "pkg-config not installed: .pc file not exercised"; fi
	if [ -f examples-c/CMakeLists.txt ]; then \
	  $(CMAKE) -S examples-c -B build/package-examples -DCMAKE_PREFIX_PATH=$(CURDIR)/build/prefix; \
	  $(CMAKE) --build build/package-examples -j$(JOBS); \
	fi

test-python:
ifeq ($(strip $(PY_TESTS)),)
	$(call banner,test: Python)
	@echo "skipped Python tests: bindings/python/tests has no test files yet"
else
	$(call banner,test: Python (pytest, build/venv))
	scripts/ensure-pyenv.sh
	rc=0; ZEROHTTP_LIBRARY=$(LIB_DIR)/libzerohttp.so PYTHONPATH=$(CURDIR)/bindings/python \
	  build/venv/bin/python -m pytest -q bindings/python/tests || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; fi; \
	exit $$rc
endif

test-asan:
ifeq ($(ZH_ASAN),1)
	$(call banner,test: C tests under ASan+UBSan in build-asan/)
	$(call selfignore,build-asan)
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZH_SANITIZE=address -DZH_VALGRIND=OFF $(CMAKE_COMMON)
	$(CMAKE) --build build-asan -j$(JOBS)
	$(CTEST) --test-dir build-asan --no-tests=error --output-on-failure -j$(JOBS)
else
	$(call banner,test: ASan pass skipped (ZH_ASAN=$(ZH_ASAN)))
endif

test-valgrind:
ifeq ($(ZH_VALGRIND),1)
	$(call banner,test: C tests under valgrind in build-valgrind/)
	scripts/ensure-deps.sh --valgrind
	$(call selfignore,build-valgrind)
	$(CMAKE) -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZH_SANITIZE=OFF -DZH_VALGRIND=ON $(CMAKE_COMMON)
	$(CMAKE) --build build-valgrind -j$(JOBS)
	$(CTEST) --test-dir build-valgrind -R '^valgrind_' --no-tests=error --output-on-failure -j$(JOBS)
else
	$(call banner,test: valgrind pass skipped (ZH_VALGRIND=$(ZH_VALGRIND); ZH_VALGRIND=1 runs it))
endif

# ---- running ----------------------------------------------------------------------------------

# build/www = examples-c/www + big.bin ($(BIG_MIB) MiB of random bytes, generated once in
# build/www-big/ and hard-linked in, so re-running `make serve` costs nothing).
www:
	$(call banner,www: build/www (examples-c/www + $(BIG_MIB) MiB big.bin))
	mkdir -p build/www-big
	size=$$(( $(BIG_MIB) * 1024 * 1024 )); \
	if [ "$$(stat -c %s build/www-big/big.bin 2>/dev/null || echo 0)" != "$$size" ]; then \
	  echo "generating build/www-big/big.bin ($(BIG_MIB) MiB)"; \
	  head -c "$$size" /dev/urandom > build/www-big/big.bin.tmp; \
	  mv build/www-big/big.bin.tmp build/www-big/big.bin; \
	fi
	rm -rf build/www && mkdir -p build/www
	if [ -d examples-c/www ]; then cp -a examples-c/www/. build/www/; fi
	ln -f build/www-big/big.bin build/www/big.bin 2>/dev/null || cp build/www-big/big.bin build/www/big.bin

serve: examples www
	$(call banner,serve: zh_static on http://$(SERVE_ADDR)/ (try: curl -o /dev/null http://$(SERVE_ADDR)/big.bin))
	@test -x build/examples-c/zh_static || { echo "build/examples-c/zh_static was not built (does examples-c/CMakeLists.txt build it yet?)" >&2; exit 1; }
	exec build/examples-c/zh_static --listen $(SERVE_ADDR) build/www

# Never part of `make test`. BENCH_* variables pick scenarios, servers, rounds (bench/README.md);
# results in bench/results/<timestamp>/ (results.md, results.json, raw/).
bench: deps-bench lib cmake-build
	$(call banner,bench: bench/run.sh (scenarios/servers via BENCH_*; see bench/README.md))
	ZH_EXAMPLES_DIR=$(CURDIR)/build/examples-c ZEROHTTP_LIB_DIR=$(LIB_DIR) bash bench/run.sh $(BENCH_ARGS)

install: lib
	$(call banner,install into $(PREFIX))
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_COMMON)
	$(CMAKE) --install build --prefix $(PREFIX)

clean:
	$(call banner,clean)
	$(CARGO) clean
	rm -rf build build-asan build-valgrind
