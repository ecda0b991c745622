"""Deterministic zip entries that hash and count what is written, and row streaming."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
YIELD_PER = 2000


def ts(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(data: Any) -> str:
    """The bundle's JSON form: sorted keys, two-space indent, a final newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --- the zip ----------------------------------------------------------------------------


FLUSH_CHARS = 1 << 20


class Sink:
    """A text stream into one zip entry that hashes and counts what it writes.

    Text is buffered and handed to the zip (deflate) and the hash in pieces of about a
    megabyte: a write per row would cost more than building the row."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._parts: list[str] = []
        self._pending = 0
        self.sha = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._pending += len(text)
        if self._pending >= FLUSH_CHARS:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if not self._parts:
            return
        data = "".join(self._parts).encode("utf-8")
        self._parts, self._pending = [], 0
        self.sha.update(data)
        self.size += len(data)
        self._raw.write(data)


class ZipOut:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.files: dict[str, dict[str, Any]] = {}

    @contextmanager
    def entry(self, name: str) -> Iterator[Sink]:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        # A ZipInfo given to open() does not take the archive's level; the attribute is
        # private before Python 3.13 (``compress_level`` there).
        info._compresslevel = self.archive.compresslevel  # type: ignore[attr-defined]
        info.create_system = 3
        info.external_attr = 0o100644 << 16
        with self.archive.open(info, "w") as raw:
            sink = Sink(raw)
            yield sink
            sink.flush()
        self.files[name] = {"sha256": sink.sha.hexdigest(), "bytes": sink.size, "rows": sink.rows}

    def csv(self, name: str, header: Sequence[str]) -> Any:
        return CsvEntry(self, name, header)


class CsvEntry:
    def __init__(self, zipper: ZipOut, name: str, header: Sequence[str]) -> None:
        self._cm = zipper.entry(name)
        self._header = header

    def __enter__(self) -> CsvWriter:
        sink = self._cm.__enter__()
        writer = CsvWriter(sink)
        writer.writer.writerow(self._header)
        return writer

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (OWASP "CSV injection": it starts
    with ``= + - @``, a tab or a carriage return) gets a leading ``'``; numbers, empty cells
    and other text are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.writer = csv.writer(sink, lineterminator="\n")

    def row(self, values: Sequence[Any]) -> None:
        self.writer.writerow(["" if v is None else neutralise(v) for v in values])
        self.sink.rows += 1


async def stream(session: AsyncSession, query: Any) -> Any:
    """Rows of a Core select, fetched YIELD_PER at a time (a server-side cursor on
    PostgreSQL), through the session's connection: no ORM loading per row."""
    conn = await session.connection()
    result = await conn.stream(query.execution_options(yield_per=YIELD_PER))
    async for partition in result.partitions():
        for row in partition:
            yield row


async def rows(session: AsyncSession, query: Any) -> Sequence[Any]:
    """All rows of a small Core select through the session's connection (no ORM)."""
    conn = await session.connection()
    return (await conn.execute(query)).all()
