"""The Python API as users type it: top-level names, records from decode(), TF on real logs,
and the README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

import bagscope
from bagscope.replay.errors import TransformError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_top_level_exports_resolve_and_are_listed() -> None:
    from bagscope import _LAZY  # type: ignore[attr-defined]

    assert set(bagscope.__all__) == {*_LAZY, "__version__"}
    listed = dir(bagscope)
    for name in bagscope.__all__:
        assert name in listed
        assert getattr(bagscope, name) is not None
    for name in (
        "open_log",
        "NearestSync",
        "ApproximateTimeSync",
        "ExactTimeSync",
        "PointCloud",
        "CameraImage",
        "ImuSample",
        "ReplayError",
        "BagscopeError",
        "make_policy",
    ):
        assert name in listed
    assert issubclass(bagscope.ReplayError, bagscope.BagscopeError)
    assert issubclass(bagscope.SimError, bagscope.BagscopeError)
    assert bagscope.make_policy("nearest", ["/a", "/b"]).slop == 50_000_000
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bagscope.nope  # type: ignore[attr-defined]


def test_decode_returns_records_for_every_supported_type(shared_data: Path) -> None:
    expected = {
        "/camera/accel/sample": bagscope.ImuSample,
        "/camera/gyro/sample": bagscope.ImuSample,
        "/camera/odom/sample": bagscope.OdometrySample,
        "/camera/fisheye1/image_raw": bagscope.CameraImage,
    }
    with bagscope.open_log(shared_data / "ros1/realsense_t265_fisheye.bag") as log:
        for topic, record in expected.items():
            message = next(log.messages(topics=[topic]))
            assert isinstance(message.decode(), record), topic
            # The raw rosbags message stays one attribute away.
            assert type(message.payload).__name__.endswith(message.msgtype.rsplit("/", 1)[1])
    with bagscope.open_log(shared_data / "ros1/sick_lms1xx_rms_radar.bag") as log:
        scan = next(log.messages(topics=["/sick_lms_1xx/scan"])).decode()
        assert isinstance(scan, bagscope.ScanPoints)


def test_every_frame_sees_the_whole_logs_tf(shared_data: Path) -> None:
    """The SICK bag publishes its radar mount on /tf (10 Hz, 100 ms in the future): frames
    before the first of those messages still transform, and the mount never changes."""
    with bagscope.open_log(shared_data / "ros1/sick_lms1xx_rms_radar.bag") as log:
        stream = log.frames(bagscope.ApproximateTimeSync(["/cloud", "/cloud_radar_track"]))
        frames = list(stream)
        assert len(frames) == 75
        for frame in frames:
            assert frame.tf is not None
            np.testing.assert_array_equal(frame.tf.lookup("cloud", "radar"), np.eye(4))
        first_tf = next(log.messages(topics=["/tf"])).log_time_ns
        assert frames[0].t_ns < first_tf  # the stream had not reached any TF yet


def test_log_tf_and_frame_tf_offer_the_same_operations(shared_data: Path) -> None:
    with bagscope.open_log(shared_data / "ros1/tf_example.bag") as log:
        tf = log.tf()
        first, _ = tf.time_range("odom", "base_footprint")  # type: ignore[misc]
        view = tf.at(first + 1_000_000_000)
        points = np.array([[1.0, 0.0, 0.0]])
        np.testing.assert_array_equal(
            view.lookup("odom", "base_link"), tf.lookup("odom", "base_link", view.t_ns)
        )
        np.testing.assert_array_equal(
            view.transform_points(points, target="odom", source="base_link"),
            tf.transform_points(points, target="odom", source="base_link", t_ns=view.t_ns),
        )
        times = np.array([first, first + 5], dtype=np.int64)
        np.testing.assert_array_equal(
            view.lookup_many("odom", "base_link", times), tf.lookup_many("odom", "base_link", times)
        )
        for bad in (first + 0.5, float(first)):
            with pytest.raises(TransformError, match="integer nanoseconds"):
                tf.lookup("odom", "base_link", bad)  # type: ignore[arg-type]
        with pytest.raises(TransformError, match="integer nanoseconds, got an array of float64"):
            tf.lookup_many("odom", "base_link", np.array([first, first + 1.5]))
        with pytest.raises(TransformError, match="integer nanoseconds"):
            tf.at(1.5e18)  # type: ignore[arg-type]


def _readme_block(needle: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if needle in b]
    return block


def test_readme_tf_example_runs_on_the_real_tf_bag(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = shared_data / "ros1/tf_example.bag"
    code = _readme_block("log.tf()").replace('"tf_example.bag"', repr(str(bag)))
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    printed = capsys.readouterr().out
    assert "base_footprint -> base_link static" in printed
    assert "odom -> base_footprint 517 samples" in printed
    trail = scope["trail"]
    assert isinstance(trail, np.ndarray)
    assert trail.shape == (50, 4, 4)
    # The trail's first point is the first /tf sample, read here with rosbags on its own.
    with AnyReader([bag]) as reader:
        conn = next(c for c in reader.connections if c.topic == "/tf")
        _, _, raw = next(reader.messages(connections=[conn]))
        sample = reader.deserialize(raw, conn.msgtype).transforms[0]  # type: ignore[attr-defined]
    t = sample.transform.translation
    np.testing.assert_allclose(trail[0, :3, 3], [t.x, t.y, t.z], atol=1e-9)


def test_the_frame_stream_does_not_depend_on_the_log() -> None:
    """framing takes read/connections/tf callables: importing it loads no Log (no cycle)."""
    code = (
        "import sys, bagscope.replay.framing\n"
        "assert 'bagscope.replay.log' not in sys.modules, 'framing imports log'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
