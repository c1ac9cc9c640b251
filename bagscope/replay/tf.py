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

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]
    IntArray = NDArray[np.int64]

__all__ = [
    "TfEdge",
    "TfView",
    "TransformBuffer",
    "matrix_to_quat",
    "quat_to_matrix",
    "slerp",
]

_SHOWN_FRAMES = 8  # how many known frames an "unknown frame" message lists
_SLERP_LINEAR_BELOW = 1e-9  # sin(angle) under which slerp's weights are numerically useless


# --------------------------------------------------------------------------- quaternions


def quat_to_matrix(q_xyzw: ArrayLike) -> FloatArray:
    """Rotation matrices ``(..., 3, 3)`` from quaternions ``(..., 4)`` in ROS order x, y, z, w.

    Quaternions are normalised first: logs carry float32-rounded or slightly drifted ones, and
    a non-unit quaternion would silently scale points.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    # 2/|q|² folds the normalisation into the products (Eigen does the same).
    scale = 2.0 / np.sum(q * q, axis=-1)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x * scale, y * y * scale, z * z * scale
    xy, xz, yz = x * y * scale, x * z * scale, y * z * scale
    wx, wy, wz = w * x * scale, w * y * scale, w * z * scale
    out = np.empty((*q.shape[:-1], 3, 3), dtype=np.float64)
    out[..., 0, 0] = 1.0 - (yy + zz)
    out[..., 0, 1] = xy - wz
    out[..., 0, 2] = xz + wy
    out[..., 1, 0] = xy + wz
    out[..., 1, 1] = 1.0 - (xx + zz)
    out[..., 1, 2] = yz - wx
    out[..., 2, 0] = xz - wy
    out[..., 2, 1] = yz + wx
    out[..., 2, 2] = 1.0 - (xx + yy)
    return out


def matrix_to_quat(rotation: ArrayLike) -> FloatArray:
    """Quaternions ``(..., 4)`` (x, y, z, w, with w >= 0) from rotation matrices ``(..., 3, 3)``.

    Uses Shepperd's method: per matrix it divides by the largest of the four candidate
    components, so the result stays accurate near 180° where the trace-only formula breaks down.
    """
    m = np.asarray(rotation, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (component)^2 for x, y, z, w: the largest one is the safe divisor.
    sq = np.stack(
        [
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
            1.0 + m00 + m11 + m22,
        ],
        axis=-1,
    )
    big = np.sqrt(np.maximum(sq, 1e-300))  # 2 * |component|, >0 where it matters
    candidates = np.stack(
        [
            np.stack([big[..., 0] ** 2, m01 + m10, m02 + m20, m21 - m12], axis=-1)
            / (2.0 * big[..., 0:1]),
            np.stack([m01 + m10, big[..., 1] ** 2, m12 + m21, m02 - m20], axis=-1)
            / (2.0 * big[..., 1:2]),
            np.stack([m02 + m20, m12 + m21, big[..., 2] ** 2, m10 - m01], axis=-1)
            / (2.0 * big[..., 2:3]),
            np.stack([m21 - m12, m02 - m20, m10 - m01, big[..., 3] ** 2], axis=-1)
            / (2.0 * big[..., 3:4]),
        ],
        axis=-2,
    )
    choice = np.argmax(sq, axis=-1)[..., None, None]
    q = np.take_along_axis(candidates, choice, axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    out: FloatArray = np.where(q[..., 3:4] < 0.0, -q, q)
    return out


def slerp(q0: ArrayLike, q1: ArrayLike, u: ArrayLike) -> FloatArray:
    """Spherical interpolation between unit quaternions (x, y, z, w) at fractions ``u``.

    Takes the short way round (q and -q are the same rotation) and falls back to normalised
    linear interpolation when the two are nearly equal, where slerp's weights are 0/0.
    """
    a = np.asarray(q0, dtype=np.float64)
    b = np.asarray(q1, dtype=np.float64)
    frac = np.asarray(u, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    linear = sin_theta < _SLERP_LINEAR_BELOW
    safe_sin = np.where(linear, 1.0, sin_theta)
    w0 = np.where(linear, 1.0 - frac, np.sin((1.0 - frac) * theta) / safe_sin)
    w1 = np.where(linear, frac, np.sin(frac * theta) / safe_sin)
    out = w0 * a + w1 * b
    return cast("FloatArray", out / np.linalg.norm(out, axis=-1, keepdims=True))


def _rigid(translation: FloatArray, q_xyzw: FloatArray) -> FloatArray:
    """4×4 rigid transforms ``(K, 4, 4)`` from ``(K, 3)`` translations and ``(K, 4)`` rotations."""
    out = np.zeros((translation.shape[0], 4, 4), dtype=np.float64)
    out[:, :3, :3] = quat_to_matrix(q_xyzw)
    out[:, :3, 3] = translation
    out[:, 3, 3] = 1.0
    return out


def _rigid_inverse(t: FloatArray) -> FloatArray:
    """Inverse of rigid transforms without a general matrix inverse: ``[Rᵀ, -Rᵀ t]``."""
    out = np.zeros_like(t)
    rot_t = np.swapaxes(t[..., :3, :3], -1, -2)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rot_t, t[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


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
    return f"{ns / 1e9:.3f} s"


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

    def _merge(self) -> None:
        if not self._pending_t:
            return
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
            stamp_ns=int(stamp_ns),
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
            matrix = _rigid(np.asarray([xyz]), np.asarray([quat]))[0]
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
        out: FloatArray = self.lookup_many(target, source, np.asarray([t_ns], dtype=np.int64))[0]
        return out

    def lookup_many(self, target: str, source: str, t_ns: ArrayLike) -> FloatArray:
        """``(K, 4, 4)`` transforms for ``K`` times at once (trajectories, per-point stamps)."""
        times = np.asarray(t_ns, dtype=np.int64)
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
        out = _rigid_inverse(anc_from_target) @ anc_from_source
        # An all-static path stays one (4, 4) matrix until here: broadcasting is cheaper.
        return out if out.ndim == 3 else np.tile(out, (times.size, 1, 1))

    def at(self, t_ns: int) -> TfView:
        """A view answering lookups at one time (what a ``Frame`` carries)."""
        return TfView(buffer=self, t_ns=int(t_ns))

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
        return _rigid(translation, rotation)

    def _check_range(self, edge: _DynamicEdge, stamps: IntArray, times: IntArray) -> None:
        if times.size == 0:
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
    """The buffer seen at one time; it reads the live buffer, so later TF still counts."""

    buffer: TransformBuffer
    t_ns: int

    def lookup(self, target: str, source: str) -> FloatArray:
        """4×4 transform mapping points in ``source`` into ``target`` at this view's time."""
        return self.buffer.lookup(target, source, self.t_ns)

    def transform_points(self, points: ArrayLike, *, target: str, source: str) -> FloatArray:
        """``(N, 3)`` points expressed in ``source`` moved into ``target``."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            msg = f"transform_points needs an (N, 3) array, got shape {pts.shape}"
            raise TransformError(msg)
        matrix = self.lookup(target, source)
        return pts @ matrix[:3, :3].T + matrix[:3, 3]
