"""The backend port: who does the host work of a ring (issue 19).

A backend patches hosts. PatchGate's own SSH executor is one backend (it works host by
host through :class:`workflows.ports.Executor`); the others hand a whole batch to a
tool that patches (``ansible`` through ansible-runner, ``awx`` through its REST API,
later Satellite, Automox, Intune, NinjaOne, Tanium) and report one result per host.

Whatever the backend, the engine keeps its guarantees: the intent (a job key) is
persisted before :meth:`BatchBackend.submit`; after a crash the engine asks
:meth:`BatchBackend.find` for the job by that key rather than submitting again; gates,
health checks, the failure budget, tickets, audit and evidence are the engine's, the
same for every backend.

A backend declares what it can do (:class:`Capabilities`) as pure data, from the plan's
options for it, so a plan that asks for something the backend cannot do (automatic
rollback, reboots) is refused when the plan is loaded, not in the middle of a ring.

Everything that crosses the port is a small frozen value defined here; ``workflows``
builds no tool command line and imports no tool SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from workflows.ports import HostAdvisory, HostFacts, InventoryHost, UpgradablePackage

# The inventory variable that picks a host's backend (over the ring's).
HOST_BACKEND_VAR = "patchgate_backend"
DEFAULT_BACKEND = "ssh"

Action = Literal["apply", "rollback", "reboot"]
HostStatus = Literal["applied", "failed", "unreachable", "skipped"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared without I/O.

    ``per_host``: the engine drives each host itself through the backend's
    :class:`~workflows.ports.Executor` (the SSH backend); otherwise it submits one job
    per batch. ``rollback``: it can put back recorded versions (``rollback: auto`` needs
    it). ``reboot``: it can reboot hosts on PatchGate's request (``reboot: always`` or
    ``if-required`` needs it, unless the backend's own job reboots). ``health``:
    PatchGate can run the plan's HTTP/TCP/command checks against its hosts.
    ``assess``: it can report pending updates. ``inventory``: it can list the hosts it
    manages.
    """

    per_host: bool = False
    rollback: bool = False
    reboot: bool = False
    health: bool = True
    assess: bool = False
    inventory: bool = False
    # The backend's own apply job reboots hosts that need it (its options say so): a
    # plan's ``reboot: always``/``if-required`` is then the job's business, not
    # PatchPlan's, and is accepted without ``reboot``; the engine asks for no reboot.
    reboots_itself: bool = False
    # The tool reports each host's own state (agent connected, checked in since the
    # job, compliant): :meth:`StatusBackend.status`, the ``tool`` health-check kind.
    status: bool = False
    # The tool can stop or pause a job it is still running (a deployment paused, a
    # task cancelled): :meth:`HaltBackend.halt`, used when a gate is rejected, the
    # failure budget is spent or the rollout is aborted.
    halt: bool = False


@dataclass(frozen=True)
class BatchWork:
    """One job for a backend: apply the pinned versions, roll back to the recorded
    ones, or reboot, on the batch's hosts.

    ``key`` is the idempotency key the engine persisted before submitting; the backend
    puts it where the tool keeps it (extra vars, a job description, a tag) so that
    :meth:`BatchBackend.find` can find the job again after a crash.

    ``versions``: host name -> package -> version. For ``apply`` the host's share of
    the pinned set; for ``rollback`` the versions before the apply (None: the package
    was not installed); empty for ``reboot``.
    """

    key: str
    action: Action
    rollout_id: int
    ring: str
    batch: int
    hosts: Sequence[InventoryHost]
    versions: Mapping[str, Mapping[str, str | None]]
    patchset_hash: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # the plan's section for it


@dataclass(frozen=True)
class JobRef:
    """A job a backend submitted: the tool's id for it and the key PatchGate gave it."""

    backend: str
    job_id: str
    key: str


