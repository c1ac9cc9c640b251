"""DetectionEvaluation: hand-built logs with known answers, and simulated drives scored against
detectors whose boxes are the truth itself or the truth moved by a known distance."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from bagscope.analyzers.detection import DetectionEvaluation, average_precision
from bagscope.errors import BagscopeError
from bagscope.replay.decode.boxes import Boxes
from bagscope.sim.messages import DETECTIONS, POINT_CLOUD, BoxTruth, MessageEncoder
from tests.analyzers._drives import LIDAR, clean_drive, draw_figures, run
from tests.logwriter import T0

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.frame import Frame

TRUTH = "/ground_truth/objects"
PERIOD = 100_000_000
CAR = (4.0, 2.0, 1.5)

# --------------------------------------------------------------------------------- helpers


def pose(x: float, y: float, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = (x, y, z)
    return m


def write_truth_log(
    path: Path,
    frames: list[list[tuple[str, float, float]]],
    *,
    points: list[np.ndarray] | None = None,
) -> Path:
    """A ROS2 mcap: a lidar sweep and a truth message (cars/pedestrians at (x, y), z = 0,
    yaw 0) every 100 ms, with equal stamps; ``points`` are the sweeps' xyz."""
    enc = MessageEncoder()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        lidar = writer.add_connection(LIDAR, POINT_CLOUD, typestore=enc.typestore)
        truth = writer.add_connection(TRUTH, DETECTIONS, typestore=enc.typestore)
        for k, objects in enumerate(frames):
            stamp = T0 + k * PERIOD
            xyz = points[k] if points is not None else np.array([[50.0, 50.0, 0.0]])
            n = len(xyz)
            writer.write(
                lidar,
                stamp + 1_000_000,
                enc.point_cloud(
                    stamp_ns=stamp,
                    frame_id="lidar",
                    xyz=np.asarray(xyz, dtype=np.float32),
                    intensity=np.zeros(n, np.float32),
                    ring=np.zeros(n, np.uint16),
                    t=np.zeros(n, np.float32),
                ),
            )
            boxes = [
                BoxTruth(
                    track_id=i,
                    cls=cls,
                    pose=pose(x, y),
                    size=CAR if cls == "car" else (0.6, 0.6, 1.8),
                )
                for i, (cls, x, y) in enumerate(objects)
            ]
            writer.write(
                truth,
                stamp + 1_000_000,
                enc.detections(boxes, stamp_ns=stamp, frame_id="lidar"),
            )
    return path


def car_boxes(stamp_ns: int, rows: list[tuple[float, float, float]], label: str = "car") -> Boxes:
    """Predicted cars at (x, y) with a score each."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return Boxes.build(
        stamp_ns=stamp_ns,
        frame_id="lidar",
        centers=np.column_stack([arr[:, :2], np.zeros(len(arr))]),
        sizes=np.tile(CAR, (len(arr), 1)),
        yaws=np.zeros(len(arr)),
        labels=[label] * len(arr),
        scores=arr[:, 2],
    )


class ScriptedDetector:
    """Returns prepared Boxes per frame index (none: an empty set)."""

    name = "det"

    def __init__(self, per_frame: dict[int, list[tuple[float, float, float]]], label: str = "car"):
        self.per_frame = per_frame
        self.label = label
        self.index = 0

    def process(self, frame: Frame) -> Boxes:
        stamp = frame.stamps_ns[LIDAR]
        rows = self.per_frame.get(self.index, [])
        self.index += 1
        return car_boxes(stamp, rows, self.label)

    def finish(self) -> Any:
        from bagscope.pipeline.stage import StageResult

        return StageResult()


class TruthDetector:
    """The truth message of the frame, optionally moved ``shift`` m along each box's heading."""

    name = "det"

    def __init__(self, *, shift: float = 0.0) -> None:
        self.shift = shift

    def process(self, frame: Frame) -> Boxes:
        truth = frame.messages[TRUTH].decode()
        assert isinstance(truth, Boxes)
        step = np.column_stack([np.cos(truth.yaws), np.sin(truth.yaws), np.zeros(len(truth))])
        return replace(truth, centers=truth.centers + self.shift * step)

    def finish(self) -> Any:
        from bagscope.pipeline.stage import StageResult

        return StageResult()


def evaluate(path: Path, detector: Any, **params: Any) -> Any:
    stage = DetectionEvaluation(detector="det", **params)
    result = run(path, [detector, stage], topics=(LIDAR, TRUTH), slop_ns=1_000_000)
    assert result.errors == []
    return result.results["detection"]


# ---------------------------------------------------------------------------- hand-built


