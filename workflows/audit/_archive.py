"""Audit archive files: the gzip'd JSON Lines a prune writes, and their verification.

An archive is a header line (where it starts: the previous checkpoint's seq and hash, or
the genesis), one line per event (its columns, with the body text and both hashes, so it
verifies alone) and a trailer (count, last hash). :func:`verify_archive` checks a file
alone (its chain from its header's start, its trailer) and, given the checkpoints, that
it is the one a checkpoint names (same SHA-256, same last hash).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.audit._chain import canonical_json
from workflows.audit._checkpoints import Checkpoint
from workflows.audit._keys import AuditKeys
from workflows.audit._verify import check_row
from workflows.errors import AuditChainBroken, Conflict, InputError

ARCHIVE_FORMAT = "patchgate-audit-archive/1"


def archive_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:010d}-{last_seq:010d}.jsonl.gz"


def _line(obj: dict[str, Any]) -> bytes:
    return (canonical_json(obj) + "\n").encode("utf-8")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--archive {directory}: not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--archive {directory}: {exc.strerror or exc}") from None


class ArchiveWriter:
    """A gzip'd JSON Lines file written under a temporary name, then settled (synced and
    renamed) or discarded. Its bytes depend only on the lines written (gzip mtime 0)."""

    def __init__(self, directory: Path) -> None:
        self.tmp = directory / f".audit-prune-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        self._raw = open(self.tmp, "wb")  # noqa: SIM115 (closed by settle/discard)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)

    def line(self, obj: dict[str, Any]) -> None:
        self._gz.write(_line(obj))

    def _close(self) -> None:
        if not self._raw.closed:
            self._gz.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()

    def settle(self, final: Path) -> str:
        """Move the file to ``final``; return its SHA-256. An existing file with the same
        bytes is kept (a re-run after a crash); one with other bytes is refused."""
        self._close()
        digest = _sha256_file(self.tmp)
        if final.exists():
            if _sha256_file(final) != digest:
                raise Conflict(f"{final} exists with other contents; move it away, prune again")
            return digest
        os.replace(self.tmp, final)
        _fsync_dir(final.parent)
        return digest

    def discard(self) -> None:
        self._gz.close()
        self._raw.close()
        self.tmp.unlink(missing_ok=True)


# --- verifying ------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    path: Path
    count: int
    prev_seq: int
    prev_hash: str
    last_seq: int
    last_hash: str
    sha256: str
    checkpoint_seq: int | None  # the checkpoint that names this archive, if checked


def _bad(path: Path, reason: str) -> AuditChainBroken:
    return AuditChainBroken(None, f"archive {path.name}: {reason}")


def _archive_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with gzip.open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    raise _bad(path, f"line {number} is not JSON") from None
                if not isinstance(obj, dict):
                    raise _bad(path, f"line {number} is not a JSON object")
                yield number, obj
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _bad(path, f"cannot read it ({exc})") from None


@dataclass(frozen=True)
class _ArchivedRow:
    id: int
    at: dt.datetime
    kind: str
    rollout_id: int | None
    actor: str | None
    body: str
    prev_hash: str
    hash: str
    key_id: str | None


def verify_archive(
    path: Path,
    *,
    checkpoints: Sequence[Checkpoint] | None = None,
    keys: AuditKeys | None = None,
) -> ArchiveResult:
    """Verify an archive file: header, every event's hash and link from the header's
    start, the trailer. With ``checkpoints`` (already signature-checked, e.g. from
    :func:`workflows.audit.verify_database`'s checkpoint chain), the file must be the one a
    checkpoint names: same name, SHA-256, start and last hash."""
    lines = _archive_lines(path)
    header = next(lines, None)
    if header is None or header[1].get("format") != ARCHIVE_FORMAT:
        raise _bad(path, f"no {ARCHIVE_FORMAT} header")
    prev_seq, prev_hash = header[1].get("prev_seq"), header[1].get("prev_hash")
    if not isinstance(prev_seq, int) or not isinstance(prev_hash, str):
        raise _bad(path, "the header has no prev_seq/prev_hash")
    start = Checkpoint(prev_hash=prev_hash, seq=prev_seq)
    hash_, what, seq = prev_hash, start.description, prev_seq
    trailer: dict[str, Any] | None = None
    keyed = False
    for number, obj in lines:
        if trailer is not None:
            raise _bad(path, f"line {number} comes after the trailer")
        if obj.get("end") is True:
            trailer = obj
            continue
        try:
            row = _ArchivedRow(
                id=int(obj["id"]),
                at=dt.datetime.fromisoformat(str(obj["at"])),
                kind=str(obj["kind"]),
                rollout_id=obj["rollout_id"],
                actor=obj["actor"],
                body=str(obj["body"]),
                prev_hash=str(obj["prev_hash"]),
                hash=str(obj["hash"]),
                key_id=None if obj.get("key_id") is None else str(obj["key_id"]),
            )
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"line {number} is not an archived event") from None
        seq += 1
        try:
            keyed = check_row(
                row,
                prev_hash=hash_,
                prev_what=what,
                expected_seq=seq,
                keys=keys,
                keyed_before=keyed,
            )
        except AuditChainBroken as exc:
            raise _bad(path, str(exc)) from None
        hash_, what = row.hash, f"event {row.id}"
    if trailer is None:
        raise _bad(path, "no trailer: the file is truncated")
    if (trailer.get("count"), trailer.get("last_seq"), trailer.get("last_hash")) != (
        seq - prev_seq,
        seq,
        hash_,
    ):
        raise _bad(path, "the trailer does not match the events")
    digest = _sha256_file(path)
    matched: int | None = None
    if checkpoints is not None:
        named = [c for c in checkpoints if c.archive_name == path.name]
        if not named:
            raise _bad(path, "no checkpoint names this file")
        cp = named[0]
        if cp.archive_sha256 != digest:
            raise _bad(path, "its SHA-256 is not the one its checkpoint recorded")
        if (cp.seq, cp.prev_hash, seq - prev_seq) != (seq, hash_, cp.count):
            raise _bad(path, f"it does not end where checkpoint seq {cp.seq} says")
        matched = cp.seq
    return ArchiveResult(
        path=path,
        count=seq - prev_seq,
        prev_seq=prev_seq,
        prev_hash=prev_hash,
        last_seq=seq,
        last_hash=hash_,
        sha256=digest,
        checkpoint_seq=matched,
    )
