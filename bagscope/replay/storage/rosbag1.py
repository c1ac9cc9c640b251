"""ROS1 ``.bag`` files (format 2.0), read straight from a memory map.

The index at the end of a bag lists connections and, per chunk, its time span and message
counts: that is all :attr:`info` needs. A bag whose recorder died has no index (rosbags refuses
it), so the same records are then found by a linear scan that stops at the last intact one,
salvaging even the readable part of a half-written chunk.
"""

from __future__ import annotations

import contextlib
import mmap
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
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bagscope.replay.storage.base import Progress, RawMessage, TimesById
    from bagscope.replay.storage.chunks import Buffer, LocalTimes

MAGIC = b"#ROSBAG V2.0\n"
OP_MSG, OP_BAG_HEADER, OP_INDEX, OP_CHUNK, OP_CHUNK_INFO, OP_CONNECTION = 2, 3, 4, 5, 6, 7
_U32 = struct.Struct("<I")
_TIME = struct.Struct("<II")
# IndexData (version 1) entries: time (sec, nsec), offset of the message in the chunk
_INDEX_ENTRY = np.dtype([("sec", "<u4"), ("nsec", "<u4"), ("offset", "<u4")])


def _fields(buf: Buffer, start: int, end: int) -> dict[bytes, bytes]:
    """Parse a ROS1 record header (``len name=value`` fields)."""
    out: dict[bytes, bytes] = {}
    pos = start
    while pos < end:
        if pos + 4 > end:
            raise BrokenRecordError
        (length,) = _U32.unpack_from(buf, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise BrokenRecordError
        eq = buf.find(b"=", pos, stop)
        if eq < 0:
            raise BrokenRecordError
        out[bytes(buf[pos:eq])] = bytes(buf[eq + 1 : stop])
        pos = stop
    return out


def _record(buf: Buffer, pos: int, end: int) -> tuple[dict[bytes, bytes], int, int, int]:
    """Header fields, data start, data end and next position of the record at ``pos``."""
    if pos + 4 > end:
        raise BrokenRecordError
    (hlen,) = _U32.unpack_from(buf, pos)
    hend = pos + 4 + hlen
    if hend + 4 > end:
        raise BrokenRecordError
    header = _fields(buf, pos + 4, hend)
    (dlen,) = _U32.unpack_from(buf, hend)
    dstart = hend + 4
    return header, dstart, dstart + dlen, dstart + dlen


def _time(value: bytes) -> int:
    sec, nsec = _TIME.unpack(value)
    return int(sec) * 1_000_000_000 + int(nsec)


def _u32(value: bytes) -> int:
    return int(_U32.unpack(value)[0])


def _op(header: dict[bytes, bytes]) -> int:
    op = header.get(b"op")
    if not op:
        raise BrokenRecordError
    return op[0]


@dataclass(slots=True)
class _ConnDef:
    topic: str
    msgtype: str
    msgdef: str
    count: int = 0


@dataclass(slots=True)
class _ScanState:
    conns: dict[int, _ConnDef] = field(default_factory=dict)
    chunks: list[ChunkSpan] = field(default_factory=list)


def _connection(header: dict[bytes, bytes], data: bytes) -> tuple[int, _ConnDef]:
    inner = _fields(data, 0, len(data))
    topic = (inner.get(b"topic") or header.get(b"topic") or b"").decode()
    msgtype = normalize_msgtype(inner.get(b"type", b"").decode())
    msgdef = inner.get(b"message_definition", b"").decode(errors="replace")
    return _u32(header[b"conn"]), _ConnDef(topic, msgtype, msgdef)


def _scan_chunk(
    buf: Buffer, start: int, end: int, *, conns: dict[int, _ConnDef] | None
) -> tuple[list[tuple[int, int, int, int]], bool]:
    """Message (time, conn, data start, data end) records of a chunk; False if cut short."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    try:
        while pos < end:
            header, dstart, dend, pos = _record(buf, pos, end)
            if dend > end:
                return out, False
            op = _op(header)
            if op == OP_MSG:
                out.append((_time(header[b"time"]), _u32(header[b"conn"]), dstart, dend))
            elif op == OP_CONNECTION and conns is not None:
                cid, conn = _connection(header, bytes(buf[dstart:dend]))
                conns.setdefault(cid, conn)
    except (BrokenRecordError, KeyError, struct.error):
        return out, False
    return out, True


class Rosbag1File(MappedChunkFile):
    """One ROS1 bag as a chunked, time-indexed source of raw messages."""

    storage = "rosbag1"

    def __init__(self, path: Path, *, first_id: int) -> None:
        self.path = path
        self._mm = map_file(path, MAGIC, what="a ROS1 bag", magic_name="no '#ROSBAG V2.0' magic")
        self.size = len(self._mm)
        # Reading the index touches every chunk's header: without read-around that costs one
        # page per chunk instead of sixteen (see release_pages below).
        with contextlib.suppress(OSError, ValueError):
            self._mm.madvise(mmap.MADV_RANDOM)
        state = self._read_index()
        if state is None:
            state, lost = self._scan()
            self.recovery_note = self._note(state, lost)
        self._chunks = state.chunks
        self._start_ns = min((c.start_ns for c in self._chunks), default=0)
        self._end_ns = max((c.end_ns for c in self._chunks), default=0)
        self.compression = (
            "+".join(sorted({cast("ChunkRef", c.ref).compression for c in self._chunks})) or "none"
        )
        local: dict[int, Connection] = {}
        self.definitions: list[TypeDefinition] = []
        for offset, cid in enumerate(sorted(state.conns)):
            conn = state.conns[cid]
            local[cid] = Connection(
                id=first_id + offset,
                topic=conn.topic,
                msgtype=conn.msgtype,
                serialization="ros1",
                count=conn.count,
                path=path,
            )
            if conn.msgdef:
                self.definitions.append(
                    TypeDefinition(
                        msgtype=conn.msgtype, text=conn.msgdef, encoding="msg", serialization="ros1"
                    )
                )
        self._index_connections(local)
        release_pages(self._mm)
        with contextlib.suppress(OSError, ValueError):
            self._mm.madvise(mmap.MADV_NORMAL)

    # -- reading the index -------------------------------------------------------------------
    def _bag_header(self) -> dict[bytes, bytes]:
        header, _, _, _ = _record(self._mm, len(MAGIC), self.size)
        if _op(header) != OP_BAG_HEADER:
            raise BrokenRecordError
        return header

    def _read_index(self) -> _ScanState | None:
        """Connections and chunk spans from the index, or None when it is missing or cut."""
        try:
            header = self._bag_header()
            index_pos = int(struct.unpack("<Q", header[b"index_pos"])[0])
            conn_count = _u32(header[b"conn_count"])
            chunk_count = _u32(header[b"chunk_count"])
            if index_pos == 0 or (index_pos >= self.size and (conn_count or chunk_count)):
                return None
            state = _ScanState()
            pos = index_pos
            for _ in range(conn_count):
                rec, dstart, dend, pos = _record(self._mm, pos, self.size)
                if dend > self.size or _op(rec) != OP_CONNECTION:
                    return None
                cid, conn = _connection(rec, self._mm[dstart:dend])
                state.conns[cid] = conn
            for _ in range(chunk_count):
                rec, dstart, dend, pos = _record(self._mm, pos, self.size)
                if dend > self.size or _op(rec) != OP_CHUNK_INFO:
                    return None
                counts = tuple(
                    (int(c), int(k)) for c, k in struct.iter_unpack("<II", self._mm[dstart:dend])
                )
                for cid, count in counts:
                    state.conns[cid].count += count
                chunk_pos = int(struct.unpack("<Q", rec[b"chunk_pos"])[0])
                chunk, cdstart, cdend, _ = _record(self._mm, chunk_pos, self.size)
                compression = chunk[b"compression"].decode()
                state.chunks.append(
                    ChunkSpan(
                        start_ns=_time(rec[b"start_time"]),
                        end_ns=_time(rec[b"end_time"]),
                        ids=frozenset(c for c, _ in counts),
                        counts=counts,
                        position=chunk_pos,
                        ref=ChunkRef(compression, cdstart, cdend, intact=True),
                    )
                )
        except (BrokenRecordError, KeyError, struct.error, UnicodeDecodeError):
            return None
        return state

    # -- recovery ----------------------------------------------------------------------------
    def _scan(self) -> tuple[_ScanState, int]:
        """Find every intact chunk by walking the records; return them and the bytes lost."""
        state = _ScanState()
        try:
            _, _, _, pos = _record(self._mm, len(MAGIC), self.size)
        except BrokenRecordError:
            return state, self.size - len(MAGIC)
        while pos < self.size:
            try:
                header, dstart, dend, nxt = _record(self._mm, pos, self.size)
                op = _op(header)
            except (BrokenRecordError, KeyError):
                break
            cut = dend > self.size
            if op == OP_CHUNK:
                compression = header.get(b"compression", b"none").decode()
                ref = ChunkRef(compression, dstart, min(dend, self.size), not cut)
                buf, bstart, bend = chunk_buffer(self._mm, ref)
                entries, _ = _scan_chunk(buf, bstart, bend, conns=state.conns)
                if entries:
                    counts: dict[int, int] = {}
                    for _, cid, _, _ in entries:
                        counts[cid] = counts.get(cid, 0) + 1
                    for cid, count in counts.items():
                        if cid in state.conns:
                            state.conns[cid].count += count
                    times = [e[0] for e in entries]
                    state.chunks.append(
                        ChunkSpan(
                            start_ns=min(times),
                            end_ns=max(times),
                            ids=frozenset(counts),
                            counts=tuple(counts.items()),
                            position=pos,
                            ref=ref,
                        )
                    )
            elif op == OP_CONNECTION and not cut:
                cid, conn = _connection(header, self._mm[dstart:dend])
                state.conns.setdefault(cid, conn)
            if cut:
                break
            pos = nxt
        # Messages of connections whose record was lost cannot be typed: drop them.
        known = set(state.conns)
        state.chunks = [c for c in state.chunks if c.ids & known]
        return state, self.size - pos

    def _note(self, state: _ScanState, lost: int) -> str:
        count = sum(c.count for c in state.conns.values())
        start = min((c.start_ns for c in state.chunks), default=0)
        end = max((c.end_ns for c in state.chunks), default=0)
        return (
            f"{self.path.name}: ROS1 bag has no index (cut off?); "
            f"{span_text(count, start, end)}; last intact record ends {lost} bytes before the end"
        )

    # -- messages ----------------------------------------------------------------------------
    def _load(
        self, wanted: frozenset[int], start_ns: int | None, end_ns: int | None
    ) -> Callable[[ChunkSpan], list[Entry]]:
        mm = self._mm
        view = memoryview(mm)
        window = ResidentWindow(mm)

        def load(chunk: ChunkSpan) -> list[Entry]:
            buf, base, stop = chunk_buffer(mm, cast("ChunkRef", chunk.ref))
            if buf is mm:
                window.touched(base, stop)
            source = view if buf is mm else memoryview(buf)
            records, _ = _scan_chunk(buf, base, stop, conns=None)
            entries = [
                (t, cid, source[a:b])
                for t, cid, a, b in records
                if cid in wanted
                and (start_ns is None or t >= start_ns)
                and (end_ns is None or t < end_ns)
            ]
            entries.sort(key=entry_time)
            return entries

        return load

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the global connection ``ids`` (None: all) in time order."""
        wanted = self._wanted(ids)
        return self._stream(self._chunks, wanted, start_ns=start_ns, end_ns=end_ns)

    def _index_data(self, pos: int, counts: dict[int, int]) -> LocalTimes | None:
        """The IndexData records at ``pos`` (one per connection of the chunk before them)."""
        mm, out = self._mm, {}
        try:
            for _ in counts:
                header, start, end, pos = _record(mm, pos, self.size)
                if end > self.size or _op(header) != OP_INDEX or _u32(header[b"ver"]) != 1:
                    return None
                cid, count = _u32(header[b"conn"]), _u32(header[b"count"])
                if counts.get(cid) != count or end - start != count * _INDEX_ENTRY.itemsize:
                    return None
                entries = np.frombuffer(mm, dtype=_INDEX_ENTRY, count=count, offset=start)
                out[cid] = entries["sec"].astype(np.int64) * 1_000_000_000 + entries["nsec"]
        except (BrokenRecordError, KeyError, struct.error):
            return None
        return out

    def _chunk_times(self, chunk: ChunkSpan, ids: frozenset[int]) -> LocalTimes:
        """From the IndexData records right after the chunk: nothing is decompressed.

        A recovered bag is read record by record instead: its chunks were found by a scan, and
        what it yields must be exactly what that scan found.
        """
        found = None
        if self.recovery_note is None:
            found = self._index_data(cast("ChunkRef", chunk.ref).end, dict(chunk.counts))
        if found is None or not ids <= found.keys():
            return self._loaded_times(chunk, ids)
        return {cid: found[cid] for cid in ids}

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection from the chunks' index records (see :meth:`Source.times`)."""
        return self._times(self._chunks, ids, ends_only=ends_only, progress=progress)
