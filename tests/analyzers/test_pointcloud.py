"""PointCloudQuality: returns, ranges and azimuth coverage per sweep; damage."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope import open_log
from bagscope.analyzers.pointcloud import PointCloudQuality
from bagscope.errors import BagscopeError
from tests.analyzers._drives import (
    LIDAR,
    SCENARIOS,
    START_NS,
    clean_drive,
    damaged_drive,
    draw_figures,
    fault,
    problems,
    real_logs,
    run,
    showcase_drive,
    times_by_stamp,
)
from tests.logwriter import T0, LogSpec, cloud, header, write_log

if TYPE_CHECKING:
    from pathlib import Path

SWEEP_NS = 100_000_000


def _ring(n: int, *, blocked: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """``n`` returns 5-15 m away, evenly spread in azimuth (minus a blocked wedge, in degrees
    counter-clockwise from FROM to TO)."""
    rng = np.random.default_rng(seed)
    azimuth = (np.arange(n) + 0.5) * (2 * math.pi / n)
    if blocked is not None:
        start, end = (math.radians(a) for a in blocked)
        inside = (azimuth - start) % (2 * math.pi) < (end - start) % (2 * math.pi)
        azimuth = azimuth[~inside]
    r = rng.uniform(5.0, 15.0, azimuth.size)
    z = rng.uniform(-1.0, 1.0, azimuth.size)
    return np.column_stack([r * np.cos(azimuth), r * np.sin(azimuth), z]).astype(np.float32)


def _cloud_log(path: Path, sweeps: list[np.ndarray]) -> Path:
    spec = LogSpec()
    for k, xyz in enumerate(sweeps):
        stamp = T0 + k * SWEEP_NS
        spec.add(
            LIDAR,
            "sensor_msgs/msg/PointCloud2",
            stamp + 2_000_000,
            lambda ts, s=stamp, p=xyz: cloud(ts, s, p),
        )
    return write_log(path, spec, "mcap")


def _analyse(log: Path, **kwargs: Any) -> Any:
    return run(log, [PointCloudQuality(**kwargs)], topics=None).results["pointcloud"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_have_healthy_sweeps(scenario: str) -> None:
    log = clean_drive(scenario)
    result = _analyse(log)
    assert problems(result) == []
    assert {c.status for c in result.checks} == {"pass"}
    # the first sweep's returns, counted here without the analyzer
    with open_log(log) as opened:
        first = next(iter(opened.messages(topics=[LIDAR]))).decode()
    xyz = np.asarray(first.xyz, dtype=np.float64)  # type: ignore[attr-defined]
    r2 = (xyz**2).sum(axis=1)
    returns = int((np.isfinite(r2) & (r2 > 1e-6)).sum())
    times, points = result.metrics.series("points", topic=LIDAR)
    assert len(times) == 30
    assert points[0] == returns
    assert result.metrics.value("nan_ratio_median", topic=LIDAR) == 0.0  # the sim's are dense
    assert 2.0 < result.metrics.value("range_p50_median", topic=LIDAR) < 60.0
    assert draw_figures(result) == 2


def test_a_blocked_sector_is_found_with_its_azimuth_range() -> None:
    # blocked_sector:/lidar/points=4s+3s@30:90: no returns between 30° and 90° for 30 sweeps
    log = showcase_drive()
    result = _analyse(log)
    (event,) = [e for e in result.events if e.kind == "blocked_sector"]
    assert event.severity == "warning"
    assert event.topic == LIDAR
    start, end = event.evidence["azimuth_deg"]
    assert abs(start - 30) <= 10
    assert abs(end - 90) <= 10
    assert event.evidence["sweeps"] == 30
    log_time = times_by_stamp(log, LIDAR)
    assert event.t_ns == log_time[START_NS + 4_000_000_000]
    assert event.end_ns == log_time[START_NS + 6_900_000_000]
    assert "for 30 sweeps (3.000 s)" in event.message
    assert draw_figures(result) == 2


def test_a_frozen_lidar_is_left_to_the_freeze_analyzer() -> None:
    # freeze:/lidar/points=1s+1s: the sweeps stamped 1.0 ... 1.9 s repeat the one of 0.9 s;
    # that is the freeze analyzer's finding (tests/analyzers/test_freeze.py), not reported twice
    result = _analyse(showcase_drive())
    assert [e.kind for e in problems(result)] == ["blocked_sector"]
    assert {c.name for c in result.checks} == {
        "decodable",
        "returns per sweep",
        "azimuth coverage",
    }


def test_corrupt_clouds_are_counted() -> None:
    log = damaged_drive()
    record = fault(log, "corrupt:/lidar/points=0.3")
    result = _analyse(log)
    (event,) = problems(result)
    assert (event.kind, event.severity, event.topic) == ("corrupt", "error", LIDAR)
    assert event.evidence["corrupt"] == record["count"]
    assert event.evidence["messages"] == 30
    log_time = times_by_stamp(log, LIDAR)
    corrupt_times = sorted(log_time[s] for s in record["stamps_ns"])
    assert event.evidence["times_ns"] == corrupt_times
    assert (event.t_ns, event.end_ns) == (corrupt_times[0], corrupt_times[-1])
    assert result.metrics.value("sweeps", topic=LIDAR) == 30 - record["count"]


def test_a_drop_in_returns_is_found(tmp_path: Path) -> None:
    sweeps = [_ring(2000, seed=k) for k in range(20)]
    sweeps[10] = _ring(500, seed=10)
    sweeps[11] = _ring(900, seed=11)
    result = _analyse(_cloud_log(tmp_path / "low", sweeps))
    (event,) = problems(result)
    assert event.kind == "low_point_count"
    assert (event.t_ns, event.end_ns) == (
        T0 + 10 * SWEEP_NS + 2_000_000,
        T0 + 11 * SWEEP_NS + 2_000_000,
    )
    assert event.evidence["sweeps"] == 2
    assert event.evidence["fewest"] == 500
    assert event.evidence["median"] == 2000
    # the sparser sweeps thin every bin alike: no sector is blocked
    assert next(c for c in result.checks if c.name == "azimuth coverage").status == "pass"


def test_a_sector_across_zero_degrees_is_one_sector(tmp_path: Path) -> None:
    sweeps = [_ring(3600, seed=k) for k in range(20)]
    for k in range(8, 15):
        sweeps[k] = _ring(3600, blocked=(350.0, 20.0), seed=k)
    result = _analyse(_cloud_log(tmp_path / "wrap", sweeps))
    (event,) = problems(result)
    assert event.kind == "blocked_sector"
    assert event.evidence["azimuth_deg"] == [350.0, 20.0]
    assert event.evidence["azimuth_width_deg"] == 30.0
    assert event.evidence["bins"] == [35, 0, 1]
    assert event.evidence["sweeps"] == 7
    assert event.t_ns == T0 + 8 * SWEEP_NS + 2_000_000
    assert event.end_ns == T0 + 14 * SWEEP_NS + 2_000_000


def test_a_wedge_that_is_always_empty_is_not_judged(tmp_path: Path) -> None:
    # a 270° scanner (or a mount hiding the same wedge): the empty bins are its field of view
    sweeps = [_ring(2700, blocked=(130.0, 220.0), seed=k) for k in range(20)]
    result = _analyse(_cloud_log(tmp_path / "fov", sweeps))
    assert problems(result) == []
    check = next(c for c in result.checks if c.name == "azimuth coverage")
    assert check.value.endswith("27 of 36 bins judged")


def _organized(ts: Any, stamp: int) -> Any:
    """4 x 100 points: row 0 all NaN (Velodyne's no return), row 1 all zero (Ouster's)."""
    pts = np.zeros((4, 100), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    pts["x"][2:] = np.linspace(1.0, 20.0, 100, dtype=np.float32) + np.float32(stamp % 7 / 100)
    pts["y"][2:] = 1.0
    pts["x"][0] = np.nan
    field = ts.types["sensor_msgs/msg/PointField"]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, stamp, "lidar"),
        height=4,
        width=100,
        fields=[field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")],
        is_bigendian=False,
        point_step=12,
        row_step=1200,
        data=np.frombuffer(pts.tobytes(), dtype=np.uint8),
        is_dense=False,
    )


def test_organized_clouds_count_only_real_returns(tmp_path: Path) -> None:
    spec = LogSpec()
    for k in range(3):
        stamp = T0 + k * SWEEP_NS
        spec.add(LIDAR, "sensor_msgs/msg/PointCloud2", stamp, lambda ts, s=stamp: _organized(ts, s))
    result = _analyse(write_log(tmp_path / "organized", spec, "bag"))
    assert result.metrics.series("points", topic=LIDAR)[1] == [200.0] * 3
    assert result.metrics.series("nan_ratio", topic=LIDAR)[1] == [0.25] * 3
    assert problems(result) == []


def _colour_only(ts: Any, stamp: int) -> Any:
    field = ts.types["sensor_msgs/msg/PointField"]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, stamp, "camera"),
        height=1,
        width=10,
        fields=[field(name="rgb", offset=0, datatype=7, count=1)],
        is_bigendian=False,
        point_step=4,
        row_step=40,
        data=np.zeros(40, dtype=np.uint8),
        is_dense=True,
    )


def test_a_cloud_without_coordinates_is_not_judged(tmp_path: Path) -> None:
    spec = LogSpec()
    spec.add(LIDAR, "sensor_msgs/msg/PointCloud2", T0, lambda ts: _colour_only(ts, T0))
    result = _analyse(write_log(tmp_path / "rgb", spec, "mcap"))
    assert result.events == []
    statuses = {c.name: (c.status, c.value) for c in result.checks}
    assert statuses["decodable"][0] == "pass"
    assert statuses["returns per sweep"][0] == "skip"
    assert "no field 'x'" in statuses["returns per sweep"][1]


def test_a_65k_point_sweep_costs_about_a_millisecond(tmp_path: Path) -> None:
    sweeps = [_ring(65_536, seed=k) for k in range(12)]
    result = run(_cloud_log(tmp_path / "big", sweeps), [PointCloudQuality()], topics=None)
    per_sweep_ms = result.timings.messages["pointcloud"] / 12 / 1e6
    assert per_sweep_ms < 10.0  # ~1-2 ms on an idle core; generous for a loaded test machine
    assert problems(result.results["pointcloud"]) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sector_bins": 3},
        {"min_blocked_sweeps": 0},
        {"blocked_fraction": 1.0},
        {"min_bin_points": 0},
        {"min_points_ratio": 0},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BagscopeError, match=next(iter(kwargs))):
        PointCloudQuality(**kwargs)  # type: ignore[arg-type]


def test_real_logs_are_clean(shared_data: Path) -> None:
    for path in real_logs(shared_data):
        result = _analyse(path)
        assert problems(result) == [], path.name
    # the SICK log: its 541-point scan cloud is judged (27 of 36 bins: a 270° field of view);
    # the radar target and track clouds (3-8 points) are too sparse for counts or sectors
    result = _analyse(shared_data / "ros1" / "sick_lms1xx_rms_radar.bag")
    statuses = {(c.name, c.topic): c.status for c in result.checks}
    assert statuses[("azimuth coverage", "/cloud")] == "pass"
    assert statuses[("returns per sweep", "/cloud")] == "pass"
    assert statuses[("azimuth coverage", "/cloud_radar_track")] == "skip"
    assert statuses[("returns per sweep", "/cloud_radar_rawtarget")] == "skip"
