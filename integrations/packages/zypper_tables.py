"""zypper's plain tables (``list-updates``, ``list-patches``), read when the output has no
``--xmlout`` stream: an older zypper, a wrapper that drops the flag, or an output pasted
into ``patchgate debug parse``.

Columns are found by their English header names, in any order (zypper adds columns
between versions). PatchGate runs zypper with ``LC_ALL=C``; a table whose headers are in
another language is reported as such, line by line, never read by guesswork.
"""

from __future__ import annotations

from collections.abc import Sequence

from integrations.packages import common

UPDATE_COLUMNS = ("Repository", "Name", "Available Version")
PATCH_COLUMNS = ("Name", "Category", "Severity", "Summary")
_NOISE = (
    "Loading repository data",
    "Reading installed packages",
    "Refreshing service",
    "Retrieving repository",
    "Building repository",
    "No updates found",
    "Found ",
    "The following",
)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("|")]


def _is_rule(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) <= set("-+=")


def read_table(
    stdout: str, wanted: Sequence[str]
) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """(rows as {header: cell}, unparsed lines, notes) of the first table in ``stdout``
    whose header row has every ``wanted`` column."""
    rows: list[dict[str, str]] = []
    unparsed: list[str] = []
    notes: list[str] = []
    header: list[str] | None = None
    for line in common.lines(stdout):
        text = line.strip()
        if not text or _is_rule(text):
            continue
        if "|" not in text:
            if not text.startswith(_NOISE) and not _summary(text):
                unparsed.append(line)
            continue
        cells = _cells(text)
        if header is None:
            if all(name in cells for name in wanted):
                header = cells
            else:
                notes.append(
                    f"zypper table headers not understood ({' | '.join(cells)}): "
                    "is the output localised? PatchGate runs zypper with LC_ALL=C"
                )
                unparsed.append(line)
            continue
        if len(cells) != len(header):
            unparsed.append(line)
            continue
        rows.append(dict(zip(header, cells, strict=True)))
    return rows, unparsed, notes


def _summary(text: str) -> bool:
    """zypper's closing counts: "2 patches needed (2 security patches)"."""
    words = text.split()
    return len(words) >= 3 and words[0].isdigit() and words[1].startswith("patch")
