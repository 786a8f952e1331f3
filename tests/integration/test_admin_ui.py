"""The real Socket.IO Admin UI against a triosio server, in headless Chromium.

The built UI that @socket.io/admin-ui ships (``ui/dist``) is served by the
server under test itself (``triosio.App(..., static=...)``), next to the
Socket.IO endpoint it watches; tests/js/admin_browser.js logs in through the
UI's form, reads what it shows, takes screenshots and disconnects a socket
from the UI. The server runs in this process, on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from proc_helpers import run_node
from support import require_binary, require_node_modules

import triosio
import triosio.admin

pytestmark = pytest.mark.browser

CREDENTIALS = {"username": "admin", "password": "correct horse"}


async def test_the_admin_ui_in_chromium(tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    modules = require_node_modules("playwright-core", "@socket.io/admin-ui")
    ui_dist = modules / "@socket.io" / "admin-ui" / "ui" / "dist"

    sio = triosio.Server()
    triosio.admin.instrument(sio, auth=CREDENTIALS, server_id="triosio-under-test")
    sockets: dict[str, triosio.Socket] = {}

    @sio.on("connection")
    async def connection(socket: triosio.Socket, auth: dict[str, str]) -> None:
        sockets[auth["name"]] = socket
        socket.data["name"] = auth["name"]
        await socket.join(auth["rooms"])

    app = triosio.App(sio, static={"/admin-ui/": ui_dist})
    with trio.fail_after(150):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(triosio.serve, app, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            clients = {}
            for name, rooms in (("alice", ["lobby"]), ("bob", ["lobby", "games"])):
                clients[name] = await nursery.start(_client, url, name, rooms)
            ids = {name: client.id for name, client in clients.items()}
            out = await run_node(
                "admin_browser.js",
                f"{url}/admin-ui/",
                url,
                CREDENTIALS["username"],
                CREDENTIALS["password"],
                ",".join(ids.values()),
                ids["bob"],
                str(tmp_path),
                timeout=120,
                env={"CHROMIUM_PATH": chromium},
            )
            result = json.loads(out.strip().splitlines()[-1])
            assert result["ok"], result
            # Disconnected from the UI: gone on the server, the other stays.
            with trio.fail_after(10):
                reason = await sockets["bob"].wait_disconnected()
            assert reason is triosio.DisconnectReason.SERVER_NAMESPACE_DISCONNECT
            assert sockets["alice"].connected
            nursery.cancel_scope.cancel()

    assert result["servers"] == ["triosio-under-test"]
    for sid in ids.values():
        assert any(sid in row for row in result["sockets"])
    assert not any(ids["bob"] in row for row in result["socketsAfter"])
    assert any(ids["alice"] in row for row in result["socketsAfter"])
    assert sorted(result["rooms"]) == ["games", "lobby"]
    # Bob's own page lists his rooms (his own among them).
    page = result["socketPage"]
    assert ids["bob"] in page
    rooms_part = page.rpartition("\nRooms\n")[2]
    assert all(room in rooms_part for room in ("games", "lobby", ids["bob"])), page
    for shot in ("admin-ui-dashboard.png", "admin-ui-sockets.png"):
        assert (tmp_path / shot).stat().st_size > 10_000  # a real picture of the page


async def _client(
    url: str, name: str, rooms: list[str], *, task_status: trio.TaskStatus[triosio.ClientSocket]
) -> None:
    auth = {"name": name, "rooms": rooms}
    async with triosio.connect(url, auth=auth, transports=("websocket",)) as client:
        task_status.started(client)
        await trio.sleep_forever()
