"""Oriented boxes: corner and triangle layout for Embree, and exact ray/box intersection."""

from __future__ import annotations

import numpy as np

__all__ = ["BOX_TRIS", "BOX_VERTS", "TRIS_PER_BOX", "box_corners", "slab"]

# Unit box centred on the origin, 12 outward-wound triangles (Open3D's create_box order).
BOX_VERTS = (
    np.array(
        [[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]],
        dtype=np.float64,
    )
    - 0.5
)
BOX_TRIS = np.array(
    [
        *([4, 7, 5], [4, 6, 7], [0, 2, 4], [2, 6, 4], [0, 1, 2], [1, 3, 2]),
        *([1, 5, 7], [1, 7, 3], [2, 3, 7], [2, 7, 6], [0, 4, 1], [1, 4, 5]),
    ],
    dtype=np.uint32,
)
TRIS_PER_BOX = 12


def slab(
    rays: np.ndarray, *, center: np.ndarray, yaw: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ray / z-yawed box intersection (slab method): distance (inf if none), normal.

    Written axis by axis on 1-D arrays: numpy's reductions over a trailing axis of 3 cost
    more than the arithmetic, and a lidar sweep resolves tens of thousands of rays here.
    """
    cy, sy = np.cos(yaw), np.sin(yaw)
    px = rays[:, 0] - center[:, 0]
    py = rays[:, 1] - center[:, 1]
    pz = rays[:, 2] - center[:, 2]
    dx, dy, dz = rays[:, 3].astype(np.float64), rays[:, 4], rays[:, 5]
    local_p = (cy * px + sy * py, -sy * px + cy * py, pz)
    local_d = (cy * dx + sy * dy, -sy * dx + cy * dy, dz.astype(np.float64))
    t_near = np.full(rays.shape[0], -np.inf)
    t_far = np.full(rays.shape[0], np.inf)
    axis = np.zeros(rays.shape[0], np.int8)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = 1.0 / local_d[k]
            t1 = (-half[:, k] - local_p[k]) * inv
            t2 = (half[:, k] - local_p[k]) * inv
            lo, hi = np.fmin(t1, t2), np.fmax(t1, t2)
            better = lo > t_near
            axis[better] = k
            t_near = np.fmax(t_near, lo)
            t_far = np.fmin(t_far, hi)
    ok = (t_near <= t_far) & (t_near > 0)
    nl = [np.where(axis == k, -np.sign(local_d[k]), 0.0) for k in range(3)]
    normal = np.empty((rays.shape[0], 3))
    normal[:, 0] = cy * nl[0] - sy * nl[1]
    normal[:, 1] = sy * nl[0] + cy * nl[1]
    normal[:, 2] = nl[2]
    return np.where(ok, t_near, np.inf), normal


def box_corners(centers: np.ndarray, yaw: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners of boxes rotated by ``yaw`` about z, in BOX_VERTS order."""
    local = BOX_VERTS[None] * size[:, None, :]
    cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    out = np.empty(local.shape, np.float64)
    out[..., 0] = cy * local[..., 0] - sy * local[..., 1] + centers[:, None, 0]
    out[..., 1] = sy * local[..., 0] + cy * local[..., 1] + centers[:, None, 1]
    out[..., 2] = local[..., 2] + centers[:, None, 2]
    return out
