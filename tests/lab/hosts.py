"""Lab hosts: an overlayfs upper dir on the cached image + a chroot inside
``unshare --mount --pid --uts --ipc --cgroup --time --fork --kill-child``.

Every mount is made inside the host's own mount namespace, so when its PID 1 dies
(``stop``) every mount and process goes with it; nothing leaks into the machine.
Out-of-band control (stopping sshd, reading dpkg's log) goes through ``nsenter``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.net import lab_octet, port_open, wait_port, wait_port_closed

USER = "patchgate"
BOOT_TIMEOUT = 30.0
APT_SOURCE = "deb [trusted=yes] {url} ./\n"


def ssh_port() -> int:
    """22 unless something already listens on every address's port 22."""
    return 2222 if port_open(f"127.{lab_octet()}.30.250", 22) else 22


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass
class LabHost:
    name: str
    index: int
    image: Path
    state_dir: Path
    repo_url: str
    client_public_key: str
    port: int = 22
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host_key_pub: str = ""

    @property
    def address(self) -> str:
        return f"127.{lab_octet()}.30.{self.index}"

    @property
    def health_url(self) -> str:
        return f"http://{self.address}:8080/cgi-bin/health"

    @property
    def known_hosts_line(self) -> str:
        target = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{target} {self.host_key_pub}"

    # --- lifecycle ---------------------------------------------------------------------------

    def _write(self, rel: str, text: str, mode: int = 0o644, uid: int = 0) -> None:
        path = self.state_dir / "upper" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        os.chown(path, uid, uid)

    def _user_uid(self) -> int:
        for line in (self.image / "etc/passwd").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == USER:
                return int(parts[2])
        raise RuntimeError(f"no {USER} user in the image")

    template: Path | None = None

    def prepare(self, *, new_host_key: bool = True) -> None:
        """Write the host's identity into a fresh upper dir (keeps the host key unless asked)."""
        keys = self.state_dir / "hostkey"
        if new_host_key or not (keys / "key").exists():
            shutil.rmtree(keys, ignore_errors=True)
            keys.mkdir(parents=True)
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    self.name,
                    "-f",
                    str(keys / "key"),
                ],
                check=True,
                timeout=30,
            )
        pub = (keys / "key.pub").read_text().split()
        self.host_key_pub = f"{pub[0]} {pub[1]}"
        for sub in ("upper", "work", "merged"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            (self.state_dir / sub).mkdir(parents=True)
        if self.template is not None:
            subprocess.run(
                ["cp", "-a", f"{self.template}/.", str(self.state_dir / "upper")],
                check=True,
                timeout=60,
            )
        uid = self._user_uid()
        self._write("etc/hostname", self.name + "\n")
        self._write("etc/hosts", f"127.0.0.1 localhost\n{self.address} {self.name}\n")
        self._write("etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        self._write("etc/ssh/ssh_host_ed25519_key", (keys / "key").read_text(), 0o600)
        self._write("etc/ssh/ssh_host_ed25519_key.pub", (keys / "key.pub").read_text())
        self._write(
            "etc/ssh/sshd_config.d/lab.conf",
            f"ListenAddress {self.address}:{self.port}\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin no\nPidFile /run/sshd.pid\nMaxStartups 500:30:1000\n"
            "MaxSessions 100\nUseDNS no\n",
        )
        self._write("etc/default/demo-app", f"LISTEN={self.address}:8080\n")
        self._write("etc/apt/sources.list.d/lab.list", APT_SOURCE.format(url=self.repo_url))
        self._write("lab/boot_id", str(uuid.uuid4()) + "\n")
        home = f"home/{USER}/.ssh"
        self._write(f"{home}/authorized_keys", self.client_public_key + "\n", 0o600, uid)
        (self.state_dir / "upper" / home).chmod(0o700)
        os.chown(self.state_dir / "upper" / home, uid, uid)

    def start(self) -> None:
        """Boot the host and wait (bounded) until sshd sends its banner."""
        if self.process is not None:
            raise RuntimeError(f"{self.name} is already running")
        m = shlex.quote(str(self.state_dir / "merged"))
        lower = shlex.quote(str(self.image))
        upper = shlex.quote(str(self.state_dir / "upper"))
        work = shlex.quote(str(self.state_dir / "work"))
        script = f"""set -e
mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {m}
mount -t proc proc {m}/proc
mount --bind {m}/lab/boot_id {m}/proc/sys/kernel/random/boot_id
mount -t tmpfs -o mode=755 tmpfs {m}/run
mount -t tmpfs -o mode=1777 tmpfs {m}/tmp
mount -t tmpfs -o mode=755 tmpfs {m}/dev
for n in null zero full random urandom tty; do
    touch {m}/dev/$n; mount --bind /dev/$n {m}/dev/$n
done
mkdir -p {m}/dev/pts {m}/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {m}/dev/pts
ln -s pts/ptmx {m}/dev/ptmx
hostname {shlex.quote(self.name)}
exec chroot {m} /sbin/init
"""
        offset = -int(_uptime()) + 1
        log = open(self.state_dir / "console.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--uts",
                "--ipc",
                "--cgroup",
                "--time",
                f"--boottime={offset}",
                "--fork",
                "--kill-child",
                "--propagation=private",
                "sh",
                "-c",
                script,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        try:
            wait_port(self.address, self.port, timeout=BOOT_TIMEOUT, banner=True)
        except TimeoutError:
            self.stop()
            console = (self.state_dir / "console.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not boot:\n{console}") from None

    def init_pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        children = path.read_text().split()
        if not children:
            raise RuntimeError(f"{self.name}: PID 1 is gone")
        return int(children[0])

    def stop(self) -> None:
        """Kill PID 1 (and with it every process and mount of the host); bounded."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)  # --kill-child takes PID 1 down with it
        process.wait(timeout=10)

    def restart(self) -> None:
        """A cold restart: same disk (upper dir), new boot."""
        self.stop()
        self._write("lab/boot_id", str(uuid.uuid4()) + "\n")
        self.start()

    def reset(self, *, new_host_key: bool = False) -> None:
        """Throw the disk away: a freshly booted host from the image."""
        self.stop()
        self.prepare(new_host_key=new_host_key)
        self.start()

    # --- out-of-band control ---------------------------------------------------------------

    def sh(self, command: str, *, timeout: float = 60, check: bool = True) -> str:
        """Run a shell command as root inside the host (not over SSH)."""
        result = subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.init_pid()),
                "-m",
                "-u",
                "-i",
                "-p",
                "-r",
                "-w",
                "/bin/sh",
                "-c",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "LC_ALL": "C",
                "DEBIAN_FRONTEND": "noninteractive",
            },
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: {command!r} exited {result.returncode}: "
                f"{result.stdout[-1000:]}{result.stderr[-1000:]}"
            )
        return result.stdout

    def stop_sshd(self) -> None:
        self.sh("kill $(cat /run/sshd.pid)")
        wait_port_closed(self.address, self.port, timeout=10)

    def start_sshd(self) -> None:
        self.sh("/usr/sbin/sshd")
        wait_port(self.address, self.port, timeout=10, banner=True)

    def installed(self, package: str) -> str | None:
        out = self.sh(
            f"dpkg-query -W -f '${{db:Status-Abbrev}} ${{Version}}' {shlex.quote(package)}",
            check=False,
        ).split()
        return out[1] if len(out) == 2 and out[0] == "ii" else None

    def dpkg_installs(self, package: str, version: str) -> int:
        """How many times dpkg's own log says it installed/upgraded to package=version."""
        log = self.sh("cat /var/log/dpkg.log", check=False)
        return sum(
            1
            for line in log.splitlines()
            if (parts := line.split())[2:3] in (["upgrade"], ["install"], ["downgrade"])
            and parts[3].split(":")[0] == package
            and parts[5] == version
        )

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id").strip()


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} still alive")
