"""Turning a message stream into synced frames, and keeping score of what did not make it.

The sync policies know nothing of logs; this module feeds them, decodes what a frame carries
(cheaply: pixels stay encoded), attaches camera models and a TF view, and counts every message
that was dropped or could not be decoded so a long replay reports problems instead of dying.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from bagscope.replay.errors import DecodeError, SyncError
from bagscope.replay.frame import DecodedByTopic, Frame
from bagscope.replay.log import TF_TYPES, is_static_tf_topic

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from bagscope.replay.decode import CameraModel
    from bagscope.replay.log import Log
    from bagscope.replay.message import Message
    from bagscope.replay.sync import SyncPolicy
    from bagscope.replay.tf import TransformBuffer

StampSource = Literal["header", "log"] | dict[str, Literal["header", "log"]]

CLOUD_TYPES = frozenset({"sensor_msgs/msg/PointCloud2"})
IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def camera_info_topic(image_topic: str, topics: set[str]) -> str | None:
    """The CameraInfo topic beside an image topic (``/cam/image_raw`` → ``/cam/camera_info``).

    ROS drivers publish both in one namespace, so walk up the image topic's namespaces until a
    sibling ``camera_info`` exists.
    """
    parts = image_topic.strip("/").split("/")
    for cut in range(len(parts) - 1, -1, -1):
        candidate = "/" + "/".join([*parts[:cut], "camera_info"])
        if candidate in topics:
            return candidate
    return None


@dataclass(slots=True, kw_only=True)
class FrameStats:
    """The score of one replay: what was emitted, dropped, broken, and how tight the sync was."""

    frames: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: Counter[str] = field(default_factory=Counter)
    first_decode_error: dict[str, str] = field(default_factory=dict)
    skews_ns: list[int] = field(default_factory=list)

    def skew_percentiles(self) -> dict[str, float]:
        """Skew p50/p95/max in ns (0 when no frame was emitted)."""
        if not self.skews_ns:
            return {"p50": 0.0, "p95": 0.0, "max": 0.0}
        arr = np.asarray(self.skews_ns, dtype=np.float64)
        return {
            "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)),
            "max": float(arr.max()),
        }


class FrameStream:
    """An iterator of `Frame`s whose ``stats`` are complete once it is exhausted."""

    def __init__(
        self,
        log: Log,
        sync: SyncPolicy[Message],
        *,
        start: int | None,
        end: int | None,
        stamp_source: StampSource,
        strict: bool,
    ) -> None:
        self.log = log
        self.sync = sync
        self.start = start
        self.end = end
        self.strict = strict
        self.stats = FrameStats()
        self._sources = self._resolve_sources(stamp_source)
        # Fail on unknown topics now, not at the first next().
        self._sync_conns = log.connections(sync.topics)
        self._iter = self._generate()

    def _resolve_sources(self, stamp_source: StampSource) -> dict[str, str]:
        if isinstance(stamp_source, str):
            return dict.fromkeys(self.sync.topics, stamp_source)
        unknown = set(stamp_source) - set(self.sync.topics)
        if unknown:
            msg = f"stamp source given for topics not being synced: {', '.join(sorted(unknown))}"
            raise SyncError(msg)
        return {t: stamp_source.get(t, "header") for t in self.sync.topics}

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        return next(self._iter)

    def _generate(self) -> Iterator[Frame]:
        log = self.log
        all_topics = set(log.topics)
        sync_topics = set(self.sync.topics)
        kinds = {c.topic: c.msgtype for c in self._sync_conns}
        info_for = {
            topic: info
            for topic in sync_topics
            if kinds[topic] in IMAGE_TYPES
            and (info := camera_info_topic(topic, all_topics)) is not None
        }
        info_topics = set(info_for.values())
        tf_topics = set(log.tf_topics())
        read = sync_topics | info_topics | tf_topics
        tf_buffer: TransformBuffer | None = None
        if tf_topics:
            from bagscope.replay.tf import TransformBuffer

            tf_buffer = TransformBuffer()
        latest_info: dict[str, CameraModel] = {}

        for msg in log.messages(start=self.start, end=self.end, topics=sorted(read)):
            topic = msg.topic
            if topic in sync_topics:
                self.stats.messages[topic] += 1
                if not self._check_decodes(msg):
                    continue
                stamp = msg.stamp_ns(self._sources[topic])
                for members in self.sync.add(topic, stamp, msg):
                    yield self._frame(
                        members, info_for=info_for, latest_info=latest_info, tf_buffer=tf_buffer
                    )
            if topic in info_topics and msg.msgtype == CAMERA_INFO_TYPE:
                try:
                    latest_info[topic] = msg.decode()  # type: ignore[assignment]
                except DecodeError as err:
                    self._count_error(topic, err)
            if topic in tf_topics and tf_buffer is not None and msg.msgtype in TF_TYPES:
                tf_buffer.add_message(msg.payload, static=is_static_tf_topic(topic))
        for members in self.sync.flush():
            yield self._frame(
                members, info_for=info_for, latest_info=latest_info, tf_buffer=tf_buffer
            )
        self.stats.dropped = dict(self.sync.dropped)

    def _check_decodes(self, msg: Message) -> bool:
        """Decode sensor payloads up front (pixels stay lazy) so corrupt ones never reach sync."""
        if msg.msgtype not in CLOUD_TYPES and msg.msgtype not in IMAGE_TYPES:
            return True
        try:
            msg.decode()
        except DecodeError as err:
            self._count_error(msg.topic, err)
            return False
        return True

    def _count_error(self, topic: str, err: DecodeError) -> None:
        if self.strict:
            raise err
        self.stats.decode_errors[topic] += 1
        self.stats.first_decode_error.setdefault(topic, str(err))

    def _frame(
        self,
        members: tuple[Message, ...],
        *,
        info_for: Mapping[str, str],
        latest_info: Mapping[str, CameraModel],
        tf_buffer: TransformBuffer | None,
    ) -> Frame:
        messages = dict(zip(self.sync.topics, members, strict=True))
        stamps = {t: m.stamp_ns(self._sources[t]) for t, m in messages.items()}
        t = stamps[self.sync.topics[0]]
        clouds = {k: m for k, m in messages.items() if m.msgtype in CLOUD_TYPES}
        images = {k: m for k, m in messages.items() if m.msgtype in IMAGE_TYPES}
        cameras = {
            image: latest_info[info] for image, info in info_for.items() if info in latest_info
        }
        frame = Frame(
            t=t,
            index=self.stats.frames,
            messages=messages,
            stamps=stamps,
            clouds=DecodedByTopic(clouds),
            images=DecodedByTopic(images),
            cameras=cameras,
            tf=tf_buffer.at(t) if tf_buffer is not None else None,
        )
        self.stats.frames += 1
        self.stats.skews_ns.append(frame.skew_ns)
        self.stats.dropped = self.sync.dropped  # current even if the consumer stops early
        return frame
