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

Exceptions may also be requested in Jira and granted there by an operator
(:func:`open_request`, :func:`decide_request`; issue 23).
"""

from workflows.exceptions._grant import expire_due, grant, problems_of, revoke
from workflows.exceptions._query import (
    excepted_hosts,
    held_packages,
    list_active,
    packages_fixing,
)
from workflows.exceptions._requests import (
    RequestFields,
    decide_request,
    open_request,
    request_of,
)

__all__ = [
    "RequestFields",
    "decide_request",
    "excepted_hosts",
    "expire_due",
    "grant",
    "held_packages",
    "list_active",
    "open_request",
    "packages_fixing",
    "problems_of",
    "request_of",
    "revoke",
]
