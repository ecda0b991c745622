"""The fan-out baseline: PatchGate's SSH executor as it was before issue 17 (paramiko
channels straight on a Transport, no Fabric), copied here for bench/fanout.py only. The
product's executor (integrations/ssh/) is built on Fabric; this file is not imported by
it. ``fan_out`` runs one command on many hosts the way the old executor did: one
connection per host opened, used and closed in a thread pool.

The original module docstring follows.

One SSH connection to one host, straight on paramiko's Transport.

``SshConnection.open`` does TCP connect (or a ``direct-tcpip`` channel through the jump
host), key exchange with the configured KEX order, strict host-key verification against
the executor's parsed known_hosts and public-key auth (the executor's parsed key, or
ssh-agent if the inventory says so). ``run`` executes one command line on a new session
channel and reads stdout/stderr with ``select`` until the exit status, bounded by the
command's timeout.

Why not Fabric's ``Connection.run``: invoke's Runner starts three IO threads per command
and Fabric re-merges a whole invoke ``Config`` per Connection; together about half of
the executor's client CPU per host in bench/fanout_profile.py, for features the executor
does not use (pty, watchers, echo). Errors are translated here into ``workflows.errors``:

    OSError/timeout connecting        -> HostUnreachable("cannot connect: ...")
    SSH negotiation failure           -> HostUnreachable("SSH failed: ...")
    unknown key (no opt-in)           -> HostKeyRejected (from StrictPolicy)
    known host, different key         -> HostKeyRejected("host key CHANGED ...")
    authentication refused            -> HostUnreachable("authentication failed: ...")
    connection lost during a command  -> HostUnreachable("connection lost: ...")
    command over its timeout          -> CommandFailed(exit_code=-1, "timed out")
"""

from __future__ import annotations

import getpass
import select
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from paramiko.ssh_exception import AuthenticationException, ChannelException, SSHException

from integrations.packages import CommandOutput
from integrations.ssh.credentials import load_key
from integrations.ssh.hostkeys import KnownHosts, fingerprint, key_name
from workflows.errors import CommandFailed, HostKeyRejected, HostUnreachable, InputError

TAIL_LINES = 40
_READ = 65536
# What sudo -S prints (on stderr) when it wants the password; removed from the output.
SUDO_PROMPT = "[patchgate] sudo password:"

# paramiko 5 knows curve25519 only by its libssh.org name (and puts the post-quantum
# mlkem768x25519 first): "curve25519-sha256" in the setting must still match.
_KEX_ALIASES = {
    "curve25519-sha256": "curve25519-sha256@libssh.org",
    "curve25519-sha256@libssh.org": "curve25519-sha256",
}

