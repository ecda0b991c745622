"""The console's workspace: its people, channels and user groups.

The IDs match the example plans (examples/plans/weekly.yml): U0123ABCDE approves the
canary; U0123ABCDE and U0456FGHIJ (quorum 2) production; S0789KLMNO is the plans'
escalation group. The operator starts rollouts and so may not approve them.
"""

from __future__ import annotations

from dataclasses import dataclass

TEAM_ID = "T0CONSOLE"
BOT_USER = "U0PATCHBOT"
BOT_ID = "B0PATCHBOT"
APP_ID = "A0PATCHGATE"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: str


PEOPLE: tuple[Person, ...] = (
    Person("U0999OPERA", "olivia.operator", "operator: starts rollouts (the requester)"),
    Person("U0123ABCDE", "alice.approver", "approver: canary and production"),
    Person("U0456FGHIJ", "bob.approver", "approver: production"),
    Person("U0777OUTSI", "oscar.outsider", "no PatchGate powers"),
    Person("U0555ONCAL", "casey.oncall", "on call: mentioned by rollback alerts"),
)
OPERATOR = PEOPLE[0].id
APPROVERS = (PEOPLE[1].id, PEOPLE[2].id)
OUTSIDER = PEOPLE[3].id
ONCALL_PERSON = PEOPLE[4].id

PATCHING = "C0123456789"  # the example plans' channel
ONCALL = "C0ONCALL"
CHANNELS: dict[str, str] = {PATCHING: "patching", ONCALL: "oncall"}

ONCALL_GROUP = "S0ONCALL"
GROUP_HANDLES: dict[str, str] = {ONCALL_GROUP: "oncall", "S0789KLMNO": "patch-escalation"}
USERGROUPS: dict[str, tuple[str, ...]] = {
    ONCALL_GROUP: (ONCALL_PERSON,),
    "S0789KLMNO": (),  # the example plans' escalation group (also production approvers)
}


def person(user_id: str) -> Person | None:
    return next((p for p in PEOPLE if p.id == user_id), None)
