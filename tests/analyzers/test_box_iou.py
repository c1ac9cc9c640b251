"""Box overlaps against cases worked out by hand and against a rasterised reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bagscope.analyzers.box_iou import (
    bev_intersection,
    bev_iou,
    center_distance,
    iou_3d,
    rectangle_intersection,
)
from bagscope.replay.decode.boxes import Boxes


def boxes(*rows: tuple[float, float, float, float, float, float, float]) -> Boxes:
    """Boxes from (x, y, z, length, width, height, yaw) rows."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 7)
    return Boxes.build(
        stamp_ns=0,
        frame_id="lidar",
        centers=arr[:, :3],
        sizes=arr[:, 3:6],
        yaws=arr[:, 6],
        labels=["car"] * len(arr),
    )


SQUARE = (0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0)


def test_identical_boxes_have_iou_one() -> None:
    a = boxes(SQUARE, (5.0, -3.0, 1.0, 4.5, 1.8, 1.5, 0.7))
    iou = bev_iou(a, a)
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[1, 1] == pytest.approx(1.0)
    assert iou[0, 1] == 0.0
    assert np.diag(iou_3d(a, a)) == pytest.approx([1.0, 1.0])


def test_disjoint_boxes_have_iou_zero() -> None:
    a = boxes(SQUARE)
    b = boxes((2.5, 0.0, 0.0, 2.0, 2.0, 2.0, 0.3), (0.0, 0.0, 5.0, 2.0, 2.0, 2.0, 0.0))
    assert bev_iou(a, b)[0, 0] == 0.0
    # stacked above: the footprints coincide, the volumes do not touch
    assert bev_iou(a, b)[0, 1] == pytest.approx(1.0)
    assert iou_3d(a, b)[0, 1] == 0.0


def test_squares_offset_by_one_have_iou_one_third() -> None:
    # overlap 1 x 2 = 2, union 4 + 4 - 2 = 6
    a = boxes(SQUARE)
    b = boxes((1.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0))
    assert bev_intersection(a, b)[0, 0] == pytest.approx(2.0)
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / 3)
    assert bev_iou(b, a)[0, 0] == pytest.approx(1 / 3)
    # same heights: the 3D IoU equals the BEV IoU; half the height overlapping: 2*1 / (16-2)
    assert iou_3d(a, b)[0, 0] == pytest.approx(1 / 3)
    c = boxes((1.0, 0.0, 1.0, 2.0, 2.0, 2.0, 0.0))
    assert iou_3d(a, c)[0, 0] == pytest.approx(2.0 / 14.0)


def test_square_turned_45_degrees_over_itself_is_an_octagon() -> None:
    # a regular octagon of side 2(sqrt2 - 1) ... its area for the 2x2 square: 8(sqrt2 - 1)
    a = boxes(SQUARE)
    b = boxes((0.0, 0.0, 0.0, 2.0, 2.0, 2.0, math.pi / 4))
    octagon = 8 * (math.sqrt(2) - 1)
    assert bev_intersection(a, b)[0, 0] == pytest.approx(octagon)
    assert bev_iou(a, b)[0, 0] == pytest.approx(octagon / (8 - octagon))


def test_containment() -> None:
    big = boxes((0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.4))
    # a 1x1 square well inside the 4x2 rectangle, turned arbitrarily
    small = boxes((0.3 * math.cos(0.4), 0.3 * math.sin(0.4), 0.0, 1.0, 1.0, 1.0, 1.1))
    assert bev_intersection(big, small)[0, 0] == pytest.approx(1.0)
    assert bev_iou(big, small)[0, 0] == pytest.approx(1 / 8)
    assert iou_3d(small, big)[0, 0] == pytest.approx(1 / 16)


