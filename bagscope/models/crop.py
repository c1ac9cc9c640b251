"""Cropping: keep the points a detector should look at (a range band, a box, an azimuth
sector), dropping the ego's own body, far sparse returns or what lies behind the camera.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import PointSet, points_from
from bagscope.pipeline.shards import ColumnShards
from bagscope.pipeline.stage import Metrics, StageResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

__all__ = ["Crop", "crop_mask"]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"crop: {what} must be a finite number, got {value!r}"
        raise BagscopeError(msg)
    return float(value)


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != count:
        msg = f"crop: {what} must be a list of {count} numbers, got {value!r}"
        raise BagscopeError(msg)
    return tuple(_number(v, what) for v in value)


def crop_mask(
    xyz: NDArray[np.float32],
    *,
    max_range: float | None = None,
    min_range: float | None = None,
    box: Sequence[float] | None = None,
    fov_deg: Sequence[float] | None = None,
) -> NDArray[np.bool_]:
    """Which points of ``xyz`` (N, 3) pass every given limit. Ranges are horizontal (x/y)
    distances, as :meth:`Boxes.ranges` measures them; ``box`` is inclusive; ``fov_deg`` runs
    counter-clockwise from its first azimuth to its second (atan2(y, x), degrees), so
    ``[135, -135]`` is the sector behind the sensor."""
    keep = np.ones(len(xyz), dtype=bool)
    x, y = xyz[:, 0], xyz[:, 1]
    if max_range is not None or min_range is not None:
        r2 = x.astype(np.float64) ** 2 + y.astype(np.float64) ** 2
        if max_range is not None:
            keep &= r2 <= max_range**2
        if min_range is not None:
            keep &= r2 >= min_range**2
    if box is not None:
        lo = np.asarray(box[:3], dtype=np.float32)
        hi = np.asarray(box[3:], dtype=np.float32)
        keep &= np.all((xyz >= lo) & (xyz <= hi), axis=1)
    if fov_deg is not None:
        start, end = float(fov_deg[0]), float(fov_deg[1])
        width = (end - start) % 360.0
        if width == 0.0 and end != start:
            width = 360.0
        azimuth = np.degrees(np.arctan2(y.astype(np.float64), x.astype(np.float64)))
        keep &= (azimuth - start) % 360.0 <= width
    return keep


class Crop(ColumnShards):
    """Keeps the points within a horizontal range band, an axis-aligned box
    ``[xmin, ymin, zmin, xmax, ymax, zmax]`` and an azimuth sector, in the cloud's frame."""

    # per-frame (per-message) columns: a long log's time shards are merged by joining them
    shard_fields = ("_t", "_kept")

    def __init__(
        self,
        *,
        name: str | None = None,
        input: str | None = None,
        max_range: float | None = None,
        min_range: float | None = None,
        box: Sequence[float] | None = None,
        fov_deg: Sequence[float] | None = None,
    ) -> None:
        self.name = name or "crop"
        self.input = input
        self.max_range = None if max_range is None else _number(max_range, "max_range")
        self.min_range = None if min_range is None else _number(min_range, "min_range")
        if self.max_range is not None and self.max_range <= 0:
            msg = f"crop: max_range must be positive, got {max_range!r}"
            raise BagscopeError(msg)
        if self.min_range is not None and self.min_range < 0:
            msg = f"crop: min_range must not be negative, got {min_range!r}"
            raise BagscopeError(msg)
        if (
            self.max_range is not None
            and self.min_range is not None
            and self.min_range >= self.max_range
        ):
            msg = f"crop: min_range ({min_range}) must be below max_range ({max_range})"
            raise BagscopeError(msg)
        self.box = None if box is None else _numbers(box, 6, "box")
        if self.box is not None and any(self.box[i] > self.box[i + 3] for i in range(3)):
            msg = f"crop: box must be [xmin, ymin, zmin, xmax, ymax, zmax], got {list(box or ())}"
            raise BagscopeError(msg)
        self.fov_deg = None if fov_deg is None else _numbers(fov_deg, 2, "fov_deg")
        self._t: list[int] = []
        self._kept: list[float] = []

    def process(self, frame: Frame) -> PointSet:
        points = points_from(frame, self.input)
        keep = crop_mask(
            points.xyz,
            max_range=self.max_range,
            min_range=self.min_range,
            box=self.box,
            fov_deg=self.fov_deg,
        )
        self._t.append(frame.t_ns)
        self._kept.append(float(keep.mean()) if len(keep) else math.nan)
        return points.select(keep)

    def finish(self) -> StageResult:
        metrics = Metrics()
        metrics.extend("kept_fraction", self._t, self._kept)
        metrics.add("frames", len(self._t))
        return StageResult(metrics=metrics)
