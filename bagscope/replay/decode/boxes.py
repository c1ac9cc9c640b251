"""Oriented 3D boxes: ground truth read from ``vision_msgs/Detection3DArray`` and what detector
stages produce, in one columnar record so evaluation, tracking, drawing and writing share it.

Boxes are upright (yaw about the frame's z axis only), as every driving data set and detector
treats them; a box's roll and pitch from a message are dropped, its yaw kept. Sizes are full
extents along the box's own x (length), y (width) and z (height).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.stamp import stamp_to_ns

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = ["CLASS_COLORS", "Boxes", "class_color", "decode_detection3d_array", "yaw_of_quaternion"]


# One colour per class wherever boxes are drawn (renders, the viewer, markers in a results
# bag), so a mislabelled box shows as the wrong colour at a glance, the same everywhere.
CLASS_COLORS: dict[str, tuple[float, float, float]] = {
    "car": (0.15, 0.45, 1.0),
    "van": (0.3, 0.75, 1.0),
    "truck": (0.1, 0.8, 0.8),
    "bus": (0.1, 0.6, 0.6),
    "pedestrian": (1.0, 0.55, 0.1),
    "cyclist": (0.85, 0.3, 0.9),
    "bicycle": (0.85, 0.3, 0.9),
    "motorcycle": (0.95, 0.3, 0.5),
    "unknown": (0.7, 0.7, 0.7),
    "": (0.7, 0.7, 0.7),
}
# Other classes: a stable pick (crc32 of the name, not ``hash``, which changes per process).
_PALETTE = (
    (0.12, 0.47, 0.71),
    (0.17, 0.63, 0.17),
    (0.84, 0.15, 0.16),
    (0.58, 0.4, 0.74),
    (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76),
    (0.74, 0.74, 0.13),
)


def class_color(label: str) -> tuple[float, float, float]:
    """The RGB colour (0..1) boxes of class ``label`` are drawn in."""
    known = CLASS_COLORS.get(label.lower())
    if known is not None:
        return known
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def yaw_of_quaternion(q_xyzw: Sequence[float]) -> float:
    """Rotation about z of a quaternion (the heading of an upright box), in radians."""
    x, y, z, w = q_xyzw
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _empty(*shape: int) -> NDArray[np.float64]:
    return np.zeros(shape, dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Boxes:
    """N upright boxes in ``frame_id`` at ``stamp_ns``.

    ``centers`` (N, 3) m, ``sizes`` (N, 3) m (length, width, height), ``yaws`` (N,) rad,
    ``labels`` class names, ``scores`` in [0, 1], ``ids`` track ids ("" when none),
    ``velocities`` (N, 3) m/s or None when nobody estimated them.
    """

    stamp_ns: int
    frame_id: str
    centers: NDArray[np.float64] = field(default_factory=lambda: _empty(0, 3))
    sizes: NDArray[np.float64] = field(default_factory=lambda: _empty(0, 3))
    yaws: NDArray[np.float64] = field(default_factory=lambda: _empty(0))
    labels: tuple[str, ...] = ()
    scores: NDArray[np.float64] = field(default_factory=lambda: _empty(0))
    ids: tuple[str, ...] = ()
    velocities: NDArray[np.float64] | None = None

    @classmethod
    def build(
        cls,
        *,
        stamp_ns: int,
        frame_id: str,
        centers: ArrayLike,
        sizes: ArrayLike,
        yaws: ArrayLike,
        labels: Sequence[str],
        scores: ArrayLike | None = None,
        ids: Sequence[str] | None = None,
        velocities: ArrayLike | None = None,
    ) -> Boxes:
        """Boxes from array-likes, checked for consistent lengths."""
        c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        n = len(c)
        s = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
        y = np.asarray(yaws, dtype=np.float64).reshape(-1)
        sc = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        idt = tuple(ids) if ids is not None else ("",) * n
        vel = None if velocities is None else np.asarray(velocities, np.float64).reshape(-1, 3)
        lengths = {len(s), len(y), len(labels), len(sc), len(idt), n}
        if vel is not None:
            lengths.add(len(vel))
        if len(lengths) != 1:
            msg = f"boxes need one row per box in every field, got lengths {sorted(lengths)}"
            raise ValueError(msg)
        return cls(
            stamp_ns=stamp_ns,
            frame_id=frame_id,
            centers=c,
            sizes=s,
            yaws=y,
            labels=tuple(labels),
            scores=sc,
            ids=idt,
            velocities=vel,
        )

    def __len__(self) -> int:
        return len(self.centers)

    def select(self, mask: NDArray[np.bool_] | NDArray[np.intp]) -> Boxes:
        """The boxes a boolean mask or an index array picks."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return replace(
            self,
            centers=self.centers[idx],
            sizes=self.sizes[idx],
            yaws=self.yaws[idx],
            labels=tuple(self.labels[i] for i in idx),
            scores=self.scores[idx],
            ids=tuple(self.ids[i] for i in idx),
            velocities=None if self.velocities is None else self.velocities[idx],
        )

    def transformed(self, matrix: NDArray[np.float64], *, frame_id: str) -> Boxes:
        """The boxes in another frame: ``matrix`` (4x4) maps this frame into ``frame_id``.

        The yaw turns by the transform's rotation about z (upright boxes stay upright)."""
        rot = matrix[:3, :3]
        centers = self.centers @ rot.T + matrix[:3, 3]
        turn = math.atan2(rot[1, 0], rot[0, 0])
        yaws = np.angle(np.exp(1j * (self.yaws + turn)))
        velocities = None if self.velocities is None else self.velocities @ rot.T
        return replace(self, frame_id=frame_id, centers=centers, yaws=yaws, velocities=velocities)

    def corners_bev(self) -> NDArray[np.float64]:
        """(N, 4, 2) footprint corners in x/y, counter-clockwise."""
        half = self.sizes[:, :2] / 2
        local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
        pts = local[None, :, :] * half[:, None, :]
        c, s = np.cos(self.yaws), np.sin(self.yaws)
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2)
        corners: NDArray[np.float64] = np.einsum("nij,nkj->nki", rot, pts)
        return corners + self.centers[:, None, :2]

    def ranges(self) -> NDArray[np.float64]:
        """Horizontal distance of each centre from the frame's origin (the sensor), m."""
        return np.hypot(self.centers[:, 0], self.centers[:, 1])

    def to_json(self) -> dict[str, Any]:
        return {
            "stamp_ns": self.stamp_ns,
            "frame_id": self.frame_id,
            "centers": self.centers.tolist(),
            "sizes": self.sizes.tolist(),
            "yaws": self.yaws.tolist(),
            "labels": list(self.labels),
            "scores": self.scores.tolist(),
            "ids": list(self.ids),
            "velocities": None if self.velocities is None else self.velocities.tolist(),
        }


