"""manifest.yml lists exactly the bot scopes the code's Web API calls need."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCOPES = {  # Web API method (as slack_sdk names it) -> the bot scope it needs
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "usergroups_users_list": {"usergroups:read"},
    "users_lookupByEmail": {"users:read", "users:read.email"},
    "views_open": set(),
    "views_publish": set(),
    "auth_test": set(),
    "files_upload_v2": {"files:write"},
    "send_socket_mode_response": set(),  # Socket Mode's ack over the socket: no Web API scope
}


def test_manifest_scopes_are_exactly_those_of_the_methods_the_code_calls() -> None:
    called: set[str] = set()
    for folder in ("bot", "integrations/slack"):
        for path in (REPO / folder).rglob("*.py"):
            called |= set(re.findall(r"client\.(\w+)\(", path.read_text()))
    unknown = called - set(SCOPES)
    assert not unknown, f"add these methods' scopes to the test table: {unknown}"
    needed = {"commands"}.union(*(SCOPES[m] for m in called))
    manifest = yaml.safe_load((REPO / "manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
