#!/usr/bin/env bash
# Runs the whole triosio test suite on a fresh machine: installs what it needs
# (Python packages in .venv, the pinned npm peers in tests/js, and, where missing,
# Debian's redis-server and chromium), then runs ruff, mypy --strict and pytest.
# Extra arguments go to pytest, e.g. scripts/run-tests.sh -k engine -x
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "==> installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "warning: no apt-get; tests needing ${need_apt[*]} will fail under CI=true" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test,msgpack,redis,docs,metrics,otel,validation]'

echo "==> installing npm packages (tests/js)"
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)

echo "==> ruff"
.venv/bin/ruff check triosio tests examples benchmarks
echo "==> mypy --strict triosio"
.venv/bin/mypy --strict triosio
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
