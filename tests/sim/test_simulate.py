"""Simulated logs: readable by plain rosbags in every format, faults exactly as specified."""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from bagscope.sim.config import make_scenario
from bagscope.sim.errors import OutputExistsError, SimError
from bagscope.sim.faults import DUPLICATE_GAP_NS, LATENCY_NOISE_NS, REORDER_GAP_NS
from bagscope.sim.messages import MessageEncoder
from bagscope.sim.simulate import GROUND_TRUTH_TOPIC, START_NS, scenario_topics, simulate
from bagscope.sim.truth import read_truth, truth_path
from bagscope.sim.writer import LogWriter, format_for_path, is_bag_directory
from tests.sim.conftest import SIM_DURATION_NS, SIM_SEED, small_scenario

MS = 1_000_000


class Msg:
    """One message as read back: topic, log time, header stamp (ns) and the decoded object."""

    __slots__ = ("log_ns", "msg", "stamp_ns", "topic")

    def __init__(self, topic: str, log_ns: int, msg: Any) -> None:
        self.topic = topic
        self.log_ns = log_ns
        self.msg = msg
        header: Any = msg.transforms[0].header if hasattr(msg, "transforms") else msg.header
        self.stamp_ns = header.stamp.sec * 10**9 + header.stamp.nanosec


def read_all(path: Path) -> list[Msg]:
    """Every message, decoded with a default-less AnyReader: definitions come from the log."""
    with AnyReader([path]) as reader:
        return [
            Msg(con.topic, log_ns, reader.deserialize(raw, con.msgtype))
            for con, log_ns, raw in reader.messages()
        ]


@pytest.fixture(scope="module")
def decoded(sim_logs: dict[str, Path]) -> dict[str, list[Msg]]:
    return {name: read_all(path) for name, path in sim_logs.items()}


def by_topic(msgs: list[Msg]) -> dict[str, list[Msg]]:
    out: dict[str, list[Msg]] = defaultdict(list)
    for m in msgs:
        out[m.topic].append(m)
    return out


# -- clean logs in every format -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_every_message_decodes_in_every_format(
    fmt: str, sim_logs: dict[str, Path], decoded: dict[str, list[Msg]]
) -> None:
    topics = by_topic(decoded[fmt])
    scenario = small_scenario()
    assert set(topics) == set(scenario_topics(scenario))
    counts = {t: len(m) for t, m in topics.items()}
    assert counts["/tf_static"] == 1
    assert counts["/lidar/points"] == counts[GROUND_TRUTH_TOPIC] == 20
    assert counts["/camera/image/compressed"] == counts["/camera/camera_info"] == 60
    assert counts["/imu"] == 200
    assert counts["/tf"] == counts["/odom"] == 100
    log_times = [m.log_ns for m in decoded[fmt]]
    assert log_times == sorted(log_times)
    assert sim_logs[fmt].exists()
    assert truth_path(sim_logs[fmt]).exists()


def test_formats_carry_the_same_content(decoded: dict[str, list[Msg]]) -> None:
    mcap, bag = by_topic(decoded["mcap"]), by_topic(decoded["bag"])
    for topic in mcap:
        assert [m.stamp_ns for m in mcap[topic]] == [m.stamp_ns for m in bag[topic]]
    cloud_a, cloud_b = mcap["/lidar/points"][5].msg, bag["/lidar/points"][5].msg
    assert bytes(cloud_a.data) == bytes(cloud_b.data)
    assert bag["/imu"][3].msg.header.seq == 3
    assert list(bag["/camera/camera_info"][0].msg.K) == list(mcap["/camera/camera_info"][0].msg.k)


