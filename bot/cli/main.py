"""The ``patchgate`` command. One module per command group registers its subcommands.

Errors are one clear line on stderr and a non-zero exit: 2 for settings problems,
1 for everything else. Unexpected errors print a short reference; the traceback is
logged at DEBUG only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.cli import (
    assess,
    audit,
    db,
    debug,
    emergency,
    exception,
    inventory,
    outbox,
    plan,
    report,
    rollout,
    schedule,
    serve,
)
from bot.settings import Settings, load_settings
from workflows.errors import ConfigError, PatchGateError, PlanError

log = logging.getLogger("patchgate.cli")

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]

GROUPS = (
    serve,
    db,
    plan,
    rollout,
    schedule,
    exception,
    outbox,
    audit,
    debug,
    inventory,
    assess,
    emergency,
    report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchgate",
        description="Governed, automated OS patching driven from Slack.",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def _configure_logging(settings: Settings) -> None:
    from bot.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a group given without its subcommand
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 2
    try:
        settings = load_settings()
        _configure_logging(settings)
        return asyncio.run(handler(args, settings))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"patchgate: {problem}", file=sys.stderr)
        return 2
    except PlanError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        return 1
    except PatchGateError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        ref = uuid.uuid4().hex[:8]
        log.debug("unexpected error (ref %s)", ref, exc_info=True)
        print(
            f"patchgate: unexpected error ({type(exc).__name__}: {exc}); ref {ref} "
            "(PATCHGATE_LOG_LEVEL=DEBUG shows the traceback)",
            file=sys.stderr,
        )
        return 1


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
