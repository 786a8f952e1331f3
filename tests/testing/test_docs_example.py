"""docs/testing.md's worked example runs, and its tests pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_testing_guide_example_passes(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", text, re.DOTALL)
    assert [name for name, _ in blocks] == ["chat_app.py", "test_chat_app.py"]
    for name, code in blocks:
        (tmp_path / name).write_text(code)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout


def test_the_testing_guide_example_passes_200_runs_of_200(tmp_path: Path) -> None:
    """Each test of the guide's example, run 200 times in this process, each run
    with another scheduling order (``triosio.testing.deterministic(seed)``)."""
    import importlib
    import inspect

    import trio
    import trio.testing

    import triosio.testing

    text = (ROOT / "docs" / "testing.md").read_text()
    for name, code in re.findall(r"```python\n# (\S+\.py)\n(.*?)```", text, re.DOTALL):
        (tmp_path / name).write_text(code)
    sys.path.insert(0, str(tmp_path))
    try:
        app = importlib.import_module("chat_app")
        tests = importlib.import_module("test_chat_app")
    finally:
        sys.path.remove(str(tmp_path))
    functions = [f for n, f in vars(tests).items() if n.startswith("test_")]
    assert len(functions) == 4

    async def run_one(test: object, clock: trio.testing.MockClock) -> None:
        async with triosio.testing.serve_memory(app.make_server()) as server:
            params = inspect.signature(test).parameters  # type: ignore[arg-type]
            given = {"server": server, "autojump_clock": clock}
            await test(**{p: given[p] for p in params})  # type: ignore[operator]

    for seed in range(200):
        for test in functions:
            clock = trio.testing.MockClock(autojump_threshold=0)
            with triosio.testing.deterministic(seed):
                trio.run(run_one, test, clock, clock=clock)
