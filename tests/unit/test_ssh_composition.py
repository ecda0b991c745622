"""PATCHGATE_EXECUTOR=ssh builds the SSH executor and the real health checker."""

from __future__ import annotations

from pathlib import Path

from bot.app import build_runtime
from bot.settings import load_settings
from integrations.health import HealthChecker
from integrations.ssh import SshExecutor
from integrations.zones.router import ZoneHealthChecker, ZoneRouter


async def test_the_ssh_executor_is_built_from_the_settings(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIE2z2mPvCiKkBVS5kG0j6Pj0vYcmLQBnP4AYEr8h8g8N"
    known.write_text(f"127.0.30.9 ssh-ed25519 {key}\n")
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'pg.db'}",
        executor="ssh",
        ssh_known_hosts=str(known),
        ssh_concurrency=7,
        ssh_kex="curve25519-sha256",
    )
    runtime = build_runtime(settings)
    try:
        # Under the zone router (hosts without a zone go to the local SSH executor).
        assert isinstance(runtime.executor, ZoneRouter)
        assert isinstance(runtime.health, ZoneHealthChecker)
        ssh = runtime.executor.local
        assert isinstance(ssh, SshExecutor)
        assert isinstance(runtime.health.local, HealthChecker)
        assert ssh.options.concurrency == 7
        assert ssh.options.kex == ("curve25519-sha256",)
        assert ssh.known.known("127.0.30.9")
    finally:
        await runtime.close()
