"""Stand-ins for ``yum``, ``dnf5``, ``rpm`` and ``needs-restarting`` on a (Debian) lab host,
so the yum and dnf5 drivers' commands can run through the real SSH executor: the lab has
neither tool (dnf and zypper run for real on the rpm lab hosts, tests/lab/rpm_hosts.py).

One shell script, installed under each program name in ``/usr/local/bin`` (first in the
login PATH and in sudo's ``secure_path``), appends its exact argv to
``/var/log/stub-argv.jsonl`` (one JSON object per call: ``prog`` and ``argv_b64``, the
arguments NUL-terminated and base64-encoded, so newlines and any bytes survive) and
answers with the captured outputs the driver unit tests parse
(``tests/fixtures/packages``). It keeps a tiny package state
(``/var/lib/pg-stub/installed``: ``name=evr``, ``name-evr`` or ``!name`` lines, the last
line about a name wins), so an install, a downgrade or a removal shows in the next
``rpm -q``. Not a package manager: it checks nothing, resolves nothing.

Write it into a host after ``prepare`` and before ``start``: ``install(host)``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.lab.hosts import LabHost

PROGRAMS = ("yum", "dnf5", "rpm", "needs-restarting")
LOG = "/var/log/stub-argv.jsonl"
STATE = "/var/lib/pg-stub/installed"
SHARE = "usr/local/share/pg-stub"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "packages"
OUTPUTS = (
    "dnf-check-update-el9.txt",
    "dnf-updateinfo-security-el9.txt",
    "dnf5-advisory-security-f40.txt",
    "dnf-assumeno-install-el9.txt",
    "dnf4-repoquery-available.txt",
    "dnf-needs-restarting-required.txt",
)
# What the host has "installed" at boot (both forms the state file reads).
INITIAL = {"demo-app": "1.0-1.el9", "bind-libs": "32:9.16.23-14.el9_3"}

_HISTORY = """ID     | Command line             | Date and time    | Action(s)      | Altered
-------------------------------------------------------------------------------
     7 | -y install demo-app-1.1  | 2024-04-02 09:13 | Upgrade        |    1
     6 | -y install bind-libs     | 2024-03-01 10:00 | Install        |    1
"""

STUB = r"""#!/bin/sh
# PatchGate lab stand-in for yum, dnf5, rpm and needs-restarting
# (tests/lab/rpm_stubs.py): records its argv, answers with captured outputs.
prog=${0##*/}
# argv NUL-terminated (an argument cannot hold a NUL), base64: one process per call
args=""; [ $# -eq 0 ] || args=$(printf '%s\0' "$@" | base64 -w0)
printf '{"prog":"%s","argv_b64":"%s"}\n' "$prog" "$args" >> /var/log/stub-argv.jsonl
F=/usr/local/share/pg-stub
S=/var/lib/pg-stub/installed

sub=""; dry=0; dest=""; ops=""  # ops: positions of the operands in "$@"
take_dest=0; after_dashes=0; n=0
for a in "$@"; do
  n=$((n + 1))
  if [ "$take_dest" = 1 ]; then dest=$a; take_dest=0; continue; fi
  if [ "$after_dashes" = 0 ]; then
    case "$a" in
      --) after_dashes=1; continue ;;
      --dry-run|--assumeno) dry=1; continue ;;
      --destdir) take_dest=1; continue ;;
      -*) continue ;;
    esac
    if [ -z "$sub" ]; then sub=$a; continue; fi
  fi
  ops="$ops$n "
done

# the operand with index $1 (1-based position in "$@" of the original call)
operand() { shift "$1"; printf '%s' "$1"; }

installed_evr() {  # the last state line about package $1; empty if absent or removed
  evr=""
  [ -f "$S" ] || return 0
  while IFS= read -r l; do
    case "$l" in
      "!$1") evr="" ;;
      "$1="*) evr=${l#"$1="} ;;
      "$1-"[0-9]*) evr=${l#"$1-"} ;;
    esac
  done < "$S"
  printf '%s' "$evr"
}