def test_point_cloud_layout_and_consistency(decoded: dict[str, list[Msg]]) -> None:
    cloud = by_topic(decoded["mcap"])["/lidar/points"][3].msg
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7),
        ("y", 4, 7),
        ("z", 8, 7),
        ("intensity", 12, 7),
        ("ring", 16, 4),
        ("t", 20, 7),
    ]
    assert cloud.header.frame_id == "lidar"
    assert len(cloud.data) == cloud.row_step * cloud.height == cloud.width * cloud.point_step
    assert cloud.width > 1000
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "ring", "t"],
            "formats": ["<f4", "<f4", "<f4", "<u2", "<f4"],
            "offsets": [0, 4, 8, 16, 20],
            "itemsize": cloud.point_step,
        }
    )
    points = np.frombuffer(bytes(cloud.data), dtype=dtype)
    assert np.isfinite(points["x"]).all()
    assert set(np.unique(points["ring"])) <= set(range(16))
    assert points["t"].min() >= 0.0
    assert points["t"].max() < 0.1


def test_camera_tf_imu_and_ground_truth_are_consistent(decoded: dict[str, list[Msg]]) -> None:
    topics = by_topic(decoded["mcap"])
    info = topics["/camera/camera_info"][0].msg
    assert (info.width, info.height, info.distortion_model) == (320, 180, "plumb_bob")
    assert info.k[8] == 1.0
    assert list(info.p[:3]) == list(info.k[:3])
    image = topics["/camera/image/compressed"][0].msg
    assert "jpeg" in image.format
    assert bytes(image.data[:2]) == b"\xff\xd8"
    assert bytes(image.data[-2:]) == b"\xff\xd9"
    static = topics["/tf_static"][0].msg
    assert {(t.header.frame_id, t.child_frame_id) for t in static.transforms} == {
        ("base_link", "lidar"),
        ("base_link", "camera_optical"),
    }
    optical = next(t for t in static.transforms if t.child_frame_id == "camera_optical")
    q = optical.transform.rotation
    # optical z (forward) is base_link x: the ROS optical convention
    assert (q.x, q.y, q.z, q.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5), abs=1e-9)
    imu = np.array(
        [
            [
                m.msg.linear_acceleration.x,
                m.msg.linear_acceleration.y,
                m.msg.linear_acceleration.z,
            ]
            for m in topics["/imu"]
        ]
    )
    assert np.median(imu[:, 2]) == pytest.approx(9.81, abs=0.5)  # gravity on a near-level car
    tf = topics["/tf"][0].msg.transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
    truth = topics[GROUND_TRUTH_TOPIC]
    clouds = topics["/lidar/points"]
    assert [m.stamp_ns for m in truth] == [m.stamp_ns for m in clouds]
    detections = [d for m in truth for d in m.msg.detections]
    assert detections, "an urban drive sees other road users"
    for det in detections:
        assert det.header.frame_id == "lidar"
        assert det.results[0].hypothesis.score == 1.0
        assert det.results[0].hypothesis.class_id
        assert det.id.isdigit()
        assert det.bbox.size.x > 0
        assert det.bbox.size.z > 0


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    short = _raw(small_scenario(), compressed=True)
    pooled = simulate(tmp_path / "a" / "drive.mcap", scenario=short, workers=2)
    inline = simulate(tmp_path / "b" / "drive.mcap", scenario=short, workers=0)
    assert pooled.log_path.read_bytes() == inline.log_path.read_bytes()
    assert inline.message_counts["/imu"] == 50
    assert inline.realtime_factor > 0


def test_sidecar_describes_the_drive(sim_logs: dict[str, Path]) -> None:
    truth = read_truth(sim_logs["db3"])
    assert truth_path(sim_logs["db3"]).name == "drive_db3.truth.json"
    assert truth["format"] == "db3"
    scenario = truth["scenario"]
    assert (scenario["name"], scenario["seed"], scenario["duration_ns"]) == (
        "urban",
        7,
        SIM_DURATION_NS,
    )
    assert scenario["lidar"]["beams"] == 16
    assert scenario["cameras"][0]["width"] == 320
    assert np.array(scenario["lidar"]["base_link_from_sensor"]).shape == (4, 4)
    assert truth["faults"] == []
    assert truth["topics"]["/imu"]["written"] == 200


# -- faults as they appear in the written log ------------------------------------------------


