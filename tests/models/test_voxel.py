from __future__ import annotations

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.models.records import PointSet
from bagscope.models.voxel import VoxelDownsample, voxel_downsample


def _points(xyz: list[list[float]], intensity: list[float]) -> PointSet:
    return PointSet(
        xyz=np.asarray(xyz, dtype=np.float32),
        frame_id="lidar",
        topic="/lidar/points",
        stamp_ns=7,
        index=np.arange(len(xyz), dtype=np.int64) + 100,
        intensity=np.asarray(intensity, dtype=np.float32),
    )


def test_one_centroid_per_voxel_in_first_point_order() -> None:
    # voxel 1 m: rows 0, 2, 4 share voxel (0,0,0); rows 1, 3 share (5,0,-1); row 5 alone
    pts = _points(
        [
            [0.1, 0.2, 0.3],
            [5.5, 0.5, -0.5],
            [0.3, 0.4, 0.5],
            [5.1, 0.1, -0.1],
            [0.8, 0.9, 0.1],
            [-2.5, 3.5, 1.5],
        ],
        [1, 10, 2, 20, 3, 7],
    )
    out = voxel_downsample(pts, 1.0)
    assert len(out) == 3
    np.testing.assert_allclose(
        out.xyz, [[0.4, 0.5, 0.3], [5.3, 0.3, -0.3], [-2.5, 3.5, 1.5]], atol=1e-6
    )
    np.testing.assert_allclose(out.intensity, [2.0, 15.0, 7.0])  # type: ignore[arg-type]
    np.testing.assert_array_equal(out.index, [100, 101, 105])
    assert (out.frame_id, out.topic, out.stamp_ns) == ("lidar", "/lidar/points", 7)


def test_grid_of_points_counts() -> None:
    # 10 x 10 x 1 points spaced 0.1 m: 0.5 m voxels hold 5 x 5 of them each -> 4 voxels
    g = np.stack(np.meshgrid(np.arange(10), np.arange(10), [0]), -1).reshape(-1, 3) * 0.1 + 0.05
    pts = PointSet(
        xyz=g.astype(np.float32),
        frame_id="l",
        topic="t",
        stamp_ns=0,
        index=np.arange(100, dtype=np.int64),
    )
    out = voxel_downsample(pts, 0.5)
    assert len(out) == 4
    assert out.intensity is None
    np.testing.assert_allclose(
        sorted(map(tuple, out.xyz.round(4))),
        [(0.25, 0.25, 0.05), (0.25, 0.75, 0.05), (0.75, 0.25, 0.05), (0.75, 0.75, 0.05)],
    )


def test_empty_and_bad_parameters() -> None:
    empty = PointSet(
        xyz=np.zeros((0, 3), np.float32),
        frame_id="l",
        topic="t",
        stamp_ns=0,
        index=np.zeros(0, np.int64),
    )
    assert len(voxel_downsample(empty, 0.2)) == 0
    for bad in (0, -1.0, float("nan"), "x"):
        with pytest.raises(BagscopeError, match="voxel"):
            VoxelDownsample(voxel=bad)  # type: ignore[arg-type]
    assert VoxelDownsample().name == "voxel_downsample"
