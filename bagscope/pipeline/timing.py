"""Per-stage time on every frame, and whether the pipeline keeps up with the sensors.

A pipeline that averages 40 ms per frame on a 10 Hz lidar still misses frames if one frame in
a hundred takes 300 ms, so every call is kept (8 bytes each) and reported as percentiles, not a
mean.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["StageTimings", "percentiles_ns"]

PERCENTILES = (50, 95, 99)


def percentiles_ns(values: array[int] | list[int]) -> dict[str, int | None]:
    """p50/p95/p99/max of ``values`` (ns, nearest-rank), None for each when empty."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    arr = np.sort(np.asarray(values, dtype=np.int64))
    out: dict[str, int | None] = {}
    for p in PERCENTILES:
        rank = max(1, int(np.ceil(p / 100 * len(arr))))
        out[f"p{p}"] = int(arr[rank - 1])
    out["max"] = int(arr[-1])
    return out


@dataclass(slots=True)
class StageTimings:
    """Wall time per stage: one value per frame for ``process``, a total for ``on_message``.

    ``period_ns`` is the sensor period the frames come at (the median frame spacing), the
    budget every frame's total must fit into for the pipeline to run in real time.
    """

    frames: dict[str, array[int]] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    message_calls: dict[str, int] = field(default_factory=dict)
    finish: dict[str, int] = field(default_factory=dict)
    period_ns: int | None = None
    read_ns: int = 0

    def frame_totals(self) -> array[int]:
        """Per frame, the time of all stages together."""
        series = list(self.frames.values())
        if not series:
            return array("q")
        n = min(len(s) for s in series)
        total = np.zeros(n, dtype=np.int64)
        for s in series:
            total += np.asarray(s[:n], dtype=np.int64)
        return array("q", total.tolist())

    def to_json(self) -> dict[str, Any]:
        stages: dict[str, Any] = {}
        for name in dict.fromkeys([*self.frames, *self.messages, *self.finish]):
            frames = self.frames.get(name, array("q"))
            stages[name] = {
                "frames": len(frames),
                "frame_ns": percentiles_ns(frames),
                "frame_total_ns": int(sum(frames)),
                "message_calls": self.message_calls.get(name, 0),
                "message_total_ns": self.messages.get(name, 0),
                "finish_ns": self.finish.get(name, 0),
            }
        return {
            "stages": stages,
            "period_ns": self.period_ns,
            "frame_total_ns": percentiles_ns(self.frame_totals()),
            "read_ns": self.read_ns,
        }
