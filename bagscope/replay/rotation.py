"""Rotation math shared by TF lookups and the simulator: quaternions (ROS order x, y, z, w),
rotation matrices, roll/pitch/yaw, slerp and rigid 4×4 transforms.

One module so that what the simulator writes into a log and what replay reads back out of it go
through the same conventions (ROS's x, y, z, w order, tf2's fixed-axis roll/pitch/yaw, w >= 0).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]

__all__ = [
    "matrix_to_quat",
    "quat_to_matrix",
    "rigid",
    "rigid_inverse",
    "rpy_to_matrix",
    "slerp",
]

_SLERP_LINEAR_BELOW = 1e-9  # sin(angle) under which slerp's weights are numerically useless


def quat_to_matrix(q_xyzw: ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` from quaternions ``(..., 4)`` in ROS order x, y, z, w.

    Quaternions are normalised first: logs carry float32-rounded or slightly drifted ones, and
    a non-unit quaternion would silently scale points.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    # 2/|q|² folds the normalisation into the products (Eigen does the same).
    scale = 2.0 / np.sum(q * q, axis=-1)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x * scale, y * y * scale, z * z * scale
    xy, xz, yz = x * y * scale, x * z * scale, y * z * scale
    wx, wy, wz = w * x * scale, w * y * scale, w * z * scale
    out = np.empty((*q.shape[:-1], 3, 3), dtype=np.float64)
    out[..., 0, 0] = 1.0 - (yy + zz)
    out[..., 0, 1] = xy - wz
    out[..., 0, 2] = xz + wy
    out[..., 1, 0] = xy + wz
    out[..., 1, 1] = 1.0 - (xx + zz)
    out[..., 1, 2] = yz - wx
    out[..., 2, 0] = xz - wy
    out[..., 2, 1] = yz + wx
    out[..., 2, 2] = 1.0 - (xx + yy)
    return out


def matrix_to_quat(rotation: ArrayLike) -> FloatArray:
    """Quaternions ``(..., 4)`` (x, y, z, w, with w >= 0) from rotation matrices ``(..., 3, 3)``.

    Uses Shepperd's method: per matrix it divides by the largest of the four candidate
    components, so the result stays accurate near 180° where the trace-only formula breaks down.
    """
    m = np.asarray(rotation, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (component)^2 for x, y, z, w: the largest one is the safe divisor.
    sq = np.stack(
        [
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
            1.0 + m00 + m11 + m22,
        ],
        axis=-1,
    )
    big = np.sqrt(np.maximum(sq, 1e-300))  # 2 * |component|, >0 where it matters
    candidates = np.stack(
        [
            np.stack([big[..., 0] ** 2, m01 + m10, m02 + m20, m21 - m12], axis=-1)
            / (2.0 * big[..., 0:1]),
            np.stack([m01 + m10, big[..., 1] ** 2, m12 + m21, m02 - m20], axis=-1)
            / (2.0 * big[..., 1:2]),
            np.stack([m02 + m20, m12 + m21, big[..., 2] ** 2, m10 - m01], axis=-1)
            / (2.0 * big[..., 2:3]),
            np.stack([m21 - m12, m02 - m20, m10 - m01, big[..., 3] ** 2], axis=-1)
            / (2.0 * big[..., 3:4]),
        ],
        axis=-2,
    )
    choice = np.argmax(sq, axis=-1)[..., None, None]
    q = np.take_along_axis(candidates, choice, axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    out: FloatArray = np.where(q[..., 3:4] < 0.0, -q, q)
    return out


def slerp(q0: ArrayLike, q1: ArrayLike, u: ArrayLike) -> FloatArray:
    """Spherical interpolation between unit quaternions (x, y, z, w) at fractions ``u``.

    Takes the short way round (q and -q are the same rotation) and falls back to normalised
    linear interpolation when the two are nearly equal, where slerp's weights are 0/0.
    """
    a = np.asarray(q0, dtype=np.float64)
    b = np.asarray(q1, dtype=np.float64)
    frac = np.asarray(u, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    linear = sin_theta < _SLERP_LINEAR_BELOW
    safe_sin = np.where(linear, 1.0, sin_theta)
    w0 = np.where(linear, 1.0 - frac, np.sin((1.0 - frac) * theta) / safe_sin)
    w1 = np.where(linear, frac, np.sin(frac * theta) / safe_sin)
    out = w0 * a + w1 * b
    return cast("FloatArray", out / np.linalg.norm(out, axis=-1, keepdims=True))


def rigid(translation: FloatArray, q_xyzw: FloatArray) -> FloatArray:
    """4×4 rigid transforms ``(K, 4, 4)`` from ``(K, 3)`` translations and ``(K, 4)`` rotations."""
    out = np.zeros((translation.shape[0], 4, 4), dtype=np.float64)
    out[:, :3, :3] = quat_to_matrix(q_xyzw)
    out[:, :3, 3] = translation
    out[:, 3, 3] = 1.0
    return out


def rigid_inverse(t: FloatArray) -> FloatArray:
    """Inverse of rigid transforms without a general matrix inverse: ``[Rᵀ, -Rᵀ t]``."""
    out = np.zeros_like(t)
    rot_t = np.swapaxes(t[..., :3, :3], -1, -2)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rot_t, t[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> FloatArray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll): the ROS (tf2) fixed-axis roll/pitch/yaw convention."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )
