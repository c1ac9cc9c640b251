"""`Log`: one recording (one or many files) as a lazy, time-ordered stream of messages.

This is the single reading path every command and the Python API go through, so that a fix to
how logs are read is a fix everywhere. `Log` owns the two halves of reading: storage (bytes and
indexes, :mod:`bagscope.replay.storage`) and the message type system
(:mod:`bagscope.replay.types`), and hands out `Message`s that join them.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from bagscope.replay.errors import ReplayError, TopicError
from bagscope.replay.message import Message
from bagscope.replay.rates import TopicTimes, topic_times
from bagscope.replay.storage import open_storage
from bagscope.replay.topics import resolve_topic, unknown_topic_message
from bagscope.replay.types import MessageTypes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from types import TracebackType

    from bagscope.replay.framing import FrameStream, StampSource
    from bagscope.replay.storage.base import Connection, Storage
    from bagscope.replay.sync import SyncPolicy
    from bagscope.replay.tf import TransformBuffer

PathLike = str | Path


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicInfo:
    """One topic: what the index says (type, connections) and what its own times say.

    ``rate_hz`` is defined once for every command (see :mod:`bagscope.replay.rates`):
    ``(count - 1)`` intervals over the topic's own first-to-last span, None for fewer than two
    messages. ``max_gap_ns`` and ``max_gap_start_ns`` are only known when every message time
    was read.
    """

    name: str
    msgtype: str
    connections: int
    times: TopicTimes

    @property
    def count(self) -> int:
        return self.times.count

    @property
    def first_ns(self) -> int | None:
        return self.times.first_ns

    @property
    def last_ns(self) -> int | None:
        return self.times.last_ns

    @property
    def max_gap_ns(self) -> int | None:
        return self.times.max_gap_ns

    @property
    def max_gap_start_ns(self) -> int | None:
        return self.times.max_gap_start_ns

    @property
    def rate_hz(self) -> float | None:
        return self.times.rate_hz

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "msgtype": self.msgtype,
            "count": self.count,
            "connections": self.connections,
            "frequency_hz": self.rate_hz,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }
        if self.max_gap_ns is not None:
            out["max_gap_ns"] = self.max_gap_ns
            out["max_gap_start_ns"] = self.max_gap_start_ns
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LogInfo:
    """What ``replay info`` shows: the log's extent, storage and topics."""

    paths: tuple[Path, ...]
    storage: str
    compression: str
    start_ns: int
    end_ns: int
    message_count: int
    size_bytes: int
    complete: bool
    recovery_note: str | None
    topics: tuple[TopicInfo, ...]
    gaps_scanned: bool = False

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def topic(self, name: str) -> TopicInfo:
        for info in self.topics:
            if info.name == name:
                return info
        raise TopicError(unknown_topic_message(name, [t.name for t in self.topics]))

    def to_json(self) -> dict[str, Any]:
        path = str(self.paths[0]) if len(self.paths) == 1 else [str(p) for p in self.paths]
        return {
            "path": path,
            "storage": self.storage,
            "compression": self.compression,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "message_count": self.message_count,
            "size_bytes": self.size_bytes,
            "complete": self.complete,
            "recovery_note": self.recovery_note,
            "topics": [t.to_json() for t in self.topics],
        }


