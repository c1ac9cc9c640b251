"""Static and dynamic transforms from a log, looked up at any time the log covers.

The buffer keeps the whole log's history rather than tf2's sliding window: replay is offline, so
an analyzer may ask about any moment, and a log's TF stream is small next to its clouds. Each
child frame has exactly one parent edge (tf2's tree); a lookup walks both frames up to their
common ancestor and interpolates every dynamic edge on the way (translation linearly, rotation by
slerp), which is what ``tf2::BufferCore::lookupTransform`` does.

Samples are appended cheaply and sorted only when a lookup needs them, because a replay feeds
transforms one message at a time and interleaves lookups: the in-order common case extends
preallocated arrays in place, and only an out-of-order sample triggers a full re-sort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from bagscope.replay.errors import TransformError
from bagscope.replay.rotation import matrix_to_quat, quat_to_matrix, rigid, rigid_inverse, slerp
from bagscope.replay.timeparse import format_seconds

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]
    IntArray = NDArray[np.int64]

__all__ = [
    "TF_TYPES",
    "TfEdge",
    "TfView",
    "TransformBuffer",
    "is_static_tf_topic",
    "matrix_to_quat",
    "quat_to_matrix",
    "slerp",
]

# The message types that carry transforms: ROS 2 / tf2 and ROS 1's legacy tf.
TF_TYPES = frozenset({"tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"})
_SHOWN_FRAMES = 8  # how many known frames an "unknown frame" message lists


def is_static_tf_topic(topic: str) -> bool:
    """``/tf_static`` (and namespaced ``/robot/tf_static``) holds transforms valid at all times."""
    return topic.rstrip("/").endswith("tf_static")


# --------------------------------------------------------------------------- message shapes


class _Time(Protocol):
    @property
    def sec(self) -> int: ...
    @property
    def nanosec(self) -> int: ...


class _Header(Protocol):
    @property
    def stamp(self) -> _Time: ...
    @property
    def frame_id(self) -> str: ...


class _Xyz(Protocol):
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def z(self) -> float: ...


class _Quaternion(_Xyz, Protocol):
    @property
    def w(self) -> float: ...


class _Transform(Protocol):
    @property
    def translation(self) -> _Xyz: ...
    @property
    def rotation(self) -> _Quaternion: ...


class _TransformStamped(Protocol):
    @property
    def header(self) -> _Header: ...
    @property
    def child_frame_id(self) -> str: ...
    @property
    def transform(self) -> _Transform: ...


class _TfMessage(Protocol):
    """tf2_msgs/msg/TFMessage and ROS1's legacy tf/msg/tfMessage share this shape."""

    @property
    def transforms(self) -> list[_TransformStamped]: ...


# --------------------------------------------------------------------------- edges


def _normalise(frame: str) -> str:
    """tf2 dropped tf1's leading slash; logs from both eras must name the same frame."""
    return frame[1:] if frame.startswith("/") else frame


def _seconds(ns: int) -> str:
    return f"{format_seconds(ns)} s"


@dataclass(frozen=True, slots=True, kw_only=True)
class TfEdge:
    """One parent → child edge as the buffer holds it (for coverage and rate analyzers)."""

    parent: str
    child: str
    static: bool
    count: int  # distinct samples (1 for a static edge)
    start_ns: int  # first sample stamp (a static edge's stamp; it is valid at all times)
    end_ns: int  # last sample stamp


@dataclass(slots=True)
class _StaticEdge:
    parent: str
    child: str
    stamp_ns: int
    matrix: FloatArray  # (4, 4) parent <- child

    @property
    def count(self) -> int:
        return 1