def test_average_precision_by_hand() -> None:
    # TP, FP, TP, FP against 3 truths: precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3;
    # the envelope is 1 up to recall 1/3 (34 of the 101 points: 0.00 ... 0.33), 2/3 up to 2/3
    # (33 points: 0.34 ... 0.66), 0 above: (34 + 33 x 2/3) / 101 = 56 / 101
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    tp = np.array([True, False, True, False])
    assert average_precision(scores, tp, 3) == pytest.approx(56 / 101)
    assert average_precision(scores[::-1].copy(), tp[::-1].copy(), 3) == pytest.approx(56 / 101)
    assert average_precision(np.ones(3), np.ones(3, bool), 3) == pytest.approx(1.0)
    assert math.isnan(average_precision(scores, tp, 0))
    assert average_precision(np.zeros(0), np.zeros(0, bool), 2) == 0.0


@pytest.fixture(scope="module")
def hand_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # frame 0: three cars at 10, 30 and 50 m; 12 points inside the first car, 3 in the second
    inside_first = np.column_stack([np.linspace(9.0, 11.0, 12), np.zeros(12), np.full(12, 0.3)])
    inside_second = np.array([[30.0, 0.5, 0.0], [29.0, -0.5, 0.5], [31.0, 0.0, 0.7]])
    road = np.array([[10.0, 0.0, -0.75], [30.0, 0.0, -0.74]])  # the bottom face: not counted
    sweep0 = np.concatenate([inside_first, inside_second, road])
    frames = [[("car", 10.0, 0.0), ("car", 30.0, 0.0), ("car", 50.0, 0.0)], [], []]
    path = tmp_path_factory.mktemp("detection") / "hand.mcap"
    return write_truth_log(path, frames, points=[sweep0, sweep0, sweep0])


HAND_PREDICTIONS = {
    # 0.9 on the first car (TP), 0.8 nowhere (FP), 0.7 on the second car 0.5 m off
    # (IoU 3.5 / 4.5 = 0.78: TP at 0.5 and 0.7), 0.6 on the first car again (FP: taken)
    0: [(10.0, 0.0, 0.9), (70.0, 0.0, 0.8), (30.5, 0.0, 0.7), (10.2, 0.0, 0.6)],
}


def test_hand_built_case_counts_and_ap(hand_log: Path) -> None:
    result = evaluate(hand_log, ScriptedDetector(HAND_PREDICTIONS))
    m = result.metrics
    assert m.value("frames_scored", topic=TRUTH) == 3
    assert m.value("frames_without_truth", topic=TRUTH) == 0
    assert m.value("max_stamp_gap_ms", topic=TRUTH) == 50.0
    for crit in ("iou0.5", "iou0.7"):
        label = f"car|{crit}|all"
        assert m.value("tp", topic=TRUTH, label=label) == 2
        assert m.value("fp", topic=TRUTH, label=label) == 2
        assert m.value("fn", topic=TRUTH, label=label) == 1
        assert m.value("precision", topic=TRUTH, label=label) == 0.5
        assert m.value("recall", topic=TRUTH, label=label) == pytest.approx(2 / 3)
        assert m.value("f1", topic=TRUTH, label=label) == pytest.approx(4 / 7)
        assert m.value("ap", topic=TRUTH, label=label) == pytest.approx(56 / 101)
        assert m.value("map", topic=TRUTH, label=f"{crit}|all") == pytest.approx(56 / 101)
    # best F1: after the third prediction (P 2/3, R 2/3)
    assert m.value("f1_max", topic=TRUTH, label="car|iou0.5|all") == pytest.approx(2 / 3)
    assert m.value("score_at_f1_max", topic=TRUTH, label="car|iou0.5|all") == 0.7
    # by range: the 10 m car in 0-20 (TP + the duplicate FP), 30 m in 20-40 (TP),
    # 50 m in 40-60 (missed), the 70 m FP in 60-1000
    assert m.value("ap", topic=TRUTH, label="car|iou0.5|0-20m") == pytest.approx(1.0)
    assert m.value("fp", topic=TRUTH, label="car|iou0.5|0-20m") == 1
    assert m.value("ap", topic=TRUTH, label="car|iou0.5|20-40m") == pytest.approx(1.0)
    assert m.value("ap", topic=TRUTH, label="car|iou0.5|40-60m") == 0.0
    assert m.value("fp", topic=TRUTH, label="car|iou0.5|60-1000m") == 1
    # centre distance: 0.5 m off is inside 0.5 m (<=), so the same matches at every distance
    assert m.value("ap", topic=TRUTH, label="car|dist0.5|all") == pytest.approx(56 / 101)
    assert m.value("map", topic=TRUTH, label="dist_mean|all") == pytest.approx(56 / 101)
    # per frame at the main criterion
    times, tps = m.series("tp", topic=TRUTH, label="all|iou0.5|all")
    assert times == [T0, T0 + PERIOD, T0 + 2 * PERIOD]
    assert tps == [2, 0, 0]
    assert m.series("fp", topic=TRUTH, label="all|iou0.5|all")[1] == [2, 0, 0]
    assert m.series("fn", topic=TRUTH, label="all|iou0.5|all")[1] == [1, 0, 0]
    checks = {c.name: c for c in result.checks}
    assert checks["AP car @iou0.5"].value == f"{56 / 101:.3f}"
    assert checks["AP car @iou0.5"].status == "pass"
    tables = {t.title.split(" (")[0]: t for t in result.tables}
    worst = tables["Worst frames of det"]
    assert worst.rows[0][:2] == (T0, -0.001)  # log starts 1 ms after the stamp
    assert worst.rows[0][4:] == (2, 2, 1)
    by_points = {r[0]: r[1:] for r in tables["Misses by lidar points in the truth box"].rows}
    # 12 points in the first car, 3 in the second, none in the third (road points excluded)
    assert by_points["6-20"] == (1, 0, 0.0)
    assert by_points["1-5"] == (1, 0, 0.0)
    assert by_points["0"] == (1, 1, 1.0)
    assert draw_figures(result) == 2


