"""The recording executor's state on disk: a snapshot and an append-only journal.

``<state>`` is a JSON snapshot of the whole simulated world (with its ``generation``);
``<state>.journal`` holds one JSON line per change since that snapshot: its first line
``{"generation": G}``, then records of two kinds, replayed in order on load:

- ``{"host": NAME, "sim": {...}}``: the host's whole record (its installed versions,
  boot id and the operations it ran) as it is after the change;
- ``{"world": {...}}``: fields of the world other than its hosts (repository, injected
  failures, ...), as they are after the change.

An apply writes one line (its host's record: constant in the fleet's size). The
snapshot is rewritten only when the journal has outgrown it (and ``compact_min``), so
the bytes written per change stay constant however large the fleet is.

Crash safety: a line is one ``write`` to a file opened for appending, so a process
killed after it returned loses nothing; a line torn by a crash (no newline at the end
of the file) is ignored with a warning on load and cut off before the next append.
Compaction writes the new snapshot (generation G+1) and then a fresh journal, each to
a file of its own renamed into place: a crash between the two leaves a snapshot that
holds everything and a journal of generation G, which is ignored.

Several processes (a leader, a standby, a test, zone workers) share the files: every
write and every load holds an exclusive (or shared) ``flock`` on ``<state>.lock``, and
each process reads only the journal lines it has not seen yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from integrations.testing.simstate import SimHost, SimState

log = logging.getLogger(__name__)

# The journal is folded into the snapshot once it is larger than the snapshot and than
# this many bytes: the snapshot's rewrite then costs at most about one journal line per
# change, whatever the fleet's size.
COMPACT_MIN = 1 << 20


def world_of(state: SimState) -> dict[str, Any]:
    """The world's fields other than its hosts, as the journal's ``world`` record."""
    data = asdict(state)
    data.pop("hosts")
    return data


def state_from(data: dict[str, Any]) -> SimState:
    data = dict(data)
    data.pop("generation", None)
    hosts = {name: SimHost(**h) for name, h in data.pop("hosts", {}).items()}
    return SimState(hosts=hosts, **data)


def apply_record(state: SimState, record: dict[str, Any]) -> None:
    """One journal record onto the world (KeyError/TypeError: not a record)."""
    if "host" in record:
        state.hosts[record["host"]] = SimHost(**record["sim"])
    else:
        for key, value in record["world"].items():
            if key == "hosts" or not hasattr(state, key):
                raise KeyError(key)
            setattr(state, key, value)


class StateStore:
    """The snapshot and journal of one state file, as one process sees them."""

    def __init__(self, path: Path, *, compact_min: int = COMPACT_MIN) -> None:
        self.path = path
        self.journal = path.with_name(path.name + ".journal")
        self.compact_min = compact_min
        self.bytes_written = 0  # every byte this store wrote (journal and snapshots)
        self.compactions = 0
        self._thread = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self._generation = 0
        self._snapshot: tuple[int, int, int] | None = None  # (inode, mtime_ns, size)
        self._snapshot_size = 0
        self._journal_inode: int | None = None
        self._offset = 0  # bytes of the journal replayed (complete lines only)
        self._torn: tuple[int, int] | None = None  # (inode, offset) of a torn line warned

    # --- locking ---------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, *, shared: bool = False) -> Iterator[None]:
        """The file lock, re-entrant within this store (one process may nest it)."""
        with self._thread:
            if self._depth == 0:
                self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None

    # --- reading ---------------------------------------------------------------------

    def _stat(self, path: Path) -> os.stat_result | None:
        try:
            return path.stat()
        except FileNotFoundError:
            return None

    def changed(self) -> bool:
        """Whether another process wrote since this store last read or wrote (two stats)."""
        snap = self._stat(self.path)
        if snap is None or (snap.st_ino, snap.st_mtime_ns, snap.st_size) != self._snapshot:
            return snap is not None
        journal = self._stat(self.journal)
        if journal is None:
            return False
        return journal.st_ino != self._journal_inode or journal.st_size > self._offset

    def load(self) -> SimState:
        """The snapshot with its journal replayed."""
        with self.locked(shared=self._depth == 0):
            return self._load()

    def _load(self) -> SimState:
        snap = self.path.stat()
        data = json.loads(self.path.read_text())
        self._generation = int(data.get("generation", 0))
        self._snapshot = (snap.st_ino, snap.st_mtime_ns, snap.st_size)
        self._snapshot_size = snap.st_size
        state = state_from(data)
        self._journal_inode, self._offset = None, 0
        self._replay(state)
        return state

    def catch_up(self, state: SimState) -> SimState:
        """``state`` with what other processes wrote since: the journal's new lines, or
        everything read again after a compaction. Call under the lock."""
        snap = self._stat(self.path)
        if snap is None:
            return state
        if (snap.st_ino, snap.st_mtime_ns, snap.st_size) != self._snapshot:
            return self._load()
        journal = self._stat(self.journal)
        if journal is not None and self._journal_inode not in (None, journal.st_ino):
            return self._load()
        self._replay(state)
        return state

    def _replay(self, state: SimState) -> None:
        """The journal's whole lines this store has not replayed yet, onto ``state``.
        Called under the lock, so no line is being written: one without its newline
        was torn by a crash."""
        try:
            with open(self.journal, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                if inode != self._journal_inode:
                    self._journal_inode, self._offset = inode, 0
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end < len(data) and self._torn != (inode, self._offset + end):
            self._torn = (inode, self._offset + end)
            log.warning(
                "%s: ignoring a torn last line (%d bytes) left by a crash",
                self.journal,
                len(data) - end,
            )
        for raw in data[:end].splitlines():
            first, self._offset = self._offset == 0, self._offset + len(raw) + 1
            try:
                record = json.loads(raw)
                if first:
                    if int(record["generation"]) != self._generation:
                        # A journal from before the last compaction (a crash between the
                        # snapshot's rename and the journal's): all in the snapshot.
                        self._journal_inode, self._offset = None, 0
                        return
                    continue
                apply_record(state, record)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s: ignoring a bad journal line (%s)", self.journal, exc)

    # --- writing ---------------------------------------------------------------------

    def append(self, state: SimState, record: dict[str, Any]) -> SimState:
        """Write one change (and apply it to ``state`` after what others wrote); returns
        the state, which is a new object when another process compacted meanwhile."""
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self.locked():
            state = self.catch_up(state)
            apply_record(state, record)  # after the others' changes, as in the file
            if self._stat(self.path) is None:  # no snapshot yet: the first one
                self._compact(state)
                return state
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size == 0 or self._journal_inode != os.fstat(fd).st_ino:
                    os.close(fd)
                    self._new_journal()
                    fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
                    size = os.fstat(fd).st_size
                elif size > self._offset:  # a torn line (catch_up read every whole one)
                    os.ftruncate(fd, self._offset)
                    size = self._offset
                os.write(fd, line)
            finally:
                os.close(fd)
            self.bytes_written += len(line)
            self._offset = size + len(line)
            if self._offset > max(self.compact_min, self._snapshot_size):
                self._compact(state)
        return state

    def save(self, state: SimState) -> None:
        """The whole world as the new snapshot (and an empty journal)."""
        with self.locked():
            self._compact(state)

    def _write_atomically(self, path: Path, text: str) -> int:
        # A name of its own: several processes (a leader and a standby) and threads may
        # write the same files, and a shared temp name let one rename the other's.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        data = text.encode()
        tmp.write_bytes(data)
        tmp.replace(path)
        self.bytes_written += len(data)
        return len(data)

    def _new_journal(self) -> None:
        self._write_atomically(self.journal, json.dumps({"generation": self._generation}) + "\n")
        journal = self.journal.stat()
        self._journal_inode, self._offset = journal.st_ino, journal.st_size

    def _compact(self, state: SimState) -> None:
        self._generation += 1
        # Shallow: json encodes the hosts' dicts as they are (asdict copied every one), and
        # without an indent, so the C encoder writes it: a 10,000-host world is no longer
        # a half-second stretch of serve's event loop.
        data = {f.name: getattr(state, f.name) for f in fields(state)}
        data["hosts"] = {name: vars(host) for name, host in state.hosts.items()}
        data["generation"] = self._generation
        self._snapshot_size = self._write_atomically(self.path, json.dumps(data, sort_keys=True))
        snap = self.path.stat()
        self._snapshot = (snap.st_ino, snap.st_mtime_ns, snap.st_size)
        self._new_journal()
        self.compactions += 1


def load_state(path: Path) -> SimState:
    """The world in a state file: its snapshot with its journal replayed."""
    return StateStore(path).load()