@dataclass(slots=True)
class _DynamicEdge:
    """Samples of one moving edge; sorted arrays grown in place, pending lists merged lazily."""

    parent: str
    child: str
    _stamps: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    _xyz: FloatArray = field(default_factory=lambda: np.empty((0, 3), dtype=np.float64))
    _quat: FloatArray = field(default_factory=lambda: np.empty((0, 4), dtype=np.float64))
    _n: int = 0
    _pending_t: list[int] = field(default_factory=list)
    _pending_xyz: list[tuple[float, float, float]] = field(default_factory=list)
    _pending_q: list[tuple[float, float, float, float]] = field(default_factory=list)
    _constant: bool | None = None  # every sample equal; None: not computed since the last merge

    def append(
        self,
        stamp_ns: int,
        xyz: tuple[float, float, float],
        quat: tuple[float, float, float, float],
    ) -> None:
        self._pending_t.append(stamp_ns)
        self._pending_xyz.append(xyz)
        self._pending_q.append(quat)

    @property
    def count(self) -> int:
        self._merge()
        return self._n

    def arrays(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """Sorted, duplicate-free stamps, translations and rotations (views, do not mutate)."""
        self._merge()
        n = self._n
        return self._stamps[:n], self._xyz[:n], self._quat[:n]

    @property
    def constant(self) -> bool:
        """Whether two or more samples all hold the same transform: a fixed mount that a
        driver publishes on ``/tf`` (one sample alone says nothing about other times)."""
        self._merge()
        if self._constant is None:
            _, xyz, quat = self.arrays()
            same = (xyz == xyz[0]).all() and (quat == quat[0]).all()
            self._constant = bool(xyz.shape[0] >= 2 and same)
        return self._constant

    def _merge(self) -> None:
        if not self._pending_t:
            return
        self._constant = None
        t_new = np.asarray(self._pending_t, dtype=np.int64)
        xyz_new = np.asarray(self._pending_xyz, dtype=np.float64).reshape(-1, 3)
        q_new = np.asarray(self._pending_q, dtype=np.float64).reshape(-1, 4)
        self._pending_t.clear()
        self._pending_xyz.clear()
        self._pending_q.clear()
        n = self._n
        in_order = bool(np.all(np.diff(t_new) > 0)) and (n == 0 or t_new[0] > self._stamps[n - 1])
        if in_order:
            self._grow(n + t_new.size)
            self._stamps[n : n + t_new.size] = t_new
            self._xyz[n : n + t_new.size] = xyz_new
            self._quat[n : n + t_new.size] = q_new
            self._n = n + t_new.size
            return
        # Out of order or duplicated: stable sort keeps insertion order among equal stamps, so
        # taking the last of each run of equal stamps makes the latest add win.
        stamps = np.concatenate([self._stamps[:n], t_new])
        xyz = np.concatenate([self._xyz[:n], xyz_new])
        quat = np.concatenate([self._quat[:n], q_new])
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        keep = np.ones(stamps.size, dtype=bool)
        keep[:-1] = stamps[1:] != stamps[:-1]
        kept = order[keep]
        self._n = int(kept.size)
        self._stamps, self._xyz, self._quat = stamps[keep], xyz[kept], quat[kept]

    def _grow(self, needed: int) -> None:
        capacity = self._stamps.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 64)
        for name, width in (("_stamps", 0), ("_xyz", 3), ("_quat", 4)):
            old = getattr(self, name)
            shape = (new_capacity,) if width == 0 else (new_capacity, width)
            grown = np.empty(shape, dtype=old.dtype)
            grown[: self._n] = old[: self._n]
            setattr(self, name, grown)


_Edge = _StaticEdge | _DynamicEdge


# --------------------------------------------------------------------------- the buffer


