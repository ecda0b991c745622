"""Foreman's HTTP conventions as the Satellite emulator (:mod:`tests.fakes.satellite_api`)
answers them: Basic auth, the error bodies, the scoped search it understands, paging.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from aiohttp import web


def basic(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    full: list[str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message}
    if full:
        error = {"id": None, "errors": {"base": full}, "full_messages": full}
    return web.json_response({"error": error}, status=status, headers=headers)


def matches(search: str, row: dict[str, Any]) -> bool:
    search = search.strip()
    if not search:
        return True
    listed = re.fullmatch(r"(name|id) \^ \(([^)]*)\)", search)
    if listed:
        return str(row[listed.group(1)]) in listed.group(2).split(",")
    equal = re.fullmatch(r"hostgroup = (\S+)", search)
    if equal:
        return row.get("hostgroup_title") == equal.group(1)
    raise ValueError(f"Field '{search.split()[0]}' not recognized for searching!")


def package(name: str, version: str) -> dict[str, Any]:
    ver, _, release = version.partition("-")
    return {
        "name": name,
        "epoch": "0",
        "version": ver,
        "release": release,
        "arch": "x86_64",
        "nvra": f"{name}-{version}.x86_64",
    }


def page(q: Any, rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
    per_page = min(1000, max(1, int(q.get("per_page", 20))))
    page = max(1, int(q.get("page", 1)))
    start = (page - 1) * per_page
    return {
        "total": total,
        "subtotal": len(rows),
        "page": page,
        "per_page": per_page,
        "search": q.get("search"),
        "sort": {"by": None, "order": None},
        "results": rows[start : start + per_page],
    }
