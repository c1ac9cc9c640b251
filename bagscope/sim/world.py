"""The simulated world: a road with scenery, an ego car driving it, and other road users.

Everything is laid out in *road coordinates* ``(x, u)``: ``x`` runs along the drive and ``u`` is
the lateral offset from a gently meandering centre line ``y = c(x)``, so lanes, kerbs, buildings
and traffic follow the road without any geometry bookkeeping. The ego path and every actor
trajectory are closed-form functions of time, which gives exact velocities and accelerations
(the IMU stays consistent with the poses) and lets a lidar ask where each actor was at each
point's own firing time.

Static scenery (boxes for buildings, poles, barriers, trees) is built once into one Open3D
``RaycastingScene``. The ground is the plane z = 0, intersected analytically, and its surface
class (road, lane marking, sidewalk, grass) is decided from the hit point: cheaper and crisper
than meshing paint. Actors are oriented boxes put into a small scene per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import open3d as o3d
import open3d.core as o3c

from bagscope.sim.config import CLASS_SIZES, Scenario, SimError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ACTOR_ID_BASE",
    "ACTOR_RANGE_M",
    "SCENERY_CLASSES",
    "ActorState",
    "EgoState",
    "RayHits",
    "World",
    "build_world",
]

# Object ids below this are scenery classes; actors get ``ACTOR_ID_BASE + index`` as track id.
ACTOR_ID_BASE = 1000
# Actors farther than this from the ego (or from the rays' origins) are neither listed nor
# rendered: beyond any lidar's reach and a few pixels at most in a camera.
ACTOR_RANGE_M = 250.0
SCENERY_CLASSES: tuple[str, ...] = (
    "none",
    "ground",
    "road",
    "lane_marking",
    "sidewalk",
    "building",
    "pole",
    "barrier",
    "vegetation",
)
_ID = {name: i for i, name in enumerate(SCENERY_CLASSES)}
_ACTOR_CLASSES: tuple[str, ...] = tuple(CLASS_SIZES)
_MOVING_EPS = 1e-9

# Unit box centred on the origin, 12 outward-wound triangles (Open3D's create_box order).
_BOX_VERTS = (
    np.array(
        [[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]],
        dtype=np.float64,
    )
    - 0.5
)
_BOX_TRIS = np.array(
    [
        *([4, 7, 5], [4, 6, 7], [0, 2, 4], [2, 6, 4], [0, 1, 2], [1, 3, 2]),
        *([1, 5, 7], [1, 7, 3], [2, 3, 7], [2, 7, 6], [0, 4, 1], [1, 4, 5]),
    ],
    dtype=np.uint32,
)
_TRIS_PER_BOX = 12
_UP = np.array([0.0, 0.0, 1.0], np.float32)
# Scenery farther along the road than this from the rays' origins is left out of a ray cast.
_SCENERY_REACH_M = 400.0


# ----------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True, kw_only=True)
class ActorState:
    """One road user at one instant: an oriented box in ``odom`` with its velocity."""

    track_id: int
    cls: str
    pose: np.ndarray
    size: np.ndarray
    velocity: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class EgoState:
    """The ego's pose (base_link in odom) and body-frame rates; gravity is not in the accel."""

    t_ns: int
    pose: np.ndarray
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class RayHits:
    """First surface along each ray; ``scenery_index`` (−1 if none) lets a renderer vary looks."""

    distance: np.ndarray
    normal: np.ndarray
    object_id: np.ndarray
    reflectivity: np.ndarray
    scenery_index: np.ndarray


# ------------------------------------------------------------------------------ scenario shape
@dataclass(frozen=True, slots=True, kw_only=True)
class _Profile:
    meander_amp: float
    meander_wavelength: float
    speed: float
    speed_swing: float
    speed_period: float
    ego_u: float
    weave_amp: float
    weave_wavelength: float
    margin: float


