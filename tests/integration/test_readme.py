"""Every code block of the README's quick start runs, and does what it says."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]


def quick_start_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_listening(port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
        else:
            await stream.aclose()
            return


def quick_start_command() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[0]
    return block.splitlines()[0].split("#")[0].strip()


async def test_quick_start_blocks_run(tmp_path: Path) -> None:
    server_code, client_code = quick_start_blocks()
    command = quick_start_command()
    assert command == "triosio run server:sio"
    port = free_port()
    (tmp_path / "server.py").write_text(server_code.replace("5000", str(port)))
    (tmp_path / "client.py").write_text(client_code.replace("5000", str(port)))
    # The command as the README shows it (python -m triosio: the same command,
    # from this interpreter), on a free port.
    server = await trio.lowlevel.open_process(
        [sys.executable, "-m", "triosio", *command.split()[1:], "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(20):
            await wait_listening(port)
            result = await trio.run_process(
                [sys.executable, "client.py"], cwd=tmp_path, capture_stdout=True
            )
        assert result.stdout.decode().strip() == "delivered"
    finally:
        server.kill()
        with trio.move_on_after(5):
            await server.wait()
