"""Compression with the real peers, counted on the wire.

The npm socket.io-client in Node (its `ws` transport offers permessage-deflate
with a 1 KiB threshold by default) and the browser bundle in headless Chromium
(which offers permessage-deflate, and takes gzip on long-polls) exchange a
10 KiB JSON document with a triosio server, through a relay that counts the
bytes each way: with compression on they are a fraction of the documents'
size, with it off they are more than it. Every document arrives whole, as an
ack and as an event.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
from proc_helpers import bundle_page, run_node
from support import relay, require_node_modules

import triosio

COUNT = 10
DOC = [
    {"id": i, "user": f"user{i % 17}", "text": f"message number {i}", "tags": ["a", "b"]}
    for i in range(150)
]
DOC_BYTES = len(json.dumps(DOC, separators=(",", ":")))


def make_server(deflate: bool) -> triosio.Server:
    sio = triosio.Server(per_message_deflate=deflate, cors_allowed_origins="*")

    @sio.on("doc")
    async def doc(socket: triosio.Socket, value: Any) -> Any:
        await socket.emit("doc", value)
        return value

    @sio.on("small")
    def small(socket: triosio.Socket, value: Any) -> Any:
        return value

    return sio


async def exchange(
    deflate: bool, script: str, args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], Counter[str]]:
    doc_file = tmp_path / "doc.json"
    doc_file.write_text(json.dumps(DOC))
    counts: Counter[str] = Counter()
    app = triosio.App(make_server(deflate), static={"/": tmp_path})
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(triosio.serve, app, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        relays = await nursery.start(relay, port, counts)
        via = relays[0].socket.getsockname()[1]
        argv = [
            a.replace("{server}", f"http://127.0.0.1:{port}").replace(
                "{relay}", f"http://127.0.0.1:{via}"
            )
            for a in args
        ]
        out = await run_node(script, *argv, str(COUNT), str(doc_file), timeout=90, env=env)
        nursery.cancel_scope.cancel()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result
    assert result["acks"] == COUNT and result["events"] == COUNT, result
    return result, counts


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "no deflate"])
async def test_the_npm_client_over_websocket(deflate: bool, tmp_path: Path) -> None:
    require_node_modules("socket.io-client")
    result, counts = await exchange(
        deflate, "compression_client.js", ["{relay}", "websocket"], tmp_path
    )
    assert result["transport"] == "websocket"
    sent = COUNT * DOC_BYTES  # each way: the documents up; acks and events down (twice)
    if deflate:
        assert "permessage-deflate" in result["extensions"]
        assert counts["up"] < sent / 4, counts
        assert counts["down"] < 2 * sent / 4, counts
    else:
        assert result["extensions"] == ""
        assert counts["up"] > sent and counts["down"] > 2 * sent, counts


async def test_the_npm_client_over_polling_and_upgrade(tmp_path: Path) -> None:
    require_node_modules("socket.io-client")
    result, _ = await exchange(True, "compression_client.js", ["{server}", "polling"], tmp_path)
    assert result["transport"] == "polling"
    result, _ = await exchange(
        True, "compression_client.js", ["{server}", "polling,websocket"], tmp_path
    )
    assert result["transport"] == "websocket"
    assert "permessage-deflate" in result["extensions"]


@pytest.mark.browser
@pytest.mark.parametrize("transports", ["websocket", "polling"])
async def test_the_browser(transports: str, tmp_path: Path) -> None:
    chromium = bundle_page(tmp_path, "compression")
    result, counts = await exchange(
        True,
        "compression_browser.js",
        ["{server}", "{relay}", transports],
        tmp_path,
        env={"CHROMIUM_PATH": chromium},
    )
    assert result["transport"] == transports
    sent = COUNT * DOC_BYTES
    # Long-poll answers are gzip-compressed (the browser accepts it); a browser
    # never compresses what it POSTs, but it compresses its WebSocket messages.
    assert counts["down"] < 2 * sent / 4, counts
    if transports == "websocket":
        assert counts["up"] < sent / 4, counts
    else:
        assert counts["up"] > sent, counts
