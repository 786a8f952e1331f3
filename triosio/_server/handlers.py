"""Calling user handlers: sync or async, return value as acknowledgement."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


#: Given to pending acknowledgement callbacks when their socket disconnects.
GONE: Any = _Gone()


async def call_handler(handler: Handler, *args: Any) -> Any:
    """Call ``handler`` (a plain function or ``async def``) and return its result."""
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


def is_plain(handler: Handler) -> bool:
    """Whether ``handler`` is a plain function or method (``def``, ``lambda``).

    Anything else (``async def``, ``functools.partial``, an object with
    ``__call__``) counts as possibly asynchronous. A plain function may still
    return an awaitable; callers check the result too.
    """
    code = getattr(handler, "__code__", None)
    return code is not None and not code.co_flags & _ASYNC_CODE


def ack_args(value: Any) -> list[Any]:
    """A handler's return value as acknowledgement arguments.

    ``None`` acknowledges with no argument, a tuple with several, anything else
    with one.
    """
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    return [value]


def ack_value(args: list[Any]) -> Any:
    """Acknowledgement arguments as one value: ``None``, the argument, or a tuple."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def positional_count(handler: Handler) -> int | None:
    """How many positional arguments ``handler`` takes (None: any number)."""
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in sig.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count
