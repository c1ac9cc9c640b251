"""ROS2 ``.db3`` files: the rosbag2 sqlite3 tables read directly.

Reading the tables ourselves (rather than through rosbags) lets a ``.db3`` stand on its own:
without ``metadata.yaml`` the counts come from one aggregate query, and a damaged database (the
recorder lost power mid-write, a page zeroed or overwritten) is read row by row, around the
damage, keeping every message that can still be found. Inside a bag directory the file is only
checked to be whole, so that the metadata's counts are not claimed for rows that are gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import warnings
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage.base import (
    Connection,
    FileSource,
    RawMessage,
    TypeDefinition,
    normalize_msgtype,
)
from bagscope.replay.storage.recovery import span_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from numpy.typing import NDArray

    from bagscope.replay.storage.base import Progress, TimesById

# Rows per fetch: enough to amortise the per-batch work over small messages, few enough that a
# batch of multi-megabyte payloads does not dominate peak memory.
_BATCH_BYTES = 1 << 20
_BATCH_MIN, _BATCH_MAX = 8, 128
# Rows per block when reading every time: bounds the memory of the text the block comes back in.
_TIMES_BLOCK = 65536
# Probing a topic's first/last time through the timestamp index is instant for any topic that
# has messages; one without (or a file without the index) would scan the whole table, so the
# probes get this many sqlite VM steps in all before the one-pass read takes over.
_PROBE_STEPS = 3_000_000
_MAX_MISSES = 64
_INT = frozenset({int})
# A row built in C from (connection, time, data): no Python frame per message.
_raw = cast(
    "Callable[[tuple[Connection, int, bytes]], RawMessage]", partial(tuple.__new__, RawMessage)
)


class SqliteFile(FileSource):
    """One rosbag2 sqlite3 database as a time-indexed source of raw messages.

    ``count`` asks for per-topic counts (one pass over the table). A bag directory, whose
    metadata already has them, passes False: the file is then only checked, cheaply, to be
    readable, and :meth:`topic_counts` counts on demand when the metadata turns out wrong.
    """

    storage = "sqlite3"
    compression = "none"

    def __init__(self, path: Path, *, first_id: int, count: bool = True) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._copy: Path | None = None
        schema = None
        if not _announces_more_pages(path, self.size):
            self._db = _connect(path)
            try:
                schema = self._read_schema()
            except LogOpenError:
                self._db.close()
                raise
            except sqlite3.DatabaseError:
                self._db.close()
        if schema is None:
            # A cut-off file announces more pages than it has, and sqlite then refuses all of
            # it: read a page-aligned copy whose header agrees with its length instead.
            self._copy = _page_aligned_copy(path)
            self._db = _connect(self._copy)
            try:
                schema = self._read_schema()
            except sqlite3.DatabaseError as err:
                self.close()
                msg = f"{path}: not a readable rosbag2 sqlite3 file ({_reason(err)})"
                raise LogOpenError(msg) from err
        topics, definitions = schema
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
        self._rows: list[tuple[int, int, int]] | None = None  # recovered (time, id, topic)
        self._ends: dict[int, tuple[int, int]] | None = None  # per topic id: first, last time
        self._total = 0
        counts: dict[int, int] | None = None
        if self._copy is not None:
            counts = self._recover()
        elif count:
            counts = self._count()
        else:
            counts = self._check()
        self._counted = counts is not None
        local: dict[int, Connection] = {}
        for tid, name, msgtype, serialization in topics:
            if serialization != "cdr":
                continue
            local[tid] = Connection(
                id=first_id + len(local),
                topic=name,
                msgtype=normalize_msgtype(msgtype),
                serialization="cdr",
                count=(counts or {}).get(tid, 0),
                path=path,
            )
        self._index_connections(local)
        average = self.size // max(1, self._total)
        self._batch = max(_BATCH_MIN, min(_BATCH_MAX, _BATCH_BYTES // max(1, average)))

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

    # -- opening: counts, or a check that the metadata's counts can be trusted -----------------
    def _count(self) -> dict[int, int]:
        """Per-topic counts and the time span, by query; recover when the database is damaged."""
        try:
            rows = self._db.execute(
                "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) "
                "FROM messages GROUP BY topic_id"
            ).fetchall()
            self._check_last_payload()
        except sqlite3.DatabaseError:
            return self._recover()
        if not all(type(value) is int for row in rows for value in row):
            return self._recover()  # a damaged row's time or topic is not even a number
        self._ends = {tid: (lo, hi) for tid, _, lo, hi in rows}
        self._total = sum(n for _, n, _, _ in rows)
        if rows:
            self._start_ns = min(r[2] for r in rows)
            self._end_ns = max(r[3] for r in rows)
        return {tid: n for tid, n, _, _ in rows}

    def _check(self) -> dict[int, int] | None:
        """Make sure every page of the messages table is there; None: readable, not counted.

        Counting the table's rows walks all of its pages (a zeroed or overwritten page fails
        here, not halfway through a replay) without decoding any row, and the timestamp index
        must agree with it. The span comes from the index's two ends.
        """
        db = self._db
        try:
            (rows,) = db.execute("SELECT COUNT(*) FROM messages NOT INDEXED").fetchone()
            (indexed,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
            (first,) = db.execute("SELECT MIN(timestamp) FROM messages").fetchone()
            (last,) = db.execute("SELECT MAX(timestamp) FROM messages").fetchone()
            self._check_last_payload()
        except sqlite3.DatabaseError:
            return self._recover()
        if rows != indexed or (rows and not (type(first) is int and type(last) is int)):
            return self._recover()  # the index disagrees, or a time is not even a number
        self._total = rows
        if rows:
            self._start_ns, self._end_ns = first, last
        return None

    def _check_last_payload(self) -> None:
        # A damaged file may still aggregate: make sure the last payload is readable too.
        self._db.execute("SELECT data FROM messages ORDER BY id DESC LIMIT 1").fetchall()

    def _recover(self) -> dict[int, int]:
        """Keep every row that can still be found and read, skipping over damaged pages."""
        rows = sorted(self._findable(self._scan_ids()))
        self._rows = rows
        counts: dict[int, int] = {}
        for _, _, tid in rows:
            counts[tid] = counts.get(tid, 0) + 1
        self._total = len(rows)
        if rows:
            self._start_ns, self._end_ns = rows[0][0], rows[-1][0]
        self.recovery_note = (
            f"{self.path.name}: sqlite3 database is damaged (cut off?); "
            f"{span_text(len(rows), self._start_ns, self._end_ns)}"
        )
        return counts

    def _scan_ids(self) -> list[int]:
        """Ids of the rows whose payload reads, walking the table in id order.

        The walk stops at the first page sqlite cannot read; ids after it are then tried one by
        one (they live on other pages) until one reads, and the walk resumes from there; a run
        of ``_MAX_MISSES`` unreadable ids ends it.
        """
        ids: list[int] = []
        last = 0
        while True:
            try:
                cursor = self._db.execute(
                    "SELECT id, data FROM messages WHERE id > ? ORDER BY id", (last,)
                )
                for rid, _ in cursor:
                    ids.append(rid)
                    last = max(last, rid)  # a damaged page may list any id: never go back
                break
            except sqlite3.DatabaseError:
                found = self._next_readable(last)
                if found is None:
                    break
                ids.append(found)
                last = found
        return ids

    def _next_readable(self, after: int) -> int | None:
        """The first id after ``after`` whose row reads, trying ids one by one."""
        rid = after
        for _ in range(_MAX_MISSES):
            rid += 1
            try:
                row = self._db.execute("SELECT data FROM messages WHERE id = ?", (rid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                return rid
        return None

    def _findable(self, ids: list[int]) -> list[tuple[int, int, int]]:
        """(time, id, topic) of the ``ids`` that a lookup by id finds, with sane values.

        A walk in id order also returns what a damaged page happens to hold; a lookup
        descends from the root, as every later read of the payload will, so only rows it finds
        are kept, with the topic and time it sees.
        """
        out: list[tuple[int, int, int]] = []
        query = "SELECT id, topic_id, timestamp FROM messages WHERE id IN ({})"
        for i in range(0, len(ids), 500):
            part = sorted(set(ids[i : i + 500]))
            try:
                found = self._db.execute(query.format(",".join("?" * len(part))), part).fetchall()
            except sqlite3.DatabaseError:
                found = []
                for rid in part:
                    with contextlib.suppress(sqlite3.DatabaseError):
                        found += self._db.execute(query.format("?"), (rid,)).fetchall()
            out += [(t, rid, tid) for rid, tid, t in found if type(t) is int and type(tid) is int]
        return out

    @property
    def total(self) -> int:
        """Rows in the messages table (every topic), as far as they can be read."""
        return self._total

    @property
    def message_count(self) -> int:
        """Messages of the topics this file serves; every row while per-topic counts are not
        known (a checked file in a bag directory)."""
        return super().message_count if self._counted else self._total

    def topic_counts(self) -> dict[int, int]:
        """Per global connection id: its messages, counting them now if opening did not."""
        if self._counted:
            return super().topic_counts()
        try:
            rows = self._db.execute(
                "SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id"
            ).fetchall()
        except sqlite3.DatabaseError as err:
            raise self._damaged(err) from err
        by_topic = dict(rows)
        return {c.id: by_topic.get(tid, 0) for tid, c in self._local.items()}

    def _damaged(self, err: sqlite3.DatabaseError) -> LogOpenError:
        msg = (
            f"{self.path}: database is damaged ({_reason(err)}); open the .db3 on its own "
            "(without metadata.yaml) to recover what is readable"
        )
        return LogOpenError(msg)

    # -- messages ------------------------------------------------------------------------------
    def messages(
        self, ids: frozenset[int] | None, *, start_ns: int | None, end_ns: int | None
    ) -> Iterator[RawMessage]:
        """Raw messages of the global connection ``ids`` (None: all) in time order."""
        wanted = self._wanted(ids)
        if not wanted:
            return iter(())
        lo = -(1 << 63) if start_ns is None else start_ns
        hi = (1 << 63) - 1 if end_ns is None else end_ns
        if self._rows is not None:
            return self._recovered(wanted, lo, hi)
        if start_ns is None and end_ns is None and wanted == frozenset(self._local):
            # The whole log: no per-row conditions for sqlite to test (~10% of its time over
            # small messages); rows of topics this file does not serve are dropped per batch.
            query = (
                "SELECT topic_id, timestamp, data FROM messages "
                "WHERE timestamp IS NOT NULL ORDER BY timestamp, id"
            )
            args: tuple[int, ...] = ()
        else:
            marks = ",".join("?" * len(wanted))
            query = (
                "SELECT topic_id, timestamp, data FROM messages WHERE timestamp >= ? AND "
                f"timestamp < ? AND topic_id IN ({marks}) ORDER BY timestamp, id"
            )
            args = (lo, hi, *sorted(wanted))
        # Rows become RawMessages a batch at a time, in C (map over zip): the per-message cost
        # is then little more than sqlite's own, which is what many small messages need.
        return chain.from_iterable(self._batches(query, args, wanted))

    def _batches(
        self, query: str, args: tuple[int, ...], wanted: frozenset[int]
    ) -> Iterator[Iterator[RawMessage]]:
        emit = self._emit.__getitem__
        try:
            cursor = self._db.execute(query, args)
            while rows := cursor.fetchmany(self._batch):
                tids, times, data = zip(*rows, strict=True)
                # Rows of topics not served (no WHERE), or a damaged row's non-integer time.
                if not wanted.issuperset(tids) or not _INT.issuperset(map(type, times)):
                    rows = [r for r in rows if r[0] in wanted and type(r[1]) is int]
                    if not rows:
                        continue
                    tids, times, data = zip(*rows, strict=True)
                yield map(_raw, zip(map(emit, tids), times, data, strict=True))
        except sqlite3.DatabaseError as err:
            raise self._damaged(err) from err

    def _recovered(self, wanted: frozenset[int], lo: int, hi: int) -> Iterator[RawMessage]:
        assert self._rows is not None
        emit = self._emit
        for t, rid, tid in self._rows:
            if tid in wanted and lo <= t < hi:
                try:
                    (data,) = self._db.execute(
                        "SELECT data FROM messages WHERE id = ?", (rid,)
                    ).fetchone()
                except (sqlite3.DatabaseError, TypeError) as err:  # TypeError: no row any more
                    msg = f"{self.path}: message {rid} of the damaged database cannot be read"
                    raise LogOpenError(msg) from err
                yield RawMessage(emit[tid], t, data)

    # -- times ---------------------------------------------------------------------------------
    def times(
        self, ids: frozenset[int] | None, *, ends_only: bool, progress: Progress
    ) -> TimesById:
        """Log times per connection, read in bulk without payloads (see `Source.times`).

        ``ends_only`` comes from the counting query when opening ran it, else from the
        timestamp index (two probes per topic); everything else is one pass over the table in
        id order, sorted per topic in numpy.
        """
        wanted = self._wanted(ids)
        if not wanted:
            return {}
        if self._rows is not None:
            found = self._recovered_times(wanted)
        else:
            ends = self._ends if ends_only else None
            if ends_only and ends is None:
                ends = self._probe_ends(wanted)
            if ends is not None:
                found = {
                    tid: np.array(sorted({lo, hi}), dtype=np.int64)
                    for tid, (lo, hi) in ends.items()
                    if tid in wanted
                }
            else:
                found = self._read_times(wanted, progress)
        return {self._local[tid].id: times for tid, times in found.items() if times.size}

    def _recovered_times(self, wanted: frozenset[int]) -> dict[int, NDArray[np.int64]]:
        assert self._rows is not None
        if not self._rows:
            return {}
        rows = np.array([(t, tid) for t, _, tid in self._rows], dtype=np.int64)
        return _split_by_topic(rows[:, 1], rows[:, 0], wanted)

    def _probe_ends(self, wanted: frozenset[int]) -> dict[int, tuple[int, int]] | None:
        """First and last time per topic through the timestamp index; None when too costly."""
        steps = [_PROBE_STEPS // 1000]

        def spend() -> int:  # sqlite calls this every 1000 VM steps; non-zero interrupts
            steps[0] -= 1
            return int(steps[0] < 0)

        db = self._db
        db.set_progress_handler(spend, 1000)
        ends: dict[int, tuple[int, int]] = {}
        try:
            for tid in sorted(wanted):
                first = db.execute(
                    "SELECT timestamp FROM messages WHERE topic_id = ? "
                    "AND typeof(timestamp) = 'integer' ORDER BY timestamp LIMIT 1",
                    (tid,),
                ).fetchone()
                if first is None:
                    continue
                (last,) = db.execute(
                    "SELECT timestamp FROM messages WHERE topic_id = ? "
                    "AND typeof(timestamp) = 'integer' ORDER BY timestamp DESC LIMIT 1",
                    (tid,),
                ).fetchone()
                ends[tid] = (first[0], last)
        except sqlite3.OperationalError:
            return None  # interrupted: the one-pass read is cheaper
        except sqlite3.DatabaseError as err:
            raise self._damaged(err) from err
        finally:
            db.set_progress_handler(None, 0)
        return ends

    def _read_times(
        self, wanted: frozenset[int], progress: Progress
    ) -> dict[int, NDArray[np.int64]]:
        """Every (topic, time) in id order, a block of ids at a time, as text parsed by numpy.

        ``group_concat`` hands a block back as two strings instead of a Python tuple per row,
        which is most of the cost of a plain fetch; sorting per topic in numpy is cheaper
        than sqlite ordering rows through the timestamp index.
        """
        db = self._db
        tids: list[NDArray[np.int64]] = []
        times: list[NDArray[np.int64]] = []
        try:
            (low,) = db.execute("SELECT MIN(id) FROM messages").fetchone()
            (high,) = db.execute("SELECT MAX(id) FROM messages").fetchone()
            start, step, done = low, _TIMES_BLOCK, 0
            while start is not None and start <= high:
                stop = start + step
                text_ids, text_times, n = db.execute(
                    "SELECT group_concat(topic_id), group_concat(timestamp), COUNT(*) "
                    "FROM messages WHERE id >= ? AND id < ?",
                    (start, stop),
                ).fetchone()
                if n:
                    block = _parse_block(text_ids, text_times, n) or self._block_rows(start, stop)
                    tids.append(block[0])
                    times.append(block[1])
                    done += n
                    if progress is not None:
                        progress(done, self._total)
                start = stop
                # Ids are usually dense; where they are not, grow the block to keep it full.
                if n < _TIMES_BLOCK // 2:
                    step *= 2
                elif n > 2 * _TIMES_BLOCK:
                    step = max(1, step // 2)
        except sqlite3.DatabaseError as err:
            raise self._damaged(err) from err
        if not tids:
            return {}
        return _split_by_topic(np.concatenate(tids), np.concatenate(times), wanted)

    def _block_rows(self, start: int, stop: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """One block row by row, keeping the rows whose topic and time are integers."""
        rows = self._db.execute(
            "SELECT topic_id, timestamp FROM messages WHERE id >= ? AND id < ?", (start, stop)
        ).fetchall()
        good = [(tid, t) for tid, t in rows if type(tid) is int and type(t) is int]
        pairs = np.array(good, dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def close(self) -> None:
        """Close the database (and drop the recovery copy)."""
        self._db.close()
        if self._copy is not None:
            self._copy.unlink(missing_ok=True)


def _parse_block(
    text_ids: str | None, text_times: str | None, n: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """A block's ids and times from ``group_concat`` text; None unless both are ``n`` integers."""
    if text_ids is None or text_times is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns when it stops short of the end
        try:
            tids = np.fromstring(text_ids, dtype=np.int64, sep=",")
            times = np.fromstring(text_times, dtype=np.int64, sep=",")
        except (ValueError, DeprecationWarning):
            return None
    if tids.size != n or times.size != n:
        return None
    return tids, times


