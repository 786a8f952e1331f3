"""The npm engine.io-client (pinned in tests/js) against triosio's Engine.IO server."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import trio
from eio_peers import JS_DIR, running_server

pytestmark = pytest.mark.interop


def require_peer() -> None:
    from eio_peers import root_conftest

    root_conftest().require_node_modules("engine.io-client", "ws")


async def run_node(script: str, *args: str, timeout: float = 30) -> dict[str, Any]:
    """Run a node script of tests/js; its last output line is the JSON result."""
    with trio.fail_after(timeout):
        result = await trio.run_process(
            ["node", str(JS_DIR / script), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "NODE_PATH": str(JS_DIR / "node_modules")},
        )
    out = result.stdout.decode(errors="replace").strip()
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"node {script} failed ({result.returncode}): {err}{out}"
    assert out, f"node {script} printed nothing: {err}"
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mode", "transport", "upgraded"),
    [
        ("polling", "polling", False),
        ("websocket", "websocket", False),
        ("upgrade", "websocket", True),
    ],
)
async def test_engine_io_client_round_trips(mode: str, transport: str, upgraded: bool) -> None:
    require_peer()
    async with running_server(cors_allowed_origins="*") as srv:
        url = f"http://127.0.0.1:{srv.port}"
        result = await run_node("engine_client.js", url, mode, "25")
        assert result == {
            "ok": True,
            "transport": transport,
            "upgraded": upgraded,
            "mismatches": [],
        }
        with trio.fail_after(10):
            # The client closed: the server saw it, with a client-side reason.
            while len(srv.app.closed) < 1:
                await srv.app.close_event.wait()
        assert str(srv.app.closed[0][1]) in ("transport close", "transport error")
        assert len(srv.app.messages) == 50


async def test_engine_io_client_over_many_sessions_at_once() -> None:
    require_peer()
    async with running_server() as srv, trio.open_nursery() as nursery:
        url = f"http://127.0.0.1:{srv.port}"
        results: list[dict[str, Any]] = []

        async def one(mode: str) -> None:
            results.append(await run_node("engine_client.js", url, mode, "10"))

        for mode in ("polling", "websocket", "upgrade"):
            nursery.start_soon(one, mode)
    assert [r["ok"] for r in results] == [True] * 3, results
