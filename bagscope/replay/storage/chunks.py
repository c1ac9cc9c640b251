"""Time-ordered merging of chunked files (ROS1 bags and MCAP share the shape).

Both formats store messages in chunks that each know their time span and which channels they
hold. Chunks are loaded lazily, one at a time in the common case; only chunks whose spans
overlap are held together, so memory stays bounded by the overlap, not by the file.
"""

from __future__ import annotations

import bz2
import contextlib
import heapq
import mmap
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lz4.frame  # type: ignore[import-untyped]
import numpy as np
import zstandard

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import FileSource, RawMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from numpy.typing import NDArray

    from bagscope.replay.storage.base import Progress

# (log time ns, file-local channel id, payload)
Entry = tuple[int, int, memoryview]
Buffer = bytes | mmap.mmap
# Per file-local id: log times in ns (any order).
LocalTimes = dict[int, "NDArray[np.int64]"]


class BrokenRecordError(Exception):
    """A record runs past the end of its buffer or is malformed."""


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where a chunk's (possibly compressed) records lie in the file."""

    compression: str  # "none", "lz4", "zstd", "bz2"
    start: int
    end: int
    intact: bool  # False: the file ends inside this chunk
    size: int = 0  # uncompressed size, where the format records it
    # (file-local id, file offset of that id's index record for this chunk), where the format's
    # chunk index lists them (MCAP); empty when unknown.
    index: tuple[tuple[int, int], ...] = ()


def decompress(data: memoryview, ref: ChunkRef) -> bytes:
    """A chunk's records; a cut-off chunk (not ``intact``) keeps whatever its stream yields."""
    partial = not ref.intact
    try:
        if ref.compression == "zstd":
            # A decompressor per chunk: they are cheap and not safe to share across threads.
            if partial or not ref.size:
                return zstandard.ZstdDecompressor().decompressobj().decompress(data)
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=ref.size)
        if ref.compression == "lz4":
            if partial:
                return bytes(lz4.frame.LZ4FrameDecompressor().decompress(bytes(data)))
            return bytes(lz4.frame.decompress(bytes(data)))
        if ref.compression == "bz2":
            return bz2.BZ2Decompressor().decompress(data) if partial else bz2.decompress(data)
    except (zstandard.ZstdError, OSError, ValueError, RuntimeError, EOFError) as err:
        if partial:
            return b""
        msg = f"corrupt {ref.compression} chunk: {err}"
        raise LogOpenError(msg) from err
    msg = f"unsupported chunk compression {ref.compression!r}"
    raise LogOpenError(msg)


def map_file(path: Path, magic: bytes, *, what: str, magic_name: str) -> mmap.mmap:
    """A read-only map of ``path``, which must start with ``magic`` (``what`` names the format)."""
    with path.open("rb") as file:
        try:
            mm = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as err:
            msg = f"{path}: empty file, not {what}"
            raise LogOpenError(msg) from err
    if mm[: len(magic)] != magic:
        mm.close()
        msg = f"{path}: not {what} ({magic_name})"
        raise LogOpenError(msg)
    return mm


def chunk_buffer(mm: mmap.mmap, ref: ChunkRef) -> tuple[Buffer, int, int]:
    """The chunk's uncompressed records as (buffer, start, end); uncompressed data is not copied."""
    if ref.compression == "none":
        return mm, ref.start, min(ref.end, len(mm))
    buf = decompress(memoryview(mm)[ref.start : ref.end], ref)
    return buf, 0, len(buf)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkSpan:
    """Where one chunk is and what it holds, known without decompressing it."""

    start_ns: int  # first message log time (inclusive)
    end_ns: int  # last message log time (inclusive)
    ids: frozenset[int]  # file-local channel ids with messages in this chunk
    counts: tuple[tuple[int, int], ...] = ()  # (channel id, messages) when known
    position: int = 0  # file offset of the chunk record
    ref: object = None  # format-specific handle used by the loader
    exact: bool = True  # False: ``ids`` are only those it *may* hold (its own are not indexed)


def select_chunks(
    chunks: Sequence[ChunkSpan],
    *,
    wanted: frozenset[int] | None,
    start_ns: int | None,
    end_ns: int | None,
) -> list[ChunkSpan]:
    """Chunks that can hold a wanted message inside ``[start_ns, end_ns)``, in merge order."""
    out = [
        c
        for c in chunks
        if (start_ns is None or c.end_ns >= start_ns)
        and (end_ns is None or c.start_ns < end_ns)
        and (wanted is None or not wanted.isdisjoint(c.ids))
    ]
    out.sort(key=lambda c: (c.start_ns, c.position))
    return out


