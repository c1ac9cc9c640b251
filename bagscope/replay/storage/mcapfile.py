"""MCAP files (ROS2 ``cdr`` and ROS1 ``ros1msg`` profiles) read from a memory map.

Our own reader rather than the ``mcap`` library: the summary's chunk indexes let us skip chunks
by time and channel, uncompressed chunks are handed out as zero-copy views of the map, and a
file whose recorder died (no summary, no footer, a half-written chunk) is still read by a
linear scan up to the last intact record. Record layouts follow the MCAP specification.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import lz4.frame  # type: ignore[import-untyped]
import zstandard

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import (
    Connection,
    RawMessage,
    StorageInfo,
    TypeDefinition,
    normalize_msgtype,
    times_by_reading,
)
from bagscope.replay.storage.chunks import (
    ChunkSpan,
    Entry,
    MappedChunkFile,
    ResidentWindow,
    entry_time,
    release_pages,
)
from bagscope.replay.storage.recovery import span_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    from bagscope.replay.storage.base import Progress, Serialization, TimesById

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 1, 2, 3, 4, 5, 6
OP_CHUNK_INDEX, OP_STATISTICS, OP_DATA_END = 8, 11, 15
_REC = struct.Struct("<BQ")
_MSG = struct.Struct("<HIQQ")  # channel, sequence, log time, publish time
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FOOTER_SIZE = 9 + 20 + len(MAGIC)
_ENCODINGS: Mapping[str, Serialization] = {"cdr": "cdr", "ros1": "ros1"}

Buffer = bytes | mmap.mmap


class _BrokenRecordError(Exception):
    """A record runs past its buffer or is malformed."""


def _string(buf: Buffer, pos: int) -> tuple[str, int]:
    (length,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + length
    if end > len(buf):
        raise _BrokenRecordError
    return bytes(buf[pos + 4 : end]).decode(errors="replace"), end


@dataclass(frozen=True, slots=True)
class _Schema:
    name: str
    encoding: str
    data: str


@dataclass(frozen=True, slots=True)
class _Channel:
    topic: str
    schema_id: int
    encoding: str


@dataclass(frozen=True, slots=True)
class _ChunkRef:
    compression: str
    start: int  # compressed records in the file
    end: int
    size: int  # uncompressed size
    intact: bool


@dataclass(slots=True)
class _Contents:
    schemas: dict[int, _Schema] = field(default_factory=dict)
    channels: dict[int, _Channel] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    chunks: list[ChunkSpan] = field(default_factory=list)
    loose: list[Entry] = field(default_factory=list)  # messages outside chunks
    start_ns: int = 0
    end_ns: int = 0


def _parse_schema(buf: Buffer, pos: int) -> tuple[int, _Schema]:
    (sid,) = _U16.unpack_from(buf, pos)
    name, pos = _string(buf, pos + 2)
    encoding, pos = _string(buf, pos)
    data, _ = _string(buf, pos)
    return sid, _Schema(name, encoding, data)


def _parse_channel(buf: Buffer, pos: int) -> tuple[int, _Channel]:
    cid, sid = struct.unpack_from("<HH", buf, pos)
    topic, pos = _string(buf, pos + 4)
    encoding, _ = _string(buf, pos)
    return cid, _Channel(topic, sid, encoding)


def _decompress(data: memoryview, ref: _ChunkRef) -> bytes:
    try:
        if ref.compression == "zstd":
            if ref.intact:
                # A decompressor per chunk: they are cheap and not safe to share across threads.
                return zstandard.ZstdDecompressor().decompress(data, max_output_size=ref.size)
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if ref.compression == "lz4":
            if ref.intact:
                return bytes(lz4.frame.decompress(bytes(data)))
            return bytes(lz4.frame.LZ4FrameDecompressor().decompress(bytes(data)))
    except (zstandard.ZstdError, RuntimeError, ValueError) as err:
        if not ref.intact:
            return b""
        msg = f"corrupt {ref.compression} chunk: {err}"
        raise LogOpenError(msg) from err
    msg = f"unsupported MCAP chunk compression {ref.compression!r}"
    raise LogOpenError(msg)


def _chunk_buffer(mm: mmap.mmap, ref: _ChunkRef) -> tuple[Buffer, int, int]:
    if not ref.compression:
        return mm, ref.start, ref.end
    buf = _decompress(memoryview(mm)[ref.start : ref.end], ref)
    return buf, 0, len(buf)


def _chunk_ref(mm: mmap.mmap, pos: int, end: int) -> _ChunkRef:
    """Locate the records of the chunk record whose body starts at ``pos``."""
    (size,) = _U64.unpack_from(mm, pos + 16)
    compression, p = _string(mm, pos + 28)
    (length,) = _U64.unpack_from(mm, p)
    start = p + 8
    stop = start + length
    return _ChunkRef(compression, start, min(stop, end), size, intact=stop <= end)


class McapFile(MappedChunkFile):
    """One MCAP file as a chunked, time-indexed source of raw messages."""

    def __init__(self, path: Path, *, first_id: int) -> None:
        self.path = path
        with path.open("rb") as file:
            try:
                self._mm = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as err:
                msg = f"{path}: empty file, not an MCAP file"
                raise LogOpenError(msg) from err
        mm = self._mm
        self.size = len(mm)
        if mm[: len(MAGIC)] != MAGIC:
            mm.close()
            msg = f"{path}: not an MCAP file (bad magic)"
            raise LogOpenError(msg)
        self.profile = self._profile()
        self.recovery_note: str | None = None
        contents = self._read_summary()
        if contents is None:
            contents, complete, lost = self._scan()
            if not complete:
                self.recovery_note = self._note(contents, lost)
        self._chunks = contents.chunks
        self._loose = contents.loose
        self._start_ns, self._end_ns = contents.start_ns, contents.end_ns
        self.compression = (
            "+".join(sorted({cast("_ChunkRef", c.ref).compression or "none" for c in self._chunks}))
            or "none"
        )
        self.storage = "mcap-ros1" if self.profile == "ros1" else "mcap"
        self._build_connections(contents, first_id)
        release_pages(mm)

    def _build_connections(self, contents: _Contents, first_id: int) -> None:
        self._local: dict[int, Connection] = {}
        self.definitions: list[TypeDefinition] = []
        self.skipped: list[str] = []
        for cid in sorted(contents.channels):
            channel = contents.channels[cid]
            schema = contents.schemas.get(channel.schema_id)
            serialization = _ENCODINGS.get(channel.encoding)
            if schema is None or serialization is None:
                self.skipped.append(channel.topic)
                continue
            msgtype = normalize_msgtype(schema.name)
            self._local[cid] = Connection(
                id=first_id + len(self._local),
                topic=channel.topic,
                msgtype=msgtype,
                serialization=serialization,
                count=contents.counts.get(cid, 0),
                path=self.path,
            )
            if schema.data and schema.encoding in ("ros1msg", "ros2msg", "ros2idl"):
                self.definitions.append(
                    TypeDefinition(
                        msgtype=msgtype,
                        text=schema.data,
                        encoding="idl" if schema.encoding == "ros2idl" else "msg",
                        serialization=serialization,
                    )
                )
        self.connections = tuple(self._local.values())
        self._by_id = {c.id: cid for cid, c in self._local.items()}

    def _profile(self) -> str:
        try:
            op, _ = _REC.unpack_from(self._mm, len(MAGIC))
            if op == OP_HEADER:
                profile, _ = _string(self._mm, len(MAGIC) + 9)
                return profile
        except (struct.error, _BrokenRecordError):
            pass
        return ""

    # -- summary -----------------------------------------------------------------------------
    def _read_summary(self) -> _Contents | None:
        """Everything from the summary section, or None when there is no usable one."""
        mm, size = self._mm, self.size
        if size < len(MAGIC) + _FOOTER_SIZE or mm[size - len(MAGIC) :] != MAGIC:
            return None
        footer = size - _FOOTER_SIZE
        op, length = _REC.unpack_from(mm, footer)
        if op != OP_FOOTER or length != 20:
            return None
        summary_start, summary_offset_start = struct.unpack_from("<QQ", mm, footer + 9)
        if not summary_start or summary_start >= footer:
            return None
        stop = summary_offset_start or footer
        contents = _Contents()
        stats = False
        pos = summary_start
        try:
            while pos < stop:
                op, length = _REC.unpack_from(mm, pos)
                body = pos + 9
                pos = body + length
                if pos > stop:
                    return None
                if op == OP_SCHEMA:
                    sid, schema = _parse_schema(mm, body)
                    contents.schemas[sid] = schema
                elif op == OP_CHANNEL:
                    cid, channel = _parse_channel(mm, body)
                    contents.channels[cid] = channel
                elif op == OP_STATISTICS:
                    stats = True
                    self._read_statistics(body, contents)
                elif op == OP_CHUNK_INDEX:
                    contents.chunks.append(self._read_chunk_index(body))
        except (struct.error, _BrokenRecordError):
            return None
        total = sum(contents.counts.values())
        if not stats or (total > 0 and not contents.chunks):
            return None  # unchunked or statistics-less files are scanned instead
        return contents

    def _read_statistics(self, pos: int, contents: _Contents) -> None:
        mm = self._mm
        (count,) = _U64.unpack_from(mm, pos)
        start, end = struct.unpack_from("<QQ", mm, pos + 8 + 2 + 4 * 4)
        (length,) = _U32.unpack_from(mm, pos + 42)
        counts = struct.iter_unpack("<HQ", mm[pos + 46 : pos + 46 + length])
        contents.counts = {int(c): int(n) for c, n in counts}
        if count:
            contents.start_ns, contents.end_ns = int(start), int(end)

    def _read_chunk_index(self, pos: int) -> ChunkSpan:
        mm = self._mm
        start, end, chunk_pos = struct.unpack_from("<QQQ", mm, pos)
        (length,) = _U32.unpack_from(mm, pos + 32)
        offsets = struct.iter_unpack("<HQ", mm[pos + 36 : pos + 36 + length])
        ids = frozenset(int(c) for c, _ in offsets)
        # Everything about the chunk's records is in its index entry: computing where they
        # start, rather than reading each chunk's header, keeps opening a log from touching a
        # page per chunk all over the file (slow on a cold cache, and resident memory after).
        compression, p = _string(mm, pos + 36 + length + 8)
        compressed_size, uncompressed_size = struct.unpack_from("<QQ", mm, p)
        # chunk record: opcode, length, start/end time, size, crc, compression, records length
        records = chunk_pos + 9 + 8 + 8 + 8 + 4 + 4 + len(compression.encode()) + 8
        stop = records + compressed_size
        ref = _ChunkRef(
            compression, records, min(stop, self.size), uncompressed_size, stop <= self.size
        )
        return ChunkSpan(start_ns=start, end_ns=end, ids=ids, position=chunk_pos, ref=ref)

    # -- recovery ----------------------------------------------------------------------------
    def _scan(self) -> tuple[_Contents, bool, int]:
        """Walk the data section; return its contents, whether it ended properly, bytes lost."""
        mm, size = self._mm, self.size
        contents = _Contents()
        pos = len(MAGIC)
        complete = False
        times: list[int] = []
        while pos + 9 <= size:
            op, length = _REC.unpack_from(mm, pos)
            body = pos + 9
            cut = body + length > size
            try:
                if op == OP_CHUNK:
                    ref = _chunk_ref(mm, body, size)
                    buf, start, stop = _chunk_buffer(mm, ref)
                    span = self._scan_records(buf, start, stop=stop, contents=contents)
                    if span is not None:
                        contents.chunks.append(
                            ChunkSpan(
                                start_ns=span[0], end_ns=span[1], ids=span[2], position=pos, ref=ref
                            )
                        )
                        times += span[:2]
                elif cut:
                    break
                elif op == OP_SCHEMA:
                    sid, schema = _parse_schema(mm, body)
                    contents.schemas.setdefault(sid, schema)
                elif op == OP_CHANNEL:
                    cid, channel = _parse_channel(mm, body)
                    contents.channels.setdefault(cid, channel)
                elif op == OP_MESSAGE:
                    cid, _, t, _ = _MSG.unpack_from(mm, body)
                    contents.loose.append((t, cid, memoryview(mm)[body + 22 : body + length]))
                    contents.counts[cid] = contents.counts.get(cid, 0) + 1
                    times.append(t)
                elif op in (OP_DATA_END, OP_FOOTER):
                    complete = True
                    pos = size
                    break
            except (struct.error, _BrokenRecordError):
                break
            if cut:
                break
            pos = body + length
        if contents.loose:
            contents.loose.sort(key=entry_time)
        if times:
            contents.start_ns, contents.end_ns = min(times), max(times)
        return contents, complete, size - pos

    def _scan_records(
        self, buf: Buffer, pos: int, *, stop: int, contents: _Contents
    ) -> tuple[int, int, frozenset[int]] | None:
        """Note the schemas, channels and message counts of one chunk's records."""
        first, last = -1, -1
        ids: set[int] = set()
        try:
            while pos + 9 <= stop:
                op, length = _REC.unpack_from(buf, pos)
                body = pos + 9
                pos = body + length
                if pos > stop:
                    break
                if op == OP_MESSAGE:
                    cid, _, t, _ = _MSG.unpack_from(buf, body)
                    contents.counts[cid] = contents.counts.get(cid, 0) + 1
                    ids.add(cid)
                    first = t if first < 0 else min(first, t)
                    last = max(last, t)
                elif op == OP_SCHEMA:
                    sid, schema = _parse_schema(buf, body)
                    contents.schemas.setdefault(sid, schema)
                elif op == OP_CHANNEL:
                    cid, channel = _parse_channel(buf, body)
                    contents.channels.setdefault(cid, channel)
        except (struct.error, _BrokenRecordError):
            pass
        return (first, last, frozenset(ids)) if ids else None

    def _note(self, contents: _Contents, lost: int) -> str:
        count = sum(contents.counts.values())
        return (
            f"{self.path.name}: MCAP file has no summary/footer (cut off?); "
            f"{span_text(count, contents.start_ns, contents.end_ns)}; "
            f"last intact record ends {lost} bytes before the end of the file"
        )

    # -- messages ----------------------------------------------------------------------------
    def info(self) -> StorageInfo:
        """Metadata from the summary (or the recovery scan)."""
        extra = {"profile": self.profile}
        if self.skipped:
            extra["skipped_topics"] = ",".join(self.skipped)
        return StorageInfo(
            paths=(self.path,),
            storage=self.storage,
            compression=self.compression,
            start_ns=self._start_ns,
            end_ns=self._end_ns,
            message_count=sum(c.count for c in self.connections),
            size_bytes=self.size,
            complete=self.recovery_note is None,
            recovery_note=self.recovery_note,
            extra=extra,
        )

    def _load(
        self, wanted: frozenset[int], start_ns: int | None, end_ns: int | None
    ) -> Callable[[ChunkSpan], list[Entry]]:
        mm = self._mm
        view = memoryview(mm)
        window = ResidentWindow(mm)
        lo = -1 if start_ns is None else start_ns
        hi = 1 << 64 if end_ns is None else end_ns
        unpack_rec, unpack_msg = _REC.unpack_from, _MSG.unpack_from

        def load(chunk: ChunkSpan) -> list[Entry]:
            if chunk.ref is None:
                return [e for e in self._loose if e[1] in wanted and lo <= e[0] < hi]
            buf, pos, stop = _chunk_buffer(mm, cast("_ChunkRef", chunk.ref))
            if buf is mm:
                window.touched(pos, stop)
            source = view if buf is mm else memoryview(buf)
            entries: list[Entry] = []
            append = entries.append
            try:
                while pos + 9 <= stop:
                    op, length = unpack_rec(buf, pos)
                    body = pos + 9
                    pos = body + length
                    if op == OP_MESSAGE and pos <= stop:
                        cid, _, t, _ = unpack_msg(buf, body)
                        if cid in wanted and lo <= t < hi:
                            append((t, cid, source[body + 22 : pos]))
            except struct.error:
                pass  # a cut-off chunk ends inside a record header
            entries.sort(key=entry_time)
            return entries

        return load

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the global connection ``ids`` (None: all) in time order."""
        wanted = self._wanted(ids)
        chunks = list(self._chunks)
        if self._loose:
            chunks.append(
                ChunkSpan(
                    start_ns=self._loose[0][0],
                    end_ns=self._loose[-1][0],
                    ids=frozenset(e[1] for e in self._loose),
                    position=0,
                )
            )
        return self._stream(chunks, wanted, start_ns=start_ns, end_ns=end_ns)

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection (see :meth:`Source.times`)."""
        del ends_only  # the whole scan is what there is for now
        return times_by_reading(self, ids, progress=progress)
