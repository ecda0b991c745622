"""Where the executor's client CPU goes per host: ``run_argv(["true"])`` on loopback sshd
hosts, one at a time (no pool contention), under cProfile, grouped into stages.

    sudo .venv/bin/python bench/fanout_profile.py            # 48 hosts, 3 sshd processes
    sudo .venv/bin/python bench/fanout_profile.py --hosts 96 --top 25

Uses bench/fanout.py's throwaway sshd box (same image, keys, known_hosts). Prints CPU
per host without the profiler (process_time over the serial run), then the profile's
own-time grouped by stage: key exchange (curve25519, hashes, host-key verify), user
auth (ed25519 signing), packet layer (cipher/MAC, socket I/O), channel/command,
threads (paramiko's reader thread, pool hand-off), and the rest. cProfile sees one
thread, so every thread started during the profiled run gets its own profiler (merged);
the profilers' clock is each thread's own CPU time (``time.thread_time``), not wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fanout import USER, Box, address  # noqa: E402

STAGES = (
    # (stage, substrings of "file:function"), first match wins. C functions (sockets,
    # OpenSSL) count for the stage of the Python function that called them most.
    ("logging calls (filtered out, still paid)", ("_log", "logging", "__init__.py:log",
                                                 "isEnabledFor", "format")),
    ("key exchange", ("kex_", "_negotiate_keys", "_parse_kex_init", "_send_kex_init",
                      "_activate_", "_compute_key", "_verify_key", "ed25519key.py:verify",
                      "x25519", "crypto_sign", "generate_key")),
    ("user auth", ("auth_handler", "auth_publickey", "ed25519key.py:sign", "pkey.py")),
    ("packet layer (cipher, MAC, framing)", ("packet.py", "message.py", "common.py",
                                             "util.py", "cipher", "hmac", "_parse_debug")),
    ("channel and command", ("channel.py", "connection.py:run", "connection.py:_exchange",
                             "buffered_pipe", "pipe.py", "open_channel", "open_session")),
    ("connect, handshake wait", ("connection.py", "hostkeys.py", "socket.py")),
    ("threads, pool, event loop", ("threading.py", "thread.py", "queue.py", "asyncio",
                                   "selectors.py", "futures")),
    ("other paramiko transport", ("transport.py",)),
)  # fmt: skip


def _where(key: tuple[str, int, str]) -> str:
    return f"{key[0]}:{key[2]}"


def stage_of(key: tuple[str, int, str], raw: dict[Any, Any], depth: int = 0) -> str:
    where = _where(key)
    if key[0] == "~" and depth < 3:
        callers = raw.get(key, (0, 0, 0, 0, {}))[4]
        if callers:
            top = max(callers.items(), key=lambda kv: kv[1][2])[0]
            return stage_of(top, raw, depth + 1)
    for stage, needles in STAGES:
        if any(n in where for n in needles):
            return stage
    return "other"


def run(hosts: int, top: int, detail: int) -> None:
    from integrations.ssh import SshExecutor, SshOptions
    from tests.lab.image import build_image
    from workflows.ports import InventoryHost

    work = Path(tempfile.mkdtemp(prefix="patchgate-fanprof-"))
    box = Box(work, hosts)
    try:
        box.prepare(build_image())
        box.start()
        inv = [
            InventoryHost(
                name=f"h{i:03d}",
                address=address(i),
                user=USER,
                private_key_file=str(work / "client_key"),
                become=False,
            )
            for i in range(hosts)
        ]

        async def serial() -> float:
            executor = SshExecutor(SshOptions(known_hosts=work / "known_hosts", concurrency=4))
            await executor.run_argv(inv[0], ["true"], 30)  # warm-up (imports, key parse)
            c0 = time.process_time()
            for h in inv:
                out = await executor.run_argv(h, ["true"], 30)
                assert out.exit_code == 0, out
            cpu = time.process_time() - c0
            executor.close()
            return cpu

        cpu = asyncio.run(serial())
        print(f"serial, no profiler: {1000 * cpu / hosts:.2f} ms CPU per host ({hosts} hosts)")

        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        # Every thread started from here on (pool workers, paramiko's transport threads,
        # whose class overrides run()) gets its own profiler, merged below.
        original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

        def profiled(self: threading.Thread) -> None:
            p = cProfile.Profile(time.thread_time)
            p.enable()
            try:
                original(self)
            finally:
                p.disable()
                _thread_profiles.append(p)

        _thread_profiles: list[cProfile.Profile] = []
        threading.Thread._bootstrap_inner = profiled  # type: ignore[attr-defined]
        try:
            cpu = asyncio.run(serial())
        finally:
            threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]
            profiler.disable()
        stats = pstats.Stats(profiler)
        for p in _thread_profiles:
            stats.add(p)
        raw = stats.stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in raw.values())  # own time
        by_stage: dict[str, float] = {}
        members: dict[str, list[tuple[float, str]]] = {}
        for key, value in raw.items():
            stage = stage_of(key, raw)
            by_stage[stage] = by_stage.get(stage, 0.0) + value[2]
            where = f"{Path(key[0]).name}:{key[2]}" if key[0] != "~" else key[2]
            members.setdefault(stage, []).append((value[2], where))
        print(
            f"profiled (all threads, own CPU time; the profiler's overhead inflates Python-heavy "
            f"parts): {1000 * total / hosts:.2f} ms per host"
        )
        for stage, seconds in sorted(by_stage.items(), key=lambda kv: -kv[1]):
            share = 100 * seconds / total
            print(f"  {stage:<36} {1000 * seconds / hosts:6.2f} ms/host  {share:4.0f}%")
            heaviest = sorted(members[stage], reverse=True)[:detail]
            for own, where in heaviest:
                print(f"      {1000 * own / hosts:5.2f}  {where[:90]}")
        buffer = io.StringIO()
        stats.stream = buffer  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(top)
        print(buffer.getvalue())
    finally:
        box.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=48)
    parser.add_argument("--top", type=int, default=20, help="functions by cumulative time")
    parser.add_argument("--detail", type=int, default=4, help="top functions per stage")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (unshare, mounts, chroot)", file=sys.stderr)
        return 2
    run(args.hosts, args.top, args.detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
