"""`Log`: one recording (one or many files) as a lazy, time-ordered stream of messages.

This is the single reading path every command and the Python API go through, so that a fix to
how logs are read is a fix everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from bagscope.replay.errors import TopicError
from bagscope.replay.message import Message
from bagscope.replay.storage import open_storage

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from types import TracebackType

    from bagscope.replay.framing import FrameStream, StampSource
    from bagscope.replay.storage.base import Connection, Storage
    from bagscope.replay.sync import SyncPolicy
    from bagscope.replay.tf import TransformBuffer

PathLike = str | Path
TF_TYPES = frozenset({"tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicInfo:
    """One topic as the log's index describes it (no message is read to build this)."""

    name: str
    msgtype: str
    count: int
    connections: int
    frequency_hz: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "msgtype": self.msgtype,
            "count": self.count,
            "connections": self.connections,
            "frequency_hz": self.frequency_hz,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LogInfo:
    """What ``replay info`` shows: the log's extent and topics, read from its index."""

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

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def topic(self, name: str) -> TopicInfo:
        for info in self.topics:
            if info.name == name:
                return info
        raise TopicError(_unknown_topic_message(name, [t.name for t in self.topics]))

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


def _unknown_topic_message(name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"topic {name!r} is not in the log (topics: {shown or 'none'})"


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
        self._storage: Storage = open_storage(
            self.paths,
            typestore=typestore,
            msg_paths=tuple(Path(p) for p in msg_paths),
            strict=strict,
        )
        self._tf: TransformBuffer | None = None

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
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted({c.topic for c in self._storage.connections}))

    def connections(self, topics: Iterable[str] | None = None) -> list[Connection]:
        """Connections of the given topics; an unknown topic is a `TopicError`."""
        conns = list(self._storage.connections)
        if topics is None:
            return conns
        wanted = list(topics)
        known = {c.topic for c in conns}
        for topic in wanted:
            if topic not in known:
                raise TopicError(_unknown_topic_message(topic, known))
        return [c for c in conns if c.topic in wanted]

    def msgtype(self, topic: str) -> str:
        return self.connections([topic])[0].msgtype

    def info(self) -> LogInfo:
        sinfo = self._storage.info
        by_topic: dict[str, list[Connection]] = defaultdict(list)
        for conn in self._storage.connections:
            by_topic[conn.topic].append(conn)
        duration_s = (sinfo.end_ns - sinfo.start_ns) / 1e9
        topics = []
        for name in sorted(by_topic):
            conns = by_topic[name]
            count = sum(c.count for c in conns)
            types = sorted({c.msgtype for c in conns})
            # Without a scan only the log's extent is known: count / extent is the honest estimate.
            freq = count / duration_s if count > 1 and duration_s > 0 else None
            topics.append(
                TopicInfo(
                    name=name,
                    msgtype=" | ".join(types),
                    count=count,
                    connections=len(conns),
                    frequency_hz=freq,
                )
            )
        return LogInfo(
            paths=sinfo.paths,
            storage=sinfo.storage,
            compression=sinfo.compression,
            start_ns=sinfo.start_ns,
            end_ns=sinfo.end_ns,
            message_count=sinfo.message_count,
            size_bytes=sinfo.size_bytes,
            complete=sinfo.complete,
            recovery_note=sinfo.recovery_note,
            topics=tuple(topics),
        )

    # -- streaming ------------------------------------------------------------------------
    def messages(
        self,
        start: int | None = None,
        end: int | None = None,
        topics: Iterable[str] | None = None,
    ) -> Iterator[Message]:
        """Messages in log-time order with ``start <= log_time < end`` (ns, absolute)."""
        conns = self.connections(topics) if topics is not None else None
        storage = self._storage
        for raw in storage.messages(conns, start_ns=start, end_ns=end):
            yield Message(raw, storage)

    def frames(
        self,
        sync: SyncPolicy[Message],
        *,
        start: int | None = None,
        end: int | None = None,
        stamp_source: StampSource = "header",
        strict: bool | None = None,
    ) -> FrameStream:
        """Synced frames; iterate the returned stream, then read its ``stats``."""
        from bagscope.replay.framing import FrameStream

        return FrameStream(
            self,
            sync,
            start=start,
            end=end,
            stamp_source=stamp_source,
            strict=self.strict if strict is None else strict,
        )

    def tf_topics(self) -> list[str]:
        return sorted({c.topic for c in self._storage.connections if c.msgtype in TF_TYPES})

    def tf(self) -> TransformBuffer:
        """Every transform of the log (``/tf_static`` and ``/tf``), read once and cached."""
        if self._tf is None:
            from bagscope.replay.tf import TransformBuffer

            buffer = TransformBuffer()
            topics = self.tf_topics()
            if topics:
                for msg in self.messages(topics=topics):
                    buffer.add_message(msg.payload, static=is_static_tf_topic(msg.topic))
            self._tf = buffer
        return self._tf


def is_static_tf_topic(topic: str) -> bool:
    return topic.rstrip("/").endswith("tf_static")


def open_log(
    paths: PathLike | Sequence[PathLike],
    *,
    typestore: str | None = None,
    msg_paths: Sequence[PathLike] = (),
    strict: bool = False,
) -> Log:
    """Open one log (or several files as one stream); use it as a context manager."""
    return Log(paths, typestore=typestore, msg_paths=msg_paths, strict=strict)
