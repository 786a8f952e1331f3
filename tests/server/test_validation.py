"""Validated payloads: with Server(validation=True), handlers' type hints
validate and convert event arguments (pydantic 2); an event that does not fit
never reaches the handler and gets an error acknowledgement."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pydantic
import trio
import trio.testing
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

import triosio
import triosio.testing
from triosio._common.handlers import is_plain


@dataclasses.dataclass
class ChatMessage:
    room: str
    text: str
    urgent: bool = False


class Move(TypedDict):
    x: int
    y: int


class Profile(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, max_length=20)
    age: int = pydantic.Field(ge=0)


def make_server(validation: bool = True) -> tuple[triosio.Server, list[Any]]:
    sio = triosio.Server(validation=validation)
    seen: list[Any] = []

    @sio.on("connection")
    def connected(socket: triosio.Socket) -> None:
        @socket.on("chat")
        async def chat(msg: ChatMessage) -> str:
            seen.append(msg)
            return "sent"

        @socket.on("move")
        def move(where: Move, speed: float, mode: Literal["walk", "run"] = "walk") -> list[Any]:
            seen.append((where, speed, mode))
            return [where, speed, mode]

        @socket.on("raw")
        def raw(anything, more):  # type: ignore[no-untyped-def]  # no hints: as it comes
            seen.append((anything, more))
            return anything

    @sio.on("profile")  # namespace level: the socket first, not validated
    async def profile(socket: triosio.Socket, who: Profile, tags: list[str]) -> dict[str, Any]:
        seen.append((who, tags))
        return who.model_dump()

    return sio, seen


async def test_valid_arguments_arrive_converted(autojump_clock: trio.testing.MockClock) -> None:
    sio, seen = make_server()
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        assert await client.emit_with_ack("chat", {"room": "a", "text": "hi"}, timeout=5) == "sent"
        assert seen[-1] == ChatMessage("a", "hi")
        answer = await client.emit_with_ack("move", {"x": "1", "y": 2}, 3, "run", timeout=5)
        assert answer == [{"x": 1, "y": 2}, 3.0, "run"]
        assert seen[-1] == ({"x": 1, "y": 2}, 3.0, "run")
        who = {"name": "ann", "age": "30"}
        assert await client.emit_with_ack("profile", who, ["a"], timeout=5) == {
            "name": "ann",
            "age": 30,
        }
        assert seen[-1] == (Profile(name="ann", age=30), ["a"])
        assert await client.emit_with_ack("raw", "as", "is", timeout=5) == "as"


async def test_invalid_arguments_never_reach_the_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio, seen = make_server()
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        answer = await client.emit_with_ack("chat", {"room": "a"}, timeout=5)
        assert answer["error"] == "invalid payload" and answer["event"] == "chat"
        assert any("text" in d and "required" in d.lower() for d in answer["detail"])
        answer = await client.emit_with_ack("move", {"x": "one", "y": 2}, "fast", "fly", timeout=5)
        assert answer["error"] == "invalid payload"
        assert len(answer["detail"]) == 3  # x, speed and mode, each named
        assert answer["detail"][0].startswith("argument 1['x']")
        answer = await client.emit_with_ack("profile", {"name": "", "age": -1}, "x", timeout=5)
        assert answer["error"] == "invalid payload" and len(answer["detail"]) == 3
        # Without an ack asked for, the event just goes; the session goes on.
        await client.emit("chat", "not a message")
        await server.wait_idle()
        assert seen == []
        assert client.connected
        assert await client.emit_with_ack("chat", {"room": "r", "text": "t"}, timeout=5) == "sent"


async def test_off_by_default_hints_are_not_looked_at(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sio, seen = make_server(validation=False)
    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        assert await client.emit_with_ack("chat", "not a message", timeout=5) == "sent"
        assert seen == ["not a message"]


def test_wrapping_is_decided_at_registration() -> None:
    from triosio._server.validation import validated

    def plain(x):  # type: ignore[no-untyped-def]
        return x

    def hinted(x: int) -> int:
        return x

    async def hinted_async(x: int) -> int:
        return x

    assert validated("e", plain) is plain  # nothing to check: registered as it is
    wrapped = validated("e", hinted)
    assert wrapped is not hinted and is_plain(wrapped)  # still the fast plain path
    assert wrapped("3") == 3
    assert wrapped("x")["error"] == "invalid payload"
    assert not is_plain(validated("e", hinted_async))


async def test_off_finds_a_wrapped_handler(autojump_clock: trio.testing.MockClock) -> None:
    sio = triosio.Server(validation=True)
    calls: list[int] = []

    def count(n: int) -> int:
        calls.append(n)
        return n

    @sio.on("connection")
    def connected(socket: triosio.Socket) -> None:
        socket.on("n", count)
        socket.on("off", lambda: socket.off("n", count))

    async with triosio.testing.serve_memory(sio) as server:
        client = await server.client()
        assert await client.emit_with_ack("n", "1", timeout=5) == 1
        await client.emit_with_ack("off", timeout=5)
        await client.emit("n", 2)
        await server.wait_idle()
        assert calls == [1]