def merge_chunks(
    chunks: Sequence[ChunkSpan], load: Callable[[ChunkSpan], list[Entry]]
) -> Iterator[Entry]:
    """Yield the entries of ``chunks`` (sorted by start) in time order.

    ``load`` returns one chunk's wanted entries sorted by time. A chunk is loaded only once the
    next message to yield is not earlier than its start, and a lone chunk that cannot overlap
    the next one is streamed without any heap work.
    """
    heap: list[tuple[int, int, int, list[Entry]]] = []
    i, n = 0, len(chunks)
    while True:
        while i < n and (not heap or chunks[i].start_ns <= heap[0][0]):
            entries = load(chunks[i])
            if entries:
                heapq.heappush(heap, (entries[0][0], i, 0, entries))
            i += 1
        if not heap:
            return
        if len(heap) == 1:
            _, _, pos, entries = heap[0]
            if i == n or chunks[i].start_ns >= entries[-1][0]:
                heap.clear()
                yield from entries[pos:] if pos else entries
                continue
        _, order, pos, entries = heap[0]
        yield entries[pos]
        pos += 1
        if pos < len(entries):
            heapq.heapreplace(heap, (entries[pos][0], order, pos, entries))
        else:
            heapq.heappop(heap)


def release_pages(mm: mmap.mmap) -> None:
    """Drop every resident page of a read-only mapping (see `ResidentWindow` for why it is safe).

    Opening a log reads its index, which for MCAP and ROS1 is spread over the whole file (one
    record after each chunk); without this the pages touched while opening would count against
    the replay's memory for as long as the log stays open.
    """
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(mmap.MADV_DONTNEED)


class ResidentWindow:
    """Keeps only the region being read resident in a read-only file mapping.

    Pages of a file mapping that have been read count towards the process's RSS until the
    kernel needs them back, so a long replay would look like it holds the whole log. Pages of a
    read-only mapping can be dropped at any time: a later access faults them back in from the
    page cache, so views already handed out stay valid. Consumers touch a message a little
    after the reader passed it (sync waits for partners), which faults its pages back in; so
    each step drops a trailing ``margin`` behind the oldest chunk still in use, not just the
    chunk that left the window. Peak memory is then flat in log length. The drop runs once the
    floor has moved ``step`` bytes, not per chunk: a log of small chunks would otherwise pay a
    system call for every one.
    """

    def __init__(
        self, mm: mmap.mmap, *, lag: int = 2, margin: int = 64 << 20, step: int = 8 << 20
    ) -> None:
        self._mm = mm
        self._lag = lag
        self._margin = margin
        self._step = step
        self._last_floor = 0
        self._recent: deque[int] = deque()

    def touched(self, start: int, end: int) -> None:
        """Note that ``[start, end)`` was just read; drop what lies well behind the reader."""
        del end  # the chunk itself stays until it leaves the window
        self._recent.append(start)
        if len(self._recent) <= self._lag:
            return
        self._recent.popleft()
        floor = min(self._recent)
        floor -= floor % mmap.PAGESIZE
        if floor - self._last_floor < self._step:
            return
        self._last_floor = floor
        low = max(0, floor - self._margin)
        low -= low % mmap.PAGESIZE
        if floor > low:
            with contextlib.suppress(OSError, ValueError):  # a closed map, or no madvise here
                self._mm.madvise(mmap.MADV_DONTNEED, low, floor - low)


def entry_time(entry: Entry) -> int:
    """Sort key of an entry: its log time."""
    return entry[0]


def ends_chunks(chunks: Sequence[ChunkSpan], wanted: frozenset[int]) -> dict[int, set[int]]:
    """Per chunk (by position in ``chunks``): the ids whose first or last time it may hold.

    An id's first time is at most the earliest *end* of the chunks holding it (each of those
    holds one of its messages no later than its end), so only chunks starting by then can hold
    it; the last time likewise. With chunks in time order that is one chunk at each end.
    """
    holding: dict[int, list[int]] = {}
    for i, chunk in enumerate(chunks):
        for cid in chunk.ids & wanted:
            holding.setdefault(cid, []).append(i)
    need: dict[int, set[int]] = {}
    for cid, where in holding.items():
        # Only a chunk known to hold the id bounds its ends; the others are all read.
        known = [chunks[i] for i in where if chunks[i].exact]
        first_by = min((c.end_ns for c in known), default=None)
        last_from = max((c.start_ns for c in known), default=None)
        for i in where:
            chunk = chunks[i]
            if (
                first_by is None
                or last_from is None
                or not chunk.exact
                or chunk.start_ns <= first_by
                or chunk.end_ns >= last_from
            ):
                need.setdefault(i, set()).add(cid)
    return need