@dataclass(frozen=True)
class HostOutcome:
    """What a job did on one host.

    ``applied``: the job finished on the host (for ``apply`` and ``rollback`` the
    engine still compares ``after`` with the versions it asked for); ``failed``: the
    tool reports a failure (``failed_task`` and ``output`` say which and why);
    ``unreachable``: the tool could not reach the host; ``skipped``: the tool did
    nothing on it (the engine decides from ``after`` whether it is current).
    """

    host: str
    status: HostStatus
    before: Mapping[str, str | None] = field(default_factory=dict)
    after: Mapping[str, str | None] = field(default_factory=dict)
    output: str = ""
    failed_task: str | None = None
    exit_code: int | None = None
    reboot_required: bool = False


@dataclass(frozen=True)
class JobStatus:
    """A job's state as the tool reports it; ``hosts`` is complete once ``done``."""

    job: JobRef
    done: bool
    state: str  # the tool's own word: "running", "successful", "failed", "canceled", ...
    hosts: Mapping[str, HostOutcome] = field(default_factory=dict)
    detail: str = ""


@dataclass(frozen=True)
class HostAssessment:
    """Pending updates on one host as a backend sees them; ``error`` when it could not
    assess the host (a coverage gap, not silence)."""

    host: str
    reachable: bool
    facts: HostFacts | None = None
    upgradable: Sequence[UpgradablePackage] = ()
    advisories: Sequence[HostAdvisory] = ()
    error: str | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """A tool's own view of one host after a job: ``ok`` when the tool says the host
    is well (agent connected and checked in, no failed or pending reboot state),
    ``state`` the tool's own word for it, ``detail`` why not when ``ok`` is False."""

    host: str
    ok: bool
    state: str = ""
    detail: str = ""


class BatchBackend(Protocol):
    """A tool that patches a batch of hosts as one job."""

    name: str

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        """What this backend can do with these plan options (pure, no I/O)."""
        ...

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        """Problems with the plan's options for this backend (pure), one line each."""
        ...

    async def submit(self, work: BatchWork) -> JobRef:
        """Start the job, carrying ``work.key`` where the tool keeps it."""
        ...

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        """The job submitted with this key, if the tool has one (after a crash)."""
        ...

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        """Wait (at most ``wait`` seconds) for the job and report it; ``done`` False
        when it is still running then (the engine follows again, the job is not lost)."""
        ...

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        """Pending updates per host (``capabilities().assess``)."""
        ...

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        """The hosts the tool manages, for inventory import (``capabilities().inventory``)."""
        ...


class StatusBackend(Protocol):
    """A backend whose tool reports each host's own status (``capabilities().status``)."""

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        """One :class:`DeviceStatus` per host asked for; a host the tool does not know
        is ``ok=False`` with the reason, never left out."""
        ...


class HaltBackend(Protocol):
    """A backend whose tool can stop a running job (``capabilities().halt``)."""

    async def halt(self, job: JobRef, options: Mapping[str, Any], *, reason: str) -> None:
        """Stop or pause the job (idempotent: a job already finished or halted is left
        as it is); ``reason`` goes where the tool keeps a note, if it has one."""
        ...


class BackendDeclaration(Protocol):
    """What the plan loader and the engine know of any backend without I/O: its name,
    what it can do with given options, and what is wrong with those options.

    Every backend implements it (a :class:`BatchBackend` does, and so does the SSH
    backend, which works through the engine's :class:`~workflows.ports.Executor`).
    """

    name: str

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities: ...

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]: ...


# The backends PatchGate knows, by name (built in ``integrations.backends``).
BackendCatalog = Mapping[str, BackendDeclaration]


def host_backend(host: InventoryHost, ring_backend: str) -> str:
    """The backend that works on ``host`` in a ring whose backend is ``ring_backend``:
    the host's inventory variable :data:`HOST_BACKEND_VAR` when set, else the ring's."""
    chosen = host.vars.get(HOST_BACKEND_VAR)
    return str(chosen).strip() if chosen not in (None, "") else ring_backend


def job_key(rollout_id: int, ring: int, scope: str, backend: str, action: Action) -> str:
    """The idempotency key of one job: unique per rollout, ring position, scope (a batch
    ``b3``, the ring's rollback ``ring``, an abort ``abort``), backend and action."""
    return f"pg-{rollout_id}-r{ring}-{scope}-{backend}-{action}"