class Log:
    """A recording opened for reading; also a context manager that closes its files.

    ``typestore`` names the rosbags store to fall back on for types the log does not define
    (``humble``, ``jazzy``, ``noetic``, ...); ``msg_paths`` adds custom ``.msg``/``.idl`` files.
    With ``strict``, a cut-off log is an error instead of a recovered read.
    """

    def __init__(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        typestore: str | None = None,
        msg_paths: Sequence[PathLike] = (),
        strict: bool = False,
    ) -> None:
        plist = [paths] if isinstance(paths, str | Path) else list(paths)
        self.paths = tuple(Path(p) for p in plist)
        self.strict = strict
        # Built first: a bad typestore name or --msg-path fails before any file is opened.
        self._types = MessageTypes([], typestore=typestore, msg_paths=[Path(p) for p in msg_paths])
        self._storage: Storage = open_storage(self.paths, strict=strict)
        self._types.add_definitions(self._storage.definitions)
        self._tf: TransformBuffer | None = None
        self._times: dict[bool, dict[str, TopicTimes]] = {}

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def types(self) -> MessageTypes:
        """The message type system: definitions from the log, the typestore, ``msg_paths``."""
        return self._types

    @property
    def topics(self) -> tuple[str, ...]:
        """Topic names exactly as recorded, sorted."""
        return tuple(sorted({c.topic for c in self._storage.connections}))

    def resolve_topic(self, name: str) -> str:
        """``name`` as the log spells it (leading slash or not); see :func:`resolve_topic`."""
        return resolve_topic(name, self.topics)

    def connections(self, topics: Iterable[str] | None = None) -> list[Connection]:
        """Connections of the given topics (either spelling); an unknown topic is a TopicError."""
        conns = list(self._storage.connections)
        if topics is None:
            return conns
        known = self.topics
        wanted = {resolve_topic(t, known) for t in topics}
        return [c for c in conns if c.topic in wanted]

    def msgtype(self, topic: str) -> str:
        return self.connections([topic])[0].msgtype

    def topic_times(
        self, *, gaps: bool = True, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, TopicTimes]:
        """Per topic: count, first and last log time and (with ``gaps``) the largest gap.

        Read from the indexes in bulk where the format has them; without ``gaps`` only each
        topic's first and last time are needed, which is cheaper still. Cached.
        """
        cached = self._times.get(gaps) or self._times.get(True)
        if cached is None:
            cached = self._times[gaps] = topic_times(self._storage, gaps=gaps, progress=progress)
        return cached

    def info(
        self, *, gaps: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> LogInfo:
        """The log's extent, storage and topics; ``gaps`` scans every time for the worst gap."""
        sinfo = self._storage.info
        by_topic: dict[str, list[Connection]] = defaultdict(list)
        for conn in self._storage.connections:
            by_topic[conn.topic].append(conn)
        times = self.topic_times(gaps=gaps, progress=progress)
        topics = []
        for name in sorted(by_topic):
            conns = by_topic[name]
            seen = times.get(name) or TopicTimes(
                count=sum(c.count for c in conns), first_ns=None, last_ns=None
            )
            topics.append(
                TopicInfo(
                    name=name,
                    msgtype=" | ".join(sorted({c.msgtype for c in conns})),
                    connections=len(conns),
                    times=seen,
                )
            )
        # Everything the storage already knows (extent, size, recovery) carries over as is.
        known = {f.name: getattr(sinfo, f.name) for f in fields(LogInfo) if hasattr(sinfo, f.name)}
        return LogInfo(**known, topics=tuple(topics), gaps_scanned=gaps)

    # -- streaming ------------------------------------------------------------------------
    def messages(
        self,
        start: int | None = None,
        end: int | None = None,
        topics: Iterable[str] | None = None,
    ) -> Iterator[Message]:
        """Messages in log-time order with ``start <= log_time < end`` (ns, absolute).

        ``topics`` may be spelled with or without the leading slash; messages carry the topic
        as recorded. An unknown topic or an impossible window fails here, before any reading.
        """
        _check_window(start, end)
        conns = self.connections(topics) if topics is not None else None
        raws = self._storage.messages(conns, start_ns=start, end_ns=end)
        # map() wraps each message in C: a generator here cost a frame switch per message.
        return map(Message, raws, itertools.repeat(self._types))

    def frames(
        self,
        sync: SyncPolicy[Any],
        *,
        start: int | None = None,
        end: int | None = None,
        stamp_source: StampSource = "header",
        strict: bool | None = None,
    ) -> FrameStream:
        """Synced frames; iterate the returned stream, then read its ``stats``.

        The policy's topics may use either spelling of a topic. Every frame's ``tf`` sees the
        whole log's transforms (read first, by topic), not only those before the frame.
        """
        from bagscope.replay.framing import FrameStream

        _check_window(start, end)
        has_tf = bool(self.tf_topics())
        return FrameStream(
            read=lambda topics: self.messages(start, end, topics=topics),
            connections=self.connections(),
            sync=sync,
            tf=lambda: self.tf() if has_tf else None,
            stamp_source=stamp_source,
            strict=self.strict if strict is None else strict,
            windowed=start is not None or end is not None,
        )

    def latest_before(
        self, topics: Iterable[str], before_ns: int, *, look_back_ns: int = 10_000_000_000
    ) -> list[Message]:
        """Each topic's last message before ``before_ns`` (log time), in the order given: what a
        reader starting there would have seen last (a CameraInfo, a latched map). Looked for in
        the ``look_back_ns`` before first, and only for a topic not found there (published once,
        latched) from the log's start, so a long log is not read from the beginning for it."""
        wanted = [self.resolve_topic(t) for t in topics]
        latest: dict[str, Message] = {}
        if wanted:
            for msg in self.messages(before_ns - look_back_ns, before_ns, topics=wanted):
                latest[msg.topic] = msg
            missing = [t for t in wanted if t not in latest]
            if missing:
                for msg in self.messages(None, before_ns, topics=missing):
                    latest[msg.topic] = msg
        return [latest[t] for t in wanted if t in latest]

    def tf_topics(self) -> list[str]:
        from bagscope.replay.tf import TF_TYPES

        return sorted({c.topic for c in self._storage.connections if c.msgtype in TF_TYPES})

    def tf(self) -> TransformBuffer:
        """Every transform of the log (``/tf_static`` and ``/tf``), read once and cached.

        Only the TF topics are read (the indexes skip everything else), so this is one pass
        over a small part of the log, whatever its size.
        """
        if self._tf is None:
            from bagscope.replay.tf import TransformBuffer, is_static_tf_topic

            buffer = TransformBuffer()
            topics = self.tf_topics()
            if topics:
                for msg in self.messages(topics=topics):
                    buffer.add_message(msg.payload, static=is_static_tf_topic(msg.topic))
            self._tf = buffer
        return self._tf


def _check_window(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and start > end:
        msg = f"the window starts ({start} ns) after it ends ({end} ns)"
        raise ReplayError(msg)


def open_log(
    paths: PathLike | Sequence[PathLike],
    *,
    typestore: str | None = None,
    msg_paths: Sequence[PathLike] = (),
    strict: bool = False,
) -> Log:
    """Open one log (or several files as one stream); use it as a context manager."""
    return Log(paths, typestore=typestore, msg_paths=msg_paths, strict=strict)
