"""Starting and stopping example servers as subprocesses, for integration tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from support import require_binary, require_node_modules

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running_example(*args: str, ready: str = r"http://[\d.]+:(\d+)/") -> AsyncIterator[str]:
    """Run ``python <args>`` until its output matches ``ready``; yield the URL found.

    The process is stopped by its PID when the block ends.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output = b""
    try:
        with trio.fail_after(20):
            while True:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"{args} exited early: {output.decode(errors='replace')}")
                output += chunk
                match = re.search(ready.encode(), output)
                if match:
                    break
        url = match.group(0).decode()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, process.stdout)
            yield url
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        with trio.move_on_after(5):
            await process.wait()
        await process.stdout.aclose()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    # Keep reading so a chatty server never blocks on a full pipe.
    while await stream.receive_some(65536):
        pass


async def run_node(
    script: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> str:
    """Run a node script from tests/js; return its standard output."""
    with trio.fail_after(timeout):
        result = await trio.run_process(
            ["node", str(ROOT / "tests" / "js" / script), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
    if result.returncode != 0:
        raise AssertionError(
            f"node {script} failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
        )
    return str(result.stdout.decode())


def bundle_page(directory: Path, title: str) -> str:
    """An ``index.html`` loading the npm socket.io-client browser bundle, both
    written into ``directory`` (to be served); returns the Chromium binary."""
    chromium = require_binary("chromium")
    modules = require_node_modules("playwright-core", "socket.io-client")
    shutil.copy(modules / "socket.io-client" / "dist" / "socket.io.min.js", directory)
    (directory / "index.html").write_text(
        f'<!doctype html><meta charset="utf-8"><title>{title}</title>'
        '<script src="/socket.io.min.js"></script>'
    )
    return chromium