_PROFILES = {
    "urban": _Profile(
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
    "highway": _Profile(
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
    "parking": _Profile(
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
_EGO_SIZE = (4.6, 1.9)


class _Road:
    """Centre line ``y = c(x)`` and the ego's smooth, closed-form drive along it."""

    def __init__(self, profile: _Profile, rng: np.random.Generator) -> None:
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


def _yaw_matrices(yaw: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(..., 4, 4) transforms rotating by ``yaw`` about z and translating to ``centers``."""
    out = np.zeros((*yaw.shape, 4, 4))
    cy, sy = np.cos(yaw), np.sin(yaw)
    out[..., 0, 0], out[..., 0, 1] = cy, -sy
    out[..., 1, 0], out[..., 1, 1] = sy, cy
    out[..., 2, 2] = 1.0
    out[..., 3, 3] = 1.0
    out[..., :3, 3] = centers
    return out


# ------------------------------------------------------------------------------------ tracks
class _Tracks:
    """All actors as parallel arrays; one closed-form trajectory family covers every kind.

    ``x(t) = x0 + vx·t + follow·x_ego(t)`` (lane traffic, the car ahead of the ego) and
    ``u(t)`` ramps from ``u_a`` to ``u_b`` during ``[t_a, t_b]`` (a pedestrian crossing);
    parked cars simply have ``vx = 0`` and ``u_a = u_b``.
    """

    def __init__(self, rows: list[dict[str, float | str]], road: _Road) -> None:
        self.road = road
        self.n = len(rows)
        self.cls = np.array([_ACTOR_CLASSES.index(str(r["cls"])) for r in rows], dtype=np.int32)

        def col(key: str) -> np.ndarray:
            return np.array([float(r[key]) for r in rows], dtype=np.float64)

        self.size = np.stack([col("l"), col("w"), col("h")], axis=-1).reshape(-1, 3)
        self.x0, self.vx, self.follow = col("x0"), col("vx"), col("follow")
        self.u_a, self.u_b, self.t_a, self.t_b = col("u_a"), col("u_b"), col("t_a"), col("t_b")
        self.yaw_rel, self.refl = col("yaw_rel"), col("refl")
        self.color = np.stack([col("r"), col("g"), col("b")], axis=-1).reshape(-1, 3)
        self.moving = (np.abs(self.vx) > _MOVING_EPS) | (self.follow > 0) | (self.u_a != self.u_b)

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


# ----------------------------------------------------------------------------- world layout
class _Layout:
    """Random but seeded placement of scenery boxes and actor trajectories for one scenario."""

    def __init__(self, scenario: Scenario, road: _Road, rng: np.random.Generator) -> None:
        self.scenario, self.road, self.rng = scenario, road, rng
        self.t_end = scenario.duration_ns * 1e-9
        t = np.linspace(0.0, self.t_end, 64)
        ex = road.ego_x(t)
        margin = road.p.margin
        self.x_lo, self.x_hi = float(ex.min() - margin), float(ex.max() + margin)
        self.boxes: list[tuple[float, ...]] = []
        self.tracks: list[dict[str, float | str]] = []
        self.crosswalks: list[float] = []

    # -- scenery: (cls, x, u, z_bottom, length, width, height, yaw_rel, refl, r, g, b)
    def box(
        self,
        cls: str,
        x: float,
        u: float,
        *,
        z: float = 0.0,
        size: tuple[float, float, float],
        yaw_rel: float = 0.0,
        refl: float,
        color: tuple[float, float, float],
    ) -> None:
        self.boxes.append((_ID[cls], x, u, z, *size, yaw_rel, refl, *color))

    def along(self, *, spacing: tuple[float, float], start: float | None = None) -> np.ndarray:
        """Positions along the drive with random gaps drawn from ``spacing``."""
        lo, hi = spacing
        n = int((self.x_hi - self.x_lo) / lo) + 2
        gaps = self.rng.uniform(lo, hi, n)
        xs = (self.x_lo if start is None else start) + np.cumsum(gaps)
        return xs[xs < self.x_hi]

    def far_from_crosswalks(self, x: float, clearance: float) -> bool:
        return all(abs(x - c) > clearance for c in self.crosswalks)

    def buildings(self, *, u_range: tuple[float, float], height: tuple[float, float]) -> None:
        rng = self.rng
        palette = (
            *((0.78, 0.72, 0.62), (0.62, 0.36, 0.30), (0.60, 0.60, 0.62)),
            *((0.85, 0.84, 0.80), (0.45, 0.55, 0.65), (0.70, 0.62, 0.50)),
        )
        for side in (-1.0, 1.0):
            x = self.x_lo
            while x < self.x_hi:
                length = float(rng.uniform(10.0, 35.0))
                depth = float(rng.uniform(10.0, 20.0))
                setback = u_range[0] + float(rng.uniform(0.0, u_range[1] - u_range[0]))
                color = palette[int(rng.integers(len(palette)))]
                self.box(
                    "building",
                    x + length / 2,
                    side * (setback + depth / 2),
                    size=(length, depth, float(rng.uniform(*height))),
                    refl=float(rng.uniform(0.2, 0.5)),
                    color=color,
                )
                x += length + float(rng.uniform(1.5, 9.0))

    def poles(self, *, u: float, spacing: float, height: float, clearance: float = 4.0) -> None:
        for side in (-1.0, 1.0):
            for x in self.along(spacing=(spacing * 0.9, spacing * 1.1)):
                if self.far_from_crosswalks(float(x), clearance):
                    self.box(
                        "pole",
                        float(x),
                        side * u,
                        size=(0.25, 0.25, height),
                        refl=0.45,
                        color=(0.35, 0.36, 0.38),
                    )

    def trees(self, *, u: tuple[float, float], spacing: tuple[float, float]) -> None:
        rng = self.rng
        for side in (-1.0, 1.0):
            for x in self.along(spacing=spacing):
                if not self.far_from_crosswalks(float(x), 5.0):
                    continue
                uu = side * float(rng.uniform(*u))
                crown = float(rng.uniform(2.5, 4.0))
                trunk = float(rng.uniform(2.2, 3.0))
                bark, leaf = (0.36, 0.27, 0.18), (0.22, 0.42 + 0.1 * rng.random(), 0.16)
                self.box("vegetation", float(x), uu, size=(0.35, 0.35, trunk), refl=0.3, color=bark)
                self.box(
                    "vegetation",
                    float(x),
                    uu,
                    z=trunk,
                    size=(crown, crown, crown * 0.9),
                    yaw_rel=float(rng.uniform(0, math.pi / 2)),
                    refl=0.55,
                    color=leaf,
                )

    def barrier(self, *, u: float, width: float, height: float) -> None:
        for x in np.arange(self.x_lo, self.x_hi, 20.0):
            self.box(
                "barrier",
                float(x) + 10.0,
                u,
                size=(20.3, width, height),
                refl=0.5,
                color=(0.66, 0.66, 0.64),
            )

    # -- actors
    def track(
        self,
        cls: str,
        *,
        x0: float,
        u: float,
        vx: float = 0.0,
        follow: float = 0.0,
        yaw_rel: float = 0.0,
        crossing: tuple[float, float, float] | None = None,
    ) -> dict[str, float | str]:
        """A trajectory row; ``crossing`` = (u_end, t_start, t_end) ramps ``u`` to ``u_end``."""
        rng = self.rng
        length, width, height = CLASS_SIZES[cls]
        jitter = rng.uniform(0.93, 1.07, 3) if cls not in {"pedestrian", "cyclist"} else np.ones(3)
        u_b, t_a, t_b = crossing if crossing is not None else (u, 0.0, 1.0)
        if cls in {"pedestrian", "cyclist"}:
            refl = float(rng.uniform(0.15, 0.35))
            color = tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))
        else:
            refl = float(rng.uniform(0.1, 0.6))
            paints = np.array(
                [
                    *([0.8, 0.8, 0.82], [0.1, 0.1, 0.12], [0.55, 0.56, 0.6], [0.6, 0.08, 0.08]),
                    *([0.1, 0.2, 0.5], [0.85, 0.85, 0.8], [0.25, 0.3, 0.25], [0.9, 0.6, 0.1]),
                ]
            )
            color = tuple(float(c) for c in paints[int(rng.integers(len(paints)))])
        return {
            "cls": cls,
            "l": length * jitter[0],
            "w": width * jitter[1],
            "h": height * jitter[2],
            "x0": x0,
            "vx": vx,
            "follow": follow,
            "u_a": u,
            "u_b": u_b,
            "t_a": t_a,
            "t_b": t_b,
            "yaw_rel": yaw_rel,
            "refl": refl,
            "r": color[0],
            "g": color[1],
            "b": color[2],
        }

    def lane(
        self, *, u: float, speed: float, gap: tuple[float, float], mix: dict[str, float]
    ) -> None:
        """A lane of traffic at one constant speed (so no one rear-ends anyone), seeded gaps."""
        t = np.linspace(0.0, self.t_end, 64)
        rel = self.road.ego_x(t) - speed * t
        lo, hi = float(rel.min() - ACTOR_RANGE_M), float(rel.max() + ACTOR_RANGE_M)
        names, weights = list(mix), np.array(list(mix.values()))
        x = lo + float(self.rng.uniform(0, gap[1]))
        while x < hi:
            cls = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            yaw = 0.0 if speed >= 0 else math.pi
            self.tracks.append(self.track(cls, x0=x, u=u, vx=speed, yaw_rel=yaw))
            x += CLASS_SIZES[cls][0] + float(self.rng.uniform(*gap))

    def parked_row(
        self, *, u: float, across: bool, occupancy: float, mix: dict[str, float], pitch: float
    ) -> None:
        names, weights = list(mix), np.array(list(mix.values()))
        x = self.x_lo
        while x < self.x_hi:
            cls = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            step = pitch if across else CLASS_SIZES[cls][0] + float(self.rng.uniform(0.8, 6.0))
            if self.rng.random() < occupancy and self.far_from_crosswalks(x, 6.0):
                if across:
                    yaw = math.pi / 2 if self.rng.random() < 0.5 else -math.pi / 2
                    jitter = float(self.rng.uniform(-0.15, 0.15))
                    self.tracks.append(self.track(cls, x0=x + jitter, u=u, yaw_rel=yaw))
                else:
                    yaw = 0.0 if u < 0 else math.pi
                    self.tracks.append(self.track(cls, x0=x + step / 2, u=u, yaw_rel=yaw))
            x += step

    def walkers(self, *, u: float, speed: float, gap: tuple[float, float]) -> None:
        self.lane(u=u, speed=speed, gap=gap, mix={"pedestrian": 1.0})

    def crossings(self, *, u_edge: float, count: tuple[int, int], before_ego: bool) -> None:
        """Pedestrians crossing at the crosswalks, timed so that no vehicle (nor the ego) is in
        their way: a candidate start time is kept only if the footprints never overlap."""
        rng, road = self.rng, self.road
        walking = 1.4
        duration = 2 * u_edge / walking
        tracks = _Tracks(self.tracks, road) if self.tracks else None
        movers = np.flatnonzero(tracks.moving) if tracks is not None else np.zeros(0, np.int64)
        for xc in self.crosswalks:
            t_pass = float(road.ego_t_of_x(np.array([xc]), -60.0, self.t_end + 60.0)[0])
            for _ in range(int(rng.integers(count[0], count[1] + 1))):
                start = 1.0 if rng.random() < 0.5 else -1.0
                x = xc + float(rng.uniform(-1.5, 1.5))
                for _attempt in range(25):
                    if before_ego:
                        t_a = t_pass - duration - float(rng.uniform(0.5, 14.0))
                    else:
                        t_a = t_pass + float(rng.uniform(-30.0, 10.0))
                    row = self.track(
                        "pedestrian",
                        x0=x,
                        u=start * u_edge,
                        yaw_rel=-start * math.pi / 2,
                        crossing=(-start * u_edge, t_a, t_a + duration),
                    )
                    if self._clear(
                        row, tracks=tracks, movers=movers, window=(t_a - 1.0, t_a + duration + 1.0)
                    ):
                        self.tracks.append(row)
                        break

    def _clear(
        self,
        row: dict[str, float | str],
        *,
        tracks: _Tracks | None,
        movers: np.ndarray,
        window: tuple[float, float],
    ) -> bool:
        road = self.road
        t = np.arange(window[0], window[1], 0.1)
        cand = _Tracks([row], road)
        cx, cu, chx, chu = cand.footprint(np.zeros(len(t), np.int64), t)
        ex = road.ego_x(t)
        margin = 0.6
        if np.any(
            (np.abs(ex - cx) < chx + _EGO_SIZE[0] / 2 + margin)
            & (np.abs(road.ego_u(ex) - cu) < chu + _EGO_SIZE[1] / 2 + margin)
        ):
            return False
        if tracks is None or movers.size == 0:
            return True
        idx = np.broadcast_to(movers[:, None], (movers.size, t.size))
        tt = np.broadcast_to(t[None, :], idx.shape)
        ax, au, ahx, ahu = tracks.footprint(idx, tt)
        hit = (np.abs(ax - cx) < ahx + chx + margin) & (np.abs(au - cu) < ahu + chu + margin)
        return not bool(np.any(hit))


def _layout_urban(lay: _Layout) -> None:
    """A two-lane city street: bike lanes, parallel parking, sidewalks, buildings, crosswalks."""
    lay.crosswalks = [float(x) for x in lay.along(spacing=(60.0, 110.0))]
    lay.buildings(u_range=(12.0, 15.0), height=(6.0, 30.0))
    lay.poles(u=7.5, spacing=25.0, height=7.0)
    lay.trees(u=(7.8, 8.2), spacing=(12.0, 22.0))
    cars = {"car": 0.75, "van": 0.12, "truck": 0.08, "bus": 0.05}
    speed = float(lay.rng.uniform(9.0, 12.0))
    lay.lane(u=1.75, speed=-speed, gap=(25.0, 70.0), mix=cars)
    lay.tracks.append(lay.track("car", x0=22.0, u=-1.75, follow=1.0))
    lay.tracks.append(lay.track("van", x0=-16.0, u=-1.75, follow=1.0))
    lay.lane(u=-4.25, speed=float(lay.rng.uniform(4.0, 6.0)), gap=(40.0, 120.0), mix={"cyclist": 1})
    lay.lane(u=4.25, speed=-float(lay.rng.uniform(4.0, 6.0)), gap=(40.0, 120.0), mix={"cyclist": 1})
    for u in (-6.1, 6.1):
        lay.parked_row(u=u, across=False, occupancy=0.7, mix={"car": 0.85, "van": 0.15}, pitch=0)
    for u in (-9.2, 10.3):
        lay.walkers(u=u, speed=float(lay.rng.uniform(1.1, 1.6)), gap=(8.0, 40.0))
    for u in (9.2, -10.3):
        lay.walkers(u=u, speed=-float(lay.rng.uniform(1.1, 1.6)), gap=(8.0, 40.0))
    lay.crossings(u_edge=7.6, count=(1, 3), before_ego=True)


def _layout_highway(lay: _Layout) -> None:
    """Three lanes each way, a median barrier, guard rails, lamp posts and open country."""
    rng = lay.rng
    lay.barrier(u=0.0, width=0.6, height=1.0)
    for side in (-1.0, 1.0):
        lay.barrier(u=side * 14.2, width=0.3, height=0.8)
    lay.poles(u=15.5, spacing=60.0, height=10.0)
    lay.trees(u=(20.0, 60.0), spacing=(8.0, 30.0))
    lay.buildings(u_range=(70.0, 140.0), height=(6.0, 15.0))
    cars = {"car": 0.8, "van": 0.15, "motorcycle": 0.05}
    heavy = {"car": 0.45, "van": 0.15, "truck": 0.3, "bus": 0.1}
    lay.tracks.append(lay.track("car", x0=45.0, u=-6.55, follow=1.0))
    lay.tracks.append(lay.track("truck", x0=-40.0, u=-6.55, follow=1.0))
    lay.lane(u=-2.85, speed=float(rng.uniform(29.0, 33.0)), gap=(40.0, 140.0), mix=cars)
    lay.lane(u=-10.25, speed=float(rng.uniform(20.0, 23.0)), gap=(30.0, 120.0), mix=heavy)
    lay.lane(u=2.85, speed=-float(rng.uniform(29.0, 33.0)), gap=(40.0, 140.0), mix=cars)
    lay.lane(u=6.55, speed=-float(rng.uniform(25.0, 28.0)), gap=(40.0, 140.0), mix=cars)
    lay.lane(u=10.25, speed=-float(rng.uniform(20.0, 23.0)), gap=(30.0, 120.0), mix=heavy)
    for x in lay.along(spacing=(250.0, 600.0)):
        lay.tracks.append(lay.track("car", x0=float(x), u=-12.9))


def _layout_parking(lay: _Layout) -> None:
    """A parking lot: a two-way aisle between rows of perpendicular bays, a mall beyond."""
    lay.buildings(u_range=(32.0, 36.0), height=(6.0, 14.0))
    lay.poles(u=8.5, spacing=13.0, height=8.0, clearance=0.0)
    mix = {"car": 0.8, "van": 0.2}
    for u in (-6.0, 6.0, -11.0, 11.0, -23.0, 23.0):
        lay.parked_row(u=u, across=True, occupancy=0.7, mix=mix, pitch=2.6)
    lay.lane(u=17.0, speed=float(lay.rng.uniform(2.0, 4.0)), gap=(40.0, 120.0), mix={"car": 1})
    lay.lane(u=-17.0, speed=-float(lay.rng.uniform(2.0, 4.0)), gap=(40.0, 120.0), mix={"car": 1})
    lay.walkers(u=2.6, speed=float(lay.rng.uniform(1.0, 1.5)), gap=(10.0, 40.0))
    lay.walkers(u=27.5, speed=-float(lay.rng.uniform(1.0, 1.5)), gap=(6.0, 30.0))
    lay.walkers(u=-27.5, speed=float(lay.rng.uniform(1.0, 1.5)), gap=(6.0, 30.0))
    lay.crosswalks = [float(x) for x in lay.along(spacing=(15.0, 40.0))]
    lay.crossings(u_edge=3.2, count=(0, 1), before_ego=False)
    lay.crosswalks = []


_LAYOUTS: dict[str, Callable[[_Layout], None]] = {
    "urban": _layout_urban,
    "highway": _layout_highway,
    "parking": _layout_parking,
}


# ------------------------------------------------------------------------------ ground paint
def _hash01(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Cheap deterministic per-cell noise in [0, 1): the texture of asphalt, grass and paint."""
    h = ix.astype(np.uint32) * np.uint32(73856093) ^ iy.astype(np.uint32) * np.uint32(19349663)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(65536.0)


def _stripe(v: np.ndarray, center: float, half_width: float) -> np.ndarray:
    return np.asarray(np.abs(np.abs(v) - center) < half_width)


def _dashed(x: np.ndarray, on: float, period: float) -> np.ndarray:
    return np.asarray(np.mod(x, period) < on)


def _ground_urban(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    au = np.abs(u)
    cls = np.full(x.shape, _ID["ground"], np.int8)
    cls[au < 11.2] = _ID["sidewalk"]
    cls[au < 7.2] = _ID["road"]
    paint = (au < 0.12) | _stripe(u, 3.5, 0.075) | (_stripe(u, 5.0, 0.06) & _dashed(x, 2.0, 5.0))
    if crosswalks.size:
        j = np.clip(np.searchsorted(crosswalks, x), 1, crosswalks.size - 1)
        near = np.minimum(np.abs(x - crosswalks[j - 1]), np.abs(x - crosswalks[j]))
        paint |= (near < 2.0) & (au < 7.0) & (np.mod(u, 1.0) < 0.5)
    cls[paint & (au < 7.2)] = _ID["lane_marking"]
    return cls


def _ground_highway(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    del crosswalks
    au = np.abs(u)
    cls = np.full(x.shape, _ID["ground"], np.int8)
    cls[au < 13.6] = _ID["road"]
    dashes = (_stripe(u, 4.7, 0.075) | _stripe(u, 8.4, 0.075)) & _dashed(x, 3.0, 12.0)
    paint = _stripe(u, 1.05, 0.075) | _stripe(u, 12.15, 0.075) | dashes
    cls[paint] = _ID["lane_marking"]
    return cls


def _ground_parking(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    del crosswalks
    au = np.abs(u)
    cls = np.full(x.shape, _ID["ground"], np.int8)
    cls[au < 29.0] = _ID["sidewalk"]
    cls[au < 26.0] = _ID["road"]
    in_rows = ((au > 3.5) & (au < 13.5)) | ((au > 20.5) & (au < 25.5))
    bay_lines = in_rows & (np.mod(x + 1.3, 2.6) < 0.1)
    cls[bay_lines | _stripe(u, 8.5, 0.05)] = _ID["lane_marking"]
    return cls


_GROUND = {"urban": _ground_urban, "highway": _ground_highway, "parking": _ground_parking}
# Lidar reflectivity (near infrared) and albedo (sRGB-ish, linear 0..1) per scenery class.
_CLASS_REFL = np.array([0.0, 0.35, 0.1, 0.7, 0.25, 0.35, 0.45, 0.5, 0.5], np.float32)
_CLASS_RGB = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.28, 0.42, 0.18],
        [0.22, 0.22, 0.23],
        [0.92, 0.92, 0.88],
        [0.62, 0.6, 0.57],
        [0.7, 0.7, 0.7],
        [0.35, 0.36, 0.38],
        [0.66, 0.66, 0.64],
        [0.25, 0.45, 0.18],
    ],
    np.float32,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _FrameScene:
    """The per-call Embree scene: box slots ``[0, n_static)`` are scenery boxes starting at
    ``static_lo``, the rest are ``actors`` (track indices); ``moving`` marks swept slots."""

    scene: o3d.t.geometry.RaycastingScene
    static_lo: int
    n_static: int
    actors: np.ndarray
    moving: np.ndarray
    swept: bool


# ------------------------------------------------------------------------------------- world
class World:
    """A seeded, deterministic drive: ego motion, actors over time, and ray casting into both."""

    def __init__(self, scenario: Scenario) -> None:
        if scenario.name not in _PROFILES:
            msg = f"unknown scenario {scenario.name!r}; choose one of {', '.join(_PROFILES)}"
            raise SimError(msg)
        self.scenario = scenario
        rng = np.random.default_rng(scenario.seed)
        self._road = _Road(_PROFILES[scenario.name], rng)
        lay = _Layout(scenario, self._road, rng)
        _LAYOUTS[scenario.name](lay)
        self._ground_fn = _GROUND[scenario.name]
        self._crosswalks = np.sort(np.array(lay.crosswalks, np.float32))
        self._tracks = _Tracks(lay.tracks, self._road)
        boxes = np.array(lay.boxes, np.float64).reshape(-1, 12)
        boxes = boxes[np.argsort(boxes[:, 1], kind="stable")]
        self._box_cls = boxes[:, 0].astype(np.int32)
        self._box_refl = boxes[:, 8].astype(np.float32)
        self._box_rgb = boxes[:, 9:12].astype(np.float32)
        self._add_boxes(boxes)
        self._palette_tracks = _PALETTE_BOXES + boxes.shape[0]
        self._palette = np.concatenate(
            [_CLASS_RGB, _PALETTE_EXTRA, self._box_rgb, self._tracks.color.astype(np.float32)]
        )

    # -- construction
    def _add_boxes(self, boxes: np.ndarray) -> None:
        """Scenery boxes sorted along the road, so a call takes the ones in reach as a slice."""
        road = self._road
        x, u, z = boxes[:, 1], boxes[:, 2], boxes[:, 3]
        size = boxes[:, 4:7]
        self._static_x = x
        self._static_center = np.stack([x, road.c(x) + u, z + size[:, 2] / 2], axis=-1)
        self._static_yaw = road.heading(x) + boxes[:, 7]
        self._static_half = size / 2
        corners = _box_corners(self._static_center, self._static_yaw, size)
        self._static_verts = np.ascontiguousarray(corners.reshape(-1, 3), np.float32)
        most = boxes.shape[0] + self._tracks.n
        tris = _BOX_TRIS[None] + 8 * np.arange(most, dtype=np.uint32)[:, None, None]
        self._tris = np.ascontiguousarray(tris.reshape(-1, 3))

    # -- ego
    def ego(self, t_ns: int) -> EgoState:
        """The ego at ``t_ns`` (nanoseconds since the start of the drive)."""
        k = self._road.ego_kinematics(np.array([t_ns * 1e-9]))
        pose = _yaw_matrices(k["yaw"], np.stack([k["x"], k["y"], np.zeros(1)], -1))[0]
        return EgoState(
            t_ns=int(t_ns),
            pose=pose,
            linear_velocity=np.array([k["speed"][0], 0.0, 0.0]),
            angular_velocity=np.array([0.0, 0.0, k["yaw_rate"][0]]),
            linear_acceleration=np.array([k["accel_x"][0], k["accel_y"][0], 0.0]),
        )

    def ego_poses(self, t_ns: np.ndarray) -> np.ndarray:
        """(K, 4, 4) base_link poses in odom at each time: per-column lidar motion."""
        k = self._road.ego_kinematics(np.asarray(t_ns, np.float64) * 1e-9)
        return _yaw_matrices(k["yaw"], np.stack([k["x"], k["y"], np.zeros_like(k["x"])], -1))

    # -- actors
    def actors(self, t_ns: int, *, within_m: float = ACTOR_RANGE_M) -> list[ActorState]:
        """Road users (moving and parked) within ``within_m`` of the ego at ``t_ns``."""
        tr = self._tracks
        if tr.n == 0:
            return []
        t = t_ns * 1e-9
        idx = np.arange(tr.n)
        center, yaw, vel = tr.state(idx, np.full(tr.n, t))
        ego_xy = self.ego_poses(np.array([t_ns]))[0, :2, 3]
        near = np.flatnonzero(np.hypot(*(center[:, :2] - ego_xy).T) <= within_m)
        poses = _yaw_matrices(yaw[near], center[near])
        return [
            ActorState(
                track_id=ACTOR_ID_BASE + int(i),
                cls=_ACTOR_CLASSES[tr.cls[i]],
                pose=poses[n],
                size=tr.size[i].copy(),
                velocity=vel[i],
            )
            for n, i in enumerate(near)
        ]

    def object_class(self, object_id: int) -> str:
        """Class name of an ``object_id`` from :class:`RayHits` or a lidar point."""
        if 0 <= object_id < len(SCENERY_CLASSES):
            return SCENERY_CLASSES[object_id]
        i = object_id - ACTOR_ID_BASE
        if 0 <= i < self._tracks.n:
            return _ACTOR_CLASSES[int(self._tracks.cls[i])]
        msg = f"unknown object id {object_id}"
        raise SimError(msg)

    # -- rays
    def raycast(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        t_ns: int,
        *,
        ray_times_ns: np.ndarray | None = None,
    ) -> RayHits:
        """First hit of each ray (in odom) with the scene at ``t_ns``.

        ``ray_times_ns`` (optional, one per ray) places moving actors where they were when
        that ray was fired, as a spinning lidar needs; static scenery does not care.
        Directions are normalised here so distances are in metres.
        """
        o = np.ascontiguousarray(origins, dtype=np.float32).reshape(-1, 3)
        d = np.asarray(directions, dtype=np.float32).reshape(-1, 3)
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        times = None if ray_times_ns is None else np.asarray(ray_times_ns).reshape(-1)
        if times is not None and times.shape[0] != o.shape[0]:
            msg = f"ray_times_ns has {times.shape[0]} entries for {o.shape[0]} rays"
            raise SimError(msg)
        rays = np.empty((o.shape[0], 6), np.float32)
        rays[:, :3], rays[:, 3:] = o, d
        return self.cast_rays(rays, t_ns, ray_times_ns=times)

    def cast_rays(
        self, rays: np.ndarray, t_ns: int, *, ray_times_ns: np.ndarray | None = None
    ) -> RayHits:
        """:meth:`raycast` for sensors that already hold a C-contiguous float32 (N, 6) array
        of origins and unit directions: it skips the copies that matter at 30 frames/s.

        One Embree scene per call holds the scenery near the rays and the actors: exact boxes
        when all rays share a time; otherwise each moving actor is the box it sweeps over the
        rays' time span, and rays that hit a sweep are intersected exactly (slab method) with
        the actor where it was at that ray's own time.
        """
        frame = self._frame_scene(rays, t_ns, ray_times_ns)
        res = frame.scene.cast_rays(o3c.Tensor.from_numpy(rays))
        dist = res["t_hit"].numpy()
        normal = res["primitive_normals"].numpy()
        hit = np.isfinite(dist)
        pid = res["primitive_ids"].numpy().astype(np.int64)
        slot = np.where(hit, pid // _TRIS_PER_BOX, -1)
        if frame.swept:
            self._resolve_sweeps(frame, rays, ray_times_ns, hits=(dist, normal, slot))
        # The ground is the plane z = 0, intersected analytically: cheaper than letting Embree
        # walk grazing rays across it, and exact.
        oz, dz = rays[:, 2], rays[:, 5]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = oz / -dz
        below = (dz < 0) & (t_ground < dist)
        on_ground = np.flatnonzero(below)
        dist[on_ground] = t_ground[on_ground]
        normal[on_ground] = _UP
        slot[on_ground] = -1
        n = dist.shape[0]
        obj = np.zeros(n, np.int32)
        refl = np.zeros(n, np.float32)
        scen = np.full(n, -1, np.int32)
        on_box = np.flatnonzero((slot >= 0) & (slot < frame.n_static))
        inst = (slot[on_box] + frame.static_lo).astype(np.int32)
        obj[on_box] = self._box_cls[inst]
        refl[on_box] = self._box_refl[inst]
        scen[on_box] = inst
        on_actor = np.flatnonzero(slot >= frame.n_static)
        actor = frame.actors[slot[on_actor] - frame.n_static]
        obj[on_actor] = ACTOR_ID_BASE + actor
        refl[on_actor] = self._tracks.refl[actor]
        if on_ground.size:
            t = dist[on_ground]
            gx = np.take(rays[:, 0], on_ground) + np.take(rays[:, 3], on_ground) * t
            gy = np.take(rays[:, 1], on_ground) + np.take(rays[:, 4], on_ground) * t
            cls, texture = self._paint(gx, gy)
            obj[on_ground] = cls
            refl[on_ground] = _CLASS_REFL[cls] * (0.85 + 0.3 * texture)
        return RayHits(
            distance=dist, normal=normal, object_id=obj, reflectivity=refl, scenery_index=scen
        )

    def _paint(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground class and a 10 cm noise texture at odom points on the z=0 plane."""
        # float32 throughout: centimetres are plenty for paint and it halves the cost.
        u = y - self._road.c(x).astype(np.float32)
        cls = self._ground_fn(x, u, self._crosswalks)
        texture = _hash01(np.floor(x * 10.0).astype(np.int32), np.floor(y * 10.0).astype(np.int32))
        return cls, texture

    def _frame_scene(
        self, rays: np.ndarray, t_ns: int, ray_times_ns: np.ndarray | None
    ) -> _FrameScene:
        """Scenery within reach of the rays' origins plus the actors, as one Embree scene."""
        some = rays[:: max(1, rays.shape[0] // 512), :3]
        spread = float(np.ptp(some, axis=0).max()) if some.shape[0] else 0.0
        o_mid = some.mean(axis=0)
        lo, hi = np.searchsorted(
            self._static_x,
            [o_mid[0] - _SCENERY_REACH_M - spread, o_mid[0] + _SCENERY_REACH_M + spread],
        )
        tr = self._tracks
        if ray_times_ns is None:
            t_lo = t_hi = t_ns * 1e-9
        else:
            t_lo, t_hi = float(ray_times_ns.min()) * 1e-9, float(ray_times_ns.max()) * 1e-9
        swept = t_hi > t_lo
        idx = np.arange(tr.n)
        center, yaw, _ = tr.state(idx, np.full(tr.n, 0.5 * (t_lo + t_hi)))
        reach = ACTOR_RANGE_M + spread
        sel = np.flatnonzero(np.hypot(*(center[:, :2] - o_mid[:2]).T) <= reach)
        corners = _box_corners(center[sel], yaw[sel], tr.size[sel])
        moving = tr.moving[sel] if swept else np.zeros(sel.size, bool)
        if moving.any():
            mv = sel[moving]
            samples = [corners[moving]]
            for t in (t_lo, t_hi):
                c2, y2, _ = tr.state(mv, np.full(mv.size, t))
                samples.append(_box_corners(c2, y2, tr.size[mv]))
            stack = np.concatenate(samples, axis=1)
            low, high = stack.min(axis=1) - 0.05, stack.max(axis=1) + 0.05
            corners[moving] = low[:, None, :] + (_BOX_VERTS[None] + 0.5) * (high - low)[:, None, :]
        verts = np.concatenate(
            [self._static_verts[8 * lo : 8 * hi], corners.reshape(-1, 3).astype(np.float32)]
        )
        n_static = int(hi - lo)
        count = n_static + sel.size
        scene = o3d.t.geometry.RaycastingScene()
        if count:
            scene.add_triangles(
                o3c.Tensor.from_numpy(verts),
                o3c.Tensor.from_numpy(self._tris[: count * _TRIS_PER_BOX]),
            )
        return _FrameScene(
            scene=scene,
            static_lo=int(lo),
            n_static=n_static,
            actors=sel,
            moving=np.concatenate([np.zeros(n_static, bool), moving]),
            swept=bool(moving.any()),
        )

    def _resolve_sweeps(
        self,
        frame: _FrameScene,
        rays: np.ndarray,
        ray_times_ns: np.ndarray | None,
        *,
        hits: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Replace hits on moving actors' sweeps by exact hits at each ray's own time."""
        dist, normal, slot = hits
        if ray_times_ns is None:  # only per-ray times make sweeps
            return
        cand = np.flatnonzero(slot >= 0)
        cand = cand[frame.moving[slot[cand]]]
        if cand.size == 0:
            return
        t_rays = ray_times_ns[cand] * 1e-9
        hit_t, hit_n = self._slab_slots(frame, rays[cand], slot=slot[cand], t=t_rays)
        best = slot[cand].copy()
        missed = np.flatnonzero(~np.isfinite(hit_t))
        if missed.size:
            # The sweep was hit but not the actor: every box along the ray, exactly.
            m_rays = np.ascontiguousarray(rays[cand[missed]])
            lx = frame.scene.list_intersections(o3c.Tensor.from_numpy(m_rays))
            pair_ray = lx["ray_ids"].numpy().astype(np.int64)
            pair_slot = (lx["primitive_ids"].numpy() // _TRIS_PER_BOX).astype(np.int64)
            size = frame.moving.size
            key = np.unique(pair_ray * size + pair_slot)
            pair_ray, pair_slot = key // size, key % size
            hit_t[missed], best[missed] = np.inf, -1
            if pair_ray.size:
                p_t, p_n = self._slab_slots(
                    frame, m_rays[pair_ray], slot=pair_slot, t=t_rays[missed[pair_ray]]
                )
                order = np.lexsort((p_t, pair_ray))
                first = order[np.r_[True, pair_ray[order][1:] != pair_ray[order][:-1]]]
                which = missed[pair_ray[first]]
                hit_t[which], hit_n[which] = p_t[first], p_n[first]
                best[which] = np.where(np.isfinite(p_t[first]), pair_slot[first], -1)
        dist[cand] = hit_t
        normal[cand] = hit_n
        slot[cand] = best

    def _slab_slots(
        self, frame: _FrameScene, rays: np.ndarray, *, slot: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact hits of ``rays`` with the boxes in ``slot`` (scenery or actor at time ``t``)."""
        n = rays.shape[0]
        center, yaw, half = np.zeros((n, 3)), np.zeros(n), np.zeros((n, 3))
        static = slot < frame.n_static
        s = slot[static] + frame.static_lo
        center[static], yaw[static], half[static] = (
            self._static_center[s],
            self._static_yaw[s],
            self._static_half[s],
        )
        a = frame.actors[slot[~static] - frame.n_static]
        c, y, _ = self._tracks.state(a, t[~static])
        center[~static], yaw[~static], half[~static] = c, y, self._tracks.size[a] / 2
        return _slab(rays, center=center, yaw=yaw, half=half)

    # -- appearance, for the camera
    @property
    def palette(self) -> np.ndarray:
        """(K, 3) float32 colours that :meth:`materials` indexes: classes, glass, boxes, actors."""
        return self._palette

    def materials(
        self, hits: RayHits, *, x: np.ndarray, y: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Palette index and brightness gain per hit at odom points ``(x, y, z)``.

        Procedural detail — asphalt grain, facade windows, car glass and tyres — is what
        gives JPEG and image-quality analyzers real structure to chew on. Returned as an index
        rather than colours so the renderer can shade one contiguous channel at a time.
        """
        obj, scen = hits.object_id, hits.scenery_index
        index = obj.copy()
        boxes = np.flatnonzero(scen >= 0)
        index[boxes] = scen[boxes] + _PALETTE_BOXES
        gain = np.ones(obj.shape[0], np.float32)
        flat = np.flatnonzero((obj > 0) & (obj < len(SCENERY_CLASSES)) & (scen < 0))
        fx, fy = x[flat], y[flat]
        grain = _hash01(np.floor(fx * 10.0).astype(np.int32), np.floor(fy * 10.0).astype(np.int32))
        gain[flat] = 0.8 + 0.4 * grain
        nx, ny, nz = hits.normal[:, 0], hits.normal[:, 1], hits.normal[:, 2]
        facade = boxes[obj[boxes] == _ID["building"]]
        if facade.size:
            zz = z[facade]
            wide = np.abs(nx[facade]) > np.abs(ny[facade])
            s = np.where(wide, y[facade], x[facade])
            win = (np.mod(s, 3.0) > 0.8) & (np.mod(zz, 3.2) > 1.0) & (np.mod(zz, 3.2) < 2.6)
            win &= (zz > 1.0) & (np.abs(nz[facade]) < 0.5)
            index[facade[win]] = _PALETTE_WINDOW
        actors = np.flatnonzero(obj >= ACTOR_ID_BASE)
        if actors.size:
            a = obj[actors] - ACTOR_ID_BASE
            index[actors] = a + self._palette_tracks
            h, za = self._tracks.size[a, 2], z[actors]
            vehicle = ~np.isin(self._tracks.cls[a], _SOFT)
            glass = vehicle & (za > 0.6 * h) & (za < 0.92 * h) & (np.abs(nz[actors]) < 0.5)
            index[actors[glass]] = _PALETTE_GLASS
            index[actors[vehicle & (za < 0.25 * h)]] = _PALETTE_TYRE
        return index, gain


_PALETTE_WINDOW = len(SCENERY_CLASSES)
_PALETTE_GLASS = _PALETTE_WINDOW + 1
_PALETTE_TYRE = _PALETTE_WINDOW + 2
_PALETTE_BOXES = _PALETTE_WINDOW + 3
_PALETTE_EXTRA = np.array([[0.16, 0.2, 0.26], [0.08, 0.1, 0.13], [0.05, 0.05, 0.05]], np.float32)
_SOFT = np.array([_ACTOR_CLASSES.index(c) for c in ("pedestrian", "cyclist")])


def _slab(
    rays: np.ndarray, *, center: np.ndarray, yaw: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ray / z-yawed box intersection (slab method): distance (inf if none), normal."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    p = rays[:, :3].astype(np.float64) - center
    d = rays[:, 3:].astype(np.float64)
    pl = np.stack([cy * p[:, 0] + sy * p[:, 1], -sy * p[:, 0] + cy * p[:, 1], p[:, 2]], -1)
    dl = np.stack([cy * d[:, 0] + sy * d[:, 1], -sy * d[:, 0] + cy * d[:, 1], d[:, 2]], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1, t2 = (-half - pl) * inv, (half - pl) * inv
    tmin = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    tmax = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
    t_near, t_far = tmin.max(axis=1), tmax.min(axis=1)
    ok = (t_near <= t_far) & (t_near > 0)
    axis = tmin.argmax(axis=1)
    nl = np.zeros_like(pl)
    rows = np.arange(len(axis))
    nl[rows, axis] = -np.sign(dl[rows, axis])
    n = np.stack([cy * nl[:, 0] - sy * nl[:, 1], sy * nl[:, 0] + cy * nl[:, 1], nl[:, 2]], -1)
    return np.where(ok, t_near, np.inf), n


def _box_corners(centers: np.ndarray, yaw: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners of boxes rotated by ``yaw`` about z, in _BOX_VERTS order."""
    local = _BOX_VERTS[None] * size[:, None, :]
    cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    out = np.empty(local.shape, np.float64)
    out[..., 0] = cy * local[..., 0] - sy * local[..., 1] + centers[:, None, 0]
    out[..., 1] = sy * local[..., 0] + cy * local[..., 1] + centers[:, None, 1]
    out[..., 2] = local[..., 2] + centers[:, None, 2]
    return out


def build_world(scenario: Scenario) -> World:
    """The world of ``scenario``; the same scenario (and seed) always gives the same world."""
    return World(scenario)
