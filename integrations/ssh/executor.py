"""SshExecutor: the Executor port over SSH (paramiko).

- One connection per host per step, closed after (``SshConnection``: paramiko Transport,
  strict host keys, KEX order, jump host, sudo password; see connection.py). All
  blocking work runs in one ThreadPoolExecutor sized ``PATCHGATE_SSH_CONCURRENCY``.
- Host keys: known_hosts parsed once (``KnownHosts``), shared by a strict policy.
  Keys accepted at first contact (inventory opt-in) are stored in ``known_host_keys``
  and audited; a changed key is always refused.
- Package commands come from ``integrations.packages`` drivers (``Command.shell()`` is
  the one quoting point). ``apply`` and ``rollback`` run detached on the host
  (detached.py), then are polled; ``apply_status`` reads the same files back after a
  restart.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko
import sqlalchemy as sa

from integrations.advisories.hostdata import read_host_advisories
from integrations.packages import Command, CommandOutput, PackageDriver, driver_for
from integrations.ssh import detached
from integrations.ssh.connection import (
    Credentials,
    Endpoint,
    SshConnection,
    default_user,
    parse_jump,
)
from integrations.ssh.credentials import PrivateKeys, secret
from integrations.ssh.hostkeys import KnownHosts, StrictPolicy, fingerprint, key_name
from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import CommandFailed, ExecutorError, HostKeyRejected, HostUnreachable
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

MATERIAL_DIR = "/var/lib/patchgate/rollback"

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

_REBOOT = (
    "sleep 1; if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; "
    "then systemctl reboot; else shutdown -r now; fi"
)

_PM = {"apt-get": "apt", "apt": "apt", "dnf": "dnf", "yum": "yum", "zypper": "zypper"}


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
        self._db_loaded: set[str] = set()
        self._clock = clock
        self._keys = PrivateKeys()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- connections ---------------------------------------------------------------------

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _load_db_keys(self, host: InventoryHost) -> None:
        name = key_name(host.connect_address, host.port)
        if self.db is None or name in self._db_loaded:
            return
        async with read_only(self.db) as session:
            rows = (
                await session.scalars(sa.select(KnownHostKey).where(KnownHostKey.name == name))
            ).all()
        for row in rows:
            key = paramiko.PKey.from_type_string(row.key_type, base64.b64decode(row.key_base64))
            self.known.add(name, key)
        self._db_loaded.add(name)

    def connection(self, host: InventoryHost, *, accept_new: bool | None = None) -> SshConnection:
        """A (not yet open) connection for ``host``; cheap, safe from any thread.

        The target may accept an unknown key only if the inventory opted in (and never on
        a re-connection: ``accept_new=False``); the jump host never does."""
        user = host.user or default_user()
        target = Endpoint(
            label=host.name,
            address=host.connect_address,
            port=host.port,
            user=user,
            policy=StrictPolicy(
                self.known,
                host=host.name,
                accept_new=host.accept_new_host_key if accept_new is None else accept_new,
            ),
        )
        jump = None
        if host.jump_host:
            juser, jaddr, jport = parse_jump(host.jump_host, user)
            jump = Endpoint(
                label=host.jump_host,
                address=jaddr,
                port=jport,
                user=juser,
                policy=StrictPolicy(self.known, host=host.jump_host, accept_new=False),
            )
        return SshConnection(
            target,
            Credentials(
                pkey=self._keys.for_host(host), agent=bool(host.vars.get("ssh_agent", False))
            ),
            self.known,
            kex=self.options.kex,
            connect_timeout=self.options.connect_timeout,
            jump=jump,
            sudo_password=secret(host, "sudo_password"),
        )

    def _run(
        self, conn: SshConnection, line: str, *, timeout: float | None = None
    ) -> CommandOutput:
        return conn.run(line, timeout=timeout or self.options.command_timeout)

    async def _session(self, host: InventoryHost, work: Callable[[SshConnection], T]) -> T:
        """Open one connection for this host's step, run ``work`` in the pool, close."""
        await self._load_db_keys(host)
        holder: list[SshConnection] = []

        def job() -> T:
            conn = self.connection(host)
            holder.append(conn)
            try:
                conn.open()
                return work(conn)
            finally:
                conn.close()

        try:
            return await self._in_pool(job)
        finally:
            accepted = holder[0].target.policy.accepted if holder else None
            if accepted is not None:
                await self._store_key(host, *accepted)

    def _reconnect(self, host: InventoryHost) -> SshConnection:
        """A fresh connection from a pool thread (a known host: no key is accepted here)."""
        conn = self.connection(host, accept_new=False)
        conn.open()
        return conn

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
        self, host: InventoryHost, conn: SshConnection, command: Command, what: str
    ) -> CommandOutput:
        """Run a driver command; back off and retry while the package db is locked."""
        delay = 2.0
        for attempt in range(self.options.lock_retries + 1):
            out = self._run(conn, command.shell())
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

    def _driver(self, host: InventoryHost, conn: SshConnection) -> PackageDriver:
        pm = host.vars.get("package_manager")
        if not pm:
            out = self._run(conn, Command(("sh", "-c", _FACTS), sudo=False).shell(), timeout=60)
            pm = _kv(out.stdout).get("pm", "")
        return driver_for(_PM.get(str(pm), str(pm)))

    # --- the Executor port -----------------------------------------------------------------

    async def facts(self, host: InventoryHost) -> HostFacts:
        def work(conn: SshConnection) -> HostFacts:
            out = self._run(conn, Command(("sh", "-c", _FACTS), sudo=False).shell(), timeout=60)
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
        def work(conn: SshConnection) -> Sequence[UpgradablePackage]:
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
        def work(conn: SshConnection) -> Simulation:
            driver = self._driver(host, conn)
            command = driver.simulate(list(packages))
            return driver.parse_simulation(self._run(conn, command.shell())).value

        return await self._session(host, work)

    def _installed(
        self, host: InventoryHost, conn: SshConnection, driver: PackageDriver, names: Sequence[str]
    ) -> dict[str, str | None]:
        command = driver.installed(list(names))
        return driver.parse_installed(
            self._checked(host, conn, command, "installed"), list(names)
        ).value

    async def installed(
        self, host: InventoryHost, packages: Sequence[str]
    ) -> Mapping[str, str | None]:
        def work(conn: SshConnection) -> Mapping[str, str | None]:
            return self._installed(host, conn, self._driver(host, conn), packages)

        return await self._session(host, work)

    async def preflight(self, host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        def work(conn: SshConnection) -> Preflight:
            driver = self._driver(host, conn)
            self._checked(host, conn, driver.refresh(), "refresh")
            outputs = [self._run(conn, c.shell(), timeout=120) for c in driver.preflight_checks()]
            problems = list(driver.parse_preflight(outputs))
            installed = self._installed(host, conn, driver, list(patchset))
            unavailable: list[str] = []
            if patchset:
                check = driver.unavailable(patchset)
                try:
                    gone = driver.parse_unavailable(
                        self._checked(host, conn, check, "pinned versions check"), patchset
                    ).value
                except CommandFailed as exc:
                    problems.append(f"could not check the pinned versions: {exc}")
                    gone = []
                # A pin already installed needs no repository (dnf/zypper do not list an
                # installed version its repository dropped; apt-cache does).
                unavailable = [s for s in gone if installed.get(s.split("=", 1)[0]) != _pin(s)]
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
        conn: SshConnection,
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

    def _result(
        self,
        host: InventoryHost,
        conn: SshConnection,
        driver: PackageDriver,
        op_id: str,
        status: detached.OpStatus,
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
        op_dir = detached.op_dir(op_id)

        def work(conn: SshConnection) -> ApplyResult:
            driver = self._driver(host, conn)
            before = self._installed(host, conn, driver, list(patchset))
            command = driver.install_exact(patchset)
            try:
                started = detached.start(conn, op_dir, command, before)
            except HostUnreachable:
                # Lost while starting: the op may be running detached all the same.
                conn.close()
                conn = self._reconnect(host)
                started = detached.status(conn, op_dir).state != "NOOP"
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
        op_dir = detached.op_dir(op_id)

        def work(conn: SshConnection) -> ApplyResult | None:
            driver = self._driver(host, conn)
            status = detached.status(conn, op_dir)
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
        op_dir = detached.op_dir(f"rollback-{uuid.uuid4().hex[:12]}")

        def work(conn: SshConnection) -> RollbackResult:
            driver = self._driver(host, conn)
            command = driver.rollback(snapshot, material_dir=MATERIAL_DIR, transaction=None)
            detached.start(conn, op_dir, command, {})
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

        def work(conn: SshConnection) -> CommandOutput:
            return self._run(conn, command.shell(), timeout=limit)

        return await self._session(host, work)

    async def reboot_required(self, host: InventoryHost) -> bool:
        return (await self.facts(host)).reboot_required

    async def host_advisories(self, host: InventoryHost) -> Sequence[HostAdvisory]:
        """dnf/yum updateinfo or zypper patches (integrations.advisories.hostdata)."""

        def work(conn: SshConnection) -> Sequence[HostAdvisory]:
            manager = self._driver(host, conn).name
            return read_host_advisories(
                manager, lambda command, what: self._checked(host, conn, command, what)
            ).value

        return await self._session(host, work)

    async def reboot(self, host: InventoryHost) -> str:
        old = (await self.facts(host)).boot_id

        def trigger(conn: SshConnection) -> None:
            command = Command(
                ("sh", "-c", f"setsid nohup sh -c '{_REBOOT}' </dev/null >/dev/null 2>&1 &"),
                sudo=True,
            )
            out = self._run(conn, command.shell(), timeout=60)
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

    def _wait(
        self, host: InventoryHost, conn: SshConnection, op_dir: str
    ) -> tuple[detached.OpStatus, SshConnection]:
        return detached.wait(
            conn,
            op_dir,
            reconnect=lambda: self._reconnect(host),
            timeout=self.options.command_timeout,
            poll_interval=self.options.poll_interval,
        )


def _pin(spec: str) -> str:
    return spec.split("=", 1)[1]


def _kv(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}
