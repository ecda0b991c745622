"""One SSH connection to one host: a chain of Fabric ``Connection``s, the jump hosts
first (each the ``gateway=`` of the next, as Fabric builds ``ProxyJump``), the target
last.

Every hop's ``SSHClient`` gets its own ``HostKeyCheck`` (hostkeys.py: strict, against
PatchGate's known-hosts store and the hop's ``UserKnownHostsFile``; never Fabric's
``AutoAddPolicy``), its keys as a paramiko ``AuthStrategy`` (credentials.py) and the
Transport from ``channel.transport_factory`` (KEX order, AES-GCM first), all through
``connect_kwargs``. Fabric ``Connection`` objects are built under one lock (built
concurrently from one ``Config`` they failed about once in 300-1000 hosts); commands
then run in parallel in the pool threads.

``run`` is Fabric's ``Connection.run``; with a sudo password for the host, a line that
starts ``sudo -n `` goes through ``Connection.sudo`` (its ``FailingResponder`` watcher
answers sudo's prompt: the password is written only after sudo asked, never in argv).
``probe`` is the read-only fast path (channel.py). Errors are translated here into
``workflows.errors``:

    OSError/timeout connecting            -> HostUnreachable("cannot connect: ...")
    a jump host cannot reach the next hop -> HostUnreachable("cannot connect: ...")
    SSH negotiation failure               -> HostUnreachable("SSH failed: ...")
    unknown key (no opt-in), changed key  -> HostKeyRejected (from HostKeyCheck)
    authentication refused                -> HostUnreachable("authentication failed: ...")
    connection lost during a command      -> HostUnreachable("connection lost: ...")
    command over its timeout              -> CommandFailed(exit_code=-1, "timed out")
    sudo refused the password             -> CommandFailed(exit_code=1)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fabric
import paramiko
from fabric.runners import Remote
from invoke.exceptions import AuthFailure as SudoRefused
from invoke.exceptions import CommandTimedOut, ThreadException
from paramiko.auth_strategy import AuthFailure
from paramiko.ssh_exception import ChannelException, SSHException

from integrations.packages import CommandOutput
from integrations.ssh.channel import probe, tail, transport_factory
from integrations.ssh.credentials import KeyAuth, KeyChoice
from integrations.ssh.hostkeys import HostKeyCheck
from integrations.ssh.sshconfig import Hop
from workflows.errors import CommandFailed, HostUnreachable

# What sudo -S prints (on stderr) when it wants the password; removed from the output.
SUDO_PROMPT = "[patchgate] sudo password:"

_BUILD_LOCK = threading.Lock()


class StdinClosedRemote(Remote):  # type: ignore[misc]
    """Fabric's remote runner (set through the documented ``runners.remote`` setting)
    that closes the command's stdin as soon as it started, unless a watcher (sudo's
    password responder) may still answer on it. With ``in_stream=False`` invoke starts
    no stdin thread; without this a command reading stdin would wait for input forever
    instead of reading EOF, as it did before Fabric."""

    def send_start_message(self, command: str) -> None:
        super().send_start_message(command)
        if not self.watchers:
            self.channel.shutdown_write()


def fabric_config() -> fabric.Config:
    """The one Fabric ``Config`` every connection shares: no ssh_config loading (the
    executor resolves the user's config itself, sshconfig.py), PatchGate's sudo prompt,
    output captured (not echoed), stdin closed (StdinClosedRemote)."""
    return fabric.Config(
        lazy=True,
        overrides={
            "load_ssh_configs": False,
            "sudo": {"prompt": SUDO_PROMPT},
            "run": {"hide": True, "warn": True, "pty": False, "in_stream": False},
            "runners": {"remote": StdinClosedRemote},
        },
    )


@dataclass(frozen=True)
class HopLogin:
    """Everything needed to log in to one hop."""

    hop: Hop
    check: HostKeyCheck
    choice: KeyChoice


class SshConnection:
    """Open once, run commands, close. Not thread-safe: one pool thread uses it at a time."""

    def __init__(
        self,
        host: str,
        logins: Sequence[HopLogin],
        *,
        config: fabric.Config,
        kex: Sequence[str],
        connect_timeout: float,
        sudo_password: str | None = None,
    ) -> None:
        self.host = host
        self.logins = tuple(logins)
        self._config = config
        self._kex = tuple(kex)
        self._connect_timeout = connect_timeout
        self._sudo_password = sudo_password
        self._chain: list[fabric.Connection] = []

    @property
    def target(self) -> HopLogin:
        return self.logins[-1]

    @property
    def accepted(self) -> tuple[str, paramiko.PKey] | None:
        """The target's key, if it was unknown and accepted (inventory opt-in)."""
        return self.target.check.accepted

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._chain[-1].transport if self._chain else None

    # --- connecting ------------------------------------------------------------------------

    def _build(self) -> list[fabric.Connection]:
        chain: list[fabric.Connection] = []
        with _BUILD_LOCK:
            for login in self.logins:
                hop = login.hop
                timeout = hop.connect_timeout or self._connect_timeout
                known = login.check.known_keys() or {}
                conn = fabric.Connection(
                    hop.address,
                    user=hop.user,
                    port=hop.port,
                    config=self._config,
                    gateway=chain[-1] if chain else False,
                    connect_timeout=max(int(timeout), 1),
                    connect_kwargs={
                        "auth_strategy": KeyAuth(hop.user, login.choice),
                        "transport_factory": transport_factory(self._kex, list(known), timeout),
                        "banner_timeout": timeout,
                        "auth_timeout": timeout,
                        "channel_timeout": timeout,
                    },
                )
                conn.client.set_missing_host_key_policy(login.check)
                chain.append(conn)
        return chain

    def open(self) -> None:
        try:
            self._chain = self._build()
            for index, (login, conn) in enumerate(zip(self.logins, self._chain, strict=True)):
                self._open_hop(index, login, conn)
        except BaseException:
            self.close()
            raise

    def _where(self, index: int) -> str:
        return (
            "" if index == len(self.logins) - 1 else f" (jump host {self.logins[index].hop.label})"
        )

    def _open_hop(self, index: int, login: HopLogin, conn: fabric.Connection) -> None:
        hop, at = login.hop, self._where(index)
        try:
            conn.open()
        except AuthFailure as exc:
            tried = ", ".join(login.choice.describe())
            if not login.choice.keys and not login.choice.agent:
                tried = (
                    "no key to offer (set private_key_file, an IdentityFile, a default "
                    "identity in ~/.ssh, or ssh_agent with a loaded agent)"
                    + (f"; {tried}" if tried else "")
                )
            raise HostUnreachable(
                self.host,
                f"authentication failed{at} for {hop.user}@{hop.address}:{hop.port}; "
                f"keys tried: {tried}",
            ) from exc
        except ChannelException as exc:
            before = self.logins[index - 1].hop.label if index else "?"
            raise HostUnreachable(
                self.host,
                f"cannot connect{at}: jump host {before} could not open "
                f"{hop.address}:{hop.port}: {exc}",
            ) from exc
        except (SSHException, EOFError) as exc:
            raise HostUnreachable(self.host, f"SSH failed{at}: {exc}") from exc
        except OSError as exc:
            raise HostUnreachable(self.host, f"cannot connect{at}: {exc}") from exc
        if hop.server_alive_interval and conn.transport is not None:
            conn.transport.set_keepalive(hop.server_alive_interval)

    def close(self) -> None:
        for conn in reversed(self._chain):
            conn.close()
        self._chain = []

    # --- commands ----------------------------------------------------------------------------

    def _connected(self) -> fabric.Connection:
        if not self._chain or not self._chain[-1].is_connected:
            raise HostUnreachable(self.host, "connection lost: not connected")
        return self._chain[-1]

    def probe(self, line: str, *, timeout: float) -> CommandOutput:
        """A read-only command on its own channel of this connection's transport."""
        conn = self._connected()
        assert conn.transport is not None
        return probe(
            self.host, conn.transport, line, timeout=timeout, open_timeout=self._connect_timeout
        )

    def run(self, line: str, *, timeout: float) -> CommandOutput:
        """Run one (already quoted) command line through Fabric; blocking. Exit code -1:
        the command ended without an exit status on a connection still up."""
        conn = self._connected()
        kwargs: dict[str, Any] = {"timeout": timeout, "encoding": "utf-8"}
        started = time.monotonic()
        try:
            if self._sudo_password and line.startswith("sudo -n "):
                result = conn.sudo(line[len("sudo -n ") :], password=self._sudo_password, **kwargs)
            else:
                result = conn.run(line, **kwargs)
        except CommandTimedOut as exc:
            raise _timed_out(self.host, timeout, exc.result.stdout + exc.result.stderr) from None
        except SudoRefused:
            raise CommandFailed(
                self.host, "sudo refused the password (sudo_password)", exit_code=1
            ) from None
        except (ThreadException, SSHException, EOFError, OSError) as exc:
            raise HostUnreachable(self.host, f"connection lost: {_reason(exc)}") from exc
        code = result.exited
        if code < 0 and time.monotonic() - started >= timeout:
            # Invoke's timer closes the channel from its own thread and judges "timed out" by
            # that thread having ended: the command's thread can wake first and see a plain
            # channel closed without an exit status. Past the timeout, that is the timeout.
            raise _timed_out(self.host, timeout, result.stdout + result.stderr)
        if code < 0 and not conn.is_connected:
            raise HostUnreachable(self.host, "connection lost before the command's exit status")
        stderr = result.stderr
        if self._sudo_password:
            stderr = stderr.replace(SUDO_PROMPT, "", 1)
        return CommandOutput(code, result.stdout, stderr)


def _timed_out(host: str, timeout: float, output: str) -> CommandFailed:
    return CommandFailed(
        host, f"command timed out after {timeout:g}s", exit_code=-1, output_tail=tail(output)
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ThreadException):
        return "; ".join(str(e.value) for e in exc.exceptions) or "IO thread failed"
    return str(exc)
