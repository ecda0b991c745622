"""The ``/patch`` subcommand registry. A new subcommand is a new module with ``register``.

A :class:`Subcommand` has a pure ``parse`` (arguments -> typed command, or
:class:`UsageError`) and an async ``run`` that does the work for one person and returns
the ephemeral reply. ``run`` persists what it decides before returning; the handler
acks with the reply afterwards. A ``run`` whose work may be slow returns :class:`Later`:
the handler acks at once and posts the reply of the deferred work afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.slack import texts
from bot.slack.deps import MAX_ROW_ID, SlackDeps


class UsageError(Exception):
    """Bad input to /patch: says what was wrong; the reply adds the usage line."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        self.usage = usage
        super().__init__(message)


@dataclass(frozen=True)
class Invocation:
    """Who typed the command, where."""

    user_id: str
    channel_id: str | None
    trigger_id: str | None = None  # for views.open, valid for 3 seconds


Reply = dict[str, Any]  # text and/or blocks for the ephemeral answer


def ephemeral(text: str) -> Reply:
    """A plain-text answer only the person who asked sees."""
    return {"text": text, "response_type": "ephemeral"}


@dataclass(frozen=True)
class Later:
    """Answer ``ack`` now, then run ``work`` after the ack and post its reply ephemerally
    (``chat.postEphemeral``): for reads that may take longer than Slack's 3 seconds."""

    ack: Reply
    work: Callable[[], Awaitable[Reply]]


Parse = Callable[[Sequence[str]], Any]
Run = Callable[[SlackDeps, Invocation, Any], Awaitable[Reply | Later]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str  # e.g. "run PLAN [--dry-run]"
    summary: str
    parse: Parse
    run: Run
    aliases: tuple[str, ...] = ()


@dataclass
class Registry:
    _by_name: dict[str, Subcommand] = field(default_factory=dict)
    _order: list[Subcommand] = field(default_factory=list)

    def add(self, sub: Subcommand) -> None:
        for name in (sub.name, *sub.aliases):
            if name in self._by_name:
                raise ValueError(f"/patch {name} is registered twice")
            self._by_name[name] = sub
        self._order.append(sub)

    def get(self, name: str) -> Subcommand | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Subcommand]:
        return iter(self._order)


def expect(args: Sequence[str], usage: str, *, at_least: int, at_most: int | None) -> None:
    if len(args) < at_least:
        raise UsageError(texts.MISSING_ARGUMENT, usage=usage)
    if at_most is not None and len(args) > at_most:
        raise UsageError(texts.unexpected(" ".join(args[at_most:])), usage=usage)


def rollout_id(text: str, usage: str) -> int:
    """The rollout number in ``text``. ASCII digits only (``int`` takes other digits, and
    refuses "²" that ``isdigit`` accepts); one beyond any row id does not exist, said so
    here before it reaches a query (and before ``int`` parses thousands of digits)."""
    value = text.removeprefix("#")
    if not (value.isascii() and value.isdigit()):
        raise UsageError(texts.not_a_rollout_number(text), usage=usage)
    if len(value) > len(str(MAX_ROW_ID)) or int(value) > MAX_ROW_ID:
        raise UsageError(texts.no_rollout_number(value))
    return int(value)
