"""What ``triosio run module:attr`` serves, and how a process prepares it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from .._engine.app import App, Mountable, StaticFiles
from .._engine.server import EngineServer
from .._server.cluster import Adapter
from .._server.server import Server
from .wire import sid_generator


class TargetError(Exception):
    """``module:attr`` cannot be served; the message says why."""


def load(spec: str) -> App | Mountable | Callable[..., Any]:
    """Import ``module:attr`` (``attr`` may be dotted); call it if it is a factory.

    Returns a :class:`triosio.Server`, :class:`triosio.EngineServer` or
    :class:`triosio.App`, or an ASGI application (a callable the factory returned).
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"expected module:attribute (e.g. chat:sio), got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the current folder's modules
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise TargetError(f"no module named {module_name!r} (in {os.getcwd()})") from None
        raise
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(value, (Server, EngineServer, App)):
        return value
    if callable(value) and not _is_asgi(value):
        value = value()  # a factory: of a server, an App or an ASGI app
        if inspect.isawaitable(value):
            raise TargetError(f"{spec} is an async function; a factory must be a plain one")
        if isinstance(value, (Server, EngineServer, App)):
            return value
    if callable(value) and _is_asgi(value):
        return value  # type: ignore[no-any-return]
    raise TargetError(
        f"{spec} is a {type(value).__name__}: expected a triosio.Server, triosio.App, "
        "EngineServer, or a function returning one of those or an ASGI application"
    )


def _is_asgi(value: Callable[..., Any]) -> bool:
    # An ASGI application is `async def app(scope, receive, send)` (or an object
    # whose __call__ is); a factory takes no argument.
    call = value if inspect.isfunction(value) or inspect.ismethod(value) else value.__call__  # type: ignore[operator]
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return inspect.iscoroutinefunction(call) and len(params) == 3


def servers_of(app: App | Mountable) -> list[Mountable]:
    """The mounted servers of an App, or the server itself."""
    return list(app.servers) if isinstance(app, App) else [app]


def with_static(app: App | Mountable, folder: str | None) -> App | Mountable:
    """``app`` with ``folder`` served at ``/`` (behind its own routes)."""
    if folder is None:
        return app
    try:
        files = StaticFiles("/", folder)
    except ValueError as exc:
        raise TargetError(f"--static: {exc}") from None
    if isinstance(app, App):
        app.static = sorted([*app.static, files], key=lambda s: -len(s.prefix))
        return app
    out = App(app)
    out.static = [files]
    return out


def make_sids_name(app: App | Mountable, worker: int) -> None:
    """Every session id this process makes names worker ``worker`` (for the acceptor)."""
    for server in servers_of(app):
        engine = server.engine if isinstance(server, Server) else server
        if isinstance(engine, EngineServer):
            engine.options = dataclasses.replace(
                engine.options, session_id_generator=sid_generator(worker)
            )


def socketio_servers(app: App | Mountable) -> list[Server]:
    """The Socket.IO servers ``app`` serves."""
    return [s for s in servers_of(app) if isinstance(s, Server)]


def give_adapter(server: Server, adapter: Adapter) -> None:
    """Give ``server`` (not running yet) a cluster adapter, as ``Server(adapter=...)`` would."""
    if server.adapter is not None:
        raise TargetError(f"{server!r} already has an adapter ({server.adapter!r})")
    server.adapter = adapter
    server.cluster.adapter = adapter
