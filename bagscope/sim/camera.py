"""A pinhole camera (optionally with plumb_bob lens distortion), rendered by ray casting.

One ray per pixel through the same world the lidar sees, so camera and lidar agree exactly and
the per-pixel object ids and depths are ground truth. Shading is deliberately simple but not
flat — sun + ambient light, a sky gradient, distance haze, procedural texture and sensor noise —
so JPEG sizes and image-quality analyzers behave as on real footage.

Speed is the point of the layout: at 30 Hz a frame has a few tens of milliseconds of one core.
The world is moved into the camera's frame (a few thousand vertices) rather than the rays
into the world's (a quarter million), so the rays are a constant per spec; so is everything
that depends only on the camera's height and tilt — the ground distance of every pixel, its
sky colour — because the ego only turns about the vertical. What is left per frame is one
Embree call, a few table gathers, paint on the ground pixels and windows, glass and tyres on
the pixels that show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import open3d.core as o3c

from bagscope.sim.world import (
    KIND_FACADE,
    KIND_VEHICLE,
    PALETTE_GLASS,
    PALETTE_TYRE,
    PALETTE_WINDOW,
)

if TYPE_CHECKING:
    from bagscope.sim.config import CameraSpec
    from bagscope.sim.world import CameraView, World

__all__ = ["RenderedImage", "intrinsics", "pixel_rays", "render"]

_HORIZON = np.array([0.86, 0.89, 0.93], np.float32)
_ZENITH = np.array([0.33, 0.53, 0.85], np.float32)
_HAZE_M = 450.0
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
    """Sensor noise drawn once, already in 8-bit units plus the rounding half: a frame reads it
    from a random offset (cheaper than fresh draws at 30 frames/s, and the offset still changes
    the pattern every frame)."""
    table = np.random.default_rng(0x6A1).random(_GRAIN_SIZE, dtype=np.float32) - np.float32(0.5)
    table *= _NOISE * np.float32(255.0)
    table += np.float32(0.5)
    table.flags.writeable = False
    return table


def _grain(rng: np.random.Generator, n: int) -> np.ndarray:
    if n > _GRAIN_SIZE:
        noise = rng.random(n, dtype=np.float32) - np.float32(0.5)
        return noise * (_NOISE * np.float32(255.0)) + np.float32(0.5)
    start = int(rng.integers(0, _GRAIN_SIZE - n + 1))
    return _grain_table()[start : start + n]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Optics:
    """Per-pixel constants of a camera at a given height and tilt (its pose up to a yaw).

    ``dx, dy, dz``: ray directions (camera frame); ``rays``: the same as (N, 6) rays with
    origin 0; ``coarse``: the rays of every other pixel of every other row, as an Open3D
    tensor, ``coarse_shape`` their grid; ``up``: the world-z component of each ray;
    ``t_ground``: distance to the plane z = 0 (inf for rays that never reach it), and
    ``coarse_ground`` the same on the coarse grid; ``ground_cam``: (3, N) the ground point in
    the camera frame (zero where there is none); ``sky_lift``: (3, N) how much bluer than the
    horizon (8-bit) the sky is in each pixel's direction.
    """

    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    rays: np.ndarray
    coarse: o3c.Tensor
    coarse_shape: tuple[int, int]
    coarse_ground: np.ndarray
    up: np.ndarray
    t_ground: np.ndarray
    ground_cam: np.ndarray
    sky_lift: np.ndarray


@lru_cache(maxsize=8)
def _optics(spec: CameraSpec, tilt: tuple[float, float, float], height: float) -> _Optics:
    """``tilt`` is the camera rotation's bottom row (world z of each camera axis)."""
    dirs = pixel_rays(spec)
    n = dirs.shape[0]
    rays = np.zeros((n, 6), np.float32)
    rays[:, 3:] = dirs
    up = (dirs.astype(np.float64) @ np.asarray(tilt)).astype(np.float32)
    with np.errstate(divide="ignore"):
        t_ground = np.where(up < 0, height / -up.astype(np.float64), np.inf).astype(np.float32)
    ground_cam = np.where(np.isfinite(t_ground), t_ground, 0.0)[None, :] * dirs.T
    gradient = np.clip(up * np.float32(2.5), 0.0, 1.0)[:, None]
    sky_lift = ((_ZENITH - _HORIZON) * gradient * np.float32(255.0)).T
    grid = rays.reshape(spec.height, spec.width, 6)[::2, ::2]
    out = _Optics(
        dx=np.ascontiguousarray(dirs[:, 0]),
        dy=np.ascontiguousarray(dirs[:, 1]),
        dz=np.ascontiguousarray(dirs[:, 2]),
        rays=rays,
        coarse=o3c.Tensor.from_numpy(np.ascontiguousarray(grid.reshape(-1, 6))),
        coarse_shape=(grid.shape[0], grid.shape[1]),
        coarse_ground=np.ascontiguousarray(
            t_ground.reshape(spec.height, spec.width)[::2, ::2]
        ).reshape(-1),
        up=up,
        t_ground=t_ground,
        ground_cam=np.ascontiguousarray(ground_cam, np.float32),
        sky_lift=np.ascontiguousarray(sky_lift, np.float32),
    )
    for array in (
        out.dx,
        out.dy,
        out.dz,
        out.rays,
        out.up,
        out.t_ground,
        out.ground_cam,
        out.sky_lift,
    ):
        array.flags.writeable = False
    return out


