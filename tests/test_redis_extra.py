"""The ``redis`` extra names every third-party module ``triosio.redis`` imports directly.

Followed through triosio's own modules from ``triosio/redis.py``: whatever they
import when imported (module level; not the lazy imports inside functions, which
name their own extras) from outside triosio and the standard library must be a
core dependency or in the ``redis`` extra (anyio included: its exceptions are
caught by name).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import triosio

PACKAGE = Path(triosio.__file__).resolve().parent
ROOT = PACKAGE.parent


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    # What runs on import: not function bodies (lazy imports of other extras),
    # not `if TYPE_CHECKING:`; both arms of a try (the import that fails is
    # reported by name, and must be in the extra).
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.Try):
            found += _module_level(node.body)
            for handler in node.handlers:
                found += _module_level(handler.body)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
    return found


def _imports(path: Path, module: str) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _module_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
                found.add(name)
                # "from . import x": x may be a module.
                found |= {f"{name}.{alias.name}" for alias in node.names}
            elif node.module:
                found.add(node.module)
    return found


def _third_party_reached_from(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    third: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        path = ROOT.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = ROOT.joinpath(*parts, "__init__.py")
        if not path.exists():
            continue  # "from .x import name": the name, not a module
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top == "triosio":
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return third


def _names(requirements: list[str]) -> set[str]:
    names = (re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requirements)
    return {n.lower().replace("-", "_") for n in names}


def test_the_redis_extra_names_what_triosio_redis_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = _names(project["dependencies"]) | _names(
        project["optional-dependencies"]["redis"]
    )
    imported = _third_party_reached_from("triosio.redis")
    # Distribution names are the import names for all of these.
    assert {"coredis", "anyio", "msgpack"} <= imported, imported
    assert imported <= allowed, imported - allowed
    assert {"coredis", "anyio", "msgpack"} <= _names(project["optional-dependencies"]["redis"])
