"""Format backends: ROS1 bags, ROS2 bag directories and ``.db3`` files, MCAP (ROS1 and ROS2).

:func:`open_storage` is the one entry point; everything above it sees the
:class:`~bagscope.replay.storage.base.Storage` protocol only. Storage reads bytes and indexes;
decoding belongs to :mod:`bagscope.replay.types` and :mod:`bagscope.replay.decode`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import (
    Connection,
    RawMessage,
    Serialization,
    Source,
    Storage,
    StorageInfo,
    TypeDefinition,
)
from bagscope.replay.storage.detect import Kind, detect
from bagscope.replay.storage.mcapfile import McapFile
from bagscope.replay.storage.merged import MergedStorage
from bagscope.replay.storage.recovery import RecoveredLogWarning, report_recovery
from bagscope.replay.storage.rosbag1 import Rosbag1File
from bagscope.replay.storage.rosbag2 import Rosbag2Dir
from bagscope.replay.storage.sqlite import SqliteFile
from bagscope.replay.storage.stamps import header_stamp_ns

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "BACKENDS",
    "Connection",
    "RawMessage",
    "RecoveredLogWarning",
    "Serialization",
    "Source",
    "Storage",
    "StorageInfo",
    "TypeDefinition",
    "header_stamp_ns",
    "open_storage",
]

# One reader per format, picked by what `detect` finds in the bytes. A new format is one entry.
BACKENDS: Mapping[Kind, Callable[..., Source]] = MappingProxyType(
    {
        "rosbag1": Rosbag1File,
        "mcap": McapFile,
        "sqlite3": SqliteFile,
        "rosbag2": Rosbag2Dir,
    }
)


def open_storage(paths: Sequence[Path], *, strict: bool = False) -> Storage:
    """Open one or more logs as a single time-ordered storage.

    Each path may be a ROS1 ``.bag``, an ``.mcap`` file, a ROS2 bag directory (or its
    ``metadata.yaml``), a bare ``.db3``, or a directory of such files; formats are told apart by
    their magic bytes. A cut-off log is read up to its last intact message with a
    :class:`RecoveredLogWarning` (a ``TruncatedLogError`` when ``strict``).
    """
    if not paths:
        msg = "no log given"
        raise LogOpenError(msg)
    found = [item for path in paths for item in detect(path)]
    sources: list[Source] = []
    try:
        for kind, path in found:
            first_id = sum(len(s.connections) for s in sources)
            source = BACKENDS[kind](path, first_id=first_id)
            sources.append(source)
            note = source.info().recovery_note
            if note:
                report_recovery(note, strict=strict)
    except BaseException:
        for source in sources:
            source.close()
        raise
    return MergedStorage(sources)
