"""Group commit for host steps (issue 24, item 4): the transactions of a batch's hosts
that finish a step near each other are written in one database transaction.

A host step hands its write (a function of the session) to :meth:`GroupCommit.run` and
waits until the transaction that carries it has committed; only then does the step go
on (so a host's apply intent is durable before its command is sent, as before) and its
hook fire (the crash matrix's kill point, once per host step, as before). Writes that
arrive within ``GROUP_WINDOW`` of each other, or while the previous group is being
written, share one transaction (at most ``GROUP_MAX``): one BEGIN, one epoch check, one
audit lock and head, one read of all their host runs (and of their hosts' open
tickets), one multi-row INSERT of their events, one COMMIT.

A write that raises rolls the whole group back; each of its writes is then tried again
in a transaction of its own, so one host's failure is that host's alone (and a stale
leader is every host's). A task that already holds a database slot (a write nested in
another transaction) writes in its own transaction, as before: the group's writer would
otherwise wait for the slot that task holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import tickets
from workflows.errors import StaleLeader
from workflows.models import HostRun

Write = Callable[[AsyncSession], Awaitable[None]]


class Committer(Protocol):
    """What the group needs of the engine's StepContext."""

    def holds_slot(self) -> bool: ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    def hook(self, step: str, /) -> None: ...


# How long the first write of a group waits for the batch's other hosts to join it (on
# the event loop's clock): short against any real host command, long enough for the
# hosts released by the same command round to line up.
GROUP_WINDOW = 0.002
GROUP_MAX = 50  # writes per transaction (a bound on how long other writers wait)


@dataclass
class _Member:
    step: str
    write: Write
    run_ids: tuple[int, ...]
    done: asyncio.Future[None] = field(repr=False)


class GroupCommit:
    """One engine's queue of host-step writes and the task that commits them."""

    def __init__(self, ctx: Committer) -> None:
        self.ctx = ctx
        self.queue: list[_Member] = []
        self.task: asyncio.Task[None] | None = None
        self.groups = 0  # transactions written (for tests and the benchmark)

    async def run(self, step: str, write: Write, run_ids: Sequence[int] = ()) -> None:
        """Commit ``write`` (in a group, when it can) and fire the step's hook."""
        if self.ctx.holds_slot():
            async with self.ctx.transaction() as session:
                await write(session)
            self.ctx.hook(step)
            return
        loop = asyncio.get_running_loop()
        member = _Member(step, write, tuple(run_ids), loop.create_future())
        self.queue.append(member)
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain(), name="patchgate-group-commit")
        await member.done
        self.ctx.hook(step)

    async def _drain(self) -> None:
        try:
            while self.queue:
                await asyncio.sleep(GROUP_WINDOW)
                members = [m for m in self.queue[:GROUP_MAX] if not m.done.cancelled()]
                del self.queue[:GROUP_MAX]
                if members:
                    await self._commit(members)
        except BaseException as exc:  # cancelled with the loop: nobody waits for ever
            for member in self.queue:
                _settle(member, exc)
            self.queue.clear()
            raise

    async def _commit(self, members: list[_Member]) -> None:
        try:
            async with self.ctx.transaction() as session:
                self.groups += 1
                ids = sorted({i for m in members for i in m.run_ids})
                # Into the session's identity map (held here: it keeps weak references),
                # so each write's get() of its host run costs no statement.
                loaded: list[HostRun] = []
                for start in range(0, len(ids), GROUP_MAX):
                    loaded.extend(
                        await session.scalars(
                            sa.select(HostRun).where(HostRun.id.in_(ids[start : start + GROUP_MAX]))
                        )
                    )
                await tickets.note_no_open_tickets(session, hosts=(r.host_name for r in loaded))
                for member in members:
                    await member.write(session)
                del loaded
        except StaleLeader as exc:
            for member in members:
                _settle(member, exc)
            return
        except Exception as exc:
            if len(members) == 1:
                _settle(members[0], exc)
                return
            for member in members:  # one write failed: each alone, as without groups
                await self._alone(member)
            return
        except BaseException as exc:
            for member in members:
                _settle(member, exc)
            raise
        for member in members:
            _settle(member, None)

    async def _alone(self, member: _Member) -> None:
        try:
            async with self.ctx.transaction() as session:
                self.groups += 1
                await member.write(session)
        except Exception as exc:
            _settle(member, exc)
            return
        except BaseException as exc:
            _settle(member, exc)
            raise
        _settle(member, None)


def _settle(member: _Member, error: BaseException | None) -> None:
    if member.done.done():
        return
    if error is None:
        member.done.set_result(None)
    else:
        member.done.set_exception(error)
