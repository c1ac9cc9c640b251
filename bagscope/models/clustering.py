"""Euclidean clustering of obstacle points into upright boxes: a classical lidar detector.

Points (normally the non-ground points of ``ground_segmentation``) are grouped with DBSCAN
(Open3D's). Each cluster gets the rectangle whose edges its x/y points lie on (L-shape
fitting by closeness: the sum of 1 / distance to the nearest edge), searched on a 3 degree grid
and refined to 0.5 degree for every cluster at once. A lidar sees one or two faces of a car,
and the minimum-area rectangle of such an L tilts towards its diagonal (20 degrees off at the
median on 32-beam drives, where closeness is 0.2 degrees off); length along the longer side, z
from the points' extent.

A size rule then names the class (pedestrian, cyclist, motorcycle, car, van, truck, bus) and
rejects what no object is (walls, buildings, poles, trees, kerbs: too long, too tall, too low,
one column thin, or floating more than ``max_bottom`` above the lowest obstacle points).
A lidar sees only an object's near faces, so a vehicle's box is grown to its class's typical
length and width *away from the sensor* (the hidden part is behind the visible one); without it a
car seen from behind would be a 10 cm thin box whose centre is 2 m off. ``score`` grows with the
cluster's point count.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import points_from
from bagscope.pipeline.shards import ColumnShards
from bagscope.pipeline.stage import Check, Metrics, StageResult
from bagscope.replay.decode.boxes import Boxes

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

__all__ = ["TYPICAL_SIZES", "Clustering", "boxes_from_clusters", "classify", "dbscan"]

# (length, width, height) m of each class, as driving data sets average them: the sizes a
# partly seen vehicle is grown to.
TYPICAL_SIZES: dict[str, tuple[float, float, float]] = {
    "car": (4.5, 1.85, 1.5),
    "van": (5.1, 2.0, 2.1),
    "truck": (8.5, 2.5, 3.3),
    "bus": (12.0, 2.55, 3.2),
    "pedestrian": (0.6, 0.6, 1.75),
    "cyclist": (1.8, 0.6, 1.7),
    "motorcycle": (2.2, 0.8, 1.5),
}
VEHICLES = frozenset({"car", "van", "truck", "bus"})
_COARSE = np.radians(np.arange(0.0, 90.0, 3.0))
_FINE = np.radians(np.arange(-3.0, 3.01, 0.5))
_SCORE_HALF = 15.0  # a cluster of this many points scores 0.5
_MIN_LENGTH = 0.15  # a cluster thinner than this both ways is one column: a pole, a trunk


def dbscan(xyz: NDArray[np.float32], *, eps: float, min_points: int) -> NDArray[np.int64]:
    """Open3D DBSCAN labels (-1: noise). Open3D is imported here: it costs a second."""
    if len(xyz) == 0:
        return np.zeros(0, dtype=np.int64)
    import open3d as o3d

    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(np.asarray(xyz, dtype=np.float64))
    return np.asarray(cloud.cluster_dbscan(eps=eps, min_points=min_points), dtype=np.int64)


def _extents(
    xy: NDArray[np.float64], starts: NDArray[np.intp], angles: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """Per cluster and angle (rows: clusters, columns: angles; ``angles`` (N, A) per point):
    min and max of the points along the rotated u and v axes."""
    c, s = np.cos(angles), np.sin(angles)
    u = xy[:, :1] * c + xy[:, 1:] * s
    v = -xy[:, :1] * s + xy[:, 1:] * c
    return (
        np.minimum.reduceat(u, starts),
        np.maximum.reduceat(u, starts),
        np.minimum.reduceat(v, starts),
        np.maximum.reduceat(v, starts),
    )


_CLOSE_FLOOR_M = 0.01  # points nearer an edge than this all count the same (sensor noise)


def _closeness(
    xy: NDArray[np.float64],
    starts: NDArray[np.intp],
    *,
    member: NDArray[np.intp],
    angles: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per cluster and angle, how well the points hug the rectangle's edges (L-shape fitting,
    Zhang et al. 2017): the sum over points of 1 / distance to the nearest edge.

    A lidar sees one or two sides of a car; the minimum-area rectangle of such an L tilts
    towards its diagonal, while the rectangle whose edges the points lie *on* is the car."""
    c, s = np.cos(angles), np.sin(angles)
    u = xy[:, :1] * c + xy[:, 1:] * s
    v = -xy[:, :1] * s + xy[:, 1:] * c
    u0, u1 = np.minimum.reduceat(u, starts), np.maximum.reduceat(u, starts)
    v0, v1 = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    du = np.minimum(u - u0[member], u1[member] - u)
    dv = np.minimum(v - v0[member], v1[member] - v)
    near = np.maximum(np.minimum(du, dv), _CLOSE_FLOOR_M)
    score: NDArray[np.float64] = np.add.reduceat(1.0 / near, starts)
    return score


