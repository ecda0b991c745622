"""Fan-out benchmark: ``true`` on N loopback sshd hosts through the SshExecutor (Fabric:
``Connection.run``, and its read-only probe path), the paramiko executor it replaced
(bench/paramiko_baseline.py, a baseline only), plain OpenSSH (``xargs -P``) and Ansible
ad-hoc (``-m raw``, ``-m command``), in one run.

    sudo .venv/bin/python bench/fanout.py            # 50, 200, 500 hosts (see bench/README.md)
    sudo .venv/bin/python bench/fanout.py --sizes 200 \
        --tools executor,executor-probe,paramiko-base,openssh

The "hosts": a few sshd processes from the lab's cached image (tests/lab/image.py), in
one ``unshare --mount --pid --fork --kill-child`` chroot on an overlay, each sshd
listening on up to 16 loopback addresses (127.0.40.1 … 127.0.41.250), with
``MaxStartups`` raised in its config file. A throwaway client key and a known_hosts
file are written for the run; every tool verifies host keys against it and uses
curve25519 key exchange. Killing the namespace's PID 1 removes every process and mount;
the work directory is deleted at the end (also on failure or Ctrl-C).

Each tool runs as a child process; its client CPU (user+sys, every descendant included:
the bench is a child subreaper, so backgrounded ssh ControlPersist masters are counted
too) comes from wait4, peak RSS is the sampled sum over the child's process tree. For
the executor, the figures cover the fan-out itself (executor built, known_hosts parsed,
every host run) measured inside the worker; interpreter start-up is printed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
USER = "patchgate"  # exists in the lab image, password field "*"
LISTEN_PER_SSHD = 16  # OpenSSH's MAX_LISTEN_SOCKS
KEX = "curve25519-sha256"
TARGETS = {"cpu_ms": 6.0, "vs_openssh": 1.1, "vs_baseline": 0.85}


def address(i: int) -> str:
    return f"127.0.{40 + i // 250}.{i % 250 + 1}"


# --- the hosts ---------------------------------------------------------------------------


@dataclass
class Box:
    """Many sshd "hosts" in one throwaway chroot namespace."""

    work: Path
    count: int
    port: int = 22
    process: subprocess.Popen[bytes] | None = None
    known_hosts: Path = field(init=False)
    client_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.known_hosts = self.work / "known_hosts"
        self.client_key = self.work / "client_key"

    def _keygen(self, path: Path, comment: str) -> str:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            timeout=30,
        )
        kind, blob = path.with_suffix(".pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def prepare(self, image: Path) -> None:
        upper = self.work / "upper"
        for sub in ("upper", "work", "merged"):
            (self.work / sub).mkdir()
        bench = upper / "etc/ssh/bench"
        bench.mkdir(parents=True)
        client_pub = self._keygen(self.client_key, "patchgate-bench")
        (bench / "authorized_keys").write_text(client_pub + "\n")
        lines = []
        groups = (self.count + LISTEN_PER_SSHD - 1) // LISTEN_PER_SSHD
        for g in range(groups):
            key = self.work / f"hostkey{g}"
            pub = self._keygen(key, f"bench-{g}")
            shutil.copy(key, bench / f"key{g}")
            (bench / f"key{g}").chmod(0o600)
            members = range(g * LISTEN_PER_SSHD, min(self.count, (g + 1) * LISTEN_PER_SSHD))
            listen = "".join(f"ListenAddress {address(i)}:{self.port}\n" for i in members)
            (bench / f"sshd{g}.conf").write_text(
                listen + f"HostKey /etc/ssh/bench/key{g}\n"
                "AuthorizedKeysFile /etc/ssh/bench/authorized_keys\n"
                "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin no\nUseDNS no\nMaxSessions 100\n"
                # The default 10:30:100 drops most connections at concurrency 50; only
                # the config file sets it (not -o on the command line).
                "MaxStartups 1000:30:2000\nLoginGraceTime 60\n"
                f"PidFile /run/sshd{g}.pid\n"
            )
            for i in members:
                name = address(i) if self.port == 22 else f"[{address(i)}]:{self.port}"
                lines.append(f"{name} {pub}\n")
        self.known_hosts.write_text("".join(lines))
        (upper / "bench-init").write_text(
            "#!/bin/sh\ntrap 'kill -KILL -1; exit 0' TERM INT\nmkdir -p /run/sshd\n"
            f"for g in $(seq 0 {groups - 1}); do /usr/sbin/sshd -f /etc/ssh/bench/sshd$g.conf"
            " || exit 1; done\necho READY\nwhile :; do sleep 1 & wait $!; done\n"
        )
        (upper / "bench-init").chmod(0o755)
        self._image = image

    def start(self) -> None:
        m = shlex.quote(str(self.work / "merged"))
        lower = shlex.quote(str(self._image))
        upper = shlex.quote(str(self.work / "upper"))
        wdir = shlex.quote(str(self.work / "work"))
        # Ansible's command module needs a Python on the "host": the machine's own
        # (same Debian release as the image) is bind-mounted in, read-only.
        py = os.path.realpath("/usr/bin/python3")
        pylib = f"/usr/lib/python3.{sys.version_info.minor}"
        binds = ""
        if os.path.exists(py) and os.path.isdir(pylib):
            binds = (
                f"touch {m}/usr/bin/python3b && mount --bind -o ro {py} {m}/usr/bin/python3b\n"
                f"mkdir -p {m}{pylib} && mount --rbind {pylib} {m}{pylib}\n"
            )
            for lib in ("libexpat.so.1",):
                src = f"/lib/x86_64-linux-gnu/{lib}"
                if os.path.exists(src):
                    binds += (
                        f"[ -e {m}{src} ] || {{ touch {m}{src} && mount --bind {src} {m}{src}; }}\n"
                    )
        script = f"""set -e
mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={wdir} {m}
mount -t proc proc {m}/proc
mount -t tmpfs -o mode=755 tmpfs {m}/run
mount -t tmpfs -o mode=1777 tmpfs {m}/tmp
mount -t tmpfs -o mode=755 tmpfs {m}/dev
for n in null zero full random urandom tty; do
    touch {m}/dev/$n; mount --bind /dev/$n {m}/dev/$n
done
mkdir -p {m}/dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {m}/dev/pts
ln -s pts/ptmx {m}/dev/ptmx
{binds}exec chroot {m} /bench-init
"""
        log = open(self.work / "box.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
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
        deadline = time.monotonic() + 60
        for i in range(self.count):
            while not _banner(address(i), self.port):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    tail = (self.work / "box.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"sshd on {address(i)} did not answer:\n{tail}")
                time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)  # --kill-child: PID 1 and all go
            process.wait(timeout=15)


def _banner(addr: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((addr, port), timeout=1) as sock:
            sock.settimeout(2)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


# --- measuring a child ---------------------------------------------------------------------


@dataclass
class Measure:
    tool: str
    hosts: int
    wall: float
    cpu: float  # seconds, user+sys of the whole process tree
    rss_mb: float  # peak of the summed RSS of the process tree
    ok: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.hosts / self.wall if self.wall else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.hosts


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                kids = [int(k) for k in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
                out += kids
                todo += kids
    return out


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_measured(
    argv: list[str], *, timeout: float, env: dict[str, str] | None = None, stdin: Path | None = None
) -> tuple[int, float, float, float, str]:
    """Run argv; return (exit, wall s, CPU s of it and every descendant, peak tree RSS MB,
    stdout). Orphaned descendants (re-parented to us, the subreaper) are killed after it
    ends and reaped, so their CPU counts too."""
    peak = 0
    done = threading.Event()
    out_path = Path(tempfile.mkstemp(prefix="fanout-out-")[1])
    with open(out_path, "wb") as out, open(stdin or os.devnull, "rb") as inp:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=subprocess.STDOUT, env=env)

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, sum(_rss_kb(p) for p in [proc.pid, *_descendants(proc.pid)]))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu = 0.0
        try:
            _, status, usage = os.wait4(proc.pid, 0) if timeout <= 0 else _wait4(proc, timeout)
        finally:
            wall = time.monotonic() - start
            done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        # Backgrounded descendants (ssh ControlPersist masters) became our children.
        orphans = _direct_children()
        for pid in orphans:
            for p in [*_descendants(pid), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGTERM)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                _, _, usage = os.wait4(pid, 0)
                cpu += usage.ru_utime + usage.ru_stime
    text = out_path.read_text(errors="replace")
    out_path.unlink()
    return proc.returncode, wall, cpu, peak / 1024, text


_BOX_PID: list[int] = []


def _direct_children() -> list[int]:
    me = os.getpid()
    kids: list[int] = []
    for t in os.listdir(f"/proc/{me}/task"):
        with contextlib.suppress(FileNotFoundError):
            kids += [int(k) for k in Path(f"/proc/{me}/task/{t}/children").read_text().split()]
    return [k for k in kids if k not in _BOX_PID]


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.monotonic() > deadline:
            proc.kill()
            return os.wait4(proc.pid, 0)
        time.sleep(0.02)


# --- the tools ---------------------------------------------------------------------------


# The PatchGate backends measured, each in its own child process:
#   executor        SshExecutor.run_argv: Fabric Connection.run (invoke's Runner) per host
#   executor-probe  the executor's read-only fast path (facts, assessment probes): a
#                   session channel on the Fabric connection's transport
#   paramiko-base   the executor before issue 17 (bench/paramiko_baseline.py), a baseline
MODES = ("executor", "executor-probe", "paramiko-base")


def tool_executor(box: Box, n: int, conc: int, work: Path, mode: str = "executor") -> Measure:
    argv = [
        sys.executable,
        __file__,
        "--_worker",
        str(n),
        "--_mode",
        mode,
        "--concurrency",
        str(conc),
        "--_work",
        str(work),
    ]
    code, wall, cpu, rss, out = run_measured(argv, timeout=600)
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"{mode} worker failed ({code}):\n{out[-3000:]}") from None
    note = f"process total {wall:.2f}s / {1000 * cpu / n:.1f} ms per host with start-up"
    if data["errors"]:
        note += f"; first error: {data['errors'][0]}"
    return Measure(mode, n, data["wall"], data["cpu"], rss, data["ok"], note)


def worker(n: int, conc: int, work: Path, mode: str) -> None:
    """Child process: ``true`` on every host through one PatchGate backend (MODES); one
    connection per host, opened and closed, in a pool of ``conc`` threads."""
    sys.path.insert(0, str(ROOT))
    from integrations.ssh import SshExecutor, SshOptions
    from workflows.ports import InventoryHost

    hosts = [
        InventoryHost(
            name=f"h{i:03d}",
            address=address(i),
            user=USER,
            private_key_file=str(work / "client_key"),
            become=False,
        )
        for i in range(n)
    ]

    async def main() -> tuple[float, float, list[Any]]:
        t0, c0 = time.monotonic(), time.process_time()
        if mode == "paramiko-base":
            sys.path.insert(0, str(ROOT / "bench"))
            from paramiko_baseline import fan_out

            results: list[Any] = fan_out(
                [(h.name, h.connect_address, 22, USER) for h in hosts],
                key_file=work / "client_key",
                known_hosts=work / "known_hosts",
                command="true",
                concurrency=conc,
            )
        else:
            # No user OpenSSH config: the bench's hosts are all in the inventory.
            options = SshOptions(
                known_hosts=work / "known_hosts", concurrency=conc, ssh_config=None
            )
            executor = SshExecutor(options)
            if mode == "executor":
                runs = [executor.run_argv(h, ["true"], 60) for h in hosts]
            else:
                runs = [executor._session(h, lambda c: c.probe("true", timeout=60)) for h in hosts]
            results = await asyncio.gather(*runs, return_exceptions=True)
            executor.close()
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        return wall, cpu, results

    wall, cpu, results = asyncio.run(main())
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    errors += [
        f"exit {r.exit_code}" for r in results if not isinstance(r, BaseException) and r.exit_code
    ]
    ok = n - len(errors)
    print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok, "errors": errors[:5]}))


def tool_openssh(box: Box, n: int, conc: int, work: Path) -> Measure:
    hostlist = work / f"hosts-{n}.txt"
    hostlist.write_text("".join(address(i) + "\n" for i in range(n)))
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        f"KexAlgorithms={KEX}",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={box.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=15",
        "-i",
        str(box.client_key),
        "-l",
        USER,
        "-p",
        str(box.port),
    ]
    argv = ["xargs", "-P", str(conc), "-I{}", *ssh, "{}", "true"]
    code, wall, cpu, rss, out = run_measured(argv, timeout=600, stdin=hostlist)
    # xargs exits 0 only when every ssh did; 123 when any failed.
    failed = out.count("\n") if code else 0
    note = "" if code == 0 else f"xargs exit {code}: {out[-300:]!r}"
    return Measure("openssh", n, wall, cpu, rss, n if code == 0 else n - max(failed, 1), note)


def ansible_bin(work: Path) -> tuple[Path, str]:
    """ansible next to this Python, or ansible-core in a temporary venv (said so)."""
    here = Path(sys.executable).parent / "ansible"
    if here.exists():
        return here, ""
    found = shutil.which("ansible")
    if found:
        return Path(found), ""
    venv = work / "ansible-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "ansible-core>=2.15"], check=True, timeout=600
    )
    return venv / "bin/ansible", "ansible-core installed into a temporary venv for this run"


def tool_ansible(box: Box, n: int, conc: int, work: Path, module: str, binary: Path) -> Measure:
    inv = work / f"inventory-{n}.ini"
    inv.write_text("[bench]\n" + "".join(f"h{i:03d} ansible_host={address(i)}\n" for i in range(n)))
    cfg = work / "ansible.cfg"
    # Ansible's own defaults (ControlPersist, no pipelining) plus strict host keys against
    # the bench's known_hosts and curve25519, like the other tools.
    cfg.write_text(
        "[defaults]\nhost_key_checking = True\n"
        f"forks = {conc}\nremote_user = {USER}\nprivate_key_file = {box.client_key}\n"
        "interpreter_python = /usr/bin/python3b\nlocal_tmp = "
        + str(work / "ansible-local")
        + "\nremote_tmp = /tmp/.ansible-tmp\ngathering = explicit\nstdout_callback = minimal\n"
        "retry_files_enabled = False\n"
        "[ssh_connection]\n"
        f"ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o KexAlgorithms={KEX} "
        f"-o UserKnownHostsFile={box.known_hosts} -o GlobalKnownHostsFile=/dev/null "
        "-o IdentitiesOnly=yes -F /dev/null\n"
        f"control_path_dir = {work / 'cp'}\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOME": str(work / "ansible-home")}
    argv = [str(binary), "bench", "-i", str(inv), "-m", module, "-a", "true", "-f", str(conc)]
    code, wall, cpu, rss, out = run_measured(argv, timeout=900, env=env)
    ok = sum(1 for line in out.splitlines() if " | CHANGED" in line or " | SUCCESS" in line)
    note = "" if ok == n else f"exit {code}: {out[-400:]!r}"
    return Measure(f"ansible {module}", n, wall, cpu, rss, ok, note)


# --- main --------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    import cryptography
    import paramiko

    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {sys.version.split()[0]}, {ssh}, "
        f"paramiko {paramiko.__version__}, cryptography {cryptography.__version__}"
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def table(rows: list[Measure]) -> str:
    out = [
        f"{'tool':<16} {'hosts':>5} {'ok':>5} {'wall s':>7} {'hosts/s':>8} "
        f"{'CPU ms/host':>11} {'peak RSS MB':>11} {'x OpenSSH':>9} {'x Ansible cmd':>13}"
    ]
    for r in rows:
        base = {m.tool: m for m in rows if m.hosts == r.hosts}
        ossh = base.get("openssh")
        acmd = base.get("ansible command")
        vs_o = f"{r.rate / ossh.rate:.2f}" if ossh and ossh.rate else "-"
        vs_a = f"{r.rate / acmd.rate:.1f}" if acmd and acmd.rate else "-"
        out.append(
            f"{r.tool:<16} {r.hosts:>5} {r.ok:>5} {r.wall:>7.2f} {r.rate:>8.1f} "
            f"{r.cpu_ms:>11.1f} {r.rss_mb:>11.0f} {vs_o:>9} {vs_a:>13}"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--tools",
        default="executor,executor-probe,paramiko-base,openssh,ansible-raw,ansible-command",
    )
    parser.add_argument(
        "--ansible-command-max",
        type=int,
        default=200,
        help="skip Ansible's command module above this many hosts (slow)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--_worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_mode", default="executor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        worker(args._worker, args.concurrency, args._work, args._mode)
        return 0
    if os.geteuid() != 0:
        print("needs root (unshare, mounts, chroot)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = args.tools.split(",")
    if max(sizes) > 500:
        print("at most 500 hosts (127.0.40.1 - 127.0.41.250)", file=sys.stderr)
        return 2
    # Children's orphans (ssh ControlPersist masters) come back to us: counted, reaped.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    sys.path.insert(0, str(ROOT))
    if not shutil.which("mmdebstrap"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"],
            check=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    from tests.lab.image import build_image

    image = build_image()
    work = Path(tempfile.mkdtemp(prefix="patchgate-fanout-"))
    box = Box(work, max(sizes))
    rows: list[Measure] = []
    notes: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"load average at start: {_load()}", flush=True)
        box.prepare(image)
        t0 = time.monotonic()
        box.start()
        assert box.process is not None
        _BOX_PID.append(box.process.pid)
        print(
            f"{box.count} sshd hosts up in {time.monotonic() - t0:.1f}s "
            f"({(box.count + LISTEN_PER_SSHD - 1) // LISTEN_PER_SSHD} sshd processes)",
            flush=True,
        )
        ansible = None
        if any(t.startswith("ansible") for t in tools):
            ansible, note = ansible_bin(work)
            if note:
                notes.append(note)
        for n in sizes:
            for tool in tools:
                if tool == "ansible-command" and n > args.ansible_command_max:
                    notes.append(
                        f"ansible command skipped at {n} hosts "
                        f"(--ansible-command-max {args.ansible_command_max})"
                    )
                    continue
                if tool in MODES:
                    m = tool_executor(box, n, args.concurrency, work, tool)
                elif tool == "openssh":
                    m = tool_openssh(box, n, args.concurrency, work)
                elif tool in ("ansible-raw", "ansible-command"):
                    assert ansible is not None
                    m = tool_ansible(box, n, args.concurrency, work, tool.split("-")[1], ansible)
                else:
                    raise SystemExit(f"unknown tool {tool}")
                rows.append(m)
                print(
                    f"  {m.tool:<16} {n:>4} hosts: {m.rate:6.1f} hosts/s, "
                    f"{m.cpu_ms:6.1f} ms CPU/host, {m.rss_mb:5.0f} MB, ok {m.ok}/{n}"
                    + (f"  [{m.note}]" if m.note else ""),
                    flush=True,
                )
    finally:
        box.stop()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))
    print(f"load average at end: {_load()}")
    if os.getloadavg()[1] > (os.cpu_count() or 1):
        notes.append(
            "the machine was busy with other work (5-min load above its CPU count): "
            "rates and CPU/host are worse than on a quiet machine; ratios hold better"
        )
    for note in notes:
        print("note:", note)
    verdict = check(rows)
    for line in verdict:
        print(line)
    if args.json:
        args.json.write_text(json.dumps([m.__dict__ for m in rows], indent=2))
    return 0


def check(rows: list[Measure]) -> list[str]:
    """Issue 17's targets for the Fabric backend at 200 hosts: >= 1.1x OpenSSH's hosts/s,
    within 15% of the paramiko baseline's, <= 6 ms client CPU per host."""
    out = []
    at = {(m.tool, m.hosts): m for m in rows}
    base = at.get(("paramiko-base", 200))
    ssh = at.get(("openssh", 200))
    for mode in ("executor", "executor-probe"):
        ex = at.get((mode, 200))
        if ex is None:
            continue
        out.append(
            f"{mode}: <= {TARGETS['cpu_ms']:g} ms CPU/host at 200: {ex.cpu_ms:.1f} "
            f"{'MET' if ex.cpu_ms <= TARGETS['cpu_ms'] else 'MISSED'}"
        )
        if ssh is not None and ssh.rate:
            ratio = ex.rate / ssh.rate
            out.append(
                f"{mode}: >= {TARGETS['vs_openssh']:g}x OpenSSH at 200: {ratio:.2f}x "
                f"{'MET' if ratio >= TARGETS['vs_openssh'] else 'MISSED'}"
            )
        if base is not None and base.rate:
            ratio = ex.rate / base.rate
            out.append(
                f"{mode}: within 15% of the paramiko baseline at 200: {ratio:.2f}x "
                f"{'MET' if ratio >= TARGETS['vs_baseline'] else 'MISSED'}"
            )
    return out or ["targets: need the executor at 200 hosts"]


if __name__ == "__main__":
    sys.exit(main())
