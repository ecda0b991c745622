"""The lab's rpm-md repository: the apt repository's demo story (tests/lab/repo.py) as
noarch rpms built with rpmbuild, indexed with createrepo_c, with an ``updateinfo.xml``
added by modifyrepo_c, served by busybox httpd (its own port on the repository address).

| package          | behaviour                                                      |
|------------------|----------------------------------------------------------------|
| lab-base 1.0     | provides /bin/sh & co: the rpm database starts empty, and the  |
|                  | scriptlets' automatic ``Requires: /bin/sh`` needs a provider   |
| demo-app 1.0/1.1 | healthy: GET /cgi-bin/health answers 200 with the version      |
| demo-app 1.2     | installs fine, health answers 503                              |
| demo-app 1.3     | %post exits 1                                                  |
| demo-kernel 1.1  | a core package for ``needs-restarting -r`` (image config) and  |
|                  | ``installhint(reboot-needed)`` for zypper                      |

``updateinfo.xml``: LAB-2026:0001, a security advisory (severity Important, two CVEs)
fixed by demo-app 1.1; LAB-2026:0002, a bugfix advisory for demo-kernel 1.1. An
advisory is published only while the package version it names is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.lab.repo import INIT_SCRIPT, Repo, _health

RELEASE = "1"

SPEC = """Name: {name}
Version: {version}
Release: {release}
Summary: PatchGate lab package {name} {version}
License: MIT
BuildArch: noarch
AutoReqProv: no
{extra}
%description
PatchGate lab package {name} {version}.

%install
mkdir -p %{{buildroot}}
cp -a {payload}/. %{{buildroot}}/

{scripts}

%files
{files}
"""

# stop, wait until the old server has let go of the port, start (the init script's
# "restart" races: the new busybox httpd fails to bind while the old one is exiting)
APP_POST = """%post
mkdir -p /etc/rc2.d
ln -sf ../init.d/demo-app /etc/rc2.d/S01demo-app
old=$(cat /run/demo-app.pid 2>/dev/null)
/etc/init.d/demo-app stop
i=0
while [ -n "$old" ] && kill -0 "$old" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
/etc/init.d/demo-app start
"""
APP_POST_FAILS = """%post
echo 'demo-app: configuration failed' >&2
exit 1
"""
APP_PREUN = """%preun
if [ "$1" = 0 ]; then /etc/init.d/demo-app stop; rm -f /etc/rc2.d/S01demo-app; fi
"""
KERNEL_POST = """%post
if [ "$1" -gt 1 ]; then
    echo '*** System restart required ***' > /run/reboot-required
fi
"""

# (package=version, id, type, severity, CVEs, title)
ADVISORY_DATA = (
    ("demo-app=1.1", "LAB-2026:0001", "security", "Important",
     ("CVE-2026-10001", "CVE-2026-10002"), "Security update for demo-app"),
    ("demo-kernel=1.1", "LAB-2026:0002", "bugfix", "None", (),
     "Recommended update for demo-kernel (needs a reboot)"),
)  # fmt: skip

UPDATE = """  <update from="lab@example.invalid" status="stable" type="{kind}" version="1">
    <id>{id}</id>
    <title>{title}</title>
    <severity>{severity}</severity>
    <issued date="2026-12-01 00:00:00"/>
    <updated date="2026-12-01 00:00:00"/>
    <references>
{references}    </references>
    <description>{title}.</description>
    <pkglist>
      <collection short="lab">
        <name>lab</name>
        <package name="{name}" epoch="0" version="{version}" release="{release}"
                 arch="noarch" src="{name}-{version}-{release}.src.rpm">
          <filename>{name}-{version}-{release}.noarch.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
