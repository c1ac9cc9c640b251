from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.models.ground import GroundSegmentation, ground_mask

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from numpy.typing import NDArray

RAMP_START, RAMP = 8.0, math.tan(math.radians(10.0))


def _ground_grid(
    height: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> NDArray[np.float64]:
    rng = np.random.default_rng(0)
    g = np.arange(-40.0, 40.0, 0.3)
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    keep = np.hypot(x, y) > 3.0  # the sensor sees no ground right around itself
    x, y = x[keep], y[keep]
    return np.stack([x, y, height(x) + rng.normal(0, 0.02, len(x))], 1)


def _box_surface(
    cx: float, cy: float, bottom: float, size: tuple[float, float, float]
) -> NDArray[np.float64]:
    """Points on the four sides and the top of an axis-aligned box, 0.1 m apart."""
    length, width, height = size
    us, ws, hs = (np.arange(0.0, s + 1e-9, 0.1) for s in (length, width, height))
    pts = []
    for u in us:
        for h in hs:
            pts += [(u, 0.0, h), (u, width, h)]
        for w in ws:
            pts.append((u, w, height))
    for w in ws:
        for h in hs:
            pts += [(0.0, w, h), (length, w, h)]
    arr = np.asarray(pts) - (length / 2, width / 2, 0.0)
    out: NDArray[np.float64] = arr + np.array([cx, cy, bottom])
    return out


def _ramp(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return -1.8 + RAMP * np.clip(x - RAMP_START, 0.0, None)


@pytest.mark.parametrize("height_given", [None, 1.8])
def test_flat_ground_with_objects(height_given: float | None) -> None:
    ground = _ground_grid(lambda x: np.full_like(x, -1.8))
    boxes = [
        _box_surface(10.0, 3.0, -1.8, (4.5, 1.8, 1.5)),
        _box_surface(-6.0, -8.0, -1.8, (0.6, 0.6, 1.7)),
        _box_surface(20.0, -15.0, -1.8, (10.0, 0.5, 6.0)),  # a wall
    ]
    objects = np.concatenate(boxes)
    xyz = np.concatenate([ground, objects]).astype(np.float32)
    mask, z0 = ground_mask(xyz, sensor_height=height_given)
    assert z0 == pytest.approx(-1.8, abs=0.02)
    assert mask[: len(ground)].mean() > 0.999
    high = objects[:, 2] > -1.8 + 0.25
    assert not mask[len(ground) :][high].any()


def test_ten_degree_ramp_is_ground_and_boxes_on_it_are_not() -> None:
    ground = _ground_grid(_ramp)
    centres = [(15.0, 2.0), (25.0, -3.0), (12.0, -6.0), (30.0, 6.0)]
    boxes = [
        _box_surface(cx, cy, float(_ramp(np.array([cx - 2.5]))[0]), (4.5, 1.8, 1.5))
        for cx, cy in centres
    ]
    objects = np.concatenate(boxes)
    xyz = np.concatenate([ground, objects]).astype(np.float32)
    mask, _ = ground_mask(xyz)
    on_ramp = ground[:, 0] > RAMP_START
    assert mask[: len(ground)][on_ramp].mean() > 0.99
    assert mask[: len(ground)].mean() > 0.99
    # box points well above the ramp under them are obstacles
    above = objects[:, 2] - _ramp(objects[:, 0]) > 0.3
    assert (~mask[len(ground) :][above]).mean() > 0.98


def test_bad_parameters() -> None:
    with pytest.raises(BagscopeError, match="threshold"):
        GroundSegmentation(threshold=0)
    with pytest.raises(BagscopeError, match="sectors"):
        GroundSegmentation(sectors=2)
    with pytest.raises(BagscopeError, match="max_slope_deg"):
        GroundSegmentation(max_slope_deg=80)


def test_on_a_simulated_drive(urban_drive_32: Path) -> None:
    """The simulator's ground is the plane z = 0, the lidar 1.8 m above it."""
    from bagscope.models.voxel import VoxelDownsample
    from bagscope.pipeline.runner import run_stages
    from bagscope.replay.log import open_log
    from bagscope.replay.sync import make_policy

    class Check:
        name = "check_points"
        worst_low = math.inf

        def process(self, frame: object) -> None:
            pts = frame.outputs["ground_segmentation"]  # type: ignore[attr-defined]
            self.worst_low = min(self.worst_low, float(np.quantile(pts.xyz[:, 2], 0.001)))

        def finish(self) -> object:
            from bagscope.pipeline.stage import StageResult

            return StageResult()

    stages: list[Any] = [VoxelDownsample(), GroundSegmentation(input="voxel_downsample"), Check()]
    with open_log(urban_drive_32) as log:
        policy = make_policy(
            "nearest", ["/lidar/points", "/ground_truth/objects"], slop_ns=20_000_000
        )
        result = run_stages(log, stages, sync=policy)
    assert result.frames >= 25
    metrics = result.results["ground_segmentation"].metrics
    _, fractions = metrics.series("ground_fraction")
    assert len(fractions) == result.frames
    assert min(fractions) > 0.2
    assert max(fractions) < 0.8
    _, heights = metrics.series("ground_z")
    assert max(abs(h + 1.8) for h in heights) < 0.05
    assert stages[2].worst_low > -1.8 + 0.15
    assert result.results["ground_segmentation"].checks[0].status == "pass"
