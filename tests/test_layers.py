"""The layer rules and the owners of state, read off the source.

Dependencies point down only: ``_proto`` <- ``_common`` <- ``_engine`` <-
``_server`` / ``_client``; the cluster protocol (``_cluster``) and the Redis
adapter (``redis``, ``_redis``) sit beside the server and reach it only
through the adapter interface. Only the router touches its
inbox and builds its commands; only ``lifecycle.advance`` changes a socket's
state. Each rule is checked on every module, so a new module is covered the
day it is added.
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


def _imports(name: str, tree: ast.Module) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from x import y`` gives x and x.y)."""
    package = name if name in ("triosio",) or _is_package(name) else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _triosio_imports(name: str) -> set[str]:
    return {m for m in _imports(name, MODULES[name]) if m.split(".")[0] == "triosio"}


def _in(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


STDLIB_ONLY_THIRD_PARTY = {"trio", "h11", "wsproto", "trio_websocket", "coredis", "anyio"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_proto"))
def test_proto_is_sans_io(name: str) -> None:
    imports = _imports(name, MODULES[name])
    assert not {m.split(".")[0] for m in imports} & STDLIB_ONLY_THIRD_PARTY
    assert _triosio_imports(name) <= _in(
        _triosio_imports(name), "triosio._proto", "triosio._errors"
    )


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_common"))
def test_common_is_below_the_layers(name: str) -> None:
    imports = _triosio_imports(name)
    assert imports <= _in(imports, "triosio._common", "triosio._errors", "triosio._proto")


SCALE_OUT = ("triosio._cluster", "triosio.redis", "triosio._redis")
CLUSTER_LAYERS = ("_cluster", "redis", "_redis")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_engine"))
def test_engine_knows_no_socketio(name: str) -> None:
    forbidden = ("triosio._server", "triosio._client", *SCALE_OUT)
    assert not _in(_triosio_imports(name), *forbidden)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_server"))
def test_server_never_imports_the_client_or_redis(name: str) -> None:
    forbidden = ("triosio._client", *SCALE_OUT)
    assert not _in(_triosio_imports(name), *forbidden)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_client"))
def test_client_never_imports_the_server_or_redis(name: str) -> None:
    forbidden = ("triosio._server", *SCALE_OUT)
    assert not _in(_triosio_imports(name), *forbidden)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) in CLUSTER_LAYERS))
def test_scale_out_reaches_the_server_only_through_the_adapter_interface(name: str) -> None:
    server = _in(_triosio_imports(name), "triosio._server")
    allowed = _in(server, "triosio._server.cluster", "triosio._server.remote")
    assert server == allowed
    assert not _in(_triosio_imports(name), "triosio._client")
    for node in ast.walk(MODULES[name]):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("router", "registry"), f"{name}:{node.lineno}"


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if _layer(n) not in CLUSTER_LAYERS and n != "triosio")
)
def test_only_the_adapter_knows_its_redis_client(name: str) -> None:
    imports = _imports(name, MODULES[name])
    assert not {m.split(".")[0] for m in imports} & {"coredis", "anyio"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "_cluster"))
def test_the_cluster_protocol_knows_no_redis(name: str) -> None:
    imports = _imports(name, MODULES[name])
    assert not {m.split(".")[0] for m in imports} & {"coredis", "anyio"}
    assert not _in(_triosio_imports(name), "triosio.redis", "triosio._redis")


@pytest.mark.parametrize("name", ["values", "channels", "messages"])
def test_the_cluster_message_format_is_sans_io(name: str) -> None:
    imports = _imports(f"triosio._cluster.{name}", MODULES[f"triosio._cluster.{name}"])
    assert not {m.split(".")[0] for m in imports} & {"trio"}
    assert not _in(
        _triosio_imports(f"triosio._cluster.{name}"), "triosio._server", "triosio._common"
    )


ROUTER_OWN = {"triosio._server.router", "triosio._server._commands"}


@pytest.mark.parametrize("name", sorted(set(MODULES) - ROUTER_OWN))
def test_only_the_router_touches_its_inbox_and_commands(name: str) -> None:
    assert not _in(_triosio_imports(name), "triosio._server._commands")
    for node in ast.walk(MODULES[name]):
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("inbox", "_inbox"), f"{name}:{node.lineno}"


RECOVERY_MUTATORS = {"log", "keep", "take", "resume", "expire"}


@pytest.mark.parametrize("name", sorted(set(MODULES) - ROUTER_OWN))
def test_only_the_router_changes_the_recovery_state(name: str) -> None:
    # The kept sessions and the packet log are the router's: no other module
    # calls the methods that change them (reading them is fine).
    for node in ast.walk(MODULES[name]):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in RECOVERY_MUTATORS
            and "recovery" in ast.unparse(node.func.value)
        ):
            assert name == "triosio._server.recovery", f"{name}:{node.lineno}"


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if _layer(n) == "_server" and not n.endswith(".lifecycle"))
)
def test_only_the_lifecycle_changes_a_sockets_state(name: str) -> None:
    for node in ast.walk(MODULES[name]):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == "state":
                # Only a Socket's own constructor sets its first state.
                assert (name, ast.unparse(target)) == ("triosio._server.socket", "self.state"), (
                    f"{name}:{node.lineno} assigns {ast.unparse(target)}"
                )


@pytest.mark.parametrize(
    "name",
    sorted(n for n in MODULES if _layer(n) not in ("_workers", "_cli", "__main__", "")),
)
def test_nothing_below_imports_the_command_line(name: str) -> None:
    # The command line and its worker processes sit on top of everything.
    assert not _in(_triosio_imports(name), "triosio._workers", "triosio._cli")


def test_the_workers_wire_format_is_sans_io() -> None:
    imports = _imports("triosio._workers.wire", MODULES["triosio._workers.wire"])
    assert not {m.split(".")[0] for m in imports} & STDLIB_ONLY_THIRD_PARTY
    assert not _triosio_imports("triosio._workers.wire")


def test_the_rules_see_every_layer() -> None:
    layers = {_layer(n) for n in MODULES}
    assert {"_proto", "_common", "_engine", "_server", "_client", "_cluster", "_redis"} <= layers
    assert {"_workers", "_cli"} <= layers
    assert "redis" in layers
    # The rules above would pass vacuously if the import reader were broken.
    assert "triosio._server.router" in _triosio_imports("triosio._server.socket") or (
        "triosio._server.lifecycle" in _triosio_imports("triosio._server.socket")
    )
    assert "triosio._common.sync" in _triosio_imports("triosio._server.router")