@pytest.fixture(scope="module")
def faulty(sim_logs: dict[str, Path], decoded: dict[str, list[Msg]]) -> dict[str, Any]:
    truth = read_truth(sim_logs["faulty_mcap"])
    return {
        "clean": by_topic(decoded["mcap"]),
        "faulty": by_topic(decoded["faulty_mcap"]),
        "all": decoded["faulty_mcap"],
        "faults": {(f["kind"], f["topic"]): f for f in truth["faults"]},
    }


def test_faulty_log_is_still_readable_and_ordered(faulty: dict[str, Any]) -> None:
    log_times = [m.log_ns for m in faulty["all"]]
    assert log_times == sorted(log_times)
    assert len(faulty["faults"]) == 10


def test_drop_count_and_stamps(faulty: dict[str, Any]) -> None:
    record = faulty["faults"]["drop", "/imu"]
    dropped = set(record["stamps_ns"])
    # binomial(200, 0.2): mean 40, sd ≈ 5.7
    assert 40 - 4 * 5.7 < record["count"] < 40 + 4 * 5.7
    kept = {m.stamp_ns for m in faulty["faulty"]["/imu"]}
    assert len(kept) == 200 - record["count"]
    assert not kept & dropped


def test_outage_window_is_empty(faulty: dict[str, Any]) -> None:
    record = faulty["faults"]["outage", "/camera/image/compressed"]
    begin, end = record["window_ns"]
    assert (begin - START_NS, end - begin) == (500 * MS, 400 * MS)
    stamps = [m.stamp_ns for m in faulty["faulty"]["/camera/image/compressed"]]
    assert not [s for s in stamps if begin <= s < end]
    assert record["count"] == 12 == 60 - len(stamps)
    assert (
        [s for s in stamps if s < begin][-1] < begin <= end <= next(s for s in stamps if s >= end)
    )


def test_delay_is_exact(faulty: dict[str, Any]) -> None:
    clean = faulty["clean"]["/camera/camera_info"]
    late = faulty["faulty"]["/camera/camera_info"]
    assert [m.stamp_ns for m in late] == [m.stamp_ns for m in clean]
    assert {b.log_ns - a.log_ns for a, b in zip(clean, late, strict=True)} == {40 * MS}
    lag = np.array([m.log_ns - m.stamp_ns for m in late])
    assert lag.min() >= 40 * MS + 1 * MS
    assert np.ptp(lag) <= LATENCY_NOISE_NS


def test_jitter_moves_header_stamps_only(faulty: dict[str, Any]) -> None:
    clean, jittered = faulty["clean"]["/odom"], faulty["faulty"]["/odom"]
    noise = np.array([b.stamp_ns - a.stamp_ns for a, b in zip(clean, jittered, strict=True)])
    assert 0.7 * 5 * MS < noise.std() < 1.3 * 5 * MS
    assert [m.log_ns for m in jittered] == [m.log_ns for m in clean]
    record = faulty["faults"]["jitter", "/odom"]
    assert record["offsets_ns"] == noise.tolist()


def test_clock_offset_shifts_every_header(faulty: dict[str, Any]) -> None:
    clean, shifted = faulty["clean"]["/lidar/points"], faulty["faulty"]["/lidar/points"]
    assert {b.stamp_ns - a.stamp_ns for a, b in zip(clean, shifted, strict=True)} == {-80 * MS}
    # ground truth keeps the true sweep time: that is how an analyzer can see the offset
    truth = faulty["faulty"][GROUND_TRUTH_TOPIC]
    assert [m.stamp_ns for m in truth] == [m.stamp_ns for m in clean]


def test_duplicates_are_written_twice(faulty: dict[str, Any]) -> None:
    record = faulty["faults"]["duplicate", "/imu"]
    assert record["count"] > 0
    seen: dict[int, list[Msg]] = defaultdict(list)
    for m in faulty["faulty"]["/imu"]:
        seen[m.stamp_ns].append(m)
    doubled = sorted(s for s, ms in seen.items() if len(ms) == 2)
    assert doubled == sorted(record["stamps_ns"])
    for stamp in doubled:
        first, second = seen[stamp]
        assert second.log_ns - first.log_ns == DUPLICATE_GAP_NS


