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
def _homogeneous(spec: LidarSpec) -> np.ndarray:
    """(columns, beams, 4) beam directions with a trailing 1 for the batched ray product."""
    dirs, _ = beam_directions(spec)
    out = np.ones((*dirs.shape[:2], 4), np.float32)
    out[..., :3] = dirs
    out.flags.writeable = False
    return out


def simulate_sweep(  # noqa: PLR0917 - the simulator's agreed signature, called positionally
    world: World, spec: LidarSpec, t_start_ns: int, rng: np.random.Generator
) -> LidarSweep:
    """Cast one sweep starting at ``t_start_ns`` and turn hits into noisy returns.

    Range noise is Gaussian (``range_noise_m``); a return is lost at random
    (``dropout_prob``) and more often far away and at grazing incidence
    (``divergence_dropout``); intensity is reflectivity × cos(incidence) with 5 % noise.
    """
    dirs, offsets = beam_directions(spec)
    steps, beams = dirs.shape[0], dirs.shape[1]
    times = t_start_ns + offsets
    poses = world.ego_poses(times) @ spec.mount.to_matrix()
    # Per column, rays = [d, 1] @ [[R^T, 0], [0, o]]: one batched product, no strided copies.
    lift = np.zeros((steps, 4, 6), np.float32)
    lift[:, :3, 3:] = poses[:, :3, :3].transpose(0, 2, 1)
    lift[:, 3, :3] = poses[:, :3, 3]
    rays = np.matmul(_homogeneous(spec), lift).reshape(-1, 6)
    hits = world.cast_rays(rays, t_start_ns, ray_times_ns=np.repeat(times, beams))

    dist = hits.distance
    idx = np.flatnonzero((dist >= spec.min_range_m) & (dist <= spec.max_range_m))
    r = dist[idx]
    normal = hits.normal
    cos = np.abs(
        np.take(normal[:, 0], idx) * np.take(rays[:, 3], idx)
        + np.take(normal[:, 1], idx) * np.take(rays[:, 4], idx)
        + np.take(normal[:, 2], idx) * np.take(rays[:, 5], idx)
    )
    far = (r / np.float32(spec.max_range_m)) ** 2
    loss = np.clip(spec.divergence_dropout * (far + (1.0 - cos) ** 4), 0.0, 1.0)
    keep_prob = (1.0 - spec.dropout_prob) * (1.0 - loss)
    keep = rng.random(idx.size, dtype=np.float32) < keep_prob
    idx, r, cos = idx[keep], r[keep], cos[keep]
    r_meas = r + _gaussian(rng, idx.size) * np.float32(spec.range_noise_m)
    speckle = 1.0 + np.float32(0.05) * _gaussian(rng, idx.size)
    intensity = np.clip(hits.reflectivity[idx] * cos * speckle, 0.0, 1.0) * INTENSITY_SCALE
    column = idx // beams
    return LidarSweep(
        t_start_ns=int(t_start_ns),
        xyz=np.take(dirs.reshape(-1, 3), idx, axis=0) * r_meas[:, None],
        intensity=intensity.astype(np.float32),
        ring=(idx % beams).astype(np.uint16),
        t=(offsets[column] * 1e-9).astype(np.float32),
        object_id=hits.object_id[idx],
    )