record() {  # install/downgrade/remove operands into the state file
  mode=$1; shift
  for i in $ops; do
    spec=$(operand "$i" "$@")
    case "$spec" in
      /*) spec=${spec##*/}; spec=${spec%.*.rpm} ;;
    esac
    if [ "$mode" = remove ]; then printf '!%s\n' "$spec" >> "$S"
    else
      case "$spec" in
        *) printf '%s\n' "$spec" >> "$S" ;;
      esac
    fi
  done
}

case "$prog" in
rpm)
  case "$1" in
    -qa) exit 0 ;;
    -q)
      shift
      while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
      [ "$1" = -- ] && shift
      absent=0
      for name in "$@"; do
        evr=$(installed_evr "$name")
        if [ -n "$evr" ]; then printf '%s\t%s\tnoarch\n' "$name" "$evr"
        else echo "package $name is not installed"; absent=$((absent + 1)); fi
      done
      exit "$absent" ;;
  esac
  echo "rpm stub: unexpected arguments" >&2; exit 2 ;;
needs-restarting)
  cat "$F/dnf-needs-restarting-required.txt"; exit 1 ;;
*)  # yum, dnf5
  case "$sub" in
    makecache) echo "Metadata cache created."; exit 0 ;;
    check-update) cat "$F/dnf-check-update-el9.txt"; exit 100 ;;
    updateinfo) cat "$F/dnf-updateinfo-security-el9.txt"; exit 0 ;;
    advisory) cat "$F/dnf5-advisory-security-f40.txt"; exit 0 ;;
    repoquery) cat "$F/dnf4-repoquery-available.txt"; exit 0 ;;
    needs-restarting) cat "$F/dnf-needs-restarting-required.txt"; exit 1 ;;
    history)
      case " $* " in *" list "*) cat "$F/dnf-history.txt"; exit 0 ;; esac
      exit 1 ;;
    install)
      if [ "$dry" = 1 ]; then cat "$F/dnf-assumeno-install-el9.txt"; exit 1; fi
      record install "$@"; echo "Complete!"; exit 0 ;;
    downgrade) record install "$@"; echo "Complete!"; exit 0 ;;
    remove) record remove "$@"; echo "Complete!"; exit 0 ;;
    download)
      for i in $ops; do
        spec=$(operand "$i" "$@")
        f=$(printf '%s' "$spec" | sed 's/-[0-9][0-9]*:/-/')
        : > "$dest/$f.noarch.rpm"
      done
      exit 0 ;;
  esac ;;
esac
echo "$prog stub: unexpected arguments" >&2
exit 2
"""


def install(host: LabHost) -> None:
    """Write the stand-ins, their outputs and the initial state into the host's upper
    dir (after ``prepare``, before ``start``)."""
    for program in PROGRAMS:
        host._write(f"usr/local/bin/{program}", STUB, 0o755)
    for name in OUTPUTS:
        host._write(f"{SHARE}/{name}", (FIXTURES / name).read_text())
    host._write(f"{SHARE}/dnf-history.txt", _HISTORY)
    host._write(STATE.lstrip("/"), "".join(f"{n}={v}\n" for n, v in INITIAL.items()), 0o644)
    (host.state_dir / "upper" / STATE.lstrip("/")).parent.chmod(0o755)
    host._write(LOG.lstrip("/"), "", 0o666)


def clear(host: LabHost) -> None:
    host.sh(f": > {LOG}")


def calls(host: LabHost) -> list[tuple[str, list[str]]]:
    """Every recorded call, in order: (program, argv without the program name)."""
    out = []
    for line in host.sh(f"cat {LOG}").splitlines():
        entry = json.loads(line)
        raw = base64.b64decode(entry["argv_b64"]).decode("utf-8", "surrogateescape")
        out.append((entry["prog"], raw.split("\0")[:-1]))
    return out
