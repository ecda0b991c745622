"""Check an evidence bundle on its own: the Ed25519 signature of manifest.json (with the
public key alone), every core file present, every file's SHA-256 against manifest.json,
no file added or missing, and the events' chain from the anchor on line 1 of
events.jsonl up to the slice's last hash (links and seqs; unkeyed events' SHA-256 too:
keyed events' MACs need the secret audit key, the signature covers their bytes)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows import audit
from workflows.reports._recompute import EventFacts, ts_of
from workflows.reports._recompute_more import recompute

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CORE_FILES = (
    "rollouts.csv",
    "host_runs.csv",
    "approvals.csv",
    "exceptions.csv",
    "coverage.csv",
    "events.jsonl",
    "summary.html",
    MANIFEST,
)


@dataclass
class Verification:
    path: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    events: int = 0
    manifest: dict[str, Any] | None = None
    signed_by: str | None = None  # the key id whose signature verified
    # What the events could not recompute (older events lack the facts): one line each
    not_recomputed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_signature(
    archive: zipfile.ZipFile,
    names: list[str],
    public_keys: Sequence[audit.PublicKey],
    result: Verification,
) -> None:
    if SIGNATURE not in names:
        result.problems.append(f"{SIGNATURE} is missing: the bundle is not signed")
        return
    try:
        sig = json.loads(archive.read(SIGNATURE))
        kid, signature = str(sig["key_id"]), str(sig["signature"])
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        result.problems.append(f"{SIGNATURE} is unreadable ({exc})")
        return
    by_id = {key.key_id: key for key in public_keys}
    key = by_id.get(kid)
    if key is None:
        result.problems.append(
            f"{SIGNATURE}: signed by key id {kid}, not by the public key given "
            f"({', '.join(sorted(by_id))})"
        )
        return
    if not key.verify(archive.read(MANIFEST), signature):
        result.problems.append(f"{SIGNATURE}: the signature of manifest.json does not verify")
        return
    result.signed_by = kid


def verify_bundle(
    path: Path, *, public_keys: Sequence[audit.PublicKey] | None = None
) -> Verification:
    """Every problem found, each naming the file (and event) that changed. With
    ``public_keys`` the manifest's signature must verify with one of them."""
    result = Verification(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append(f"{path}: not a readable zip ({exc})")
        return result
    with archive:
        names = archive.namelist()
        if len(names) != len(set(names)):
            result.problems.append("the zip holds a file name twice")
        if MANIFEST not in names:
            result.problems.append("manifest.json is missing")
            return result
        try:
            manifest = json.loads(archive.read(MANIFEST))
            listed: dict[str, Any] = manifest["files"]
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            result.problems.append(f"manifest.json is unreadable ({exc})")
            return result
        result.manifest = manifest
        if public_keys is not None:
            _check_signature(archive, names, public_keys, result)
            signing = manifest.get("signing") if isinstance(manifest, dict) else None
            if result.signed_by and (signing or {}).get("key_id") != result.signed_by:
                result.problems.append("manifest.json names another signing key id")
        for name in CORE_FILES:
            if name != MANIFEST and name not in names:
                result.problems.append(f"{name}: a core file is missing")
            elif name != MANIFEST and name not in listed:
                result.problems.append(f"{name}: a core file not listed in manifest.json")
        for name in sorted(set(names) - set(listed) - {MANIFEST, SIGNATURE}):
            result.problems.append(f"{name}: not listed in manifest.json (added)")
        for name in sorted(listed):
            if name not in names:
                if name not in CORE_FILES:
                    result.problems.append(f"{name}: listed in manifest.json but missing")
                continue
            try:
                digest = _sha256(archive, name)
            except (zipfile.BadZipFile, OSError) as exc:  # a CRC error: the bytes changed
                result.problems.append(f"{name}: unreadable ({exc})")
                continue
            if digest != listed[name].get("sha256"):
                result.problems.append(
                    f"{name}: SHA-256 mismatch (manifest {str(listed[name].get('sha256'))[:12]}…, "
                    f"file {digest[:12]}…): the file changed"
                )
            result.files += 1
        if "events.jsonl" in names:
            period = manifest.get("period") if isinstance(manifest, dict) else None
            facts = EventFacts()
            if isinstance(period, dict):
                facts.since = ts_of(period.get("since"))
                facts.until = ts_of(period.get("until"))
            pruned = (manifest.get("audit") or {}).get("pruned") if facts.since else None
            if isinstance(pruned, dict) and str(pruned.get("before", "")) > facts.since:
                facts.since = str(pruned["before"])  # events before it are in an archive
                facts.pruned = True
            try:
                with archive.open("events.jsonl") as raw:
                    lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
                    result.events = _check_events(lines, manifest, result.problems, facts)
            except (zipfile.BadZipFile, OSError) as exc:
                result.problems.append(f"events.jsonl: unreadable ({exc})")
            else:
                if facts.complete:  # a broken chain is named already; its events prove nothing
                    try:
                        result.not_recomputed = recompute(archive, facts, result.problems)
                    except (zipfile.BadZipFile, OSError, ValueError) as exc:
                        result.problems.append(f"the CSVs could not be recomputed ({exc})")
    return result


def _sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while chunk := member.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_events(
    lines: Iterable[str], manifest: dict[str, Any], problems: list[str], facts: EventFacts
) -> int:
    """Walk the chain line by line (constant memory); returns the events that verified."""
    numbered = iter(lines)
    first = next(numbered, None)
    if first is None:
        problems.append("events.jsonl: empty (no anchor line)")
        return 0
    try:
        anchor = json.loads(first)["anchor"]
        prev_hash, seq = str(anchor["prev_hash"]), int(anchor["seq"])
    except (ValueError, KeyError, TypeError):
        problems.append("events.jsonl line 1: not an anchor line")
        return 0
    expected = (manifest.get("audit") or {}).get("slice") or {}
    if expected.get("prev_hash") not in (None, prev_hash):
        problems.append("events.jsonl line 1: anchor hash differs from manifest.json")
    good = 0
    for number, raw_line in enumerate(numbered, start=2):
        line = raw_line.rstrip("\n")
        where = f"events.jsonl line {number}"
        try:
            record = json.loads(line)
            body_text, stored = str(record["body"]), str(record["hash"])
            keyed = record.get("key_id") is not None
            body = json.loads(body_text)
        except (ValueError, KeyError, TypeError):
            problems.append(f"{where}: not an event record (chain break)")
            return good
        seq += 1
        where += (
            f" (event {record.get('id')}, seq {body.get('seq') if isinstance(body, dict) else '?'})"
        )
        if record.get("prev_hash") != prev_hash:
            problems.append(f"{where}: previous hash does not match the event before (chain break)")
            return good
        if not keyed and audit.chain_hash(prev_hash, body_text) != stored:
            problems.append(f"{where}: hash does not match its contents (event changed)")
            return good
        if not isinstance(body, dict) or set(body) != audit.BODY_KEYS:
            problems.append(f"{where}: body does not have the audit event keys")
            return good
        if audit.canonical_json(body) != body_text:
            problems.append(f"{where}: body is not in canonical form")
            return good
        if body["seq"] != seq:
            problems.append(f"{where}: sequence number {body['seq']}, expected {seq} (gap)")
            return good
        prev_hash = stored
        facts.add(body)
        good += 1
    facts.complete = True
    if expected:
        if expected.get("count") != good:
            problems.append(
                f"events.jsonl: {good} events, manifest.json says {expected.get('count')} "
                "(events removed or added)"
            )
        elif expected.get("last_hash") != prev_hash:
            problems.append("events.jsonl: the last hash differs from manifest.json")
    return good