def test_min_points_makes_empty_truths_dont_care(hand_log: Path) -> None:
    result = evaluate(hand_log, ScriptedDetector(HAND_PREDICTIONS), min_points=1, min_ap=0.9)
    m = result.metrics
    # the 50 m car (no points) is neither missed nor counted
    assert m.value("fn", topic=TRUTH, label="car|iou0.5|all") == 0
    assert m.value("recall", topic=TRUTH, label="car|iou0.5|all") == 1.0
    # TP, FP, TP, FP over 2 truths: envelope 1 to recall 1/2 (51 points), 2/3 above (50)
    assert m.value("ap", topic=TRUTH, label="car|iou0.5|all") == pytest.approx(
        (51 + 50 * 2 / 3) / 101
    )
    check = next(c for c in result.checks if c.name == "AP car @iou0.5")
    assert check.status == "warn"
    assert check.threshold == ">= 0.9"


def test_class_map_and_confusion(hand_log: Path) -> None:
    detector = ScriptedDetector({0: [(10.0, 0.0, 0.9), (30.0, 0.0, 0.8)]}, label="vehicle")
    result = evaluate(hand_log, detector)
    m = result.metrics
    assert m.value("tp", topic=TRUTH, label="car|iou0.5|all") == 0
    assert m.value("fp", topic=TRUTH, label="all|iou0.5|all") == 2
    confusion = next(t for t in result.tables if t.title.startswith("Confusion"))
    assert confusion.columns == ("true \\ predicted", "vehicle", "(missed)")
    assert confusion.rows == (("car", 2, 1), ("(none)", 0, 0))
    again = ScriptedDetector({0: [(10.0, 0.0, 0.9), (30.0, 0.0, 0.8)]}, label="vehicle")
    mapped = evaluate(hand_log, again, class_map={"vehicle": "car"})
    assert mapped.metrics.value("tp", topic=TRUTH, label="car|iou0.5|all") == 2
    # TP, TP of 3 truths: precision 1 up to recall 2/3 (67 points: 0.00 ... 0.66)
    assert mapped.metrics.value("ap", topic=TRUTH, label="car|iou0.5|all") == pytest.approx(
        67 / 101
    )


def test_bursts_of_misses_and_false_detections(tmp_path: Path) -> None:
    # ten frames with one car at 10 m: frames 2-5 detect nothing, frames 7-9 add two ghosts
    frames = [[("car", 10.0, 0.0)] for _ in range(10)]
    path = write_truth_log(tmp_path / "bursts.mcap", frames)
    hit = (10.0, 0.0, 0.9)
    ghosts = [(40.0, 5.0, 0.5), (40.0, -5.0, 0.4)]
    per_frame = {k: [hit] for k in (0, 1, 6)} | {k: [hit, *ghosts] for k in (7, 8, 9)}
    result = evaluate(path, ScriptedDetector(per_frame))
    events = {e.kind: e for e in result.events}
    assert set(events) == {"missed_detections", "false_detections"}
    missed = events["missed_detections"]
    assert (missed.t_ns, missed.end_ns) == (T0 + 2 * PERIOD, T0 + 5 * PERIOD)
    assert missed.evidence["frames"] == 4
    assert missed.evidence["fn"] == 4
    assert missed.severity == "warning"
    false = events["false_detections"]
    assert (false.t_ns, false.end_ns) == (T0 + 7 * PERIOD, T0 + 9 * PERIOD)
    assert false.evidence["fp"] == 6
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["missed detections"] == "warn"
    assert statuses["false detections"] == "warn"
    # shorter than burst_frames: no event
    quiet = evaluate(path, ScriptedDetector(per_frame), burst_frames=5)
    assert quiet.events == []


