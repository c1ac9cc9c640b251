"""Write a stream of serialized messages to a real log, atomically and in log-time order.

The simulator produces messages roughly in stamp order, but faults (delays, reordering,
duplicates) make log times run ahead of or behind it. :class:`LogWriter` keeps a heap of pending
messages and writes out everything older than a *watermark* the caller advances, a promise that
no later message will be logged before it; memory is bounded by how far ahead faults push
messages, never by the length of the drive.

Everything is written into a hidden temporary sibling of ``out`` and renamed into place only
when complete, so a failed or interrupted run leaves nothing behind and never clobbers an
existing log until its replacement is whole. Sidecars (the ``.truth.json``) travel the same
way, so a log never appears without its truth, nor a truth without its log.
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

from bagscope.interrupts import deferred_interrupt
from bagscope.sim.choices import DEFAULT_FORMAT, FORMATS
from bagscope.sim.errors import OutputExistsError, SimError

if TYPE_CHECKING:
    from types import TracebackType

    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

__all__ = ["FORMATS", "LogWriter", "check_output_path", "format_for_path", "is_bag_directory"]

_SUFFIX_FORMATS = {".mcap": "mcap", ".db3": "db3", ".bag": "bag"}

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
    """The format a log name asks for when no format is given, so that no name is an error.

    ``drive.bag`` is a ROS1 bag file; ``drive.mcap`` one MCAP file; ``drive.db3`` a rosbag2
    directory named ``drive.db3`` holding ``drive.db3`` (sqlite3) and ``metadata.yaml``; any
    other name, a bare ``drive`` included, gets the default, MCAP, as a rosbag2 directory
    ``drive`` holding ``drive.mcap`` and ``metadata.yaml``, the layout ``ros2 bag record -o
    drive`` writes. The name the user gave is always the path to open (``replay info drive``).
    """
    return _SUFFIX_FORMATS.get(Path(path).suffix, DEFAULT_FORMAT)


def is_bag_directory(out: Path, fmt: str) -> bool:
    """Whether the log at ``out`` is a rosbag2 directory rather than a single file.

    ROS1 bags are always one file and ``*.mcap`` asks for one; every other rosbag2 log is a
    directory with ``metadata.yaml``, the only form in which rosbag2 readers open sqlite3
    storage, and the one ``ros2 bag record`` writes for either storage.
    """
    return fmt == "db3" or (fmt == "mcap" and Path(out).suffix != ".mcap")


def _storage_stem(out: Path, fmt: str) -> str:
    """The name of the storage file in a bag directory, less its suffix: ``drive.db3/drive.db3``
    rather than ``drive.db3/drive.db3.db3``."""
    return out.stem if fmt == "db3" and out.suffix == ".db3" else out.name


def check_output_path(out: Path, *, fmt: str, overwrite: bool = False) -> None:
    """Refuse, in one clear line, an output that readers could not open or that would clobber.

    rosbags picks its reader by suffix, so a name whose suffix says one format never holds
    another, and a ROS1 bag (one file, never a directory) must end in ``.bag``. Even with
    ``overwrite`` a directory that is not a rosbag2 bag is refused: replacing it would delete
    whatever the user keeps there.
    """
    out = Path(out)
    if fmt not in FORMATS:
        msg = f"unknown log format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise SimError(msg, parameter="fmt")
    if out.name in {"", ".", ".."}:
        msg = f"{str(out)!r} names a directory, not a log; add a name such as {out / 'drive'}"
        raise SimError(msg, parameter="out")
    named = _SUFFIX_FORMATS.get(out.suffix)
    if fmt == "bag" and named != "bag":
        msg = f"a bag log must be named *.bag, got {out.name!r}"
        raise SimError(msg, parameter="fmt")
    if named is not None and named != fmt:
        msg = f"{out.name!r} names a {named} log, not {fmt}; rename it or change the format"
        raise SimError(msg, parameter="fmt")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputExistsError(out)
        if out.is_dir() and not out.is_symlink() and not (out / "metadata.yaml").is_file():
            msg = f"{out} is a directory but not a rosbag2 bag; not replacing it"
            raise SimError(msg, parameter="out")


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
        self._sidecars: list[tuple[Path, Path]] = []  # (written in the temp dir, destination)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LogWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Ctrl-C between mkdtemp creating the folder and us holding its name would leave
            # the folder behind: the interrupt waits until the name is kept.
            with deferred_interrupt():
                prefix = f".{self.out.name}."
                self._tmpdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.out.parent))
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
        # rosbag2 writes a directory named like its storage file; for a *.mcap log we keep
        # only the .mcap file inside it.
        plugin = StoragePlugin.SQLITE3 if self.fmt == "db3" else StoragePlugin.MCAP
        if is_bag_directory(self.out, self.fmt):
            bag_dir = self._inner = tmpdir / _storage_stem(self.out, self.fmt)
        else:
            bag_dir = tmpdir / self.out.stem
            self._inner = bag_dir / f"{self.out.stem}.mcap"
        bag2 = Writer2(bag_dir, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
        if self._compress and self.fmt == "mcap":
            bag2.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
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
            with deferred_interrupt():  # a second Ctrl-C must not stop the clean-up halfway
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    def _commit(self) -> None:
        """Rename the finished log and its sidecars into place; old ones go only at the end.

        If this is interrupted halfway (Ctrl-C between two renames), what was already placed
        is removed again: a log without its truth is worse than no log.
        """
        tmpdir, inner, out = self._tmpdir, self._inner, self.out
        assert tmpdir is not None
        assert inner is not None
        if (out.exists() or out.is_symlink()) and not self.overwrite:
            msg = f"{out} appeared while simulating; not overwriting it"
            raise SimError(msg, parameter="out")
        umask = _umask()
        moves = [(inner, out), *self._sidecars]
        for source, _ in moves:
            _give_default_modes(source, umask)
        placed: list[Path] = []
        try:
            for k, (source, target) in enumerate(moves):
                if _needs_moving_aside(source, target):  # rename cannot replace a directory
                    os.replace(target, tmpdir / f".replaced{k}")
                os.replace(source, target)
                placed.append(target)
        except BaseException:
            for target in placed:
                _remove(target)
            raise
        self._discard()

    # -- sidecars ----------------------------------------------------------------------------

    def add_sidecar(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` (beside the log) when, and only if, the log is written."""
        if self._tmpdir is None:
            msg = "LogWriter used outside its with block"
            raise RuntimeError(msg)
        staged = self._tmpdir / f".sidecar{len(self._sidecars)}"
        staged.write_bytes(data)
        self._sidecars.append((staged, Path(path)))

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

    def flush(self) -> None:
        """Write everything queued, so :attr:`counts` is final before a sidecar reports it."""
        self._flush(None)

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


def _needs_moving_aside(source: Path, target: Path) -> bool:
    if target.is_dir() and not target.is_symlink():
        return True
    return source.is_dir() and (target.exists() or target.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask; Linux shows it in /proc, elsewhere reading it means setting it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _give_default_modes(path: Path, umask: int) -> None:
    """Give ``path`` (and all a directory holds) the modes plain ``open`` and ``mkdir`` would.

    The pieces of a log come from writers that disagree: the temp directory is 0700, sqlite
    makes 0644 files and rosbags 0755 directories whatever the umask, and ``mkstemp`` 0600; a
    user's log should carry the user's umask like any other file they create.
    """
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not item.is_symlink():
            item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)