def boxes_from_clusters(
    xyz: NDArray[np.float32], labels: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """(centres (C, 3), sizes (C, 3) length >= width, yaws (C,) in (-pi/2, pi/2], point
    counts (C,)) of the minimum-area upright box of each cluster label >= 0, in label order."""
    keep = labels >= 0
    if not keep.any():
        z = np.zeros((0, 3))
        return z, z.copy(), np.zeros(0), np.zeros(0, dtype=np.int64)
    lab = labels[keep]
    order = np.argsort(lab, kind="stable")
    pts = np.asarray(xyz, dtype=np.float64)[keep][order]
    sorted_lab = lab[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_lab[1:] != sorted_lab[:-1])))
    counts = np.diff(np.append(starts, len(pts)))
    # centre each cluster first: rotations of small offsets keep full precision
    mean = np.add.reduceat(pts[:, :2], starts, axis=0) / counts[:, None]
    member = np.repeat(np.arange(len(starts)), counts)
    xy = pts[:, :2] - mean[member]
    coarse = np.broadcast_to(_COARSE, (len(xy), len(_COARSE)))
    best = _COARSE[np.argmax(_closeness(xy, starts, member=member, angles=coarse), axis=1)]
    fine = best[:, None] + _FINE[None, :]
    pick = np.argmax(_closeness(xy, starts, member=member, angles=fine[member]), axis=1)
    u0, u1, v0, v1 = _extents(xy, starts, fine[member])
    rows = np.arange(len(starts))
    yaw = fine[rows, pick]
    du, dv = (u1 - u0)[rows, pick], (v1 - v0)[rows, pick]
    um, vm = (u1 + u0)[rows, pick] / 2, (v1 + v0)[rows, pick] / 2
    c, s = np.cos(yaw), np.sin(yaw)
    cx = mean[:, 0] + um * c - vm * s
    cy = mean[:, 1] + um * s + vm * c
    swap = du < dv
    length = np.where(swap, dv, du)
    width = np.where(swap, du, dv)
    yaw = np.where(swap, yaw + math.pi / 2, yaw)
    yaw = (yaw + math.pi / 2) % math.pi - math.pi / 2  # (-pi/2, pi/2]: a box is symmetric
    zmin = np.minimum.reduceat(pts[:, 2], starts)
    zmax = np.maximum.reduceat(pts[:, 2], starts)
    centers = np.stack([cx, cy, (zmin + zmax) / 2], axis=1)
    sizes = np.stack([length, width, zmax - zmin], axis=1)
    return centers, sizes, yaw, counts.astype(np.int64)


def classify(length: float, width: float, height: float, *, face_on: bool) -> str:
    """A class guess from a cluster's measured size (length >= width). Heights are as the
    points show them (the ground stage removes the lowest ~0.2 m); ``face_on``: the cluster's
    long side faces the sensor, so a thin one is a vehicle's rear or front, not a bicycle."""
    if height > 2.6:
        return "bus" if length >= 9.5 else "truck"
    if height > 1.8:
        if length <= 1.1:
            return "pedestrian"
        return "van" if length <= 6.5 else "truck"
    if height < 1.0:
        return ""
    if length <= 1.1:
        return "pedestrian"
    if width < 0.5 and length <= 2.5 and not (face_on and length >= 1.4):
        return "cyclist" if length < 2.0 else "motorcycle"
    if length <= 6.5:
        return "car"
    return "truck"


