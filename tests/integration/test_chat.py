"""The chat example end to end: a real browser, the npm client, the terminal client."""

from __future__ import annotations

import json

import pytest
from proc_helpers import ROOT, run_node, running_example
from support import require_binary, require_node_modules

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


@pytest.mark.interop
async def test_chat_event_contract_with_npm_client() -> None:
    require_node_modules("socket.io-client")
    async with running_example(CHAT, "--port", "0") as url:
        out = json.loads((await run_node("chat_contract.js", url)).strip().splitlines()[-1])
    assert "error" not in out, out
    assert out["join_a"] == {"ok": True, "users": ["alice"], "history": []}
    assert out["join_taken"]["ok"] is False and "taken" in out["join_taken"]["error"]
    for refused in ("join_empty", "join_long_name", "join_long_room", "message_before_join"):
        assert out[refused]["ok"] is False and out[refused]["error"], refused
    assert out["join_b"]["ok"] is True and out["join_b"]["users"] == ["alice", "bob"]
    assert out["users_seen_by_a"][-1] == ["alice", "bob"]
    # A message reaches everyone in the room, sender included, and nobody else.
    ack = out["message_ack"]
    assert ack["ok"] is True
    for who in ("a_messages", "b_messages"):
        (message,) = out[who]
        assert message["id"] == ack["id"]
        assert (message["room"], message["name"], message["text"]) == ("lobby", "alice", "hi all")
        assert isinstance(message["time"], int)
    assert out["c_messages"] == []
    assert out["long_message"]["ok"] is False
    # Typing goes to the others in the room only.
    assert out["b_typing"] == [{"name": "alice", "typing": True}]
    assert out["a_typing"] == [] and out["c_typing"] == []
    # A private message goes to its addressee only.
    assert out["private_ack"] == {"ok": True}
    assert out["private_unknown"]["ok"] is False
    assert out["a_private"] == [{"from": "bob", "text": "psst"}]
    assert out["b_private"] == [] and out["c_private"] == []
    # History: the last 50 messages of the room.
    history = out["join_d"]["history"]
    assert len(history) == 50
    assert [m["text"] for m in history[-3:]] == ["n52", "n53", "n54"]
    # Users lists follow leaves (a disconnect) and room switches.
    assert out["users_after_leave"] == [["alice", "dave"]]
    assert out["users_after_switch"][-1] == ["alice", "carol", "dave"]
    # The room list follows too (here: after bob left, before carol switched).
    assert out["rooms_seen_by_d"][-1] == [
        {"name": "lobby", "users": 2},
        {"name": "other", "users": 1},
    ]


async def test_terminal_client_scripted_session() -> None:
    async with running_example(CHAT, "--port", "0") as url:
        import sys

        import trio

        script = b"hello from the terminal\n/to nobody hi\n/quit\n"
        with trio.fail_after(30):
            result = await trio.run_process(
                [sys.executable, "examples/chat/client.py", "tess", "--url", url.rstrip("/")],
                cwd=ROOT,
                stdin=script,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "* you are in #lobby with tess" in out
    assert "tess: hello from the terminal" in out  # the server's broadcast came back
    assert "! no such user" in out
    assert "* bye" in out