_CIPHERS_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in; ``policy`` decides about a host with no known key."""

    label: str  # the inventory name (or the jump host spec), for messages
    address: str
    port: int
    user: str
    policy: StrictPolicy

    @property
    def key_name(self) -> str:
        return key_name(self.address, self.port)


@dataclass(frozen=True)
class Credentials:
    pkey: paramiko.PKey | None
    agent: bool


def parse_jump(spec: str, default_user: str) -> tuple[str, str, int]:
    """``[user@]addr[:port]`` -> (user, addr, port)."""
    user, _, rest = spec.rpartition("@")
    addr, _, port = rest.partition(":")
    if not addr or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise InputError(f"jump host {spec!r}: expected [user@]address[:port]")
    return user or default_user, addr, int(port or 22)


def default_user() -> str:
    return getpass.getuser()


def new_transport(sock: Any, kex: Sequence[str]) -> paramiko.Transport:
    """A client Transport offering ``kex`` first (paramiko's other algorithms after)."""
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
    return transport


class SshConnection:
    """Open once, run commands, close. Not thread-safe: one pool thread uses it at a time."""

    def __init__(
        self,
        target: Endpoint,
        credentials: Credentials,
        known: KnownHosts,
        *,
        kex: Sequence[str],
        connect_timeout: float,
        jump: Endpoint | None = None,
        sudo_password: str | None = None,
    ) -> None:
        self.target = target
        self.jump = jump
        self.credentials = credentials
        self._known = known
        self._kex = tuple(kex)
        self._connect_timeout = connect_timeout
        self._sudo_password = sudo_password
        self._transport: paramiko.Transport | None = None
        self._jump_transport: paramiko.Transport | None = None

    @property
    def host(self) -> str:
        return self.target.label

    # --- connecting ------------------------------------------------------------------------

    def open(self) -> None:
        try:
            if self.jump is None:
                sock: Any = self._tcp(self.target)
            else:
                self._jump_transport = self._handshake(self._tcp(self.jump), self.jump)
                sock = self._through_jump(self._jump_transport)
            self._transport = self._handshake(sock, self.target)
        except BaseException:
            self.close()
            raise

    def _tcp(self, end: Endpoint) -> socket.socket:
        try:
            sock = socket.create_connection((end.address, end.port), self._connect_timeout)
        except OSError as exc:
            where = "" if end is self.target else f" (jump host {end.label})"
            raise HostUnreachable(self.host, f"cannot connect{where}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _through_jump(self, jump: paramiko.Transport) -> paramiko.Channel:
        target = (self.target.address, self.target.port)
        try:
            return jump.open_channel(
                "direct-tcpip", target, ("127.0.0.1", 0), timeout=self._connect_timeout
            )
        except (ChannelException, SSHException, EOFError, OSError) as exc:
            assert self.jump is not None
            raise HostUnreachable(
                self.host,
                f"cannot connect: jump host {self.jump.label} could not open "
                f"{self.target.address}:{self.target.port}: {exc}",
            ) from exc

    def _handshake(self, sock: Any, end: Endpoint) -> paramiko.Transport:
        transport = new_transport(sock, self._kex)
        transport.banner_timeout = self._connect_timeout
        transport.auth_timeout = self._connect_timeout
        transport.handshake_timeout = self._connect_timeout
        known = self._known.lookup(end.key_name)
        if known:
            # Ask for the key type we know first (as OpenSSH and paramiko's client do).
            keytype = next(iter(known))
            options = transport.get_security_options()
            if keytype == "ssh-rsa" and "rsa-sha2-512" in options.key_types:
                keytype = "rsa-sha2-512"
            options.key_types = [keytype] + [t for t in options.key_types if t != keytype]
        try:
            try:
                transport.start_client(timeout=self._connect_timeout)
            except (SSHException, EOFError, OSError) as exc:
                raise HostUnreachable(self.host, f"SSH failed{_at(end, self)}: {exc}") from exc
            self._verify(transport.get_remote_server_key(), end, known)
            self._authenticate(transport, end)
        except BaseException:
            transport.close()
            raise
        return transport

    def _verify(
        self, key: paramiko.PKey, end: Endpoint, known: dict[str, paramiko.PKey] | None
    ) -> None:
        if not known:
            end.policy.missing_host_key(None, end.key_name, key)  # refuses, or records
            return
        expected = known.get(key.get_name())
        if expected is None or expected != key:
            expected = expected or next(iter(known.values()))
            raise HostKeyRejected(
                self.host,
                f"host key CHANGED for {end.key_name}{_at(end, self)}: offered "
                f"{key.get_name()} {fingerprint(key)}, expected {fingerprint(expected)}; "
                "refusing to connect",
            )

    def _authenticate(self, transport: paramiko.Transport, end: Endpoint) -> None:
        keys: list[paramiko.PKey] = []
        agent: paramiko.Agent | None = None
        if self.credentials.pkey is not None:
            keys.append(self.credentials.pkey)
        if self.credentials.agent:
            agent = paramiko.Agent()
            keys.extend(agent.get_keys())
        try:
            if not keys:
                raise HostUnreachable(
                    self.host,
                    "authentication failed: no key to offer (set private_key_file, or "
                    "ssh_agent with a loaded agent)",
                )
            failure: Exception | None = None
            for key in keys:
                try:
                    transport.auth_publickey(end.user, key)
                    if transport.is_authenticated():
                        return
                except AuthenticationException as exc:
                    failure = exc
                except (SSHException, EOFError, OSError) as exc:
                    raise HostUnreachable(
                        self.host, f"SSH failed{_at(end, self)} during authentication: {exc}"
                    ) from exc
            raise HostUnreachable(
                self.host,
                f"authentication failed{_at(end, self)} for {end.user}: {failure}",
            ) from failure
        finally:
            if agent is not None:
                agent.close()

    def close(self) -> None:
        for transport in (self._transport, self._jump_transport):
            if transport is not None:
                transport.close()
        self._transport = self._jump_transport = None

    # --- commands ----------------------------------------------------------------------------

    def run(self, line: str, *, timeout: float) -> CommandOutput:
        """Run one (already quoted) command line; blocking. Exit code -1: the command
        ended without an exit status (killed by a signal) on a connection still up.

        With a sudo password for the host, a line starting ``sudo -n `` becomes
        ``sudo -S -p PROMPT``; the password is sent once, only after sudo printed PROMPT
        on stderr (so a sudoers rule without a password never leaves it on the
        command's stdin), and stdin is closed right after. No other command gets it."""
        if self._transport is None or not self._transport.is_active():
            raise HostUnreachable(self.host, "connection lost: not connected")
        password = None
        if self._sudo_password and line.startswith("sudo -n "):
            line = f"sudo -S -p '{SUDO_PROMPT}' " + line[len("sudo -n ") :]
            password = (self._sudo_password + "\n").encode()
        deadline = time.monotonic() + timeout
        try:
            channel = self._transport.open_session(timeout=self._connect_timeout)
        except (SSHException, EOFError, OSError) as exc:
            raise HostUnreachable(self.host, f"connection lost: {exc}") from exc
        try:
            return self._exchange(channel, line, password, deadline, timeout)
        finally:
            channel.close()

    def _exchange(
        self,
        channel: paramiko.Channel,
        line: str,
        password: bytes | None,
        deadline: float,
        timeout: float,
    ) -> CommandOutput:
        out: list[bytes] = []
        err: list[bytes] = []
        prompt = SUDO_PROMPT.encode()
        try:
            channel.exec_command(line)
            if password is None:
                channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    out.append(channel.recv(_READ))
                while channel.recv_stderr_ready():
                    err.append(channel.recv_stderr(_READ))
                if password is not None and prompt in b"".join(err):
                    joined = b"".join(err)
                    err = [joined.replace(prompt, b"", 1)]
                    channel.sendall(password)
                    channel.shutdown_write()  # a second prompt (wrong password) reads EOF
                    password = None
                if channel.eof_received or channel.closed:
                    # Both streams ended; the exit status follows (or the channel closes).
                    if not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Timeout
                select.select([channel], [], [], min(remaining, 5.0))
            remaining = max(deadline - time.monotonic(), 0.0)
            if not channel.status_event.wait(remaining):
                raise _Timeout
        except _Timeout:
            raise CommandFailed(
                self.host,
                f"command timed out after {timeout:g}s",
                exit_code=-1,
                output_tail=_tail(_text(out) + _text(err)),
            ) from None
        except (SSHException, EOFError, OSError) as exc:
            raise HostUnreachable(self.host, f"connection lost: {exc}") from exc
        code = channel.exit_status
        if code < 0 and not (self._transport is not None and self._transport.is_active()):
            raise HostUnreachable(self.host, "connection lost before the command's exit status")
        return CommandOutput(code, _text(out), _text(err))


class _Timeout(Exception):
    pass


def _at(end: Endpoint, conn: SshConnection) -> str:
    return "" if end is conn.target else f" (jump host {end.label})"


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])


