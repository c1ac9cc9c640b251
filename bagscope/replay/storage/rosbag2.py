"""ROS2 bag directories: ``metadata.yaml`` plus one or more ``.db3``/``.mcap`` files.

The metadata gives counts and the time span without touching the files, and it names a topic
once however many split files carry it; each file is still read by its own backend.
"""

from __future__ import annotations

import heapq
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import (
    Connection,
    RawMessage,
    StorageInfo,
    TypeDefinition,
    normalize_msgtype,
    times_by_reading,
)
from bagscope.replay.storage.detect import file_kind
from bagscope.replay.storage.mcapfile import McapFile
from bagscope.replay.storage.sqlite import SqliteFile

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bagscope.replay.storage.base import Progress, TimesById


def _load_metadata(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        info = data["rosbag2_bagfile_information"]
    except (OSError, YAMLError, KeyError, TypeError) as err:
        msg = f"{path}: not a readable rosbag2 metadata.yaml ({err})"
        raise LogOpenError(msg) from err
    if not isinstance(info, dict):
        msg = f"{path}: not a readable rosbag2 metadata.yaml"
        raise LogOpenError(msg)
    return info


class Rosbag2Dir:
    """A rosbag2 directory whose files are merged into one time-ordered stream."""

    def __init__(self, path: Path, *, first_id: int) -> None:
        self.path = path
        meta = _load_metadata(path / "metadata.yaml")
        self.storage = str(meta.get("storage_identifier") or "sqlite3")
        mode = str(meta.get("compression_mode") or "").lower()
        fmt = str(meta.get("compression_format") or "")
        if mode == "file":
            msg = (
                f"{path}: file-compressed rosbag2 ({fmt}) is not supported; decompress it first "
                "(ros2 bag convert)"
            )
            raise LogOpenError(msg)
        self._message_zstd = mode == "message" and fmt == "zstd"
        if mode == "message" and not self._message_zstd:
            msg = f"{path}: unsupported rosbag2 message compression {fmt!r}"
            raise LogOpenError(msg)
        self.files: list[McapFile | SqliteFile] = []
        for rel in meta.get("relative_file_paths") or []:
            self.files.append(self._open_file(path, str(rel)))
        self.connections = self._connections(meta, first_id)
        self.compression = fmt or "+".join(sorted({f.compression for f in self.files})) or "none"
        count = int(meta.get("message_count") or 0)
        start = int((meta.get("starting_time") or {}).get("nanoseconds_since_epoch") or 0)
        duration = int((meta.get("duration") or {}).get("nanoseconds") or 0)
        notes = [f.recovery_note for f in self.files if f.recovery_note]
        self.recovery_note = "; ".join(notes) or None
        self._info = StorageInfo(
            paths=(path,),
            storage=self.storage,
            compression=self.compression,
            start_ns=start if count else 0,
            end_ns=start + duration if count else 0,
            message_count=count,
            size_bytes=sum(f.size for f in self.files),
            complete=self.recovery_note is None,
            recovery_note=self.recovery_note,
            extra={"rosbag2_version": str(meta.get("version", ""))},
        )
        self.definitions: list[TypeDefinition] = [d for f in self.files for d in f.definitions]

    def _open_file(self, path: Path, rel: str) -> McapFile | SqliteFile:
        file = path / rel
        if not file.exists():
            file = path / Path(rel).name  # old rosbag2 stored paths relative to the parent
        if not file.is_file():
            msg = f"{path}: metadata.yaml lists {rel}, which is missing"
            raise LogOpenError(msg)
        kind = file_kind(file)
        if kind == "mcap":
            return McapFile(file, first_id=0)
        if kind == "sqlite3":
            return SqliteFile(file, first_id=0, count=False)
        msg = f"{file}: not an MCAP or sqlite3 file"
        raise LogOpenError(msg)

    def _connections(self, meta: dict[str, Any], first_id: int) -> tuple[Connection, ...]:
        out: dict[tuple[str, str], Connection] = {}
        for entry in meta.get("topics_with_message_count") or []:
            topic = entry.get("topic_metadata") or {}
            if str(topic.get("serialization_format", "cdr")) != "cdr":
                continue
            key = (str(topic.get("name")), normalize_msgtype(str(topic.get("type"))))
            out[key] = Connection(
                id=first_id + len(out),
                topic=key[0],
                msgtype=key[1],
                serialization="cdr",
                count=int(entry.get("message_count") or 0),
                path=self.path,
            )
        # Map each file's own connections onto the directory's, by topic and type.
        self._maps: list[dict[int, Connection]] = []
        for file in self.files:
            mapping: dict[int, Connection] = {}
            for conn in file.connections:
                if (mine := out.get((conn.topic, conn.msgtype))) is None:
                    mine = out[(conn.topic, conn.msgtype)] = Connection(
                        id=first_id + len(out),
                        topic=conn.topic,
                        msgtype=conn.msgtype,
                        serialization=conn.serialization,
                        count=0,
                        path=self.path,
                    )
                mapping[conn.id] = mine
            self._maps.append(mapping)
        return tuple(out.values())

    def info(self) -> StorageInfo:
        """Metadata from ``metadata.yaml``."""
        return self._info

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the connection ``ids`` (None: all) from every file, in time order."""
        streams = []
        for file, mapping in zip(self.files, self._maps, strict=True):
            local = (
                None if ids is None else frozenset(fid for fid, c in mapping.items() if c.id in ids)
            )
            if local is not None and not local:
                continue
            streams.append(
                self._rewrap(file.messages(local, start_ns=start_ns, end_ns=end_ns), mapping)
            )
        if len(streams) == 1:
            yield from streams[0]
        else:
            yield from heapq.merge(*streams, key=attrgetter("log_time_ns"))

    def _rewrap(
        self, stream: Iterator[RawMessage], mapping: dict[int, Connection]
    ) -> Iterator[RawMessage]:
        if self._message_zstd:
            unzstd = zstandard.ZstdDecompressor()
            for m in stream:
                data = unzstd.decompressobj().decompress(m.data)
                yield RawMessage(mapping[m.connection.id], m.log_time_ns, data)
        else:
            for m in stream:
                yield RawMessage(mapping[m.connection.id], m.log_time_ns, m.data)

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection (see :meth:`Source.times`)."""
        del ends_only  # the whole scan is what there is for now
        return times_by_reading(self, ids, progress=progress)

    def close(self) -> None:
        """Close every file."""
        for file in self.files:
            file.close()
