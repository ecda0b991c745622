"""SshExecutor: the Executor port over SSH (Fabric ``Connection`` on paramiko).

- One connection per host per step, closed after. ``Connection`` objects are built on
  the event-loop thread (built concurrently from one Config they failed ~1/500 here);
  all blocking paramiko work runs in one ThreadPoolExecutor sized
  ``PATCHGATE_SSH_CONCURRENCY``.
- Host keys: known_hosts parsed once (``KnownHosts``), shared by a strict policy.
  Keys accepted at first contact (inventory opt-in) are stored in ``known_host_keys``
  and audited; a changed key is always refused.
- Package commands come from ``integrations.packages`` drivers (``Command.shell()`` is
  the one quoting point). ``apply`` and ``rollback`` run detached on the host (setsid
  nohup) writing ``exit``/``output`` under ``/var/lib/patchgate/ops/<op_id>/``, then
  are polled; ``apply_status`` reads the same files back after a restart.
- paramiko/invoke/socket errors become ``workflows.errors`` here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko
import sqlalchemy as sa
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut, UnexpectedExit
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    NoValidConnectionsError,
    SSHException,
)

from integrations.advisories.hostdata import read_host_advisories
from integrations.packages import Command, CommandOutput, PackageDriver, driver_for
from integrations.ssh.hostkeys import KnownHosts, StrictPolicy, fingerprint, key_name
from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import (
    CommandFailed,
    ExecutorError,
    HostKeyRejected,
    HostUnreachable,
)
from workflows.models import KnownHostKey
from workflows.ports import (
    ApplyResult,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    Preflight,
    RollbackResult,
    Simulation,
    UpgradablePackage,
)

T = TypeVar("T")

OPS_DIR = "/var/lib/patchgate/ops"
MATERIAL_DIR = "/var/lib/patchgate/rollback"
TAIL_LINES = 40
_OP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Start a command detached from the SSH session; its exit code lands in $d/exit.
# Refuses to start the same op twice (the op dir exists): prints EXISTS.
_START = r"""
d=$1; shift; before=$1; shift
mkdir -p -- "$d" || exit 2
if ! mkdir -- "$d/lock" 2>/dev/null; then echo EXISTS; exit 0; fi
printf '%s\n' "$before" > "$d/before"
cd / || exit 2
setsid nohup sh -c '
  d=$1; shift
  "$@" > "$d/output" 2>&1
  echo $? > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit"
' patchgate-op "$d" "$@" </dev/null >/dev/null 2>&1 &
echo STARTED
"""

# Read an op back: NOOP (never started), RUNNING, or EXIT n + the output's tail.
_STATUS = r"""
d=$1
if [ ! -d "$d" ]; then echo NOOP; exit 0; fi
if [ ! -e "$d/exit" ]; then echo RUNNING; exit 0; fi
echo "EXIT $(cat "$d/exit")"
echo "--before"; cat "$d/before" 2>/dev/null
echo "--output"; tail -n 40 "$d/output" 2>/dev/null
"""

_FACTS = r"""
[ -r /etc/os-release ] && . /etc/os-release
echo "id=${ID:-unknown}"
echo "version=${VERSION_ID:-unknown}"
echo "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
echo "kernel=$(uname -r)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
for pm in apt-get dnf yum zypper; do
  if command -v "$pm" >/dev/null 2>&1; then echo "pm=$pm"; break; fi
done
"""

_UNAVAILABLE = r"""
for s in "$@"; do
  apt-cache show --no-all-versions -- "$s" >/dev/null 2>&1 || echo "UNAVAILABLE $s"
