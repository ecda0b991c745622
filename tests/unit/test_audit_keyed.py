"""The keyed audit chain against a database writer without the key, on both backends:
rewrites, truncation, wipes, rotation, and witnessed heads outside the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from tests.enginekit import Rig
from workflows import audit
from workflows.db import (
    Database,
    create_database,
    normalise_database_url,
    read_only,
    unit_of_work,
)
from workflows.errors import AuditChainBroken, ConfigError
from workflows.models import Base

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
KEY_A = b"a" * 16 + b"0123456789abcdef"
KEY_B = b"b" * 16 + b"0123456789abcdef"


def keyed(url: str, key: bytes, old: tuple[bytes, ...] = ()) -> Database:
    urls = dataclasses.replace(
        normalise_database_url(url), audit_keys=audit.AuditKeys(key=key, old_keys=old)
    )
    return create_database(urls)


@pytest_asyncio.fixture
async def kdb(database_url: str) -> AsyncIterator[Database]:
    database = keyed(database_url, KEY_A)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())
    try:
        yield database
    finally:
        await database.dispose()


async def append_many(db: Database, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        async with unit_of_work(db) as session:
            await audit.append(
                session, kind="rollout.transition", data={"i": i}, at=T0 + dt.timedelta(seconds=i)
            )


async def rows(db: Database) -> list[Any]:
    async with db.engine.begin() as conn:
        result = await conn.execute(sa.text("SELECT id, body, hash FROM events ORDER BY id"))
        return list(result.all())


async def raw(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(sql), params)


async def rewrite_without_the_key(db: Database, *, from_id: int, unkeyed: bool = False) -> None:
    """What a writer without the key can do: edit an event, recompute every later hash
    (SHA-256, the only function it can compute) and the head."""
    prev = "0" * 64
    for event_id, body, hash_ in await rows(db):
        if event_id < from_id:
            prev = hash_
            continue
        if event_id == from_id:
            body = body.replace('"i":', '"i":1')
        new = hashlib.sha256((prev + body).encode()).hexdigest()
        await raw(
            db,
            "UPDATE events SET body = :b, prev_hash = :p, hash = :h"
            + (", key_id = NULL" if unkeyed else "")
            + " WHERE id = :id",
            b=body,
            p=prev,
            h=new,
            id=event_id,
        )
        prev = new
    await raw(
        db,
        "UPDATE audit_head SET last_hash = :h" + (", key_id = NULL, mac = NULL" if unkeyed else ""),
        h=prev,
    )


async def test_a_keyed_chain_verifies_with_its_key_id_and_no_unkeyed_events(kdb: Database) -> None:
    await append_many(kdb, 5)
    result = await audit.verify_database(kdb)
    assert (result.count, result.unkeyed) == (5, 0)
    assert result.key_ids == (audit.key_id(KEY_A),)


async def test_one_event_rewritten_with_every_later_hash_recomputed_is_named(
    kdb: Database,
) -> None:
    await append_many(kdb, 6)
    third = (await rows(kdb))[2][0]
    await rewrite_without_the_key(kdb, from_id=third)
    with pytest.raises(AuditChainBroken) as caught:
        await audit.verify_database(kdb)
    assert str(caught.value) == (
        f"event {third}: MAC does not verify: the event was rewritten (or its hash "
        "recomputed) without the audit key"
    )


async def test_the_whole_chain_rewritten_unkeyed_is_caught_by_the_configured_key(
    kdb: Database,
) -> None:
    await append_many(kdb, 4)
    first = (await rows(kdb))[0][0]
    await rewrite_without_the_key(kdb, from_id=first, unkeyed=True)
    with pytest.raises(AuditChainBroken, match="head carries no MAC although an audit key"):
        await audit.verify_database(kdb)


async def test_the_tail_truncated_and_the_head_moved_back_is_named(kdb: Database) -> None:
    await append_many(kdb, 6)
    kept = (await rows(kdb))[3]
    await raw(kdb, "DELETE FROM events WHERE id > :id", id=kept[0])
    await raw(
        kdb,
        "UPDATE audit_head SET count = 4, last_event_id = :id, last_hash = :h",
        id=kept[0],
        h=kept[2],
    )
    with pytest.raises(AuditChainBroken) as caught:
        await audit.verify_database(kdb)
    assert str(caught.value) == (
        f"the head's MAC does not verify: the head (seq 4, event {kept[0]}) was moved without "
        "the audit key (tail truncated and head moved back?)"
    )


async def test_every_event_wiped_with_the_head_kept_is_named(kdb: Database) -> None:
    await append_many(kdb, 3)
    await raw(kdb, "DELETE FROM events")
    with pytest.raises(
        AuditChainBroken,
        match="head says 3 events, the chain has none after "
        "the genesis hash: its events were wiped",
    ):
        await audit.verify_database(kdb)


async def test_every_audit_row_wiped_while_rollouts_remain_is_named(kdb: Database) -> None:
    kit = Rig(kdb)
    await kit.start()
    await raw(kdb, "DELETE FROM events")
    await raw(kdb, "DELETE FROM audit_head")
    with pytest.raises(AuditChainBroken, match=r"empty \(no events, no head\) but 1 rollout"):
        await audit.verify_database(kdb)


async def test_after_rotation_old_events_verify_only_with_the_old_key_kept(
    kdb: Database, database_url: str
) -> None:
    await append_many(kdb, 3)
    rotated = keyed(database_url, KEY_B, old=(KEY_A,))
    try:
        await append_many(rotated, 2, start=3)
        result = await audit.verify_database(rotated)
        assert result.count == 5
        assert set(result.key_ids) == {audit.key_id(KEY_A), audit.key_id(KEY_B)}
    finally:
        await rotated.dispose()
    forgot = keyed(database_url, KEY_B)
    try:
        with pytest.raises(AuditChainBroken, match=f"audit key id {audit.key_id(KEY_A)}, which"):
            await audit.verify_database(forgot)
    finally:
        await forgot.dispose()


async def test_a_witnessed_head_names_a_wipe_that_the_database_alone_cannot_see(
    kdb: Database, tmp_path: Path
) -> None:
    audit.generate_keypair(tmp_path / "sign.pem", tmp_path / "sign.pub")
    signer = audit.load_signer(tmp_path / "sign.pem")
    witness = tmp_path / "witness.jsonl"
    await append_many(kdb, 4)
    record = await audit.witness_if_due(
        kdb, signer=signer, path=witness, now=T0, interval=dt.timedelta(hours=1)
    )
    assert record is not None and record["seq"] == 4
    await raw(kdb, "DELETE FROM events")
    await raw(kdb, "DELETE FROM audit_head")
    assert (await audit.verify_database(kdb)).count == 0  # alone: an empty, valid log
    heads = audit.read_witness(witness, [audit.load_public_key(tmp_path / "sign.pub")])
    result = await audit.verify_database(kdb, want_seqs=audit.wanted_seqs(heads))
    with pytest.raises(AuditChainBroken) as caught:
        audit.check_witnessed(result, heads, start=result.checkpoint)
    assert str(caught.value).endswith(
        "is beyond the database's head (seq 0): every event was wiped"
    )


async def test_a_witnessed_head_names_a_rewrite_made_even_with_the_key(
    kdb: Database, tmp_path: Path
) -> None:
    audit.generate_keypair(tmp_path / "sign.pem", tmp_path / "sign.pub")
    signer = audit.load_signer(tmp_path / "sign.pem")
    witness = tmp_path / "witness.jsonl"
    await append_many(kdb, 3)
    await audit.witness_if_due(
        kdb, signer=signer, path=witness, now=T0, interval=dt.timedelta(hours=1)
    )
    # an insider with the key truncates to seq 1 and re-appends two other events
    first = (await rows(kdb))[0]
    await raw(kdb, "DELETE FROM events WHERE id > :id", id=first[0])
    mac = audit.head_mac(KEY_A, count=1, last_event_id=first[0], last_hash=first[2])
    await raw(
        kdb,
        "UPDATE audit_head SET count = 1, last_event_id = :id, last_hash = :h, mac = :m",
        id=first[0],
        h=first[2],
        m=mac,
    )
    await append_many(kdb, 2, start=50)
    heads = audit.read_witness(witness, [signer.public])
    result = await audit.verify_database(kdb, want_seqs=audit.wanted_seqs(heads))
    with pytest.raises(AuditChainBroken, match="the log was rewritten after it was witnessed"):
        audit.check_witnessed(result, heads, start=result.checkpoint)


async def test_an_edited_witness_line_does_not_verify(kdb: Database, tmp_path: Path) -> None:
    audit.generate_keypair(tmp_path / "sign.pem", tmp_path / "sign.pub")
    signer = audit.load_signer(tmp_path / "sign.pem")
    witness = tmp_path / "witness.jsonl"
    await append_many(kdb, 2)
    await audit.witness_if_due(kdb, signer=signer, path=witness, now=T0, interval=dt.timedelta(1))
    witness.write_text(witness.read_text().replace('"seq":2', '"seq":1'))
    with pytest.raises(AuditChainBroken, match="line 1: signature does not verify"):
        audit.read_witness(witness, [signer.public])


async def test_the_witness_waits_for_a_rollout_end_or_the_interval(
    kdb: Database, tmp_path: Path
) -> None:
    audit.generate_keypair(tmp_path / "sign.pem", tmp_path / "sign.pub")
    signer = audit.load_signer(tmp_path / "sign.pem")
    witness = tmp_path / "witness.jsonl"
    hour = dt.timedelta(hours=1)
    await append_many(kdb, 1)
    assert await audit.witness_if_due(kdb, signer=signer, path=witness, now=T0, interval=hour)
    await append_many(kdb, 1, start=1)
    later = T0 + dt.timedelta(minutes=5)
    assert (
        await audit.witness_if_due(kdb, signer=signer, path=witness, now=later, interval=hour)
        is None
    )
    async with unit_of_work(kdb) as session:
        await audit.append(session, kind="rollout.succeeded", data={}, at=later, rollout_id=1)
    record = await audit.witness_if_due(kdb, signer=signer, path=witness, now=later, interval=hour)
    assert record is not None and record["seq"] == 3
    assert len(witness.read_text().splitlines()) == 2


async def test_a_head_witnessed_before_a_prune_is_matched_against_its_checkpoint(
    kdb: Database, tmp_path: Path
) -> None:
    audit.generate_keypair(tmp_path / "s.pem", tmp_path / "s.pub")
    signer = audit.load_signer(tmp_path / "s.pem")
    witness = tmp_path / "witness.jsonl"
    for i in range(8):
        async with unit_of_work(kdb) as session:
            await audit.append(session, kind="x", data={"i": i}, at=T0 + dt.timedelta(days=i))
        if i in (1, 4):  # heads at seq 2 and seq 5
            await audit.witness_if_due(
                kdb, signer=signer, path=witness, now=T0, interval=dt.timedelta(0), force=True
            )
    await audit.prune(
        kdb,
        before=T0 + dt.timedelta(days=5),
        now=T0 + dt.timedelta(days=400),
        archive_dir=tmp_path / "archive",
        key=audit.AuditKeys(key=KEY_A),
        actor="U0ADMIN",
        min_age=dt.timedelta(days=90),
    )
    heads = audit.read_witness(witness, [signer.public])
    result = await audit.verify_database(kdb, want_seqs=audit.wanted_seqs(heads))
    assert result.checkpoint is not None and result.checkpoint.seq == 5
    # seq 2 is in the archive (skipped); seq 5 is the checkpoint itself (its hash matches)
    assert audit.check_witnessed(result, heads, start=result.checkpoint) == 1


async def test_an_append_on_a_database_that_requires_a_key_refuses_and_writes_nothing(
    kdb: Database, database_url: str
) -> None:
    await append_many(kdb, 2)
    urls = dataclasses.replace(normalise_database_url(database_url), audit_keys=audit.KeyRequired())
    keyless = create_database(urls)
    try:
        with pytest.raises(ConfigError) as refused:
            await append_many(keyless, 1, start=2)
        assert refused.value.problems == [audit.KEY_REQUIRED]
        assert len(await rows(kdb)) == 2  # the transaction rolled back
        async with read_only(keyless) as session:
            assert audit.session_keys(session) is None  # reads go on, unkeyed
    finally:
        await keyless.dispose()
