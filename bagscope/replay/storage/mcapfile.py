"""MCAP files (ROS2 ``cdr`` and ROS1 ``ros1msg`` profiles) read from a memory map.

Our own reader rather than the ``mcap`` library: the summary's chunk indexes let us skip chunks
by time and channel, uncompressed chunks are handed out as zero-copy views of the map, and a
file whose recorder died (no summary, no footer, a half-written chunk) is still read by a
linear scan up to the last intact record. Record layouts follow the MCAP specification.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np

from bagscope.replay.storage.base import Connection, TypeDefinition, normalize_msgtype
from bagscope.replay.storage.chunks import (
    BrokenRecordError,
    ChunkRef,
    ChunkSpan,
    Entry,
    MappedChunkFile,
    ResidentWindow,
    chunk_buffer,
    entry_time,
    map_file,
    release_pages,
)
from bagscope.replay.storage.recovery import span_text

if TYPE_CHECKING:
    import mmap
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    from numpy.typing import NDArray

    from bagscope.replay.storage.base import Progress, RawMessage, Serialization, TimesById
    from bagscope.replay.storage.chunks import Buffer, LocalTimes

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 1, 2, 3, 4, 5, 6
OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_STATISTICS, OP_DATA_END = 7, 8, 11, 15
_REC = struct.Struct("<BQ")
_MSG = struct.Struct("<HIQQ")  # channel, sequence, log time, publish time
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FOOTER_SIZE = 9 + 20 + len(MAGIC)
_ENCODINGS: Mapping[str, Serialization] = {"cdr": "cdr", "ros1": "ros1"}


def _string(buf: Buffer, pos: int) -> tuple[str, int]:
    (length,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + length
    if end > len(buf):
        raise BrokenRecordError
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


@dataclass(slots=True)
class _Contents:
    schemas: dict[int, _Schema] = field(default_factory=dict)
    channels: dict[int, _Channel] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    chunks: list[ChunkSpan] = field(default_factory=list)
    loose: list[Entry] = field(default_factory=list)  # messages outside chunks
    start_ns: int = 0
    end_ns: int = 0

    def add_definition(self, op: int, buf: Buffer, body: int) -> None:
        """Keep a Schema or Channel record (files may repeat them; the first of an id wins)."""
        if op == OP_SCHEMA:
            sid, schema = _parse_schema(buf, body)
            self.schemas.setdefault(sid, schema)
        else:
            cid, channel = _parse_channel(buf, body)
            self.channels.setdefault(cid, channel)


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


def _chunk_ref(mm: mmap.mmap, pos: int, end: int) -> ChunkRef:
    """Locate the records of the chunk record whose body starts at ``pos``."""
    (size,) = _U64.unpack_from(mm, pos + 16)
    compression, p = _string(mm, pos + 28)
    (length,) = _U64.unpack_from(mm, p)
    start = p + 8
    stop = start + length
    return ChunkRef(compression or "none", start, min(stop, end), stop <= end, size)


def _message_index(mm: mmap.mmap, pos: int, channel: int) -> NDArray[np.int64] | None:
    """Log times of the Message Index record at ``pos``; None when it is not one for ``channel``."""
    try:
        op, length = _REC.unpack_from(mm, pos)
        cid, nbytes = struct.unpack_from("<HI", mm, pos + 9)
    except struct.error:
        return None
    start = pos + 9 + 6
    if op != OP_MESSAGE_INDEX or cid != channel or nbytes % 16 or nbytes + 6 > length:
        return None
    if start + nbytes > len(mm):
        return None
    # (log time, offset) pairs; the copy frees the map for close().
    pairs = np.frombuffer(mm, dtype="<u8", count=nbytes // 8, offset=start)
    return pairs[0::2].astype(np.int64)


class McapFile(MappedChunkFile):
    """One MCAP file as a chunked, time-indexed source of raw messages."""

    def __init__(self, path: Path, *, first_id: int) -> None:
        self.path = path
        self._mm = mm = map_file(path, MAGIC, what="an MCAP file", magic_name="bad magic")
        self.size = len(mm)
        self.profile = self._profile()
        contents = self._read_summary()
        if contents is None:
            contents, complete, lost = self._scan()
            if not complete:
                self.recovery_note = self._note(contents, lost)
        self._chunks = contents.chunks
        self._loose = contents.loose
        self._start_ns, self._end_ns = contents.start_ns, contents.end_ns
        self.compression = (
            "+".join(sorted({cast("ChunkRef", c.ref).compression for c in self._chunks})) or "none"
        )
        self.storage = "mcap-ros1" if self.profile == "ros1" else "mcap"
        self._total = sum(contents.counts.values())
        self._build_connections(contents, first_id)
        release_pages(mm)

    def _build_connections(self, contents: _Contents, first_id: int) -> None:
        local: dict[int, Connection] = {}
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
            local[cid] = Connection(
                id=first_id + len(local),
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
        self._index_connections(local)

    def _profile(self) -> str:
        try:
            op, _ = _REC.unpack_from(self._mm, len(MAGIC))
            if op == OP_HEADER:
                profile, _ = _string(self._mm, len(MAGIC) + 9)
                return profile
        except (struct.error, BrokenRecordError):
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
                if op in (OP_SCHEMA, OP_CHANNEL):
                    contents.add_definition(op, mm, body)
                elif op == OP_STATISTICS:
                    stats = True
                    self._read_statistics(body, contents)
                elif op == OP_CHUNK_INDEX:
                    contents.chunks.append(self._read_chunk_index(body))
        except (struct.error, BrokenRecordError):
            return None
        total = sum(contents.counts.values())
        if not stats or (total > 0 and not contents.chunks):
            return None  # unchunked or statistics-less files are scanned instead
        # Writers may leave out message indexes (the mcap library's `index_types`): such a
        # chunk does not say which channels it holds, so it may hold any.
        every = frozenset(contents.channels)
        contents.chunks = [
            c if c.ids else dataclasses.replace(c, ids=every, exact=False) for c in contents.chunks
        ]
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
        pairs = struct.iter_unpack("<HQ", mm[pos + 36 : pos + 36 + length])
        index = tuple((int(c), int(o)) for c, o in pairs)
        # Everything about the chunk's records is in its index entry: computing where they
        # start, rather than reading each chunk's header, keeps opening a log from touching a
        # page per chunk all over the file (slow on a cold cache, and resident memory after).
        compression, p = _string(mm, pos + 36 + length + 8)
        compressed_size, uncompressed_size = struct.unpack_from("<QQ", mm, p)
        # chunk record: opcode, length, start/end time, size, crc, compression, records length
        records = chunk_pos + 9 + 8 + 8 + 8 + 4 + 4 + len(compression.encode()) + 8
        stop = records + compressed_size
        ref = ChunkRef(
            compression or "none",
            records,
            min(stop, self.size),
            stop <= self.size,
            uncompressed_size,
            index,
        )
        ids = frozenset(c for c, _ in index)
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
                    buf, start, stop = chunk_buffer(mm, ref)
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
                elif op in (OP_SCHEMA, OP_CHANNEL):
                    contents.add_definition(op, mm, body)
                elif op == OP_MESSAGE:
                    cid, _, t, _ = _MSG.unpack_from(mm, body)
                    contents.loose.append((t, cid, memoryview(mm)[body + 22 : body + length]))
                    contents.counts[cid] = contents.counts.get(cid, 0) + 1
                    times.append(t)
                elif op in (OP_DATA_END, OP_FOOTER):
                    complete = True
                    pos = size
                    break
            except (struct.error, BrokenRecordError):
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
                elif op in (OP_SCHEMA, OP_CHANNEL):
                    contents.add_definition(op, buf, body)
        except (struct.error, BrokenRecordError):
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
    @property
    def total(self) -> int:
        """Every message in the file, also on channels without a usable schema."""
        return self._total

    def _extra(self) -> dict[str, str]:
        extra = {"profile": self.profile}
        if self.skipped:
            extra["skipped_topics"] = ",".join(self.skipped)
        return extra

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
            buf, pos, stop = chunk_buffer(mm, cast("ChunkRef", chunk.ref))
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

    def _all_chunks(self) -> list[ChunkSpan]:
        """The chunks, plus messages outside chunks as one pseudo-chunk (``ref`` None)."""
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
        return chunks

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the global connection ``ids`` (None: all) in time order."""
        wanted = self._wanted(ids)
        return self._stream(self._all_chunks(), wanted, start_ns=start_ns, end_ns=end_ns)

    def _chunk_times(self, chunk: ChunkSpan, ids: frozenset[int]) -> LocalTimes:
        """From the chunk's Message Index records, which follow it: no payload is touched.

        A chunk without them (a writer may leave them out, a recovered file has none) or with
        one that does not check out is read record by record instead.
        """
        ref = cast("ChunkRef | None", chunk.ref)
        offsets = dict(ref.index) if ref is not None else {}
        out: LocalTimes = {}
        for cid in ids:
            times = _message_index(self._mm, offsets[cid], cid) if cid in offsets else None
            if times is None:
                return self._loaded_times(chunk, ids)
            out[cid] = times
        return out

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection from the message indexes (see :meth:`Source.times`)."""
        return self._times(self._all_chunks(), ids, ends_only=ends_only, progress=progress)