def decode_detection3d_array(msg: Any) -> Boxes:
    """Decode a rosbags ``vision_msgs/Detection3DArray``: the best hypothesis's class and
    score, the box pose's yaw, and ``id`` as the track id (vision_msgs >= 3)."""
    header = msg.header
    detections = list(msg.detections)
    n = len(detections)
    centers, sizes, yaws = _empty(n, 3), _empty(n, 3), _empty(n)
    labels, scores, ids = [], np.ones(n), []
    for i, det in enumerate(detections):
        pose, size = det.bbox.center, det.bbox.size
        centers[i] = (pose.position.x, pose.position.y, pose.position.z)
        sizes[i] = (size.x, size.y, size.z)
        q = pose.orientation
        yaws[i] = yaw_of_quaternion((q.x, q.y, q.z, q.w))
        results = list(det.results)
        if results:
            best = max(results, key=lambda r: _hypothesis(r)[1])
            label, score = _hypothesis(best)
        else:
            label, score = "", 1.0
        labels.append(label)
        scores[i] = score
        ids.append(str(getattr(det, "id", "") or ""))
    return Boxes(
        stamp_ns=stamp_to_ns(header.stamp),
        frame_id=str(header.frame_id),
        centers=centers,
        sizes=sizes,
        yaws=yaws,
        labels=tuple(labels),
        scores=scores,
        ids=tuple(ids),
    )


def _hypothesis(result: Any) -> tuple[str, float]:
    """(class, score) of an ObjectHypothesisWithPose across vision_msgs versions (class_id
    nested in ``hypothesis`` since 3.0, flat ``id`` before)."""
    inner = getattr(result, "hypothesis", result)
    label = getattr(inner, "class_id", None)
    if label is None:
        label = getattr(inner, "id", "")
    return str(label), float(getattr(inner, "score", 1.0))
