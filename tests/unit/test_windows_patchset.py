"""The pinned set with vendor updates (issue 21): a package-only set hashes exactly as
before (hashes taken from the code before updates existed), a set with a KB hashes its
identity canonically, and a KB is shown by number and title, never as ``name=version``."""

from __future__ import annotations

from integrations.zones.wire import OPS, encode_value
from workflows.assessment import describe, patch_label, patchset_hash, update_identities
from workflows.ports import HostAdvisory, HostFacts, PatchIdentity, UpgradablePackage

LINUX = {
    "ubuntu-22.04-amd64": {"openssl": "3.0.2-0ubuntu1.15", "libssl3": "3.0.2-0ubuntu1.15"},
    "rhel-9.3-x86_64": {"kernel": "5.14.0-362.18.1.el9_3", "bash": "5.1.8-9.el9"},
}
KB = "KB5034441"
TITLE = "2024-01 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems"
WINDOWS = {"windows-10.0.22631-x64": {KB: "rev-3"}}
IDENTITY = PatchIdentity(kb=KB, catalog_id="cat-7f3a", title=TITLE, classification="security")


def test_package_only_sets_hash_exactly_as_before_updates_existed() -> None:
    # computed with the code of the commit before issue 21's domain work
    assert (
        patchset_hash(LINUX) == "eb26b4c8071598a037c0aab6ab87486d514f9bd0b6fc3e0cd2d196769d01fbd4"
    )
    assert patchset_hash({}) == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert (
        patchset_hash({"debian-12-amd64": {"openssl": "3.0.13-1"}})
        == "a7d4c593cb61ac8b7f124a3cdecfc8f46a5643b415737f91cab611620e88a800"
    )
    # no updates, or empty ones, change nothing
    assert patchset_hash(LINUX, {}) == patchset_hash(LINUX, {"rhel-9.3-x86_64": {}})
    assert patchset_hash(LINUX, {}) == patchset_hash(LINUX)


def test_a_kbs_identity_is_part_of_the_hash_whatever_the_key_order() -> None:
    patchset = {**LINUX, **WINDOWS}
    updates = update_identities(patchset, {"windows-10.0.22631-x64": {KB: ("rev-3", IDENTITY)}})
    assert updates == {
        "windows-10.0.22631-x64": {
            KB: {
                "kind": "update",
                "kb": KB,
                "catalog_id": "cat-7f3a",
                "title": TITLE,
                "classification": "security",
            }
        }
    }
    pinned = patchset_hash(patchset, updates)
    assert pinned != patchset_hash(patchset)
    # canonical: the same identities in another order hash the same
    shuffled = {
        "windows-10.0.22631-x64": {
            KB: dict(reversed(list(updates["windows-10.0.22631-x64"][KB].items())))
        }
    }
    assert patchset_hash(dict(reversed(list(patchset.items()))), shuffled) == pinned
    # a new title (a re-released update) is a different set to approve
    retitled = {
        "windows-10.0.22631-x64": {KB: {**updates["windows-10.0.22631-x64"][KB], "title": "x"}}
    }
    assert patchset_hash(patchset, retitled) != pinned


def test_an_identity_is_kept_only_for_the_version_the_set_pins() -> None:
    other_revision = {"windows-10.0.22631-x64": {KB: ("rev-2", IDENTITY)}}
    assert update_identities(WINDOWS, other_revision) == {}
    a_package = {
        "ubuntu-22.04-amd64": {"openssl": ("3.0.2-0ubuntu1.15", PatchIdentity(kind="package"))}
    }
    assert update_identities(LINUX, a_package) == {}


def test_a_kb_is_shown_by_number_and_title_a_package_by_name_and_version() -> None:
    identity = IDENTITY.to_json()
    assert patch_label("openssl", "3.0.13-1") == "openssl=3.0.13-1"
    assert patch_label(KB, "rev-3", identity) == f"{KB} — {TITLE} (rev-3) [security]"
    assert patch_label(KB, "cat-7f3a", identity) == f"{KB} — {TITLE} [security]"
    bare = PatchIdentity(catalog_id="cat-9").to_json()  # no KB, no title (a macOS update)
    assert patch_label("cat-9", "cat-9", bare) == "cat-9"
    updates = {"windows-10.0.22631-x64": {KB: identity}}
    text = describe({**LINUX, **WINDOWS}, updates=updates)
    assert f"windows-10.0.22631-x64: {KB} — {TITLE} (rev-3) [security]" in text
    assert "ubuntu-22.04-amd64: libssl3=3.0.2-0ubuntu1.15, openssl=3.0.2-0ubuntu1.15" in text
    assert f"{KB}=rev-3" not in text


def test_an_identity_survives_its_json_form_and_drops_empty_fields() -> None:
    data = PatchIdentity(kb=KB, title="", classification=None).to_json()
    assert data == {"kind": "update", "kb": KB}
    assert PatchIdentity.from_json(data) == PatchIdentity(kb=KB)
    assert PatchIdentity.from_json({"kind": "weird", "kb": 5}).kb == "5"


def test_windows_facts_updates_and_scores_cross_the_zone_wire_unchanged() -> None:
    facts = HostFacts(
        "windows",
        "10.0.22631",
        "x64",
        "10.0.22631.3007",
        "windows-update",
        "b",
        1.0,
        False,
        os_family="windows",
        build="22631.3007",
    )
    update = UpgradablePackage(KB, None, "rev-3", security=True, identity=IDENTITY)
    package = UpgradablePackage("openssl", "3.0.11-1", "3.0.13-1")
    advisory = HostAdvisory(id=KB, packages={KB: None}, cves=("CVE-2024-20666",), cvss=8.1)
    assert OPS["facts"](encode_value(facts)) == facts
    assert OPS["list_upgradable"](encode_value([update, package])) == [update, package]
    assert OPS["host_advisories"](encode_value([advisory])) == [advisory]
