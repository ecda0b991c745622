"""Audit retention: prune archives a prefix, leaves a signed checkpoint, and what is left
still verifies; tampering with the checkpoint, the archive or later events is caught."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import AuditChainBroken, ConfigError, Conflict, InputError
from workflows.models import AuditCheckpoint, Event

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=400)
KEY = b"k" * 40
MIN_AGE = dt.timedelta(days=90)


async def old_events(db: Database, n: int, *, start: int = 0) -> None:
    """``n`` events, one a day from T0 (+ ``start`` days)."""
    for i in range(start, start + n):
        async with unit_of_work(db) as session:
            await audit.append(
                session,
                kind="rollout.transition",
                data={"i": i, "note": "é ✓"},
                at=T0 + dt.timedelta(days=i),
                actor="U1" if i % 2 else None,
                rollout_id=i % 3 or None,
            )


async def prune(db: Database, tmp_path: Path, days: int, **kwargs: object) -> audit.PruneResult:
    options: dict[str, object] = {
        "before": T0 + dt.timedelta(days=days),
        "now": NOW,
        "archive_dir": tmp_path / "archive",
        "key": KEY,
        "actor": "U0ADMIN",
        "min_age": MIN_AGE,
    }
    options.update(kwargs)
    return await audit.prune(db, **options)  # type: ignore[arg-type]


async def raw(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(sql), params)


async def event_seqs(db: Database) -> list[int]:
    async with read_only(db) as session:
        bodies = (await session.scalars(sa.select(Event.body).order_by(Event.id))).all()
    return [json.loads(b)["seq"] for b in bodies]


async def all_checkpoints(db: Database) -> list[audit.Checkpoint]:
    async with read_only(db) as session:
        return await audit.checkpoints(session, key=KEY)


async def test_prune_archives_the_prefix_and_what_is_left_verifies_from_the_checkpoint(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 10)
    result = await prune(db, tmp_path, 5)
    assert (result.count, result.first_seq, result.last_seq) == (5, 1, 5)
    assert result.archive == tmp_path / "archive" / "audit-0000000001-0000000005.jsonl.gz"
    # the five newer events and the prune's own event remain
    assert await event_seqs(db) == [6, 7, 8, 9, 10, 11]

    verified = await audit.verify_database(db, key=KEY)
    assert (verified.count, verified.last_seq) == (6, 11)
    assert verified.checkpoint is not None and verified.checkpoint.seq == 5
    assert verified.checkpoint.before == T0 + dt.timedelta(days=5)
    assert verified.checkpoint.archive_sha256 == result.archive_sha256

    async with read_only(db) as session:
        pruned = (await session.scalars(sa.select(Event).where(Event.kind == "audit.pruned"))).one()
    data = json.loads(pruned.body)["data"]
    assert data["count"] == 5 and data["archive"] == result.archive.name
    assert json.loads(pruned.body)["actor"] == "U0ADMIN"

    archived = audit.verify_archive(result.archive, checkpoints=await all_checkpoints(db))
    assert (archived.count, archived.prev_seq, archived.last_seq) == (5, 0, 5)
    assert archived.prev_hash == audit.GENESIS_HASH and archived.checkpoint_seq == 5


async def test_a_second_prune_starts_its_archive_at_the_first_checkpoint(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 10)
    first = await prune(db, tmp_path, 3)
    second = await prune(db, tmp_path, 8)
    assert (second.first_seq, second.last_seq) == (4, 8)
    # the first prune's own event (seq 11) is newer than the cut: it stays
    assert await event_seqs(db) == [9, 10, 11, 12]
    verified = await audit.verify_database(db, key=KEY)
    assert verified.checkpoint is not None and verified.checkpoint.seq == 8
    known = await all_checkpoints(db)
    assert [c.seq for c in known] == [3, 8]
    assert first.archive is not None and second.archive is not None
    one = audit.verify_archive(first.archive, checkpoints=known)
    two = audit.verify_archive(second.archive, checkpoints=known)
    assert two.prev_hash == one.last_hash and two.prev_seq == 3


async def test_pruning_again_before_the_same_time_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 6)
    await prune(db, tmp_path, 4)
    seqs = await event_seqs(db)
    again = await prune(db, tmp_path, 4)
    assert again.count == 0
    assert await event_seqs(db) == seqs
    assert len(await all_checkpoints(db)) == 1
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == [
        "audit-0000000001-0000000004.jsonl.gz"
    ]


async def test_a_dry_run_reports_what_would_go_and_writes_nothing(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 6)
    result = await prune(db, tmp_path, 4, dry_run=True)
    assert (result.dry_run, result.count, result.last_seq) == (True, 4, 4)
    assert result.archive_sha256 is None
    assert await event_seqs(db) == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "archive").exists()
    assert await all_checkpoints(db) == []


async def test_a_cut_younger_than_the_minimum_retention_is_refused_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 3)
    with pytest.raises(InputError, match="too recent"):
        await prune(db, tmp_path, 2, now=T0 + dt.timedelta(days=30))
    assert await event_seqs(db) == [1, 2, 3]
    assert not (tmp_path / "archive").exists()


async def test_a_broken_chain_is_never_pruned(db: Database, tmp_path: Path) -> None:
    await old_events(db, 6)
    await raw(db, "UPDATE events SET body = replace(body, :old, :new)", old='"i":1', new='"i":7')
    with pytest.raises(AuditChainBroken, match="hash does not match its contents"):
        await prune(db, tmp_path, 4)
    assert await event_seqs(db) == [1, 2, 3, 4, 5, 6]
    assert list((tmp_path / "archive").iterdir()) == []  # the temporary file is gone too
    assert await all_checkpoints(db) == []


async def test_an_archive_file_in_the_way_with_other_bytes_is_refused(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 6)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "audit-0000000001-0000000004.jsonl.gz").write_bytes(b"other")
    with pytest.raises(Conflict, match="exists with other contents"):
        await prune(db, tmp_path, 4)
    assert await event_seqs(db) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_checkpoints SET hash = :h",
        "UPDATE audit_checkpoints SET before = :t",
        "UPDATE audit_checkpoints SET archive_sha256 = :h",
    ],
)
async def test_a_tampered_checkpoint_fails_verification(
    db: Database, tmp_path: Path, sql: str
) -> None:
    await old_events(db, 6)
    await prune(db, tmp_path, 4)
    await raw(db, sql, h="a" * 64, t=dt.datetime(2026, 1, 2))
    with pytest.raises(AuditChainBroken, match="checkpoint seq 4: signature does not verify"):
        await audit.verify_database(db, key=KEY)


async def test_a_deleted_checkpoint_fails_verification(db: Database, tmp_path: Path) -> None:
    await old_events(db, 6)
    await prune(db, tmp_path, 4)
    await raw(db, "DELETE FROM audit_checkpoints")
    with pytest.raises(AuditChainBroken, match="does not match the genesis hash"):
        await audit.verify_database(db, key=KEY)


async def test_a_checkpoint_checked_with_another_key_says_so(db: Database, tmp_path: Path) -> None:
    await old_events(db, 6)
    await prune(db, tmp_path, 4)
    with pytest.raises(AuditChainBroken, match="signed with another key"):
        await audit.verify_database(db, key=b"z" * 40)
    with pytest.raises(ConfigError, match="PATCHGATE_AUDIT_KEY"):
        await audit.verify_database(db)


@pytest.mark.parametrize("which", ["first", "middle"])
async def test_deleting_an_event_after_the_checkpoint_fails_verification(
    db: Database, tmp_path: Path, which: str
) -> None:
    await old_events(db, 8)
    await prune(db, tmp_path, 4)
    async with read_only(db) as session:
        ids = (await session.scalars(sa.select(Event.id).order_by(Event.id))).all()
    victim = ids[0] if which == "first" else ids[2]
    await raw(db, "DELETE FROM events WHERE id = :id", id=victim)
    expected = "the checkpoint \\(seq 4\\)" if which == "first" else f"event {ids[1]}"
    with pytest.raises(AuditChainBroken, match=f"previous hash does not match {expected}"):
        await audit.verify_database(db, key=KEY)


def _rewrite_archive(path: Path, edit: object) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines = edit(lines)  # type: ignore[operator]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))


async def test_a_tampered_archive_fails_verification(db: Database, tmp_path: Path) -> None:
    await old_events(db, 6)
    result = await prune(db, tmp_path, 4)
    assert result.archive is not None
    known = await all_checkpoints(db)

    def edit_body(lines: list[str]) -> list[str]:
        line = json.loads(lines[2])
        line["body"] = line["body"].replace('"i":1', '"i":5')
        return [*lines[:2], json.dumps(line), *lines[3:]]

    _rewrite_archive(result.archive, edit_body)
    with pytest.raises(AuditChainBroken, match="hash does not match its contents"):
        audit.verify_archive(result.archive, checkpoints=known)


async def test_an_archive_cut_short_or_recompressed_fails_verification(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 6)
    result = await prune(db, tmp_path, 4)
    assert result.archive is not None
    known = await all_checkpoints(db)
    original = result.archive.read_bytes()

    _rewrite_archive(result.archive, lambda lines: lines[:-2])  # last event and trailer gone
    with pytest.raises(AuditChainBroken, match="no trailer"):
        audit.verify_archive(result.archive)

    # the same lines, other bytes: the chain inside still verifies, the checkpoint's
    # SHA-256 does not match
    result.archive.write_bytes(gzip.compress(gzip.decompress(original), compresslevel=1, mtime=0))
    assert audit.verify_archive(result.archive).count == 4
    with pytest.raises(AuditChainBroken, match="SHA-256 is not the one its checkpoint recorded"):
        audit.verify_archive(result.archive, checkpoints=known)


async def test_appends_during_a_prune_keep_the_chain_valid(db: Database, tmp_path: Path) -> None:
    async with unit_of_work(db) as session:  # a longer prefix, so the prune takes a while
        for i in range(1500):
            await audit.append(session, kind="old", data={"i": i}, at=T0)
    done = asyncio.Event()
    appended: list[int] = []

    async def writer(w: int) -> None:
        i = 0
        while not done.is_set() or i < 3:
            async with unit_of_work(db) as session:
                # every process appends with the key (as prune does): the head stays keyed
                session.info["audit_keys"] = audit.AuditKeys(key=KEY)
                await audit.append(session, kind="new", data={"w": w, "i": i}, at=NOW)
            appended.append(w)
            i += 1
            await asyncio.sleep(0)

    async def pruner() -> audit.PruneResult:
        try:
            return await prune(db, tmp_path, 1)
        finally:
            done.set()

    writers = [asyncio.create_task(writer(w)) for w in range(4)]
    result = await pruner()
    await asyncio.gather(*writers)
    assert result.count == 1500
    verified = await audit.verify_database(db, key=KEY)
    assert verified.last_seq == 1500 + len(appended) + 1
    assert verified.count == len(appended) + 1
    async with read_only(db) as session:
        rows = (await session.execute(sa.select(Event.kind, Event.id).order_by(Event.id))).all()
    assert sorted({kind for kind, _ in rows}) == ["audit.pruned", "new"]
    # some appends landed while the prune was reading and archiving, some after it
    pruned_at = next(i for kind, i in rows if kind == "audit.pruned")
    assert rows[0].kind == "new" and rows[-1].kind == "new" and rows[0].id < pruned_at


async def test_reports_learn_whether_their_period_was_pruned(db: Database, tmp_path: Path) -> None:
    await old_events(db, 6)
    async with read_only(db) as session:
        assert await audit.latest_checkpoint(session) is None
        assert await audit.period_pruned(session, since=T0) is None
    await prune(db, tmp_path, 4)
    async with read_only(db) as session:
        latest = await audit.latest_checkpoint(session)
        assert latest is not None and latest.seq == 4 and latest.count == 4
        assert latest.archive_name == "audit-0000000001-0000000004.jsonl.gz"
        hit = await audit.period_pruned(session, since=T0 + dt.timedelta(days=2))
        assert hit is not None and hit.seq == 4
        assert await audit.period_pruned(session, since=T0 + dt.timedelta(days=4)) is None


async def test_the_checkpoint_row_carries_its_signature_and_key_id(
    db: Database, tmp_path: Path
) -> None:
    await old_events(db, 3)
    await prune(db, tmp_path, 2)
    async with read_only(db) as session:
        row = (await session.scalars(sa.select(AuditCheckpoint))).one()
    assert row.key_id == audit.key_id(KEY) and len(row.signature) == 64
    assert row.signature == audit.sign_checkpoint(row, key=KEY)
    assert KEY.decode() not in audit.checkpoint_payload(row)
