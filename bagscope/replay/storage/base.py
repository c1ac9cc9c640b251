"""The seam between log formats and everything above them.

A storage backend hands out *raw* records (bytes + connection) in log-time order; decoding is
left to the caller so that a consumer that only needs stamps or a few topics never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

    import numpy as np
    from numpy.typing import NDArray

    # Per global connection id: log times in ns, sorted ascending.
    TimesById = dict[int, NDArray[np.int64]]
    Progress = Callable[[int, int], None] | None

Serialization = Literal["cdr", "ros1"]


def normalize_msgtype(name: str) -> str:
    """``pkg/Name`` (ROS1) or ``pkg/msg/Name`` -> ``pkg/msg/Name``."""
    path = PurePosixPath(name)
    if path.parent.name not in ("msg", "action", "srv"):
        path = path.parent / "msg" / path.name
    return str(path)


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeDefinition:
    """A message definition as a log stores it; :mod:`bagscope.replay.types` parses it."""

    msgtype: str  # normalised "pkg/msg/Name"
    text: str
    encoding: Literal["msg", "idl"]  # ROS1 and ros2msg texts both parse as "msg"
    serialization: Serialization


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


class RawMessage(NamedTuple):
    """A message as stored: no decoding has happened yet.

    A NamedTuple rather than a frozen dataclass: one is made per message, and readers make them
    in C (``tuple.__new__`` over rows) at a fraction of a dataclass ``__init__``'s cost, which
    matters for logs of many small messages.
    """

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


class Source(Protocol):
    """One file or bag directory, as each backend module implements it.

    ``ids`` are the global connection ids to read (None: all); a source ignores ids that are
    not its own, so a merged storage can pass one filter to every file.
    """

    @property
    def connections(self) -> tuple[Connection, ...]: ...

    @property
    def definitions(self) -> list[TypeDefinition]: ...

    def info(self) -> StorageInfo: ...

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]: ...

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection, from the indexes where the format has them.

        With ``ends_only`` an array need only hold its connection's first and last time (plus
        anything cheaper to keep than to drop); ``progress`` gets (done, total) in any unit.
        """
        ...

    def close(self) -> None: ...


class FileSource:
    """What the single-file readers (ROS1 bag, MCAP, ``.db3``) share once a file is open.

    Each reader sets the attributes; ``info`` and the id bookkeeping are the same for all of
    them. ``_local`` maps the file's own ids (connection, channel or topic id) to connections,
    ``_by_id`` maps global connection ids back to them.
    """

    path: Path
    storage: str
    compression: str
    size: int
    recovery_note: str | None = None
    connections: tuple[Connection, ...]
    definitions: list[TypeDefinition]
    _start_ns: int = 0
    _end_ns: int = 0
    _local: dict[int, Connection]
    _by_id: dict[int, int]
    _emit: Mapping[int, Connection]

    def _index_connections(self, local: dict[int, Connection]) -> None:
        self._local = local
        self._emit = local
        self.connections = tuple(local.values())
        self._by_id = {c.id: fid for fid, c in local.items()}

    def present_as(self, connections: Mapping[int, Connection]) -> None:
        """Hand out messages under other connections (by this file's global connection id).

        A bag directory merges the connections of its files; letting the file yield the
        directory's records directly saves re-wrapping every message on its way up.
        """
        self._emit = {fid: connections[c.id] for fid, c in self._local.items()}

    def _wanted(self, ids: frozenset[int] | None) -> frozenset[int]:
        """File-local ids of the requested global connection ids (None: all)."""
        if ids is None:
            return frozenset(self._local)
        return frozenset(self._by_id[i] for i in ids if i in self._by_id)

    @property
    def message_count(self) -> int:
        """Messages this file serves (on connections it can type)."""
        return sum(c.count for c in self.connections)

    @property
    def total(self) -> int:
        """Every message the file holds, whether or not on a connection it can type."""
        return self.message_count

    def topic_counts(self) -> dict[int, int]:
        """Messages per global connection id."""
        return {c.id: c.count for c in self.connections}

    def _extra(self) -> dict[str, str]:
        return {}

    def info(self) -> StorageInfo:
        """What opening the file learnt: from its index, or from the recovery scan."""
        return StorageInfo(
            paths=(self.path,),
            storage=self.storage,
            compression=self.compression,
            start_ns=self._start_ns,
            end_ns=self._end_ns,
            message_count=self.message_count,
            size_bytes=self.size,
            complete=self.recovery_note is None,
            recovery_note=self.recovery_note,
            extra=self._extra(),
        )


class Storage(Protocol):
    """What :class:`bagscope.replay.Log` needs from the format backends: bytes and indexes.

    Decoding is not storage's business: the log's message definitions are handed out as text
    (:attr:`definitions`) and :mod:`bagscope.replay.types` turns them into deserializers.
    """

    @property
    def info(self) -> StorageInfo: ...

    @property
    def connections(self) -> tuple[Connection, ...]: ...

    @property
    def definitions(self) -> list[TypeDefinition]: ...

    def messages(
        self,
        connections: Iterable[Connection] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[RawMessage]:
        """Yield raw messages in log-time order, ``start_ns <= t < end_ns``."""
        ...

    def times(
        self,
        connections: Iterable[Connection] | None = None,
        *,
        ends_only: bool = False,
        progress: Progress = None,
    ) -> TimesById:
        """Log times per connection id, sorted; see :meth:`Source.times`."""
        ...

    def close(self) -> None: ...


def times_by_reading(
    source: Source, ids: frozenset[int] | None, *, progress: Progress = None
) -> TimesById:
    """Every message's log time by streaming the source: for formats (or damaged files)
    without a usable index. Payloads are not decoded, but they are read."""
    import numpy as np

    found: dict[int, list[int]] = {}
    for i, raw in enumerate(source.messages(ids, start_ns=None, end_ns=None)):
        found.setdefault(raw.connection.id, []).append(raw.log_time_ns)
        if progress is not None and i % 65536 == 0:
            progress(i, 0)
    return {cid: np.sort(np.asarray(ts, dtype=np.int64)) for cid, ts in found.items()}
