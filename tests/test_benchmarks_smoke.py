"""Smoke test of the benchmark load generator (benchmarks/js/loadgen.mjs).

The benchmarks are not part of the suite, but their load generator speaks Engine.IO /
Socket.IO itself, so this checks, against the Node socket.io benchmark server, that its
view of a conversation is socket.io-client's (its `check` mode), and that a small
fan-out is counted exactly. Needs node; installs benchmarks/js's pinned npm packages
with `npm ci` when they are missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH_JS = ROOT / "benchmarks" / "js"
NODE_SERVER = ROOT / "benchmarks" / "servers" / "node_server.mjs"
LOADGEN = BENCH_JS / "loadgen.mjs"
PACKAGES = ("socket.io", "socket.io-client", "ws")


def _conftest() -> ModuleType:
    # Loaded by path: tests/ is not a package and sub-folders have conftests too.
    spec = importlib.util.spec_from_file_location(
        "_triosio_tests_conftest_bench", Path(__file__).parent / "conftest.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed() -> bool:
    return all((BENCH_JS / "node_modules" / p / "package.json").exists() for p in PACKAGES)


@pytest.fixture(scope="module")
def node() -> str:
    conftest = _conftest()
    node = shutil.which("node")
    conftest.require(node is not None, "node")
    assert node is not None
    if not _installed():
        npm = shutil.which("npm")
        conftest.require(npm is not None, "npm")
        assert npm is not None
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=BENCH_JS,
            capture_output=True,
            text=True,
            timeout=600,
        )
        conftest.require(done.returncode == 0, f"npm ci in benchmarks/js ({done.stderr[-300:]})")
    return node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def node_server(node: str) -> Iterator[tuple[str, int]]:
    """The Node socket.io benchmark server, pinging every second; yields (url, pid)."""
    port = _free_port()
    heartbeat = ["--ping-interval", "1", "--ping-timeout", "2"]
    process = subprocess.Popen(
        [node, str(NODE_SERVER), "--port", str(port), *heartbeat],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the Node benchmark server did not listen"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _loadgen(node: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(LOADGEN), *args, "--clk-tck", str(os.sysconf("SC_CLK_TCK"))],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output (exit {done.returncode}): {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_generator_sees_what_socketio_client_sees(node: str, node_server: tuple[str, int]) -> None:
    url, _ = node_server
    result = _loadgen(node, "check", "--url", url, "--ping-interval", "1")
    assert result["generator_vs_socketio_client"] == []
    assert result["server_vs_definition"] == []
    assert result["ok"] is True


def test_generator_counts_a_small_fanout(node: str, node_server: tuple[str, int]) -> None:
    url, pid = node_server
    result = _loadgen(
        node, "fanout", "--url", url, "--server-pid", str(pid), "--clients", "20", "--n", "30"
    )
    assert result["ok"] is True, result
    assert result["received"] == result["expected"] == 600
    assert result["lost"] == result["out_of_order"] == result["stray"] == 0
    assert result["latency"]["samples"] == 600
    assert result["server_cpu_s"] is not None
