"""``ResultsBag``: the log copied byte for byte plus the stages' boxes and points, read back
with rosbags' AnyReader and with the ``mcap`` library.

The stages below are also named by ``module:Class`` in the CLI test's pipeline file.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from bagscope.errors import BagscopeError
from bagscope.models.records import PointSet, points_from
from bagscope.pipeline.results_bag import (
    CUBE,
    DELETEALL,
    TEXT_VIEW_FACING,
    ResultsBag,
    ResultsBagError,
    box_label,
    result_topic,
)
from bagscope.pipeline.runner import run_stages
from bagscope.pipeline.stage import StageResult
from bagscope.replay.decode.boxes import Boxes, decode_detection3d_array
from bagscope.replay.log import Log
from bagscope.replay.sync import make_policy

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.frame import Frame

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
CLASSES = ("car", "pedestrian", "cyclist")


class HandBoxes:
    """``count`` boxes per frame whose every field is a known function of the frame index;
    remembers each frame's boxes (and the frame's lidar log time) for the test to compare."""

    def __init__(self, *, count: int = 3, name: str = "hand") -> None:
        self.name = name
        self.count = count
        self.seen: list[tuple[int, Boxes]] = []

    def process(self, frame: Frame) -> Boxes:
        k, n = frame.index, self.count
        i = np.arange(n, dtype=np.float64)
        boxes = Boxes.build(
            stamp_ns=frame.t_ns,
            frame_id="lidar",
            centers=np.stack([5.0 + 3 * i + 0.1 * k, -2.0 + i, -1.0 + 0.01 * i], axis=1),
            sizes=np.stack([4.0 + 0.1 * i, 1.8 + 0.05 * i, 1.5 + 0.02 * k + 0 * i], axis=1),
            yaws=np.angle(np.exp(1j * (0.4 * i - 1.0 + 0.3 * k))),
            labels=[CLASSES[j % 3] for j in range(n)],
            scores=(0.5 + 0.1 * i) % 1.0,
            ids=[f"{k}-{j}" if j else "" for j in range(n)],
        )
        self.seen.append((frame.messages[LIDAR].log_time_ns, boxes))
        return boxes

    def finish(self) -> StageResult:
        return StageResult()


class EveryTenth:
    """The first cloud's finite points, every tenth one: a PointSet output."""

    def __init__(self, *, name: str = "sparse") -> None:
        self.name = name
        self.seen: list[PointSet] = []

    def process(self, frame: Frame) -> PointSet:
        points = points_from(frame, None)
        out = points.select(np.arange(0, len(points), 10))
        self.seen.append(out)
        return out

    def finish(self) -> StageResult:
        return StageResult()


class StopAt:
    """Ctrl-C (a KeyboardInterrupt) at frame ``frame``."""

    def __init__(self, *, frame: int = 5, name: str = "stop") -> None:
        self.name = name
        self.frame = frame

    def process(self, frame: Frame) -> None:
        if frame.index == self.frame:
            raise KeyboardInterrupt

    def finish(self) -> StageResult:
        return StageResult()


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of urban driving, 16 beams, a 320x180 camera, as one MCAP file."""
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    out = tmp_path_factory.mktemp("drive") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=3, duration_ns=2_000_000_000, beams=16, camera_size=(320, 180)
    )
    simulate(out, scenario=scenario, workers=0)
    return out


def _sync() -> Any:
    return make_policy("nearest", [LIDAR, CAMERA], slop_ns=50_000_000)


def _mcap_messages(path: Path) -> list[tuple[str, str, int, bytes]]:
    """(topic, schema name, log time, bytes) of every message, in file order."""
    with path.open("rb") as f:
        return [
            (channel.topic, schema.name if schema else "", msg.log_time, bytes(msg.data))
            for schema, channel, msg in make_reader(f).iter_messages()
        ]


def _anyreader(path: Path) -> tuple[Any, dict[str, list[tuple[int, Any]]]]:
    """The bag's typestore (built from its embedded definitions only) and, per topic, the
    decoded messages with their log times."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path]) as reader:
        for conn, log_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log_ns, reader.deserialize(raw, conn.msgtype)))
        return reader.typestore, out