def test_reorder_delivers_out_of_order(faulty: dict[str, Any]) -> None:
    record = faulty["faults"]["reorder", "/tf"]
    assert record["count"] > 0
    msgs = faulty["faulty"]["/tf"]  # in log order
    late = [b.stamp_ns for a, b in itertools.pairwise(msgs) if b.stamp_ns < a.stamp_ns]
    assert sorted(late) == sorted(record["stamps_ns"])
    for a, b in itertools.pairwise(msgs):
        if b.stamp_ns < a.stamp_ns:
            assert b.log_ns - a.log_ns == REORDER_GAP_NS


def test_stale_tf_window_has_no_odom_to_base_link(faulty: dict[str, Any]) -> None:
    record = faulty["faults"]["stale_tf", "/tf"]
    begin, end = record["window_ns"]
    assert (begin - START_NS, end - begin) == (1_200 * MS, 500 * MS)
    stamps = sorted(m.stamp_ns for m in faulty["faulty"]["/tf"])
    assert not [s for s in stamps if begin <= s < end]
    assert record["count"] == 25


def test_corrupt_payloads_fail_consistency_checks(faulty: dict[str, Any]) -> None:
    clouds = faulty["faulty"]["/lidar/points"]
    bad = {m.stamp_ns + 80 * MS for m in clouds if len(m.msg.data) != m.msg.row_step}
    assert bad == set(faulty["faults"]["corrupt", "/lidar/points"]["stamps_ns"])
    assert 0 < len(bad) < len(clouds)
    images = faulty["faulty"]["/camera/image/compressed"]
    broken = {m.stamp_ns for m in images if bytes(m.msg.data[-2:]) != b"\xff\xd9"}
    record = faulty["faults"]["corrupt", "/camera/image/compressed"]
    assert broken == set(record["stamps_ns"]) - set(
        faulty["faults"]["outage", "/camera/image/compressed"]["stamps_ns"]
    )


def test_raw_images_and_their_corruption(tmp_path: Path) -> None:
    scenario = small_scenario()
    result = simulate(
        tmp_path / "raw.bag",
        fmt="bag",
        scenario=_raw(scenario),
        faults="corrupt:/camera/image_raw=0.5",
    )
    images = by_topic(read_all(result.log_path))["/camera/image_raw"]
    assert images[0].msg.encoding == "rgb8"
    bad = {m.stamp_ns for m in images if len(m.msg.data) != m.msg.step * m.msg.height}
    assert bad == set(read_truth(result.log_path)["faults"][0]["stamps_ns"])
    assert 0 < len(bad) < len(images)


def _raw(scenario: Any, *, compressed: bool = False) -> Any:
    """The drive cut to 0.5 s, with raw images unless ``compressed``."""
    from dataclasses import replace

    cams = tuple(replace(c, compressed=compressed) for c in scenario.cameras)
    return replace(scenario, cameras=cams, duration_ns=500 * MS)


# -- errors and atomic writing -------------------------------------------------------------------


