"""Below Fabric: the Transport PatchGate asks paramiko for, and the fast path for
read-only probes.

``transport_factory`` is handed to ``SSHClient.connect`` through Fabric's
``connect_kwargs`` (paramiko's documented hook): the KEX order from
``PATCHGATE_SSH_KEX``, AES-GCM ciphers first, the known host-key type asked first.

``probe`` runs one read-only command (facts, the reboot-required check) on its own
session channel of the Fabric connection's transport, read with ``select``: no invoke
Runner (three IO threads per command) for the fan-out's probes. Measured in
bench/fanout.py; see docs/design-notes.md. Commands that need sudo's password or change
the host go through Fabric's ``Connection.run``/``sudo`` (connection.py).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from typing import Any

import paramiko
from paramiko.ssh_exception import SSHException

from integrations.packages import CommandOutput
from workflows.errors import CommandFailed, HostUnreachable

TAIL_LINES = 40
_READ = 65536

# paramiko 5 knows curve25519 only by its libssh.org name (and puts the post-quantum
# mlkem768x25519 first): "curve25519-sha256" in the setting must still match.
_KEX_ALIASES = {
    "curve25519-sha256": "curve25519-sha256@libssh.org",
    "curve25519-sha256@libssh.org": "curve25519-sha256",
}

_CIPHERS_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def new_transport(
    sock: Any, kex: Sequence[str], key_types: Sequence[str] = ()
) -> paramiko.Transport:
    """A client Transport offering ``kex`` first (paramiko's other algorithms after)
    and the host-key types in ``key_types`` first."""
    transport = paramiko.Transport(sock)
    options = transport.get_security_options()
    available = list(options.kex)
    preferred: list[str] = []
    for name in kex:
        for alias in (name, _KEX_ALIASES.get(name, name)):
            if alias in available and alias not in preferred:
                preferred.append(alias)
    options.kex = preferred + [k for k in available if k not in preferred]
    # AES-GCM first: no separate MAC, whose check paramiko does byte by byte in Python
    # (~5% of the client CPU per host measured in bench/fanout_profile.py). A server
    # without it negotiates paramiko's next choice (aes128-ctr + hmac-sha2-256).
    ciphers = list(options.ciphers)
    gcm = [c for c in _CIPHERS_FIRST if c in ciphers]
    options.ciphers = gcm + [c for c in ciphers if c not in gcm]
    wanted = []
    for keytype in key_types:
        if keytype == "ssh-rsa" and "rsa-sha2-512" in options.key_types:
            keytype = "rsa-sha2-512"
        if keytype in options.key_types and keytype not in wanted:
            wanted.append(keytype)
    if wanted:
        options.key_types = wanted + [t for t in options.key_types if t not in wanted]
    return transport


def transport_factory(
    kex: Sequence[str], key_types: Sequence[str], timeout: float
) -> Callable[..., paramiko.Transport]:
    def build(sock: Any, **_: Any) -> paramiko.Transport:
        transport = new_transport(sock, kex, key_types)
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        transport.handshake_timeout = timeout
        return transport

    return build


class _Timeout(Exception):
    pass


def probe(
    host: str, transport: paramiko.Transport, line: str, *, timeout: float, open_timeout: float
) -> CommandOutput:
    """Run one read-only command line on a new session channel; stdin closed at once."""
    deadline = time.monotonic() + timeout
    try:
        channel = transport.open_session(timeout=open_timeout)
    except (SSHException, EOFError, OSError) as exc:
        raise HostUnreachable(host, f"connection lost: {exc}") from exc
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        channel.exec_command(line)
        channel.shutdown_write()
        while True:
            while channel.recv_ready():
                out.append(channel.recv(_READ))
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_READ))
            if channel.eof_received or channel.closed:
                # Both streams ended; the exit status follows (or the channel closes).
                if not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            select.select([channel], [], [], min(remaining, 5.0))
        if not channel.status_event.wait(max(deadline - time.monotonic(), 0.0)):
            raise _Timeout
    except _Timeout:
        raise CommandFailed(
            host,
            f"command timed out after {timeout:g}s",
            exit_code=-1,
            output_tail=tail(text(out) + text(err)),
        ) from None
    except (SSHException, EOFError, OSError) as exc:
        raise HostUnreachable(host, f"connection lost: {exc}") from exc
    finally:
        channel.close()
    code = channel.exit_status
    if code < 0 and not transport.is_active():
        raise HostUnreachable(host, "connection lost before the command's exit status")
    return CommandOutput(code, text(out), text(err))


def text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def tail(value: str) -> str:
    return "\n".join(value.splitlines()[-TAIL_LINES:])
