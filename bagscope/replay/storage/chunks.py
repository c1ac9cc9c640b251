"""Time-ordered merging of chunked files (ROS1 bags and MCAP share the shape).

Both formats store messages in chunks that each know their time span and which channels they
hold. Chunks are loaded lazily, one at a time in the common case; only chunks whose spans
overlap are held together, so memory stays bounded by the overlap, not by the file.
"""

from __future__ import annotations

import contextlib
import heapq
import mmap
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from bagscope.replay.storage.base import Connection, RawMessage

# (log time ns, file-local channel id, payload)
Entry = tuple[int, int, memoryview]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkSpan:
    """Where one chunk is and what it holds, known without decompressing it."""

    start_ns: int  # first message log time (inclusive)
    end_ns: int  # last message log time (inclusive)
    ids: frozenset[int]  # file-local channel ids with messages in this chunk
    counts: tuple[tuple[int, int], ...] = ()  # (channel id, messages) when known
    position: int = 0  # file offset of the chunk record
    ref: object = None  # format-specific handle used by the loader


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
    chunk that left the window. Peak memory is then flat in log length.
    """

    def __init__(self, mm: mmap.mmap, *, lag: int = 2, margin: int = 64 << 20) -> None:
        self._mm = mm
        self._lag = lag
        self._margin = margin
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
        low = max(0, floor - self._margin)
        low -= low % mmap.PAGESIZE
        if floor > low:
            with contextlib.suppress(OSError, ValueError):  # a closed map, or no madvise here
                self._mm.madvise(mmap.MADV_DONTNEED, low, floor - low)


def entry_time(entry: Entry) -> int:
    """Sort key of an entry: its log time."""
    return entry[0]


class MappedChunkFile:
    """What the memory-mapped chunked formats (ROS1 bags, MCAP) share once a file is indexed.

    Subclasses set ``_mm``, ``_local`` (file-local id → connection), ``_by_id`` (global id →
    file-local id) and provide ``_load`` for their own chunk layout.
    """

    _mm: mmap.mmap
    _local: dict[int, Connection]
    _by_id: dict[int, int]

    def _load(
        self, wanted: frozenset[int], start_ns: int | None, end_ns: int | None
    ) -> Callable[[ChunkSpan], list[Entry]]:
        raise NotImplementedError

    def _wanted(self, ids: frozenset[int] | None) -> frozenset[int]:
        """File-local ids of the requested global connection ids (None: all)."""
        if ids is None:
            return frozenset(self._local)
        return frozenset(self._by_id[i] for i in ids if i in self._by_id)

    def _stream(
        self,
        chunks: Sequence[ChunkSpan],
        wanted: frozenset[int],
        *,
        start_ns: int | None,
        end_ns: int | None,
    ) -> Iterator[RawMessage]:
        from bagscope.replay.storage.base import RawMessage

        local = self._local
        chosen = select_chunks(chunks, wanted=wanted, start_ns=start_ns, end_ns=end_ns)
        for t, cid, data in merge_chunks(chosen, self._load(wanted, start_ns, end_ns)):
            yield RawMessage(local[cid], t, data)

    def close(self) -> None:
        """Release the memory map (views handed out must not be used afterwards)."""
        # Messages still holding views keep the map alive; it is freed once they are garbage.
        with contextlib.suppress(BufferError):
            self._mm.close()
