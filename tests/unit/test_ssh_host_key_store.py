"""The KnownHostStore the SSH executor learns first-seen host keys through: the
``known_host_keys`` row and its ``ssh.host_key.accepted`` audit event, on both backends."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from workflows.db import Database, read_only
from workflows.hostkeys import DbKnownHostStore
from workflows.models import Event, KnownHostKey
from workflows.ports import LearnedHostKey

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
KEY = dict(name="[10.0.0.5]:2222", host="web-01", key_type="ssh-ed25519", fingerprint="SHA256:x")


async def test_a_learned_key_is_stored_audited_and_loaded_by_its_known_hosts_name(
    db: Database,
) -> None:
    store = DbKnownHostStore(db, clock=lambda: T0)
    assert await store.learn(**KEY, key_base64="AAAA") is True

    assert await store.load("[10.0.0.5]:2222") == [
        LearnedHostKey("[10.0.0.5]:2222", "ssh-ed25519", "AAAA")
    ]
    assert await store.load("10.0.0.5") == []
    async with read_only(db) as session:
        row = (await session.scalars(sa.select(KnownHostKey))).one()
        events = (await session.scalars(sa.select(Event))).all()
    assert (row.host, row.fingerprint, row.accepted_at) == ("web-01", "SHA256:x", T0)
    assert [(e.kind, e.actor, json.loads(e.body)["data"]) for e in events] == [
        (
            "ssh.host_key.accepted",
            "patchgate",
            {
                "host": "web-01",
                "name": "[10.0.0.5]:2222",
                "key_type": "ssh-ed25519",
                "fingerprint": "SHA256:x",
            },
        )
    ]


async def test_the_same_key_again_is_kept_and_a_different_one_of_its_type_refused(
    db: Database,
) -> None:
    store = DbKnownHostStore(db, clock=lambda: T0)
    assert await store.learn(**KEY, key_base64="AAAA") is True
    assert await store.learn(**KEY, key_base64="AAAA") is True
    assert await store.learn(**KEY, key_base64="BBBB") is False

    async with read_only(db) as session:
        keys = (await session.scalars(sa.select(KnownHostKey.key_base64))).all()
        events = (await session.scalars(sa.select(Event.kind))).all()
    assert keys == ["AAAA"]
    assert events == ["ssh.host_key.accepted"]
