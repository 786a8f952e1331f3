"""Shared test helpers (import them with ``from support import ...``).

Tests that need an outside tool (node and the npm peers in tests/js, redis-server,
chromium) call :func:`require`. Outside CI a missing tool skips the test with the
reason; under ``CI=true`` it fails, so CI never passes by skipping quietly.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
NODE_MODULES = JS_DIR / "node_modules"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when a needed tool is missing."""
    if condition:
        return
    message = f"{what} is not available (scripts/run-tests.sh installs it)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_node_modules(*packages: str) -> Path:
    """The path of tests/js/node_modules, after checking node and ``packages``."""
    require(shutil.which("node") is not None, "node")
    for package in packages:
        require((NODE_MODULES / package / "package.json").exists(), f"npm package {package}")
    return NODE_MODULES


def require_binary(name: str) -> str:
    """The path of an executable on PATH, e.g. ``redis-server`` or ``chromium``."""
    path = shutil.which(name)
    require(path is not None, name)
    assert path is not None
    return path


def require_import(name: str) -> Any:
    """The module ``name``, imported; skip (locally) or fail (CI) if it is missing.

    For optional extras (``triosio[metrics]``, ``triosio[otel]``).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"{name} ({exc})")
