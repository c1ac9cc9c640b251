"""``tracker``: multi-object tracking of a detector stage's boxes.

Tracks live in a world-fixed frame (``odom`` through TF when the log has it): in the sensor's
frame every parked car would seem to drive towards the robot at its speed, and a filter would
have to learn the ego motion per track. Each track is a constant-velocity Kalman filter on the
box centre (x, y, vx, vy); height, size, heading and class follow the latest detection.

Association is on centre distance, gated per track by its own uncertainty: greedy, cheapest
pair first, by default (it never gives a track a far box so that an uncertain track can take
the near one, which a sum-of-distances optimum does), or the optimal assignment (Hungarian,
``association = "hungarian"``), solved per connected group of tracks and detections - in a
street scene nearly every group is one track and one box, so either stays cheap. A track is
reported once it matched ``min_hits`` frames in a row, coasts on its prediction through up to
``max_missed`` missed frames, and is dropped after that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import ModelInputError
from bagscope.pipeline.stage import Check, StageResult
from bagscope.replay.decode.boxes import Boxes
from bagscope.replay.errors import TransformError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

__all__ = ["Tracker", "assign", "assign_greedy"]

_H = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
_INITIAL_SPEED_STD = 10.0  # m/s: a new track's velocity is unknown
_GATE_SIGMAS = 3.0


@dataclass(slots=True)
class _Track:
    id: str
    x: NDArray[np.float64]  # (4,) x, y, vx, vy in the world frame
    p: NDArray[np.float64]  # (4, 4)
    z: float
    size: NDArray[np.float64]
    yaw: float  # world frame
    label: str
    score: float
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    age: int = 1
    history: list[int] = field(default_factory=list)


def _hungarian(cost: NDArray[np.float64]) -> list[tuple[int, int]]:
    """Minimum-cost assignment of every row of an (n, m) matrix with n <= m (potentials,
    shortest augmenting paths; O(n^2 m), for the small groups the gating leaves)."""
    n, m = cost.shape
    inf = math.inf
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    p = [0] * (m + 1)  # p[j]: row (1-based) assigned to column j
    way = [0] * (m + 1)
    c = cost.tolist()
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            row = c[i0 - 1]
            ui0 = u[i0]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - ui0 - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    return [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j] != 0]


def assign(cost: NDArray[np.float64], gate: NDArray[np.float64] | float) -> list[tuple[int, int]]:
    """Optimal (row, column) pairs of ``cost`` (tracks x detections) whose cost is within the
    gate (a scalar or one value per row); rows and columns beyond every gate stay unpaired.

    Rows and columns are split into groups connected by gated pairs and each group is solved on
    its own, so the cubic cost only applies to real ambiguities."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    gates = np.broadcast_to(np.asarray(gate, dtype=np.float64).reshape(-1, 1), (n, 1))
    allowed = cost <= gates
    # Union-find over rows (0..n-1) and columns (n..n+m-1).
    parent = list(range(n + m))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    rows, cols = np.nonzero(allowed)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        ra, rb = root(r), root(n + c)
        if ra != rb:
            parent[ra] = rb
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for r in sorted(set(rows.tolist())):
        groups.setdefault(root(r), ([], []))[0].append(r)
    for c in sorted(set(cols.tolist())):
        groups.setdefault(root(n + c), ([], []))[1].append(c)
    big = float(np.max(cost[allowed])) * 10.0 + 1e6 if allowed.any() else 1e6
    pairs: list[tuple[int, int]] = []
    for grows, gcols in groups.values():
        if len(grows) == 1 and len(gcols) == 1:
            pairs.append((grows[0], gcols[0]))
            continue
        sub = np.where(allowed[np.ix_(grows, gcols)], cost[np.ix_(grows, gcols)], big)
        flip = len(grows) > len(gcols)
        solved = _hungarian(sub.T if flip else sub)
        for a, b in solved:
            r, c = (b, a) if flip else (a, b)
            if allowed[grows[r], gcols[c]]:
                pairs.append((grows[r], gcols[c]))
    return sorted(pairs)