class TransformBuffer:
    """Every transform of a log, queried like tf2: ``lookup(target, source, t)``.

    ``tolerance_ns`` is how far a lookup may fall outside a dynamic edge's sampled range and
    still be answered with the nearest sample: sensors are often stamped a few milliseconds
    before the first or after the last TF message, and refusing those would drop real frames.
    An edge whose samples never change (a mount published on ``/tf``) holds at all times.
    """

    def __init__(self, *, tolerance_ns: int = 50_000_000) -> None:
        if tolerance_ns < 0:
            msg = f"TF tolerance must be >= 0 ns, got {tolerance_ns}"
            raise TransformError(msg)
        self.tolerance_ns = int(tolerance_ns)
        self._edges: dict[str, _Edge] = {}  # keyed by child frame: a tree has one parent each
        self._frames: set[str] | None = None  # cache, reset whenever the graph changes

    # ---------------------------------------------------------------- adding

    def add_message(self, msg: object, *, static: bool) -> None:
        """Add every transform of a rosbags ``TFMessage`` / ``tfMessage`` (ROS1 or ROS2)."""
        tf_msg = cast("_TfMessage", msg)
        try:
            transforms = list(tf_msg.transforms)
        except (AttributeError, TypeError) as err:
            msg_type = type(msg).__name__
            text = f"expected a TFMessage with .transforms, got {msg_type}"
            raise TransformError(text) from err
        for ts in transforms:
            try:
                stamp = ts.header.stamp
                stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
                tr, rot = ts.transform.translation, ts.transform.rotation
                parent, child = ts.header.frame_id, ts.child_frame_id
                xyz = (float(tr.x), float(tr.y), float(tr.z))
                quat = (float(rot.x), float(rot.y), float(rot.z), float(rot.w))
            except (AttributeError, TypeError, ValueError) as err:
                text = f"malformed TransformStamped in TF message: {err}"
                raise TransformError(text) from err
            self._add(parent, child, stamp_ns=stamp_ns, xyz=xyz, quat=quat, static=static)

    def add(  # noqa: PLR0917 -- the positional form mirrors a TransformStamped; callers rely on it
        self,
        parent: str,
        child: str,
        stamp_ns: int,
        translation: ArrayLike,
        rotation_xyzw: ArrayLike,
        *,
        static: bool = False,
    ) -> None:
        """Add one ``parent <- child`` transform (it maps points in ``child`` into ``parent``)."""
        xyz = np.asarray(translation, dtype=np.float64).reshape(-1)
        quat = np.asarray(rotation_xyzw, dtype=np.float64).reshape(-1)
        if xyz.size != 3 or quat.size != 4:
            msg = (
                f"transform {parent!r} -> {child!r} needs 3 translation and 4 rotation values, "
                f"got {xyz.size} and {quat.size}"
            )
            raise TransformError(msg)
        self._add(
            parent,
            child,
            stamp_ns=_time_ns(stamp_ns),
            xyz=(float(xyz[0]), float(xyz[1]), float(xyz[2])),
            quat=(float(quat[0]), float(quat[1]), float(quat[2]), float(quat[3])),
            static=static,
        )

    def _add(
        self,
        parent: str,
        child: str,
        *,
        stamp_ns: int,
        xyz: tuple[float, float, float],
        quat: tuple[float, float, float, float],
        static: bool,
    ) -> None:
        parent, child = _normalise(parent), _normalise(child)
        if not parent or not child:
            msg = f"transform with an empty frame id: parent {parent!r}, child {child!r}"
            raise TransformError(msg)
        if parent == child:
            msg = f"transform from frame {child!r} to itself"
            raise TransformError(msg)
        norm = float(np.sqrt(sum(c * c for c in quat)))
        if not np.isfinite(norm) or norm < 1e-9 or not all(np.isfinite(xyz)):
            msg = (
                f"invalid transform {parent!r} -> {child!r} at {stamp_ns} ns: "
                f"translation {xyz}, rotation {quat}"
            )
            raise TransformError(msg)
        quat = (quat[0] / norm, quat[1] / norm, quat[2] / norm, quat[3] / norm)

        edge = self._edges.get(child)
        if static:
            matrix = rigid(np.asarray([xyz]), np.asarray([quat]))[0]
            if edge is None or edge.parent != parent:
                self._frames = None
            self._edges[child] = _StaticEdge(parent, child, stamp_ns, matrix)
            return
        # A new parent, or a switch from static to dynamic, starts the edge afresh: the latest
        # declaration of a child's parent defines the tree (simple, and it cannot loop forever).
        if not isinstance(edge, _DynamicEdge) or edge.parent != parent:
            if edge is None or edge.parent != parent:
                self._frames = None
            edge = _DynamicEdge(parent, child)
            self._edges[child] = edge
        edge.append(stamp_ns, xyz, quat)

    # ---------------------------------------------------------------- graph queries

    def __len__(self) -> int:
        return sum(edge.count for edge in self._edges.values())

    def frames(self) -> set[str]:
        """Every frame named as a parent or a child by the current tree."""
        return set(self._known())

    def _known(self) -> set[str]:
        if self._frames is None:
            self._frames = set(self._edges) | {e.parent for e in self._edges.values()}
        return self._frames

    def parent_of(self, frame: str) -> str | None:
        """The frame's parent, or None for a root or a frame the buffer does not know."""
        edge = self._edges.get(_normalise(frame))
        return None if edge is None else edge.parent

    def time_range(self, parent: str, child: str) -> tuple[int, int] | None:
        """First and last sample stamps of a dynamic edge; None if no such dynamic edge.

        Static edges answer None because they have no range: they hold at all times.
        """
        edge = self._edges.get(_normalise(child))
        if not isinstance(edge, _DynamicEdge) or edge.parent != _normalise(parent):
            return None
        stamps, _, _ = edge.arrays()
        return int(stamps[0]), int(stamps[-1])

    def edges(self) -> list[TfEdge]:
        """Every edge of the current tree, sorted by (parent, child)."""
        out = []
        for edge in self._edges.values():
            if isinstance(edge, _StaticEdge):
                start = end = edge.stamp_ns
                count, static = 1, True
            else:
                stamps, _, _ = edge.arrays()
                start, end, count, static = int(stamps[0]), int(stamps[-1]), stamps.size, False
            out.append(
                TfEdge(
                    parent=edge.parent,
                    child=edge.child,
                    static=static,
                    count=count,
                    start_ns=start,
                    end_ns=end,
                )
            )
        return sorted(out, key=lambda e: (e.parent, e.child))

    def can_transform(self, target: str, source: str, t_ns: int) -> bool:
        """Whether :meth:`lookup` would succeed (never raises)."""
        try:
            self.lookup(target, source, t_ns)
        except TransformError:
            return False
        return True

    # ---------------------------------------------------------------- lookups

    def lookup(self, target: str, source: str, t_ns: int) -> FloatArray:
        """4×4 transform mapping points expressed in ``source`` into ``target`` at ``t_ns``.

        Same argument order as tf2's ``lookupTransform(target_frame, source_frame, time)``.
        """
        out: FloatArray = self.lookup_many(target, source, [_time_ns(t_ns)])[0]
        return out

    def lookup_many(self, target: str, source: str, t_ns: ArrayLike) -> FloatArray:
        """``(K, 4, 4)`` transforms for ``K`` times at once (trajectories, per-point stamps)."""
        times = _times_ns(t_ns)
        if times.ndim != 1:
            msg = f"lookup_many needs a 1-D array of times, got shape {times.shape}"
            raise TransformError(msg)
        target, source = _normalise(target), _normalise(source)
        if not target or not source:
            msg = f"lookup with an empty frame id: target {target!r}, source {source!r}"
            raise TransformError(msg)
        if target == source:
            return np.tile(np.eye(4), (times.size, 1, 1))
        for frame in (target, source):
            self._require_known(frame)
        up_source = self._chain(source)
        up_target = self._chain(target)
        on_target = set(up_target)
        ancestor = next((f for f in up_source if f in on_target), None)
        if ancestor is None:
            msg = (
                f"frames {target!r} and {source!r} are in different trees "
                f"(roots {up_target[-1]!r} and {up_source[-1]!r}): no transform connects them"
            )
            raise TransformError(msg)
        anc_from_source = self._down_product(up_source, ancestor=ancestor, times=times)
        anc_from_target = self._down_product(up_target, ancestor=ancestor, times=times)
        out = rigid_inverse(anc_from_target) @ anc_from_source
        # An all-static path stays one (4, 4) matrix until here: broadcasting is cheaper.
        return out if out.ndim == 3 else np.tile(out, (times.size, 1, 1))

    def transform_points(
        self, points: ArrayLike, *, target: str, source: str, t_ns: int
    ) -> FloatArray:
        """``(N, 3)`` points expressed in ``source`` moved into ``target`` at ``t_ns``."""
        return _apply(self.lookup(target, source, t_ns), points)

    def at(self, t_ns: int) -> TfView:
        """A view answering lookups at one time (what a ``Frame`` carries)."""
        return TfView(buffer=self, t_ns=_time_ns(t_ns))

    def _require_known(self, frame: str) -> None:
        known = self._known()
        if frame in known:
            return
        if not known:
            msg = f"unknown frame {frame!r}: no transforms have been added yet"
            raise TransformError(msg)
        shown = ", ".join(sorted(known)[:_SHOWN_FRAMES])
        more = f", ... ({len(known)} in total)" if len(known) > _SHOWN_FRAMES else ""
        msg = f"unknown frame {frame!r}; known frames: {shown}{more}"
        raise TransformError(msg)

    def _chain(self, frame: str) -> list[str]:
        """``frame`` and its ancestors up to the root; refuses a loop left by reparenting."""
        chain = [frame]
        seen = {frame}
        edge = self._edges.get(frame)
        while edge is not None:
            if edge.parent in seen:
                msg = f"the transform tree has a loop through {edge.parent!r} (frame reparented)"
                raise TransformError(msg)
            chain.append(edge.parent)
            seen.add(edge.parent)
            edge = self._edges.get(edge.parent)
        return chain

    def _down_product(self, chain: list[str], *, ancestor: str, times: IntArray) -> FloatArray:
        """``ancestor <- chain[0]`` by composing each edge's parent <- child transform."""
        product: FloatArray = np.eye(4)
        for frame in chain:
            if frame == ancestor:
                break
            product = self._sample(self._edges[frame], times) @ product
        return product

    def _sample(self, edge: _Edge, times: IntArray) -> FloatArray:
        """Parent <- child transforms of one edge at ``times``: (K, 4, 4), or (4, 4) if static."""
        if isinstance(edge, _StaticEdge):
            return edge.matrix
        stamps, xyz, quat = edge.arrays()
        self._check_range(edge, stamps, times)
        idx = np.searchsorted(stamps, times, side="right")
        last = stamps.size - 1
        i1 = np.minimum(idx, last)
        i0 = np.maximum(idx - 1, 0)
        span = (stamps[i1] - stamps[i0]).astype(np.float64)
        offset = (times - stamps[i0]).astype(np.float64)
        # outside the samples i0 == i1 (span 0), so u is 0 and the nearest sample is used
        u = np.divide(offset, span, out=np.zeros_like(span), where=span > 0)
        translation = xyz[i0] + u[:, None] * (xyz[i1] - xyz[i0])
        rotation = slerp(quat[i0], quat[i1], u)
        return rigid(translation, rotation)

    def _check_range(self, edge: _DynamicEdge, stamps: IntArray, times: IntArray) -> None:
        # A transform that never changes (a sensor mount some drivers publish on /tf rather
        # than /tf_static) is the same before its first sample and after its last: holding it
        # is exact, where tf2 would refuse to extrapolate.
        if times.size == 0 or edge.constant:
            return
        first, last = int(stamps[0]), int(stamps[-1])
        t_min, t_max = int(times.min()), int(times.max())
        before, after = first - t_min, t_max - last
        if max(before, after) <= self.tolerance_ns:
            return
        if before >= after:
            requested, how = t_min, f"{_seconds(before)} before its first sample"
        else:
            requested, how = t_max, f"{_seconds(after)} after its last sample"
        msg = (
            f"cannot extrapolate edge {edge.parent!r} -> {edge.child!r} to t={requested} ns: "
            f"{how} (available {first}..{last} ns, tolerance {_seconds(self.tolerance_ns)})"
        )
        raise TransformError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class TfView:
    """The buffer seen at one time: the same operations as `TransformBuffer`, time optional.

    A frame's view holds every transform of the log (replay is offline), so a lookup may use
    TF published after the frame, exactly as a lookup on ``log.tf()`` at the frame's time.
    """

    buffer: TransformBuffer
    t_ns: int

    def lookup(self, target: str, source: str, t_ns: int | None = None) -> FloatArray:
        """4×4 transform mapping points in ``source`` into ``target`` (at the view's time)."""
        return self.buffer.lookup(target, source, self.t_ns if t_ns is None else t_ns)

    def lookup_many(self, target: str, source: str, t_ns: ArrayLike) -> FloatArray:
        """``(K, 4, 4)`` transforms at ``K`` times (say, per-point stamps of a sweep)."""
        return self.buffer.lookup_many(target, source, t_ns)

    def transform_points(
        self, points: ArrayLike, *, target: str, source: str, t_ns: int | None = None
    ) -> FloatArray:
        """``(N, 3)`` points expressed in ``source`` moved into ``target`` (at the view's time)."""
        return _apply(self.lookup(target, source, t_ns), points)


def _apply(matrix: FloatArray, points: ArrayLike) -> FloatArray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        msg = f"transform_points needs an (N, 3) array, got shape {pts.shape}"
        raise TransformError(msg)
    out: FloatArray = pts @ matrix[:3, :3].T + matrix[:3, 3]
    return out


def _time_ns(value: object) -> int:
    """An integer time in ns; a float is refused rather than silently truncated."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = (
            f"times are integer nanoseconds, got {value!r} ({type(value).__name__}); "
            "convert seconds with int(seconds * 1e9) only if you mean to round"
        )
        raise TransformError(msg)
    return int(value)


def _times_ns(values: ArrayLike) -> IntArray:
    times = np.asarray(values)
    if times.size and times.dtype.kind not in "iu":
        msg = f"times are integer nanoseconds, got an array of {times.dtype}"
        raise TransformError(msg)
    return times.astype(np.int64, copy=False)
