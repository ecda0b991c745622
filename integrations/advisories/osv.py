"""OSV-format advisories (https://ossf.github.io/osv-schema/) for Debian and Ubuntu:
DSA/DLA/USN records with CVE aliases, affected packages, fixed versions and CVSS.

Read: ``id``, ``aliases``/``upstream`` (CVE ids), ``published``, ``severity``
(``CVSS_V2``/``V3``/``V4`` vectors, scored with the ``cvss`` library), and per
``affected`` entry ``package.ecosystem``/``package.name`` and the ``fixed`` event of
an ``ECOSYSTEM`` range. A record Debian or Ubuntu does not mark as fixed (no
``fixed`` event) is kept without a fixed version for that package.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4  # type: ignore[import-untyped]
from cvss.exceptions import CVSSError  # type: ignore[import-untyped]
from debian.debian_support import Version

from workflows.assessment import AdvisoryRecord, severity_from_cvss
from workflows.errors import InputError

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_SEVERITY_WORDS = {"critical", "high", "medium", "moderate", "important", "low", "negligible"}


class AdvisoryDataError(InputError):
    """A bad advisory file or record (the message names both)."""


def cvss_score(vector: str) -> float:
    """The base score of a CVSS v2, v3.x or v4 vector."""
    if vector.startswith("CVSS:4"):
        return float(CVSS4(vector).base_score)
    if vector.startswith("CVSS:3"):
        return float(CVSS3(vector).scores()[0])
    return float(CVSS2(vector).scores()[0])


def _date(value: object, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AdvisoryDataError(f"{where}: published must be an RFC 3339 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AdvisoryDataError(f"{where}: published {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    """``data[key]`` as a list (absent or null: empty); anything else is an error."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdvisoryDataError(f"{where}: {key} must be a list, got {type(value).__name__}")
    return value


def _version(value: object, where: str) -> str:
    """A fixed version: a Debian version string (the records are Debian's and Ubuntu's)."""
    try:
        if not isinstance(value, str) or not value.isprintable() or " " in value:
            raise ValueError
        Version(value)
    except ValueError:
        raise AdvisoryDataError(f"{where}: fixed version {value!r} is not a version") from None
    return value


def parse_osv(data: Any, *, where: str) -> list[AdvisoryRecord]:
    """The records (one per ecosystem) of one OSV document; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise AdvisoryDataError(f"{where}: an OSV record is a JSON object")
    ident = data.get("id")
    if not isinstance(ident, str) or not ident:
        raise AdvisoryDataError(f"{where}: the record has no id")
    where = f"{where}: record {ident}"
    aliases = [*_list(data, "aliases", where), *_list(data, "upstream", where), ident]
    cves = tuple(sorted({a.upper() for a in aliases if isinstance(a, str) and _CVE.fullmatch(a)}))
    scores = []
    for entry in _list(data, "severity", where):
        vector = entry.get("score") if isinstance(entry, dict) else None
        if not isinstance(vector, str):
            raise AdvisoryDataError(f"{where}: severity entries need a score (a CVSS vector)")
        try:
            scores.append(cvss_score(vector))
        except (CVSSError, ValueError, KeyError) as exc:
            raise AdvisoryDataError(f"{where}: bad CVSS vector {vector!r}: {exc}") from None
    cvss = max(scores) if scores else None
    specific = data.get("database_specific") or {}
    if not isinstance(specific, dict):
        raise AdvisoryDataError(f"{where}: database_specific must be an object")
    word = specific.get("severity") or specific.get("urgency")
    word = word.lower() if isinstance(word, str) else None
    severity = word if word in _SEVERITY_WORDS else severity_from_cvss(cvss)
    published = _date(data.get("published"), where)
    affected = data.get("affected")
    if not isinstance(affected, list) or not affected:
        raise AdvisoryDataError(f"{where}: affected must be a non-empty list")
    by_ecosystem: dict[str, dict[str, str | None]] = {}
    for index, item in enumerate(affected):
        package = item.get("package") if isinstance(item, dict) else None
        name = package.get("name") if isinstance(package, dict) else None
        if not isinstance(name, str) or not name:
            raise AdvisoryDataError(f"{where}: affected[{index}] has no package name")
        fixed: str | None = None
        for rng in _list(item, "ranges", f"{where}: affected[{index}]"):
            events = (
                _list(rng, "events", f"{where}: affected[{index}].ranges")
                if isinstance(rng, dict)
                else []
            )
            for event in events:
                if isinstance(event, dict) and "fixed" in event:
                    fixed = _version(event["fixed"], f"{where}: affected[{index}] ({name})")
        ecosystem = package.get("ecosystem") if isinstance(package, dict) else None
        ecosystem = ecosystem if isinstance(ecosystem, str) else ""
        by_ecosystem.setdefault(ecosystem, {})[name] = fixed
    return [
        AdvisoryRecord(
            id=ident,
            packages=packages,
            cves=cves,
            severity=severity,
            cvss=cvss,
            published=published,
            ecosystem=ecosystem or None,
            source=where,
        )
        for ecosystem, packages in sorted(by_ecosystem.items())
    ]


def load_osv_dir(directory: Path) -> list[AdvisoryRecord]:
    """Every ``*.json`` OSV record below ``directory``."""
    if not directory.is_dir():
        raise AdvisoryDataError(f"{directory}: no such OSV directory")
    records: list[AdvisoryRecord] = []
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise AdvisoryDataError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise AdvisoryDataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise AdvisoryDataError(f"{path}: JSON nested too deeply") from None
        items = data if isinstance(data, list) else [data]
        for index, item in enumerate(items):
            where = str(path) if len(items) == 1 else f"{path}[{index}]"
            records.extend(parse_osv(item, where=where))
    return records
