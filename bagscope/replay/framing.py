"""Turning a message stream into synced frames, and keeping score of what did not make it.

The sync policies know nothing of logs; this module feeds them, checks what a frame carries
(cheaply: pixels stay encoded), attaches camera models and the log's TF, and accounts for every
message of a synced topic: *used* in a frame, *not needed* (a closer one won: a rate
difference), *dropped* (a real loss: no frame was possible, a queue overflowed) or a *decode
error*. A long replay reports problems instead of dying, and says why when few frames come out.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bagscope.replay.decode import types_in_slot
from bagscope.replay.errors import DecodeError, ReplayError, SyncError
from bagscope.replay.frame import DecodedByTopic, Frame
from bagscope.replay.reasons import explain
from bagscope.replay.storage.stamps import header_stamp_ns
from bagscope.replay.topics import resolve_topic

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from numpy.typing import NDArray

    from bagscope.replay.decode import CameraModel
    from bagscope.replay.message import Message
    from bagscope.replay.storage.base import Connection
    from bagscope.replay.sync import SyncPolicy
    from bagscope.replay.tf import TransformBuffer

Source = Literal["header", "log"]
StampSource = Source | dict[str, Source]

CLOUD_TYPES = types_in_slot("cloud")
IMAGE_TYPES = types_in_slot("image")
CAMERA_INFO_TYPES = types_in_slot("camera")
_SOURCES: tuple[Source, ...] = ("header", "log")


def parse_stamp_source(text: str) -> StampSource:
    """``header``, ``log``, or per topic ``/cam/image=log,/lidar=header`` (others: header)."""
    if text in _SOURCES:
        return text
    per_topic: dict[str, Source] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        topic, _, source = part.rpartition("=")
        if not topic or source not in _SOURCES:
            msg = f"--stamp takes header, log or TOPIC=header|log pairs, not {part!r}"
            raise ReplayError(msg)
        per_topic[topic] = source
    if not per_topic:
        msg = "--stamp takes header, log or TOPIC=header|log pairs, not an empty value"
        raise ReplayError(msg)
    return per_topic


def camera_info_topic(image_topic: str, topics: Iterable[str]) -> str | None:
    """The CameraInfo topic beside an image topic (``/cam/image_raw`` → ``/cam/camera_info``).

    ROS drivers publish both in one namespace, so walk up the image topic's namespaces until a
    sibling ``camera_info`` exists; a topic recorded without the leading slash finds one
    recorded the same way.
    """
    known = set(topics)
    lead = "/" if image_topic.startswith("/") else ""
    parts = image_topic.strip("/").split("/")
    for cut in range(len(parts) - 1, -1, -1):
        candidate = lead + "/".join([*parts[:cut], "camera_info"])
        if candidate in known:
            return candidate
    return None


# A stretch between two frames counts as the normal rhythm up to this many median frame periods.
_NORMAL_GAP = 1.5


def near_frames(stamps: NDArray[np.int64], frame_times: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which unused messages lay where frames were being made (so a closer one simply won).

    A message between two frames no more than 1.5 median frame periods apart, or within one
    period before the first or after the last frame, was passed over for a better one: a
    rate difference. Elsewhere (in a stretch with no frames, or with no frame at all) no frame
    was possible: a real loss.
    """
    near = np.zeros(stamps.size, dtype=bool)
    if frame_times.size == 0 or stamps.size == 0:
        return near
    times = np.sort(frame_times)
    if times.size == 1:
        near[:] = True  # one frame: no rhythm to judge by
        return near
    period = float(np.median(np.diff(times)))
    idx = np.searchsorted(times, stamps)
    inside = (idx > 0) & (idx < times.size)
    gap = times[np.minimum(idx, times.size - 1)] - times[np.maximum(idx - 1, 0)]
    near[inside] = gap[inside] <= _NORMAL_GAP * period
    edge = ~inside
    distance = np.where(idx == 0, times[0] - stamps, stamps - times[-1])
    near[edge] = distance[edge] <= period
    return near


