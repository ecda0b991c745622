"""CISA's Known Exploited Vulnerabilities catalogue (its JSON format), read from a file."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from integrations.advisories.osv import AdvisoryDataError

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


def load_kev(path: Path) -> dict[str, dt.date | None]:
    """CVE id -> the date CISA added it (``dateAdded``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdvisoryDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AdvisoryDataError(f"{path}: not UTF-8 text (a KEV catalogue is JSON)") from None
    except json.JSONDecodeError as exc:
        raise AdvisoryDataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise AdvisoryDataError(f"{path}: JSON nested too deeply") from None
    items = data.get("vulnerabilities") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise AdvisoryDataError(f"{path}: not a KEV catalogue (no vulnerabilities list)")
    found: dict[str, dt.date | None] = {}
    for index, item in enumerate(items):
        cve = item.get("cveID") if isinstance(item, dict) else None
        if not isinstance(cve, str) or not _CVE.fullmatch(cve):
            raise AdvisoryDataError(f"{path}: vulnerabilities[{index}]: bad cveID {cve!r}")
        added = item.get("dateAdded")
        try:
            found[cve] = dt.date.fromisoformat(added) if isinstance(added, str) else None
        except ValueError:
            raise AdvisoryDataError(
                f"{path}: vulnerabilities[{index}] ({cve}): bad dateAdded {added!r}"
            ) from None
    return found
