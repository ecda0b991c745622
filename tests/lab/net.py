"""Bounded waits on sockets, and the lab's address slot.

Several test sessions may run labs on one machine at once (CI jobs, engineers). Each
session takes one of 16 slots with an exclusive lock held for its lifetime; the slot
picks the second octet of every lab address (hosts ``127.S.30.K``, the repository
``127.S.31.1``), so two sessions never share an sshd or a repository address. Slot 0
keeps the historical ``127.0.30.K``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from typing import IO

SLOTS = 16
_LOCK_DIR = "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
_held: list[IO[bytes]] = []


def lab_octet() -> int:
    """This process's lab slot as an address octet (0, or 101-115); taken on first use,
    released when the process exits."""
    if _held:
        return _slot_octet(int(_held[0].name.rsplit("-", 1)[1]))
    for slot in range(SLOTS):
        handle = open(f"{_LOCK_DIR}/patchgate-lab-slot-{slot}", "wb")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return _slot_octet(slot)
    raise RuntimeError(f"all {SLOTS} lab slots are taken by other test sessions")


def _slot_octet(slot: int) -> int:
    return 0 if slot == 0 else 100 + slot


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(address: str, port: int, *, timeout: float, banner: bool = False) -> None:
    """Wait until address:port accepts (and, for sshd, sends its banner); bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if not banner:
                    return
                sock.settimeout(2)
                if sock.recv(8).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{address}:{port} did not answer within {timeout:.0f}s")


def wait_port_closed(address: str, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(address, port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{address}:{port} still open after {timeout:.0f}s")
