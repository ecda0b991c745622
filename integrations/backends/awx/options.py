"""The plan's options for the ``awx`` backend, checked without I/O.

backend: awx
awx:
  job_template: "Patch Linux"          # id or name: the apply job (required)
  rollback_job_template: 12            # optional: enables rollback
  reboot_job_template: "Reboot"        # optional: enables reboot
  assess_job_template: 14              # optional: enables assess
  inventory: 3                         # optional: inventory id (hosts(), launch check)
  assess_timeout: 1800                 # optional: seconds assess() waits for its job
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflows.backends import Action, Capabilities

TEMPLATE_KEYS = (
    "job_template",
    "rollback_job_template",
    "reboot_job_template",
    "assess_job_template",
)
KNOWN_KEYS = (*TEMPLATE_KEYS, "inventory", "assess_timeout")
TemplateRef = int | str
ACTION_KEY: Mapping[Action, str] = {
    "apply": "job_template",
    "rollback": "rollback_job_template",
    "reboot": "reboot_job_template",
}


@dataclass(frozen=True)
class AwxOptions:
    job_template: TemplateRef
    rollback_job_template: TemplateRef | None = None
    reboot_job_template: TemplateRef | None = None
    assess_job_template: TemplateRef | None = None
    inventory: int | None = None
    assess_timeout: float = 1800.0

    def template_for(self, action: Action) -> TemplateRef | None:
        ref: TemplateRef | None = getattr(self, ACTION_KEY[action])
        return ref

    def templates(self) -> list[TemplateRef]:
        refs = (getattr(self, key) for key in TEMPLATE_KEYS)
        return [ref for ref in refs if ref is not None]


def _template_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return f"awx.{key}: a job template id (a positive integer) or name, got {value!r}"
    if isinstance(value, int) and value <= 0:
        return f"awx.{key}: a job template id must be a positive integer, got {value}"
    if isinstance(value, str) and not value.strip():
        return f"awx.{key}: a job template name must not be empty"
    return None


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"awx: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    if options.get("job_template") is None:
        problems.append("awx.job_template: required (the id or name of the patch job template)")
    for key in TEMPLATE_KEYS:
        if options.get(key) is not None:
            problem = _template_problem(key, options[key])
            if problem:
                problems.append(problem)
    inventory = options.get("inventory")
    if inventory is not None and (
        isinstance(inventory, bool) or not isinstance(inventory, int) or inventory <= 0
    ):
        problems.append(f"awx.inventory: an inventory id (a positive integer), got {inventory!r}")
    timeout = options.get("assess_timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append(f"awx.assess_timeout: seconds (a positive number), got {timeout!r}")
    return problems


def parse_options(options: Mapping[str, Any]) -> AwxOptions:
    """The options as a value; raises ValueError with every problem when they are bad."""
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))

    def ref(key: str) -> TemplateRef | None:
        value = options.get(key)
        return value.strip() if isinstance(value, str) else value

    job_template = ref("job_template")
    assert job_template is not None
    return AwxOptions(
        job_template=job_template,
        rollback_job_template=ref("rollback_job_template"),
        reboot_job_template=ref("reboot_job_template"),
        assess_job_template=ref("assess_job_template"),
        inventory=options.get("inventory"),
        assess_timeout=float(options.get("assess_timeout") or 1800.0),
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    def has(key: str) -> bool:
        return options.get(key) is not None

    return Capabilities(
        per_host=False,
        rollback=has("rollback_job_template"),
        reboot=has("reboot_job_template"),
        health=True,
        assess=has("assess_job_template"),
        inventory=True,
    )


def unsafe_host_names(names: Sequence[str]) -> list[str]:
    """Names that would not mean themselves in an Ansible ``limit`` pattern."""
    bad = []
    for name in names:
        if (
            not name
            or name != name.strip()
            or any(c in name for c in ",:!&*?[]\\ \t\n")
            or name.startswith("~")
        ):
            bad.append(name)
    return bad
