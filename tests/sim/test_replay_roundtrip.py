"""Simulated logs are first-class input for bagscope itself: they replay as synced frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bagscope import open_log
from bagscope.replay.decode import CameraImage, CameraModel, PointCloud
from bagscope.replay.sync import ApproximateTimeSync, NearestSync

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_simulated_log_replays_as_frames(sim_logs: dict[str, Path], fmt: str) -> None:
    with open_log(sim_logs[fmt]) as log:
        info = log.info()
        assert info.topic(LIDAR).count == 20
        assert info.topic(CAMERA).count == 60
        stream = log.frames(NearestSync(LIDAR, [CAMERA], slop=20_000_000))
        frames = list(stream)
        assert len(frames) == 20
        assert sum(stream.stats.decode_errors.values()) == 0
        # The camera free-runs 7 ms after the lidar's phase: the nearest image is 7 ms or
        # 26.3 ms away, never aligned, so the sync's skew is a real measurement.
        offsets = {(f.stamps_ns[CAMERA] - f.t_ns) % 33_333_334 for f in frames}
        assert offsets <= {7_000_000, 7_000_001, 26_333_333, 26_333_334}
        assert stream.stats.skew_percentiles()["p50"] >= 7_000_000
        frame = frames[10]
        cloud = frame.clouds[LIDAR]
        image = frame.images[CAMERA]
        model = frame.cameras[CAMERA]
        assert isinstance(cloud, PointCloud)
        assert isinstance(image, CameraImage)
        assert isinstance(model, CameraModel)
        assert set(cloud.field_names) >= {"x", "y", "z", "intensity", "ring", "t"}
        assert image.pixels.shape == (180, 320, 3)
        # Lidar points in front of the camera project into the image through TF + CameraInfo.
        assert frame.tf is not None
        xyz = frame.tf.transform_points(cloud.xyz_finite, target="camera_optical", source="lidar")
        pixels, valid = model.project(xyz)
        assert valid.sum() > 100
        assert np.all((pixels[valid] >= 0) & (pixels[valid] < (320, 180)))
        # The ego moves: base_link in odom differs between the first and last frame.
        first = frames[0].tf.lookup("odom", "base_link")  # type: ignore[union-attr]
        last = frames[-1].tf.lookup("odom", "base_link")  # type: ignore[union-attr]
        assert np.linalg.norm(last[:3, 3] - first[:3, 3]) > 2.0


def test_faulty_log_reports_its_faults_through_replay(sim_logs: dict[str, Path]) -> None:
    path = sim_logs["faulty_mcap"]
    truth = json.loads(Path(f"{path}.truth.json").read_text())
    corrupt_sweeps = sum(
        f["count"] for f in truth["faults"] if f["kind"] == "corrupt" and f["topic"] == LIDAR
    )
    with open_log(path) as log:
        stream = log.frames(ApproximateTimeSync([LIDAR, CAMERA], queue_size=10))
        list(stream)
    # Every corrupted sweep is caught by the decoder and counted, not fatal.
    assert stream.stats.decode_errors[LIDAR] == corrupt_sweeps > 0
    assert stream.stats.frames > 0
