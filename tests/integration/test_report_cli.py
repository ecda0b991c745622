"""`patchgate report build|verify` as real processes against a SQLite file holding a real
rollout (engine + recording executor)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.integration.test_cli_outbox_helpers import make_database, patchgate
from tests.reportkit import drive_rollout, rewrite


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_database(tmp_path_factory.mktemp("report") / "pg.db", drive_rollout)


def build(url: str, tmp_path: Path, *extra: str) -> Path:
    done = patchgate(
        url,
        "report",
        "build",
        "--since",
        "2026-01-01",
        "--until",
        "2026-01-14",
        "--out",
        str(tmp_path / "out"),
        *extra,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("wrote ")
    return Path(first.removeprefix("wrote "))


def test_build_writes_the_zip_and_prints_its_figures_then_verify_passes(
    url: str, tmp_path: Path
) -> None:
    path = build(url, tmp_path)
    assert path.name == "patchgate-evidence-20260101T0000-20260115T0000.zip"
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["period"] == {
        "since": "2026-01-01T00:00:00.000000Z",
        "until": "2026-01-15T00:00:00.000000Z",
    }
    assert manifest["sla_days"] == {"critical": 7, "high": 30, "low": 180, "medium": 90}
    done = patchgate(url, "report", "verify", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("bundle OK: 8 files and ")


def test_build_json_and_a_framework_and_sla_settings(url: str, tmp_path: Path) -> None:
    done = patchgate(
        url,
        "report",
        "build",
        "--since",
        "2026-01-01",
        "--until",
        "2026-01-14",
        "--framework",
        "hipaa",
        "--out",
        str(tmp_path),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    critical = out["figures"]["time_to_patch"][0]
    assert critical["severity"] == "critical" and critical["within_sla"] == 4
    assert out["path"].endswith("-hipaa.zip")


def test_verify_names_the_changed_csv_and_exits_1(url: str, tmp_path: Path) -> None:
    path = build(url, tmp_path)
    with zipfile.ZipFile(path) as archive:
        data = bytearray(archive.read("approvals.csv"))
    data[-2] ^= 1
    tampered = tmp_path / "tampered.zip"
    rewrite(path, tampered, "approvals.csv", bytes(data))
    done = patchgate(url, "report", "verify", str(tampered), cwd=tmp_path)
    assert done.returncode == 1
    assert "approvals.csv: SHA-256 mismatch" in done.stdout
    as_json = json.loads(
        patchgate(url, "report", "verify", "--json", str(tampered), cwd=tmp_path).stdout
    )
    assert as_json["ok"] is False and as_json["problems"][0].startswith("approvals.csv")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "--since", "yesterday"], "is not a date"),
        (["build", "--framework", "nist"], "invalid choice: 'nist'"),
        (["build", "--since", "2026-02-01", "--until", "2026-01-01"], "must be before --until"),
        (["verify", "missing.zip"], "missing.zip: no such file"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(
    url: str, tmp_path: Path, argv: list[str], message: str
) -> None:
    done = patchgate(
        url, "report", *argv, "--json" if argv[0] == "verify" else "--out=x", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "x").exists()


def test_verify_of_a_file_that_is_not_a_zip_exits_1(url: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    done = patchgate(url, "report", "verify", str(junk), cwd=tmp_path)
    assert done.returncode == 1 and "not a readable zip" in done.stdout
