"""The public surface, after trio's test_exports.py.

Generic on purpose: nothing here lists the public names, so the checks keep
holding as ``triosio.__all__`` grows.
"""

from __future__ import annotations
import __future__

import ast
import inspect
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import triosio

PACKAGE = Path(triosio.__file__).resolve().parent
#: Modules that are public as modules (imported as ``triosio.testing`` etc.).
PUBLIC_MODULES = {"testing", "asgi", "redis", "admin", "metrics", "tracing"}


def _public_attributes() -> set[str]:
    names = set()
    for name in dir(triosio):
        if name.startswith("_"):
            continue
        value = getattr(triosio, name)
        if isinstance(value, __future__._Feature):  # from __future__ import annotations
            continue
        if isinstance(value, types.ModuleType):
            assert name in PUBLIC_MODULES, f"submodule {name} is public but not meant to be"
            continue
        names.add(name)
    return names


def test_all_is_exactly_the_public_names() -> None:
    exported = set(triosio.__all__)
    assert len(exported) == len(triosio.__all__), "duplicates in __all__"
    assert not {n for n in exported if n.startswith("_") and not n.startswith("__")}, (
        "private names in __all__"
    )
    assert {n for n in exported if not n.startswith("__")} == _public_attributes()
    for name in exported:
        assert hasattr(triosio, name), f"__all__ names {name}, which does not exist"


def test_star_import_gives_all() -> None:
    namespace: dict[str, object] = {}
    exec("from triosio import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(triosio.__all__)


@pytest.mark.parametrize("name", sorted(triosio.__all__))
def test_public_classes_and_functions_live_in_triosio(name: str) -> None:
    value = getattr(triosio, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        # Shown as triosio.X in reprs, tracebacks and docs, as trio does.
        assert value.__module__ == "triosio", f"{name}.__module__ is {value.__module__}"
        assert value.__qualname__ == name
        assert inspect.getdoc(value), f"{name} has no docstring"


def _run(code: str) -> dict[str, list[str]]:
    # A fresh interpreter, so nothing another test imported can hide a leak.
    # The package is a bare stub: importing triosio._proto for real would run
    # triosio/__init__.py first, which imports everything.
    prelude = (
        "import json, sys, types\n"
        f"stub = types.ModuleType('triosio'); stub.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['triosio'] = stub\n"
    )
    epilogue = (
        "\nprint(json.dumps({'modules': sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('trio', 'h11', 'wsproto', 'trio_websocket', 'triosio'))}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + code + epilogue],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _proto_modules() -> list[str]:
    return sorted(
        f"triosio._proto.{p.stem}" if p.stem != "__init__" else "triosio._proto"
        for p in (PACKAGE / "_proto").glob("*.py")
    )


def test_proto_imports_no_io_library() -> None:
    modules = _proto_modules()
    assert "triosio._proto.sio" in modules
    loaded = _run("".join(f"import {m}\n" for m in modules))["modules"]
    # Every _proto module was imported, and nothing of trio, h11 or wsproto.
    assert set(modules) <= set(loaded)
    assert [m for m in loaded if not m.startswith("triosio")] == []
    assert {m for m in loaded if m.startswith("triosio")} <= {
        "triosio",
        "triosio._errors",
        *modules,
    }


def test_errors_imports_nothing_of_triosio() -> None:
    loaded = _run("import triosio._errors\n")["modules"]
    assert loaded == ["triosio", "triosio._errors"]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import statement of a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "_proto").glob("*.py")), ids=lambda p: p.name)
def test_proto_sources_import_only_stdlib_msgpack_and_errors(path: Path) -> None:
    # Also catches imports inside functions, which the import test above would miss.
    for level, module in _imports(path):
        if level == 0:
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top == "msgpack", f"imports {module}"
        elif level == 2:  # from .. import: only the exception tree
            assert module == "_errors", f"imports ..{module}"
        else:
            assert level == 1, f"imports {'.' * level}{module}"


def test_errors_source_imports_no_triosio() -> None:
    for level, module in _imports(PACKAGE / "_errors.py"):
        assert level == 0, "relative import in _errors"
        assert module.split(".")[0] in sys.stdlib_module_names, f"imports {module}"
