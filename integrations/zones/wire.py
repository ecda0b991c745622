"""The JSON form of what crosses to a zone worker and back (never pickle).

A call is ``{"op": NAME, "host": {...}, "args": {...}}``; a reply is
``{"ok": VALUE}`` or ``{"error": {"type": ..., "message": ..., ...}}``. Port values
are frozen dataclasses of plain fields; each op names how its reply is decoded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from workflows.errors import CommandFailed, ExecutorError, HostKeyRejected, HostUnreachable
from workflows.ports import (
    ApplyResult,
    HealthResult,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    PatchIdentity,
    Preflight,
    RollbackResult,
    Simulation,
    UpgradablePackage,
)

__all__ = [
    "OPS",
    "decode_error",
    "decode_host",
    "decode_reply",
    "encode_error",
    "encode_host",
    "encode_value",
]


def encode_host(host: InventoryHost) -> dict[str, Any]:
    data = dataclasses.asdict(host)
    data["groups"] = sorted(host.groups)
    data["tags"] = sorted(host.tags)
    data["vars"] = dict(host.vars)
    return data


def decode_host(data: Mapping[str, Any]) -> InventoryHost:
    fields = {f.name for f in dataclasses.fields(InventoryHost)}
    unknown = set(data) - fields
    if unknown or "name" not in data:
        raise ValueError(f"not a host: unknown fields {sorted(unknown)}")
    values = dict(data)
    values["groups"] = frozenset(values.get("groups", ()))
    values["tags"] = frozenset(values.get("tags", ()))
    values["vars"] = dict(values.get("vars") or {})
    return InventoryHost(**values)


def encode_value(value: Any) -> Any:
    """A port value (dataclass, sequence of them, mapping, plain) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return value


def _advisory(data: Mapping[str, Any]) -> HostAdvisory:
    published = data.get("published")
    return HostAdvisory(
        id=data["id"],
        packages=dict(data["packages"]),
        cves=tuple(data.get("cves", ())),
        severity=data.get("severity"),
        published=dt.datetime.fromisoformat(published) if published else None,
        cvss=data.get("cvss"),
    )


def _upgradable(data: Mapping[str, Any]) -> UpgradablePackage:
    values = dict(data)
    identity = values.pop("identity", None)
    return UpgradablePackage(
        **values, identity=None if identity is None else PatchIdentity.from_json(identity)
    )


def _tuple_fields(cls: type, *names: str) -> Callable[[Any], Any]:
    def build(data: Mapping[str, Any]) -> Any:
        values = dict(data)
        for name in names:
            values[name] = tuple(values.get(name, ()))
        return cls(**values)

    return build


def _plain(data: Any) -> Any:
    return data


def _maybe(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda data: None if data is None else build(data)


# op -> how its reply is decoded
OPS: dict[str, Callable[[Any], Any]] = {
    "facts": lambda d: HostFacts(**d),
    "list_upgradable": lambda d: [_upgradable(x) for x in d],
    "simulate": lambda d: Simulation(installs=dict(d["installs"]), removes=tuple(d["removes"])),
    "installed": lambda d: dict(d),
    "preflight": _tuple_fields(Preflight, "problems", "unavailable", "rollback_material_missing"),
    "apply": lambda d: ApplyResult(**d),
    "apply_status": _maybe(lambda d: ApplyResult(**d)),
    "rollback": lambda d: RollbackResult(**d),
    "reboot_required": bool,
    "host_advisories": lambda d: [_advisory(x) for x in d],
    "reboot": str,
    "health": lambda d: [HealthResult(**x) for x in d],
}

_ERRORS: dict[str, type[ExecutorError]] = {
    "ExecutorError": ExecutorError,
    "HostUnreachable": HostUnreachable,
    "HostKeyRejected": HostKeyRejected,
    "CommandFailed": CommandFailed,
}


def encode_error(exc: ExecutorError) -> dict[str, Any]:
    prefix = f"{exc.host}: "
    text = str(exc)
    data: dict[str, Any] = {
        "type": type(exc).__name__ if type(exc).__name__ in _ERRORS else "ExecutorError",
        "host": exc.host,
        "message": text[len(prefix) :] if text.startswith(prefix) else text,
    }
    if isinstance(exc, CommandFailed):
        data["exit_code"] = exc.exit_code
        data["output_tail"] = exc.output_tail
    return data


def decode_error(data: Mapping[str, Any]) -> ExecutorError:
    cls = _ERRORS.get(str(data.get("type")), ExecutorError)
    host, message = str(data.get("host", "?")), str(data.get("message", ""))
    if cls is CommandFailed:
        return CommandFailed(
            host,
            message,
            exit_code=int(data.get("exit_code", -1)),
            output_tail=str(data.get("output_tail", "")),
        )
    return cls(host, message)


def decode_reply(op: str, reply: Mapping[str, Any]) -> Any:
    """The port value a reply carries; raises the executor error it carries."""
    if "error" in reply:
        raise decode_error(reply["error"])
    return OPS[op](reply["ok"])