done
exit 0
"""

_REBOOT = (
    "sleep 1; if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; "
    "then systemctl reboot; else shutdown -r now; fi"
)


@dataclass(frozen=True)
class SshOptions:
    known_hosts: Path | None = Path("~/.ssh/known_hosts")
    concurrency: int = 50
    command_timeout: float = 1800.0
    connect_timeout: float = 15.0
    reboot_timeout: float = 600.0
    kex: tuple[str, ...] = (
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
    )
    poll_interval: float = 0.5
    lock_retries: int = 4


def _secret(host: InventoryHost, name: str) -> str | None:
    value = host.vars.get(name)
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


class SshExecutor:
    """Works on hosts over SSH. ``db`` stores host keys accepted at first contact."""

    def __init__(
        self,
        options: SshOptions,
        *,
        db: Database | None = None,
        clock: Callable[[], Any] | None = None,
    ) -> None:
        self.options = options
        self.db = db
        self.known = KnownHosts(options.known_hosts)
        self._pool = ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="patchgate-ssh"
        )
        # A template only: each Connection gets its own clone. Building a Connection
        # re-merges its Config, so a Config shared with connections running in the pool
        # raced (AttributeError 'runners'/'gateway': 26 of 500 hosts in bench/fanout.py).
        self._config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        self._db_loaded: set[str] = set()
        self._clock = clock
        # Private keys parsed once per executor (3 parse attempts per connection otherwise).
        self._keys: dict[tuple[str, str | None], paramiko.PKey] = {}
        self._keys_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- transport ---------------------------------------------------------------------------

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _transport_factory(self, sock: Any, **kwargs: Any) -> paramiko.Transport:
        transport = paramiko.Transport(sock, **kwargs)
        options = transport.get_security_options()
        available = list(options.kex)
        preferred: list[str] = []
        for name in self.options.kex:
            # paramiko knows curve25519 only by its libssh.org name (and puts the
            # post-quantum mlkem768x25519 first): "curve25519-sha256" must still match.
            for alias in (name, _KEX_ALIASES.get(name, name)):
                if alias in available and alias not in preferred:
                    preferred.append(alias)
        options.kex = preferred + [k for k in available if k not in preferred]
        return transport

    async def _load_db_keys(self, host: InventoryHost) -> None:
        name = key_name(host.connect_address, host.port)
        if self.db is None or name in self._db_loaded:
            return
        async with read_only(self.db) as session:
            rows = (
                await session.scalars(sa.select(KnownHostKey).where(KnownHostKey.name == name))
            ).all()
        for row in rows:
            key = paramiko.PKey.from_type_string(row.key_type, _b64(row.key_base64))
            self.known.add(name, key)
        self._db_loaded.add(name)

    def _connection(self, host: InventoryHost) -> tuple[Connection, StrictPolicy]:
        """Build (not open) a Connection; called on the event-loop thread only."""
        connect_kwargs = self._connect_kwargs(host)
        gateway = None
        if host.jump_host:
            gateway = self._gateway(host, connect_kwargs, self._config.clone())
        conn = Connection(
            host.connect_address,
            user=host.user,
            port=host.port,
            config=self._config.clone(),
            gateway=gateway,
            connect_timeout=int(self.options.connect_timeout),
            connect_kwargs=connect_kwargs,
        )
        # Share the executor's parsed known_hosts (paramiko reads _system_host_keys only).
        conn.client._system_host_keys = self.known.keys
        policy = StrictPolicy(self.known, host=host.name, accept_new=host.accept_new_host_key)
        conn.client.set_missing_host_key_policy(policy)
        return conn, policy

    def _connect_kwargs(self, host: InventoryHost) -> dict[str, Any]:
        """paramiko ``SSHClient.connect`` arguments for a host (no secret is logged)."""
        connect_kwargs: dict[str, Any] = {
            "look_for_keys": False,
            "allow_agent": bool(host.vars.get("ssh_agent", False)),
            "transport_factory": self._transport_factory,
            "banner_timeout": self.options.connect_timeout,
            "auth_timeout": self.options.connect_timeout,
        }
        passphrase = _secret(host, "ssh_key_passphrase")
        if host.private_key_file:
            connect_kwargs["pkey"] = self._private_key(host, passphrase)
        return connect_kwargs

    def _gateway(
        self, host: InventoryHost, connect_kwargs: dict[str, Any], config: Config
    ) -> Connection:
        """The jump host (``[user@]addr[:port]``): same key and options, strict host key
        (never accepted at first contact), the target reached through its direct-tcpip."""
        assert host.jump_host
        user, _, rest = host.jump_host.rpartition("@")
        addr, _, port = rest.partition(":")
        gateway = Connection(
            addr,
            user=user or host.user,
            port=int(port or 22),
            config=config,
            connect_timeout=int(self.options.connect_timeout),
            connect_kwargs=dict(connect_kwargs),
        )
        gateway.client._system_host_keys = self.known.keys
        gateway.client.set_missing_host_key_policy(
            StrictPolicy(self.known, host=host.jump_host, accept_new=False)
        )
        return gateway

    def _private_key(self, host: InventoryHost, passphrase: str | None) -> paramiko.PKey:
        """The host's private key, loaded once per (file, passphrase) for the executor."""
        assert host.private_key_file
        path = str(Path(host.private_key_file).expanduser())
        with self._keys_lock:
            key = self._keys.get((path, passphrase))
            if key is None:
                key = _load_key(host.name, path, passphrase)
                self._keys[(path, passphrase)] = key
        return key

    def _open(self, host: InventoryHost, conn: Connection) -> None:
        try:
            conn.open()
        except HostKeyRejected:
            raise
        except BadHostKeyException as exc:
            raise HostKeyRejected(
                host.name,
                f"host key CHANGED for {key_name(host.connect_address, host.port)}: offered "
                f"{exc.key.get_name()} {fingerprint(exc.key)}, expected "
                f"{fingerprint(exc.expected_key)}; refusing to connect",
            ) from exc
        except AuthenticationException as exc:
            raise HostUnreachable(host.name, f"authentication failed: {exc}") from exc
        except (NoValidConnectionsError, TimeoutError, OSError) as exc:
            raise HostUnreachable(host.name, f"cannot connect: {exc}") from exc
        except (SSHException, EOFError) as exc:
            raise HostUnreachable(host.name, f"SSH failed: {exc}") from exc

    def _run(
        self, host: InventoryHost, conn: Connection, line: str, *, timeout: float | None = None
    ) -> CommandOutput:
        """Run one command line (already quoted) on an open connection; blocking."""
        sudo_password = _secret(host, "sudo_password")
        if sudo_password and line.startswith("sudo -n "):
            line = "sudo -S -p '' " + line[len("sudo -n ") :]
        else:
            sudo_password = None  # only sudo reads it: never fed to any other command
        try:
            result = conn.run(
                line,
                hide=True,
                warn=True,
                timeout=timeout or self.options.command_timeout,
                in_stream=False if not sudo_password else _OneLine(sudo_password),
            )
        except CommandTimedOut as exc:
            raise CommandFailed(
                host.name,
                f"command timed out after {exc.timeout}s",
                exit_code=-1,
                output_tail=_tail(exc.result.stdout + exc.result.stderr),
            ) from exc
        except UnexpectedExit as exc:  # pragma: no cover - warn=True prevents it
            raise CommandFailed(host.name, "command failed", exit_code=exc.result.exited) from exc
        except (SSHException, EOFError, OSError) as exc:
            raise HostUnreachable(host.name, f"connection lost: {exc}") from exc
        return CommandOutput(int(result.exited), result.stdout, result.stderr)

    async def _session(self, host: InventoryHost, work: Callable[[Connection], T]) -> T:
        """Open one connection for this host's step, run ``work`` in the pool, close."""
        await self._load_db_keys(host)
        conn, policy = self._connection(host)

        def job() -> T:
            try:
                self._open(host, conn)
                return work(conn)
            finally:
                conn.close()

        try:
            return await self._in_pool(job)
        finally:
            if policy.accepted is not None:
                await self._store_key(host, *policy.accepted)

    async def _store_key(self, host: InventoryHost, name: str, key: paramiko.PKey) -> None:
        if self.db is None:
            return
        now = self._clock() if self._clock else dt.datetime.now(dt.UTC)
        async with unit_of_work(self.db) as session:
            existing = await session.scalar(
                sa.select(KnownHostKey).where(
                    KnownHostKey.name == name, KnownHostKey.key_type == key.get_name()
                )
            )
            if existing is not None:
                if existing.key_base64 != key.get_base64():
                    raise HostKeyRejected(
                        host.name, f"another replica accepted a different key for {name}"
                    )
                return
            session.add(
                KnownHostKey(
                    name=name,
                    host=host.name,
                    key_type=key.get_name(),
                    key_base64=key.get_base64(),
                    fingerprint=fingerprint(key),
                    accepted_at=now,
                )
            )
            await audit.append(
                session,
                kind="ssh.host_key.accepted",
                data={
                    "host": host.name,
                    "name": name,
                    "key_type": key.get_name(),
                    "fingerprint": fingerprint(key),
                },
                at=now,
                actor="patchgate",
            )

    def _checked(
        self, host: InventoryHost, conn: Connection, command: Command, what: str
    ) -> CommandOutput:
        """Run a driver command; back off and retry while the package db is locked."""
        delay = 2.0
        for attempt in range(self.options.lock_retries + 1):
            out = self._run(host, conn, command.shell())
            outcome = command.outcome(out)
            if outcome == "ok":
                return out
            if outcome == "retry" and attempt < self.options.lock_retries:
                time.sleep(delay)
                delay *= 2
                continue
            raise CommandFailed(
                host.name,
                f"{what} exited {out.exit_code}",
                exit_code=out.exit_code,
                output_tail=out.tail(),
            )
        raise AssertionError("unreachable")

    def _driver(self, host: InventoryHost, conn: Connection) -> PackageDriver:
        pm = host.vars.get("package_manager")
        if not pm:
            out = self._run(
                host, conn, Command(("sh", "-c", _FACTS), sudo=False).shell(), timeout=60
            )
            pm = _kv(out.stdout).get("pm", "")
        return driver_for(_PM.get(str(pm), str(pm)))

    # --- the Executor port -----------------------------------------------------------------

    async def facts(self, host: InventoryHost) -> HostFacts:
        def work(conn: Connection) -> HostFacts:
            out = self._run(
                host, conn, Command(("sh", "-c", _FACTS), sudo=False).shell(), timeout=60
            )
            kv = _kv(out.stdout)
            pm = _PM.get(kv.get("pm", ""))
            if pm is None:
                raise ExecutorError(host.name, "no supported package manager found")
            driver = driver_for(pm)
            reboot = driver.parse_reboot(
                self._checked(host, conn, driver.reboot_required(), "reboot-required check")
            ).value.required
            return HostFacts(
                os_id=kv.get("id", "unknown"),
                os_version=kv.get("version", "unknown"),
                arch=kv.get("arch", "unknown"),
                kernel=kv.get("kernel", ""),
                package_manager=pm,  # type: ignore[arg-type]
                boot_id=kv.get("boot_id", ""),
                uptime_seconds=float(kv.get("uptime", "0") or 0),
                reboot_required=reboot,
            )

        return await self._session(host, work)

    async def list_upgradable(self, host: InventoryHost) -> Sequence[UpgradablePackage]:
        def work(conn: Connection) -> Sequence[UpgradablePackage]:
            driver = self._driver(host, conn)
            self._checked(host, conn, driver.refresh(), "refresh")
            listed = driver.parse_upgradable(
                self._checked(host, conn, driver.list_upgradable(), "list upgradable")
            ).value
            security = driver.security_updates()
            if security is None:
                return listed
            marked = driver.parse_security(
                self._checked(host, conn, security, "list security updates")
            ).value
            return [
                UpgradablePackage(
                    p.name, p.current, p.candidate, p.security or p.name in marked, p.source
                )
                for p in listed
            ]

        return await self._session(host, work)

    async def simulate(self, host: InventoryHost, packages: Sequence[str]) -> Simulation:
        def work(conn: Connection) -> Simulation:
            driver = self._driver(host, conn)
            command = driver.simulate(list(packages))
            return driver.parse_simulation(self._run(host, conn, command.shell())).value

        return await self._session(host, work)

    def _installed(
        self, host: InventoryHost, conn: Connection, driver: PackageDriver, names: Sequence[str]
    ) -> dict[str, str | None]:
        command = driver.installed(list(names))
        return driver.parse_installed(
            self._checked(host, conn, command, "installed"), list(names)
        ).value

    async def installed(
        self, host: InventoryHost, packages: Sequence[str]
    ) -> Mapping[str, str | None]:
        def work(conn: Connection) -> Mapping[str, str | None]:
            return self._installed(host, conn, self._driver(host, conn), packages)

        return await self._session(host, work)

    async def preflight(self, host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        def work(conn: Connection) -> Preflight:
            driver = self._driver(host, conn)
            self._checked(host, conn, driver.refresh(), "refresh")
            outputs = [
                self._run(host, conn, c.shell(), timeout=120) for c in driver.preflight_checks()
            ]
            problems = list(driver.parse_preflight(outputs))
            unavailable: list[str] = []
            if driver.name == "apt" and patchset:
                specs = [f"{n}={v}" for n, v in sorted(patchset.items())]
                check = Command(("sh", "-c", _UNAVAILABLE, "patchgate-avail", *specs), sudo=False)
                out = self._run(host, conn, check.shell(), timeout=120)
                unavailable = [
                    line.split(" ", 1)[1]
                    for line in out.stdout.splitlines()
                    if line.startswith("UNAVAILABLE ")
                ]
            installed = self._installed(host, conn, driver, list(patchset))
            missing = self._secure_material(host, conn, driver, installed)
            return Preflight(
                ok=not problems and not unavailable,
                problems=problems,
                unavailable=unavailable,
                rollback_material_missing=missing,
            )

        return await self._session(host, work)

    def _secure_material(
        self,
        host: InventoryHost,
        conn: Connection,
        driver: PackageDriver,
        installed: Mapping[str, str | None],
    ) -> list[str]:
        """Keep the installed versions' packages on the host; return ``pkg=version`` for
        those that could not be kept (the plan decides whether that refuses the host)."""
        present = {n: v for n, v in sorted(installed.items()) if v is not None}
        if not present:
            return []
        command = driver.secure_rollback_material(present, material_dir=MATERIAL_DIR)
        try:
            secured = driver.parse_rollback_material(
                self._checked(host, conn, command, "securing rollback material")
            ).value
        except CommandFailed:
            return [f"{n}={v}" for n, v in present.items()]
        return [f"{n}={present[n]}" for n, v in present.items() if secured.get(n) is None]

    # --- detached operations -------------------------------------------------------------

    def _op_dir(self, op_id: str) -> str:
        if not _OP_ID.match(op_id):
            raise ExecutorError("?", f"bad operation id {op_id!r}")
        return f"{OPS_DIR}/{op_id}"

    def _start_detached(
        self,
        host: InventoryHost,
        conn: Connection,
        op_dir: str,
        command: Command,
        before: Mapping[str, str | None],
    ) -> bool:
        """Start ``command`` detached; False if this op already exists on the host."""
        encoded = "\n".join(f"{n}={v or ''}" for n, v in sorted(before.items()))
        inner = command.full_argv()
        start = Command(("sh", "-c", _START, "patchgate-start", op_dir, encoded, *inner), sudo=True)
        out = self._run(host, conn, start.shell(), timeout=60)
        if out.exit_code < 0 and "STARTED" not in out.stdout:
            # The channel closed without an exit status: the connection dropped.
            raise HostUnreachable(host.name, "connection lost while starting the command")
        if out.exit_code != 0:
            raise CommandFailed(
                host.name,
                "could not start the package command",
                exit_code=out.exit_code,
                output_tail=out.tail(),
            )
        return "STARTED" in out.stdout

    def _status(self, host: InventoryHost, conn: Connection, op_dir: str) -> _OpStatus:
        status = Command(("sh", "-c", _STATUS, "patchgate-status", op_dir), sudo=True)
        out = self._run(host, conn, status.shell(), timeout=60)
        return _OpStatus.parse(out.stdout)

    def _wait(
        self, host: InventoryHost, conn: Connection, op_dir: str
    ) -> tuple[_OpStatus, Connection]:
        """Poll until the op has an exit code. A dropped connection is re-opened (the
        command runs on, detached); bounded by the command timeout."""
        deadline = time.monotonic() + self.options.command_timeout
        failures = 0
        while True:
            try:
                status = self._status(host, conn, op_dir)
                failures = 0
                if status.state != "RUNNING":
                    return status, conn
            except HostUnreachable:
                failures += 1
                conn.close()
                if failures > 5 or time.monotonic() > deadline:
                    raise
                time.sleep(min(2.0 * failures, 5.0))
                conn = self._reconnect(host)
                continue
            if time.monotonic() > deadline:
                raise CommandFailed(
                    host.name,
                    f"{op_dir}: still running after {self.options.command_timeout:.0f}s",
                    exit_code=-1,
                )
            time.sleep(self.options.poll_interval)

    def _reconnect(self, host: InventoryHost) -> Connection:
        """A fresh connection from a pool thread (known host: no key is accepted here)."""
        conn, _ = self._connection_for_thread(host)
        try:
            self._open(host, conn)
        except HostUnreachable:
            conn.close()
            raise
        return conn

    def _connection_for_thread(self, host: InventoryHost) -> tuple[Connection, StrictPolicy]:
        # Each re-connection gets its own Config: Connections built concurrently from one
        # shared Config are what failed here.
        config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        kwargs = self._connect_kwargs(host)
        conn = Connection(
            host.connect_address,
            user=host.user,
            port=host.port,
            config=config,
            gateway=self._gateway(host, kwargs, config) if host.jump_host else None,
            connect_timeout=int(self.options.connect_timeout),
            connect_kwargs=kwargs,
        )
        conn.client._system_host_keys = self.known.keys
        policy = StrictPolicy(self.known, host=host.name, accept_new=False)
        conn.client.set_missing_host_key_policy(policy)
        return conn, policy

    def _result(
        self,
        host: InventoryHost,
        conn: Connection,
        driver: PackageDriver,
        op_id: str,
        status: _OpStatus,
    ) -> ApplyResult:
        after = self._installed(host, conn, driver, list(status.before))
        reboot = driver.parse_reboot(
            self._checked(host, conn, driver.reboot_required(), "reboot-required check")
        ).value.required
        return ApplyResult(
            op_id=op_id,
            before=status.before,
            after=after,
            exit_code=status.exit_code,
            output_tail=status.output,
            reboot_required=reboot,
        )

    async def apply(
        self, host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult:
        op_dir = self._op_dir(op_id)

        def work(conn: Connection) -> ApplyResult:
            driver = self._driver(host, conn)
            before = self._installed(host, conn, driver, list(patchset))
            command = driver.install_exact(patchset)
            try:
                started = self._start_detached(host, conn, op_dir, command, before)
            except HostUnreachable:
                # Lost while starting: the op may be running detached all the same.
                conn.close()
                conn = self._reconnect(host)
                started = self._status(host, conn, op_dir).state != "NOOP"
                if not started:
                    conn.close()
                    raise
            if not started:
                raise ExecutorError(host.name, f"operation {op_id} already ran on this host")
            status, conn = self._wait(host, conn, op_dir)
            try:
                return self._result(host, conn, driver, op_id, status)
            finally:
                conn.close()

        return await self._session(host, work)

    async def apply_status(self, host: InventoryHost, *, op_id: str) -> ApplyResult | None:
        op_dir = self._op_dir(op_id)

        def work(conn: Connection) -> ApplyResult | None:
            driver = self._driver(host, conn)
            status = self._status(host, conn, op_dir)
            if status.state == "NOOP":
                return None
            if status.state == "RUNNING":
                status, conn = self._wait(host, conn, op_dir)
            try:
                return self._result(host, conn, driver, op_id, status)
            finally:
                conn.close()

        return await self._session(host, work)

    async def rollback(
        self, host: InventoryHost, snapshot: Mapping[str, str | None]
    ) -> RollbackResult:
        op_dir = self._op_dir(f"rollback-{uuid.uuid4().hex[:12]}")

        def work(conn: Connection) -> RollbackResult:
            driver = self._driver(host, conn)
            command = driver.rollback(snapshot, material_dir=MATERIAL_DIR, transaction=None)
            self._start_detached(host, conn, op_dir, command, {})
            status, conn = self._wait(host, conn, op_dir)
            try:
                after = self._installed(host, conn, driver, list(snapshot))
            finally:
                conn.close()
            ok = status.exit_code == 0 and all(after.get(n) == v for n, v in snapshot.items())
            return RollbackResult(
                ok=ok, after=after, exit_code=status.exit_code, output_tail=status.output
            )

        return await self._session(host, work)

    async def run_argv(
        self, host: InventoryHost, argv: Sequence[str], limit: float
    ) -> CommandOutput:
        """Run one program (argv, no shell) on a host; for command/systemd health checks."""
        command = Command(tuple(argv), sudo=False)

        def work(conn: Connection) -> CommandOutput:
            return self._run(host, conn, command.shell(), timeout=limit)

        return await self._session(host, work)

    async def reboot_required(self, host: InventoryHost) -> bool:
        return (await self.facts(host)).reboot_required

    async def host_advisories(self, host: InventoryHost) -> Sequence[HostAdvisory]:
        """dnf/yum updateinfo or zypper patches (integrations.advisories.hostdata)."""

        def work(conn: Any) -> Sequence[HostAdvisory]:
            manager = self._driver(host, conn).name
            return read_host_advisories(
                manager, lambda command, what: self._checked(host, conn, command, what)
            ).value

        return await self._session(host, work)

    async def reboot(self, host: InventoryHost) -> str:
        old = (await self.facts(host)).boot_id

        def trigger(conn: Connection) -> None:
            command = Command(
                ("sh", "-c", f"setsid nohup sh -c '{_REBOOT}' </dev/null >/dev/null 2>&1 &"),
                sudo=True,
            )
            out = self._run(host, conn, command.shell(), timeout=60)
            if out.exit_code != 0:
                raise CommandFailed(
                    host.name,
                    "reboot command failed",
                    exit_code=out.exit_code,
                    output_tail=out.tail(),
                )

        await self._session(host, trigger)
        deadline = time.monotonic() + self.options.reboot_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            try:
                new = (await self.facts(host)).boot_id
            except (HostUnreachable, CommandFailed) as exc:
                last = exc
                continue
            if new and new != old:
                return new
        raise HostUnreachable(
            host.name,
            f"did not come back with a new boot id within {self.options.reboot_timeout:.0f}s"
            + (f" (last error: {last})" if last else ""),
        )


_KEX_ALIASES = {
    "curve25519-sha256": "curve25519-sha256@libssh.org",
    "curve25519-sha256@libssh.org": "curve25519-sha256",
}

_PM = {"apt-get": "apt", "apt": "apt", "dnf": "dnf", "yum": "yum", "zypper": "zypper"}


@dataclass(frozen=True)
class _OpStatus:
    state: str  # NOOP, RUNNING, EXIT
    exit_code: int = -1
    before: Mapping[str, str | None] = None  # type: ignore[assignment]
    output: str = ""

    @classmethod
    def parse(cls, text: str) -> _OpStatus:
        lines = text.splitlines()
        head = lines[0] if lines else "NOOP"
        if not head.startswith("EXIT "):
            return cls(state=head.strip() or "NOOP", before={})
        before: dict[str, str | None] = {}
        output: list[str] = []
        section = ""
        for line in lines[1:]:
            if line in ("--before", "--output"):
                section = line
            elif section == "--before" and "=" in line:
                name, _, version = line.partition("=")
                before[name] = version or None
            elif section == "--output":
                output.append(line)
        code = head.split()[1] if len(head.split()) > 1 else "-1"
        return cls(
            state="EXIT",
            exit_code=int(code) if code.lstrip("-").isdigit() else -1,
            before=before,
            output="\n".join(output[-TAIL_LINES:]),
        )


class _OneLine:
    """A stdin stream giving sudo its password once (never logged)."""

    def __init__(self, secret: str) -> None:
        self._data = secret + "\n"

    def read(self, n: int = -1) -> str:
        data, self._data = self._data, ""
        return data


def _load_key(host: str, path: str, passphrase: str | None) -> paramiko.PKey:
    """Parse a private key file (any type paramiko knows), decrypting it with the
    passphrase if it is encrypted. Errors never carry the passphrase."""
    secret = passphrase.encode() if passphrase else None
    try:
        try:
            return paramiko.PKey.from_path(path, secret)
        except TypeError as exc:
            if secret is not None and "not encrypted" in str(exc):
                return paramiko.PKey.from_path(path)  # a passphrase it does not need
            raise
    except OSError as exc:
        reason = f"cannot read it ({exc.strerror})"
    except (TypeError, ValueError, SSHException):
        # paramiko reports a missing or wrong passphrase as TypeError/ValueError.
        reason = (
            "wrong passphrase (ssh_key_passphrase) or not a private key"
            if secret
            else "it is encrypted: set ssh_key_passphrase, or it is not a private key"
        )
    raise HostUnreachable(host, f"authentication failed: private key {path}: {reason}")


def _kv(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])


def _b64(text: str) -> bytes:
    return base64.b64decode(text)
