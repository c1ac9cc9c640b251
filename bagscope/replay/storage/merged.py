"""Several files (split bags, or several paths) seen as one time-ordered log."""

from __future__ import annotations

import heapq
from operator import attrgetter
from typing import TYPE_CHECKING

from bagscope.replay.storage.base import StorageInfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from bagscope.replay.storage.base import (
        Connection,
        Progress,
        RawMessage,
        Source,
        TimesById,
        TypeDefinition,
    )


def _joined(values: Iterable[str]) -> str:
    return "+".join(sorted(set(values)))


def merge_info(infos: Sequence[StorageInfo]) -> StorageInfo:
    """One summary for several sources: spans and counts add up, names are joined."""
    if len(infos) == 1:
        return infos[0]
    filled = [i for i in infos if i.message_count]
    notes = [i.recovery_note for i in infos if i.recovery_note]
    extra: dict[str, str] = {}
    for info in infos:
        extra.update(info.extra)
    return StorageInfo(
        paths=tuple(p for i in infos for p in i.paths),
        storage=_joined(i.storage for i in infos),
        compression=_joined(i.compression for i in infos),
        start_ns=min((i.start_ns for i in filled), default=0),
        end_ns=max((i.end_ns for i in filled), default=0),
        message_count=sum(i.message_count for i in infos),
        size_bytes=sum(i.size_bytes for i in infos),
        complete=all(i.complete for i in infos),
        recovery_note="; ".join(notes) or None,
        extra=extra,
    )


class MergedStorage:
    """The :class:`~bagscope.replay.storage.base.Storage` that ``open_storage`` returns."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._sources = list(sources)
        self._connections = tuple(c for s in self._sources for c in s.connections)
        self._definitions = [d for s in self._sources for d in s.definitions]
        self._info = merge_info([s.info() for s in self._sources])
        self._owner = {c.id: i for i, s in enumerate(self._sources) for c in s.connections}

    @property
    def info(self) -> StorageInfo:
        """Metadata of the whole log, read without scanning messages."""
        return self._info

    @property
    def connections(self) -> tuple[Connection, ...]:
        """Every connection of every file; ids are unique across files."""
        return self._connections

    @property
    def definitions(self) -> list[TypeDefinition]:
        """Message definitions embedded in the files, in file order."""
        return self._definitions

    def messages(
        self,
        connections: Iterable[Connection] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[RawMessage]:
        """Yield raw messages in log-time order, ``start_ns <= t < end_ns``."""
        ids = None if connections is None else frozenset(c.id for c in connections)
        streams = [
            source.messages(ids, start_ns=start_ns, end_ns=end_ns)
            for i, source in enumerate(self._sources)
            if ids is None or any(self._owner.get(c) == i for c in ids)
        ]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=attrgetter("log_time_ns"))

    def times(
        self,
        connections: Iterable[Connection] | None = None,
        *,
        ends_only: bool = False,
        progress: Progress = None,
    ) -> TimesById:
        """Log times per connection id from every file (ids are unique across files)."""
        ids = None if connections is None else frozenset(c.id for c in connections)
        out: TimesById = {}
        for source in self._sources:
            out.update(source.times(ids, ends_only=ends_only, progress=progress))
        return out

    def close(self) -> None:
        """Release every file."""
        for source in self._sources:
            source.close()

    def __enter__(self) -> MergedStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