def test_bad_requests_are_one_line_sim_errors(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="no topic /radar"):
        simulate(tmp_path / "a.mcap", scenario=small_scenario(), faults="drop:/radar=0.1")
    with pytest.raises(SimError, match=r"must be named \*\.bag"):
        simulate(tmp_path / "a.mcap", fmt="bag", scenario=small_scenario())
    with pytest.raises(SimError, match="unknown log format"):
        simulate(tmp_path / "a.mcap", fmt="zip", scenario=small_scenario())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_failed_write_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / {"mcap": "x.mcap", "db3": "x", "bag": "x.bag"}[fmt]
    encoder = MessageEncoder(ros1=fmt == "bag")
    tf = encoder.tf([("odom", "base_link", np.eye(4))], stamp_ns=5)

    def fail() -> None:
        with LogWriter(out, fmt=fmt, typestore=encoder.typestore) as writer:
            writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=5, payload=tf)
            writer.advance(10)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_writer_sorts_within_the_watermark_and_refuses_to_clobber(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / {"mcap": "x.mcap", "db3": "x", "bag": "x.bag"}[fmt]
    encoder = MessageEncoder(ros1=fmt == "bag")

    def tf(stamp: int) -> bytes:
        return encoder.tf([("odom", "base_link", np.eye(4))], stamp_ns=stamp)

    with LogWriter(out, fmt=fmt, typestore=encoder.typestore) as writer:
        for stamp in (30, 10, 20):
            writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=stamp, payload=tf(stamp))
        writer.advance(25)
        assert writer.pending == 1
        with pytest.raises(ValueError, match="watermark"):
            writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=15, payload=tf(15))
        writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=26, payload=tf(26))
    assert [m.log_ns for m in read_all(out)] == [10, 20, 26, 30]
    with pytest.raises(SimError, match="exists already"):
        LogWriter(out, fmt=fmt, typestore=encoder.typestore)
    with LogWriter(out, fmt=fmt, typestore=encoder.typestore, overwrite=True) as writer:
        writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=99, payload=tf(99))
    assert [m.log_ns for m in read_all(out)] == [99]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_overwrite_replaces_log_and_sidecar(tmp_path: Path) -> None:
    short = _raw(small_scenario(), compressed=True)
    out = tmp_path / "d.mcap"
    simulate(out, scenario=short)
    with pytest.raises(SimError, match="exists already"):
        simulate(out, scenario=short)
    result = simulate(out, scenario=short, faults="drop:/imu=1", overwrite=True)
    assert "/imu" not in by_topic(read_all(out))
    assert json.loads(result.truth_path.read_text())["faults"][0]["count"] == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.mcap", "d.mcap.truth.json"]


# -- output names, permissions and interrupted runs ------------------------------------------


def _tiny(duration_ms: int = 200) -> Any:
    """The cheapest drive that still writes every topic: for tests about files, not content."""
    return make_scenario(
        "urban", seed=SIM_SEED, duration_ns=duration_ms * MS, beams=16, camera_size=(16, 16)
    )


@pytest.mark.parametrize(
    ("name", "fmt", "is_dir"),
    [
        ("drive.mcap", "mcap", False),
        ("drive.bag", "bag", False),
        ("drive.db3", "db3", True),
        ("drive", "mcap", True),
        ("drive.v2", "mcap", True),
    ],
)
def test_the_name_decides_format_and_layout(name: str, fmt: str, is_dir: bool) -> None:
    assert format_for_path(Path(name)) == fmt
    assert is_bag_directory(Path(name), fmt) is is_dir


@pytest.mark.parametrize(
    ("name", "fmt", "inside"),
    [
        ("drive", None, ["drive.mcap", "metadata.yaml"]),
        ("drive.db3", None, ["drive.db3", "metadata.yaml"]),
    ],
)
def test_bag_directories_are_named_as_asked(
    tmp_path: Path, name: str, fmt: str | None, inside: list[str]
) -> None:
    result = simulate(tmp_path / name, fmt=fmt, scenario=_tiny(), workers=0)
    assert result.log_path == tmp_path / name
    assert result.fmt == (fmt or format_for_path(Path(name)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, f"{name}.truth.json"]
    assert sorted(p.name for p in result.log_path.iterdir()) == inside
    assert len(read_all(result.log_path)) == sum(result.message_counts.values())


def test_log_and_sidecar_modes_follow_the_umask(tmp_path: Path) -> None:
    # 0o002 is what none of the writers would give by accident: mkstemp makes 0600, sqlite
    # 0644 and rosbags 0755 whatever the umask.
    previous = os.umask(0o002)
    try:
        for name in ("d.mcap", "d.bag", "d.db3", "d"):
            simulate(tmp_path / name, scenario=_tiny(), workers=0)
    finally:
        os.umask(previous)
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")
    }
    assert modes == {
        "d.mcap": 0o664,
        "d.mcap.truth.json": 0o664,
        "d.bag": 0o664,
        "d.bag.truth.json": 0o664,
        "d.db3": 0o775,
        "d.db3/d.db3": 0o664,
        "d.db3/metadata.yaml": 0o664,
        "d.db3.truth.json": 0o664,
        "d": 0o775,
        "d/d.mcap": 0o664,
        "d/metadata.yaml": 0o664,
        "d.truth.json": 0o664,
    }


