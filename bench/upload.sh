#!/usr/bin/env bash
# Upload benchmark alone: the `upload` scenario of bench/run.sh (PUT of BENCH_UPLOAD_MB MiB to
# zh_upload, body spliced socket -> pipe -> file, against ZH_FORCE_COPY=1: recv + pwrite).
# Every knob of bench/run.sh applies (BENCH_ROUNDS, BENCH_UPLOAD_MB, ZH_UPLOAD, BENCH_OUT, ...).
set -euo pipefail
export BENCH_SCENARIOS=upload
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$@"