def _split_by_topic(
    tids: NDArray[np.int64], times: NDArray[np.int64], wanted: frozenset[int]
) -> dict[int, NDArray[np.int64]]:
    """Sorted times per wanted topic id."""
    order = np.lexsort((times, tids))
    tids, times = tids[order], times[order]
    keys, starts = np.unique(tids, return_index=True)
    bounds = [*starts.tolist(), len(tids)]
    return {
        int(k): times[bounds[i] : bounds[i + 1]] for i, k in enumerate(keys.tolist()) if k in wanted
    }


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    # Damaged text (a topic name, a definition) is still shown, not a decoding error.
    db.text_factory = lambda raw: raw.decode(errors="replace")
    return db


def _reason(err: Exception) -> str:
    """sqlite's message, on one line (it may quote a whole damaged value)."""
    text = " ".join(str(err).split())
    return text if len(text) <= 120 else f"{text[:117]}..."


def _header(path: Path) -> tuple[bytes, int]:
    """The 100-byte sqlite header and the page size it announces."""
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
    return header, page_size


def _announces_more_pages(path: Path, size: int) -> bool:
    """Whether the header counts more pages than the file has: it was cut off."""
    header, page_size = _header(path)
    pages = int.from_bytes(header[28:32], "big")
    # The count is only valid while its "version-valid-for" number matches the change counter.
    valid = header[92:96] == header[24:28]
    return valid and pages * page_size > size


def _page_aligned_copy(path: Path) -> Path:
    """A temporary copy cut to whole pages, its header's page count matching the copy."""
    header, page_size = _header(path)
    pages = path.stat().st_size // page_size
    if pages < 1:
        msg = f"{path}: sqlite3 file cut off inside its first page"
        raise LogOpenError(msg)
    fd, name = tempfile.mkstemp(prefix="bagscope-recover-", suffix=".db3")
    with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
        src.seek(100)
        dst.write(header[:28] + pages.to_bytes(4, "big") + header[32:])
        left = pages * page_size - 100
        while left > 0:
            block = src.read(min(left, 1 << 20))
            if not block:
                break
            dst.write(block)
            left -= len(block)
    return Path(name)