# --- the old executor's StrictPolicy (integrations/ssh/hostkeys.py before issue 17) -----


class StrictPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuses unknown keys, unless this connection's host opted in (then records it)."""

    def __init__(self, known: KnownHosts, *, host: str, accept_new: bool) -> None:
        self.known = known
        self.host = host
        self.accept_new = accept_new
        self.accepted: tuple[str, paramiko.PKey] | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient | None, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise HostKeyRejected(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint(key)} for {hostname} "
                "(not in known_hosts; add it, or set accept_new_host_key for this host)",
            )
        self.known.add(hostname, key)
        self.accepted = (hostname, key)


def fan_out(
    hosts: Sequence[tuple[str, str, int, str]],
    *,
    key_file: Path,
    known_hosts: Path,
    command: str,
    concurrency: int,
    kex: Sequence[str] = ("curve25519-sha256",),
) -> list[CommandOutput | BaseException]:
    """(name, address, port, user) each: connect, run ``command``, close; in a pool."""
    known = KnownHosts(known_hosts)
    pkey = load_key("bench", str(key_file), None)

    def one(host: tuple[str, str, int, str]) -> CommandOutput | BaseException:
        name, addr, port, user = host
        target = Endpoint(name, addr, port, user, StrictPolicy(known, host=name, accept_new=False))
        conn = SshConnection(
            target, Credentials(pkey=pkey, agent=False), known, kex=kex, connect_timeout=15
        )
        try:
            conn.open()
            return conn.run(command, timeout=60)
        except Exception as exc:  # a bench counts failures, it does not stop at one
            return exc
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, hosts))
