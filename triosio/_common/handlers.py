"""User handlers: one registry and one calling convention for server and client.

A handler is a plain function or an ``async def``; its return value is the
acknowledgement when the peer asked for one (``None`` for no argument, a tuple
for several: see :func:`triosio._proto.sio.ack_args`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import FunctionType
from typing import Any, TypeVar, overload

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


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


def positional_count(handler: Handler) -> int | None:
    """How many positional arguments ``handler`` takes (None: any number)."""
    if type(handler) is FunctionType and not handler.__dict__:
        # A plain function (no __wrapped__ or __signature__ to follow): its
        # code says it, without inspect.signature (a handler defined per
        # connection is a new function each time: nothing to cache).
        code = handler.__code__
        return None if code.co_flags & inspect.CO_VARARGS else code.co_argcount
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


class HandlerRegistry:
    """Handlers by event name: ``on``, ``once``, ``off``, ``listeners``."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        # (handler, once) pairs: a once-handler is removed when it is taken.
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Add a handler for ``event``; usable as a decorator (``@x.on("news")``).

        The handler may be a plain function or ``async def``; it is called with
        the event's arguments. When the peer asked for an acknowledgement, the
        return value is the acknowledgement (a tuple sends several arguments).
        """
        return self._register(event, handler, once=False)

    @overload
    def once(self, event: str) -> Callable[[H], H]: ...

    @overload
    def once(self, event: str, handler: H) -> H: ...

    def once(self, event: str, handler: Handler | None = None) -> Any:
        """Like :meth:`on`, but the handler is removed after its first call."""
        return self._register(event, handler, once=True)

    def _register(self, event: str, handler: Handler | None, *, once: bool) -> Any:
        if not isinstance(event, str):
            raise TypeError("event names are strings")

        def add(fn: H) -> H:
            if not callable(fn):
                raise TypeError("handlers must be callable")
            self._handlers.setdefault(event, []).append((fn, once))
            return fn

        return add if handler is None else add(handler)

    def off(self, event: str | None = None, handler: Handler | None = None) -> None:
        """Remove ``handler`` for ``event``; every handler of ``event`` if no handler
        is given; every handler of every event if neither is given."""
        if event is None:
            self._handlers.clear()
            return
        if handler is None:
            self._handlers.pop(event, None)
            return
        entries = self._handlers.get(event, [])
        for i, (fn, _) in enumerate(entries):
            # A handler may be registered wrapped (validation): match either.
            if fn == handler or getattr(fn, "__wrapped__", None) == handler:
                del entries[i]
                break
        if not entries:
            self._handlers.pop(event, None)

    def listeners(self, event: str) -> list[Handler]:
        """The handlers of ``event``, in the order they are called."""
        return [fn for fn, _ in self._handlers.get(event, ())]

    def _take(self, event: str) -> list[Handler]:
        # The handlers to call now; once-handlers are removed as they are taken.
        entries = self._handlers.get(event)
        if not entries:
            return []
        if len(entries) == 1:  # the usual case, on every event
            fn, once = entries[0]
            if once:
                del self._handlers[event]
            return [fn]
        found = [fn for fn, _ in entries]
        if any(once for _, once in entries):
            remaining = [entry for entry in entries if not entry[1]]
            if remaining:
                self._handlers[event] = remaining
            else:
                del self._handlers[event]
        return found


class CatchAllRegistry(HandlerRegistry):
    """:class:`HandlerRegistry` plus catch-all listeners, incoming and outgoing."""

    __slots__ = ("_any", "_any_outgoing")

    def __init__(self) -> None:
        super().__init__()
        # Tuples, replaced on change (copy on write): the empty tuple costs
        # nothing per socket, and no object the cyclic GC walks.
        self._any: tuple[Handler, ...] = ()
        self._any_outgoing: tuple[Handler, ...] = ()

    def on_any(self, handler: H) -> H:
        """Add a catch-all handler, called as ``handler(event, *args)`` for every
        incoming event (before the event's own handlers)."""
        self._any = (*self._any, handler)
        return handler

    def prepend_any(self, handler: H) -> H:
        """Like :meth:`on_any`, but the handler is called before the others."""
        self._any = (handler, *self._any)
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        """Remove a catch-all handler, or all of them."""
        self._any = _without(self._any, handler)

    def listeners_any(self) -> list[Handler]:
        """The catch-all handlers, in calling order."""
        return list(self._any)

    def on_any_outgoing(self, handler: H) -> H:
        """Add a handler called as ``handler(event, *args)`` for every event this
        side emits to the peer."""
        self._any_outgoing = (*self._any_outgoing, handler)
        return handler

    def prepend_any_outgoing(self, handler: H) -> H:
        """Like :meth:`on_any_outgoing`, but the handler is called before the others."""
        self._any_outgoing = (handler, *self._any_outgoing)
        return handler

    def off_any_outgoing(self, handler: Handler | None = None) -> None:
        """Remove an outgoing catch-all handler, or all of them."""
        self._any_outgoing = _without(self._any_outgoing, handler)

    def listeners_any_outgoing(self) -> list[Handler]:
        """The outgoing catch-all handlers, in calling order."""
        return list(self._any_outgoing)


def _without(handlers: tuple[Handler, ...], handler: Handler | None) -> tuple[Handler, ...]:
    # None: all of them; otherwise the first occurrence of ``handler``.
    if handler is None:
        return ()
    if handler not in handlers:
        return handlers
    index = handlers.index(handler)
    return handlers[:index] + handlers[index + 1 :]
