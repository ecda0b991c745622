"""SshExecutor: the Executor port over SSH (Fabric).

Each method is one step on one host: a session (sessions.py: one connection, run in the
worker pool, host keys checked and learned) doing the step's work. Package commands come
from ``integrations.packages`` drivers (``Command.shell()`` is the one quoting point).
``apply`` and ``rollback`` run detached on the host (detached.py), then are polled;
``apply_status`` reads the same files back after a restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from integrations.advisories.hostdata import read_host_advisories
from integrations.packages import Command, CommandOutput, PackageDriver, driver_for
from integrations.ssh import detached
from integrations.ssh.connection import SshConnection
from integrations.ssh.sessions import (
    FACTS_SCRIPT,
    PACKAGE_MANAGERS,
    SshOptions,
    SshSessions,
    key_values,
)
from workflows.errors import CommandFailed, ExecutorError, HostUnreachable
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

__all__ = ["MATERIAL_DIR", "SshExecutor", "SshOptions"]

MATERIAL_DIR = "/var/lib/patchgate/rollback"

_REBOOT = (
    "sleep 1; if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; "
    "then systemctl reboot; else shutdown -r now; fi"
)


class SshExecutor(SshSessions):
    """Works on hosts over SSH. ``host_keys`` keeps host keys accepted at first contact."""

    async def facts(self, host: InventoryHost) -> HostFacts:
        def work(conn: SshConnection) -> HostFacts:
            line = Command(("sh", "-c", FACTS_SCRIPT), sudo=False).shell()
            out = self._run(conn, line, timeout=60, probe=True)
            kv = key_values(out.stdout)
            pm = PACKAGE_MANAGERS.get(kv.get("pm", ""))
            if pm is None:
                raise ExecutorError(host.name, "no supported package manager found")
            driver = driver_for(pm)
            check = driver.reboot_required()
            reboot = driver.parse_reboot(
                self._checked(host, conn, check, "reboot-required check", probe=True)
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
            unknown = [p.name for p in listed if p.current is None]
            if unknown:  # dnf's check-update prints no installed version
                current = self._installed(host, conn, driver, unknown)
                listed = [
                    p if p.current is not None else replace(p, current=current.get(p.name))
                    for p in listed
                ]
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
            # an empty set has nothing to look up (the drivers refuse an empty list)
            installed = self._installed(host, conn, driver, list(patchset)) if patchset else {}
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
