"""The console in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (nothing is downloaded at run time).

One walk through the page as its people: the requester starts a rollout with ``/patch``
and tries to approve it (refused, shown to her alone), an approver approves (the gate
message changes in place), another rejects production through the modal (an empty
reason is refused on the field, then a reason is taken), and App Home opens. Screenshots
of each step are kept in $PATCHGATE_CONSOLE_SCREENSHOTS, or under pytest's tmp path.

Outside CI a missing Chromium or chromedriver skips this file; with CI=true it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import ALICE, BOB, OPERATOR, OUTSIDER, Console, gate_message

CHROMIUM = os.environ.get("PATCHGATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PATCHGATE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,900",
)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    where = os.environ.get("PATCHGATE_CONSOLE_SCREENSHOTS")
    folder = Path(where) / request.node.name if where else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if (why := _missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


class Page:
    def __init__(self, driver: Any, console: Console, shots: Path) -> None:
        self.d, self.console, self.shots, self.n = driver, console, shots, 0

    def wait(self, what: str, check: Any, within: float = 60) -> Any:
        # the page redraws what changed: an element found a moment ago may be replaced
        ignored = (NoSuchElementException, StaleElementReferenceException)
        waiting = WebDriverWait(self.d, within, poll_frequency=0.2, ignored_exceptions=ignored)
        try:
            return waiting.until(lambda d: check(), message=what)
        except TimeoutException:
            self.shot("timed-out-" + "-".join(what.split()))
            raise

    def click(self, what: str, find: Any) -> None:
        self.wait(what, lambda: find().click() or True)

    def shot(self, name: str) -> None:
        self.n += 1
        self.d.save_screenshot(str(self.shots / f"{self.n:02d}-{name}.png"))

    def act_as(self, user: str) -> None:
        Select(self.d.find_element(By.ID, "person")).select_by_value(user)
        self.wait(
            f"the page as {user}", lambda: self.d.execute_script("return S.data.user") == user
        )

    def text(self, css: str) -> str:
        return "\n".join(e.text for e in self.d.find_elements(By.CSS_SELECTOR, css))

    def gate(self, ts: str) -> Any:
        return self.d.find_element(By.CSS_SELECTOR, f'#thread-messages .msg[data-ts="{ts}"]')

    def button(self, ts: str, action: str) -> Any:
        return self.gate(ts).find_element(By.CSS_SELECTOR, f'button[data-action-id="{action}"]')


def test_a_rollout_is_approved_refused_and_rejected_in_the_browser(
    console: Console, browser: Any, shots: Path
) -> None:
    page = Page(browser, console, shots)
    browser.get(f"{console.url}/?as={OPERATOR}")
    page.wait("the banner", lambda: "this is not Slack" in page.text("#banner"))

    # the requester starts a rollout with /patch
    box = browser.find_element(By.ID, "box")
    box.send_keys("/patch run weekly\n")
    page.wait("the ephemeral answer", lambda: "scheduled" in page.text("#messages .ephemeral"))
    page.wait("the rollout's thread", lambda: browser.find_elements(By.CSS_SELECTOR, ".replies"))
    page.shot("rollout-started")
    canary = console.wait("the canary's gate", lambda: gate_message(console))
    page.click("the thread", lambda: browser.find_element(By.CSS_SELECTOR, ".replies"))
    page.wait("the Approve button", lambda: page.button(canary["ts"], "gate_approve"))
    page.shot("canary-gate")

    # the requester may not approve her own rollout: told to her alone, ephemerally
    page.click("gate_approve", lambda: page.button(canary["ts"], "gate_approve"))
    page.wait("the refusal", lambda: "not an approver" in page.text("#messages .ephemeral"))
    page.shot("requester-refused")
    assert "approved" not in page.gate(canary["ts"]).text.lower()

    # so may someone with no PatchGate powers
    page.act_as(OUTSIDER)
    page.click("gate_approve", lambda: page.button(canary["ts"], "gate_approve"))
    page.wait("the refusal", lambda: "not an approver" in page.text("#messages .ephemeral"))
    assert "U0777OUTSI is not an approver" in page.text("#messages .ephemeral")

    # alice, an approver, sees no refusal, approves; the gate message changes in place
    page.act_as(ALICE)
    assert "not an approver" not in page.text("#messages")
    page.wait("the Approve button", lambda: page.button(canary["ts"], "gate_approve"))
    page.click("gate_approve", lambda: page.button(canary["ts"], "gate_approve"))
    page.wait("the gate updated", lambda: "Approved by" in page.gate(canary["ts"]).text)
    page.wait("(edited)", lambda: "(edited)" in page.gate(canary["ts"]).text)
    page.wait(
        "no buttons", lambda: not page.gate(canary["ts"]).find_elements(By.TAG_NAME, "button")
    )
    page.shot("canary-approved")

    # production's gate: bob rejects through the modal; an empty reason is refused
    production = console.wait(
        "production's gate", lambda: gate_message(console, after=float(canary["ts"]))
    )
    page.act_as(BOB)
    page.wait("the Reject button", lambda: page.button(production["ts"], "gate_reject"))
    page.click("gate_reject", lambda: page.button(production["ts"], "gate_reject"))
    page.wait("the modal", lambda: browser.find_element(By.ID, "overlay").is_displayed())
    page.shot("reject-modal")
    page.click("Reject (submit)", lambda: browser.find_element(By.ID, "modal-submit"))
    page.wait("the field error", lambda: "reason" in page.text("#modal .field-error").lower())
    page.shot("reject-modal-error")
    reason = browser.find_element(By.CSS_SELECTOR, "#modal textarea")
    reason.send_keys("openssl 3.0.13 breaks mTLS")
    page.click("Reject (submit)", lambda: browser.find_element(By.ID, "modal-submit"))
    page.wait("the modal closed", lambda: not browser.find_element(By.ID, "overlay").is_displayed())
    page.wait("the gate rejected", lambda: "rejected" in page.gate(production["ts"]).text.lower())
    page.shot("production-rejected")

    # App Home
    page.act_as(ALICE)
    page.click("Home", lambda: browser.find_element(By.ID, "nav-home"))
    page.wait("App Home", lambda: "Last five finished" in page.text("#home"))
    home = page.text("#home")
    assert "PatchGate" in home and "#1" in home
    page.shot("app-home")
    assert len(list(shots.glob("*.png"))) == 8
