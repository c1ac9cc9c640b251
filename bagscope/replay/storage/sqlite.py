"""ROS2 ``.db3`` files: the rosbag2 sqlite3 tables read directly.

Reading the tables ourselves (rather than through rosbags) lets a ``.db3`` stand on its own:
without ``metadata.yaml`` the counts come from one aggregate query, and a damaged database (the
recorder lost power mid-write) is read row by row up to the last readable message.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import (
    Connection,
    RawMessage,
    StorageInfo,
    TypeDefinition,
    normalize_msgtype,
    times_by_reading,
)
from bagscope.replay.storage.recovery import span_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bagscope.replay.storage.base import Progress, TimesById

# Rows per fetch: payloads are megabytes each, so a large batch would dominate peak memory.
_BATCH = 8
_MAX_MISSES = 64


class SqliteFile:
    """One rosbag2 sqlite3 database as a time-indexed source of raw messages."""

    storage = "sqlite3"
    compression = "none"

    def __init__(self, path: Path, *, first_id: int, count: bool = True) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._copy: Path | None = None
        try:
            self._db = _connect(path)
            topics, definitions = self._read_schema()
        except LogOpenError:
            self._db.close()
            raise
        except sqlite3.DatabaseError:
            # A cut-off file announces more pages than it has, and sqlite then refuses all of
            # it: read a page-aligned copy whose header agrees with its length instead.
            self._db.close()
            self._copy = _page_aligned_copy(path)
            self._db = _connect(self._copy)
            try:
                topics, definitions = self._read_schema()
            except sqlite3.DatabaseError as err:
                self.close()
                msg = f"{path}: not a readable rosbag2 sqlite3 file ({err})"
                raise LogOpenError(msg) from err
        self.definitions = [
            TypeDefinition(
                msgtype=normalize_msgtype(name),
                text=text,
                encoding="idl" if encoding == "ros2idl" else "msg",
                serialization="cdr",
            )
            for name, encoding, text in definitions
            if text and encoding in ("ros2msg", "ros2idl")
        ]
        self.recovery_note: str | None = None
        self._rows: list[tuple[int, int, int]] | None = None  # recovered (time, id, topic)
        counts: dict[int, int] = {}
        self._start_ns = self._end_ns = 0
        if self._copy is not None:
            counts = self._recover()
        elif count:
            counts = self._count()
        self._local: dict[int, Connection] = {}
        for tid, name, msgtype, serialization in topics:
            if serialization != "cdr":
                continue
            self._local[tid] = Connection(
                id=first_id + len(self._local),
                topic=name,
                msgtype=normalize_msgtype(msgtype),
                serialization="cdr",
                count=counts.get(tid, 0),
                path=path,
            )
        self.connections = tuple(self._local.values())
        self._by_id = {c.id: tid for tid, c in self._local.items()}

    def _read_schema(self) -> tuple[list[tuple[int, str, str, str]], list[tuple[str, str, str]]]:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if not {"topics", "messages"} <= tables:
            msg = f"{self.path}: sqlite database without rosbag2 'topics'/'messages' tables"
            raise LogOpenError(msg)
        topics = self._db.execute(
            "SELECT id, name, type, serialization_format FROM topics ORDER BY id"
        ).fetchall()
        definitions = []
        if "message_definitions" in tables:
            definitions = self._db.execute(
                "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
            ).fetchall()
        return topics, definitions

    def _count(self) -> dict[int, int]:
        """Per-topic counts and the time span, by query; recover when the database is damaged."""
        try:
            rows = self._db.execute(
                "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) "
                "FROM messages GROUP BY topic_id"
            ).fetchall()
            # A damaged file may still aggregate: make sure the last payload is readable too.
            self._db.execute("SELECT data FROM messages ORDER BY id DESC LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            return self._recover()
        if rows:
            self._start_ns = min(r[2] for r in rows)
            self._end_ns = max(r[3] for r in rows)
        return {tid: n for tid, n, _, _ in rows}

    def _recover(self) -> dict[int, int]:
        """Keep every row whose payload can still be read, scanning ids until the damage."""
        rows: list[tuple[int, int, int]] = []
        last = 0
        try:
            cursor = self._db.execute(
                "SELECT id, topic_id, timestamp, data FROM messages ORDER BY id"
            )
            for rid, tid, t, _ in cursor:
                rows.append((t, rid, tid))
                last = rid
        except sqlite3.DatabaseError:
            # The scan stops at the first unreadable page; rows past it may still be reachable
            # one by one (they live on other pages), until a run of ids is gone.
            misses = 0
            while misses < _MAX_MISSES:
                last += 1
                try:
                    row = self._db.execute(
                        "SELECT topic_id, timestamp, length(data), data FROM messages WHERE id = ?",
                        (last,),
                    ).fetchone()
                except sqlite3.DatabaseError:
                    row = None
                if row is None:
                    misses += 1
                    continue
                misses = 0
                rows.append((row[1], last, row[0]))
        rows.sort()
        self._rows = rows
        counts: dict[int, int] = {}
        for _, _, tid in rows:
            counts[tid] = counts.get(tid, 0) + 1
        if rows:
            self._start_ns, self._end_ns = rows[0][0], rows[-1][0]
        self.recovery_note = (
            f"{self.path.name}: sqlite3 database is damaged (cut off?); "
            f"{span_text(len(rows), self._start_ns, self._end_ns)}"
        )
        return counts

    def info(self) -> StorageInfo:
        """Metadata from the aggregate query (or the recovery scan)."""
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
        )

    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the global connection ``ids`` (None: all) in time order."""
        local = self._local
        wanted = list(local) if ids is None else [self._by_id[i] for i in ids if i in self._by_id]
        if not wanted:
            return
        lo = -(1 << 63) if start_ns is None else start_ns
        hi = (1 << 63) - 1 if end_ns is None else end_ns
        if self._rows is not None:
            yield from self._recovered(frozenset(wanted), lo, hi)
            return
        marks = ",".join("?" * len(wanted))
        query = (
            "SELECT topic_id, timestamp, data FROM messages WHERE timestamp >= ? AND "
            f"timestamp < ? AND topic_id IN ({marks}) ORDER BY timestamp, id"
        )
        cursor = self._db.execute(query, (lo, hi, *wanted))
        try:
            while batch := cursor.fetchmany(_BATCH):
                for tid, t, data in batch:
                    yield RawMessage(local[tid], t, data)
        except sqlite3.DatabaseError as err:
            msg = (
                f"{self.path}: database is damaged ({err}); open the .db3 on its own "
                "(without metadata.yaml) to recover what is readable"
            )
            raise LogOpenError(msg) from err

    def _recovered(self, wanted: frozenset[int], lo: int, hi: int) -> Iterator[RawMessage]:
        assert self._rows is not None
        local = self._local
        for t, rid, tid in self._rows:
            if tid in wanted and lo <= t < hi:
                (data,) = self._db.execute(
                    "SELECT data FROM messages WHERE id = ?", (rid,)
                ).fetchone()
                yield RawMessage(local[tid], t, data)

    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection (see :meth:`Source.times`)."""
        del ends_only  # the whole scan is what there is for now
        return times_by_reading(self, ids, progress=progress)

    def close(self) -> None:
        """Close the database (and drop the recovery copy)."""
        self._db.close()
        if self._copy is not None:
            self._copy.unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _page_aligned_copy(path: Path) -> Path:
    """A temporary copy cut to whole pages, its header's page count matching the copy."""
    with path.open("rb") as src:
        header = src.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            msg = f"{path}: not a readable sqlite3 file"
            raise LogOpenError(msg)
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1):
            msg = f"{path}: not a readable sqlite3 file (bad page size)"
            raise LogOpenError(msg)
        pages = path.stat().st_size // page_size
        if pages < 1:
            msg = f"{path}: sqlite3 file cut off inside its first page"
            raise LogOpenError(msg)
        fd, name = tempfile.mkstemp(prefix="bagscope-recover-", suffix=".db3")
        with os.fdopen(fd, "wb") as dst:
            dst.write(header[:28] + pages.to_bytes(4, "big") + header[32:])
            left = pages * page_size - 100
            while left > 0:
                block = src.read(min(left, 1 << 20))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
    return Path(name)
