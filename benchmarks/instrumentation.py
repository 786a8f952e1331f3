"""What instrumentation costs: triosio's echo and fan-out, off and on.

    python benchmarks/instrumentation.py [--base CHECKOUT] [--src CHECKOUT]
                                         [--rounds 2] [--repeat 3]

Runs ``run.py --servers triosio --scenarios echo fanout`` once per variant and
round, the variants interleaved (base, off, metrics, tracing, admin, all; then
again), so that the machine's other load falls on all of them alike:

- **base**: the checkout given with ``--base`` (``TRIOSIO_SRC``), e.g. the
  revision before the hooks; skipped without it;
- **off**: this checkout, not instrumented (hooks None);
- **metrics**, **tracing**, **admin**: one instrument each, as
  ``benchmarks/servers/triosio_server.py`` sets them up (``TRIOSIO_INSTRUMENT``);
- **all**: the three together.

Each figure is the server's CPU per round trip (echo) or per delivery
(fan-out), the median over the rounds of ``run.py``'s pick among its
``--repeat`` tries. The table replaces the part of benchmarks/README.md
between ``<!-- instrument:start -->`` and ``<!-- instrument:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"
START, END = "<!-- instrument:start -->", "<!-- instrument:end -->"
VARIANTS = {
    "base": "",
    "off": "",
    "metrics": "metrics",
    "tracing": "tracing",
    "admin": "admin",
    "all": "metrics,tracing,admin",
}


def run_once(
    variant: str, src: str | None, base: str | None, repeat: int, quiet_wait: float
) -> dict[str, Any]:
    env = dict(os.environ, TRIOSIO_INSTRUMENT=VARIANTS[variant])
    env.pop("TRIOSIO_SRC", None)
    if variant == "base":
        assert base is not None
        env["TRIOSIO_SRC"] = base
    elif src is not None:
        env["TRIOSIO_SRC"] = src
    command = [
        sys.executable, str(BENCH / "run.py"), "--servers", "triosio",
        "--scenarios", "echo", "fanout", "--repeat", str(repeat),
        "--quiet-wait", str(quiet_wait), "--no-readme", "--no-check",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    out = done.stdout + done.stderr  # run.py says where its results went on stderr
    found = re.search(r"raw results and logs: (\S+)", out)
    if found is None:
        raise RuntimeError(f"no results from run.py:\n{out}")
    results = json.loads((BENCH.parent / found.group(1) / "results.json").read_text())
    echo, fanout = results["triosio"]["echo"], results["triosio"]["fanout"]
    return {
        "echo": echo["server_cpu_per_rt_us"],
        "fanout": fanout["server_cpu_per_delivery_us"],
        "other": max(echo["other_cpu_util"], fanout["other_cpu_util"]),
        "revision": results["_meta"]["machine"]["revision"],
        "machine": results["_meta"]["machine"],
    }


def table(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    first = next(iter(runs.values()))[0]
    machine = first["machine"]
    rounds = max(len(v) for v in runs.values())
    lines = [
        "## Instrumentation: off and on",
        "",
        "Written by `python benchmarks/instrumentation.py"
        + (f" --base {args.base_label}" if args.base else "")
        + f" --rounds {args.rounds} --repeat {args.repeat}`; do not edit by hand. "
        "How it is measured: the docstring of that script. Server CPU in µs, the "
        f"median of {rounds} interleaved rounds (each round's figures in brackets); "
        "*vs off*: the difference from the uninstrumented server of this revision.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram']}; "
        f"{machine['os']}; Python {machine['python']}",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d}; revision {first['revision']}"
        + (f"; base: {args.base_label}" if args.base else ""),
        "",
        "| variant | echo CPU/round trip | vs off | fan-out CPU/delivery | vs off |"
        " other CPU (max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    off = runs.get("off")
    off_echo = statistics.median(r["echo"] for r in off) if off else None
    off_fan = statistics.median(r["fanout"] for r in off) if off else None
    for variant, results in runs.items():
        echo = statistics.median(r["echo"] for r in results)
        fan = statistics.median(r["fanout"] for r in results)
        each_echo = ", ".join(f"{r['echo']:.1f}" for r in results)
        each_fan = ", ".join(f"{r['fanout']:.2f}" for r in results)
        vs_echo = f"{(echo - off_echo) / off_echo:+.0%}" if off_echo else "-"
        vs_fan = f"{(fan - off_fan) / off_fan:+.0%}" if off_fan else "-"
        other = max(r["other"] for r in results)
        lines.append(
            f"| {variant} | {echo:.1f} ({each_echo}) | {vs_echo} | {fan:.2f} ({each_fan}) "
            f"| {vs_fan} | {other:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", help="a checkout to compare with (TRIOSIO_SRC)")
    parser.add_argument(
        "--src", help="the checkout measured (default: this one); a copy keeps it fixed"
    )
    parser.add_argument("--base-label", help="how to name it in the table (its revision)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=20)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    args.base_label = args.base_label or args.base
    variants = [v for v in args.variants if v != "base" or args.base]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for n in range(args.rounds):
        for variant in variants:
            result = run_once(variant, args.src, args.base, args.repeat, args.quiet_wait)
            runs[variant].append(result)
            print(
                f"round {n + 1} {variant}: echo {result['echo']:.1f} µs, "
                f"fan-out {result['fanout']:.2f} µs (other CPU {result['other']:.0%})",
                flush=True,
            )
    text = table(runs, args)
    print(text)
    if not args.no_readme:
        readme = README.read_text()
        block = f"{START}\n{text}{END}"
        if START in readme:
            readme = re.sub(
                re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S
            )
        else:
            readme = readme.rstrip("\n") + "\n\n" + block + "\n"
        README.write_text(readme)


if __name__ == "__main__":
    main()
