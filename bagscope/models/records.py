"""What model stages hand each other through ``frame.outputs``.

Point stages (voxel, crop, ground) output a :class:`PointSet`; detectors output
:class:`~bagscope.replay.decode.boxes.Boxes` (the tracker too, with ids and velocities);
``project_to_camera`` outputs a :class:`Projection` per image topic. A stage reads its input
with :func:`points_from`: the ``input`` parameter names an earlier stage or a cloud topic, and
by default the frame's first point cloud is used, so stages chain without glue code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

__all__ = ["ModelInputError", "PointSet", "Projection", "points_from"]


class ModelInputError(BagscopeError):
    """A model stage's ``input`` names nothing this frame holds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PointSet:
    """Points a stage kept, in ``frame_id``: ``xyz`` (N, 3) float32 and, where the cloud has
    one, ``intensity`` (N,). ``index`` gives each point's row in the original cloud's finite
    points, so a later stage can trace a point back to the sweep."""

    xyz: NDArray[np.float32]
    frame_id: str
    topic: str
    stamp_ns: int
    index: NDArray[np.int64]
    intensity: NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return len(self.xyz)

    def select(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> PointSet:
        """The points a mask or index array keeps (index and intensity follow)."""
        return PointSet(
            xyz=self.xyz[keep],
            frame_id=self.frame_id,
            topic=self.topic,
            stamp_ns=self.stamp_ns,
            index=self.index[keep],
            intensity=None if self.intensity is None else self.intensity[keep],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """Lidar points in one image: ``pixels`` (M, 2) as (u, v), ``depth`` (M,) m along the
    optical axis, ``index`` (M,) into the projected PointSet, for image ``topic`` of size
    ``width`` x ``height``."""

    topic: str
    width: int
    height: int
    pixels: NDArray[np.float64]
    depth: NDArray[np.float64]
    index: NDArray[np.int64]


def _from_cloud(frame: Frame, topic: str) -> PointSet:
    cloud = frame.clouds[topic]
    mask = cloud.finite_mask
    xyz = np.ascontiguousarray(cloud.xyz[mask], dtype=np.float32)
    intensity = None
    if "intensity" in cloud.fields:
        intensity = np.asarray(cloud.field("intensity"), dtype=np.float32).reshape(-1)[mask]
    return PointSet(
        xyz=xyz,
        frame_id=cloud.frame_id,
        topic=topic,
        stamp_ns=frame.stamps_ns[topic],
        index=np.arange(len(xyz), dtype=np.int64),
        intensity=intensity,
    )


def points_from(frame: Frame, source: str | None) -> PointSet:
    """The points ``source`` names: an earlier stage's PointSet, a cloud topic of the frame,
    or (None) the frame's first cloud."""
    if source is None:
        if not frame.clouds:
            msg = "this stage needs a point cloud among the synced topics; the frames have none"
            raise ModelInputError(msg)
        return _from_cloud(frame, next(iter(frame.clouds)))
    out: Any = frame.outputs.get(source)
    if isinstance(out, PointSet):
        return out
    if out is not None:
        msg = f"input {source!r} is a {type(out).__name__}, not points"
        raise ModelInputError(msg)
    for topic in frame.clouds:
        if topic == source or topic.lstrip("/") == source.lstrip("/"):
            return _from_cloud(frame, topic)
    known = [*frame.outputs, *frame.clouds]
    msg = f"input {source!r} is neither an earlier stage nor a synced cloud; have: {known}"
    raise ModelInputError(msg)
