"""Overlap of upright 3D boxes: exact bird's-eye-view IoU of oriented rectangles, 3D IoU and
centre distance, each as an (N, M) matrix between two :class:`~bagscope.replay.decode.Boxes`.

The BEV intersection is the exact area of the intersection polygon, found by clipping one
rectangle by the other's four edges (Sutherland-Hodgman), for all pairs at once: polygons are
kept as fixed-size vertex arrays (at most 8 vertices: a convex quadrilateral clipped by four
half-planes gains at most one vertex per clip) with a vertex count each, so the clipping is a
handful of numpy operations per clip edge rather than a Python loop per pair. Pairs whose
circumscribed circles do not meet are never clipped (their IoU is 0), which keeps the work
proportional to the pairs that can overlap.

3D IoU treats the boxes as prisms: BEV intersection area times the overlap of their z extents,
over the union of the two volumes - exact for upright boxes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.decode.boxes import Boxes

__all__ = [
    "bev_intersection",
    "bev_iou",
    "center_distance",
    "iou_3d",
    "polygon_area",
    "rectangle_intersection",
]

_MAX_VERTICES = 8


def polygon_area(vertices: NDArray[np.float64], counts: NDArray[np.intp]) -> NDArray[np.float64]:
    """Areas of P convex polygons: ``vertices`` (P, K, 2) padded, ``counts`` (P,) valid vertices
    (counter-clockwise; clockwise gives negative areas)."""
    p, k = vertices.shape[:2]
    if p == 0:
        return np.zeros(0)
    idx = np.arange(k)[None, :]
    nxt = (idx + 1) % np.maximum(counts, 1)[:, None]
    following = np.take_along_axis(vertices, nxt[:, :, None], axis=1)
    cross = vertices[:, :, 0] * following[:, :, 1] - vertices[:, :, 1] * following[:, :, 0]
    cross = np.where(idx < counts[:, None], cross, 0.0)
    area: NDArray[np.float64] = 0.5 * cross.sum(axis=1)
    return area


def _clip(
    poly: NDArray[np.float64],
    counts: NDArray[np.intp],
    *,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Clip P polygons by the half-plane left of the directed line a->b (a, b: (P, 2))."""
    p, k = poly.shape[:2]
    idx = np.arange(k)[None, :]
    valid = idx < counts[:, None]
    nxt = (idx + 1) % np.maximum(counts, 1)[:, None]
    following = np.take_along_axis(poly, nxt[:, :, None], axis=1)
    edge = (b - a)[:, None, :]

    def side(points: NDArray[np.float64]) -> NDArray[np.float64]:
        rel = points - a[:, None, :]
        out: NDArray[np.float64] = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]
        return out

    d_cur, d_next = side(poly), side(following)
    in_cur, in_next = d_cur >= 0, d_next >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(in_cur != in_next, d_cur / (d_cur - d_next), 0.0)
    crossing = poly + t[..., None] * (following - poly)
    # each input vertex emits (itself if inside, the crossing if the edge leaves or enters)
    candidates = np.stack([poly, crossing], axis=2).reshape(p, 2 * k, 2)
    keep = np.stack([in_cur & valid, (in_cur != in_next) & valid], axis=2).reshape(p, 2 * k)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :_MAX_VERTICES]
    clipped = np.take_along_axis(candidates, order[:, :, None], axis=1)
    new_counts = np.minimum(keep.sum(axis=1), _MAX_VERTICES).astype(np.intp)
    return clipped, new_counts


def rectangle_intersection(
    first: NDArray[np.float64], second: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Intersection areas of P pairs of convex quadrilaterals, each (P, 4, 2) counter-clockwise:
    ``first`` clipped by the four edges of ``second``."""
    p = len(first)
    if p == 0:
        return np.zeros(0)
    poly = np.zeros((p, _MAX_VERTICES, 2))
    poly[:, :4] = first
    counts = np.full(p, 4, dtype=np.intp)
    for i in range(4):
        poly, counts = _clip(poly, counts, a=second[:, i], b=second[:, (i + 1) % 4])
    return np.maximum(polygon_area(poly, counts), 0.0)


def bev_intersection(a: Boxes, b: Boxes) -> NDArray[np.float64]:
    """(N, M) footprint intersection areas (m²) between boxes ``a`` and ``b``."""
    n, m = len(a), len(b)
    out = np.zeros((n, m))
    if n == 0 or m == 0:
        return out
    radius_a = np.hypot(a.sizes[:, 0], a.sizes[:, 1]) / 2
    radius_b = np.hypot(b.sizes[:, 0], b.sizes[:, 1]) / 2
    gap = np.hypot(
        a.centers[:, None, 0] - b.centers[None, :, 0],
        a.centers[:, None, 1] - b.centers[None, :, 1],
    )
    ia, ib = np.nonzero(gap < radius_a[:, None] + radius_b[None, :])
    if ia.size:
        out[ia, ib] = rectangle_intersection(a.corners_bev()[ia], b.corners_bev()[ib])
    return out


def _ratio(inter: NDArray[np.float64], union: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    out: NDArray[np.float64] = np.clip(iou, 0.0, 1.0)
    return out


def bev_iou(a: Boxes, b: Boxes) -> NDArray[np.float64]:
    """(N, M) bird's-eye-view IoU of the boxes' oriented footprints."""
    inter = bev_intersection(a, b)
    area_a = a.sizes[:, 0] * a.sizes[:, 1]
    area_b = b.sizes[:, 0] * b.sizes[:, 1]
    return _ratio(inter, area_a[:, None] + area_b[None, :] - inter)


def iou_3d(a: Boxes, b: Boxes) -> NDArray[np.float64]:
    """(N, M) 3D IoU of upright boxes: footprint intersection x overlap of the z extents."""
    inter_bev = bev_intersection(a, b)
    top = np.minimum(
        (a.centers[:, 2] + a.sizes[:, 2] / 2)[:, None], (b.centers[:, 2] + b.sizes[:, 2] / 2)[None]
    )
    bottom = np.maximum(
        (a.centers[:, 2] - a.sizes[:, 2] / 2)[:, None], (b.centers[:, 2] - b.sizes[:, 2] / 2)[None]
    )
    inter = inter_bev * np.maximum(top - bottom, 0.0)
    vol_a = np.prod(a.sizes, axis=1)
    vol_b = np.prod(b.sizes, axis=1)
    return _ratio(inter, vol_a[:, None] + vol_b[None, :] - inter)


def center_distance(a: Boxes, b: Boxes) -> NDArray[np.float64]:
    """(N, M) distance between box centres in the x/y plane (m), as nuScenes matches."""
    out: NDArray[np.float64] = np.hypot(
        a.centers[:, None, 0] - b.centers[None, :, 0],
        a.centers[:, None, 1] - b.centers[None, :, 1],
    )
    return out
