"""A pinhole camera (optionally with plumb_bob lens distortion), rendered by ray casting.

One ray per pixel through the same world the lidar sees, so camera and lidar agree exactly and
the per-pixel object ids and depths are ground truth. Shading is deliberately simple but not
flat — sun + ambient light, a sky gradient, distance haze, procedural texture and sensor noise —
so JPEG sizes and image-quality analyzers behave as on real footage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bagscope.sim.config import CameraSpec
    from bagscope.sim.world import World

__all__ = ["RenderedImage", "intrinsics", "pixel_rays", "render"]

_SUN = np.array([0.45, 0.3, 0.84], np.float32) / np.float32(np.linalg.norm([0.45, 0.3, 0.84]))
_HORIZON = np.array([0.86, 0.89, 0.93], np.float32)
_ZENITH = np.array([0.33, 0.53, 0.85], np.float32)
_AMBIENT, _DIFFUSE = np.float32(0.5), np.float32(0.6)
_HAZE_M = np.float32(450.0)
_NOISE = np.float32(0.035)
_UNDISTORT_ITERATIONS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedImage:
    """One frame: 8-bit RGB, ground-truth object id and depth along the optical axis."""

    t_ns: int
    rgb: np.ndarray
    object_id: np.ndarray
    depth: np.ndarray


def intrinsics(spec: CameraSpec) -> tuple[np.ndarray, np.ndarray]:
    """K (3x3) and plumb_bob D (5,) as CameraInfo publishes them.

    ``hfov_deg`` fixes the focal length; square pixels; the principal point is the image
    centre in OpenCV's convention (pixel centres on integer coordinates).
    """
    fx = (spec.width / 2) / math.tan(math.radians(spec.hfov_deg) / 2)
    k = np.array(
        [[fx, 0.0, (spec.width - 1) / 2], [0.0, fx, (spec.height - 1) / 2], [0.0, 0.0, 1.0]]
    )
    return k, np.array(spec.distortion, dtype=np.float64)


def _undistort(xd: np.ndarray, yd: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, ...]:
    """Invert plumb_bob by fixed-point iteration, as OpenCV's ``undistortPoints`` does."""
    k1, k2, p1, p2, k3 = (float(v) for v in dist)
    x, y = xd.copy(), yd.copy()
    for _ in range(_UNDISTORT_ITERATIONS):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


@lru_cache(maxsize=8)
def pixel_rays(spec: CameraSpec) -> np.ndarray:
    """Unit ray (H*W, 3) through each pixel centre, in the optical frame; cached per spec."""
    k, dist = intrinsics(spec)
    v, u = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float64)
    xd, yd = (u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1]
    x, y = _undistort(xd, yd, dist) if np.any(dist) else (xd, yd)
    rays = np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    out = rays.astype(np.float32)
    out.flags.writeable = False
    return out


_GRAIN_SIZE = 1 << 22


@lru_cache(maxsize=1)
def _grain_table() -> np.ndarray:
    """Sensor noise drawn once; a frame reads it from a random offset (cheaper than fresh
    draws at 30 frames/s, and the offset still changes the pattern every frame)."""
    table = np.random.default_rng(0x6A1).random(_GRAIN_SIZE, dtype=np.float32) - np.float32(0.5)
    table *= _NOISE
    table.flags.writeable = False
    return table


def _grain(rng: np.random.Generator, n: int) -> np.ndarray:
    if n > _GRAIN_SIZE:
        return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * _NOISE
    start = int(rng.integers(0, _GRAIN_SIZE - n + 1))
    return _grain_table()[start : start + n]


@lru_cache(maxsize=8)
def _homogeneous_rays(spec: CameraSpec) -> np.ndarray:
    """(H*W, 4) rays with a trailing 1, so one matmul yields the (N, 6) origin+direction rows."""
    dirs = pixel_rays(spec)
    out = np.ones((dirs.shape[0], 4), np.float32)
    out[:, :3] = dirs
    out.flags.writeable = False
    return out


def render(  # noqa: PLR0917 - the simulator's agreed signature, called positionally
    world: World, spec: CameraSpec, t_ns: int, rng: np.random.Generator
) -> RenderedImage:
    """Render the camera's view at ``t_ns`` (a global shutter: one instant per frame).

    Works on contiguous per-channel arrays: at 640×360 and 30 Hz every strided (N, 3)
    operation costs a visible share of the real-time budget.
    """
    dirs = pixel_rays(spec)
    pose = world.ego_poses(np.array([t_ns]))[0] @ spec.optical_matrix()
    # rays = [d, 1] @ [[R^T, 0], [0, o]]: origin and rotated direction in one product.
    lift = np.zeros((4, 6), np.float32)
    lift[:3, 3:] = pose[:3, :3].T
    lift[3, :3] = pose[:3, 3]
    rays = _homogeneous_rays(spec) @ lift
    hits = world.cast_rays(rays, t_ns)

    dist = hits.distance
    sky = ~np.isfinite(dist)
    reach = np.where(sky, np.float32(0.0), dist)
    dx, dy, dz = rays[:, 3], rays[:, 4], rays[:, 5]
    x = np.float32(pose[0, 3]) + dx * reach
    y = np.float32(pose[1, 3]) + dy * reach
    z = np.float32(pose[2, 3]) + dz * reach
    index, gain = world.materials(hits, x=x, y=y, z=z)
    nx, ny, nz = hits.normal[:, 0], hits.normal[:, 1], hits.normal[:, 2]
    light = nx * _SUN[0] + ny * _SUN[1] + nz * _SUN[2]
    backface = (nx * dx + ny * dy + nz * dz) > 0
    light = np.where(backface, -light, light)
    haze = np.float32(1.0) - np.exp(-reach / _HAZE_M)
    shade = (_AMBIENT + _DIFFUSE * np.maximum(light, np.float32(0.0))) * gain * (1 - haze)
    up = np.clip(dz * np.float32(2.5), 0.0, 1.0)
    grain = _grain(rng, dirs.shape[0])
    palette = world.palette
    rgb = np.empty((spec.height, spec.width, 3), np.uint8)
    for c in range(3):
        surface = np.take(palette[:, c], index) * shade + _HORIZON[c] * haze
        sky_c = _HORIZON[c] + (_ZENITH[c] - _HORIZON[c]) * up
        channel = np.where(sky, sky_c, surface) + grain
        channel *= np.float32(255.0)
        channel += np.float32(0.5)
        np.clip(channel, 0.0, 255.0, out=channel)
        rgb[..., c] = channel.reshape(spec.height, spec.width)
    return RenderedImage(
        t_ns=int(t_ns),
        rgb=rgb,
        object_id=hits.object_id.reshape(spec.height, spec.width),
        depth=(dist * dirs[:, 2]).reshape(spec.height, spec.width),
    )
