"""How well a detector's boxes agree with the log's ground truth: matches, AP, and when it failed.

The stage reads two things: every message of the truth topic (a ``vision_msgs/Detection3DArray``,
kept by header stamp) and, frame by frame, the :class:`~bagscope.replay.decode.Boxes` that the
stage named ``detector`` put in ``frame.outputs``. Each prediction frame is paired with the truth
message whose stamp is nearest the predictions' stamp, within ``max_stamp_gap_ms`` (default: half
the truth topic's median period); a prediction frame without such a truth is not scored, only
counted (``frames_without_truth``). Predictions in another frame than the truth are moved into
the truth's frame through the frame's TF.

Matching (per frame, per class; ``class_map`` renames predicted classes first): predictions in
descending score take the best still-unmatched truth of their class whose BEV IoU is at least
the threshold (or whose centre lies within the distance, for the nuScenes-style criteria). The
first IoU threshold is the *main* one: per-frame counts, events, tables and figures use it.
Truths with fewer than ``min_points`` lidar points inside (counted in the frame's cloud) are
"don't care": missing them is no miss, and a prediction matched to one is neither TP nor FP.

AP is COCO-style 101-point interpolated AP: precision made monotone (the best precision at any
higher recall), sampled at recall 0, 0.01, ..., 1 (0 beyond the highest recall reached), averaged.
The nuScenes-style ``dist_mean`` mAP averages that AP over the centre-distance thresholds and the
classes (without nuScenes' clipping of recall and precision below 0.1). Precision, recall and F1
are over all predictions (no score cut-off); ``f1_max`` and ``score_at_f1_max`` give the best
point of the precision-recall curve. Range bins use the truth's range for truths and matched
predictions and the prediction's own range for false positives (matching is done once, over all
ranges, so no box is lost at a bin edge).

Metrics are long format, ``topic`` the truth topic, ``label`` ``"<class>|<criterion>|<range>"``:
class a truth class or ``all`` (pooled counts); criterion ``iou0.5`` (BEV IoU >= 0.5) or
``dist1`` (centre within 1 m); range ``all`` or a bin such as ``0-20m``:

- ``ap``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, ``f1_max``,
  ``score_at_f1_max`` (``ap`` and the best-F1 pair only per class);
- ``map`` with label ``"<criterion>|<range>"``: the mean AP of the classes with truths there;
  ``"dist_mean|<range>"`` is the nuScenes-style mean over the distance thresholds;
- ``tp``, ``fp``, ``fn`` also per scored frame (``t_ns`` = frame time) under
  ``"all|<main criterion>|all"``;
- counts without label: ``frames_scored``, ``frames_without_truth``,
  ``frames_without_prediction``, ``frames_untransformed``, ``truth_messages``, ``truth_unpaired``,
  ``truth_corrupt``, ``max_stamp_gap_ms``, ``stamp_gap_ms_max`` (the largest gap paired).

Event kinds (main criterion, all classes):

- ``missed_detections``: at least ``burst_frames`` scored frames in a row with recall below
  ``min_recall`` (warning);
- ``false_detections``: at least ``burst_frames`` scored frames in a row with precision below
  ``min_precision`` (warning).
"""

from __future__ import annotations

import itertools
import math
from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.analyzers.box_iou import bev_iou, center_distance
from bagscope.analyzers.findings import report_check, runs, skip_check
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, Table
from bagscope.replay.decode.boxes import Boxes
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Metrics, RunContext
    from bagscope.replay.frame import Frame
    from bagscope.replay.message import Message
    from bagscope.replay.tf import TfView

__all__ = ["DetectionEvaluation", "average_precision", "greedy_match"]

_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_GROUND_MARGIN = 0.05  # m above a box's bottom face before a point counts (not the road)
_MAX_PENDING = 8  # frames whose cloud waits for their truth message
_WORST_FRAMES = 10
_POINT_BINS = ((0, 0, "0"), (1, 5, "1-5"), (6, 20, "6-20"), (21, 100, "21-100"))
_DEFAULT_GAP_NS = 50_000_000


# ---------------------------------------------------------------------------------- matching


def greedy_match(
    similarity: NDArray[np.float64],
    *,
    order: NDArray[np.intp],
    allowed: NDArray[np.bool_],
    threshold: float,
    higher_is_better: bool,
) -> NDArray[np.intp]:
    """For each prediction (row), the truth (column) it matched, or -1.

    Predictions are taken in ``order`` (descending score); each takes the best still-unmatched
    truth it is ``allowed`` to (same class) that passes ``threshold`` (>= for an IoU, <= for a
    distance)."""
    n, m = similarity.shape
    matched = np.full(n, -1, dtype=np.intp)
    if n == 0 or m == 0:
        return matched
    passes = similarity >= threshold if higher_is_better else similarity <= threshold
    ok = passes & allowed
    free = np.ones(m, dtype=bool)
    worst = -np.inf if higher_is_better else np.inf
    for p in order:
        candidates = ok[p] & free
        if not candidates.any():
            continue
        scores = np.where(candidates, similarity[p], worst)
        j = int(np.argmax(scores) if higher_is_better else np.argmin(scores))
        matched[p] = j
        free[j] = False
    return matched


def _pr_curve(
    scores: NDArray[np.float64], tp: NDArray[np.bool_], n_truth: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(recall, precision, score) after each prediction, in descending score."""
    order = np.argsort(-scores, kind="stable")
    hits = tp[order].astype(np.float64)
    ctp = np.cumsum(hits)
    cfp = np.cumsum(1.0 - hits)
    recall = ctp / max(n_truth, 1)
    precision = ctp / np.maximum(ctp + cfp, 1.0)
    return recall, precision, scores[order]


def average_precision(scores: NDArray[np.float64], tp: NDArray[np.bool_], n_truth: int) -> float:
    """COCO-style 101-point interpolated AP of predictions (``scores``, ``tp`` flags) against
    ``n_truth`` truths; NaN without truths."""
    if n_truth <= 0:
        return math.nan
    if scores.size == 0:
        return 0.0
    recall, precision, _ = _pr_curve(scores, tp, n_truth)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, _RECALL_POINTS - 1e-12, side="left")
    sampled = np.where(idx < recall.size, envelope[np.minimum(idx, recall.size - 1)], 0.0)
    return float(sampled.mean())


# ---------------------------------------------------------------------------------- records


@dataclass(slots=True)
class _FrameRecord:
    """One prediction frame as seen in ``process``."""

    t_ns: int
    stamp_ns: int
    predictions: Boxes
    tf: TfView | None
    cloud: tuple[NDArray[np.float32], str, int] | None = None  # waiting for its truth
    counted_stamp: int | None = None  # truth stamp the point counts belong to
    counts: NDArray[np.int64] | None = None


@dataclass(slots=True)
class _Scored:
    """A prediction frame paired with its truth, both in the truth's frame."""

    t_ns: int
    truth: Boxes
    predictions: Boxes
    points: NDArray[np.int64]  # per truth box, -1 unknown
    iou: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    distance: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass(slots=True)
class _Matches:
    """Every prediction and truth of the run under one criterion, as flat columns."""

    pred_frame: NDArray[np.intp]
    pred_score: NDArray[np.float64]
    pred_class: NDArray[np.str_]
    pred_tp: NDArray[np.bool_]
    pred_bin: NDArray[np.intp]
    pred_ignored: NDArray[np.bool_]
    truth_frame: NDArray[np.intp]
    truth_class: NDArray[np.str_]
    truth_bin: NDArray[np.intp]
    truth_matched: NDArray[np.bool_]
    truth_ignored: NDArray[np.bool_]


def points_in_boxes(xyz: NDArray[Any], boxes: Boxes) -> NDArray[np.int64]:
    """Points of ``xyz`` (same frame as ``boxes``) inside each box: within the footprint, and
    above the bottom face by more than a few centimetres (the road under a box is not its)."""
    counts = np.zeros(len(boxes), dtype=np.int64)
    if xyz.shape[0] == 0 or len(boxes) == 0:
        return counts
    order = np.argsort(xyz[:, 0], kind="stable")
    xs = xyz[order, 0]
    radius = np.hypot(boxes.sizes[:, 0], boxes.sizes[:, 1]) / 2
    for i in range(len(boxes)):
        cx, cy, cz = boxes.centers[i]
        lo, hi = np.searchsorted(xs, [cx - radius[i], cx + radius[i]])
        if hi <= lo:
            continue
        pts = xyz[order[lo:hi]].astype(np.float64)
        rel = pts - (cx, cy, cz)
        c, s = math.cos(boxes.yaws[i]), math.sin(boxes.yaws[i])
        lx = rel[:, 0] * c + rel[:, 1] * s
        ly = -rel[:, 0] * s + rel[:, 1] * c
        length, width, height = boxes.sizes[i]
        inside = (
            (np.abs(lx) <= length / 2)
            & (np.abs(ly) <= width / 2)
            & (rel[:, 2] <= height / 2)
            & (rel[:, 2] > -height / 2 + _GROUND_MARGIN)
        )
        counts[i] = int(np.count_nonzero(inside))
    return counts


# ---------------------------------------------------------------------------------- the stage


def _positive_tuple(
    name: str, values: Sequence[float], *, upper: float | None = None
) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        msg = f"{name} must be a list of numbers, got {values!r}"
        raise BagscopeError(msg) from None
    if not out or any(not v > 0 or (upper is not None and v > upper) for v in out):
        bound = f" and at most {upper:g}" if upper is not None else ""
        msg = f"{name} must be a non-empty list of numbers above 0{bound}, got {list(values)}"
        raise BagscopeError(msg)
    return out


def _lookup(
    tf: TfView | None, *, target: str, source: str, t_ns: int
) -> NDArray[np.float64] | None:
    """The 4x4 transform from ``source`` into ``target``, None when TF cannot tell."""
    if tf is None:
        return None
    try:
        return tf.lookup(target, source, t_ns)
    except BagscopeError:  # TransformError: frames not connected, or no TF in that time
        return None


def _fmt(value: float) -> str:
    return f"{value:g}"


class DetectionEvaluation:
    """Scores a detector stage's boxes against a ground-truth Detection3DArray topic."""

    def __init__(
        self,
        *,
        detector: str,
        truth: str = "/ground_truth/objects",
        iou_thresholds: Sequence[float] = (0.5, 0.7),
        center_distances: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        range_bins: Sequence[float] = (0, 20, 40, 60, 1000),
        max_stamp_gap_ms: float | None = None,
        min_points: int = 0,
        class_map: Mapping[str, str] | None = None,
        cloud: str | None = None,
        burst_frames: int = 3,
        min_recall: float = 0.5,
        min_precision: float = 0.5,
        min_ap: float | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(detector, str) or not detector:
            msg = "detector must name the stage whose boxes are evaluated"
            raise BagscopeError(msg)
        if not isinstance(truth, str) or not truth:
            msg = f"truth must be a topic name, got {truth!r}"
            raise BagscopeError(msg)
        self.iou_thresholds = _positive_tuple("iou_thresholds", iou_thresholds, upper=1.0)
        self.center_distances = _positive_tuple("center_distances", center_distances)
        try:
            edges = tuple(float(v) for v in range_bins)
        except (TypeError, ValueError):
            edges = ()
        if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
            msg = f"range_bins must be at least two increasing ranges in m, got {range_bins!r}"
            raise BagscopeError(msg)
        if edges[0] < 0:
            msg = f"range_bins must start at 0 m or more, got {edges[0]:g}"
            raise BagscopeError(msg)
        if max_stamp_gap_ms is not None and not max_stamp_gap_ms > 0:
            msg = f"max_stamp_gap_ms must be above 0, got {max_stamp_gap_ms}"
            raise BagscopeError(msg)
        if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 0:
            msg = f"min_points must be a whole number >= 0, got {min_points!r}"
            raise BagscopeError(msg)
        if class_map is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in dict(class_map).items()
        ):
            msg = "class_map must map predicted class names to truth class names"
            raise BagscopeError(msg)
        if isinstance(burst_frames, bool) or not isinstance(burst_frames, int) or burst_frames < 1:
            msg = f"burst_frames must be a whole number >= 1, got {burst_frames!r}"
            raise BagscopeError(msg)
        for key, value in (("min_recall", min_recall), ("min_precision", min_precision)):
            if not 0 <= value <= 1:
                msg = f"{key} must be a fraction in [0, 1], got {value}"
                raise BagscopeError(msg)
        if min_ap is not None and not 0 <= min_ap <= 1:
            msg = f"min_ap must be a fraction in [0, 1], got {min_ap}"
            raise BagscopeError(msg)
        self.name = name or "detection"
        self.detector = detector
        self.truth = truth
        self.range_bins = edges
        self.max_stamp_gap_ms = None if max_stamp_gap_ms is None else float(max_stamp_gap_ms)
        self.min_points = min_points
        self.class_map = dict(class_map or {})
        self.cloud = cloud
        self.burst_frames = burst_frames
        self.min_recall = float(min_recall)
        self.min_precision = float(min_precision)
        self.min_ap = None if min_ap is None else float(min_ap)
        self._origin_ns = 0
        self._has_truth = True
        self._truths: dict[int, Boxes] = {}
        self._truth_corrupt = 0
        self._latest_truth = -(2**62)
        self._frames: list[_FrameRecord] = []
        self._pending: list[_FrameRecord] = []
        self._no_output: array[int] = array("q")

    @property
    def main(self) -> str:
        return f"iou{_fmt(self.iou_thresholds[0])}"

    # ------------------------------------------------------------------------------ reading

    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        self._has_truth = any(
            t.name == self.truth or t.name.lstrip("/") == self.truth.lstrip("/")
            for t in context.info.topics
        )
        for t in context.info.topics:
            if t.name.lstrip("/") == self.truth.lstrip("/"):
                self.truth = t.name

    @property
    def message_topics(self) -> Collection[str]:
        return (self.truth,) if self._has_truth else ()

    def on_message(self, msg: Message) -> None:
        try:
            boxes = msg.decode()
        except DecodeError:
            self._truth_corrupt += 1
            return
        if not isinstance(boxes, Boxes):
            self._truth_corrupt += 1
            return
        self._truths[boxes.stamp_ns] = boxes
        self._latest_truth = max(self._latest_truth, boxes.stamp_ns)
        if self._pending:
            waiting = []
            for record in self._pending:
                if record.stamp_ns <= self._latest_truth:
                    self._count_points(record)
                else:
                    waiting.append(record)
            self._pending = waiting

    def process(self, frame: Frame) -> None:
        out = frame.outputs.get(self.detector)
        if out is None:
            self._no_output.append(frame.t_ns)
            return
        if not isinstance(out, Boxes):
            msg = f"stage {self.detector!r} gives {type(out).__name__}, not Boxes"
            raise TypeError(msg)
        predictions = out
        if self.class_map:
            labels = tuple(self.class_map.get(label, label) for label in out.labels)
            predictions = replace(out, labels=labels)
        record = _FrameRecord(
            t_ns=frame.t_ns, stamp_ns=out.stamp_ns, predictions=predictions, tf=frame.tf
        )
        self._frames.append(record)
        cloud = self._cloud_of(frame)
        if cloud is None:
            return
        record.cloud = cloud
        if self._latest_truth >= record.stamp_ns:
            self._count_points(record)
            return
        self._pending.append(record)
        if len(self._pending) > _MAX_PENDING:  # the truth lags far behind: count what we have
            self._count_points(self._pending.pop(0))

    def _cloud_of(self, frame: Frame) -> tuple[NDArray[np.float32], str, int] | None:
        if not frame.clouds:
            return None
        topic = next(iter(frame.clouds))
        if self.cloud is not None:
            found = [t for t in frame.clouds if t.lstrip("/") == self.cloud.lstrip("/")]
            if not found:
                return None
            topic = found[0]
        cloud = frame.clouds[topic]
        try:
            xyz = np.asarray(cloud.xyz_finite, dtype=np.float32)
        except DecodeError:
            return None
        return xyz, cloud.frame_id, cloud.stamp_ns

    def _nearest_truth(self, stamp_ns: int) -> int | None:
        if not self._truths:
            return None
        return min(self._truths, key=lambda s: abs(s - stamp_ns))

    def _count_points(self, record: _FrameRecord) -> None:
        """Lidar points inside each box of the truth nearest the record (the occlusion proxy);
        the cloud is dropped afterwards."""
        cloud, record.cloud = record.cloud, None
        stamp = self._nearest_truth(record.stamp_ns)
        if cloud is None or stamp is None:
            return
        xyz, frame_id, cloud_stamp = cloud
        truth = self._truths[stamp]
        if frame_id and truth.frame_id and frame_id != truth.frame_id:
            matrix = _lookup(record.tf, target=truth.frame_id, source=frame_id, t_ns=cloud_stamp)
            if matrix is None:
                return
            xyz = (xyz @ matrix[:3, :3].T + matrix[:3, 3]).astype(np.float32)
        record.counted_stamp = stamp
        record.counts = points_in_boxes(xyz, truth)

    # ------------------------------------------------------------------------------ pairing

    def _gap_ns(self) -> int:
        if self.max_stamp_gap_ms is not None:
            return round(self.max_stamp_gap_ms * 1e6)
        stamps = np.array(sorted(self._truths), dtype=np.int64)
        steps = np.diff(stamps)
        steps = steps[steps > 0]
        return int(np.median(steps)) // 2 if steps.size else _DEFAULT_GAP_NS

    def _pair(self, gap_ns: int, metrics: Metrics) -> list[_Scored]:
        for record in self._pending:
            self._count_points(record)
        self._pending = []
        stamps = np.array(sorted(self._truths), dtype=np.int64)
        scored: list[_Scored] = []
        without_truth = untransformed = 0
        used: set[int] = set()
        largest = 0
        for record in self._frames:
            if not stamps.size:
                without_truth += 1
                continue
            k = int(np.searchsorted(stamps, record.stamp_ns))
            near = [i for i in (k - 1, k) if 0 <= i < stamps.size]
            best = min(near, key=lambda i: abs(int(stamps[i]) - record.stamp_ns))
            stamp = int(stamps[best])
            if abs(stamp - record.stamp_ns) > gap_ns:
                without_truth += 1
                continue
            truth = self._truths[stamp]
            predictions = record.predictions
            if predictions.frame_id and truth.frame_id and predictions.frame_id != truth.frame_id:
                matrix = _lookup(
                    record.tf,
                    target=truth.frame_id,
                    source=predictions.frame_id,
                    t_ns=predictions.stamp_ns,
                )
                if matrix is None:
                    untransformed += 1
                    continue
                predictions = predictions.transformed(matrix, frame_id=truth.frame_id)
            counts = record.counts if record.counted_stamp == stamp else None
            points = counts if counts is not None else np.full(len(truth), -1, dtype=np.int64)
            used.add(stamp)
            largest = max(largest, abs(stamp - record.stamp_ns))
            scored.append(
                _Scored(
                    t_ns=record.t_ns,
                    truth=truth,
                    predictions=predictions,
                    points=points,
                    iou=bev_iou(predictions, truth),
                    distance=center_distance(predictions, truth),
                )
            )
        topic = self.truth
        metrics.add("frames_scored", len(scored), topic=topic)
        metrics.add("frames_without_truth", without_truth, topic=topic)
        metrics.add("frames_without_prediction", len(self._no_output), topic=topic)
        metrics.add("frames_untransformed", untransformed, topic=topic)
        metrics.add("truth_messages", len(self._truths), topic=topic)
        metrics.add("truth_unpaired", len(self._truths) - len(used), topic=topic)
        metrics.add("truth_corrupt", self._truth_corrupt, topic=topic)
        metrics.add("max_stamp_gap_ms", gap_ns / 1e6, topic=topic)
        metrics.add("stamp_gap_ms_max", largest / 1e6, topic=topic)
        return scored

    def _bin(self, ranges: NDArray[np.float64]) -> NDArray[np.intp]:
        edges = np.asarray(self.range_bins)
        idx = np.searchsorted(edges, ranges, side="right") - 1
        idx[(ranges < edges[0]) | (ranges >= edges[-1])] = -1
        return idx.astype(np.intp)

    def _bin_labels(self) -> list[str]:
        e = self.range_bins
        return [f"{_fmt(a)}-{_fmt(b)}m" for a, b in itertools.pairwise(e)]

    def _match(self, scored: list[_Scored], *, kind: str, threshold: float) -> _Matches:
        cols: dict[str, list[Any]] = {k: [] for k in _Matches.__slots__}
        for f, item in enumerate(scored):
            preds, truth = item.predictions, item.truth
            plabels = np.array(preds.labels, dtype=str)
            tlabels = np.array(truth.labels, dtype=str)
            allowed = plabels[:, None] == tlabels[None, :]
            order = np.argsort(-preds.scores, kind="stable").astype(np.intp)
            if kind == "iou":
                matched = greedy_match(
                    item.iou,
                    order=order,
                    allowed=allowed,
                    threshold=threshold,
                    higher_is_better=True,
                )
            else:
                matched = greedy_match(
                    item.distance,
                    order=order,
                    allowed=allowed,
                    threshold=threshold,
                    higher_is_better=False,
                )
            ignored_truth = (item.points >= 0) & (item.points < self.min_points)
            truth_bin = self._bin(truth.ranges())
            hit = matched >= 0
            safe = np.where(hit, matched, 0)
            pred_ignored = hit & ignored_truth[safe] if len(truth) else np.zeros(len(preds), bool)
            pred_bin = np.where(
                hit, truth_bin[safe] if len(truth) else -1, self._bin(preds.ranges())
            )
            truth_matched = np.zeros(len(truth), dtype=bool)
            truth_matched[matched[hit]] = True
            cols["pred_frame"].append(np.full(len(preds), f, dtype=np.intp))
            cols["pred_score"].append(preds.scores)
            cols["pred_class"].append(plabels)
            cols["pred_tp"].append(hit & ~pred_ignored)
            cols["pred_bin"].append(pred_bin.astype(np.intp))
            cols["pred_ignored"].append(pred_ignored)
            cols["truth_frame"].append(np.full(len(truth), f, dtype=np.intp))
            cols["truth_class"].append(tlabels)
            cols["truth_bin"].append(truth_bin)
            cols["truth_matched"].append(truth_matched)
            cols["truth_ignored"].append(ignored_truth)
        empty = {
            "pred_frame": np.intp, "pred_score": np.float64, "pred_class": str,
            "pred_tp": bool, "pred_bin": np.intp, "pred_ignored": bool,
            "truth_frame": np.intp, "truth_class": str, "truth_bin": np.intp,
            "truth_matched": bool, "truth_ignored": bool,
        }  # fmt: skip
        arrays = {
            k: np.concatenate(v) if v else np.zeros(0, dtype=empty[k]) for k, v in cols.items()
        }
        return _Matches(**arrays)

    # ------------------------------------------------------------------------------ results

    def finish(self) -> StageResult:
        result = StageResult()
        if not self._has_truth:
            result.checks.append(
                skip_check("detection AP", self.truth, "no truth topic in the log")
            )
            return result
        scored = self._pair(self._gap_ns(), result.metrics)
        if not scored:
            why = (
                f"no frame of {self.detector!r} paired with {self.truth}"
                if self._frames
                else f"no frame had an output of stage {self.detector!r}"
            )
            result.checks.append(skip_check("detection AP", self.truth, why))
            return result
        classes = sorted({c for item in scored for c in item.truth.labels})
        criteria = [("iou", t, f"iou{_fmt(t)}") for t in self.iou_thresholds] + [
            ("dist", d, f"dist{_fmt(d)}") for d in self.center_distances
        ]
        per_criterion: dict[str, _Matches] = {}
        aps: dict[str, dict[str, float]] = {}
        for kind, threshold, crit in criteria:
            matches = self._match(scored, kind=kind, threshold=threshold)
            per_criterion[crit] = matches
            aps[crit] = self._summary(result.metrics, matches, classes=classes, crit=crit)
        self._distance_map(result.metrics, per_criterion, classes=classes)
        main = per_criterion[self.main]
        frame_counts = self._per_frame(result.metrics, scored, main)
        self._bursts(result, scored, frame_counts)
        self._ap_checks(result, aps[self.main], classes)
        result.tables.extend(
            self._tables(scored=scored, m=main, counts=frame_counts, classes=classes)
        )
        result.figures.extend(
            self._figures(scored=scored, m=main, counts=frame_counts, classes=classes)
        )
        return result

    def _subsets(self, classes: list[str]) -> list[tuple[str, str | None, int | None]]:
        """(label prefix, class or None for all, range bin or None for all)."""
        ranges: list[tuple[str, int | None]] = [("all", None)]
        ranges += [(label, i) for i, label in enumerate(self._bin_labels())]
        out: list[tuple[str, str | None, int | None]] = []
        for cls in [None, *classes]:
            for rlabel, rbin in ranges:
                out.append((f"{cls or 'all'}|{{crit}}|{rlabel}", cls, rbin))
        return out

    def _summary(
        self, metrics: Metrics, m: _Matches, *, classes: list[str], crit: str
    ) -> dict[str, float]:
        """Counts, precision/recall/F1 and AP per class and range under one criterion; the AP
        per class over all ranges is returned."""
        topic = self.truth
        aps: dict[str, float] = {}
        range_aps: dict[str, list[float]] = {}
        for template, cls, rbin in self._subsets(classes):
            label = template.format(crit=crit)
            pmask = ~m.pred_ignored
            tmask = ~m.truth_ignored
            if cls is not None:
                pmask &= m.pred_class == cls
                tmask &= m.truth_class == cls
            if rbin is not None:
                pmask &= m.pred_bin == rbin
                tmask &= m.truth_bin == rbin
            tp = int(np.count_nonzero(m.pred_tp & pmask))
            fp = int(np.count_nonzero(pmask)) - tp
            n_truth = int(np.count_nonzero(tmask))
            fn = n_truth - int(np.count_nonzero(m.truth_matched & tmask))
            metrics.add("tp", tp, topic=topic, label=label)
            metrics.add("fp", fp, topic=topic, label=label)
            metrics.add("fn", fn, topic=topic, label=label)
            if tp + fp:
                metrics.add("precision", tp / (tp + fp), topic=topic, label=label)
            if n_truth:
                metrics.add("recall", (n_truth - fn) / n_truth, topic=topic, label=label)
            if tp:
                f1 = 2 * tp / (2 * tp + fp + fn)
                metrics.add("f1", f1, topic=topic, label=label)
            if cls is None or not n_truth:
                continue
            scores, hits = m.pred_score[pmask], m.pred_tp[pmask]
            ap = average_precision(scores, hits, n_truth)
            metrics.add("ap", ap, topic=topic, label=label)
            range_key = "all" if rbin is None else self._bin_labels()[rbin]
            range_aps.setdefault(range_key, []).append(ap)
            if rbin is None:
                aps[cls] = ap
                if scores.size:
                    recall, precision, sorted_scores = _pr_curve(scores, hits, n_truth)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        f1s = np.where(
                            recall + precision > 0,
                            2 * recall * precision / (recall + precision),
                            0.0,
                        )
                    best = int(np.argmax(f1s))
                    metrics.add("f1_max", float(f1s[best]), topic=topic, label=label)
                    metrics.add(
                        "score_at_f1_max", float(sorted_scores[best]), topic=topic, label=label
                    )
        for range_key, values in range_aps.items():
            metrics.add("map", float(np.mean(values)), topic=topic, label=f"{crit}|{range_key}")
        return aps

    def _distance_map(
        self, metrics: Metrics, per: Mapping[str, _Matches], *, classes: list[str]
    ) -> None:
        """nuScenes-style mAP: the mean of the class APs over every distance threshold."""
        crits = [f"dist{_fmt(d)}" for d in self.center_distances]
        for rlabel, rbin in [("all", None), *((b, i) for i, b in enumerate(self._bin_labels()))]:
            values = []
            for crit in crits:
                m = per[crit]
                for cls in classes:
                    tmask = (m.truth_class == cls) & ~m.truth_ignored
                    pmask = (m.pred_class == cls) & ~m.pred_ignored
                    if rbin is not None:
                        tmask &= m.truth_bin == rbin
                        pmask &= m.pred_bin == rbin
                    n_truth = int(np.count_nonzero(tmask))
                    if n_truth:
                        values.append(
                            average_precision(m.pred_score[pmask], m.pred_tp[pmask], n_truth)
                        )
            if values:
                metrics.add(
                    "map", float(np.mean(values)), topic=self.truth, label=f"dist_mean|{rlabel}"
                )

    def _per_frame(self, metrics: Metrics, scored: list[_Scored], m: _Matches) -> NDArray[np.int64]:
        """(frames, 3) TP, FP, FN at the main criterion, also as per-frame metrics."""
        n = len(scored)
        keep_p, keep_t = ~m.pred_ignored, ~m.truth_ignored
        tp = np.bincount(m.pred_frame[m.pred_tp & keep_p], minlength=n)
        fp = np.bincount(m.pred_frame[~m.pred_tp & keep_p], minlength=n)
        fn = np.bincount(m.truth_frame[~m.truth_matched & keep_t], minlength=n)
        times = [item.t_ns for item in scored]
        label = f"all|{self.main}|all"
        metrics.extend("tp", times, tp, topic=self.truth, label=label)
        metrics.extend("fp", times, fp, topic=self.truth, label=label)
        metrics.extend("fn", times, fn, topic=self.truth, label=label)
        return np.stack([tp, fp, fn], axis=1).astype(np.int64)

    def _bursts(
        self, result: StageResult, scored: list[_Scored], counts: NDArray[np.int64]
    ) -> None:
        tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        times = np.array([item.t_ns for item in scored], dtype=np.int64)
        for kind, values, limit, what, check in (
            ("missed_detections", recall, self.min_recall, "recall", "missed detections"),
            ("false_detections", precision, self.min_precision, "precision", "false detections"),
        ):
            low = np.nan_to_num(values, nan=np.inf) < limit
            events = []
            for first, last in runs(low):
                frames = last - first + 1
                if frames < self.burst_frames:
                    continue
                span = slice(first, last + 1)
                worst = float(np.nanmin(values[span]))
                events.append(
                    Event(
                        t_ns=int(times[first]),
                        end_ns=int(times[last]),
                        topic=self.truth,
                        kind=kind,
                        severity="warning",
                        message=(
                            f"{self.detector}: {frames} frames in a row with {what} under "
                            f"{limit:g} (as low as {worst:.2f}) at {self.main}"
                        ),
                        evidence={
                            "frames": frames,
                            "tp": int(tp[span].sum()),
                            "fp": int(fp[span].sum()),
                            "fn": int(fn[span].sum()),
                            f"min_{what}": worst,
                            "threshold": limit,
                            "criterion": self.main,
                            "detector": self.detector,
                        },
                    )
                )
            report_check(
                result,
                events,
                name=check,
                topic=self.truth,
                value=f"{len(events)} stretch{'es' if len(events) != 1 else ''}",
                threshold=f"no {self.burst_frames}+ frames with {what} < {limit:g}",
            )

    def _ap_checks(self, result: StageResult, aps: Mapping[str, float], classes: list[str]) -> None:
        for cls in classes:
            ap = aps.get(cls, math.nan)
            if math.isnan(ap):
                result.checks.append(skip_check(f"AP {cls}", self.truth, "no truth to judge"))
                continue
            if self.min_ap is None:
                status, threshold = "pass", "(info)"
            else:
                status = "pass" if ap >= self.min_ap else "warn"
                threshold = f">= {self.min_ap:g}"
            result.checks.append(
                Check(
                    name=f"AP {cls} @{self.main}",
                    topic=self.truth,
                    status=status,  # type: ignore[arg-type]
                    value=f"{ap:.3f}",
                    threshold=threshold,
                )
            )

    # ------------------------------------------------------------------------------ tables

    def _tables(
        self,
        *,
        scored: list[_Scored],
        m: _Matches,
        counts: NDArray[np.int64],
        classes: list[str],
    ) -> list[Table]:
        origin = self._origin_ns
        errors = counts[:, 1] + counts[:, 2]
        worst = [i for i in np.argsort(-errors, kind="stable")[:_WORST_FRAMES] if errors[i] > 0]
        tables = [
            Table(
                title=f"Worst frames of {self.detector} ({self.main})",
                columns=("t_ns", "time (s)", "truths", "predictions", "tp", "fp", "fn"),
                rows=tuple(
                    (
                        scored[i].t_ns,
                        round((scored[i].t_ns - origin) / 1e9, 3),
                        len(scored[i].truth),
                        len(scored[i].predictions),
                        *(int(v) for v in counts[i]),
                    )
                    for i in worst
                ),
            )
        ]
        judged = ~m.truth_ignored
        missed = judged & ~m.truth_matched

        def row(name: str, mask: NDArray[np.bool_]) -> tuple[Any, ...]:
            total = int(np.count_nonzero(mask & judged))
            miss = int(np.count_nonzero(mask & missed))
            return (name, total, miss, round(miss / total, 3) if total else None)

        columns = ("", "truths", "missed", "miss rate")
        tables.append(
            Table(
                title=f"Misses by class ({self.main})",
                columns=("class", *columns[1:]),
                rows=tuple(row(c, m.truth_class == c) for c in classes),
            )
        )
        bins = self._bin_labels()
        tables.append(
            Table(
                title=f"Misses by range ({self.main})",
                columns=("range", *columns[1:]),
                rows=tuple(row(b, m.truth_bin == i) for i, b in enumerate(bins)),
            )
        )
        points = np.concatenate([item.points for item in scored]).astype(np.int64)
        point_rows = [row(name, (points >= lo) & (points <= hi)) for lo, hi, name in _POINT_BINS]
        point_rows.append(row(">100", points > 100))
        if (points < 0).any():
            point_rows.append(row("unknown", points < 0))
        tables.append(
            Table(
                title=f"Misses by lidar points in the truth box ({self.main})",
                columns=("points", *columns[1:]),
                rows=tuple(point_rows),
            )
        )
        tables.append(self._confusion(scored))
        return tables

    def _confusion(self, scored: list[_Scored]) -> Table:
        """Predicted vs true class, matching class-agnostically at the main IoU."""
        threshold = self.iou_thresholds[0]
        pairs: dict[tuple[str, str], int] = {}
        true_classes: set[str] = set()
        pred_classes: set[str] = set()
        for item in scored:
            preds, truth = item.predictions, item.truth
            order = np.argsort(-preds.scores, kind="stable").astype(np.intp)
            allowed = np.ones((len(preds), len(truth)), dtype=bool)
            matched = greedy_match(
                item.iou, order=order, allowed=allowed, threshold=threshold, higher_is_better=True
            )
            hit_truth = set(matched[matched >= 0].tolist())
            # "don't care" truths (too few points) count nowhere, as in the other tables
            ignored = set(np.flatnonzero((item.points >= 0) & (item.points < self.min_points)))
            for p, t in enumerate(matched.tolist()):
                if t in ignored:
                    continue
                key = (truth.labels[t], preds.labels[p]) if t >= 0 else ("(none)", preds.labels[p])
                pairs[key] = pairs.get(key, 0) + 1
                pred_classes.add(preds.labels[p])
            for t, label in enumerate(truth.labels):
                if t in ignored:
                    continue
                true_classes.add(label)
                if t not in hit_truth:
                    pairs[(label, "(missed)")] = pairs.get((label, "(missed)"), 0) + 1
        cols = [*sorted(pred_classes), "(missed)"]
        rows = [
            (true, *(pairs.get((true, p), 0) for p in cols))
            for true in [*sorted(true_classes), "(none)"]
        ]
        return Table(
            title=f"Confusion: true (rows) vs predicted class, class-agnostic match at {self.main}",
            columns=("true \\ predicted", *cols),
            rows=tuple(rows),
        )

    # ------------------------------------------------------------------------------ figures

    def _figures(
        self,
        *,
        scored: list[_Scored],
        m: _Matches,
        counts: NDArray[np.int64],
        classes: list[str],
    ) -> list[FigureSpec]:
        curves: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]] = []
        for cls in classes:
            pmask = (m.pred_class == cls) & ~m.pred_ignored
            n_truth = int(np.count_nonzero((m.truth_class == cls) & ~m.truth_ignored))
            if n_truth and pmask.any():
                recall, precision, _ = _pr_curve(m.pred_score[pmask], m.pred_tp[pmask], n_truth)
                curves.append((cls, recall, precision))
        times = np.array([item.t_ns for item in scored], dtype=np.int64)
        origin = self._origin_ns
        main = self.main

        def draw_pr(fig: Figure) -> None:
            from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, style_axes

            ax = fig.add_subplot(1, 1, 1)
            for i, (cls, recall, precision) in enumerate(curves):
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                ax.step(recall, precision, where="post", color=colour, lw=1.2, label=cls)
            ax.set_xlim(0, 1.01)
            ax.set_ylim(0, 1.05)
            style_axes(ax, xlabel="recall", ylabel="precision")
            legend(ax, fontsize=8, loc="lower left")

        def draw_counts(fig: Figure) -> None:
            from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, style_axes

            ax = fig.add_subplot(1, 1, 1)
            t = (times - origin) / 1e9
            for j, (what, colour) in enumerate(
                (("TP", TOPIC_COLOURS[1]), ("FP", "#f58518"), ("FN", "#e45756"))
            ):
                ax.plot(t, counts[:, j], color=colour, lw=1.0, label=what)
            style_axes(ax, xlabel="time since log start (s)", ylabel="boxes per frame")
            legend(ax, fontsize=8, loc="upper right")

        figures = [
            FigureSpec(
                name=f"{self.name}_counts",
                title=f"{self.detector}: TP / FP / FN per frame ({main})",
                draw=draw_counts,
            )
        ]
        if curves:
            figures.insert(
                0,
                FigureSpec(
                    name=f"{self.name}_pr",
                    title=f"{self.detector}: precision-recall per class ({main})",
                    draw=draw_pr,
                    size=(5.0, 4.0),
                ),
            )
        return figures