def _number(value: Any, what: str, *, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        msg = f"clustering: {what} must be {kind}, got {value!r}"
        raise BagscopeError(msg)
    if not math.isfinite(value):
        msg = f"clustering: {what} must be finite, got {value!r}"
        raise BagscopeError(msg)
    return value if integer else float(value)


class Clustering(ColumnShards):
    """DBSCAN clusters of obstacle points as class-labelled upright boxes (:class:`Boxes`)."""

    # per-frame (per-message) columns: a long log's time shards are merged by joining them
    shard_fields = ("_t", "_clusters", "_boxes", "_classes")

    def __init__(
        self,
        *,
        name: str | None = None,
        input: str | None = "ground_segmentation",
        eps: float = 0.5,
        min_points: int = 3,
        max_points: int = 20_000,
        min_height: float = 0.5,
        max_height: float = 4.5,
        max_length: float = 14.0,
        max_width: float = 3.5,
        max_bottom: float | None = 1.0,
        keep_unknown: bool = False,
        complete: bool = True,
    ) -> None:
        self.name = name or "clustering"
        self.input = input
        self.eps = _number(eps, "eps")
        self.min_points = _number(min_points, "min_points", integer=True)
        self.max_points = _number(max_points, "max_points", integer=True)
        if self.max_points < self.min_points:
            msg = f"clustering: max_points ({max_points}) is below min_points ({min_points})"
            raise BagscopeError(msg)
        self.min_height = _number(min_height, "min_height")
        self.max_height = _number(max_height, "max_height")
        if self.max_height <= self.min_height:
            msg = f"clustering: max_height ({max_height}) must exceed min_height ({min_height})"
            raise BagscopeError(msg)
        self.max_length = _number(max_length, "max_length")
        self.max_width = _number(max_width, "max_width")
        self.max_bottom = None if max_bottom is None else _number(max_bottom, "max_bottom")
        self.keep_unknown = bool(keep_unknown)
        self.complete = bool(complete)
        self._t: list[int] = []
        self._clusters: list[int] = []
        self._boxes: list[int] = []
        self._classes: Counter[str] = Counter()

    def detect(self, xyz: NDArray[np.float32], *, stamp_ns: int, frame_id: str) -> Boxes:
        """The boxes of one cloud's obstacle points (see the module doc)."""
        labels = dbscan(xyz, eps=self.eps, min_points=self.min_points)
        n_clusters = int(labels.max()) + 1 if len(labels) else 0
        if n_clusters:
            labels = self._prefilter(xyz, labels, n_clusters)
        centers, sizes, yaws, counts = boxes_from_clusters(xyz, labels)
        self._clusters.append(n_clusters)
        bottom = centers[:, 2] - sizes[:, 2] / 2
        ok = (
            (sizes[:, 0] >= _MIN_LENGTH)
            & (sizes[:, 2] >= self.min_height)
            & (sizes[:, 2] <= self.max_height)
            & (sizes[:, 0] <= self.max_length)
            & (sizes[:, 1] <= self.max_width)
        )
        if self.max_bottom is not None and len(xyz):
            # objects stand on the ground; the lowest obstacle points (bottoms of cars and
            # walls, just above the removed ground) tell where it is, and tree crowns, signs and
            # overhangs float above it. The allowance grows 5 % with range for gentle slopes.
            base = float(np.quantile(xyz[:, 2], 0.02))
            ok &= bottom <= base + self.max_bottom + 0.05 * np.hypot(centers[:, 0], centers[:, 1])
        centers, sizes, yaws, counts = centers[ok], sizes[ok], yaws[ok], counts[ok]
        names: list[str] = []
        for i in range(len(centers)):
            length, width, height = sizes[i]
            axis = np.array([math.cos(yaws[i]), math.sin(yaws[i])])
            ray = centers[i, :2] / max(float(np.hypot(*centers[i, :2])), 1e-6)
            face_on = abs(float(axis @ ray)) < 0.5
            label = classify(float(length), float(width), float(height), face_on=face_on)
            if label in VEHICLES and width < 0.5 and face_on:
                # a single face seen head-on is the vehicle's width: its length runs away
                sizes[i, :2] = (width, length)
                yaws[i] = (yaws[i] + math.pi) % math.pi - math.pi / 2
            if self.complete and label in VEHICLES:
                self._grow(
                    centers[i], size=sizes[i], yaw=float(yaws[i]), typical=TYPICAL_SIZES[label]
                )
            names.append(label or "unknown")
        chosen = np.array([self.keep_unknown or n != "unknown" for n in names], dtype=bool)
        scores = counts / (counts + _SCORE_HALF)
        boxes = Boxes.build(
            stamp_ns=stamp_ns,
            frame_id=frame_id,
            centers=centers[chosen],
            sizes=sizes[chosen],
            yaws=yaws[chosen],
            labels=[n for n, c in zip(names, chosen, strict=True) if c],
            scores=scores[chosen],
        )
        self._classes.update(boxes.labels)
        return boxes

    def _prefilter(
        self, xyz: NDArray[np.float32], labels: NDArray[np.int64], n_clusters: int
    ) -> NDArray[np.int64]:
        """Labels with the clusters no object can be (too many points, too tall, too low,
        wider than any object whatever its yaw) set to noise, before the costly box fit:
        buildings hold most obstacle points and are dropped here."""
        member = labels >= 0
        lab = labels[member]
        pts = xyz[member]
        counts = np.bincount(lab, minlength=n_clusters)
        lo = np.full((n_clusters, 3), np.inf, dtype=np.float32)
        hi = np.full((n_clusters, 3), -np.inf, dtype=np.float32)
        for k in range(3):
            np.minimum.at(lo[:, k], lab, pts[:, k])
            np.maximum.at(hi[:, k], lab, pts[:, k])
        ext = hi - lo
        diagonal = math.hypot(self.max_length, self.max_width)
        ok = (
            (counts <= self.max_points)
            & (ext[:, 2] >= self.min_height)
            & (ext[:, 2] <= self.max_height)
            & (np.hypot(ext[:, 0], ext[:, 1]) <= diagonal)
        )
        # renumber the kept clusters 0..K-1 so that box rows follow label order
        new = np.full(n_clusters + 1, -1, dtype=np.int64)
        new[np.flatnonzero(ok)] = np.arange(int(ok.sum()))
        return new[labels]

    @staticmethod
    def _grow(
        center: NDArray[np.float64],
        *,
        size: NDArray[np.float64],
        yaw: float,
        typical: tuple[float, float, float],
    ) -> None:
        """Grow a partly seen box (in place) to ``typical`` length/width, away from the
        sensor at the origin: the unseen part of an object is behind its visible faces."""
        axes = (np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)]))
        for k, axis in enumerate(axes):
            missing = typical[k] - size[k]
            if missing > 0:
                away = 1.0 if float(axis @ center[:2]) >= 0 else -1.0
                center[:2] += axis * (away * missing / 2)
                size[k] = typical[k]

    def process(self, frame: Frame) -> Boxes:
        points = points_from(frame, self.input)
        boxes = self.detect(points.xyz, stamp_ns=points.stamp_ns, frame_id=points.frame_id)
        self._t.append(frame.t_ns)
        self._boxes.append(len(boxes))
        return boxes

    def finish(self) -> StageResult:
        metrics = Metrics()
        metrics.extend("clusters", self._t, self._clusters[-len(self._t) :] if self._t else [])
        metrics.extend("boxes", self._t, self._boxes)
        for label, count in sorted(self._classes.items()):
            metrics.add("boxes_by_class", count, label=label)
        metrics.add("frames", len(self._t))
        with_boxes = sum(1 for b in self._boxes if b)
        check = Check(
            name="clustering found objects",
            topic=None,
            status="skip" if not self._t else ("pass" if with_boxes else "warn"),
            value=f"{with_boxes}/{len(self._t)} frames with boxes" if self._t else "no frames",
            threshold="any frame",
            stage=self.name,
        )
        return StageResult(metrics=metrics, checks=[check])
