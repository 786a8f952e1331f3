"""The package ships whole: every folder of triosio/ is a regular package."""

from __future__ import annotations

from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_found_by_setuptools() -> None:
    folders = {
        ".".join(p.relative_to(ROOT).parts)
        for p in (ROOT / "triosio").rglob("*")
        if p.is_dir() and any(p.glob("*.py")) and "__pycache__" not in p.parts
    }
    found = set(setuptools.find_packages(str(ROOT), include=["triosio*"]))
    assert folders <= found, f"missing __init__.py in {sorted(folders - found)}"
    assert (ROOT / "triosio" / "py.typed").exists()