def chunk_times(
    chunks: Sequence[ChunkSpan],
    wanted: frozenset[int],
    read: Callable[[ChunkSpan, frozenset[int]], LocalTimes],
    *,
    ends_only: bool,
    progress: Progress,
) -> LocalTimes:
    """Times per file-local id, sorted, from ``read`` (one chunk's times of some ids).

    With ``ends_only`` only the chunks that may hold an id's first or last time are read, and
    each id gets just those two times.
    """
    if ends_only:
        need = ends_chunks(chunks, wanted)
    else:
        need = {i: set(c.ids & wanted) for i, c in enumerate(chunks) if c.ids & wanted}
    parts: dict[int, list[NDArray[np.int64]]] = {}
    for done, (i, ids) in enumerate(sorted(need.items())):
        for cid, times in read(chunks[i], frozenset(ids)).items():
            if times.size:
                parts.setdefault(cid, []).append(times)
        if progress is not None:
            progress(done + 1, len(need))
    out: LocalTimes = {}
    for cid, arrays in parts.items():
        if ends_only:
            lo = min(int(a.min()) for a in arrays)
            hi = max(int(a.max()) for a in arrays)
            out[cid] = np.array([lo, hi] if hi != lo else [lo], dtype=np.int64)
        else:
            joined = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            out[cid] = np.sort(joined, kind="stable")
    return out


class MappedChunkFile(FileSource):
    """What the memory-mapped chunked formats (ROS1 bags, MCAP) share once a file is indexed.

    Subclasses set ``_mm`` and the :class:`FileSource` attributes, and provide ``_load`` (a
    chunk's messages) and ``_chunk_times`` (a chunk's times, from its index where it has one)
    for their own chunk layout.
    """

    _mm: mmap.mmap
    _chunks: list[ChunkSpan]

    def _load(
        self, wanted: frozenset[int], start_ns: int | None, end_ns: int | None
    ) -> Callable[[ChunkSpan], list[Entry]]:
        raise NotImplementedError

    def _chunk_times(self, chunk: ChunkSpan, ids: frozenset[int]) -> LocalTimes:
        raise NotImplementedError

    def _loaded_times(self, chunk: ChunkSpan, ids: frozenset[int]) -> LocalTimes:
        """A chunk's times by reading its records: for chunks or files without a usable index.

        The same loader as :meth:`_stream`, so the times are exactly those of the messages.
        """
        found: dict[int, list[int]] = {}
        for t, cid, _ in self._load(ids, None, None)(chunk):
            found.setdefault(cid, []).append(t)
        return {cid: np.array(ts, dtype=np.int64) for cid, ts in found.items()}

    def _stream(
        self,
        chunks: Sequence[ChunkSpan],
        wanted: frozenset[int],
        *,
        start_ns: int | None,
        end_ns: int | None,
    ) -> Iterator[RawMessage]:
        emit = self._emit
        chosen = select_chunks(chunks, wanted=wanted, start_ns=start_ns, end_ns=end_ns)
        for t, cid, data in merge_chunks(chosen, self._load(wanted, start_ns, end_ns)):
            yield RawMessage(emit[cid], t, data)

    def _times(
        self,
        chunks: Sequence[ChunkSpan],
        ids: frozenset[int] | None,
        *,
        ends_only: bool,
        progress: Progress,
    ) -> dict[int, NDArray[np.int64]]:
        """Times per global connection id, from the chunks' indexes (see `Source.times`)."""
        local = chunk_times(
            chunks, self._wanted(ids), self._chunk_times, ends_only=ends_only, progress=progress
        )
        # Index records sit after every chunk, all over the file: do not keep them resident.
        release_pages(self._mm)
        return {self._local[cid].id: times for cid, times in local.items()}

    def close(self) -> None:
        """Release the memory map (views handed out must not be used afterwards)."""
        # Messages still holding views keep the map alive; it is freed once they are garbage.
        with contextlib.suppress(BufferError):
            self._mm.close()
