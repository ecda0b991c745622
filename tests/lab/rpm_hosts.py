"""rpm lab hosts: a LabHost (tests/lab/hosts.py) booted from the rpm image of its kind
(tests/lab/rpm_image.py), whose upper dir says it is an rpm distribution
(``/etc/os-release``) and points the package manager at the lab's rpm-md repository
(tests/lab/rpm_repo.py) instead of the apt one."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from tests.lab.hosts import LabHost

OS_RELEASE = {
    "dnf": (
        'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\n'
        'ID_LIKE="fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
        'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow) (PatchGate lab)"\n'
    ),
    "zypper": (
        'NAME="openSUSE Leap"\nVERSION="15.6"\nID="opensuse-leap"\n'
        'ID_LIKE="suse opensuse"\nVERSION_ID="15.6"\n'
        'PRETTY_NAME="openSUSE Leap 15.6 (PatchGate lab)"\n'
    ),
}

DNF_REPO = """[lab]
name=PatchGate lab
baseurl={url}
enabled=1
gpgcheck=0
metadata_expire=0
"""

ZYPPER_REPO = """[lab]
name=PatchGate lab
baseurl={url}
enabled=1
autorefresh=1
gpgcheck=0
type=rpm-md
keeppackages=0
"""


@dataclass
class RpmLabHost(LabHost):
    kind: str = "dnf"

    def prepare(self, *, new_host_key: bool = True) -> None:
        super().prepare(new_host_key=new_host_key)
        self._write("etc/apt/sources.list.d/lab.list", "")
        self._write("etc/os-release", OS_RELEASE[self.kind])
        if self.kind == "dnf":
            self._write("etc/yum.repos.d/lab.repo", DNF_REPO.format(url=self.repo_url))
        else:
            self._write("etc/zypp/repos.d/lab.repo", ZYPPER_REPO.format(url=self.repo_url))

    def start(self) -> None:
        """Boot, then pin ``/proc/1``'s inode with a process whose working directory it is.
        ``dnf needs-restarting -r`` takes the boot time as the later of "now - uptime" and
        the mtime of ``/proc/1``, and procfs stamps an inode with the time it is looked up:
        in a container nothing holds it, so it can read "just now" and hide every update
        (a real host's early boot processes hold it). It compares whole seconds
        (``installtime > boot_time``): wait for the next second, so that a package
        installed right after the boot counts as newer than the boot."""
        super().start()
        self.sh(
            "cd /proc/1 && (setsid sleep 2147483647 </dev/null >/dev/null 2>&1 &)\n"
            "m=$(stat -c %Y /proc/1); i=0\n"
            'while [ "$(date +%s)" -le "$m" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done'
        )

    def installed(self, package: str) -> str | None:
        """``version-release`` in the rpm database, or None."""
        out = self.sh(
            f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}\\n' {shlex.quote(package)}", check=False
        ).split()
        return out[0] if len(out) == 1 and "not" not in out[0] else None

    def dnf_history(self, package: str) -> list[str]:
        """What dnf's history says was done to the package, oldest transaction first
        (``Install demo-app-1.0-1.noarch``, ``Upgrade …``, ``Downgrade …``; the versions
        replaced, "Upgraded"/"Downgraded", left out)."""
        out = self.sh(f"dnf -q history info {shlex.quote(package)}", check=False)
        actions = ("Install", "Upgrade", "Downgrade", "Reinstall", "Removed", "Erase")
        done: list[tuple[int, str]] = []
        tid = 0
        for line in out.splitlines():
            words = line.split()
            if words[:2] == ["Transaction", "ID"]:
                tid = int(words[-1])
            elif len(words) >= 2 and words[0] in actions and words[1].startswith(package + "-"):
                done.append((tid, f"{words[0]} {words[1]}"))
        return [text for _, text in sorted(done, key=lambda d: d[0])]

    def dnf_transactions(self) -> list[tuple[int, str]]:
        """dnf's history, oldest first: (transaction id, its command line)."""
        out = self.sh("dnf -q history list", check=False)
        rows = []
        for line in out.splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) == 5 and cells[0].isdigit():
                rows.append((int(cells[0]), cells[1]))
        return sorted(rows)

    def zypp_history(self, package: str) -> list[str]:
        """What libzypp's history (/var/log/zypp/history) says was done to the package,
        oldest first: ``install 1.1-1`` or ``remove 1.0-1``."""
        log = self.sh("cat /var/log/zypp/history 2>/dev/null", check=False)
        done = []
        for line in log.splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and cells[1] in ("install", "remove") and cells[2] == package:
                done.append(f"{cells[1]} {cells[3]}")
        return done
