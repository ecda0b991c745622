"""The summary's charts as PNG bytes (matplotlib's Agg canvas, imported when first drawn).

No pyplot and no global backend switch: a ``Figure`` is drawn on its own
``FigureCanvasAgg``. Output is deterministic for one matplotlib version: default style,
the bundled DejaVu font, and no ``Software`` text chunk in the PNG.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from workflows.reports._figures import Period

COLOURS = {
    "critical": "#b3261e",
    "high": "#e8710a",
    "medium": "#c9a400",
    "low": "#1e8e3e",
    "unknown": "#5f6368",
}


def _labels(period: Period) -> list[str]:
    return [f"{start:%m-%d}" for start, _ in period.buckets()]


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _style() -> Any:
    """matplotlib's default style, whatever a matplotlibrc says (deterministic output).

    The ``backend`` entry is left alone: setting it makes matplotlib resolve a backend,
    and the canvas here is always Agg."""
    import matplotlib

    defaults: Any = {k: v for k, v in matplotlib.rcParamsDefault.items() if k != "backend"}
    return matplotlib.rc_context(defaults)


def _figure(title: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    fig.subplots_adjust(left=0.08, right=0.83, top=0.88, bottom=0.2)  # one draw, no layout engine
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    return fig, ax


def _ticks(ax: Any, labels: Sequence[str]) -> None:
    step = max(1, len(labels) // 14)
    ax.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)])
    ax.tick_params(axis="x", labelsize=8, rotation=45)


def time_to_patch_chart(period: Period, series: Mapping[str, Sequence[float | None]]) -> bytes:
    """Median days to patch per severity, per day or week of the period."""
    with _style():
        return _time_to_patch_chart(period, series)


def _time_to_patch_chart(period: Period, series: Mapping[str, Sequence[float | None]]) -> bytes:
    fig, ax = _figure("Median time to patch (days) by severity")
    labels = _labels(period)
    xs = list(range(len(labels)))
    for severity, values in series.items():
        points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if points:
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                linewidth=1.5,
                color=COLOURS.get(severity, "#000000"),
                label=severity,
            )
    if not series:
        ax.text(0.5, 0.5, "no fixes patched in this period", ha="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlim(-0.5, max(len(labels) - 0.5, 0.5))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("days")
    _ticks(ax, labels)
    return _png(fig)


def coverage_chart(period: Period, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Hosts known, assessed and patched per day or week of the period."""
    with _style():
        return _coverage_chart(period, rows)


def _coverage_chart(period: Period, rows: Sequence[Mapping[str, Any]]) -> bytes:
    fig, ax = _figure("Coverage: hosts assessed and patched")
    labels = _labels(period)
    xs = list(range(len(rows)))
    ax.plot(xs, [r["known"] for r in rows], color="#5f6368", linewidth=1.5, label="hosts known")
    width = 0.4
    ax.bar(
        [x - width / 2 for x in xs],
        [r["assessed"] for r in rows],
        width=width,
        color="#1a73e8",
        label="assessed",
    )
    ax.bar(
        [x + width / 2 for x in xs],
        [r["patched"] for r in rows],
        width=width,
        color="#1e8e3e",
        label="patched",
    )
    ax.set_xlim(-0.5, max(len(labels) - 0.5, 0.5))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("hosts")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _ticks(ax, labels)
    return _png(fig)
