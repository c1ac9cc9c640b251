"""A spinning multi-beam lidar, simulated by casting every beam of every firing column.

Each column fires at its own time while the car moves, and each point is expressed in the
sensor frame *at its own firing time*, exactly as ROS drivers publish them: interpreted at one
instant, a sweep shows the motion distortion that de-skewing code exists to remove. Moving
actors are placed where they were when each column fired, too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bagscope.sim.config import LidarSpec
    from bagscope.sim.world import World

__all__ = ["INTENSITY_SCALE", "LidarSweep", "beam_directions", "simulate_sweep"]

# Intensity is published on the Velodyne scale (0..255) rather than as a unit fraction.
INTENSITY_SCALE = 255.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LidarSweep:
    """One revolution's returns, in firing order (column by column, lowest beam first).

    ``xyz`` is in the lidar frame at each point's firing time, ``t`` is seconds since
    ``t_start_ns``, ``ring`` the beam index (0 = lowest), ``object_id`` the ground-truth surface
    (see :meth:`World.object_class`), kept for tests and labels but not published.
    """

    t_start_ns: int
    xyz: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray
    t: np.ndarray
    object_id: np.ndarray


@lru_cache(maxsize=16)
def beam_directions(spec: LidarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (columns, beams, 3) in the lidar frame and column time offsets (ns).

    The head turns clockwise seen from above, starting at ``cut_azimuth_deg``; the arrays are
    cached per spec and read-only, since every sweep of a drive shares them.
    """
    elevation = np.deg2rad(np.linspace(spec.vfov_deg[0], spec.vfov_deg[1], spec.beams))
    start = math.radians(spec.cut_azimuth_deg)
    azimuth = start - 2 * math.pi * np.arange(spec.azimuth_steps) / spec.azimuth_steps
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    dirs = dirs.astype(np.float32)
    offsets = (np.arange(spec.azimuth_steps, dtype=np.int64) * spec.period_ns) // (
        spec.azimuth_steps
    )
    dirs.flags.writeable = False
    offsets.flags.writeable = False
    return dirs, offsets


_GAUSS_SIZE = 1 << 21


@lru_cache(maxsize=1)
def _gaussian_table() -> np.ndarray:
    """Two million N(0, 1) samples, drawn once: a sweep reads a window at a random offset,
    five times cheaper than drawing 2 × 100k fresh normals, and just as Gaussian."""
    table = np.random.default_rng(0x5EED).standard_normal(_GAUSS_SIZE, dtype=np.float32)
    table.flags.writeable = False
    return table


def _gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
    if n > _GAUSS_SIZE:
        return rng.standard_normal(n, dtype=np.float32)
    start = int(rng.integers(0, _GAUSS_SIZE - n + 1))
    return _gaussian_table()[start : start + n]


@lru_cache(maxsize=16)
def _components(spec: LidarSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beam directions as three contiguous (columns, beams) arrays, for per-axis products."""
    dirs, _ = beam_directions(spec)
    out = tuple(np.ascontiguousarray(dirs[..., i]) for i in range(3))
    for array in out:
        array.flags.writeable = False
    return out[0], out[1], out[2]


def simulate_sweep(  # noqa: PLR0917 - the simulator's agreed signature, called positionally
    world: World, spec: LidarSpec, t_start_ns: int, rng: np.random.Generator
) -> LidarSweep:
    """Cast one sweep starting at ``t_start_ns`` and turn hits into noisy returns.

    Range noise is Gaussian (``range_noise_m``); a return is lost at random
    (``dropout_prob``) and more often far away and at grazing incidence
    (``divergence_dropout``); intensity is reflectivity × cos(incidence) with 5 % noise.
    """
    _, offsets = beam_directions(spec)
    lx, ly, lz = _components(spec)
    steps, beams = lx.shape
    times = t_start_ns + offsets
    poses = (world.ego_poses(times) @ spec.mount.to_matrix()).astype(np.float32)
    # Per column: origin, and R @ d written out per axis (numpy's batched 3x3 matmul over
    # 100k rays is slower than the ray casting itself).
    grid = np.empty((steps, beams, 6), np.float32)
    for i in range(3):
        grid[..., i] = poses[:, i, 3:4]
    for i in range(3):
        r = poses[:, i, :3]
        grid[..., 3 + i] = r[:, 0:1] * lx + r[:, 1:2] * ly + r[:, 2:3] * lz
    rays = grid.reshape(-1, 6)
    hits = world.cast_rays(
        rays, t_start_ns, ray_times_ns=np.repeat(times, beams), reach_m=spec.max_range_m
    )

    dist = hits.distance
    idx = np.flatnonzero((dist >= spec.min_range_m) & (dist <= spec.max_range_m))
    r = dist[idx]
    # np.take, not fancy indexing: the latter is several times slower on (N, k) rows
    normal = np.take(hits.normal, idx, axis=0)
    ray_dirs = np.take(rays, idx, axis=0)[:, 3:]
    cos = np.abs(
        normal[:, 0] * ray_dirs[:, 0]
        + normal[:, 1] * ray_dirs[:, 1]
        + normal[:, 2] * ray_dirs[:, 2]
    )
    far = (r * np.float32(1.0 / spec.max_range_m)) ** 2
    grazing = (np.float32(1.0) - cos) ** 2
    loss = np.minimum(np.float32(spec.divergence_dropout) * (far + grazing * grazing), 1.0)
    keep_prob = np.float32(1.0 - spec.dropout_prob) * (np.float32(1.0) - loss)
    keep = np.flatnonzero(rng.random(idx.size, dtype=np.float32) < keep_prob)
    idx, r, cos = idx[keep], r[keep], cos[keep]
    r_meas = r + _gaussian(rng, idx.size) * np.float32(spec.range_noise_m)
    speckle = np.float32(1.0) + np.float32(0.05) * _gaussian(rng, idx.size)
    intensity = hits.reflectivity[idx] * cos * speckle
    np.clip(intensity, 0.0, 1.0, out=intensity)
    intensity *= np.float32(INTENSITY_SCALE)
    column = idx // beams
    xyz = np.empty((idx.size, 3), np.float32)
    for i, component in enumerate((lx, ly, lz)):
        xyz[:, i] = np.take(component.reshape(-1), idx) * r_meas
    return LidarSweep(
        t_start_ns=int(t_start_ns),
        xyz=xyz,
        intensity=intensity.astype(np.float32),
        ring=(idx - column * beams).astype(np.uint16),
        t=(offsets[column] * 1e-9).astype(np.float32),
        object_id=hits.object_id[idx],
    )
