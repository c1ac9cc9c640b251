"""The seam between log formats and everything above them.

A storage backend hands out *raw* records (bytes + connection) in log-time order; decoding is
left to the caller so that a consumer that only needs stamps or a few topics never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

Serialization = Literal["cdr", "ros1"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """One (topic, type) stream in one file; a topic may have several.

    ``id`` is unique across everything one :func:`open_storage` call opened, so connections of
    several files can be mixed freely in a ``messages(connections=...)`` filter.
    """

    id: int
    topic: str
    msgtype: str  # normalised ROS2 style: "sensor_msgs/msg/PointCloud2"
    serialization: Serialization
    count: int  # messages on this connection (0 when unknown without a scan)
    path: Path


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message as stored: no decoding has happened yet."""

    connection: Connection
    log_time_ns: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageInfo:
    """What a backend knows without reading the messages.

    An empty log (no messages) reports ``start_ns == end_ns == 0``.
    """

    paths: tuple[Path, ...]
    storage: str  # "rosbag1", "sqlite3", "mcap", "mcap-ros1", or "+"-joined for mixed inputs
    compression: str  # "none", "bz2", "lz4", "zstd", ... ("+"-joined when mixed)
    start_ns: int  # first message log time
    end_ns: int  # last message log time (inclusive: duration = end - start)
    message_count: int
    size_bytes: int
    complete: bool = True  # False when the log was cut off and recovered
    recovery_note: str | None = None  # what recovery did, in words, for the warning
    extra: dict[str, str] = field(default_factory=dict)


class Storage(Protocol):
    """What :class:`bagscope.replay.Log` needs from a format backend."""

    @property
    def info(self) -> StorageInfo: ...

    @property
    def connections(self) -> tuple[Connection, ...]: ...

    def messages(
        self,
        connections: Iterable[Connection] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[RawMessage]:
        """Yield raw messages in log-time order, ``start_ns <= t < end_ns``."""
        ...

    def deserialize(
        self, data: bytes | memoryview, msgtype: str, serialization: Serialization
    ) -> object:
        """Decode one payload to a rosbags message object (raises UnknownTypeError)."""
        ...

    def starts_with_header(self, msgtype: str) -> bool:
        """Whether the type's first field is a ``std_msgs/msg/Header``.

        Then ``header.stamp`` sits at payload bytes 4..12 in both CDR and ROS1 encodings, so a
        caller can read stamps with :func:`bagscope.replay.storage.stamps.header_stamp_ns`
        without decoding the message.
        """
        ...

    def close(self) -> None: ...
