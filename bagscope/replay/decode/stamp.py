"""Header stamps to integer nanoseconds, the one time unit of bagscope."""

from __future__ import annotations

from typing import Any

_NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Return ``sec * 1e9 + nanosec`` as an exact int.

    rosbags gives ROS1 and ROS2 stamps the same ``sec``/``nanosec`` shape, so one helper serves
    both; integer arithmetic keeps nanosecond stamps exact where a float would round them.
    """
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def header_fields(msg: Any) -> tuple[int, str]:
    """Return ``(stamp_ns, frame_id)`` of a stamped message's header."""
    header = msg.header
    return stamp_to_ns(header.stamp), str(header.frame_id)
