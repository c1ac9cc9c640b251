"""Ground segmentation on a polar grid, robust to slopes and to objects standing on the ground.

The cloud is cut into azimuth sectors x range rings (cells). A cell is a ground *candidate*
when its points are flat (their height spread is what a slope up to ``max_slope_deg`` allows
over a ring, not the metre or more of a car's side or a wall), and its sample is the points'
mean (range, height). Each sector is then walked outwards from the sensor: a candidate is
accepted as ground when it lies within ``threshold`` plus the largest rise a ``max_slope_deg``
slope makes since the last accepted sample, so a ramp is followed ring by ring while a car's
roof or a low wall top, which jumps up at once, is not. The ground under each point is the
linear interpolation of its sector's accepted samples at the point's range, and points within
``threshold`` above it (or anywhere below it) are ground.

Where the ground starts is the height of the sensor above it: given (``sensor_height``), or
estimated each sweep as the median height of the flat cells 2-25 m away, which the road
dominates in any driving scene. Everything is vectorised over sectors; the only Python loops
run over rings (walk) and sectors (interpolation), a few hundred small numpy calls per sweep.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import PointSet, points_from
from bagscope.pipeline.shards import ColumnShards
from bagscope.pipeline.stage import Check, Metrics, StageResult

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

__all__ = ["GroundSegmentation", "ground_mask"]

_ESTIMATE_RANGE_M = (2.0, 25.0)
# however long a shadow, ground does not come back more than this off its predicted height
_MAX_JUMP_M = 0.5


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"ground_segmentation: {what} must be a positive number, got {value!r}"
        raise BagscopeError(msg)
    if not math.isfinite(value):
        msg = f"ground_segmentation: {what} must be finite, got {value!r}"
        raise BagscopeError(msg)
    return float(value)


def ground_mask(
    xyz: NDArray[np.float32],
    *,
    threshold: float = 0.2,
    sensor_height: float | None = None,
    sectors: int = 90,
    ring: float = 1.0,
    max_range: float = 100.0,
    max_slope_deg: float = 15.0,
    max_bend_deg: float = 5.0,
) -> tuple[NDArray[np.bool_], float]:
    """(ground mask of ``xyz`` (N, 3), ground height at the sensor). See the module doc."""
    n = len(xyz)
    if n == 0:
        return np.zeros(0, dtype=bool), math.nan
    x = xyz[:, 0].astype(np.float64)
    y = xyz[:, 1].astype(np.float64)
    z = xyz[:, 2].astype(np.float64)
    r = np.hypot(x, y)
    rings = max(1, math.ceil(max_range / ring))
    sector = ((np.arctan2(y, x) + math.pi) * (sectors / (2 * math.pi))).astype(np.int64)
    np.clip(sector, 0, sectors - 1, out=sector)
    ring_of = np.minimum((r / ring).astype(np.int64), rings - 1)
    cell = sector * rings + ring_of
    order = np.argsort(cell, kind="stable")
    cs, zs, rs = cell[order], z[order], r[order]
    starts = np.flatnonzero(np.concatenate(([True], cs[1:] != cs[:-1])))
    ids = cs[starts]
    counts = np.diff(np.append(starts, n))
    zmin = np.minimum.reduceat(zs, starts)
    zmax = np.maximum.reduceat(zs, starts)
    zmean = np.add.reduceat(zs, starts) / counts
    rmean = np.add.reduceat(rs, starts) / counts
    rise = math.tan(math.radians(max_slope_deg))
    flat = (zmax - zmin) <= max(2.0 * threshold, 1.2 * rise * ring + 0.1)

    zgrid = np.full((sectors, rings), np.nan)
    rgrid = np.full((sectors, rings), np.nan)
    zgrid.reshape(-1)[ids[flat]] = zmean[flat]
    rgrid.reshape(-1)[ids[flat]] = rmean[flat]

    if sensor_height is not None:
        z0 = -float(sensor_height)
    else:
        near = flat & (rmean >= _ESTIMATE_RANGE_M[0]) & (rmean <= _ESTIMATE_RANGE_M[1])
        z0 = float(np.median(zmean[near])) if near.any() else float(np.percentile(z, 5))

    # walk each sector outwards, all sectors at once
    z_last = np.full(sectors, z0)
    r_last = np.zeros(sectors)
    slope = np.zeros(sectors)
    bend = math.tan(math.radians(max_bend_deg))
    accepted = np.zeros((sectors, rings), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(rings):
            zc, rc = zgrid[:, j], rgrid[:, j]
            dr = rc - r_last
            ok = np.abs(zc - (z_last + slope * dr)) <= threshold + np.minimum(
                bend * dr, _MAX_JUMP_M
            )
            accepted[:, j] = ok
            step = np.clip((zc - z_last) / np.maximum(dr, ring), -rise, rise)
            slope = np.where(ok, 0.5 * (slope + step), slope)
            z_last = np.where(ok, zc, z_last)
            r_last = np.where(ok, rc, r_last)

    # ground height under each point: per sector, interpolate its accepted samples in range
    ground_z = np.empty(n)
    sector_sorted = cs // rings
    bounds = np.searchsorted(sector_sorted, np.arange(sectors + 1))
    for s in range(sectors):
        a, b = bounds[s], bounds[s + 1]
        if a == b:
            continue
        keep = accepted[s]
        sample_r = np.concatenate(([0.0], rgrid[s, keep]))
        sample_z = np.concatenate(([z0], zgrid[s, keep]))
        ground_z[a:b] = np.interp(rs[a:b], sample_r, sample_z)
    mask = np.empty(n, dtype=bool)
    mask[order] = zs - ground_z <= threshold
    return mask, z0


class GroundSegmentation(ColumnShards):
    """Removes the ground: outputs the non-ground points (obstacles) for a detector."""

    # per-frame (per-message) columns: a long log's time shards are merged by joining them
    shard_fields = ("_t", "_fraction", "_height")

    def __init__(
        self,
        *,
        name: str | None = None,
        input: str | None = None,
        threshold: float = 0.2,
        sensor_height: float | None = None,
        sectors: int = 90,
        ring: float = 1.0,
        max_range: float = 100.0,
        max_slope_deg: float = 15.0,
    ) -> None:
        self.name = name or "ground_segmentation"
        self.input = input
        self.threshold = _positive(threshold, "threshold")
        self.sensor_height = (
            None if sensor_height is None else _positive(sensor_height, "sensor_height")
        )
        if isinstance(sectors, bool) or not isinstance(sectors, int) or not 4 <= sectors <= 3600:
            msg = f"ground_segmentation: sectors must be an integer in 4..3600, got {sectors!r}"
            raise BagscopeError(msg)
        self.sectors = sectors
        self.ring = _positive(ring, "ring")
        self.max_range = _positive(max_range, "max_range")
        self.max_slope_deg = _positive(max_slope_deg, "max_slope_deg")
        if self.max_slope_deg >= 60:
            msg = f"ground_segmentation: max_slope_deg must be below 60, got {max_slope_deg!r}"
            raise BagscopeError(msg)
        self._t: list[int] = []
        self._fraction: list[float] = []
        self._height: list[float] = []

    def process(self, frame: Frame) -> PointSet:
        points = points_from(frame, self.input)
        mask, z0 = ground_mask(
            points.xyz,
            threshold=self.threshold,
            sensor_height=self.sensor_height,
            sectors=self.sectors,
            ring=self.ring,
            max_range=self.max_range,
            max_slope_deg=self.max_slope_deg,
        )
        self._t.append(frame.t_ns)
        self._fraction.append(float(mask.mean()) if len(mask) else math.nan)
        self._height.append(z0)
        return points.select(~mask)

    def finish(self) -> StageResult:
        metrics = Metrics()
        metrics.extend("ground_fraction", self._t, self._fraction)
        metrics.extend("ground_z", self._t, self._height)
        fractions = np.asarray(self._fraction, dtype=np.float64)
        fractions = fractions[np.isfinite(fractions)]
        median = float(np.median(fractions)) if len(fractions) else math.nan
        metrics.add("ground_fraction", median)
        metrics.add("frames", len(self._t))
        check = Check(
            name="ground found",
            topic=None,
            status="skip" if not len(fractions) else ("pass" if median >= 0.1 else "warn"),
            value=f"median {median:.1%} of points" if len(fractions) else "no frames",
            threshold=">= 10% of points",
            stage=self.name,
        )
        return StageResult(metrics=metrics, checks=[check])
