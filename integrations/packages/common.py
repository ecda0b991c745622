"""Pieces shared by the drivers: free-space and lock-holder checks, line helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from integrations.packages.base import Command, CommandOutput, Parsed, check_ok

DEFAULT_MIN_FREE_MB: Mapping[str, int] = {"/": 500, "/var": 500, "/boot": 100}

# One section per path: "== /var" then df's own output (or its error).
_DF_SCRIPT = 'for p in "$@"; do echo "== $p"; [ -d "$p" ] || continue; df -Pk -- "$p" 2>&1; done'

# Lock holders: fuser, else lsof; "NOTOOL" when neither exists (not a problem by itself).
_LOCK_SCRIPT = """
if command -v fuser >/dev/null 2>&1; then tool=fuser
elif command -v lsof >/dev/null 2>&1; then tool=lsof
else echo NOTOOL; exit 0; fi
for f in "$@"; do
  [ -e "$f" ] || continue
  if [ "$tool" = fuser ]; then pids=$(fuser "$f" 2>/dev/null)
  else pids=$(lsof -t -- "$f" 2>/dev/null | tr '\\n' ' '); fi
  set -- $pids
  [ $# -gt 0 ] && echo "LOCKED $f $*"
done
exit 0
"""


def free_space_check(min_free_mb: Mapping[str, int]) -> Command:
    return Command(
        ("sh", "-c", _DF_SCRIPT, "patchgate-df", *min_free_mb),
        sudo=False,
        description="free space",
    )


def parse_free_space(out: CommandOutput, min_free_mb: Mapping[str, int]) -> list[str]:
    problems: list[str] = []
    current: str | None = None
    for line in out.stdout.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            continue
        fields = line.split()
        if current is None or not fields or fields[0] == "Filesystem":
            continue
        if len(fields) >= 6 and fields[3].isdigit():
            avail_mb = int(fields[3]) // 1024
            need = min_free_mb.get(current, 0)
            if avail_mb < need:
                problems.append(f"free space: {current} has {avail_mb} MiB, needs {need} MiB")
        elif "df:" in line:
            problems.append(f"free space: {line.strip()}")
    return problems


def lock_check(paths: Sequence[str]) -> Command:
    return Command(("sh", "-c", _LOCK_SCRIPT, "patchgate-locks", *paths), description="locks")


def parse_locks(out: CommandOutput) -> list[str]:
    problems = []
    for line in out.stdout.splitlines():
        if line.startswith("LOCKED "):
            _, path, *pids = line.split()
            pids = [p.rstrip("cefFrm") for p in pids]
            problems.append(f"lock: {path} is held by pid {', '.join(pids)}")
    return problems


def lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.splitlines()]


def parse_secured(command: Command, out: CommandOutput) -> Parsed[dict[str, str | None]]:
    """The ``SECURED NAME VERSION PATH`` / ``MISSING NAME VERSION`` lines every driver's
    rollback-material script prints: the kept file per package, None when not kept."""
    check_ok(command, out, "securing rollback material")
    value: dict[str, str | None] = {}
    unparsed: list[str] = []
    for line in lines(out.stdout):
        parts = line.split(" ")
        if parts[0] == "SECURED" and len(parts) == 4:
            value[parts[1]] = parts[3]
        elif parts[0] == "MISSING" and len(parts) == 3:
            value[parts[1]] = None
        elif line.strip():
            unparsed.append(line)
    return Parsed(value, unparsed)
