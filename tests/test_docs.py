"""The documentation site builds with MkDocs, without a single warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support import require

ROOT = Path(__file__).resolve().parent.parent


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    require(mkdocs is not None, "mkdocs (the docs extra)")
    assert mkdocs is not None
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()
