"""`Log`: metadata, message streaming and synced frames over logs in all three formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bagscope import open_log
from bagscope.replay.decode import CameraImage, CameraModel, PointCloud
from bagscope.replay.errors import DecodeError, TopicError
from bagscope.replay.sync import ApproximateTimeSync, NearestSync
from tests.logwriter import (
    CAMERA,
    LIDAR,
    T0,
    LogSpec,
    camera_lidar_spec,
    cloud,
    write_log,
)

FORMATS = ("mcap", "db3", "bag")
LATENCY = 2_000_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_info_counts_topics_and_extent(camera_lidar_logs: dict[str, Path], fmt: str) -> None:
    with open_log(camera_lidar_logs[fmt]) as log:
        info = log.info()
    counts = {t.name: t.count for t in info.topics}
    assert counts == {
        "/camera/camera_info": 30,
        CAMERA: 30,
        LIDAR: 10,
        "/tf": 50,
        "/tf_static": 1,
    }
    assert info.message_count == 121
    assert info.start_ns == T0
    last_tf = T0 + 49 * 20_000_000 + LATENCY
    assert info.end_ns == last_tf
    assert info.topic(LIDAR).msgtype == "sensor_msgs/msg/PointCloud2"
    lidar = info.topic(LIDAR)
    # Its own span: the first and last sweep (stamped 0.0 and 0.9 s) are logged 2 ms late.
    assert (lidar.first_ns, lidar.last_ns) == (T0 + LATENCY, T0 + 900_000_000 + LATENCY)
    assert lidar.rate_hz == 10.0  # 9 intervals over 0.9 s, not 10 over the log's 0.982 s
    assert info.topic("/tf_static").rate_hz is None  # one message is no rate
    with pytest.raises(TopicError, match="/nope"):
        info.topic("/nope")


@pytest.mark.parametrize("fmt", FORMATS)
def test_messages_are_time_ordered_and_filtered(
    camera_lidar_logs: dict[str, Path], fmt: str
) -> None:
    with open_log(camera_lidar_logs[fmt]) as log:
        times = [m.log_time_ns for m in log.messages()]
        assert times == sorted(times)
        start, end = T0 + 250_000_000, T0 + 550_000_000
        lidar = list(log.messages(start=start, end=end, topics=[LIDAR]))
        # Sweeps stamped at .3, .4, .5 s are logged 2 ms later: all inside [start, end).
        assert [m.header_stamp_ns for m in lidar] == [T0 + k * 100_000_000 for k in (3, 4, 5)]
        assert all(m.log_time_ns - m.header_stamp_ns == LATENCY for m in lidar)  # type: ignore[operator]
        assert isinstance(lidar[0].decode(), PointCloud)
        tf = next(iter(log.messages(topics=["/tf"])))
        assert tf.header_stamp_ns is None  # TFMessage has no header of its own
        with pytest.raises(TopicError, match="not in the log"):
            list(log.messages(topics=["/missing"]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_frames_nearest_carry_clouds_images_cameras_and_tf(
    camera_lidar_logs: dict[str, Path], fmt: str
) -> None:
    with open_log(camera_lidar_logs[fmt]) as log:
        stream = log.frames(NearestSync(LIDAR, [CAMERA], slop=20_000_000))
        frames = list(stream)
    assert len(frames) == 10
    for k, frame in enumerate(frames):
        assert frame.t_ns == T0 + k * 100_000_000
        # The camera frame nearest each sweep is the one 3 ms later (every third image).
        assert frame.stamps_ns[CAMERA] - frame.t_ns == 3_000_000
        cloud_k = frame.clouds[LIDAR]
        assert isinstance(cloud_k, PointCloud)
        assert cloud_k.xyz.shape == (64, 3)
        image = frame.images[CAMERA]
        assert isinstance(image, CameraImage)
        assert image.pixels.shape == (24, 32, 3)
        assert np.abs(image.pixels.astype(int) - (200, 30, 30)).max() < 12
        assert isinstance(frame.cameras[CAMERA], CameraModel)
    # TF view: base_link moves 0.2 m per 20 ms tick along x; lidar is 1.5 m above base_link.
    assert frames[5].tf is not None
    pose = frames[5].tf.lookup("odom", "lidar")
    assert pose[:3, 3] == pytest.approx([25 * 0.2, 0.0, 1.5])
    stats = stream.stats
    assert stats.frames == 10
    # Every sweep is used; two of every three images are simply not needed at 10 Hz.
    assert stats.used == {LIDAR: 10, CAMERA: 10}
    assert stats.not_needed == {LIDAR: 0, CAMERA: 20}
    assert stats.dropped == {LIDAR: 0, CAMERA: 0}
    assert stats.messages == {LIDAR: 10, CAMERA: 30}
    assert stats.reasons == []
    assert stats.skew_percentiles()["max"] == 3_000_000


def test_frames_approximate_and_log_time(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log:
        by_header = list(log.frames(ApproximateTimeSync([LIDAR, CAMERA], queue_size=10)))
        by_log = list(
            log.frames(ApproximateTimeSync([LIDAR, CAMERA], queue_size=10), stamp_source="log")
        )
    assert [f.t_ns for f in by_header] == [T0 + k * 100_000_000 for k in range(10)]
    assert [f.t_ns for f in by_log] == [f.t_ns + LATENCY for f in by_header]


def test_frames_start_end_limit_the_stream(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["db3"]) as log:
        frames = list(
            log.frames(
                NearestSync(LIDAR, [CAMERA], slop=20_000_000),
                start=T0 + 200_000_000,
                end=T0 + 600_000_000,
            )
        )
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.t_ns - T0 for f in frames] == [k * 100_000_000 for k in (2, 3, 4, 5)]


def _corrupt_cloud_spec() -> LogSpec:
    """Half a second of the usual log whose sweep stamped at 0.2 s has too few bytes."""
    spec = camera_lidar_spec(seconds=0.5)
    target = T0 + 200_000_000 + LATENCY

    def broken(ts: object) -> object:
        msg = cloud(ts, T0 + 200_000_000, np.zeros((8, 3), dtype=np.float32))
        msg.data = msg.data[: 5 * 16]  # width says 8 points; the bytes hold 5
        return msg

    for entry in spec.entries:
        if entry.topic == LIDAR and entry.log_time_ns == target:
            entry.build = broken
    return spec


def test_corrupt_payloads_are_counted_not_fatal_unless_strict(tmp_path: Path) -> None:
    path = write_log(tmp_path / "corrupt", _corrupt_cloud_spec(), "mcap")
    with open_log(path) as log:
        stream = log.frames(NearestSync(LIDAR, [CAMERA], slop=20_000_000))
        frames = list(stream)
        assert stream.stats.decode_errors[LIDAR] == 1
        assert "point" in stream.stats.first_decode_error[LIDAR]
        assert len(frames) == 4
        with pytest.raises(DecodeError):
            list(log.frames(NearestSync(LIDAR, [CAMERA], slop=20_000_000), strict=True))


def test_tf_buffer_reads_static_and_dynamic(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["bag"]) as log:
        tf = log.tf()
    t = T0 + 30_000_000  # halfway between ticks 1 and 2
    assert tf.lookup("odom", "base_link", t)[:3, 3] == pytest.approx([0.3, 0.0, 0.0])
    assert tf.lookup("base_link", "lidar", t)[:3, 3] == pytest.approx([0.0, 0.0, 1.5])


def test_unknown_topic_in_sync_fails_before_reading(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log, pytest.raises(TopicError, match="/radar"):
        log.frames(NearestSync(LIDAR, ["/radar"], slop=1))