def test_frames_without_truth_are_counted_not_scored(tmp_path: Path) -> None:
    path = write_truth_log(tmp_path / "t.mcap", [[("car", 10.0, 0.0)]] * 3)

    class Late(ScriptedDetector):
        def process(self, frame: Frame) -> Boxes:
            out = super().process(frame)
            return replace(out, stamp_ns=out.stamp_ns + 30_000_000)

    # 30 ms late: within the default half period (50 ms), not within 20 ms
    result = evaluate(path, Late({0: [(10.0, 0.0, 0.9)]}), max_stamp_gap_ms=20)
    assert result.metrics.value("frames_without_truth", topic=TRUTH) == 3
    assert result.metrics.value("frames_scored", topic=TRUTH) == 0
    assert result.metrics.value("truth_unpaired", topic=TRUTH) == 3
    assert [c.status for c in result.checks] == ["skip"]
    default = evaluate(path, Late({0: [(10.0, 0.0, 0.9)]}))
    assert default.metrics.value("frames_scored", topic=TRUTH) == 3
    assert default.metrics.value("stamp_gap_ms_max", topic=TRUTH) == 30.0


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"detector": ""}, "detector"),
        ({"detector": "d", "iou_thresholds": (0.5, 1.5)}, "iou_thresholds"),
        ({"detector": "d", "center_distances": ()}, "center_distances"),
        ({"detector": "d", "range_bins": (0, 20, 10)}, "range_bins"),
        ({"detector": "d", "max_stamp_gap_ms": 0}, "max_stamp_gap_ms"),
        ({"detector": "d", "min_points": -1}, "min_points"),
        ({"detector": "d", "burst_frames": 0}, "burst_frames"),
        ({"detector": "d", "min_recall": 2}, "min_recall"),
        ({"detector": "d", "min_ap": -0.1}, "min_ap"),
    ],
)
def test_bad_parameters(params: dict[str, Any], word: str) -> None:
    with pytest.raises(BagscopeError, match=word):
        DetectionEvaluation(**params)


# ---------------------------------------------------------------------------- simulated


def test_perfect_detector_on_a_drive_scores_one() -> None:
    result = evaluate(clean_drive("urban"), TruthDetector())
    m = result.metrics
    assert m.value("frames_scored", topic=TRUTH) == 30
    assert m.value("fp", topic=TRUTH, label="all|iou0.5|all") == 0
    assert m.value("fn", topic=TRUTH, label="all|iou0.5|all") == 0
    assert m.value("tp", topic=TRUTH, label="all|iou0.5|all") > 0
    for crit in ("iou0.5", "iou0.7", "dist0.5", "dist_mean"):
        assert m.value("map", topic=TRUTH, label=f"{crit}|all") == pytest.approx(1.0)
    assert result.events == []
    assert {c.status for c in result.checks} == {"pass"}
    # every truth box was hit by the lidar: most hold points, counted in its box
    points = next(t for t in result.tables if "lidar points" in t.title)
    assert sum(r[1] for r in points.rows if r[0] != "0") > 0
    draw_figures(result)


def test_shifted_detector_matches_where_the_iou_says() -> None:
    # moved 1 m along its heading, a box of length L keeps IoU (L - 1) / (L + 1):
    # >= 0.5 exactly when L >= 3 (cars yes, pedestrians and cyclists no)
    path = clean_drive("urban")
    perfect = evaluate(path, TruthDetector())
    shifted = evaluate(path, TruthDetector(shift=1.0))
    lengths: list[float] = []
    from bagscope import open_log

    with open_log(path) as log:
        for msg in log.messages(topics=[TRUTH]):
            boxes = msg.decode()
            assert isinstance(boxes, Boxes)
            lengths.extend(boxes.sizes[:, 0].tolist())
    lengths_arr = np.array(lengths)
    iou = (lengths_arr - 1) / (lengths_arr + 1)
    total = perfect.metrics.value("tp", topic=TRUTH, label="all|iou0.5|all")
    assert total == len(lengths)
    for threshold in (0.5, 0.7):
        expected = int(np.count_nonzero(iou >= threshold + 1e-9))
        label = f"all|iou{threshold:g}|all"
        assert shifted.metrics.value("tp", topic=TRUTH, label=label) == expected
        assert shifted.metrics.value("fn", topic=TRUTH, label=label) == total - expected
    # centre distance exactly 1 m: inside 2 m, outside 0.5 m
    assert shifted.metrics.value("tp", topic=TRUTH, label="all|dist2|all") == total
    assert shifted.metrics.value("tp", topic=TRUTH, label="all|dist0.5|all") == 0
