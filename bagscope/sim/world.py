"""The simulated world: a road with scenery, an ego car driving it, and other road users.

Everything is laid out in *road coordinates* ``(x, u)`` (see :mod:`bagscope.sim.road`), placed by
:mod:`bagscope.sim.layout` and moved by :mod:`bagscope.sim.tracks`; this module holds it together
and answers the sensors' questions: where is the ego, who is around, and what does each ray hit.

Scenery (boxes for buildings, poles, barriers, trees) is sorted along the road once, so a ray
cast takes the boxes in reach as one slice and puts them, with the actors, into one small Open3D
``RaycastingScene``. The ground is the plane z = 0, intersected analytically; its surface class
is decided from the hit point (:mod:`bagscope.sim.surfaces`). A camera gets its scene already
expressed in its own frame (:meth:`World.camera_view`), with per-triangle surface tables, so a
frame costs one Embree call on constant rays and a few gathers rather than per-pixel geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import open3d as o3d
import open3d.core as o3c

from bagscope.sim.boxes import BOX_TRIS, BOX_VERTS, TRIS_PER_BOX, box_corners, slab
from bagscope.sim.errors import SimError
from bagscope.sim.layout import LAYOUTS, Layout
from bagscope.sim.road import PROFILES, Road, yaw_matrices
from bagscope.sim.surfaces import (
    CLASS_REFL,
    CLASS_RGB,
    GROUND,
    SCENERY_CLASSES,
    SCENERY_ID,
    hash01,
)
from bagscope.sim.tracks import ACTOR_CLASSES, ACTOR_ID_BASE, ACTOR_RANGE_M, Tracks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bagscope.sim.config import Scenario

__all__ = [
    "ACTOR_ID_BASE",
    "ACTOR_RANGE_M",
    "PALETTE_GLASS",
    "PALETTE_TYRE",
    "PALETTE_WINDOW",
    "SCENERY_CLASSES",
    "ActorState",
    "CameraView",
    "EgoState",
    "RayHits",
    "World",
    "build_world",
]

# Scenery farther along the road than this from the rays' origins is left out of a ray cast.
_SCENERY_REACH_M = 400.0
# Half the longest box (a building, a bus, a barrier segment) and then some: a box whose centre
# is this much beyond a sensor's range can still reach into it.
_LONGEST_BOX_M = 25.0
# Sun direction and the light model the camera shades with (ambient + Lambert).
_SUN = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
_AMBIENT, _DIFFUSE = 0.5, 0.6
# Palette rows after the scenery classes: window and car glass, tyres, then one per box/actor.
PALETTE_WINDOW = len(SCENERY_CLASSES)
PALETTE_GLASS = PALETTE_WINDOW + 1
PALETTE_TYRE = PALETTE_WINDOW + 2
_PALETTE_BOXES = PALETTE_WINDOW + 3
_PALETTE_EXTRA = np.array([[0.16, 0.2, 0.26], [0.08, 0.1, 0.13], [0.05, 0.05, 0.05]], np.float32)
_SOFT = np.array([ACTOR_CLASSES.index(c) for c in ("pedestrian", "cyclist")])
# CameraView.kind values: how a triangle's look varies across it.
KIND_PLAIN, KIND_FACADE, KIND_VEHICLE = 0, 1, 2


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Near:
    """The boxes one ray cast needs: box slots ``[0, n_static)`` are scenery boxes starting at
    ``static_lo``, the rest are ``actors`` (track indices); ``moving`` marks swept slots;
    ``verts`` are the 8 corners of every slot in odom."""

    verts: np.ndarray
    static_lo: int
    n_static: int
    actors: np.ndarray
    moving: np.ndarray

    @property
    def count(self) -> int:
        return self.n_static + int(self.actors.size)


@dataclass(frozen=True, slots=True, kw_only=True)
class _FrameScene:
    """The per-call Embree scene over the boxes of ``near``; ``swept`` if any box is a sweep."""

    scene: o3d.t.geometry.RaycastingScene
    near: _Near
    swept: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraView:
    """What one camera sees at one instant, with the scene already in the camera's frame.

    Casting the camera's constant per-pixel rays (origin 0) into ``scene`` needs no per-frame
    ray array. Tables are indexed by triangle id plus two rows, ``sky`` (no hit) and ``ground``
    (the plane z = 0, painted per pixel by the renderer): object id, palette index, sun and
    ambient light (facing the camera, so the winding does not matter), ``kind``
    (``KIND_PLAIN``, ``KIND_FACADE``, ``KIND_VEHICLE``), ``along`` — for facades, (a, b) with the
    horizontal position along the wall ``s = t * a·d + b`` for a ray of direction ``d`` (camera
    frame) hitting at distance ``t`` —, ``height`` (vehicles' roof height) and ``plane``: (4, rows)
    normal and offset of each row's plane in the camera frame (``t = offset / normal·d``), so
    pixels between samples that hit one face can be intersected without Embree.
    """

    scene: o3d.t.geometry.RaycastingScene
    sky: int
    ground: int
    object_id: np.ndarray
    index: np.ndarray
    shade: np.ndarray
    kind: np.ndarray
    along: np.ndarray
    height: np.ndarray
    plane: np.ndarray


# ------------------------------------------------------------------------------------- world
class World:
    """A seeded, deterministic drive: ego motion, actors over time, and ray casting into both."""

    def __init__(self, scenario: Scenario) -> None:
        if scenario.name not in PROFILES:
            msg = f"unknown scenario {scenario.name!r}; choose one of {', '.join(PROFILES)}"
            raise SimError(msg)
        self.scenario = scenario
        rng = np.random.default_rng(scenario.seed)
        self._road = Road(PROFILES[scenario.name], rng)
        lay = Layout(scenario, self._road, rng)
        LAYOUTS[scenario.name](lay)
        self._ground_fn = GROUND[scenario.name]
        self._crosswalks = np.sort(np.array(lay.crosswalks, np.float32))
        self._tracks = Tracks(lay.tracks, self._road)
        boxes = np.array(lay.boxes, np.float64).reshape(-1, 12)
        boxes = boxes[np.argsort(boxes[:, 1], kind="stable")]
        self._box_cls = boxes[:, 0].astype(np.int32)
        self._box_refl = boxes[:, 8].astype(np.float32)
        self._box_rgb = boxes[:, 9:12].astype(np.float32)
        self._add_boxes(boxes)
        self._palette_tracks = _PALETTE_BOXES + boxes.shape[0]
        self._palette = np.concatenate(
            [CLASS_RGB, _PALETTE_EXTRA, self._box_rgb, self._tracks.color.astype(np.float32)]
        )
        self._palette.flags.writeable = False
        self._vehicle = ~np.isin(self._tracks.cls, _SOFT)

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
        corners = box_corners(self._static_center, self._static_yaw, size)
        self._static_verts = np.ascontiguousarray(corners.reshape(-1, 3), np.float32)
        most = boxes.shape[0] + self._tracks.n
        tris = BOX_TRIS[None] + 8 * np.arange(most, dtype=np.uint32)[:, None, None]
        self._tris = np.ascontiguousarray(tris.reshape(-1, 3))

    # -- ego
    def ego(self, t_ns: int) -> EgoState:
        """The ego at ``t_ns`` (nanoseconds since the start of the drive)."""
        # scalar in, scalars out: TF, odometry and IMU ask 200 times a simulated second
        k = self._road.ego_kinematics(np.array(t_ns * 1e-9))
        c, s = math.cos(float(k["yaw"])), math.sin(float(k["yaw"]))
        pose = np.array(
            [
                [c, -s, 0.0, float(k["x"])],
                [s, c, 0.0, float(k["y"])],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
        return EgoState(
            t_ns=int(t_ns),
            pose=pose,
            linear_velocity=np.array([float(k["speed"]), 0.0, 0.0]),
            angular_velocity=np.array([0.0, 0.0, float(k["yaw_rate"])]),
            linear_acceleration=np.array([float(k["accel_x"]), float(k["accel_y"]), 0.0]),
        )

    def ego_poses(self, t_ns: np.ndarray) -> np.ndarray:
        """(K, 4, 4) base_link poses in odom at each time: per-column lidar motion."""
        k = self._road.ego_kinematics(np.asarray(t_ns, np.float64) * 1e-9)
        return yaw_matrices(k["yaw"], np.stack([k["x"], k["y"], np.zeros_like(k["x"])], -1))

    # -- actors
    def actors(
        self, t_ns: int, *, within_m: float = ACTOR_RANGE_M, only: Iterable[int] | None = None
    ) -> list[ActorState]:
        """Road users (moving and parked) within ``within_m`` of the ego at ``t_ns``; with
        ``only``, just those of these track ids."""
        tr = self._tracks
        if only is None:
            idx = np.arange(tr.n)
        else:
            wanted = np.fromiter(only, np.int64) - ACTOR_ID_BASE
            idx = np.unique(wanted[(wanted >= 0) & (wanted < tr.n)])
        if idx.size == 0:
            return []
        center, yaw, vel = tr.state(idx, np.full(idx.size, t_ns * 1e-9))
        ego_xy = self.ego(t_ns).pose[:2, 3]
        near = np.flatnonzero(np.hypot(*(center[:, :2] - ego_xy).T) <= within_m)
        poses = yaw_matrices(yaw[near], center[near])
        return [
            ActorState(
                track_id=ACTOR_ID_BASE + int(idx[j]),
                cls=ACTOR_CLASSES[tr.cls[idx[j]]],
                pose=poses[n],
                size=tr.size[idx[j]].copy(),
                velocity=vel[j],
            )
            for n, j in enumerate(near)
        ]

    def object_class(self, object_id: int) -> str:
        """Class name of an ``object_id`` from :class:`RayHits` or a lidar point."""
        if 0 <= object_id < len(SCENERY_CLASSES):
            return SCENERY_CLASSES[object_id]
        i = object_id - ACTOR_ID_BASE
        if 0 <= i < self._tracks.n:
            return ACTOR_CLASSES[int(self._tracks.cls[i])]
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
        self,
        rays: np.ndarray,
        t_ns: int,
        *,
        ray_times_ns: np.ndarray | None = None,
        reach_m: float | None = None,
    ) -> RayHits:
        """:meth:`raycast` for sensors that already hold a C-contiguous float32 (N, 6) array
        of origins and unit directions: it skips the copies that matter at sensor rates.

        One Embree scene per call holds the scenery near the rays and the actors: exact boxes
        when all rays share a time; otherwise each moving actor is the box it sweeps over the
        rays' time span, and rays that hit a sweep are intersected exactly (slab method) with
        the actor where it was at that ray's own time. With ``reach_m``, hits farther than
        that may be missed (a lidar discards them anyway) and the cast is cheaper.
        """
        frame = self._frame_scene(rays, t_ns, ray_times_ns, reach_m=reach_m)
        near = frame.near
        res = frame.scene.cast_rays(o3c.Tensor.from_numpy(rays), nthreads=1)
        dist = res["t_hit"].numpy()
        normal = res["primitive_normals"].numpy()
        pid = res["primitive_ids"].numpy()
        # a miss has pid 2**32 - 1: its "slot" lands past the last one and reads as -1
        slot = (np.minimum(pid, near.count * TRIS_PER_BOX) // TRIS_PER_BOX).astype(np.int32)
        slot[slot == near.count] = -1
        if frame.swept and ray_times_ns is not None:
            self._resolve_sweeps(frame, rays, ray_times_ns, hits=(dist, normal, slot))
        # The ground is the plane z = 0, intersected analytically: cheaper than letting Embree
        # walk grazing rays across it, and exact.
        oz, dz = rays[:, 2], rays[:, 5]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = oz / -dz
        on_ground = np.flatnonzero((dz < 0) & (t_ground < dist))
        dist[on_ground] = t_ground[on_ground]
        normal[on_ground, 0] = 0.0
        normal[on_ground, 1] = 0.0
        normal[on_ground, 2] = 1.0
        slot[on_ground] = -1
        # per-slot tables, then one gather per output
        n_static = near.n_static
        inst = np.arange(near.static_lo, near.static_lo + n_static)
        table_obj = np.concatenate(
            [self._box_cls[inst], ACTOR_ID_BASE + near.actors.astype(np.int32), [0]]
        ).astype(np.int32)
        table_refl = np.concatenate(
            [self._box_refl[inst], self._tracks.refl[near.actors].astype(np.float32), [0.0]]
        ).astype(np.float32)
        table_scen = np.concatenate(
            [inst, np.full(near.actors.size + 1, -1)]  # slot -1 reads the last row
        ).astype(np.int32)
        obj = table_obj[slot]
        refl = table_refl[slot]
        scen = table_scen[slot]
        if on_ground.size:
            t = dist[on_ground]
            gx = np.take(rays[:, 0], on_ground) + np.take(rays[:, 3], on_ground) * t
            gy = np.take(rays[:, 1], on_ground) + np.take(rays[:, 4], on_ground) * t
            cls, texture = self.paint(gx, gy)
            obj[on_ground] = cls
            refl[on_ground] = CLASS_REFL[cls] * (np.float32(0.85) + np.float32(0.3) * texture)
        return RayHits(
            distance=dist, normal=normal, object_id=obj, reflectivity=refl, scenery_index=scen
        )

    def paint(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground class and a 10 cm noise texture in [0, 1) at odom points on the z=0 plane."""
        # float32 throughout: centimetres are plenty for paint and it halves the cost.
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        u = y - self._road.c(x).astype(np.float32)
        cls = self._ground_fn(x, u, self._crosswalks)
        ten = np.float32(10.0)
        texture = hash01(np.floor(x * ten).astype(np.int32), np.floor(y * ten).astype(np.int32))
        return cls, texture

    def _near(
        self,
        o_mid: np.ndarray,
        *,
        spread: float,
        t_lo: float,
        t_hi: float,
        reach_m: float | None = None,
    ) -> _Near:
        """Scenery within reach of ``o_mid`` (± ``spread``) and the actors near it; moving
        actors as the box they sweep over ``[t_lo, t_hi]`` (seconds) when that is not empty.

        ``reach_m`` (a sensor's range) leaves out what no ray can hit within it: Embree's cost
        per ray grows with the boxes a ray passes on its way to nothing.
        """
        scenery = _SCENERY_REACH_M if reach_m is None else reach_m + _LONGEST_BOX_M
        lo, hi = np.searchsorted(
            self._static_x, [o_mid[0] - scenery - spread, o_mid[0] + scenery + spread]
        )
        tr = self._tracks
        swept = t_hi > t_lo
        idx = np.arange(tr.n)
        center, yaw, _ = tr.state(idx, np.full(tr.n, 0.5 * (t_lo + t_hi)))
        reach = (ACTOR_RANGE_M if reach_m is None else reach_m + _LONGEST_BOX_M) + spread
        sel = np.flatnonzero(np.hypot(*(center[:, :2] - o_mid[:2]).T) <= reach)
        corners = box_corners(center[sel], yaw[sel], tr.size[sel])
        moving = tr.moving[sel] if swept else np.zeros(sel.size, bool)
        if moving.any():
            mv = sel[moving]
            samples = [corners[moving]]
            for t in (t_lo, t_hi):
                c2, y2, _ = tr.state(mv, np.full(mv.size, t))
                samples.append(box_corners(c2, y2, tr.size[mv]))
            stack = np.concatenate(samples, axis=1)
            low, high = stack.min(axis=1) - 0.05, stack.max(axis=1) + 0.05
            corners[moving] = low[:, None, :] + (BOX_VERTS[None] + 0.5) * (high - low)[:, None, :]
        verts = np.concatenate(
            [self._static_verts[8 * lo : 8 * hi], corners.reshape(-1, 3).astype(np.float32)]
        )
        n_static = int(hi - lo)
        return _Near(
            verts=verts,
            static_lo=int(lo),
            n_static=n_static,
            actors=sel,
            moving=np.concatenate([np.zeros(n_static, bool), moving]),
        )

    def _embree(self, verts: np.ndarray, count: int) -> o3d.t.geometry.RaycastingScene:
        scene = o3d.t.geometry.RaycastingScene()
        if count:
            scene.add_triangles(
                o3c.Tensor.from_numpy(np.ascontiguousarray(verts, np.float32)),
                o3c.Tensor.from_numpy(self._tris[: count * TRIS_PER_BOX]),
            )
        return scene

    def _frame_scene(
        self,
        rays: np.ndarray,
        t_ns: int,
        ray_times_ns: np.ndarray | None,
        *,
        reach_m: float | None = None,
    ) -> _FrameScene:
        """Scenery within reach of the rays' origins plus the actors, as one Embree scene."""
        some = rays[:: max(1, rays.shape[0] // 512), :3]
        spread = float(np.ptp(some, axis=0).max()) if some.shape[0] else 0.0
        o_mid = some.mean(axis=0)
        if ray_times_ns is None:
            t_lo = t_hi = t_ns * 1e-9
        else:
            t_lo, t_hi = float(ray_times_ns.min()) * 1e-9, float(ray_times_ns.max()) * 1e-9
        near = self._near(o_mid, spread=spread, t_lo=t_lo, t_hi=t_hi, reach_m=reach_m)
        return _FrameScene(
            scene=self._embree(near.verts, near.count), near=near, swept=bool(near.moving.any())
        )

    def _resolve_sweeps(
        self,
        frame: _FrameScene,
        rays: np.ndarray,
        ray_times_ns: np.ndarray,
        *,
        hits: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Replace hits on moving actors' sweeps by exact hits at each ray's own time."""
        dist, normal, slot = hits
        near = frame.near
        cand = np.flatnonzero(near.moving[slot] & (slot >= 0))
        if cand.size == 0:
            return
        t_rays = ray_times_ns[cand] * 1e-9
        hit_t, hit_n = self._slab_slots(
            near, np.take(rays, cand, axis=0), slot=slot[cand], t=t_rays
        )
        best = slot[cand]
        missed = np.flatnonzero(~np.isfinite(hit_t))
        if missed.size:
            # The sweep was hit but not the actor: every box along the ray, exactly.
            m_rays = np.take(rays, cand[missed], axis=0)
            lx = frame.scene.list_intersections(o3c.Tensor.from_numpy(m_rays), nthreads=1)
            pair_ray = lx["ray_ids"].numpy().astype(np.int64)
            pair_slot = (lx["primitive_ids"].numpy() // TRIS_PER_BOX).astype(np.int64)
            size = near.moving.size
            key = np.unique(pair_ray * size + pair_slot)
            pair_ray, pair_slot = key // size, key % size
            hit_t[missed], best[missed] = np.inf, -1
            if pair_ray.size:
                p_t, p_n = self._slab_slots(
                    near,
                    np.take(m_rays, pair_ray, axis=0),
                    slot=pair_slot,
                    t=t_rays[missed[pair_ray]],
                )
                order = np.lexsort((p_t, pair_ray))
                first = order[np.r_[True, pair_ray[order][1:] != pair_ray[order][:-1]]]
                which = missed[pair_ray[first]]
                hit_t[which] = p_t[first]
                hit_n[which] = np.take(p_n, first, axis=0)
                best[which] = np.where(np.isfinite(p_t[first]), pair_slot[first], -1)
        dist[cand] = hit_t
        for i in range(3):
            normal[cand, i] = hit_n[:, i]
        slot[cand] = best

    def _slab_slots(
        self, near: _Near, rays: np.ndarray, *, slot: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact hits of ``rays`` with the boxes in ``slot`` (scenery or actor at time ``t``)."""
        n = rays.shape[0]
        dist, normal = np.empty(n), np.empty((n, 3))
        static = slot < near.n_static
        for group, is_static in ((np.flatnonzero(static), True), (np.flatnonzero(~static), False)):
            if not group.size:
                continue
            if is_static:
                s = slot[group] + near.static_lo
                center = np.take(self._static_center, s, axis=0)
                yaw = self._static_yaw[s]
                half = np.take(self._static_half, s, axis=0)
            else:
                a = near.actors[slot[group] - near.n_static]
                tg = t[group]
                # rays come in firing order: one state per run of (actor, time), not per ray
                change = np.flatnonzero((a[1:] != a[:-1]) | (tg[1:] != tg[:-1])) + 1
                first = np.concatenate([[0], change])
                run = np.zeros(a.size, np.intp)
                run[change] = 1
                np.cumsum(run, out=run)
                c_run, y_run, _ = self._tracks.state(a[first], tg[first])
                center = np.take(c_run, run, axis=0)
                yaw = y_run[run]
                half = np.take(self._tracks.size, a, axis=0) / 2
            d, nrm = slab(np.take(rays, group, axis=0), center=center, yaw=yaw, half=half)
            dist[group] = d
            for k in range(3):
                normal[group, k] = nrm[:, k]
        return dist, normal

    # -- the camera's view
    @property
    def palette(self) -> np.ndarray:
        """(K, 3) float32 colours that :attr:`CameraView.index` points into."""
        return self._palette

    def camera_view(self, pose: np.ndarray, t_ns: int) -> CameraView:
        """The scene around a camera with pose ``pose`` (4x4, camera -> odom) at ``t_ns``.

        Procedural detail — asphalt grain, facade windows, car glass and tyres — is what
        gives JPEG and image-quality analyzers real structure to chew on; the per-triangle
        tables here let the renderer add it with a few gathers over the pixels concerned.
        """
        rot, origin = pose[:3, :3], pose[:3, 3]
        t = t_ns * 1e-9
        near = self._near(origin, spread=0.0, t_lo=t, t_hi=t)
        count = near.count
        # odom -> camera: p_cam = R^T (p - o), as rows (p - o) @ R
        cam_verts = (near.verts.astype(np.float64) - origin) @ rot
        tri = self._tris[: count * TRIS_PER_BOX]
        v = near.verts.astype(np.float64)[tri]  # (T, 3, 3) in odom
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        # light from the side facing the camera, whatever the winding
        facing = np.einsum("ij,ij->i", n, v[:, 0] - origin) > 0
        light = np.where(facing, -1.0, 1.0) * (n @ _SUN)
        slot = np.arange(tri.shape[0]) // TRIS_PER_BOX
        static = slot < near.n_static
        inst = slot[static] + near.static_lo
        actor = near.actors[slot[~static] - near.n_static]
        # two rows past the triangles: sky, and ground two further on, so that ``row & ~1``
        # names a box face (its two triangles) and leaves sky and ground apart
        rows = tri.shape[0] + 3
        sky, ground = rows - 3, rows - 1
        obj = np.zeros(rows, np.int32)
        index = np.zeros(rows, np.int32)
        kind = np.zeros(rows, np.int8)
        height = np.zeros(rows, np.float32)
        along = np.zeros((rows, 4), np.float32)
        shade = np.zeros(rows, np.float32)
        shade[:sky] = _AMBIENT + _DIFFUSE * np.maximum(light, 0.0)
        shade[ground] = _AMBIENT + _DIFFUSE * max(float(_SUN[2]), 0.0)
        obj[ground] = index[ground] = SCENERY_ID["ground"]
        sidx, aidx = np.flatnonzero(static), np.flatnonzero(~static)
        obj[sidx] = self._box_cls[inst]
        index[sidx] = inst + _PALETTE_BOXES
        obj[aidx] = ACTOR_ID_BASE + actor
        index[aidx] = actor + self._palette_tracks
        vehicle = aidx[self._vehicle[actor]]
        kind[vehicle] = KIND_VEHICLE
        height[vehicle] = self._tracks.size[actor[self._vehicle[actor]], 2]
        wall = sidx[(obj[sidx] == SCENERY_ID["building"]) & (np.abs(n[sidx, 2]) < 0.5)]
        if wall.size:
            kind[wall] = KIND_FACADE
            e = np.stack([-n[wall, 1], n[wall, 0], np.zeros(wall.size)], axis=-1)
            e /= np.linalg.norm(e, axis=1, keepdims=True)
            center = self._static_center[slot[wall] + near.static_lo]
            along[wall, :3] = e @ rot
            along[wall, 3] = np.einsum("ij,ij->i", e, origin - center)
        # planes in the camera frame: a ray d meets row r's plane at t = offset / (normal . d)
        plane = np.zeros((rows, 4))
        plane[:sky, :3] = n @ rot
        plane[:sky, 3] = np.einsum("ij,ij->i", plane[:sky, :3], cam_verts[tri[:, 0]])
        plane[sky : ground + 1] = (0.0, 0.0, 1.0, np.inf)  # nothing, however far
        plane[ground, :3] = rot[2]  # world up, seen from the camera
        plane[ground, 3] = -origin[2]
        return CameraView(
            scene=self._embree(cam_verts, count),
            sky=sky,
            ground=ground,
            object_id=obj,
            index=index,
            shade=shade,
            kind=kind,
            along=along,
            height=height,
            plane=np.ascontiguousarray(plane.T, np.float32),
        )


def build_world(scenario: Scenario) -> World:
    """The world of ``scenario``; the same scenario (and seed) always gives the same world."""
    return World(scenario)
