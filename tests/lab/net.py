"""Bounded waits on sockets."""

from __future__ import annotations

import socket
import time


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
