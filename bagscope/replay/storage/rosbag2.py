"""ROS2 bag directories: ``metadata.yaml`` plus one or more ``.db3``/``.mcap`` files.

The metadata gives per-topic counts and the time span without counting the files, and it
names a topic once however many split files carry it; each file is still read by its own
backend. It is written when recording ends, so it is only believed while the files agree with
it (each opens with a cheap check that it is whole): a damaged or cut-off file reports what it
still holds.
"""

from __future__ import annotations

import dataclasses
import heapq
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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
)
from bagscope.replay.storage.detect import file_kind
from bagscope.replay.storage.mcapfile import McapFile
from bagscope.replay.storage.sqlite import SqliteFile
from bagscope.replay.timeparse import format_seconds

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

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
        # Per file: its own connection ids -> the directory's connections.
        self._maps: list[dict[int, Connection]] = []
        try:
            for rel in meta.get("relative_file_paths") or []:
                self.files.append(self._open_file(path, str(rel)))
        except BaseException:
            self.close()
            raise
        self.connections = self._connections(meta, first_id)
        self.compression = fmt or "+".join(sorted({f.compression for f in self.files})) or "none"
        self._info = self._reconcile(meta)
        self.recovery_note = self._info.recovery_note
        self.definitions: list[TypeDefinition] = [d for f in self.files for d in f.definitions]
        for file, mapping in zip(self.files, self._maps, strict=True):
            file.present_as(mapping)

    def _reconcile(self, meta: dict[str, Any]) -> StorageInfo:
        """The directory's summary: the metadata's, unless its files say otherwise.

        metadata.yaml is written when recording ends, so it can describe messages that a
        damaged or cut-off file no longer holds. Its counts and span stand only while every
        file is intact and holds as many messages as it lists; otherwise the files' own
        counts and spans are reported, with a note that says where the metadata disagrees.
        """
        listed = count = int(meta.get("message_count") or 0)
        start = int((meta.get("starting_time") or {}).get("nanoseconds_since_epoch") or 0)
        duration = int((meta.get("duration") or {}).get("nanoseconds") or 0)
        notes = [f.recovery_note for f in self.files if f.recovery_note]
        readable = sum(f.total for f in self.files)
        start_ns, end_ns = (start, start + duration) if count else (0, 0)
        if notes or readable != listed:
            found: dict[int, int] = dict.fromkeys((c.id for c in self.connections), 0)
            for file, mapping in zip(self.files, self._maps, strict=True):
                for fid, n in file.topic_counts().items():
                    found[mapping[fid].id] += n
            self.connections = tuple(
                dataclasses.replace(c, count=found[c.id]) for c in self.connections
            )
            by_id = {c.id: c for c in self.connections}
            self._maps = [{fid: by_id[c.id] for fid, c in m.items()} for m in self._maps]
            spans = [f.info() for f in self.files]
            filled = [i for i in spans if i.message_count]
            start_ns = min((i.start_ns for i in filled), default=0)
            end_ns = max((i.end_ns for i in filled), default=0)
            count = sum(found.values())
            if readable < listed:
                notes.append(
                    f"metadata.yaml lists {listed} messages over {format_seconds(duration)} s; "
                    f"{readable} could be read"
                )
        note = "; ".join(notes) or None
        return StorageInfo(
            paths=(self.path,),
            storage=self.storage,
            compression=self.compression,
            start_ns=start_ns,
            end_ns=end_ns,
            message_count=count,
            size_bytes=sum(f.size for f in self.files),
            complete=note is None,
            recovery_note=note,
            extra={"rosbag2_version": str(meta.get("version", ""))},
        )

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
        self._maps = []
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
        """Metadata from ``metadata.yaml``, or from the files where it does not hold."""
        return self._info

    @staticmethod
    def _file_ids(
        mapping: dict[int, Connection], ids: frozenset[int] | None
    ) -> frozenset[int] | None:
        """The file's own ids of the directory's connection ``ids`` (None: all)."""
        if ids is None:
            return None
        return frozenset(fid for fid, c in mapping.items() if c.id in ids)

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the connection ``ids`` (None: all) from every file, in time order.

        The files already hand out the directory's connections (see `FileSource.present_as`),
        so a message passes through here untouched unless its payload is compressed.
        """
        streams = []
        for file, mapping in zip(self.files, self._maps, strict=True):
            local = self._file_ids(mapping, ids)
            if local is not None and not local:
                continue
            stream = file.messages(local, start_ns=start_ns, end_ns=end_ns)
            streams.append(self._decompressed(stream) if self._message_zstd else stream)
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=attrgetter("log_time_ns"))

    @staticmethod
    def _decompressed(stream: Iterator[RawMessage]) -> Iterator[RawMessage]:
        unzstd = zstandard.ZstdDecompressor()
        for m in stream:
            data = unzstd.decompressobj().decompress(m.data)
            yield RawMessage(m.connection, m.log_time_ns, data)

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection, each file's from its own index (see `Source.times`).

        Payload compression does not matter here: times are never in the payload.
        """
        parts: dict[int, list[NDArray[np.int64]]] = {}
        for file, mapping in zip(self.files, self._maps, strict=True):
            local = self._file_ids(mapping, ids)
            if local is not None and not local:
                continue
            for fid, times in file.times(local, ends_only=ends_only, progress=progress).items():
                parts.setdefault(mapping[fid].id, []).append(times)
        out: TimesById = {}
        for cid, arrays in parts.items():
            joined = (
                np.sort(np.concatenate(arrays), kind="stable") if len(arrays) > 1 else arrays[0]
            )
            out[cid] = joined[[0, -1]] if ends_only and joined.size > 2 else joined
        return out

    def close(self) -> None:
        """Close every file."""
        for file in self.files:
            file.close()
