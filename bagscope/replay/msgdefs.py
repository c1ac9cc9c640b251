"""Message definitions bagscope writes that rosbags' stores lack: ``vision_msgs`` (Humble).

The simulator writes ground truth and ``replay run --write-bag`` writes detections as
``vision_msgs/msg/Detection3DArray``; both register these texts on top of a rosbags store so
the log they write embeds the schema and any reader can decode it without the package. Kept
here, below both, because ``pipeline`` must not import ``sim``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

__all__ = ["DETECTIONS", "VISION_MSGS", "register_vision_msgs", "vision_msgs_types"]

DETECTIONS = "vision_msgs/msg/Detection3DArray"

# vision_msgs as released for ROS2 Humble (4.x): since 3.0 Detection3D carries a string ``id``
# and no source cloud, and a hypothesis is a (class_id, score) pair.
VISION_MSGS: dict[str, str] = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\n"
        "vision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\n"
        "string id\n"
    ),
    DETECTIONS: "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


def vision_msgs_types() -> dict[str, Any]:
    """The parsed definitions, ready for ``Typestore.register``."""
    from rosbags.typesys import get_types_from_msg

    types: dict[str, Any] = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    return types


def register_vision_msgs(store: Typestore) -> None:
    """Add the ``vision_msgs`` types ``store`` lacks (a store that has them keeps its own)."""
    new = {k: v for k, v in vision_msgs_types().items() if k not in store.fielddefs}
    if new:
        store.register(new)
