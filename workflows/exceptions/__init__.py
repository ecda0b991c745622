"""Time-boxed exceptions: grant, list, revoke, and let them lapse at expiry.

An exception leaves a host (or one package on it) out of rollouts until it expires.
Granting needs operator rights; owner, reason and an expiry no later than the maximum
(the plan's ``jira.max_exception_days`` or the settings' default) are required. Every
exception gets its own Jira ticket (an outbox row, see :mod:`workflows.tickets`); revoking
it or its lapse at expiry comments on that ticket, and the lapse is announced in the
exception's channel.

Scope: a host-scoped exception makes the engine mark the host ``excepted`` at layout
time; a package-scoped one removes that package from the host's patch set (the host is
still patched with the rest). A CVE may be named as well, as a record of what the
exception is about; a CVE without a package takes the package from the host's latest
assessment (:func:`packages_fixing`), and is refused when that names none or several.
"""

from workflows.exceptions._grant import expire_due, grant, revoke
from workflows.exceptions._query import (
    excepted_hosts,
    held_packages,
    list_active,
    packages_fixing,
)

__all__ = [
    "excepted_hosts",
    "expire_due",
    "grant",
    "held_packages",
    "list_active",
    "packages_fixing",
    "revoke",
]
