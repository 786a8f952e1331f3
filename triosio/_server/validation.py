"""Validated payloads: an event handler's type hints check and convert its arguments.

With ``Server(validation=True)``, a handler registered for an event —
``socket.on("chat", handler)`` or ``sio.on("chat", handler)`` (whose first
parameter is the socket) — whose parameters carry type hints gets each hinted
argument validated and converted by pydantic v2 (``TypeAdapter``, lax mode:
``"1"`` for an ``int`` becomes ``1``, a dict becomes a dataclass, a
``TypedDict`` or a model) before it runs. An argument that does not fit never
reaches the handler: the event is answered, if the client asked for an
acknowledgement, with :func:`invalid` (one argument, a dict with ``error`` and
``detail``); the server logs at debug; the session goes on.

Everything is decided when the handler is registered: a handler without hints
is registered as it is and costs nothing more per event; a hinted one is
wrapped once, in a plain function if it is one (so the reader's plain-handler
path still applies) or an ``async def`` if it is one.
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from typing import Any

from .._common.handlers import H, is_plain

log = logging.getLogger("triosio.server")

#: The ``error`` of the acknowledgement an invalid event gets.
INVALID = "invalid payload"


def require_engine() -> None:
    """Raise ImportError naming the extra when pydantic v2 is not installed."""
    try:
        import pydantic
    except ImportError:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            "Server(validation=True) needs pydantic 2: pip install 'triosio[validation]'"
        ) from None
    if not pydantic.VERSION.startswith("2."):  # pragma: no cover
        raise ImportError(f"Server(validation=True) needs pydantic 2, not {pydantic.VERSION}")


def invalid(event: str, problems: list[str]) -> dict[str, Any]:
    """The acknowledgement of an event whose arguments did not validate."""
    return {"error": INVALID, "event": event, "detail": problems}


def validated(event: str, handler: H, skip: int = 0) -> H:
    """``handler``, or a wrapper that validates its hinted arguments first.

    ``skip``: leading parameters that are not event arguments (the socket of a
    namespace-level handler).
    """
    from pydantic import TypeAdapter, ValidationError

    try:
        hints = typing.get_type_hints(handler)
        params = list(inspect.signature(handler).parameters.values())
    except (NameError, TypeError, ValueError) as exc:
        raise TypeError(
            f"the type hints of the handler of {event!r} cannot be read: {exc}"
        ) from exc
    adapters: list[tuple[int, Any]] = []
    for index, param in enumerate(params):
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            break
        if index < skip or param.name not in hints or hints[param.name] is Any:
            continue
        adapters.append((index - skip, TypeAdapter(hints[param.name])))
    if not adapters:
        return handler

    def convert(args: tuple[Any, ...]) -> tuple[Any, ...] | list[str]:
        # The arguments converted, or what is wrong with them. A missing
        # argument is the handler's to complain of (a TypeError, logged).
        out = list(args)
        problems: list[str] = []
        for index, adapter in adapters:
            position = index + skip
            if position >= len(out):
                break
            try:
                out[position] = adapter.validate_python(out[position])
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    where = "".join(f"[{part!r}]" for part in error["loc"])
                    problems.append(f"argument {index + 1}{where}: {error['msg']}")
        return problems if problems else tuple(out)

    def refuse(problems: list[str]) -> dict[str, Any]:
        log.debug("event %r refused: %s", event, "; ".join(problems))
        return invalid(event, problems)

    if is_plain(handler):

        @functools.wraps(handler)
        def plain(*args: Any) -> Any:
            checked = convert(args)
            if isinstance(checked, list):
                return refuse(checked)
            return handler(*checked)

        return typing.cast("H", plain)

    @functools.wraps(handler)
    async def coroutine(*args: Any) -> Any:
        checked = convert(args)
        if isinstance(checked, list):
            return refuse(checked)
        result = handler(*checked)
        if inspect.isawaitable(result):
            result = await result
        return result

    return typing.cast("H", coroutine)

