#!/usr/bin/env bash
# Runs the example chat server on a fresh machine: installs triosio in .venv and,
# when npm is there, the socket.io browser client (else the page uses the CDN),
# then serves http://127.0.0.1:8000/ (arguments go to the server, e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing triosio"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
if command -v npm >/dev/null 2>&1; then
  echo "==> installing the socket.io browser client (examples/chat)"
  (cd examples/chat && npm ci --no-audit --no-fund --loglevel=error) \
    || echo "npm install failed: the page will load the client from the CDN"
fi
exec .venv/bin/python examples/chat/server.py "$@"
