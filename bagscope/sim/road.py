"""The road's centre line and the ego's closed-form drive along it.

Kept apart from the world so the layout, the traffic and the ego all read one definition of
where the road is: ``y = c(x)`` in odom, with the ego's speed and lane offset as smooth
functions of time (exact derivatives for the IMU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EGO_SIZE", "PROFILES", "Profile", "Road", "yaw_matrices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """How a scenario's road bends and how the ego drives it (metres, m/s, seconds)."""

    meander_amp: float
    meander_wavelength: float
    speed: float
    speed_swing: float
    speed_period: float
    ego_u: float
    weave_amp: float
    weave_wavelength: float
    margin: float


PROFILES = {
    "urban": Profile(
        meander_amp=10.0,
        meander_wavelength=600.0,
        speed=10.0,
        speed_swing=1.5,
        speed_period=18.0,
        ego_u=-1.75,
        weave_amp=0.0,
        weave_wavelength=1.0,
        margin=200.0,
    ),
    "highway": Profile(
        meander_amp=40.0,
        meander_wavelength=2500.0,
        speed=25.0,
        speed_swing=1.0,
        speed_period=30.0,
        ego_u=-6.55,
        weave_amp=0.0,
        weave_wavelength=1.0,
        margin=300.0,
    ),
    "parking": Profile(
        meander_amp=0.0,
        meander_wavelength=1.0,
        speed=2.5,
        speed_swing=0.4,
        speed_period=10.0,
        ego_u=-1.6,
        weave_amp=0.35,
        weave_wavelength=30.0,
        margin=120.0,
    ),
}
EGO_SIZE = (4.6, 1.9)


class Road:
    """Centre line ``y = c(x)`` and the ego's smooth, closed-form drive along it."""

    def __init__(self, profile: Profile, rng: np.random.Generator) -> None:
        self.p = profile
        self.k = 2 * math.pi / profile.meander_wavelength
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.k2 = 2 * math.pi / profile.weave_wavelength
        self.phase2 = float(rng.uniform(0, 2 * math.pi))
        self.w = 2 * math.pi / profile.speed_period

    def c(self, x: np.ndarray) -> np.ndarray:
        return self.p.meander_amp * np.sin(self.k * x + self.phase)

    def c1(self, x: np.ndarray) -> np.ndarray:
        return self.p.meander_amp * self.k * np.cos(self.k * x + self.phase)

    def heading(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.arctan(self.c1(x)))

    def ego_x(self, t: np.ndarray) -> np.ndarray:
        p = self.p
        return p.speed * t + p.speed_swing / self.w * np.sin(self.w * t)

    def ego_xd(self, t: np.ndarray) -> np.ndarray:
        return self.p.speed + self.p.speed_swing * np.cos(self.w * t)

    def ego_u(self, x: np.ndarray) -> np.ndarray:
        return self.p.ego_u + self.p.weave_amp * np.sin(self.k2 * x + self.phase2)

    def ego_kinematics(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Pose and body-frame derivatives of ``y(x(t))`` in closed form."""
        p, k, k2 = self.p, self.k, self.k2
        x = self.ego_x(t)
        xd = self.ego_xd(t)
        xdd = -p.speed_swing * self.w * np.sin(self.w * t)
        a1, a2 = k * x + self.phase, k2 * x + self.phase2
        y = p.meander_amp * np.sin(a1) + p.ego_u + p.weave_amp * np.sin(a2)
        y1 = p.meander_amp * k * np.cos(a1) + p.weave_amp * k2 * np.cos(a2)
        y2 = -p.meander_amp * k * k * np.sin(a1) - p.weave_amp * k2 * k2 * np.sin(a2)
        root = np.sqrt(1.0 + y1 * y1)
        speed = xd * root
        yaw_rate = y2 * xd / (1.0 + y1 * y1)
        accel_x = xdd * root + xd * xd * y1 * y2 / root
        return {
            "x": x,
            "y": y,
            "yaw": np.arctan(y1),
            "speed": speed,
            "yaw_rate": yaw_rate,
            "accel_x": accel_x,
            "accel_y": yaw_rate * speed,
        }

    def ego_t_of_x(self, x: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
        """Invert the monotonic ``ego_x`` (the speed never drops to zero)."""
        grid = np.linspace(t_lo, t_hi, max(2, int((t_hi - t_lo) * 20) + 1))
        return np.asarray(np.interp(x, self.ego_x(grid), grid))


def yaw_matrices(yaw: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(..., 4, 4) transforms rotating by ``yaw`` about z and translating to ``centers``."""
    out = np.zeros((*yaw.shape, 4, 4))
    cy, sy = np.cos(yaw), np.sin(yaw)
    out[..., 0, 0], out[..., 0, 1] = cy, -sy
    out[..., 1, 0], out[..., 1, 1] = sy, cy
    out[..., 2, 2] = 1.0
    out[..., 3, 3] = 1.0
    out[..., :3, 3] = centers
    return out
