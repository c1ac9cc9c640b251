"""Deskew: a sweep taken while driving, moved into the sensor frame at the sweep's stamp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.models.deskew import Deskew
from bagscope.pipeline.runner import run_stages
from bagscope.replay.log import open_log
from bagscope.replay.sync import make_policy
from tests.logwriter import LIDAR, T0, LogSpec, header, tf_message, write_log

if TYPE_CHECKING:
    from pathlib import Path

SPEED = 10.0  # m/s along odom x
SWEEP_NS = 100_000_000
WALL_X = 20.0


def _timed_cloud(ts: Any, stamp_ns: int, xyz: np.ndarray, t: np.ndarray) -> Any:
    """A PointCloud2 with x, y, z and t (s since the stamp), as spinning-lidar drivers write."""
    pts = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("t", "<f4")])
    pts["x"], pts["y"], pts["z"], pts["t"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], t
    field = ts.types["sensor_msgs/msg/PointField"]
    fields = [field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyzt")]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, stamp_ns, "lidar"),
        height=1,
        width=len(xyz),
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(xyz),
        data=np.frombuffer(pts.tobytes(), dtype=np.uint8),
        is_dense=True,
    )


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The car drives at 10 m/s past a wall at odom x = 20 m; each sweep's points are in the
    lidar frame at their own firing time (t from 0 to 99 ms), as a real driver publishes."""
    spec = LogSpec()
    for k in range(60):  # TF at 100 Hz for 0.6 s
        stamp = T0 + k * 10_000_000
        x = SPEED * (stamp - T0) / 1e9
        spec.add(
            "/tf",
            "tf2_msgs/msg/TFMessage",
            stamp,
            lambda ts, s=stamp, x=x: tf_message(ts, s, "odom", "lidar", (x, 0.0, 0.0)),
        )
    t = np.linspace(0.0, 0.099, 100)
    for k in range(5):
        stamp = T0 + k * SWEEP_NS
        ego = SPEED * (stamp - T0) / 1e9 + SPEED * t
        xyz = np.stack([WALL_X - ego, np.linspace(-5, 5, 100), np.zeros(100)], axis=1)
        spec.add(
            LIDAR,
            "sensor_msgs/msg/PointCloud2",
            stamp + 1_000_000,
            lambda ts, s=stamp, p=xyz: _timed_cloud(ts, s, p, t),
        )
        spec.add(
            "/marker",
            "sensor_msgs/msg/PointCloud2",
            stamp + 1_000_000,
            lambda ts, s=stamp, p=xyz: _timed_cloud(ts, s, p[:3], t[:3]),
        )
    return write_log(tmp_path_factory.mktemp("deskew") / "drive.mcap", spec, "mcap")


def test_a_wall_seen_while_driving_is_straight_again(drive: Path) -> None:
    stage = Deskew()
    seen: list[np.ndarray] = []

    class Keep:
        name = "keep"

        def process(self, frame: Any) -> None:
            seen.append(frame.outputs["deskew"].xyz.copy())
            raw = frame.clouds[LIDAR].xyz
            assert np.ptp(raw[:, 0]) == pytest.approx(0.99, abs=1e-4)  # smeared by 0.99 m

        def finish(self) -> Any:
            from bagscope.pipeline.stage import StageResult

            return StageResult()

    with open_log(drive) as log:
        run_stages(log, [stage, Keep()], sync=make_policy("nearest", [LIDAR, "/marker"], slop_ns=0))
    assert len(seen) == 5
    for k, xyz in enumerate(seen):
        expected = WALL_X - SPEED * k * SWEEP_NS / 1e9  # the wall from where the car was
        np.testing.assert_allclose(xyz[:, 0], expected, atol=0.02)  # one 64th of a sweep
    assert stage.moved == 5
    assert stage.max_shift_m == pytest.approx(SPEED * 0.099 * 63.5 / 64, abs=0.02)


def test_without_time_field_or_tf_the_sweep_passes_unchanged(
    camera_lidar_logs: dict[str, Path],
) -> None:
    stage = Deskew()
    got: list[np.ndarray] = []

    class Keep:
        name = "keep"

        def process(self, frame: Any) -> None:
            got.append(frame.outputs["deskew"].xyz - frame.clouds[LIDAR].xyz)

        def finish(self) -> Any:
            from bagscope.pipeline.stage import StageResult

            return StageResult()

    with open_log(camera_lidar_logs["mcap"]) as log:
        policy = make_policy("nearest", [LIDAR, "/camera/image/compressed"], slop_ns=20_000_000)
        run_stages(log, [stage, Keep()], sync=policy)
    assert len(got) == 10
    assert all(np.abs(d).max() == 0 for d in got)
    assert stage.moved == 0


def test_bad_parameters_are_one_line() -> None:
    with pytest.raises(BagscopeError, match="time_unit must be one of s, ms, us, ns, got 'h'"):
        Deskew(time_unit="h")
    with pytest.raises(BagscopeError, match="bins must be a whole number >= 1, got 0"):
        Deskew(bins=0)
