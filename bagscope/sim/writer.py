"""Write a stream of serialized messages to a real log, atomically and in log-time order.

The simulator produces messages roughly in stamp order, but faults (delays, reordering,
duplicates) make log times run ahead of or behind it. :class:`LogWriter` keeps a heap of pending
messages and writes out everything older than a *watermark* the caller advances, a promise that
no later message will be logged before it; memory is bounded by how far ahead faults push
messages, never by the length of the drive.

Everything is written into a hidden temporary sibling of ``out`` and renamed into place only
when complete, so a failed or interrupted run leaves nothing behind and never clobbers an
existing log until its replacement is whole.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime as _QosTime
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2 import Writer as Writer2

from bagscope.sim.errors import SimError

if TYPE_CHECKING:
    from types import TracebackType

    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

__all__ = ["FORMATS", "LogWriter", "check_output_path", "format_for_path"]

FORMATS: tuple[str, ...] = ("mcap", "db3", "bag")

# Latched topics (static TF) must reach late subscribers on replay, as a recorder would mark them.
LATCHED_TOPICS = frozenset({"/tf_static"})
_LATCHED_QOS = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    _QosTime(0, 0),
    _QosTime(0, 0),
    QosLiveliness.AUTOMATIC,
    _QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)


def format_for_path(path: Path) -> str:
    """The log format a path's suffix asks for: ``.bag`` ROS1, ``.db3`` a rosbag2 sqlite3
    directory, anything else MCAP."""
    return {".bag": "bag", ".db3": "db3"}.get(Path(path).suffix, "mcap")


def check_output_path(out: Path, *, fmt: str, overwrite: bool = False) -> None:
    """Refuse, in one clear line, an output that readers could not open or that would clobber.

    rosbags picks the reader by suffix: a ROS1 bag must end in ``.bag``, a bare MCAP file in
    ``.mcap``; a db3 log is a rosbag2 directory (``drive`` or ``drive.db3``).
    """
    if fmt not in FORMATS:
        msg = f"unknown log format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise SimError(msg)
    wanted = {"mcap": ".mcap", "bag": ".bag"}.get(fmt)
    if wanted is not None and out.suffix != wanted:
        msg = f"a {fmt} log must be named *{wanted}, got {out.name!r}"
        raise SimError(msg)
    if fmt == "db3" and out.suffix in {".mcap", ".bag"}:
        msg = f"a db3 log is a rosbag2 directory; {out.name!r} names another format"
        raise SimError(msg)
    if (out.exists() or out.is_symlink()) and not overwrite:
        msg = f"{out} exists already; pass overwrite to replace it"
        raise SimError(msg)


class LogWriter:
    """Context manager writing ``(topic, msgtype, log_time_ns, payload)`` into one log.

    ``typestore`` supplies each type's definition, which the log embeds (MCAP schemas, db3
    ``message_definitions``, ROS1 connection headers) so plain readers need no typestore.
    Call :meth:`advance` with a watermark as generation proceeds; leaving the ``with`` block
    normally flushes, closes and renames into place; leaving it by an exception removes it all.
    """

    def __init__(
        self,
        out: Path,
        *,
        fmt: str,
        typestore: Typestore,
        overwrite: bool = False,
        compress: bool = False,
        chunk_bytes: int = 4 << 20,
    ) -> None:
        out = Path(out)
        check_output_path(out, fmt=fmt, overwrite=overwrite)
        self.out = out
        self.fmt = fmt
        self.overwrite = overwrite
        self.counts: dict[str, int] = {}
        self.bytes_written = 0
        self._typestore = typestore
        self._compress = compress
        self._chunk_bytes = chunk_bytes
        self._heap: list[tuple[int, int, str, str, bytes]] = []
        self._seq = 0
        self._last_written = -1
        self._connections: dict[str, Connection] = {}
        self._tmpdir: Path | None = None
        self._writer: Writer1 | Writer2 | None = None
        self._inner: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LogWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        try:
            self._writer = self._open(self._tmpdir)
        except BaseException:
            self._discard()
            raise
        return self

    def _open(self, tmpdir: Path) -> Writer1 | Writer2:
        if self.fmt == "bag":
            self._inner = tmpdir / self.out.name
            bag = Writer1(self._inner)
            bag.chunk_threshold = self._chunk_bytes
            if self._compress:
                bag.set_compression(Writer1.CompressionFormat.LZ4)
            bag.open()
            return bag
        # rosbag2 writes a directory; for MCAP we keep only the .mcap file inside it.
        name = self.out.name if self.fmt == "db3" else self.out.stem
        plugin = StoragePlugin.SQLITE3 if self.fmt == "db3" else StoragePlugin.MCAP
        bag2 = Writer2(tmpdir / name, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
        if self._compress and self.fmt == "mcap":
            bag2.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._inner = tmpdir / name if self.fmt == "db3" else tmpdir / name / f"{name}.mcap"
        bag2.open()
        return bag2

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc_type is not None:
            self._abort()
            return False
        try:
            self._flush(None)
            assert self._writer is not None
            self._writer.close()
            self._writer = None
            self._commit()
        except BaseException:
            self._abort()
            raise
        return False

    def _abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the temp dir goes anyway
                if isinstance(writer, Writer2):
                    writer.abort()
                elif writer.bio is not None:
                    writer.bio.close()
        self._discard()

    def _discard(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _commit(self) -> None:
        """Rename the finished log over ``out``; the old one is moved aside only at the end."""
        assert self._tmpdir is not None
        assert self._inner is not None
        out = self.out
        if (out.exists() or out.is_symlink()) and not self.overwrite:
            msg = f"{out} appeared while simulating; not overwriting it"
            raise SimError(msg)
        if out.exists() and ((out.is_dir() and not out.is_symlink()) or self._inner.is_dir()):
            os.replace(out, self._tmpdir / ".replaced")  # rename cannot replace a directory
        os.replace(self._inner, out)
        self._discard()

    # -- writing -----------------------------------------------------------------------------

    def add(self, topic: str, msgtype: str, *, log_time_ns: int, payload: bytes) -> None:
        """Queue one message; it is written once the watermark passes ``log_time_ns``."""
        if log_time_ns < self._last_written:
            msg = (
                f"{topic} message at {log_time_ns} ns is older than one already written "
                f"({self._last_written} ns): the watermark was advanced too far"
            )
            raise ValueError(msg)
        heapq.heappush(self._heap, (log_time_ns, self._seq, topic, msgtype, payload))
        self._seq += 1

    def advance(self, watermark_ns: int) -> None:
        """Write every queued message logged before ``watermark_ns``: none will precede it."""
        self._flush(watermark_ns)

    @property
    def pending(self) -> int:
        """Messages queued but not yet written (bounded by how far faults delay messages)."""
        return len(self._heap)

    def _flush(self, watermark_ns: int | None) -> None:
        heap = self._heap
        while heap and (watermark_ns is None or heap[0][0] < watermark_ns):
            log_ns, _, topic, msgtype, payload = heapq.heappop(heap)
            self._write(topic, msgtype, log_ns=log_ns, payload=payload)

    def _write(self, topic: str, msgtype: str, *, log_ns: int, payload: bytes) -> None:
        writer = self._writer
        if writer is None:
            msg = "LogWriter used outside its with block"
            raise RuntimeError(msg)
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._connect(writer, topic, msgtype)
        writer.write(connection, log_ns, payload)
        self._last_written = log_ns
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.bytes_written += len(payload)

    def _connect(self, writer: Writer1 | Writer2, topic: str, msgtype: str) -> Connection:
        latched = topic in LATCHED_TOPICS
        if isinstance(writer, Writer1):
            connection = writer.add_connection(
                topic, msgtype, typestore=self._typestore, latching=1 if latched else None
            )
        else:
            connection = writer.add_connection(
                topic,
                msgtype,
                typestore=self._typestore,
                offered_qos_profiles=[_LATCHED_QOS] if latched else [],
            )
        self._connections[topic] = connection
        return connection