def render(  # noqa: PLR0917 - the simulator's agreed signature, called positionally
    world: World, spec: CameraSpec, t_ns: int, rng: np.random.Generator
) -> RenderedImage:
    """Render the camera's view at ``t_ns`` (a global shutter: one instant per frame)."""
    pose = world.ego_poses(np.array([t_ns]))[0] @ spec.optical_matrix()
    rot, origin = pose[:3, :3], pose[:3, 3]
    tilt = (float(rot[2, 0]), float(rot[2, 1]), float(rot[2, 2]))
    optics = _optics(spec, tilt, round(float(origin[2]), 9))
    view = world.camera_view(pose, t_ns)
    row, dist = _trace(view, optics, spec)
    on_ground = np.flatnonzero(row == view.ground)

    object_id = np.take(view.object_id, row)
    index = np.take(view.index, row).astype(np.intp)
    gain = np.take(view.shade, row)
    if on_ground.size:
        _paint_ground(world, optics, pose=pose, on_ground=on_ground, out=(object_id, index, gain))
    kind = np.take(view.kind, row)
    _detail(view, optics, origin_z=float(origin[2]), row=row, dist=dist, kind=kind, index=index)

    # haze: the surface fades into the horizon colour, and the sky (dist = inf, so no surface
    # and all haze) gets its gradient on top. Channel by channel on contiguous arrays: numpy's
    # (N, 3) broadcasts, masked copies and np.where cost several times as much.
    clear = np.exp(dist * np.float32(-1.0 / _HAZE_M))
    gain *= clear
    haze = np.float32(1.0) - clear
    sky = (row == view.sky).astype(np.float32)
    grain = _grain(rng, row.shape[0])
    palette = np.ascontiguousarray(world.palette.T * np.float32(255.0))
    rgb = np.empty((row.shape[0], 3), np.uint8)
    channel = np.empty(row.shape[0], np.float32)
    for c in range(3):
        np.take(palette[c], index, out=channel)
        channel *= gain
        channel += haze * (_HORIZON[c] * np.float32(255.0))
        channel += optics.sky_lift[c] * sky
        channel += grain
        np.clip(channel, 0.0, 255.0, out=channel)
        rgb[:, c] = channel
    shape = (spec.height, spec.width)
    return RenderedImage(
        t_ns=int(t_ns),
        rgb=rgb.reshape(*shape, 3),
        object_id=object_id.reshape(shape),
        depth=(dist * optics.dz).reshape(shape),
    )


