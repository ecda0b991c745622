"""summary.html: one self-contained page (inline CSS, charts as base64 PNGs), via Jinja2."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from workflows.audit import format_time


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def render(
    *,
    period: Any,
    figures: Mapping[str, Any],
    charts: Mapping[str, bytes],
    mapping: Mapping[str, Any],
    audit: Mapping[str, Any],
    pruned: str | None,
    files: Sequence[Mapping[str, Any]],
    sla_days: Mapping[str, int],
) -> str:
    # Jinja2 is imported here, not with the module: importing the reports room (for its
    # Period, say) must not cost every process that never builds a bundle.
    import jinja2

    template_text = (
        resources.files("workflows.reports").joinpath("summary.html.j2").read_text("utf-8")
    )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(template_text)
    names = ", ".join(f"{fw['name']} {fw['edition']}" for fw in mapping["frameworks"].values())
    return template.render(
        period={
            "since_text": format_time(period.since)[:19].replace("T", " "),
            "until_text": format_time(period.until)[:19].replace("T", " "),
        },
        figures=figures,
        charts={k: base64.b64encode(v).decode("ascii") for k, v in charts.items()},
        mapping=mapping,
        framework_names=names,
        audit=audit,
        pruned=pruned,
        files=files,
        sla_days=sla_days,
        fmt=_fmt,
        pct=_pct,
    )