@dataclass(slots=True, kw_only=True)
class FrameStats:
    """The score of one replay, per synced topic and overall.

    Per topic, ``used + not_needed + dropped + decode_errors == messages`` once the stream is
    exhausted (while it runs, messages the policy still holds are in none of the first three).
    """

    topics: tuple[str, ...] = ()
    frames: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    used: dict[str, int] = field(default_factory=dict)
    not_needed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: Counter[str] = field(default_factory=Counter)
    first_decode_error: dict[str, str] = field(default_factory=dict)
    skews_ns: array[int] = field(default_factory=lambda: array("q"))
    frame_times_ns: array[int] = field(default_factory=lambda: array("q"))
    reasons: list[str] = field(default_factory=list)

    def skew_percentiles(self) -> dict[str, int | None]:
        """Skew p50/p95/max in ns (None each when no frame was emitted)."""
        if not self.skews_ns:
            return {"p50": None, "p95": None, "max": None}
        arr = np.frombuffer(self.skews_ns, dtype=np.int64)
        p50, p95 = np.percentile(arr, [50, 95], method="nearest")
        return {"p50": int(p50), "p95": int(p95), "max": int(arr.max())}

    def to_json(self) -> dict[str, Any]:
        """The run summary ``replay frames --json`` prints."""
        return {
            "frames": self.frames,
            "topics": {
                topic: {
                    "messages": self.messages.get(topic, 0),
                    "used": self.used.get(topic, 0),
                    "not_needed": self.not_needed.get(topic, 0),
                    "dropped": self.dropped.get(topic, 0),
                    "decode_errors": self.decode_errors.get(topic, 0),
                }
                for topic in self.topics
            },
            "skew_ns": self.skew_percentiles(),
            "reasons": list(self.reasons),
        }


def _stamp_reader(first: Message, *, header: bool) -> Callable[[Message], int]:
    """How to read the sync stamp of every message of ``first``'s connection.

    Decided once per connection (whether its type starts with a Header does not change), so
    the per-message work is one struct read: this runs for every message of a synced topic.
    """
    if not header or first.header_stamp_ns is None:
        return _log_time
    serialization = first.connection.serialization

    def from_header(msg: Message) -> int:
        return header_stamp_ns(msg.data, serialization)

    return from_header


def _log_time(msg: Message) -> int:
    return msg.log_time_ns


