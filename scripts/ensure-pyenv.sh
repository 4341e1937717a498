#!/usr/bin/env bash
# Create (once) the Python virtualenv for the test suite at build/venv, with pytest from PyPI.
# Idempotent: a no-op when the venv exists and imports pytest.
# Extra requirements: bindings/python/requirements-test.txt is installed too when it exists.
# usage: scripts/ensure-pyenv.sh            (prints nothing else on success but the venv path)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/venv
req=bindings/python/requirements-test.txt
stamp=$venv/.zh-requirements

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pytest' >/dev/null 2>&1 \
   && { [ ! -f "$req" ] || cmp -s "$req" "$stamp"; }; then
  echo "$venv"
  exit 0
fi

scripts/ensure-deps.sh --pyvenv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p build
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "pytest>=8"
if [ -f "$req" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
"$venv/bin/python" -c 'import pytest' >/dev/null
echo "$venv"