def test_overlapping_oriented_rectangles() -> None:
    # A 4x2 rectangle along x and the same rectangle turned 90°: the overlap is the 2x2 square
    a = boxes((0.0, 0.0, 0.0, 4.0, 2.0, 1.0, 0.0))
    b = boxes((0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi / 2))
    assert bev_intersection(a, b)[0, 0] == pytest.approx(4.0)
    assert bev_iou(a, b)[0, 0] == pytest.approx(4 / 12)
    # turned by 180° the footprint is the same rectangle
    c = boxes((0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi))
    assert bev_iou(a, c)[0, 0] == pytest.approx(1.0)


def test_empty_and_degenerate() -> None:
    none = boxes()
    a = boxes(SQUARE)
    assert bev_iou(none, a).shape == (0, 1)
    assert iou_3d(a, none).shape == (1, 0)
    flat = boxes((0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    assert bev_iou(flat, flat)[0, 0] == 0.0
    assert rectangle_intersection(np.zeros((0, 4, 2)), np.zeros((0, 4, 2))).shape == (0,)


def test_center_distance() -> None:
    a = boxes(SQUARE, (3.0, 4.0, 9.0, 1.0, 1.0, 1.0, 0.0))
    b = boxes((0.0, 0.0, -5.0, 1.0, 1.0, 1.0, 2.0))
    assert center_distance(a, b)[:, 0] == pytest.approx([0.0, 5.0])


def _raster_intersection(a: Boxes, b: Boxes, *, step: float) -> float:
    """Footprint intersection of one box each, by counting grid cell centres inside both."""
    corners = np.concatenate([a.corners_bev()[0], b.corners_bev()[0]])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    xs = np.arange(lo[0] + step / 2, hi[0], step)
    ys = np.arange(lo[1] + step / 2, hi[1], step)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)

    def inside(box: Boxes) -> np.ndarray:
        c, s = math.cos(box.yaws[0]), math.sin(box.yaws[0])
        rel = pts - box.centers[0, :2]
        lx = rel[:, 0] * c + rel[:, 1] * s
        ly = -rel[:, 0] * s + rel[:, 1] * c
        inside_mask: np.ndarray = (np.abs(lx) <= box.sizes[0, 0] / 2) & (
            np.abs(ly) <= box.sizes[0, 1] / 2
        )
        return inside_mask

    return float(np.count_nonzero(inside(a) & inside(b))) * step * step


def test_bev_iou_matches_a_raster_reference_on_random_pairs() -> None:
    rng = np.random.default_rng(2024)
    n = 200
    rows_a = np.column_stack(
        [
            rng.uniform(-1, 1, n),
            rng.uniform(-1, 1, n),
            np.zeros(n),
            rng.uniform(0.5, 4.0, n),
            rng.uniform(0.5, 2.5, n),
            np.ones(n),
            rng.uniform(-math.pi, math.pi, n),
        ]
    )
    rows_b = rows_a.copy()
    rows_b[:, :2] += rng.uniform(-2, 2, (n, 2))
    rows_b[:, 3] = rng.uniform(0.5, 4.0, n)
    rows_b[:, 4] = rng.uniform(0.5, 2.5, n)
    rows_b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    a = boxes(*map(tuple, rows_a))
    b = boxes(*map(tuple, rows_b))
    exact = bev_intersection(a, b)
    iou = bev_iou(a, b)
    assert exact.shape == (n, n)
    step = 0.01
    overlapping = 0
    for i in range(n):
        ai, bi = a.select(np.array([i])), b.select(np.array([i]))
        reference = _raster_intersection(ai, bi, step=step)
        # the raster error is bounded by the cells along the boundary of the intersection
        perimeter = 2 * (ai.sizes[0, 0] + ai.sizes[0, 1])
        assert exact[i, i] == pytest.approx(reference, abs=perimeter * step)
        overlapping += reference > 0
        union = ai.sizes[0, 0] * ai.sizes[0, 1] + bi.sizes[0, 0] * bi.sizes[0, 1] - exact[i, i]
        assert iou[i, i] == pytest.approx(exact[i, i] / union)
    assert overlapping > 100  # the pairs do exercise partial overlaps
