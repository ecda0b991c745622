"""Contract tests of the ``intune`` backend's reads and its client: inventory (also
through the CLI), assessment from the quality-update catalog, device status, paging,
throttling, token refresh, Graph error bodies, hostile ids, plan options."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from integrations.backends.intune import (
    IntuneAuthError,
    IntuneBackend,
    IntuneError,
    IntuneNotFound,
    IntuneRejected,
    IntuneUnavailable,
)
from tests import intunekit
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from tests.intunekit import (
    BUILD,
    KB,
    KB10,
    GraphRig,
    work,
)
from workflows.backends import HOST_BACKEND_VAR
from workflows.ports import InventoryHost

# the contract tests' fixtures (tests/intunekit.py)
graph = intunekit.graph
rig = intunekit.rig


async def test_windows_devices_become_inventory_hosts_across_pages(rig: GraphRig) -> None:
    rig.graph.page_size = 2
    hosts = {h.name: h for h in await rig.backend().hosts({})}
    assert sorted(hosts) == ["kiosk", "win1", "win10", "win2", "win3"]  # not the Mac
    win1 = hosts["win1"]
    assert win1.vars[HOST_BACKEND_VAR] == "intune" and win1.vars["patchgate_os_family"] == "windows"
    assert win1.vars["intune_os_version"] == win1.vars["patchgate_os_build"] == "10.0.22631.4460"
    assert win1.vars["intune_azure_ad_device_id"] == rig.graph.by_name("win1").aad_id
    assert "no Microsoft Entra device id" in hosts["kiosk"].vars["patchgate_unreachable"]
    assert "patchgate_unreachable" not in win1.vars
    listed = [p for m, p in rig.graph.requests if p.endswith("/managedDevices")]
    assert len(listed) == 3  # three pages through @odata.nextLink


async def test_the_newest_applicable_quality_update_is_pending_with_severity_and_cves(
    rig: GraphRig,
) -> None:
    hosts = [InventoryHost(name=n) for n in ("win1", "win10", "kiosk", "ghost")]
    found = {a.host: a for a in await rig.backend().assess(hosts, {})}
    (upg,) = found["win1"].upgradable
    assert (upg.name, upg.current, upg.candidate, upg.security) == (
        KB,
        "10.0.22631.4460",
        BUILD,
        True,
    )
    (adv,) = found["win1"].advisories
    assert adv.id == "intune:2026.11 B" and adv.severity == "high"  # Microsoft's "important"
    assert adv.cves == ("CVE-2026-43451", "CVE-2026-49039") and adv.packages == {KB: BUILD}
    assert [u.name for u in found["win10"].upgradable] == [KB10]
    assert found["kiosk"].error == "no Microsoft Entra device id"
    assert found["ghost"].error == "not an Intune Windows device" and not found["ghost"].reachable


async def test_assessment_of_all_quality_updates_includes_non_security_ones(rig: GraphRig) -> None:
    rig.graph.add_entry(
        "2026.11 D",
        {"10.0.22631.4602": "KB5046732"},
        classification="nonSecurity",
        severity=None,
        expeditable=False,
    )
    host = [InventoryHost(name="win1")]
    (security,) = await rig.backend().assess(host, {})
    assert [u.name for u in security.upgradable] == [KB]  # the security one only
    (every,) = await rig.backend().assess(host, {"classification": "all"})
    (upg,) = every.upgradable
    assert (upg.name, upg.candidate, upg.security) == ("KB5046732", "10.0.22631.4602", False)
    assert every.advisories[0].severity is None


async def test_a_hostile_id_from_graph_never_reaches_a_url(rig: GraphRig) -> None:
    rig.graph.add_device("evil", aad_id="../../users/x")
    with pytest.raises(IntuneError, match=r"'\.\./\.\./users/x' is not a usable id"):
        await rig.backend().submit(work("pg-1-r2-b1-intune-apply", ["evil"]))
    assert not any("users" in p for _, p in rig.graph.requests)
    (evil,) = [h for h in await rig.backend().hosts({}) if h.name == "evil"]
    assert "is not a usable id" in evil.vars["patchgate_unreachable"]  # a gap, not a crash


async def test_throttling_is_waited_out_as_retry_after_says(rig: GraphRig) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    rig.graph.fail_next(429, times=2, retry_after=3)
    assert len(await rig.backend(sleep=sleep).hosts({})) == 5
    assert waits == [3.0, 3.0]
    rig.graph.fail_next(429, times=1, retry_after=600)  # longer than a call may wait
    with pytest.raises(IntuneUnavailable, match="429: TooManyRequests"):
        await rig.backend(sleep=sleep).hosts({})
    # enrolling and adding members may be repeated: throttled, they are retried too
    rig.graph.fail_next(429, retry_after=2, path="/enrollAssets")
    rig.graph.fail_next(429, retry_after=4, path="/updateAudience")
    await rig.backend(sleep=sleep).submit(work("pg-1-r2-b0-intune-apply", ["win1"]))
    assert waits[-2:] == [2.0, 4.0] and len(rig.graph.deployments) == 1


async def test_an_expired_token_is_fetched_again_once_and_a_bad_secret_is_an_auth_error(
    rig: GraphRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = rig.backend()
    await backend.hosts({})
    rig.graph.expire_tokens()
    assert len(await backend.hosts({})) == 5
    assert rig.clients[-1].tokens_fetched == 2
    with pytest.raises(IntuneAuthError, match="invalid_client: AADSTS7000215") as err:
        await rig.backend(secret="wrong-secret-42").hosts({})
    assert "contoso-tenant/oauth2/v2.0/token" in str(err.value)
    assert "check the client id and secret" in str(err.value)
    assert "wrong-secret-42" not in caplog.text + str(err.value)
    assert rig.graph.client_secret not in caplog.text
    assert not any(t in caplog.text for t in rig.graph.tokens)


async def test_graph_error_bodies_are_translated_with_their_code_and_request_id(
    rig: GraphRig,
) -> None:
    client = rig.client()
    with pytest.raises(IntuneNotFound, match=r"404: ResourceNotFound: .*\(request-id ") as err:
        await client.get("beta/admin/windows/updates/deployments/nope")
    assert err.value.code == "ResourceNotFound"
    with pytest.raises(IntuneRejected, match="400: BadRequest: content must be"):
        await client.post("beta/admin/windows/updates/deployments", {"content": {}})


async def test_status_is_the_devices_check_in_and_windows_update_state(rig: GraphRig) -> None:
    rig.graph.by_name("win2").last_sync = "2026-01-01T00:00:00Z"
    rig.graph.by_name("win3").ring_status = "pendingReboot"
    rig.graph.by_name("win1").ring_status = "upToDate"
    backend = IntuneBackend(rig.client(), rig.journal, clock=lambda: 1796630400.0)  # 2026-12-07
    hosts = [InventoryHost(name=n) for n in ("win1", "win2", "win3", "ghost")]
    found = {s.host: s for s in await backend.status(hosts, {"update_ring_id": rig.graph.ring_id})}
    assert found["win1"].ok and found["win1"].state == "upToDate"
    assert not found["win2"].ok and "last checked in at 2026-01-01" in found["win2"].detail
    assert not found["win3"].ok and found["win3"].state == "pendingReboot"
    assert not found["ghost"].ok and found["ghost"].state == "unknown"


def test_plan_options_are_checked_without_io() -> None:
    from integrations.backends.intune.options import capabilities, check_options

    good = {
        "expedite": True,
        "monitoring": {"signal": "rollback", "threshold": 5, "action": "pauseDeployment"},
    }
    assert check_options(good) == []
    problems = check_options({"expedit": 1, "monitoring": {"signal": "x", "threshold": 0}})
    assert any("unknown option(s) expedit" in p for p in problems)
    assert any("monitoring.signal" in p for p in problems)
    assert any("monitoring.threshold: 1 to 100" in p for p in problems)
    caps = capabilities({})
    assert caps.status and caps.halt and caps.assess and not caps.rollback and caps.reboots_itself


async def test_the_cli_imports_the_intune_devices_from_its_settings(
    graph: IntuneGraphEmulator, tmp_path: Path
) -> None:
    """`patchgate inventory show` as a real process: PATCHGATE_INTUNE_* build the working
    backend (bot.backends), `backend:intune` imports its devices, the gap is shown."""
    from tests.integration.test_backend_inventory import patchgate

    env = {
        "PATCHGATE_INVENTORY": "backend:intune",
        "PATCHGATE_INTUNE_TENANT_ID": graph.tenant,
        "PATCHGATE_INTUNE_CLIENT_ID": graph.client_id,
        "PATCHGATE_INTUNE_CLIENT_SECRET": graph.client_secret,
        "PATCHGATE_INTUNE_GRAPH_URL": graph.url,
        "PATCHGATE_INTUNE_LOGIN_URL": graph.url,
    }
    code, out, err = await patchgate("inventory", "show", "--json", cwd=tmp_path, **env)
    assert code == 0, err
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    assert sorted(hosts) == ["kiosk", "win1", "win10", "win2", "win3"]
    assert hosts["win1"]["source"] == "backend:intune"
    assert hosts["win1"]["vars"]["intune_os_version"] == "10.0.22631.4460"
    assert graph.client_secret not in out + err
    assert not any(t in out + err for t in graph.tokens)
