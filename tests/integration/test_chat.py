"""The chat example end to end: a real browser, the npm client, the terminal client."""

from __future__ import annotations

import json

import pytest
from conftest import require_binary, require_node_modules
from proc_helpers import ROOT, run_node, running_example

OUTPUT = ROOT / "tests" / "_output"
CHAT = "examples/chat/server.py"


@pytest.mark.browser
@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_two_browser_pages_chat(transports: str) -> None:
    chromium = require_binary("chromium")
    require_node_modules("playwright-core")
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "chat-browser.png" if transports == "polling,websocket" else None
    async with running_example(CHAT, "--port", "0") as url:
        out = await run_node(
            "chat_browser.js",
            url,
            transports,
            str(shot) if shot else "-",
            timeout=90,
            env={"CHROMIUM_PATH": chromium},
        )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result
    assert sorted(u.replace(" (you)", "") for u in result["users"]) == ["alice", "bob"]
    expected = {"websocket": "(websocket)", "polling": "(polling)"}.get(transports)
    if expected:
        assert expected in result["transport"]
    if shot is not None:
        assert shot.stat().st_size > 10_000  # a real picture of the page