def test_errors_name_the_argument_at_fault(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"scenario": "moon"}, "scenario", "unknown scenario 'moon'"),
        ({"beams": 7}, "beams", "unsupported lidar beam count 7"),
        ({"camera_size": (8, 8)}, "camera_size", "between 16 and 8192"),
        ({"duration_ns": 0}, "duration_ns", "duration must be positive"),
        ({"fmt": "zip"}, "fmt", "unknown log format 'zip'"),
        ({"fmt": "mcap", "out": "x.db3"}, "fmt", "'x.db3' names a db3 log, not mcap"),
        ({"fmt": "bag", "out": "x"}, "fmt", "a bag log must be named *.bag, got 'x'"),
        ({"faults": "drop:/imu=2"}, "faults", "probability must be a number in [0, 1]"),
        ({"out": ".."}, "out", "names a directory, not a log"),
    ]
    for kwargs, parameter, message in cases:
        out = tmp_path / kwargs.pop("out", "d.mcap")
        with pytest.raises(SimError) as caught:
            simulate(out, **kwargs)
        assert (caught.value.parameter, message in str(caught.value)) == (parameter, True)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_log_is_refused_in_python_words(tmp_path: Path) -> None:
    out = tmp_path / "d.mcap"
    out.write_bytes(b"mine")
    with pytest.raises(OutputExistsError) as caught:
        simulate(out, scenario=_tiny())
    assert str(caught.value) == f"{out} exists already; pass overwrite=True to replace it"
    assert (caught.value.path, caught.value.parameter) == (out, "overwrite")
    assert out.read_bytes() == b"mine"


def test_overwrite_never_replaces_a_directory_that_is_not_a_bag(tmp_path: Path) -> None:
    keep = tmp_path / "drive" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("precious")
    with pytest.raises(SimError, match="is a directory but not a rosbag2 bag") as caught:
        simulate(tmp_path / "drive", scenario=_tiny(), overwrite=True)
    assert caught.value.parameter == "out"
    assert keep.read_text() == "precious"
    simulate(tmp_path / "d", scenario=_tiny(), workers=0)
    simulate(tmp_path / "d", scenario=_tiny(), workers=0, overwrite=True)  # a bag: replaced
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["d.mcap", "metadata.yaml"]


def test_interrupted_drive_leaves_nothing(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done >= 100 * MS:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "d.db3", scenario=_tiny(300), progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_between_log_and_sidecar_renames_undoes_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x.mcap"
    encoder = MessageEncoder(ros1=False)
    tf = encoder.tf([("odom", "base_link", np.eye(4))], stamp_ns=5)
    real_replace = os.replace
    placed: list[Path] = []

    def replace_then_interrupt(src: Any, dst: Any) -> None:
        if Path(dst).parent == tmp_path and placed:  # the log is in place, the sidecar is not
            raise KeyboardInterrupt
        real_replace(src, dst)
        if Path(dst).parent == tmp_path:
            placed.append(Path(dst))

    def write() -> None:
        with LogWriter(out, fmt="mcap", typestore=encoder.typestore) as writer:
            writer.add("/tf", "tf2_msgs/msg/TFMessage", log_time_ns=5, payload=tf)
            writer.add_sidecar(truth_path(out), b"{}\n")
            monkeypatch.setattr(os, "replace", replace_then_interrupt)  # for the commit only

    with pytest.raises(KeyboardInterrupt):
        write()
    assert placed == [out]
    assert list(tmp_path.iterdir()) == []
