"""Wall time of short `patchgate` commands: command groups imported lazily (what the CLI
does) against every group imported up front (what it did before), in the same run.

The eager variant calls ``build_parser()`` with no arguments, which imports and registers
every group, and then runs ``main`` as usual. Runs alternate between the two variants;
medians of ``--runs`` (default 7) per command.

    /tmp/pgvenv/bin/python bench/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAZY = "import sys; from bot.cli.main import main; sys.exit(main(sys.argv[1:]))"
EAGER = (
    "import sys; from bot.cli.main import build_parser, main; build_parser(); "
    "sys.exit(main(sys.argv[1:]))"
)


def _schema(path: Path) -> str:
    from workflows.db import create_database
    from workflows.models import Base

    url = f"sqlite:///{path}"

    async def build() -> None:
        db = create_database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await db.dispose()

    asyncio.run(build())
    return url


def _run(code: str, argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = _schema(Path(tmp) / "pg.db")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PATCHGATE_DATABASE_URL": url,
            "PATCHGATE_LOG_LEVEL": "WARNING",
        }
        fixture = REPO / "tests/fixtures/packages/apt-dist-upgrade-bookworm.txt"
        commands = [
            ["--help"],
            ["debug", "parse", "apt", "upgradable", str(fixture)],
            ["plan", "validate", str(REPO / "examples/plans/weekly.yml")],
            ["audit", "verify"],
            ["serve", "--help"],
        ]
        print(f"median of {args.runs} runs each, seconds (eager = every group imported)")
        print(f"{'command':48} {'eager':>7} {'lazy':>7} {'saved':>7}")
        for argv in commands:
            eager, lazy = [], []
            for _ in range(args.runs):
                eager.append(_run(EAGER, argv, env, Path(tmp)))
                lazy.append(_run(LAZY, argv, env, Path(tmp)))
            e, la = statistics.median(eager), statistics.median(lazy)
            name = " ".join(a if len(a) < 30 else Path(a).name for a in argv)
            print(f"{name:48} {e:7.2f} {la:7.2f} {1 - la / e:6.0%}")


if __name__ == "__main__":
    main()
