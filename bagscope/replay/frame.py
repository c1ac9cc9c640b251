"""The `Frame`: what one synced instant of the robot's sensors looked like.

Frames are plain dataclasses so they are easy to poke at from a notebook; everything expensive
(pixels, payloads) stays lazy behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bagscope.replay.decode import CameraImage, CameraModel, PointCloud
    from bagscope.replay.message import Message
    from bagscope.replay.tf import TfView


class DecodedByTopic(Mapping[str, Any]):
    """Topic → decoded record, decoding each message the first time it is looked up."""

    __slots__ = ("_cache", "_messages")

    def __init__(self, messages: Mapping[str, Message]) -> None:
        self._messages = messages
        self._cache: dict[str, object] = {}

    def __getitem__(self, topic: str) -> Any:
        if topic not in self._cache:
            self._cache[topic] = self._messages[topic].decode()
        return self._cache[topic]

    def __iter__(self) -> Iterator[str]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._messages)})"


@dataclass(slots=True, kw_only=True)
class Frame:
    """One synced set of sensor messages at reference time ``t_ns``.

    Times are integer nanoseconds and named ``*_ns`` (``t_ns``, ``stamps_ns``), as in the
    JSON lines ``replay frames --jsonl`` prints.

    ``clouds`` and ``images`` map topic → `PointCloud` / `CameraImage` (images decode their pixels
    only when ``.pixels`` is read). ``cameras`` maps an image topic to the `CameraModel` of the
    latest CameraInfo seen for it. ``outputs`` is where model stages put what they add.
    """

    t_ns: int
    index: int
    messages: Mapping[str, Message]
    stamps_ns: Mapping[str, int]
    clouds: Mapping[str, PointCloud]
    images: Mapping[str, CameraImage]
    cameras: Mapping[str, CameraModel] = field(default_factory=dict)
    tf: TfView | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def skew_ns(self) -> int:
        """Spread of the member stamps: how far apart in time the synced messages really are."""
        values = list(self.stamps_ns.values())
        return max(values) - min(values) if values else 0
