"""Profiles one Python benchmark server with py-spy while the load generator drives it.

    python benchmarks/profile.py [--server triosio] [--scenario fanout] [--quick]
                                 [--clients 1000] [--rate 200] [--native] [--top 40]

Starts the server as run.py does, attaches `py-spy record` to its PID (sampling without
pausing it), runs the scenario, stops py-spy with SIGINT (it then writes its samples)
and summarises them: the functions where the samples are (self), the functions under
which they are (inclusive), and the source files. The summary goes to
benchmarks/_runs/profile-<server>-<scenario>-<date>.txt, next to py-spy's collapsed
stacks (`.collapsed`, the input of flamegraph tools). py-spy costs the server a little
CPU, so read the profile for proportions; take the CPU figures from run.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from harness import (
    BENCH_DIR,
    RUNS_DIR,
    ensure_node_modules,
    raise_fd_limit,
    run_loadgen,
    running_server,
    server_specs,
)
from run import SCENARIOS, sizes


def py_spy() -> str:
    # Installed by pip next to the interpreter (the `bench` extra), not necessarily on PATH.
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def _frame_name(frame: str) -> str:
    """`function (path:line)` -> `function (file)`: py-spy --function gives first lines."""
    if frame.endswith(")") and " (" in frame:
        name, where = frame[:-1].rsplit(" (", 1)
        path = where.rsplit(":", 1)[0]
        return f"{name} ({_short(path)})"
    return frame


def _short(path: str) -> str:
    """A path short enough to read: from the package that contains it."""
    parts = Path(path).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            rest = parts[index + 1 :]
            if rest and anchor == "lib" and rest[0].startswith("python"):
                rest = rest[1:]
            if rest:
                return "/".join(rest)
    if "triosio" in parts:
        return "/".join(parts[parts.index("triosio") :])
    return "/".join(parts[-2:])


def summarise(collapsed: Path, top: int) -> tuple[int, str]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        leaf = frames[-1]
        files[leaf[leaf.rfind("(") + 1 : -1] if leaf.endswith(")") else leaf] += count
        for name in set(frames):
            inclusive[name] += count

    def table(title: str, counts: Counter[str]) -> str:
        rows = [f"{title}", f"{'samples':>8} {'share':>6}  where"]
        for name, count in counts.most_common(top):
            rows.append(f"{count:>8} {100 * count / max(total, 1):>5.1f}%  {name}")
        return "\n".join(rows)

    text = "\n\n".join(
        [
            table("== self: the function running when sampled", self_time),
            table("== inclusive: the function anywhere on the stack", inclusive),
            table("== self by source file", files),
        ]
    )
    return total, text


def main() -> int:
    specs = {name: spec for name, spec in server_specs().items() if spec.python}
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=list(specs), default="triosio")
    parser.add_argument(
        "--scenario", choices=[s for s in SCENARIOS if s != "soak"], default="fanout"
    )
    parser.add_argument("--quick", action="store_true", help="the --quick sizes of run.py")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="also sample C frames")
    parser.add_argument("--top", type=int, default=40, help="rows per table")
    args = parser.parse_args()

    raise_fd_limit()
    ensure_node_modules()
    spec = specs[args.server]
    scenario = SCENARIOS[args.scenario]
    s = sizes(args.quick, args.clients)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RUNS_DIR / f"profile-{args.server}-{args.scenario}-{stamp}"
    collapsed = stem.with_suffix(".collapsed")
    spy_argv = [
        py_spy(),
        "record",
        "--format",
        "raw",
        "--function",  # aggregate by function, not by line
        "--rate",
        str(args.rate),
        "--output",
        str(collapsed),
    ]
    if args.native:
        # py-spy reads C stacks only from a paused process: each sample stops
        # the server briefly, which over-weights system calls somewhat.
        spy_argv.append("--native")
    else:
        spy_argv.append("--nonblocking")  # never pause the server to read its stacks
    # the scenario's server environment too (echo-async's BENCH_ASYNC_ECHO),
    # or it profiles another handler than run.py measures
    with running_server(
        spec, stem.with_suffix(".server.log"), extra_env=dict(scenario.env)
    ) as server:
        spy_log = stem.with_suffix(".py-spy.log").open("wb")
        spy = subprocess.Popen(
            [*spy_argv, "--pid", str(server.pid)],
            stdin=subprocess.DEVNULL,
            stdout=spy_log,
            stderr=subprocess.STDOUT,
        )
        try:
            result = run_loadgen(
                server,
                scenario.args(s),
                timeout=scenario.timeout(s),
                log=stem.with_suffix(".loadgen.log"),
            )
        finally:
            # SIGINT is py-spy's "stop and write the profile".
            if spy.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            spy_log.close()
    if not collapsed.exists():
        print(f"py-spy wrote no profile; see {stem.with_suffix('.py-spy.log')}", file=sys.stderr)
        return 1
    samples, text = summarise(collapsed, args.top)
    brief = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
    header = [
        f"# py-spy profile of {spec.label} during `{args.scenario}`"
        f" ({'quick' if args.quick else 'full'} sizes, {args.clients} clients), {stamp}",
        f"# command: python benchmarks/profile.py {' '.join(sys.argv[1:])}",
        f"# {samples} samples at {args.rate}/s (CPU only, idle excluded); load generator result:",
        f"# {json.dumps(brief)}",
        f"# latency: {json.dumps(result.get('latency'))}",
    ]
    report = stem.with_suffix(".txt")
    report.write_text("\n".join(header) + "\n\n" + text + "\n")
    print(report.read_text())
    print(f"wrote {report.relative_to(BENCH_DIR.parent)} and {collapsed.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