@pytest.fixture(scope="module")
def written(drive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bag") / "results.mcap"
    hand, sparse = HandBoxes(), EveryTenth()
    with Log(drive) as log:
        result = run_stages(log, [hand, sparse, ResultsBag(out=out)], sync=_sync())
    return {"out": out, "hand": hand, "sparse": sparse, "result": result}


def test_every_original_message_is_copied_with_its_bytes_and_log_time(
    drive: Path, written: dict[str, Any]
) -> None:
    out: Path = written["out"]
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["results.mcap"]  # no temp left
    original = _mcap_messages(drive)
    copied = [m for m in _mcap_messages(out) if not m[0].startswith("/bagscope/")]
    assert Counter(copied) == Counter(original)
    assert len(original) > 300
    assert written["result"].errors == []
    assert written["result"].results["write_bag"].metrics.value("bag_messages_copied") == len(
        original
    )


def test_detections_decode_to_the_stage_boxes(written: dict[str, Any]) -> None:
    typestore, topics = _anyreader(written["out"])
    assert "vision_msgs/msg/Detection3DArray" in typestore.fielddefs  # from the bag itself
    seen: list[tuple[int, Boxes]] = written["hand"].seen
    detections = topics[result_topic("hand", "detections")]
    assert len(detections) == len(seen) >= 15
    for (log_ns, msg), (want_log_ns, want) in zip(detections, seen, strict=True):
        assert log_ns == want_log_ns
        got = decode_detection3d_array(msg)
        assert got.stamp_ns == want.stamp_ns
        assert got.frame_id == "lidar"
        np.testing.assert_allclose(got.centers, want.centers, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.sizes, want.sizes, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.yaws, want.yaws, rtol=0, atol=1e-9)
        assert got.labels == want.labels
        assert got.ids == want.ids
        np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=0)


def test_markers_delete_all_then_a_cube_and_a_label_per_box(written: dict[str, Any]) -> None:
    _, topics = _anyreader(written["out"])
    seen: list[tuple[int, Boxes]] = written["hand"].seen
    markers = topics[result_topic("hand", "markers")]
    assert len(markers) == len(seen)
    for (log_ns, msg), (want_log_ns, boxes) in zip(markers, seen, strict=True):
        assert log_ns == want_log_ns
        n = len(boxes)
        assert len(msg.markers) == 1 + 2 * n
        assert msg.markers[0].action == DELETEALL
        cubes = [m for m in msg.markers[1:] if m.type == CUBE]
        labels = [m for m in msg.markers[1:] if m.type == TEXT_VIEW_FACING]
        assert len(cubes) == len(labels) == n
        for i, (cube, label) in enumerate(zip(cubes, labels, strict=True)):
            for m in (cube, label):
                assert m.header.frame_id == "lidar"
                assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == boxes.stamp_ns
            p, q = cube.pose.position, cube.pose.orientation
            assert (p.x, p.y, p.z) == tuple(boxes.centers[i])
            assert (cube.scale.x, cube.scale.y, cube.scale.z) == tuple(boxes.sizes[i])
            assert math.isclose(
                2 * math.atan2(q.z, q.w) % (2 * math.pi), boxes.yaws[i] % (2 * math.pi)
            )
            assert cube.id == label.id == i
            assert label.text == box_label(boxes, i)
            top = boxes.centers[i][2] + boxes.sizes[i][2] / 2
            assert label.pose.position.z > top
        assert labels[0].text == f"car {boxes.scores[0]:.2f}"  # no id: left out
        assert labels[1].text == f"pedestrian {boxes.ids[1]} {boxes.scores[1]:.2f}"
        assert cubes[0].color != cubes[1].color


def test_points_are_the_point_set(written: dict[str, Any]) -> None:
    _, topics = _anyreader(written["out"])
    seen: list[PointSet] = written["sparse"].seen
    hand: list[tuple[int, Boxes]] = written["hand"].seen
    clouds = topics[result_topic("sparse", "points")]
    assert len(clouds) == len(seen)
    for (log_ns, msg), want, (frame_log_ns, _) in zip(clouds, seen, hand, strict=True):
        assert log_ns == frame_log_ns
        assert msg.header.frame_id == want.frame_id == "lidar"
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == want.stamp_ns
        assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
            ("x", 0, 7),
            ("y", 4, 7),
            ("z", 8, 7),
        ]
        assert msg.width == len(want) > 50
        xyz = np.frombuffer(msg.data.tobytes(), dtype="<f4").reshape(-1, 3)
        np.testing.assert_array_equal(xyz, want.xyz)


