"""The namespace registry: the one owner of the server's namespaces.

Namespaces are created in two places: by the application (``sio.of("/chat")``)
and by a client connecting to a name a dynamic namespace accepts. Both go
through :class:`NamespaceRegistry`, whose changes are synchronous (the only
await, a dynamic namespace's predicate, comes before them), so a client
cannot see a namespace half made and two clients cannot make the same one
twice. Everyone else reads snapshots.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .namespace import Namespace, ParentNamespace

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("triosio.server")

NamespaceMatcher = re.Pattern[str] | Callable[[str, Mapping[str, Any]], Any]


class NamespaceRegistry:
    """The server's namespaces by name, and its dynamic (parent) namespaces.

    Args:
        server: The server the namespaces belong to.
        created: Called with each new namespace's name (the cluster subscribes).
    """

    __slots__ = ("_created", "_namespaces", "_parents", "_server")

    def __init__(self, server: Server, created: Callable[[str], None]) -> None:
        self._server = server
        self._created = created
        self._namespaces: dict[str, Namespace] = {}
        self._parents: list[ParentNamespace] = []

    def get(self, name: str) -> Namespace | None:
        """The namespace ``name``, if it exists."""
        return self._namespaces.get(name)

    def names(self) -> list[str]:
        """The names of every namespace so far (a snapshot)."""
        return list(self._namespaces)

    def snapshot(self) -> dict[str, Namespace]:
        """Every namespace so far, by name (a copy)."""
        return dict(self._namespaces)

    def of(self, name: str) -> Namespace:
        """The namespace ``name`` (``/`` added in front if missing), created if needed."""
        if not name.startswith("/"):
            name = "/" + name
        return self._namespaces.get(name) or self._create(name, None)

    def dynamic(self, matcher: NamespaceMatcher) -> ParentNamespace:
        """A new dynamic namespace matching names with ``matcher``."""
        parent = ParentNamespace(self._server, matcher)
        self._parents.append(parent)
        return parent

    async def resolve(self, name: str, auth: Mapping[str, Any]) -> Namespace | None:
        """The namespace a client asks for by ``name``: an existing one, or a
        child of the first dynamic namespace that accepts it; None if none does."""
        nsp = self._namespaces.get(name)
        if nsp is not None:
            return nsp
        for parent in self._parents:
            try:
                accepted = await parent.matches(name, auth)
            except Exception:
                log.exception("error in the predicate of a dynamic namespace")
                accepted = False
            if accepted:
                # Looked up again: another client may have created it meanwhile.
                return self._namespaces.get(name) or self._create(name, parent)
        return None

    def _create(self, name: str, parent: ParentNamespace | None) -> Namespace:
        nsp = self._namespaces[name] = Namespace(self._server, name, parent)
        if parent is not None:
            parent._children[name] = nsp
        self._created(name)
        return nsp
