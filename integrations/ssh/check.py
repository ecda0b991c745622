"""``patchgate ssh check``: why PatchGate can (or cannot) reach a host.

For one inventory host: the effective settings of every hop and where each came from
(config file:line, inventory variable, default), the jump chain, the keys offered, the
host-key verdict per hop and the result of a harmless command (``uname -sr``). Never
accepts a new host key (even with ``accept_new_host_key``) and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.ssh.connection import HopLogin, SshConnection
from integrations.ssh.sessions import SshSessions
from workflows.errors import ExecutorError, InputError
from workflows.ports import InventoryHost

COMMAND = "uname -sr"


@dataclass
class HopReport:
    label: str
    settings: dict[str, Any]
    sources: dict[str, str]
    keys: list[str]
    host_key: str


@dataclass
class CheckReport:
    host: str
    hops: list[HopReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ok: bool = False
    result: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "result": self.result,
            "warnings": self.warnings,
            "jump_chain": [h.label for h in self.hops[:-1]],
            "hops": [h.__dict__ for h in self.hops],
        }


def _hop_report(login: HopLogin) -> HopReport:
    hop = login.hop
    return HopReport(
        label=hop.label,
        settings={
            "hostname": hop.address,
            "user": hop.user,
            "port": hop.port,
            "identityfile": list(hop.identity_files),
            "identitiesonly": hop.identities_only,
            "host_key_name": hop.host_key_name,
            "userknownhostsfile": list(hop.known_hosts_files),
            "connecttimeout": hop.connect_timeout,
            "serveraliveinterval": hop.server_alive_interval,
        },
        sources=_renamed(hop.sources),
        keys=login.choice.describe() or ["none"],
        host_key=login.check.verdict,
    )


def _renamed(sources: Mapping[str, str]) -> dict[str, str]:
    """Sources keyed like the settings (a HostKeyAlias gives the host-key name)."""
    out = dict(sources)
    if "hostkeyalias" in out:
        out["host_key_name"] = out.pop("hostkeyalias")
    return out


async def check(sessions: SshSessions, host: InventoryHost) -> CheckReport:
    report = CheckReport(host=host.name)
    try:
        path = sessions.route(host, explain=True)
    except InputError as exc:
        report.result = str(exc)
        return report
    report.warnings = list(path.warnings)
    await sessions.load_learned_keys(host)
    holder: list[SshConnection] = []

    def work() -> str:
        conn = sessions.connection(host, accept_new=False)
        holder.append(conn)
        try:
            conn.open()
            out = conn.run(COMMAND, timeout=30)
        finally:
            conn.close()
        if out.exit_code != 0:
            return f"`{COMMAND}` exited {out.exit_code}: {out.stderr.strip()}"
        report.ok = True
        return f"`{COMMAND}`: {out.stdout.strip()}"

    try:
        report.result = await asyncio.get_running_loop().run_in_executor(None, work)
    except ExecutorError as exc:
        report.result = str(exc)
    if holder:
        report.hops = [_hop_report(login) for login in holder[0].logins]
        for hop_report, explained in zip(report.hops, path.hops, strict=True):
            hop_report.sources = _renamed(explained.sources)
    else:  # the connection could not even be built (e.g. the inventory's key)
        report.hops = [
            HopReport(
                h.label,
                {"hostname": h.address, "user": h.user, "port": h.port},
                dict(h.sources),
                [],
                "not checked",
            )
            for h in path.hops
        ]
    return report
