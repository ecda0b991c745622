"""Coverage-guided fuzzing of one target with atheris (libFuzzer), seeded from the fixtures.

    python -m tests.fuzz.atheris_main TARGET [-runs=N] [-max_total_time=SECONDS] [...]
    python -m tests.fuzz.atheris_main --list

Run from the repository root. The project's modules are instrumented for coverage;
the seed corpus is every fixture file of the target (tests/fixtures) copied into a
working corpus directory (``PATCHGATE_FUZZ_CORPUS``, default a temporary directory), to
which libFuzzer adds the inputs that reach new code. A crash (an exception other than
the target's documented error, or a hang past ``targets.HANG_SECONDS``) stops the run,
prints the traceback and writes the input to ``crash-<sha1>`` in the working directory:
replay it with ``python -m tests.fuzz.atheris_main TARGET crash-<sha1>``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    import atheris  # type: ignore[import-untyped]

    ours = ["workflows", "integrations", "bot", "shlex", "debian"]
    with atheris.instrument_imports(include=ours):
        from bot.slack.commands import handlers, parser  # noqa: F401  (lazy in the target)
        from tests.fuzz import targets

    if len(argv) < 2 or argv[1] in ("-h", "--help", "--list"):
        print(__doc__)
        print("targets:", " ".join(sorted(targets.TARGETS)))
        return 0 if len(argv) >= 2 else 2
    name, rest = argv[1], argv[2:]
    target = targets.TARGETS.get(name)
    if target is None:
        print(f"unknown target {name!r}; one of: {' '.join(sorted(targets.TARGETS))}")
        return 2

    def one(data: bytes) -> None:
        with targets.no_hang():
            target.run(data)

    replay = [a for a in rest if not a.startswith("-")]
    if not replay:  # a fresh run: start from the seed corpus
        corpus = Path(
            os.environ.get("PATCHGATE_FUZZ_CORPUS") or tempfile.mkdtemp(prefix="pg-corpus-")
        )
        corpus = corpus / name
        corpus.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(targets.seed_files(target)):
            shutil.copyfile(seed, corpus / f"seed-{index}-{seed.name}")
        rest = [*rest, str(corpus)]
    atheris.Setup([argv[0], *rest], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
