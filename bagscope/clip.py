"""Copy a log, or a window and some topics of it, into a new log in any of the three formats.

``replay clip`` and ``replay convert`` both come down to :func:`clip_log`: read messages with
:class:`~bagscope.replay.log.Log` (the one reading path), write them with the simulator's
atomic :class:`~bagscope.sim.writer.LogWriter` (hidden temp beside ``out``, renamed into place
when whole). What a plain copy would lose is kept on purpose:

- message definitions: each output connection gets the source connection's own definition
  text and hash (ROS2 msgdef + RIHS01, ROS1 msgdef + md5, callerid, latching), read with
  rosbags' readers because bagscope's own readers keep only what replay needs; where a
  serialization changes the definition is regenerated from the log's types;
- QoS: a rosbag2 connection's ``offered_qos_profiles`` travel as recorded; ROS1 latching
  becomes ROS2 transient-local durability and back;
- payloads: same serialization is copied byte for byte; ROS1 -> CDR uses rosbags'
  ``ros1_to_cdr`` (``std_msgs/Header`` loses ``seq``, ``tf/tfMessage`` becomes
  ``tf2_msgs/msg/TFMessage``, as ``rosbags-convert`` does), CDR -> ROS1 ``cdr_to_ros1``
  (``seq`` written as 0).

A clip must replay on its own, so a window that starts after the log does carries in every
``/tf_static`` message before it and the latest message of each CameraInfo topic: they are
written at the window's start log time with their payload (header stamps included) as
recorded. :func:`clip_events` cuts one clip per (merged, padded) event window of a run.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError
from bagscope.replay.types import ros1_store_for_cdr, ros2_store_for_ros1
from bagscope.sim.writer import (
    LogWriter,
    _storage_stem,
    check_output_path,
    format_for_path,
    is_bag_directory,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from rosbags.interfaces import Connection as BagConnection
    from rosbags.interfaces import Qos
    from rosbags.rosbag1 import Writer as Writer1
    from rosbags.rosbag2 import Writer as Writer2
    from rosbags.typesys.store import Typestore

    from bagscope.replay.log import Log
    from bagscope.replay.storage.base import Connection

__all__ = [
    "COMPRESSIONS",
    "ClipError",
    "ClipResult",
    "ClipWindow",
    "clip_events",
    "clip_log",
    "event_windows",
    "load_events",
]

CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
# What each output format can compress with ("none" everywhere).
COMPRESSIONS: Mapping[str, tuple[str, ...]] = {
    "mcap": ("none", "zstd", "lz4"),
    "db3": ("none",),
    "bag": ("none", "lz4", "bz2"),
}
_SUFFIXES = {"mcap": ".mcap", "db3": ".db3", "bag": ".bag"}
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


class ClipError(BagscopeError):
    """A clip or conversion that cannot be made as asked (one line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipResult:
    """What one clip holds: messages written per topic, of which carried in before the window."""

    out: Path
    fmt: str
    start_ns: int | None
    end_ns: int | None
    counts: dict[str, int]
    carried: dict[str, int]
    converted: int

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class _Meta:
    """A source connection as rosbags reads it: what bagscope's readers do not keep."""

    msgdef: str
    digest: str
    qos: list[Qos]
    callerid: str | None
    latching: int | None


@dataclass(slots=True)
class _Route:
    """Where one source connection's messages go: the output connection and the converter."""

    key: str
    topic: str
    msgtype: str
    connect: Callable[[Writer1 | Writer2], BagConnection]
    convert: Callable[[bytes | memoryview], bytes | memoryview] | None = None


# -- the source's connection metadata ---------------------------------------------------------


def _source_meta(log: Log) -> dict[int, _Meta]:
    """Per bagscope connection id, what the rosbags reader of its file says (where it can).

    A log rosbags cannot open (a cut-off file bagscope recovered) still copies: definitions
    are then regenerated from the log's types, which a warning says.
    """
    from rosbags.rosbag1 import Reader as Reader1
    from rosbags.rosbag2 import Reader as Reader2

    from bagscope.replay.storage.base import normalize_msgtype

    by_path: dict[Path, list[Connection]] = {}
    for conn in log.connections():
        by_path.setdefault(conn.path, []).append(conn)
    found: dict[int, _Meta] = {}
    for path, conns in by_path.items():
        try:
            reader = Reader1(path) if path.suffix == ".bag" else Reader2(path)
            with reader:
                theirs = list(reader.connections)
        except Exception as err:  # rosbags raises a reader error per format, and more
            note = f"{path}: cannot read connection metadata with rosbags ({err}); "
            warnings.warn(note + "definitions regenerated from the log's types", stacklevel=2)
            continue
        pool: dict[tuple[str, str], list[_Meta]] = {}
        for c in sorted(theirs, key=lambda c: c.id):
            ext: Any = c.ext
            meta = _Meta(
                msgdef=c.msgdef.data,
                digest=c.digest,
                qos=list(getattr(ext, "offered_qos_profiles", []) or []),
                callerid=getattr(ext, "callerid", None),
                latching=getattr(ext, "latching", None),
            )
            pool.setdefault((c.topic, normalize_msgtype(c.msgtype)), []).append(meta)
        taken: dict[tuple[str, str], int] = {}
        for conn in sorted(conns, key=lambda c: c.id):
            metas = pool.get((conn.topic, conn.msgtype))
            if metas:
                k = taken.get((conn.topic, conn.msgtype), 0)
                found[conn.id] = metas[min(k, len(metas) - 1)]
                taken[(conn.topic, conn.msgtype)] = k + 1
    return found


# -- typestores for changing serialization ----------------------------------------------------


def _latched_qos() -> list[Qos]:
    from bagscope.sim.writer import _LATCHED_QOS

    return [_LATCHED_QOS]


def _is_latched(qos: Sequence[Qos]) -> bool:
    from rosbags.interfaces import QosDurability

    return any(q.durability == QosDurability.TRANSIENT_LOCAL for q in qos)


class _Planner:
    """Builds a :class:`_Route` per source connection for one output serialization."""

    def __init__(self, log: Log, *, ros1_out: bool) -> None:
        self.log = log
        self.ros1_out = ros1_out
        self.meta = _source_meta(log)
        self.converted = 0
        self._stores: dict[tuple[int, str], Typestore] = {}

    def _store(self, conn: Connection) -> Typestore:
        store = self.log.types.store_for(conn.msgtype, conn.serialization)
        if store is None:
            msg = (
                f"no definition of {conn.msgtype!r} ({conn.topic}) in the log or the typestore; "
                "pass --msg-path DIR with its .msg files"
            )
            raise ClipError(msg)
        return store

    def _derived(self, store: Typestore, kind: str) -> Typestore:
        key = (id(store), kind)
        derived = self._stores.get(key)
        if derived is None:
            make = ros2_store_for_ros1 if kind == "ros2" else ros1_store_for_cdr
            derived = self._stores[key] = make(store)
        return derived

    def _counted(
        self, fn: Callable[[bytes | memoryview], bytes | memoryview]
    ) -> Callable[[bytes | memoryview], bytes | memoryview]:
        def convert(data: bytes | memoryview) -> bytes | memoryview:
            self.converted += 1
            return fn(data)

        return convert

    def route(self, conn: Connection) -> _Route:
        from bagscope.replay.tf import is_static_tf_topic

        meta = self.meta.get(conn.id)
        static = is_static_tf_topic(conn.topic)
        if self.ros1_out:
            return self._to_ros1(conn, meta, static=static)
        return self._to_cdr(conn, meta, static=static)

    def _to_cdr(self, conn: Connection, meta: _Meta | None, *, static: bool) -> _Route:
        topic, msgtype = conn.topic, conn.msgtype
        if conn.serialization == "cdr":
            qos = meta.qos if meta is not None else (_latched_qos() if static else [])
            if meta is not None and meta.msgdef:
                msgdef = meta.msgdef
                digest = meta.digest or self._store(conn).hash_rihs01(msgtype)

                def connect(w: Writer1 | Writer2) -> BagConnection:
                    return w.add_connection(  # type: ignore[call-arg]
                        topic, msgtype, msgdef=msgdef, rihs01=digest, offered_qos_profiles=qos
                    )
            else:
                store = self._store(conn)

                def connect(w: Writer1 | Writer2) -> BagConnection:
                    return w.add_connection(  # type: ignore[call-arg]
                        topic, msgtype, typestore=store, offered_qos_profiles=qos
                    )

            return _Route(key=f"{topic}\0{msgtype}", topic=topic, msgtype=msgtype, connect=connect)
        from rosbags.convert.converter import STATIC_MSGTYPE_RENAMES

        ros2 = self._derived(self._store(conn), "ros2")
        out_type = STATIC_MSGTYPE_RENAMES.get(msgtype, msgtype)
        if out_type != msgtype and out_type not in ros2.fielddefs:  # tf/tfMessage, renamed
            ros2.register({out_type: ros2.fielddefs[msgtype]})
        latched = static or (meta is not None and bool(meta.latching))
        qos2 = _latched_qos() if latched else []

        def connect2(w: Writer1 | Writer2) -> BagConnection:
            return w.add_connection(  # type: ignore[call-arg]
                topic, out_type, typestore=ros2, offered_qos_profiles=qos2
            )

        source_type = msgtype
        return _Route(
            key=f"{topic}\0{out_type}",
            topic=topic,
            msgtype=out_type,
            connect=connect2,
            convert=self._counted(lambda data: ros2.ros1_to_cdr(data, source_type)),
        )

    def _to_ros1(self, conn: Connection, meta: _Meta | None, *, static: bool) -> _Route:
        topic, msgtype = conn.topic, conn.msgtype
        if conn.serialization == "ros1":
            callerid = meta.callerid if meta is not None else None
            latching = meta.latching if meta is not None else (1 if static else None)
            if meta is not None and meta.msgdef and meta.digest:
                msgdef, md5 = meta.msgdef, meta.digest

                def connect(w: Writer1 | Writer2) -> BagConnection:
                    return w.add_connection(  # type: ignore[call-arg]
                        topic,
                        msgtype,
                        msgdef=msgdef,
                        md5sum=md5,
                        callerid=callerid,
                        latching=latching,
                    )
            else:
                store = self._store(conn)

                def connect(w: Writer1 | Writer2) -> BagConnection:
                    return w.add_connection(  # type: ignore[call-arg]
                        topic, msgtype, typestore=store, callerid=callerid, latching=latching
                    )

            return _Route(
                key=f"{topic}\0{msgtype}\0{callerid or ''}",
                topic=topic,
                msgtype=msgtype,
                connect=connect,
            )
        cdr = self._store(conn)
        ros1 = self._derived(cdr, "ros1")
        msgdef1, md5_1 = ros1.generate_msgdef(msgtype, ros_version=1)
        latched = static or (meta is not None and _is_latched(meta.qos))
        latch = 1 if latched else None

        def connect1(w: Writer1 | Writer2) -> BagConnection:
            return w.add_connection(  # type: ignore[call-arg]
                topic, msgtype, msgdef=msgdef1, md5sum=md5_1, latching=latch
            )

        return _Route(
            key=f"{topic}\0{msgtype}\0",
            topic=topic,
            msgtype=msgtype,
            connect=connect1,
            convert=self._counted(lambda data: cdr.cdr_to_ros1(data, msgtype)),
        )


# -- the writer -------------------------------------------------------------------------------


class _ClipWriter(LogWriter):
    """:class:`LogWriter` (atomic placement) with connections made from routes, not types,
    and a choice of compression."""

    def __init__(
        self, out: Path, *, fmt: str, overwrite: bool, compression: str, routes: list[_Route]
    ) -> None:
        from rosbags.typesys import Stores, get_typestore

        super().__init__(out, fmt=fmt, typestore=get_typestore(Stores.EMPTY), overwrite=overwrite)
        self._compression = compression
        self._routes = {r.key: r for r in routes}

    def _open(self, tmpdir: Path) -> Writer1 | Writer2:
        from rosbags.rosbag1 import Writer as Writer1
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin
        from rosbags.rosbag2 import Writer as Writer2

        if self.fmt == "bag":
            self._inner = tmpdir / self.out.name
            bag = Writer1(self._inner)
            bag.chunk_threshold = self._chunk_bytes
            if self._compression != "none":
                bag.set_compression(Writer1.CompressionFormat[self._compression.upper()])
            bag.open()
            return bag
        plugin = StoragePlugin.SQLITE3 if self.fmt == "db3" else StoragePlugin.MCAP
        if is_bag_directory(self.out, self.fmt):
            bag_dir = self._inner = tmpdir / _storage_stem(self.out, self.fmt)
        else:
            bag_dir = tmpdir / self.out.stem
            self._inner = bag_dir / f"{self.out.stem}.mcap"
        bag2 = Writer2(bag_dir, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
        if self._compression == "zstd":
            bag2.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        bag2.open()
        if self._compression == "lz4":
            # rosbags' MCAP writer only offers zstd; its chunks name their compressor, so
            # handing it lz4 before the first chunk is written gives a valid lz4 MCAP.
            from lz4.frame import compress  # type: ignore[import-untyped]

            storage: Any = bag2.storage
            storage.compression = "lz4"
            storage.compressor = compress
        return bag2

    def _connect(self, writer: Writer1 | Writer2, topic: str, msgtype: str) -> BagConnection:
        connection = self._routes[topic].connect(writer)
        self._connections[topic] = connection
        return connection

    def put(self, route: _Route, log_time_ns: int, payload: bytes | memoryview) -> None:
        """Write one message now (messages arrive in log-time order)."""
        self._write(route.key, route.msgtype, log_ns=log_time_ns, payload=payload)  # type: ignore[arg-type]


# -- clipping ---------------------------------------------------------------------------------


def check_compression(fmt: str, compression: str) -> None:
    """Refuse a compression the output format cannot hold, naming those it can."""
    allowed = COMPRESSIONS.get(fmt, ("none",))
    if compression not in allowed:
        msg = f"{fmt} output supports --compression {' | '.join(allowed)}, not {compression!r}"
        raise ClipError(msg)


def _refuse_inputs(out: Path, log: Log) -> None:
    target = out.resolve()
    for path in log.paths:
        source = path.resolve()
        if target == source or target in source.parents or source in target.parents:
            msg = f"{out} would replace the log being read"
            raise ClipError(msg)


def clip_log(
    log: Log,
    out: Path | str,
    *,
    fmt: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    topics: Iterable[str] | None = None,
    compression: str = "none",
    overwrite: bool = False,
) -> ClipResult:
    """Write the messages with ``start_ns <= log time < end_ns`` of ``topics`` (None: all) to
    ``out`` as a log of ``fmt`` (None: from the name, see
    :func:`~bagscope.sim.writer.format_for_path`); see the module doc for what is kept."""
    out = Path(out)
    fmt = fmt or format_for_path(out)
    check_output_path(out, fmt=fmt, overwrite=overwrite)
    check_compression(fmt, compression)
    _refuse_inputs(out, log)
    conns = log.connections(topics)  # an unknown topic fails here, with a suggestion
    names = sorted({c.topic for c in conns})
    planner = _Planner(log, ros1_out=fmt == "bag")
    routes = {c.id: planner.route(c) for c in conns}
    counts: dict[str, int] = {}
    carried: dict[str, int] = {}
    writer = _ClipWriter(
        out, fmt=fmt, overwrite=overwrite, compression=compression, routes=list(routes.values())
    )
    with writer:
        if start_ns is not None and names:
            for msg in _carried_in(log, names, start_ns=start_ns, conns=conns):
                route = routes[msg.connection.id]
                data = route.convert(msg.data) if route.convert else msg.data
                writer.put(route, start_ns, data)
                carried[msg.topic] = carried.get(msg.topic, 0) + 1
                counts[msg.topic] = counts.get(msg.topic, 0) + 1
        if names:
            for msg in log.messages(start_ns, end_ns, topics=names):
                route = routes[msg.connection.id]
                data = route.convert(msg.data) if route.convert else msg.data
                writer.put(route, msg.log_time_ns, data)
                counts[msg.topic] = counts.get(msg.topic, 0) + 1
    return ClipResult(
        out=out,
        fmt=fmt,
        start_ns=start_ns,
        end_ns=end_ns,
        counts=dict(sorted(counts.items())),
        carried=dict(sorted(carried.items())),
        converted=planner.converted,
    )


def _carried_in(
    log: Log, names: Sequence[str], *, start_ns: int, conns: Sequence[Connection]
) -> list[Any]:
    """Every static-TF message before ``start_ns``, then each CameraInfo topic's latest."""
    from bagscope.replay.tf import TF_TYPES, is_static_tf_topic

    static = sorted(
        {c.topic for c in conns if c.msgtype in TF_TYPES and is_static_tf_topic(c.topic)}
    )
    infos = sorted({c.topic for c in conns if c.msgtype == CAMERA_INFO})
    out: list[Any] = []
    if static:
        out.extend(log.messages(None, start_ns, topics=static))
    out.extend(log.latest_before(infos, start_ns))
    return out


# -- clips of a run's events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipWindow:
    """One clip's window ``[start_ns, end_ns)`` and the events (as recorded) it covers."""

    start_ns: int
    end_ns: int
    events: list[dict[str, Any]] = field(default_factory=list)


def load_events(
    path: Path | str, *, kind: str | None = None, severity: str | None = None
) -> list[dict[str, Any]]:
    """The events of a run's ``events.jsonl`` (or of a run directory), as recorded, of
    ``kind`` and at least ``severity``; it is an error when none are left."""
    path = Path(path)
    if path.is_dir():
        path = path / "events.jsonl"
    if not path.is_file():
        msg = f"events file {path} not found; give a run's events.jsonl (runs/NAME/events.jsonl)"
        raise ClipError(msg)
    if severity is not None and severity not in _SEVERITY_RANK:
        msg = f"unknown severity {severity!r}; choose one of {', '.join(_SEVERITY_RANK)}"
        raise ClipError(msg)
    events: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            int(event["t_ns"]), int(event["end_ns"]), str(event["kind"])
        except (ValueError, KeyError, TypeError):
            msg = f"{path} is not an events.jsonl: line {n} is not an event (t_ns, end_ns, kind)"
            raise ClipError(msg) from None
        events.append(event)
    picked = [
        e
        for e in events
        if (kind is None or e["kind"] == kind)
        and (
            severity is None
            or _SEVERITY_RANK.get(str(e.get("severity")), 0) >= _SEVERITY_RANK[severity]
        )
    ]
    if not picked:
        parts = [
            f"of kind {kind!r}" if kind else "",
            f"of severity >= {severity}" if severity else "",
        ]
        what = " ".join(p for p in parts if p)
        kinds = ", ".join(sorted({str(e["kind"]) for e in events})) or "none, the file is empty"
        msg = f"no events {what + ' ' if what else ''}in {path} (kinds: {kinds})"
        raise ClipError(msg)
    return picked


def event_windows(events: Sequence[Mapping[str, Any]], *, pad_ns: int) -> list[ClipWindow]:
    """``[t_ns - pad, end_ns + pad)`` per event, overlapping windows merged, in time order."""
    ordered = sorted(events, key=lambda e: (int(e["t_ns"]), int(e["end_ns"])))
    windows: list[ClipWindow] = []
    for e in ordered:
        t0 = int(e["t_ns"]) - pad_ns
        t1 = max(int(e["end_ns"]), int(e["t_ns"])) + pad_ns
        if t1 <= t0:  # a zero-length event with no pad still gets its instant
            t1 = t0 + 1
        if windows and t0 < windows[-1].end_ns:
            last = windows[-1]
            windows[-1] = ClipWindow(
                start_ns=last.start_ns, end_ns=max(last.end_ns, t1), events=[*last.events, dict(e)]
            )
        else:
            windows.append(ClipWindow(start_ns=t0, end_ns=t1, events=[dict(e)]))
    return windows


def clip_name(window: ClipWindow, *, log_start_ns: int, fmt: str) -> str:
    """``<kind>_<t_s>.<fmt>``: the first event's kind and its offset from the log start in s."""
    from bagscope.replay.timeparse import format_seconds

    first = window.events[0]
    kind = re.sub(r"[^A-Za-z0-9_.-]", "_", str(first["kind"])) or "event"
    return f"{kind}_{format_seconds(int(first['t_ns']) - log_start_ns)}{_SUFFIXES[fmt]}"


def clip_events(
    log: Log,
    events: Sequence[Mapping[str, Any]],
    out_dir: Path | str,
    *,
    pad_ns: int,
    fmt: str = "mcap",
    topics: Iterable[str] | None = None,
    compression: str = "none",
    overwrite: bool = False,
) -> list[tuple[ClipWindow, ClipResult]]:
    """One clip per merged event window in ``out_dir``, plus ``out_dir/clips.jsonl``.

    Every clip's name and window is checked before the first is written, so a mistake costs
    nothing; ``clips.jsonl`` (file, window, messages, events covered) is written last,
    atomically, so it only ever lists clips that exist.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"{out_dir} is not a directory; -o names the directory the clips go into"
        raise ClipError(msg)
    check_compression(fmt, compression)
    topic_list = list(topics) if topics is not None else None
    log.connections(topic_list)  # an unknown topic fails before anything is written
    info = log.info()
    windows = event_windows(events, pad_ns=pad_ns)
    for w in windows:
        if w.end_ns <= info.start_ns or w.start_ns > info.end_ns:
            msg = (
                f"event window {w.start_ns}..{w.end_ns} ns is outside the log "
                f"({info.start_ns}..{info.end_ns} ns); are these events from another log?"
            )
            raise ClipError(msg)
    index = out_dir / "clips.jsonl"
    if index.exists() and not overwrite:
        msg = f"{index} already exists; pass --overwrite to replace it"
        raise ClipError(msg)
    names = [clip_name(w, log_start_ns=info.start_ns, fmt=fmt) for w in windows]
    for name in names:
        check_output_path(out_dir / name, fmt=fmt, overwrite=overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[ClipWindow, ClipResult]] = []
    for w, name in zip(windows, names, strict=True):
        result = clip_log(
            log,
            out_dir / name,
            fmt=fmt,
            start_ns=w.start_ns,
            end_ns=w.end_ns,
            topics=topic_list,
            compression=compression,
            overwrite=overwrite,
        )
        done.append((w, result))
    lines = [
        json.dumps(
            {
                "file": name,
                "start_ns": w.start_ns,
                "end_ns": w.end_ns,
                "messages": r.message_count,
                "carried_in": sum(r.carried.values()),
                "events": w.events,
            }
        )
        for name, (w, r) in zip(names, done, strict=True)
    ]
    _write_atomic(index, "".join(f"{line}\n" for line in lines))
    return done


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        mask = os.umask(0o022)
        os.umask(mask)
        Path(tmp).chmod(0o666 & ~mask)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