"""
REFERENCE = (
    '      <reference href="https://www.cve.org/CVERecord?id={cve}" id="{cve}"'
    ' type="cve" title="{cve}"/>\n'
)


def updateinfo(published: set[str]) -> str | None:
    """updateinfo.xml for the advisories whose package version is published (or None)."""
    updates = []
    for spec, advisory_id, kind, severity, cves, title in ADVISORY_DATA:
        name, version = spec.split("=")
        if f"{name}-{version}-{RELEASE}.noarch.rpm" not in published:
            continue
        references = "".join(REFERENCE.format(cve=cve) for cve in cves)
        updates.append(
            UPDATE.format(
                kind=kind,
                id=advisory_id,
                title=title,
                severity=severity,
                references=references,
                name=name,
                version=version,
                release=RELEASE,
            )
        )
    if not updates:
        return None
    return '<?xml version="1.0" encoding="UTF-8"?>\n<updates>\n' + "".join(updates) + "</updates>\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_rpm(
    out: Path,
    name: str,
    version: str,
    files: dict[str, tuple[str, int]],
    *,
    scripts: str = "",
    extra: str = "",
) -> Path:
    top = out / "build" / f"{name}-{version}"
    shutil.rmtree(top, ignore_errors=True)
    payload = top / "payload"
    payload.mkdir(parents=True)
    for rel, (text, mode) in files.items():
        _write(payload / rel, text, mode)
    listed = "\n".join(
        f"%attr({mode:o},root,root) /{rel}" for rel, (_, mode) in sorted(files.items())
    )
    spec = top / f"{name}.spec"
    spec.write_text(
        SPEC.format(
            name=name,
            version=version,
            release=RELEASE,
            extra=extra,
            payload=payload,
            scripts=scripts,
            files=listed,
        )
    )
    subprocess.run(
        [
            "rpmbuild",
            "-bb",
            "--nodeps",
            "--define",
            f"_topdir {top}",
            "--define",
            f"_rpmdir {out / 'rpms'}",
            "--define",
            "_build_id_links none",
            "--define",
            "__os_install_post %{nil}",
            "--define",
            "_binary_payload w9.gzdio",
            "--define",
            f"_dbpath {top / 'rpmdb'}",
            str(spec),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rpm = out / "rpms" / "noarch" / f"{name}-{version}-{RELEASE}.noarch.rpm"
    if not rpm.exists():
        raise RuntimeError(f"rpmbuild made no {rpm}")
    return rpm


def lab_base(out: Path) -> Path:
    provides = "\n".join(
        f"Provides: {p}"
        for p in ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/bash", "sh", "coreutils")
    )
    return build_rpm(
        out,
        "lab-base",
        "1.0",
        {"usr/share/lab-base/README": ("The Debian base system, as the rpm db sees it\n", 0o644)},
        extra=provides,
    )


def demo_app(out: Path, version: str) -> Path:
    status = "503 Service Unavailable" if version == "1.2" else "200 OK"
    return build_rpm(
        out,
        "demo-app",
        version,
        {
            "etc/init.d/demo-app": (INIT_SCRIPT, 0o755),
            "usr/share/demo-app/www/cgi-bin/health": (_health(version, status), 0o755),
            "usr/share/demo-app/www/index.html": (f"demo-app {version}\n", 0o644),
        },
        scripts=(APP_POST_FAILS if version == "1.3" else APP_POST) + APP_PREUN,
        extra="Requires(post): /bin/sh",
    )


def demo_kernel(out: Path, version: str) -> Path:
    return build_rpm(
        out,
        "demo-kernel",
        version,
        {"usr/share/demo-kernel/version": (version + "\n", 0o644)},
        scripts=KERNEL_POST,
        extra="Provides: installhint(reboot-needed)",
    )


class RpmRepo(Repo):
    """A flat rpm-md repository (``baseurl=http://addr:port/``)."""

    def publish(self, debs: Iterable[Path] = ()) -> None:
        for rpm in debs:
            if rpm.parent != self.pool:
                shutil.copy2(rpm, self.pool / rpm.name)
        self.index()

    def only(self, debs: Iterable[Path]) -> None:
        for old in self.pool.glob("*.rpm"):
            old.unlink()
        self.publish(debs)

    def withdraw(self, name: str, version: str) -> None:
        (self.pool / f"{name}-{version}-{RELEASE}.noarch.rpm").unlink(missing_ok=True)
        self.index()

    def index(self) -> None:
        shutil.rmtree(self.root / "repodata", ignore_errors=True)
        subprocess.run(
            ["createrepo_c", "--quiet", "--no-database", "--simple-md-filenames", "."],
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=60,
        )
        text = updateinfo({p.name for p in self.pool.glob("*.rpm")})
        if text is not None:
            info = self.root / "updateinfo.xml"
            info.write_text(text)
            subprocess.run(
                [
                    "modifyrepo_c",
                    "--mdtype=updateinfo",
                    "--simple-md-filenames",
                    str(info),
                    "repodata",
                ],
                cwd=self.root,
                check=True,
                capture_output=True,
                timeout=60,
            )
            info.unlink()


def build_demo_rpm_repo(root: Path) -> tuple[RpmRepo, dict[str, Path]]:
    """Every demo rpm built into ``root/rpms``; the repository starts with lab-base, demo-app
    1.0 and 1.1 and demo-kernel 1.0."""
    rpms: dict[str, Path] = {"lab-base=1.0": lab_base(root)}
    for version in ("1.0", "1.1", "1.2", "1.3"):
        rpms[f"demo-app={version}"] = demo_app(root, version)
    for version in ("1.0", "1.1"):
        rpms[f"demo-kernel={version}"] = demo_kernel(root, version)
    repo = RpmRepo(root / "rpm-repo")
    repo.publish([rpms["lab-base=1.0"], rpms["demo-app=1.0"], rpms["demo-app=1.1"],
                  rpms["demo-kernel=1.0"]])  # fmt: skip
    return repo, rpms
