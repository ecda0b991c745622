"""Contract tests of the ``awx`` backend: the real client over HTTP against the AWX v2
emulator (tests/fakes/awx_api.py), launch to per-host results, errors, retries, recovery."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.awx import (
    AwxAuthError,
    AwxBackend,
    AwxClient,
    AwxForbidden,
    AwxLaunchUnknown,
    AwxNotFound,
    AwxRejected,
    AwxUnavailable,
)
from tests.fakes.awx_api import AwxEmulator, HostScript
from workflows.backends import BatchWork, JobRef
from workflows.ports import InventoryHost

HOSTS = ["web1", "web2", "web3", "web4", "web5"]


@pytest_asyncio.fixture
async def awx() -> AsyncIterator[AwxEmulator]:
    emulator = AwxEmulator(steps=2)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


class Rig:
    """An emulator set up like a site: an inventory and the four job templates."""

    def __init__(self, awx: AwxEmulator) -> None:
        self.awx = awx
        names = [*HOSTS, *(f"bulk{i:03d}" for i in range(250))]
        self.inventory = awx.add_inventory("linux", hosts={n: {} for n in names})
        self.patch = awx.add_job_template("Patch Linux", inventory=self.inventory)
        self.rollback = awx.add_job_template("Rollback Linux", inventory=self.inventory)
        self.reboot = awx.add_job_template("Reboot Linux", inventory=self.inventory)
        self.assess = awx.add_job_template("Assess Linux", inventory=self.inventory)
        self.clients: list[AwxClient] = []

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "job_template": "Patch Linux",
            "rollback_job_template": self.rollback,
            "reboot_job_template": "Reboot Linux",
            "assess_job_template": self.assess,
            "inventory": self.inventory,
            **extra,
        }

    def backend(self, *, token: str | None = None, **client_kw: Any) -> AwxBackend:
        client_kw.setdefault("max_attempts", 3)
        client = AwxClient(self.awx.url, SecretStr(token or self.awx.token), **client_kw)
        self.clients.append(client)
        return AwxBackend(client, poll_interval=0.01, launch_settle=0.05)


@pytest_asyncio.fixture
async def rig(awx: AwxEmulator) -> AsyncIterator[Rig]:
    r = Rig(awx)
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def work(rig: Rig, hosts: list[str], *, key: str = "r1-dev-b1", action: Any = "apply") -> BatchWork:
    versions = {h: {"openssl": "3.0.15-1", "curl": "7.88.1-10+deb12u8"} for h in hosts}
    return BatchWork(
        key=key,
        action=action,
        rollout_id=7,
        ring="dev",
        batch=1,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions=versions if action != "reboot" else {},
        patchset_hash="ps-abc",
        options=rig.options(),
    )


def launch_posts(awx: AwxEmulator) -> list[str]:
    return [p for m, p in awx.calls if m == "POST" and p.endswith("/launch/")]


async def test_submit_launches_the_job_template_with_the_batch_as_limit_and_versions_as_extra_vars(
    rig: Rig,
) -> None:
    job = await rig.backend().submit(work(rig, ["web1", "web2"]))

    assert job.backend == "awx" and job.key == "r1-dev-b1"
    launched = rig.awx.jobs[int(job.job_id)]
    assert launched.template.id == rig.patch  # the name resolved through ?name=
    assert launched.limit == "web1,web2"
    ev = launched.extra_vars
    assert ev["patchgate_key"] == "r1-dev-b1"
    ids = (ev["patchgate_rollout_id"], ev["patchgate_ring"], ev["patchgate_batch"])
    assert ids == (7, "dev", 1)
    assert ev["patchgate_action"] == "apply" and ev["patchgate_patchset_hash"] == "ps-abc"
    assert ev["patchgate_versions"]["web2"] == {"openssl": "3.0.15-1", "curl": "7.88.1-10+deb12u8"}
    assert ev["patchgate_hosts"] == ["web1", "web2"]
    assert launch_posts(rig.awx) == [f"/api/v2/job_templates/{rig.patch}/launch/"]


async def test_follow_maps_every_host_outcome_from_summaries_and_events(rig: Rig) -> None:
    awx = rig.awx
    awx.installed["web1"] = {"openssl": "3.0.11-1", "curl": "7.88.1-10+deb12u5"}
    awx.script(rig.patch, "web1", HostScript("changed", reboot_required=True))
    awx.script(rig.patch, "web2", HostScript("ok"))
    awx.script(
        rig.patch, "web3", HostScript("failed", task="apt: install pinned", msg="E: held", rc=100)
    )
    awx.script(rig.patch, "web4", HostScript("unreachable", msg="ssh: connect timed out"))
    awx.script(rig.patch, "web5", HostScript("skipped"))
    backend = rig.backend()
    job = await backend.submit(work(rig, [*HOSTS, "ghost"]))

    status = await backend.follow(job, rig.options(), wait=5)

    assert status.done and status.state == "failed"
    h = status.hosts
    assert h["web1"].status == "applied" and h["web1"].reboot_required
    assert h["web1"].before == {"openssl": "3.0.11-1", "curl": "7.88.1-10+deb12u5"}
    assert h["web1"].after == {"openssl": "3.0.15-1", "curl": "7.88.1-10+deb12u8"}
    assert h["web2"].status == "applied" and h["web2"].after == {"openssl": None, "curl": None}
    assert (h["web3"].status, h["web3"].failed_task) == ("failed", "apt: install pinned")
    assert h["web3"].output == "E: held" and h["web3"].exit_code == 100
    assert h["web3"].after == {}  # it never reported versions after
    assert h["web4"].status == "unreachable" and "connect timed out" in h["web4"].output
    assert h["web5"].status == "skipped"
    assert h["ghost"].status == "failed" and "before this host reported" in h["ghost"].output
    assert set(h) == {*HOSTS, "ghost"}


async def test_a_host_missing_from_a_successful_job_is_failed_never_applied(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1", "ghost"]))

    status = await backend.follow(job, rig.options(), wait=5)

    assert status.state == "successful"
    assert status.hosts["web1"].status == "applied"
    assert status.hosts["ghost"].status == "failed"
    assert "inventory" in status.hosts["ghost"].output


async def test_follow_returns_not_done_when_the_job_outlasts_the_wait(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.hold(int(job.job_id))

    status = await backend.follow(job, rig.options(), wait=0.05)

    assert not status.done and status.state in ("pending", "waiting", "running")
    assert status.hosts == {}
    rig.awx.release(int(job.job_id))
    assert (await backend.follow(job, rig.options(), wait=5)).done


async def test_a_batch_of_250_hosts_is_read_across_pages(rig: Rig) -> None:
    hosts = [f"bulk{i:03d}" for i in range(250)]
    rig.awx.script(rig.patch, "bulk249", HostScript("failed", task="dnf", msg="conflict"))
    backend = rig.backend()
    job = await backend.submit(work(rig, hosts))

    status = await backend.follow(job, rig.options(), wait=5)

    assert len(status.hosts) == 250
    assert sum(o.status == "applied" for o in status.hosts.values()) == 249
    assert status.hosts["bulk249"].failed_task == "dnf"  # its event is on a later page
    assert status.hosts["bulk000"].after["openssl"] == "3.0.15-1"
    summary_pages = [p for _, p in rig.awx.calls if "job_host_summaries" in p]
    assert len(summary_pages) == 2 and "page=2" in summary_pages[1]
    assert all("page_size=200" in p for p in summary_pages)


async def test_a_template_that_does_not_prompt_for_the_limit_is_refused_before_launching(
    rig: Rig,
) -> None:
    rig.awx.templates[rig.patch].ask_limit = False

    with pytest.raises(AwxRejected, match="ask_limit_on_launch"):
        await rig.backend().submit(work(rig, ["web1"]))

    assert rig.awx.jobs == {} and launch_posts(rig.awx) == []


async def test_a_launch_whose_limit_awx_ignored_is_canceled_at_once(rig: Rig) -> None:
    template = rig.awx.templates[rig.patch]
    template.ask_limit = False  # edited after PatchGate read the launch prompts
    template.launch_info_override = {"ask_limit_on_launch": True}

    with pytest.raises(AwxRejected, match="ignored limit"):
        await rig.backend().submit(work(rig, ["web1"]))

    (job,) = rig.awx.jobs.values()
    assert job.status == "canceled" and job.limit == ""


async def test_a_survey_variable_patchgate_cannot_answer_is_refused_before_launching(
    rig: Rig,
) -> None:
    rig.awx.templates[rig.patch].variables_needed = ["change_ticket"]

    with pytest.raises(AwxRejected, match="change_ticket"):
        await rig.backend().submit(work(rig, ["web1"]))

    assert rig.awx.jobs == {}


async def test_a_missing_token_is_a_clear_auth_error_without_the_token(rig: Rig) -> None:
    backend = rig.backend(token="wrong-secret-value")

    with pytest.raises(AwxAuthError) as raised:
        await backend.submit(work(rig, ["web1"]))

    assert raised.value.status == 401
    assert "PATCHGATE_AWX_TOKEN" in str(raised.value)
    assert "wrong-secret-value" not in str(raised.value)
    assert rig.awx.jobs == {}


async def test_a_user_without_execute_permission_gets_forbidden(rig: Rig) -> None:
    rig.awx.read_only_tokens.add("reader-token")

    with pytest.raises(AwxForbidden, match="permission"):
        await rig.backend(token="reader-token").submit(work(rig, ["web1"]))

    assert rig.awx.jobs == {}


async def test_an_unknown_template_id_is_not_found(rig: Rig) -> None:
    w = work(rig, ["web1"])
    w = BatchWork(**{**w.__dict__, "options": rig.options(job_template=9999)})

    with pytest.raises(AwxNotFound, match="9999"):
        await rig.backend().submit(w)


async def test_a_template_name_matching_nothing_is_rejected(rig: Rig) -> None:
    with pytest.raises(AwxRejected, match="0 job templates are named 'Nope'"):
        await rig.backend().find("k", rig.options(job_template="Nope"))


async def test_field_errors_of_a_400_are_carried_in_the_error(rig: Rig) -> None:
    client = rig.backend()._client  # the client on its own: a launch AWX refuses

    with pytest.raises(AwxRejected) as raised:
        await client.post(f"job_templates/{rig.patch}/launch/", {"limit": None}, idempotent=False)

    assert raised.value.status == 400
    assert raised.value.fields == {"limit": ["This field may not be null."]}
    assert "limit: This field may not be null." in str(raised.value)


async def test_a_429_with_retry_after_is_waited_out_for_a_read(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.fail_next(429, path=f"jobs/{job.job_id}/", retry_after=1)
    start = len(rig.awx.calls)

    status = await backend.follow(job, rig.options(), wait=5)

    assert status.done
    times = rig.awx.call_times[start:]
    assert times[1] - times[0] >= 1.0  # the retry came after Retry-After, not before


async def test_a_retry_after_longer_than_allowed_is_raised_not_slept_through(rig: Rig) -> None:
    backend = rig.backend(max_retry_wait=5)
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.fail_next(429, path=f"jobs/{job.job_id}/", retry_after=3600)

    with pytest.raises(AwxUnavailable) as raised:
        await backend.follow(job, rig.options(), wait=5)

    assert raised.value.status == 429 and raised.value.retry_after == 3600


async def test_a_503_on_a_read_is_retried_a_bounded_number_of_times(rig: Rig) -> None:
    backend = rig.backend(max_attempts=3)
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.fail_next(503, path=f"jobs/{job.job_id}/", times=5, retry_after=0)
    before = len(rig.awx.calls)

    with pytest.raises(AwxUnavailable, match="503"):
        await backend.follow(job, rig.options(), wait=5)

    assert len(rig.awx.calls) - before == 3


async def test_a_launch_whose_answer_is_lost_is_found_by_its_key_not_launched_twice(
    rig: Rig,
) -> None:
    rig.awx.lose_launch_answers(1)

    job = await rig.backend().submit(work(rig, ["web1", "web2"], key="r1-dev-b2"))

    assert list(rig.awx.jobs) == [int(job.job_id)]
    assert len(launch_posts(rig.awx)) == 1
    assert rig.awx.jobs[int(job.job_id)].extra_vars["patchgate_key"] == "r1-dev-b2"


async def test_a_throttled_launch_is_looked_up_before_it_is_launched_again(rig: Rig) -> None:
    rig.awx.fail_next(429, path="launch", method="POST", retry_after=0)

    job = await rig.backend().submit(work(rig, ["web1"]))

    assert list(rig.awx.jobs) == [int(job.job_id)]
    posts = [i for i, (m, p) in enumerate(rig.awx.calls) if m == "POST"]
    lookups = [i for i, (m, p) in enumerate(rig.awx.calls) if p.startswith("/api/v2/jobs/?")]
    assert len(posts) == 2 and any(posts[0] < i < posts[1] for i in lookups)


async def test_a_launch_refused_every_time_raises_unavailable_with_no_job_left(rig: Rig) -> None:
    rig.awx.fail_next(503, path="launch", method="POST", times=3, retry_after=0)

    with pytest.raises(AwxUnavailable, match="submitting again is safe"):
        await rig.backend().submit(work(rig, ["web1"]))

    assert rig.awx.jobs == {} and len(launch_posts(rig.awx)) == 3


async def test_a_lost_launch_that_cannot_be_looked_up_is_unknown_not_relaunched(
    rig: Rig,
) -> None:
    rig.awx.lose_launch_answers(1)
    rig.awx.fail_next(503, path="jobs/", method="GET", times=3, retry_after=0)

    with pytest.raises(AwxLaunchUnknown, match="find it by its key later"):
        await rig.backend().submit(work(rig, ["web1"], key="r1-dev-b3"))

    assert len(rig.awx.jobs) == 1 and len(launch_posts(rig.awx)) == 1
    assert await rig.backend().find("r1-dev-b3", rig.options()) is not None  # AWX is back


@pytest.mark.parametrize("list_extra_vars", [False, True], ids=["awx-24", "older-awx"])
async def test_find_after_a_crash_finds_the_job_by_its_key_with_a_new_backend(
    rig: Rig, list_extra_vars: bool
) -> None:
    rig.awx.list_extra_vars = list_extra_vars
    first = rig.backend()
    await first.submit(work(rig, ["web1"], key="r1-dev-b1"))
    job = await first.submit(work(rig, ["web2"], key="r1-dev-b2"))
    await first.submit(work(rig, ["web1"], key="r1-dev-b1-rb", action="rollback"))

    after_crash = rig.backend()  # nothing carried over but the key
    found = await after_crash.find("r1-dev-b2", rig.options())
    missing = await after_crash.find("r1-dev-b9", rig.options())

    assert found == JobRef(backend="awx", job_id=job.job_id, key="r1-dev-b2")
    assert missing is None
    assert not any("extra_vars" in p.split("?")[-1] for _, p in rig.awx.calls if "?" in p)
    assert (await after_crash.follow(found, rig.options(), wait=5)).done


async def test_cancel_stops_a_running_job_and_no_host_counts_as_applied(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1", "web2"]))
    rig.awx.hold(int(job.job_id))

    assert await backend.cancel(job) is True
    status = await backend.follow(job, rig.options(), wait=1)

    assert status.done and status.state == "canceled"
    assert {o.status for o in status.hosts.values()} == {"failed"}
    assert "canceled" in status.hosts["web1"].output
    assert await backend.cancel(job) is False  # AWX's 405 once finished


async def test_a_job_that_errors_fails_every_host_with_the_explanation(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.end_job(int(job.job_id), "error", explanation="Previous Task Failed: project update")

    status = await backend.follow(job, rig.options(), wait=1)

    assert status.state == "error" and "project update" in status.detail
    assert status.hosts["web1"].status == "failed"
    assert "project update" in status.hosts["web1"].output


async def test_rollback_and_reboot_launch_their_own_templates(rig: Rig) -> None:
    backend = rig.backend()
    rollback = work(rig, ["web1"], key="r1-dev-b1-rb", action="rollback")
    rollback = BatchWork(**{**rollback.__dict__, "versions": {"web1": {"openssl": None}}})
    rb = await backend.submit(rollback)
    rr = await backend.submit(work(rig, ["web1"], key="r1-dev-b1-rr", action="reboot"))

    assert rig.awx.jobs[int(rb.job_id)].template.id == rig.rollback
    assert rig.awx.jobs[int(rr.job_id)].template.id == rig.reboot
    rb_status = await backend.follow(rb, rig.options(), wait=5)
    assert rb_status.hosts["web1"].after == {"openssl": None}
    assert rig.awx.jobs[int(rr.job_id)].extra_vars["patchgate_action"] == "reboot"


async def test_without_a_rollback_template_there_is_no_rollback(rig: Rig) -> None:
    options = rig.options()
    del options["rollback_job_template"]
    backend = rig.backend()
    assert backend.capabilities(options).rollback is False
    w = work(rig, ["web1"], action="rollback")

    with pytest.raises(AwxRejected, match="rollback_job_template"):
        await backend.submit(BatchWork(**{**w.__dict__, "options": options}))


async def test_assess_reports_pending_updates_advisories_and_unreachable_hosts(rig: Rig) -> None:
    rig.awx.templates[rig.assess].assess_facts["web1"] = {
        "patchgate_upgradable": [
            {"name": "openssl", "current": "3.0.11-1", "candidate": "3.0.15-1", "security": True}
        ],
        "patchgate_advisories": [
            {"id": "DSA-5999-1", "packages": {"openssl": "3.0.15-1"}, "cves": ["CVE-2024-1"]}
        ],
    }
    rig.awx.script(rig.assess, "web2", HostScript("unreachable"))

    found = await rig.backend().assess(
        [InventoryHost(name="web1"), InventoryHost(name="web2")], rig.options()
    )

    web1, web2 = found
    assert web1.reachable and web1.error is None
    assert [(p.name, p.candidate, p.security) for p in web1.upgradable] == [
        ("openssl", "3.0.15-1", True)
    ]
    assert web1.advisories[0].id == "DSA-5999-1" and web1.advisories[0].cves == ("CVE-2024-1",)
    assert not web2.reachable and web2.error
    launched = next(iter(rig.awx.jobs.values()))
    assert launched.template.id == rig.assess and launched.limit == "web1,web2"


async def test_hosts_lists_the_inventory_across_pages_with_groups_and_variables(
    awx: AwxEmulator,
) -> None:
    names = {f"n{i:03d}": {"ansible_host": f"10.0.{i // 250}.{i % 250}"} for i in range(260)}
    names["n000"] = {"ansible_host": "10.9.9.9", "ansible_port": 2222, "owner": "team-a"}
    inv = awx.add_inventory(
        "big",
        hosts=names,
        groups={"web": ["n000", "n001"], "prod": ["n000"]},
        group_vars={"prod": {"environment": "production"}},
        disabled={"n259"},
    )
    awx.add_job_template("Patch", inventory=inv)
    client = AwxClient(awx.url, SecretStr(awx.token))
    try:
        hosts = await AwxBackend(client).hosts({"job_template": "Patch", "inventory": inv})
    finally:
        await client.close()

    by_name = {h.name: h for h in hosts}
    assert len(hosts) == 259 and "n259" not in by_name  # disabled hosts are left out
    n0 = by_name["n000"]
    assert (n0.address, n0.port, n0.owner) == ("10.9.9.9", 2222, "team-a")
    assert n0.groups == frozenset({"web", "prod"}) and n0.environment == "production"
    assert by_name["n258"].groups == frozenset()
    assert any("page=2" in p for _, p in awx.calls if "/hosts/" in p)


async def test_awx_being_down_is_unavailable_after_bounded_retries(rig: Rig) -> None:
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    backend = rig.backend(sleep=no_wait, max_attempts=3)
    job = await backend.submit(work(rig, ["web1"]))
    await rig.awx.stop()
    try:
        with pytest.raises(AwxUnavailable):
            await backend.follow(job, rig.options(), wait=5)
    finally:
        await rig.awx.start()
    assert slept == [0.5, 1.0]


async def test_a_slow_answer_times_out_and_a_read_is_tried_again(rig: Rig) -> None:
    backend = rig.backend(timeout=0.3, sleep=_no_wait)
    job = await backend.submit(work(rig, ["web1"]))
    rig.awx.delay_next(1.0, path=f"jobs/{job.job_id}/")

    assert (await backend.follow(job, rig.options(), wait=5)).done

    rig.awx.delay_next(1.0, path=f"jobs/{job.job_id}/", times=3)
    with pytest.raises(AwxUnavailable, match="timed out"):
        await backend.follow(job, rig.options(), wait=5)


async def test_me_checks_the_url_and_the_token(rig: Rig) -> None:
    assert await rig.backend()._client.me() == "patchgate"
    with pytest.raises(AwxAuthError):
        await rig.backend(token="nope")._client.me()


async def _no_wait(seconds: float) -> None:
    return None


async def test_follow_refuses_a_job_that_does_not_carry_the_key(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(work(rig, ["web1"], key="mine"))

    with pytest.raises(Exception, match="does not carry the key 'theirs'"):
        await backend.follow(JobRef("awx", job.job_id, "theirs"), rig.options(), wait=5)


async def test_the_token_never_reaches_the_logs_or_errors(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = rig.backend()
    rig.awx.fail_next(503, path="launch", method="GET", retry_after=0)
    job = await backend.submit(work(rig, ["web1"]))
    await backend.follow(job, rig.options(), wait=5)
    with pytest.raises(AwxAuthError) as raised:
        await rig.backend(token="bad-" + rig.awx.token).find("k", rig.options())

    assert "AWX GET" in caplog.text  # the client does log its calls
    assert rig.awx.token not in caplog.text
    assert rig.awx.token not in str(raised.value) and rig.awx.token not in repr(backend._client)
