"""The ``patchgate`` command. One module per command group registers its subcommands.

Group modules are imported lazily: ``patchgate audit verify`` imports ``bot.cli.audit``
only, and ``patchgate --help`` none of them (the listing comes from :data:`GROUPS`). A
new group is one line in :data:`GROUPS`: its name, its module (which has
``register(sub)``) and the help line that module gives it.

Errors are one clear line on stderr and a non-zero exit: 2 for settings problems,
1 for everything else. Unexpected errors print a short reference; the traceback is
logged at DEBUG only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from workflows.errors import ConfigError, PatchGateError, PlanError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("patchgate.cli")

Handler = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]

# (command, module with register(sub), its help line: the same text the module registers)
GROUPS: tuple[tuple[str, str, str], ...] = (
    (
        "serve",
        "bot.cli.serve",
        "Run PatchGate: the HTTP server (/healthz, /metrics) and, when leader, the engine "
        "and the outbox worker.",
    ),
    ("db", "bot.cli.db", "Database schema migrations."),
    ("plan", "bot.cli.plan", "Check and list patch plans."),
    ("rollout", "bot.cli.rollout", "start, inspect, approve, pause and abort rollouts"),
    ("schedule", "bot.cli.schedule", "Patch windows, one-off runs and change freezes."),
    ("exception", "bot.cli.exception", "grant, list and revoke time-boxed exceptions"),
    ("outbox", "bot.cli.outbox", "Messages and tickets waiting to be delivered."),
    ("audit", "bot.cli.audit", "The hash-chained audit log."),
    ("debug", "bot.cli.debug", "Diagnostics for operators."),
    ("inventory", "bot.cli.inventory", "show inventory hosts, refresh their facts"),
    ("assess", "bot.cli.assess", "show (or --refresh) per-host risk assessments"),
    ("emergency", "bot.cli.emergency", "start an expedited rollout for one CVE (operators)"),
    ("report", "bot.cli.report", "build and verify compliance evidence bundles"),
    ("ssh", "bot.cli.ssh", "check how PatchGate reaches hosts over SSH"),
    ("token", "bot.cli.token", "personal tokens for decisions through patchgate serve"),
    (
        "console",
        "bot.cli.console",
        "try PatchGate's Slack flow in a browser, with a local Slack stand-in (no Slack needed)",
    ),
    (
        "worker",
        "bot.cli.worker",
        "Run the host work of one zone (a Celery worker on PATCHGATE_BROKER_URL).",
    ),
)


def _wanted(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full subcommands of the group ``argv`` names (every group when
    ``argv`` is None) and a one-line entry for each other group."""
    parser = argparse.ArgumentParser(
        prog="patchgate",
        description="Governed, automated OS patching driven from Slack.",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    wanted = None if argv is None else _wanted(argv)
    for name, module, help_text in GROUPS:
        if argv is None or name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, description=help_text)
    return parser


def _configure_logging(settings: Settings) -> None:
    from bot.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a group given without its subcommand
        parser.parse_args([*words, "--help"])
        return 2
    from bot.cli.common import terminal_safe_output
    from bot.settings import load_settings

    if args.group in ("serve", "console", "worker"):  # their output is the log, not people's text
        return _run(handler, args, load_settings)
    with terminal_safe_output():
        return _run(handler, args, load_settings)


def _run(handler: Handler, args: argparse.Namespace, load_settings: Any) -> int:
    try:
        settings = load_settings()
        _configure_logging(settings)
        code = asyncio.run(handler(args, settings))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
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
    except BrokenPipeError:
        # The reader went away (`patchgate rollout list | head -1`): stop quietly, as
        # shell tools do (128 + SIGPIPE), and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
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
