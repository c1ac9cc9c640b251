"""Seeded placement of scenery boxes and actor trajectories, one recipe per scenario."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bagscope.sim.config import CLASS_SIZES, Scenario
from bagscope.sim.road import EGO_SIZE, Road
from bagscope.sim.surfaces import SCENERY_ID
from bagscope.sim.tracks import ACTOR_RANGE_M, Tracks

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LAYOUTS", "Layout"]


class Layout:
    """Random but seeded placement of scenery boxes and actor trajectories for one scenario."""

    def __init__(self, scenario: Scenario, road: Road, rng: np.random.Generator) -> None:
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
        self.boxes.append((SCENERY_ID[cls], x, u, z, *size, yaw_rel, refl, *color))

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
        tracks = Tracks(self.tracks, road) if self.tracks else None
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
        tracks: Tracks | None,
        movers: np.ndarray,
        window: tuple[float, float],
    ) -> bool:
        road = self.road
        t = np.arange(window[0], window[1], 0.1)
        cand = Tracks([row], road)
        cx, cu, chx, chu = cand.footprint(np.zeros(len(t), np.int64), t)
        ex = road.ego_x(t)
        margin = 0.6
        if np.any(
            (np.abs(ex - cx) < chx + EGO_SIZE[0] / 2 + margin)
            & (np.abs(road.ego_u(ex) - cu) < chu + EGO_SIZE[1] / 2 + margin)
        ):
            return False
        if tracks is None or movers.size == 0:
            return True
        idx = np.broadcast_to(movers[:, None], (movers.size, t.size))
        tt = np.broadcast_to(t[None, :], idx.shape)
        ax, au, ahx, ahu = tracks.footprint(idx, tt)
        hit = (np.abs(ax - cx) < ahx + chx + margin) & (np.abs(au - cu) < ahu + chu + margin)
        return not bool(np.any(hit))


def _layout_urban(lay: Layout) -> None:
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


def _layout_highway(lay: Layout) -> None:
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


def _layout_parking(lay: Layout) -> None:
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


LAYOUTS: dict[str, Callable[[Layout], None]] = {
    "urban": _layout_urban,
    "highway": _layout_highway,
    "parking": _layout_parking,
}
