"""One look for every analyzer figure: seconds from the log's start on time axes, units on
every axis, the same colours for pass/warn/fail, and markers where events were found.

Figures are drawn only when a run directory is written (see
:class:`bagscope.pipeline.stage.FigureSpec`), so importing this module costs nothing at run time;
Matplotlib is imported by the caller that draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from matplotlib.axes import Axes

    from bagscope.pipeline.stage import Event

__all__ = [
    "SEVERITY_COLOURS",
    "TOPIC_COLOURS",
    "legend",
    "mark_events",
    "seconds",
    "style_axes",
]

SEVERITY_COLOURS = {"info": "#4c78a8", "warning": "#f58518", "error": "#e45756"}
# Tableau-like, readable on white and distinguishable in grey scale.
TOPIC_COLOURS = (
    "#4c78a8",
    "#54a24b",
    "#b279a2",
    "#72b7b2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)


def seconds(times_ns: Iterable[int], origin_ns: int) -> list[float]:
    """Log times as seconds since ``origin_ns`` (the log's start), for a time axis."""
    return [(t - origin_ns) / 1e9 for t in times_ns]


def style_axes(ax: Axes, *, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Labels with units, a light grid behind the data, no top/right spines."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def mark_events(ax: Axes, events: Sequence[Event], origin_ns: int) -> None:
    """Shade each event's time span on a time axis, coloured by severity."""
    for event in events:
        start = (event.t_ns - origin_ns) / 1e9
        end = (max(event.end_ns, event.t_ns) - origin_ns) / 1e9
        colour = SEVERITY_COLOURS.get(event.severity, "#999999")
        if end - start < 1e-3:
            ax.axvline(start, color=colour, alpha=0.6, linewidth=1.0)
        else:
            ax.axvspan(start, end, color=colour, alpha=0.18, linewidth=0)


def legend(ax: Axes, **kwargs: Any) -> None:
    """A legend when something on ``ax`` has a label (Matplotlib warns on an empty one)."""
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(handles, labels, **kwargs)
