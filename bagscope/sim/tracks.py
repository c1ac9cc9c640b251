"""Every road user's trajectory as parallel arrays of one closed-form family.

Closed-form in time so that a lidar can ask where each actor was at each point's own firing
time, and velocities are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bagscope.sim.config import CLASS_SIZES

if TYPE_CHECKING:
    from bagscope.sim.road import Road

__all__ = ["ACTOR_CLASSES", "ACTOR_ID_BASE", "ACTOR_RANGE_M", "MOVING_EPS", "Tracks"]

# Object ids below this are scenery classes; actors get ``ACTOR_ID_BASE + index`` as track id.
ACTOR_ID_BASE = 1000
# Actors farther than this from the ego (or from the rays' origins) are neither listed nor
# rendered: beyond any lidar's reach and a few pixels at most in a camera.
ACTOR_RANGE_M = 250.0
ACTOR_CLASSES: tuple[str, ...] = tuple(CLASS_SIZES)
MOVING_EPS = 1e-9


class Tracks:
    """All actors as parallel arrays; one closed-form trajectory family covers every kind.

    ``x(t) = x0 + vx·t + follow·x_ego(t)`` (lane traffic, the car ahead of the ego) and
    ``u(t)`` ramps from ``u_a`` to ``u_b`` during ``[t_a, t_b]`` (a pedestrian crossing);
    parked cars simply have ``vx = 0`` and ``u_a = u_b``.
    """

    def __init__(self, rows: list[dict[str, float | str]], road: Road) -> None:
        self.road = road
        self.n = len(rows)
        self.cls = np.array([ACTOR_CLASSES.index(str(r["cls"])) for r in rows], dtype=np.int32)

        def col(key: str) -> np.ndarray:
            return np.array([float(r[key]) for r in rows], dtype=np.float64)

        self.size = np.stack([col("l"), col("w"), col("h")], axis=-1).reshape(-1, 3)
        self.x0, self.vx, self.follow = col("x0"), col("vx"), col("follow")
        self.u_a, self.u_b, self.t_a, self.t_b = col("u_a"), col("u_b"), col("t_a"), col("t_b")
        self.yaw_rel, self.refl = col("yaw_rel"), col("refl")
        self.color = np.stack([col("r"), col("g"), col("b")], axis=-1).reshape(-1, 3)
        self.moving = (np.abs(self.vx) > MOVING_EPS) | (self.follow > 0) | (self.u_a != self.u_b)

    def state(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Centre (…,3), yaw (…), velocity (…,3) of actors ``idx`` at times ``t`` (seconds)."""
        road = self.road
        follow = self.follow[idx]
        x = self.x0[idx] + self.vx[idx] * t + follow * road.ego_x(t)
        xd = self.vx[idx] + follow * road.ego_xd(t)
        span = self.t_b[idx] - self.t_a[idx]
        frac = np.clip((t - self.t_a[idx]) / span, 0.0, 1.0)
        du = self.u_b[idx] - self.u_a[idx]
        u = self.u_a[idx] + du * frac
        inside = (t > self.t_a[idx]) & (t < self.t_b[idx])
        ud = np.where(inside, du / span, 0.0)
        slope = road.c1(x)
        center = np.stack([x, road.c(x) + u, 0.5 * self.size[idx, 2]], axis=-1)
        yaw = np.arctan(slope) + self.yaw_rel[idx]
        vel = np.stack([xd, slope * xd + ud, np.zeros_like(x)], axis=-1)
        return center, yaw, vel

    def footprint(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """(x, u, half-extent along x, half-extent along u) in road coordinates."""
        x = self.x0[idx] + self.vx[idx] * t + self.follow[idx] * self.road.ego_x(t)
        frac = np.clip((t - self.t_a[idx]) / (self.t_b[idx] - self.t_a[idx]), 0.0, 1.0)
        u = self.u_a[idx] + (self.u_b[idx] - self.u_a[idx]) * frac
        across = np.abs(np.sin(self.yaw_rel[idx])) > 0.5
        half_l, half_w = self.size[idx, 0] / 2, self.size[idx, 1] / 2
        return x, u, np.where(across, half_w, half_l), np.where(across, half_l, half_w)
