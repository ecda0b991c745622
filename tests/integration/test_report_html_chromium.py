"""summary.html of a real bundle renders in Debian's headless chromium: the screenshot is
decoded and must not be blank, and the embedded charts must be painted."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.test_cli_outbox_helpers import make_database
from tests.reportkit import PERIOD, drive_rollout
from workflows.db import create_database
from workflows.reports import ReportRequest, build_bundle

CHART_BLUE = (0x1A, 0x73, 0xE8)  # the coverage chart's "assessed" bars
CHART_GREEN = (0x1E, 0x8E, 0x3E)  # its "patched" bars


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def build(tmp: Path) -> Path:
    url = make_database(tmp / "pg.db", drive_rollout)

    async def go() -> Path:
        db = create_database(url)
        try:
            bundle = await build_bundle(db, ReportRequest(PERIOD), tmp / "out")
        finally:
            await db.dispose()
        return bundle.path

    return asyncio.run(go())


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel[:3], colour, strict=True))


def test_summary_html_renders_in_headless_chromium_with_its_charts(tmp_path: Path) -> None:
    browser = chromium()
    bundle = build(tmp_path)
    html = tmp_path / "summary.html"
    with zipfile.ZipFile(bundle) as archive:
        html.write_bytes(archive.read("summary.html"))
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2600",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1200, 2600)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    total = 1200 * 2600
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < total * 0.97, "the page is blank"
    blue = sum(n for n, c in colours if near(c, CHART_BLUE))
    green = sum(n for n, c in colours if near(c, CHART_GREEN))
    assert blue > 200 and green > 200, (blue, green)  # the embedded PNG chart was painted