def test_mcap_reader_sees_result_schemas_and_ordered_log_times(written: dict[str, Any]) -> None:
    messages = _mcap_messages(written["out"])
    schemas = {topic: schema for topic, schema, _, _ in messages}
    assert schemas[result_topic("hand", "detections")] == "vision_msgs/msg/Detection3DArray"
    assert schemas[result_topic("hand", "markers")] == "visualization_msgs/msg/MarkerArray"
    assert schemas[result_topic("sparse", "points")] == "sensor_msgs/msg/PointCloud2"
    times = [t for _, _, t, _ in messages]
    assert times == sorted(times)
    assert written["result"].results["write_bag"].metrics.value("bag_messages_late") == 0


def test_ros1_input_is_converted_to_the_same_cdr_bytes(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    """The same messages written as ROS1 and as ROS2: converted, the ROS1 log's bytes are the
    ROS2 log's (headers lose ``seq``, which the fixture leaves 0)."""
    out = tmp_path / "from_ros1.mcap"
    with Log(camera_lidar_logs["bag"]) as log:
        result = run_stages(log, [ResultsBag(out=out)])
    assert result.errors == []
    assert result.results["write_bag"].metrics.value("bag_messages_converted_from_ros1") > 0
    want = _mcap_messages(camera_lidar_logs["mcap"] / "drive_mcap.mcap")
    got = _mcap_messages(out)
    assert sorted(got) == sorted(want)
    _, topics = _anyreader(out)
    assert topics["/tf_static"][0][1].transforms[0].child_frame_id == "lidar"


@pytest.mark.parametrize("name", ["results.db3", "results"])
def test_rosbag2_directories_open_with_anyreader(
    camera_lidar_logs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    with Log(camera_lidar_logs["mcap"]) as log:
        run_stages(log, [HandBoxes(count=2), ResultsBag(out=out)], sync=_sync())
    assert (out / "metadata.yaml").is_file()
    _, topics = _anyreader(out)
    assert len(topics[result_topic("hand", "markers")]) == 10
    assert len(topics["/lidar/points"]) == 10


def test_interrupted_run_keeps_a_bag_complete_up_to_there(drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.mcap"
    hand = HandBoxes()
    with Log(drive) as log:
        result = run_stages(log, [hand, StopAt(frame=5), ResultsBag(out=out)], sync=_sync())
        end_ns = log.info().end_ns
    assert result.interrupted
    messages = _mcap_messages(out)
    detections = [m for m in messages if m[0] == result_topic("hand", "detections")]
    assert len(detections) == 5  # frames 0..4; frame 5 was cut before the writer saw it
    assert max(t for _, _, t, _ in messages) < end_ns
    assert [p.name for p in tmp_path.iterdir()] == ["cut.mcap"]


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "r.mcap"
    out.write_bytes(b"old")
    with pytest.raises(ResultsBagError, match="already exists; give another --write-bag"):
        ResultsBag(out=out)
    ResultsBag(out=out, overwrite=True)
    (tmp_path / "notabag").mkdir()
    with pytest.raises(ResultsBagError, match="not a rosbag2 bag"):
        ResultsBag(out=tmp_path / "notabag", overwrite=True)
    with pytest.raises(ResultsBagError, match=r"\*\.mcap"):
        ResultsBag(out=tmp_path / "r.bag")
    with pytest.raises(BagscopeError, match="reorder_window_s"):
        ResultsBag(out=tmp_path / "x.mcap", reorder_window_s=-1)


def test_overwrite_replaces_and_the_input_is_never_replaced(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.mcap"
    out.write_bytes(b"old")
    with Log(camera_lidar_logs["mcap"]) as log:
        run_stages(log, [ResultsBag(out=out, overwrite=True)])
    assert out.read_bytes()[:8] == b"\x89MCAP0\r\n"
    source = camera_lidar_logs["mcap"]
    with Log(source) as log, pytest.raises(ResultsBagError, match="would replace the log"):
        run_stages(log, [ResultsBag(out=source, overwrite=True)])
    assert (source / "metadata.yaml").is_file()


def test_result_topics_are_legal_ros_names() -> None:
    assert result_topic("hand", "points") == "/bagscope/hand/points"
    assert result_topic("my-det.v2", "markers") == "/bagscope/my_det_v2/markers"
    assert result_topic("3d", "detections") == "/bagscope/_3d/detections"
