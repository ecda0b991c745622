"""`patchgate inventory show` shows the host variables it loaded, secrets redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

INVENTORY = """\
all:
  vars:
    ansible_user: deploy
    ntp_server: ntp.example.org
  children:
    web:
      hosts:
        web-01:
          ansible_host: 10.0.0.11
          ansible_password: hunter2
          ansible_become_pass: hunter3
          vault_token: s.abcdef
          http_port: 8080
          extra_packages: [nginx, certbot]
"""


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env["PATCHGATE_INVENTORY"] = str(tmp / "hosts.yml")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "inventory", "show", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_inventory_show_json_has_every_host_variable_with_secrets_redacted(
    tmp_path: Path,
) -> None:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    result = run(tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    [host] = json.loads(result.stdout)["hosts"]
    assert host["vars"] == {
        "ansible_become_pass": "(redacted)",
        "ansible_host": "10.0.0.11",
        "ansible_password": "(redacted)",
        "ansible_user": "deploy",
        "extra_packages": ["nginx", "certbot"],
        "http_port": 8080,
        "ntp_server": "ntp.example.org",
        "vault_token": "(redacted)",
    }
    assert "hunter" not in result.stdout and "s.abcdef" not in result.stdout


def test_inventory_show_vars_lists_them_under_each_host(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    plain = run(tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "http_port" not in plain.stdout
    shown = run(tmp_path, "--vars")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("web-01")
    assert "    http_port=8080" in lines
    assert '    extra_packages=["nginx", "certbot"]' in lines
    assert "    ansible_password=(redacted)" in lines
    assert "hunter" not in shown.stdout


def test_every_secret_the_ssh_executor_reads_is_redacted(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    h1:\n"
        "      sudo_password: s1\n      ssh_key_passphrase: s2\n"
        "      ansible_become_password: s3\n      ansible_ssh_pass: s4\n"
    )
    result = run(tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    [host] = json.loads(result.stdout)["hosts"]
    assert set(host["vars"].values()) == {"(redacted)"}