def assign_greedy(
    cost: NDArray[np.float64], gate: NDArray[np.float64] | float
) -> list[tuple[int, int]]:
    """(row, column) pairs taken cheapest first among those within the gate (a scalar or one
    value per row), each row and column at most once.

    Unlike the optimal assignment it never trades a near pair for a lower total: with
    distances as costs, the optimum may give a track a box 1.5 m away so that another, very
    uncertain track can take the box 0.05 m from the first one."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    gates = np.broadcast_to(np.asarray(gate, dtype=np.float64).reshape(-1, 1), (n, 1))
    rows, cols = np.nonzero(cost <= gates)
    order = np.argsort(cost[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return sorted(pairs)


def _positive(value: object, name: str, *, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        msg = f"{name} must be {what}, got {value!r}"
        raise BagscopeError(msg)
    return float(value)


class Tracker:
    """Track the boxes an earlier stage (``input``) finds.

    Output: :class:`Boxes` in the detections' frame, one per reported track, with ``ids`` the
    track ids ("1", "2", ...) and ``velocities`` over ground (ego motion removed) expressed in
    that frame. ``world_frame`` is the frame tracks live in when TF reaches it.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        input: str,
        min_hits: int = 2,
        max_missed: int = 3,
        max_distance: float = 2.0,
        accel_noise: float = 2.0,
        position_noise: float = 0.3,
        world_frame: str = "odom",
        report_coasting: bool = True,
        association: str = "greedy",
    ) -> None:
        self.name = name or "tracker"
        if not isinstance(input, str) or not input:
            msg = f"input must name the detector stage whose boxes to track, got {input!r}"
            raise BagscopeError(msg)
        self.input = input
        self.min_hits = int(_positive(min_hits, "min_hits", integer=True))
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
            msg = f"max_missed must be an integer >= 0, got {max_missed!r}"
            raise BagscopeError(msg)
        self.max_missed = max_missed
        self.max_distance = _positive(max_distance, "max_distance")
        self.accel_noise = _positive(accel_noise, "accel_noise")
        self.position_noise = _positive(position_noise, "position_noise")
        if not isinstance(world_frame, str):
            msg = f"world_frame must be a frame id, got {world_frame!r}"
            raise BagscopeError(msg)
        self.world_frame = world_frame
        self.report_coasting = bool(report_coasting)
        if association not in ("greedy", "hungarian"):
            msg = f"association must be 'greedy' or 'hungarian', got {association!r}"
            raise BagscopeError(msg)
        self.association = association
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_ns: int | None = None
        self._use_world: bool | None = None  # decided on the first frame
        self._last_world: NDArray[np.float64] | None = None
        self._times: list[int] = []
        self._alive: list[int] = []
        self._confirmed_ids: set[str] = set()
        self._lengths: dict[str, int] = {}
        self._tf_misses = 0

    # ------------------------------------------------------------------ frames

    def _world_from_boxes(self, frame: Frame, boxes: Boxes) -> NDArray[np.float64]:
        if self._use_world is None:
            self._use_world = False
            if frame.tf is not None and self.world_frame:
                try:
                    frame.tf.lookup(self.world_frame, boxes.frame_id, boxes.stamp_ns)
                except TransformError:
                    pass
                else:
                    self._use_world = True
        if not self._use_world or frame.tf is None:
            return np.eye(4)
        try:
            matrix = frame.tf.lookup(self.world_frame, boxes.frame_id, boxes.stamp_ns)
        except TransformError:
            # A gap in TF: hold the last pose rather than jump frames mid-run.
            self._tf_misses += 1
            return self._last_world if self._last_world is not None else np.eye(4)
        self._last_world = matrix
        return matrix

    def process(self, frame: Frame) -> Boxes:
        boxes = frame.outputs.get(self.input)
        if not isinstance(boxes, Boxes):
            what = "nothing" if boxes is None else f"a {type(boxes).__name__}"
            msg = f"input {self.input!r} gave {what} this frame; the tracker needs a stage's Boxes"
            raise ModelInputError(msg)
        world_from = self._world_from_boxes(frame, boxes)
        stamp = boxes.stamp_ns
        dt = 0.0 if self._last_ns is None else max((stamp - self._last_ns) * 1e-9, 0.0)
        self._last_ns = stamp
        self._predict(dt)
        world = boxes.transformed(world_from, frame_id=self.world_frame)
        self._update(world)
        report = [
            t for t in self._tracks if t.confirmed and (t.missed == 0 or self.report_coasting)
        ]
        self._times.append(frame.t_ns)
        self._alive.append(sum(1 for t in self._tracks if t.confirmed))
        for t in report:
            self._confirmed_ids.add(t.id)
            self._lengths[t.id] = self._lengths.get(t.id, 0) + 1
        return self._output(report, boxes=boxes, world_from=world_from)

    def _predict(self, dt: float) -> None:
        if dt <= 0 or not self._tracks:
            return
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q1 = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * self.accel_noise**2
        q = np.zeros((4, 4))
        q[np.ix_([0, 2], [0, 2])] = q1
        q[np.ix_([1, 3], [1, 3])] = q1
        for t in self._tracks:
            t.x = f @ t.x
            t.p = f @ t.p @ f.T + q

    def _update(self, world: Boxes) -> int:
        tracks = self._tracks
        n_det = len(world)
        r = np.eye(2) * self.position_noise**2
        pairs: list[tuple[int, int]] = []
        if tracks and n_det:
            pred = np.array([t.x[:2] for t in tracks])
            cost = np.linalg.norm(pred[:, None, :] - world.centers[None, :, :2], axis=2)
            # Gate: the fixed distance, widened for tracks whose prediction is uncertain
            # (a young track does not know its velocity yet).
            spread = np.array([math.sqrt(max(t.p[0, 0], t.p[1, 1]) + r[0, 0]) for t in tracks])
            gate = np.maximum(self.max_distance, _GATE_SIGMAS * spread)
            solve = assign_greedy if self.association == "greedy" else assign
            pairs = solve(cost, gate)
        matched_t = {i for i, _ in pairs}
        matched_d = {j for _, j in pairs}
        for i, j in pairs:
            t = tracks[i]
            y = world.centers[j, :2] - t.x[:2]
            s = t.p[:2, :2] + r
            k = t.p[:, :2] @ np.linalg.inv(s)
            t.x = t.x + k @ y
            t.p = (np.eye(4) - k @ _H) @ t.p
            t.z = float(world.centers[j, 2])
            t.size = world.sizes[j].copy()
            t.yaw = float(world.yaws[j])
            t.label = world.labels[j]
            t.score = float(world.scores[j])
            t.hits += 1
            t.missed = 0
            t.age += 1
            if t.hits >= self.min_hits:
                t.confirmed = True
        keep = []
        for i, t in enumerate(tracks):
            if i not in matched_t:
                t.missed += 1
                t.age += 1
                # A tentative track dies at its first miss; a confirmed one coasts.
                if not t.confirmed or t.missed > self.max_missed:
                    continue
            keep.append(t)
        for j in range(n_det):
            if j in matched_d:
                continue
            p = np.diag([r[0, 0], r[1, 1], _INITIAL_SPEED_STD**2, _INITIAL_SPEED_STD**2])
            keep.append(
                _Track(
                    id=str(self._next_id),
                    x=np.array([world.centers[j, 0], world.centers[j, 1], 0.0, 0.0]),
                    p=p,
                    z=float(world.centers[j, 2]),
                    size=world.sizes[j].copy(),
                    yaw=float(world.yaws[j]),
                    label=world.labels[j],
                    score=float(world.scores[j]),
                    confirmed=self.min_hits <= 1,
                )
            )
            self._next_id += 1
        self._tracks = keep
        return len(pairs)

    def _output(
        self, report: list[_Track], *, boxes: Boxes, world_from: NDArray[np.float64]
    ) -> Boxes:
        n = len(report)
        centers = np.array([[t.x[0], t.x[1], t.z] for t in report]).reshape(n, 3)
        velocities = np.array([[t.x[2], t.x[3], 0.0] for t in report]).reshape(n, 3)
        in_world = Boxes.build(
            stamp_ns=boxes.stamp_ns,
            frame_id=self.world_frame,
            centers=centers,
            sizes=np.array([t.size for t in report]).reshape(n, 3),
            yaws=[t.yaw for t in report],
            labels=[t.label for t in report],
            scores=[t.score for t in report],
            ids=[t.id for t in report],
            velocities=velocities,
        )
        boxes_from_world = np.asarray(np.linalg.inv(world_from), dtype=np.float64)
        return in_world.transformed(boxes_from_world, frame_id=boxes.frame_id)

    # ------------------------------------------------------------------ end

    def finish(self) -> StageResult:
        result = StageResult()
        result.metrics.extend("tracks_alive", self._times, self._alive)
        result.metrics.add("tracks", len(self._confirmed_ids))
        result.metrics.add("frames", len(self._times))
        lengths = list(self._lengths.values())
        mean_len = float(np.mean(lengths)) if lengths else 0.0
        result.metrics.add("mean_track_frames", mean_len)
        result.metrics.add("tf_misses", self._tf_misses)
        frame = self.world_frame if self._use_world else "the boxes' frame"
        result.checks.append(
            Check(
                name="tracks",
                topic=None,
                status="pass" if self._times else "skip",
                value=(
                    f"{len(self._confirmed_ids)} tracks over {len(self._times)} frames, "
                    f"{mean_len:.1f} frames each on average, tracked in {frame}"
                ),
                threshold="ID switches need ground truth: see the evaluation",
                stage=self.name,
            )
        )
        if self._tf_misses:
            result.checks.append(
                Check(
                    name="tracking frame",
                    topic=None,
                    status="warn",
                    value=f"{self._tf_misses} frames without TF to {self.world_frame}",
                    threshold="0",
                    stage=self.name,
                )
            )
        return result