class FrameStream:
    """An iterator of `Frame`s whose ``stats`` are complete once it is exhausted.

    It reads nothing itself: ``read(topics)`` streams the messages of the topics it needs (in
    log-time order), ``connections`` say what the log holds, and ``tf`` (called once, only when
    the log has TF) gives the whole log's transforms.
    """

    def __init__(
        self,
        *,
        read: Callable[[Sequence[str]], Iterable[Message]],
        connections: Sequence[Connection],
        sync: SyncPolicy[Any],
        tf: Callable[[], TransformBuffer | None],
        stamp_source: StampSource = "header",
        strict: bool = False,
        windowed: bool = False,
    ) -> None:
        self.sync = sync
        self.strict = strict
        self._windowed = windowed  # read only part of the log (for the reasons' wording)
        kinds: dict[str, str] = {}
        for conn in connections:
            kinds.setdefault(conn.topic, conn.msgtype)
        # The policy's topics as the log spells them (a leading slash or not).
        self._recorded = tuple(resolve_topic(t, kinds) for t in sync.topics)
        self._sources = self._resolve_sources(stamp_source, kinds)
        self._kinds = kinds
        self._read = read
        self._tf = tf
        self._stats = FrameStats(topics=tuple(sync.topics))
        self._counts = [0] * len(sync.topics)
        self._stamps: list[array[int]] = [array("q") for _ in sync.topics]
        # Stamps of the messages the policy passed over, judged against the frames at the end.
        self._passed_over: list[array[int]] = [array("q") for _ in sync.topics]
        sync.watch_not_needed(lambda i, stamp: self._passed_over[i].append(stamp))
        self._final = False
        self._iter = self._generate()

    def _resolve_sources(self, stamp_source: StampSource, kinds: Mapping[str, str]) -> list[str]:
        if isinstance(stamp_source, str):
            return [stamp_source] * len(self._recorded)
        chosen = {resolve_topic(t, kinds): s for t, s in stamp_source.items()}
        unknown = set(chosen) - set(self._recorded)
        if unknown:
            msg = f"--stamp names topics that are not synced: {', '.join(sorted(unknown))}"
            raise SyncError(msg)
        return [chosen.get(t, "header") for t in self._recorded]

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        return next(self._iter)

    def _generate(self) -> Iterator[Frame]:
        sync = self.sync
        policy_topics = sync.topics
        index = {topic: i for i, topic in enumerate(self._recorded)}
        checked = [self._kinds[t] in CLOUD_TYPES | IMAGE_TYPES for t in self._recorded]
        by_header = [s == "header" for s in self._sources]
        info_for = {
            policy_topics[i]: info
            for i, topic in enumerate(self._recorded)
            if self._kinds[topic] in IMAGE_TYPES
            and (info := camera_info_topic(topic, self._kinds)) is not None
            and self._kinds[info] in CAMERA_INFO_TYPES
        }
        info_topics = set(info_for.values())
        latest_info: dict[str, CameraModel] = {}
        slots = [self._kinds[t] for t in self._recorded]
        context = _FrameContext(
            topics=policy_topics,
            clouds=tuple(t for t, k in zip(policy_topics, slots, strict=True) if k in CLOUD_TYPES),
            images=tuple(t for t, k in zip(policy_topics, slots, strict=True) if k in IMAGE_TYPES),
            info_for=info_for,
            latest_info=latest_info,
            tf=self._tf(),
        )
        counts = self._counts
        stamps = self._stamps
        build = self._frame
        add = sync.add
        readers: dict[int, Callable[[Message], int]] = {}  # per connection id
        try:
            for msg in self._read(sorted({*self._recorded, *info_topics})):
                conn = msg.connection
                topic = conn.topic
                i = index.get(topic)
                if i is not None:
                    counts[i] += 1
                if topic in info_topics:  # may be synced too: then it is also a member
                    try:
                        latest_info[topic] = msg.decode()  # type: ignore[assignment]
                    except DecodeError as err:
                        self._count_error(policy_topics[i] if i is not None else topic, err)
                        continue
                if i is None or (checked[i] and not self._decodes(msg, policy_topics[i])):
                    continue
                read = readers.get(conn.id)
                if read is None:
                    read = readers[conn.id] = _stamp_reader(msg, header=by_header[i])
                stamp = read(msg)
                stamps[i].append(stamp)
                for members in add(policy_topics[i], stamp, (msg, stamp)):
                    yield build(members, context)
            for members in sync.flush():
                yield build(members, context)
            self._books(final=True)
        finally:
            self._books()
            self._explain()

    @property
    def stats(self) -> FrameStats:
        """The score so far; complete (and explained) once the stream is exhausted."""
        self._books()
        return self._stats

    def _books(self, *, final: bool = False) -> None:
        """Bring the stats up to date (on demand, so a consumer that stops early reads them).

        At the end, a message the policy passed over where no frame was made (a stretch with
        no frames) moves from *not needed* to *dropped*: no frame was possible for it.
        """
        if self._final:
            return
        stats, sync = self._stats, self.sync
        for topic, n in zip(sync.topics, self._counts, strict=True):
            stats.messages[topic] = n
        used, not_needed, dropped = sync.used, sync.not_needed, sync.dropped
        if final:
            frames = np.frombuffer(stats.frame_times_ns, dtype=np.int64)
            for topic, passed in zip(sync.topics, self._passed_over, strict=True):
                stamps = np.frombuffer(passed, dtype=np.int64)
                lost = int(stamps.size - np.count_nonzero(near_frames(stamps, frames)))
                not_needed[topic] -= lost
                dropped[topic] += lost
            self._final = True
        stats.used, stats.not_needed, stats.dropped = used, not_needed, dropped

    def _explain(self) -> None:
        topics = self.sync.topics
        self._stats.reasons = explain(
            self._stats,
            self.sync,
            stamps={
                t: np.frombuffer(a, dtype=np.int64)
                for t, a in zip(topics, self._stamps, strict=True)
            },
            stamp_sources=dict(zip(topics, self._sources, strict=True)),
            windowed=self._windowed,
        )

    def _decodes(self, msg: Message, topic: str) -> bool:
        """The structural check every synced sensor message gets (pixels stay encoded)."""
        try:
            msg.check()
        except DecodeError as err:
            self._count_error(topic, err)
            return False
        return True

    def _count_error(self, topic: str, err: DecodeError) -> None:
        if self.strict:
            raise err
        self._stats.decode_errors[topic] += 1
        self._stats.first_decode_error.setdefault(topic, str(err))

    def _frame(
        self,
        members: tuple[tuple[Message, int], ...],
        context: _FrameContext,
    ) -> Frame:
        """One frame from a policy's set of (message, stamp) members: built once per frame,
        so it only fills dicts; anything expensive stays lazy in the frame."""
        messages: dict[str, Message] = {}
        stamps: dict[str, int] = {}
        for topic, (msg, stamp) in zip(context.topics, members, strict=True):
            messages[topic] = msg
            stamps[topic] = stamp
        t = members[0][1]
        latest = context.latest_info
        stats = self._stats
        frame = Frame(
            t_ns=t,
            index=stats.frames,
            messages=messages,
            stamps_ns=stamps,
            clouds=DecodedByTopic({k: messages[k] for k in context.clouds}),
            images=DecodedByTopic({k: messages[k] for k in context.images}),
            cameras={k: latest[i] for k, i in context.info_for.items() if i in latest},
            tf=context.tf.at(t) if context.tf is not None else None,
        )
        stats.frames += 1
        stats.skews_ns.append(max(stamps.values()) - min(stamps.values()))
        stats.frame_times_ns.append(t)
        return frame


@dataclass(slots=True, kw_only=True)
class _FrameContext:
    """What every frame of one stream shares: its topics by slot, camera infos, the TF."""

    topics: tuple[str, ...]
    clouds: tuple[str, ...]
    images: tuple[str, ...]
    info_for: Mapping[str, str]
    latest_info: dict[str, CameraModel]
    tf: TransformBuffer | None


__all__ = [
    "CLOUD_TYPES",
    "IMAGE_TYPES",
    "FrameStats",
    "FrameStream",
    "StampSource",
    "camera_info_topic",
    "parse_stamp_source",
]
