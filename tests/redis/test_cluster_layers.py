"""The Redis adapter's layering, read off the source.

The cluster protocol (``triosio._cluster``) and the Redis adapter
(``triosio.redis``, ``triosio._redis``) reach the server only through the
adapter interface (``_server/cluster.py``, ``_server/remote.py``); nothing
below them imports them; the protocol knows no Redis client; its message
format is sans-I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import triosio

PACKAGE = Path(triosio.__file__).resolve().parent


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


MODULES = _modules()
CLUSTER = sorted(n for n in MODULES if n.split(".")[1:2] in (["redis"], ["_redis"], ["_cluster"]))


def _imports(name: str) -> set[str]:
    """The absolute names of the modules ``name`` imports (and of what it takes from them)."""
    is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(MODULES[name]):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = node.module or ""
            if node.level:
                module = f"{base}.{module}" if module else base
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _under(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("name", CLUSTER)
def test_reaches_the_server_only_through_the_adapter_interface(name: str) -> None:
    server = _under(_imports(name), "triosio._server")
    assert server == _under(server, "triosio._server.cluster", "triosio._server.remote")
    assert not _under(_imports(name), "triosio._client")
    for node in ast.walk(MODULES[name]):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("router", "registry", "inbox"), f"{name}:{node.lineno}"


@pytest.mark.parametrize("name", sorted(set(MODULES) - set(CLUSTER) - {"triosio"}))
def test_nothing_below_imports_the_cluster_or_redis(name: str) -> None:
    imports = _imports(name)
    assert not _under(imports, "triosio._cluster", "triosio._redis", "triosio.redis")
    assert not _under(imports, "coredis", "anyio")


@pytest.mark.parametrize("name", sorted(n for n in CLUSTER if n.startswith("triosio._cluster")))
def test_the_protocol_knows_no_redis_client(name: str) -> None:
    imports = _imports(name)
    assert not _under(imports, "coredis", "anyio", "triosio._redis", "triosio.redis")


@pytest.mark.parametrize("name", ["values", "channels", "messages"])
def test_the_message_format_is_sans_io(name: str) -> None:
    imports = _imports(f"triosio._cluster.{name}")
    assert not _under(imports, "trio", "triosio._server", "triosio._common")


def test_the_rules_see_every_module() -> None:
    assert {"triosio.redis", "triosio._redis.bus", "triosio._cluster.node"} <= set(CLUSTER)
    assert "triosio._server.cluster" in _imports("triosio._cluster.node")