def _trace(view: CameraView, optics: _Optics, spec: CameraSpec) -> tuple[np.ndarray, np.ndarray]:
    """Table row and distance of every pixel's first hit, casting about a third of the rays.

    Every other pixel of every other row is cast. A pixel between samples that all landed on
    one box face (or all on the ground, or all in the sky) lies on that face too — faces are
    convex — and is intersected with its plane directly; only pixels between samples that
    disagree (silhouettes, edges) are cast. Detail narrower than two pixels can fall between
    samples: a distant pole may lose a pixel column.
    """
    res = view.scene.cast_rays(optics.coarse, nthreads=1)
    t_hit = res["t_hit"].numpy()
    # intp throughout: every table gather below would otherwise convert the indices first
    coarse = np.minimum(res["primitive_ids"].numpy(), np.uint32(view.sky)).astype(np.intp)
    coarse[optics.coarse_ground < t_hit] = view.ground
    coarse &= ~1  # one key per box face: its two triangles share every table entry
    hc, wc = optics.coarse_shape
    key_c = coarse.reshape(hc, wc)
    key = np.full((spec.height, spec.width), -1, np.intp)
    key[::2, ::2] = key_c
    left, right = key_c[:, :-1], key_c[:, 1:]
    across = left == right
    key[::2, 1 : 2 * wc - 1 : 2] = np.where(across, left, -1)
    top, bottom = key_c[:-1], key_c[1:]
    down = top == bottom
    key[1 : 2 * hc - 1 : 2, ::2] = np.where(down, top, -1)
    four = across[:-1] & across[1:] & down[:, :-1]
    key[1 : 2 * hc - 1 : 2, 1 : 2 * wc - 1 : 2] = np.where(four, top[:, :-1], -1)
    row = key.reshape(-1)
    cast = np.flatnonzero(row < 0)
    row[cast] = view.sky
    plane = view.plane
    dist = np.take(plane[3], row)
    dist /= (
        np.take(plane[0], row) * optics.dx
        + np.take(plane[1], row) * optics.dy
        + np.take(plane[2], row) * optics.dz
    )
    if cast.size:
        rays = o3c.Tensor.from_numpy(np.take(optics.rays, cast, axis=0))
        res = view.scene.cast_rays(rays, nthreads=1)
        t_hit = res["t_hit"].numpy()
        hit = np.minimum(res["primitive_ids"].numpy(), np.uint32(view.sky)).astype(np.intp)
        t_ground = optics.t_ground[cast]
        hit[t_ground < t_hit] = view.ground
        row[cast] = hit
        dist[cast] = np.minimum(t_hit, t_ground)
    return row, dist


def _paint_ground(
    world: World,
    optics: _Optics,
    *,
    pose: np.ndarray,
    on_ground: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Class (lane paint, kerb, grass) and asphalt grain of the ground pixels, in place."""
    object_id, index, gain = out
    g = optics.ground_cam
    gx, gy, gz = (np.take(g[i], on_ground) for i in range(3))
    r = pose.astype(np.float32)
    x = r[0, 3] + r[0, 0] * gx + r[0, 1] * gy + r[0, 2] * gz
    y = r[1, 3] + r[1, 0] * gx + r[1, 1] * gy + r[1, 2] * gz
    cls, texture = world.paint(x, y)
    object_id[on_ground] = cls
    index[on_ground] = cls
    gain[on_ground] *= np.float32(0.8) + np.float32(0.4) * texture


def _detail(
    view: CameraView,
    optics: _Optics,
    *,
    origin_z: float,
    row: np.ndarray,
    dist: np.ndarray,
    kind: np.ndarray,
    index: np.ndarray,
) -> None:
    """Facade windows and vehicles' glass and tyres, in place in ``index``."""
    wall = np.flatnonzero(kind == KIND_FACADE)
    if wall.size:
        t, r = dist[wall], row[wall]
        a = view.along
        s = t * (a[r, 0] * optics.dx[wall] + a[r, 1] * optics.dy[wall] + a[r, 2] * optics.dz[wall])
        s += a[r, 3]
        z = np.float32(origin_z) + t * optics.up[wall]
        zz = z - np.floor(z * np.float32(1 / 3.2)) * np.float32(3.2)
        ss = s - np.floor(s * np.float32(1 / 3.0)) * np.float32(3.0)
        win = (ss > 0.8) & (zz > 1.0) & (zz < 2.6) & (z > 1.0)
        index[wall[win]] = PALETTE_WINDOW
    car = np.flatnonzero(kind == KIND_VEHICLE)
    if car.size:
        z = np.float32(origin_z) + dist[car] * optics.up[car]
        h = view.height[row[car]]
        index[car[(z > 0.6 * h) & (z < 0.92 * h)]] = PALETTE_GLASS
        index[car[z < 0.25 * h]] = PALETTE_TYRE
