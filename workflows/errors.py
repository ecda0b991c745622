"""PatchGate's exception tree. Every error the project raises on purpose is one of these.

Vendor errors (JIRAError, paramiko/invoke errors, SlackApiError, aiohttp.ClientError)
are translated into this tree at the adapter boundary (``raise HostUnreachable(h) from exc``).

    PatchGateError
    ├── ConfigError                 settings missing or invalid
    ├── InputError                  bad input from a person (CLI, Slack, plan file)
    │   ├── PlanError               a plan file is invalid (carries located messages)
    │   ├── SelectorError           a host selector does not parse
    │   └── InventoryError          an inventory source is invalid
    ├── NotFound                    a rollout, gate, outbox row... does not exist
    ├── Forbidden                   the actor may not do this (carries the reason)
    ├── Conflict                    the request is valid but the current state refuses it
    │   └── IllegalTransition       a state machine refused an event
    ├── StaleLeader                 this process lost leadership; its writes are refused
    ├── ExecutorError               something went wrong on a host
    │   ├── HostUnreachable         could not connect / connection lost
    │   ├── HostKeyRejected         unknown or changed SSH host key
    │   └── CommandFailed           a command ran and failed
    ├── DeliveryError               an outbox delivery failed
    │   ├── TransientDeliveryError  retry later (carries retry_after seconds)
    │   └── PermanentDeliveryError  dead-letter it
    └── AuditChainBroken            the audit chain does not verify
"""

from __future__ import annotations


class PatchGateError(Exception):
    """Root of every error PatchGate raises on purpose."""


class ConfigError(PatchGateError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class InputError(PatchGateError):
    pass


class PlanError(InputError):
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


class SelectorError(InputError):
    def __init__(self, message: str, *, position: int = 0) -> None:
        self.position = position
        super().__init__(message)


class InventoryError(InputError):
    pass


class NotFound(PatchGateError):
    pass


class Forbidden(PatchGateError):
    pass


class Conflict(PatchGateError):
    pass


class IllegalTransition(Conflict):
    def __init__(self, machine: str, state: str, event: str) -> None:
        self.machine, self.state, self.event = machine, state, event
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}")


class StaleLeader(PatchGateError):
    pass


class ExecutorError(PatchGateError):
    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class HostUnreachable(ExecutorError):
    pass


class HostKeyRejected(ExecutorError):
    pass


class CommandFailed(ExecutorError):
    def __init__(self, host: str, message: str, *, exit_code: int, output_tail: str = "") -> None:
        self.exit_code = exit_code
        self.output_tail = output_tail
        super().__init__(host, message)


class DeliveryError(PatchGateError):
    pass


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentDeliveryError(DeliveryError):
    pass


class AuditChainBroken(PatchGateError):
    def __init__(self, event_id: int | None, message: str) -> None:
        self.event_id = event_id
        super().__init__(message)
